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

import numpy as np
import pandas as pd
from formulaic.transforms import poly as formulaic_poly
from formulaic.transforms import scale as formulaic_scale
from formulaic.utils.stateful_transforms import stateful_transform

from ..datasets import listed_rows
from ..errors import DataError

__all__ = ["TRANSFORM_CONTEXT", "center", "poly", "scale", "standardize"]

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
