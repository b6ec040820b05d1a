"""formulaic's stateful transforms with R's treatment of missing values.

A stateful transform learns its state from the data of the fit (``poly``'s coefficients,
``scale``'s centre and scale, the knots of ``bs``) and applies that state to new data. The
design evaluates it on every row of the data, rows with missing values in other columns
included, as R's model frame does (``design.materialize``). On missing values of the
transformed variable itself:

* ``scale(x)``, ``center(x)``, ``standardize(x)``: the centre and the scale are those of the
  values that are not missing, as R's ``scale`` computes them (formulaic's would be NaN);
* ``poly(x, d)``: an error that names the rows, as R's ``poly`` refuses them ("missing values
  are not allowed in 'poly'"); ``poly(x, d, raw = TRUE)`` has no state and takes them;
* ``bs``, ``cr``, ``cs``, ``cc``: formulaic's own, whose bounds and knots already leave them
  out, as R's ``bs`` does.

The rows with a missing value are then dropped with the other incomplete rows.
"""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
from formulaic.transforms import poly as formulaic_poly
from formulaic.transforms import scale as formulaic_scale
from formulaic.utils.stateful_transforms import stateful_transform

from ..datasets import listed_rows
from ..errors import DataError

__all__ = ["STATISTICS_CONTEXT", "TRANSFORM_CONTEXT", "center", "merge_statistics", "poly",
           "scale", "standardize", "state_from_statistics"]

@stateful_transform
def scale(data, center=True, scale=True, ddof=1, _state=None):
    """``data`` minus its mean, divided by its standard deviation (``center`` and ``scale``
    may be given as numbers, or False), as R's ``scale``: the mean and the standard deviation
    (with ``ddof``) are those of the values that are not missing."""
    if not _state:
        values = np.asarray(data, dtype=float)
        if isinstance(center, bool) and center:
            center = np.nanmean(values, axis=0)
        if isinstance(scale, bool) and scale:
            shifted = values if center is False else values - center
            count = np.sum(~np.isnan(values), axis=0)
            scale = np.sqrt(np.nansum(shifted ** 2, axis=0) / (count - ddof))
    return formulaic_scale(data, center=center, scale=scale, ddof=ddof, _state=_state)


@stateful_transform
def center(data, _state=None):
    """``data`` minus the mean of its values that are not missing."""
    return scale(data, scale=False, _state=_state)


@stateful_transform
def standardize(data, center=True, rescale=True, ddof=0, _state=None):
    """patsy's ``standardize``: ``scale`` with ``ddof=0``."""
    return scale(data, center=center, scale=rescale, ddof=ddof, _state=_state)


@stateful_transform
def poly(x, degree=1, raw=False, _state=None):
    """formulaic's ``poly`` (R's): orthogonal polynomials of ``x`` up to ``degree``, or its
    powers with ``raw``. As R's, the orthogonal basis is not fitted to values with missing
    ones among them: a ``DataError`` names the rows."""
    if not raw and not _state:
        _refuse_missing(x, degree)
    return formulaic_poly(x, degree, raw, _state=_state)


def _refuse_missing(x, degree) -> None:
    """A DataError naming the rows if ``x`` (a column, or any values) has a missing value."""
    series = x if isinstance(x, pd.Series) else pd.Series(np.asarray(x, dtype=float))
    missing = series.index[series.isna().to_numpy()]
    if not len(missing):
        return
    name = series.name if series.name is not None else "x"
    raise DataError(
        f"poly({name}, {degree}): column {name!r} has {len(missing)} missing value(s) "
        f"({listed_rows(missing)}), which R's poly refuses too: the orthogonal basis is fitted "
        f"to the values of every row. Drop those rows first, e.g. data = "
        f"data.dropna(subset=[{name!r}]) (the basis is then that of the rows left), or use "
        f"poly({name}, {degree}, raw = TRUE)")


#: The transforms under their formula names, over formulaic's.
TRANSFORM_CONTEXT = {"scale": scale, "center": center, "standardize": standardize,
                     "poly": poly}


# -- the state from sums over partitions of the rows ---------------------------------------------
# A stateful transform's state is a function of a few sums over the rows: the count, the mean and
# the central moments of its argument (``scale``'s centre and scale; ``poly``'s recurrence
# coefficients, from the moments up to twice its degree). Data split into partitions (a Dask
# DataFrame's) give their state by evaluating the formula on each partition with the
# ``STATISTICS_CONTEXT``, whose transforms record those sums as their state, merging the sums
# (``merge_statistics``: exact, by the binomial expansion of the moments about the overall
# mean, Pebay 2008, Sandia report SAND2008-6212) and turning them into the state each transform
# would have learnt from all the rows (``state_from_statistics``).


def _moments(data, order: int) -> dict:
    """count, mean and the central sums sum((x - mean)^k), k = 2..order, of the values that
    are not missing."""
    values = np.asarray(data, dtype=float)
    if values.ndim != 1:
        raise DataError("a transform of several columns at once (scale, center, poly of a "
                        "matrix) cannot be learnt from partitions of the data; transform each "
                        "column on its own")
    values = values[~np.isnan(values)]
    count = values.shape[0]
    mean = float(values.mean()) if count else 0.0
    shifted = values - mean
    return {"count": count, "mean": mean,
            "sums": [float(np.sum(shifted ** k)) for k in range(2, order + 1)]}


@stateful_transform
def _scale_statistics(data, center=True, scale=True, ddof=1, _state=None):
    _state.update(transform="scale", center=center, scale=scale, ddof=ddof,
                  moments=_moments(data, 2))
    return formulaic_scale(data, center=center, scale=scale, ddof=ddof, _state={})


@stateful_transform
def _center_statistics(data, _state=None):
    return _scale_statistics(data, scale=False, _state=_state)


@stateful_transform
def _standardize_statistics(data, center=True, rescale=True, ddof=0, _state=None):
    return _scale_statistics(data, center=center, scale=rescale, ddof=ddof, _state=_state)


@stateful_transform
def _poly_statistics(x, degree=1, raw=False, _state=None):
    if not raw:
        _refuse_missing(x, degree)
        _state.update(transform="poly", degree=degree, moments=_moments(x, 2 * degree))
    return formulaic_poly(x, degree, raw, _state={})


#: ``TRANSFORM_CONTEXT`` with transforms whose state is the sums of their rows' statistics
STATISTICS_CONTEXT = {"scale": _scale_statistics, "center": _center_statistics,
                      "standardize": _standardize_statistics, "poly": _poly_statistics}


def merge_statistics(first: dict, second: dict) -> dict:
    """The statistics state of the union of two disjoint sets of rows."""
    if not first or not second:  # poly(x, d, raw = TRUE): no state
        return first or second
    a, b = first["moments"], second["moments"]
    count = a["count"] + b["count"]
    if not a["count"] or not b["count"]:
        return first if a["count"] else second
    mean = a["mean"] + (b["mean"] - a["mean"]) * b["count"] / count
    sums = []
    for k in range(2, len(a["sums"]) + 2):
        total = 0.0
        for part in (a, b):
            central = [part["count"], 0.0] + part["sums"]  # sums of (x - part mean)^j
            shift = part["mean"] - mean
            total += sum(comb(k, j) * central[j] * shift ** (k - j) for j in range(k + 1))
        sums.append(total)
    return {**first, "moments": {"count": count, "mean": mean, "sums": sums}}


def state_from_statistics(statistics: dict) -> dict:
    """The state the transform would have learnt from all the rows (formulaic's layout)."""
    if not statistics:
        return {}
    moments = statistics["moments"]
    count, mean, sums = moments["count"], moments["mean"], moments["sums"]
    if statistics["transform"] == "poly":
        return _poly_state(statistics["degree"], count, mean, sums)
    center, scale, ddof = statistics["center"], statistics["scale"], statistics["ddof"]
    if isinstance(center, bool):
        center = mean if center else None
    if isinstance(scale, bool) and scale:
        offset = 0.0 if center is None else float(center)
        scale = np.sqrt((sums[0] + count * (mean - offset) ** 2) / (count - ddof))
    elif isinstance(scale, bool):
        scale = None
    return {"ddof": ddof, "center": None if center is None else np.array(center),
            "scale": None if scale is None else np.array(scale)}


def _poly_state(degree: int, count: int, mean: float, sums: list) -> dict:
    """formulaic's ``poly`` state (the monic three-term recurrence's alpha and squared norms)
    from the central moments: the recurrence runs on t = (x - mean) / s, s the root mean
    square deviation, with sum(t^j) = sums_j / s^j; then alpha_x = mean + s alpha_t and
    norms2_x[k] = s^(2k) norms2_t[k]."""
    s = np.sqrt(sums[0] / count)
    if not s > 0:
        raise DataError(f"poly(x, {degree}): x has a single distinct value, so it has no "
                        "orthogonal polynomials")
    power_sums = [float(count), 0.0] + [total / s ** j for j, total in enumerate(sums, start=2)]

    def total(coefficients) -> float:  # sum over the rows of a polynomial in t
        return float(sum(c * power_sums[j] for j, c in enumerate(coefficients)))

    polynomials = [np.array([1.0])]
    norms2_t = {0: float(count)}
    alpha_t = {}
    for k in range(1, degree + 1):
        previous = polynomials[-1]
        square = np.polynomial.polynomial.polymul(previous, previous)
        alpha_t[k - 1] = total(np.concatenate([[0.0], square])) / norms2_t[k - 1]
        current = np.polynomial.polynomial.polymul(previous, [-alpha_t[k - 1], 1.0])
        if k >= 2:
            current = np.polynomial.polynomial.polysub(
                current, norms2_t[k - 1] / norms2_t[k - 2] * polynomials[-2])
        polynomials.append(current)
        norms2_t[k] = total(np.polynomial.polynomial.polymul(current, current))
    return {"alpha": {k: np.float64(mean + s * a) for k, a in alpha_t.items()},
            "norms2": {k: np.float64(s ** (2 * k) * v) for k, v in norms2_t.items()}}
