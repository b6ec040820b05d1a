"""R's natural cubic splines in formulas: ``ns(x, df)``, as ``splines::ns`` computes them.

The basis (R's ``ns``, Hastie 1992 in *Statistical Models in S*, ch. 7): the cubic B-splines
on the boundary knots (the range of x) and the interior knots (the quantiles of x at equal
steps, R's type 7, ``df - 1 - intercept`` of them), projected onto the functions whose second
derivative vanishes at both boundary knots: the B-spline basis times the orthogonal
complement, from a QR decomposition (Householder's, as R's ``qr``), of the second derivatives
at the boundary knots. The first B-spline is dropped without ``intercept``. Outside the
boundary knots (new data), each basis function continues as the straight line of its value
and slope at the nearer boundary knot, as R's ``ns`` does. Columns are named
``ns(x, 3)1``, ``ns(x, 3)2``... as in R.

The knots are learnt from the fit's data and kept (a stateful transform) for refits and new
data. Missing values stay missing (R's ``ns`` returns NA for them).
"""

from __future__ import annotations

import numpy as np
from formulaic.materializers.types import FactorValues
from formulaic.utils.stateful_transforms import stateful_transform

from ..errors import FormulaError

__all__ = ["ns"]

#: cubic splines: B-splines of order 4
_DEGREE = 3


@stateful_transform
def ns(x, df=None, knots=None, intercept=False, _state=None):
    """The natural cubic spline basis of ``x``, (n, df) (``df`` columns; ``df - 1 -
    intercept`` interior knots at quantiles of x), or with the interior ``knots`` given; the
    knots of the fit's data (``_state``) for new data.

    Raises:
        FormulaError: neither df nor knots usable (df below 1 + intercept), or no value of x
            that is not missing.
    """
    values = np.asarray(x, dtype=float).reshape(-1)
    present = ~np.isnan(values)
    if not _state:
        _state.update(_knots(values[present], df, knots, bool(intercept)))
    boundary = np.array(_state["boundary"], dtype=float)
    interior = np.array(_state["interior"], dtype=float)
    basis = np.full((values.shape[0], len(interior) + 1 + bool(intercept)), np.nan)
    basis[present] = _natural_basis(values[present], boundary, interior, bool(intercept))
    return FactorValues(basis, column_names=tuple(str(i + 1) for i in range(basis.shape[1])))


def _knots(values: np.ndarray, df, knots, intercept: bool) -> dict:
    """The boundary knots (the range of the values) and the interior ones, as R's ``ns``."""
    if values.shape[0] == 0:
        raise FormulaError("ns(x, ...): x has no value that is not missing")
    boundary = [float(values.min()), float(values.max())]
    if knots is not None:
        interior = np.sort(np.atleast_1d(np.asarray(knots, dtype=float)))
    else:
        count = 0 if df is None else int(df) - 1 - intercept
        if df is not None and count < 0:
            raise FormulaError(f"ns(x, df = {df}): df is at least {1 + intercept} (the number "
                               "of columns: interior knots + 1 + intercept)")
        steps = np.linspace(0.0, 1.0, count + 2)[1:-1]
        interior = np.quantile(values, steps) if count else np.zeros(0)  # R's type 7
    return {"boundary": boundary, "interior": [float(k) for k in interior]}


def _natural_basis(x: np.ndarray, boundary: np.ndarray, interior: np.ndarray,
                   intercept: bool) -> np.ndarray:
    """R's ``ns`` basis at x (n,) for these knots: (n, len(interior) + 1 + intercept)."""
    from scipy.interpolate import BSpline  # at first use: it loads scipy.optimize (0.1 s)

    knots = np.sort(np.concatenate([np.repeat(boundary, _DEGREE + 1), interior]))
    splines = BSpline(knots, np.eye(len(knots) - _DEGREE - 1), _DEGREE)
    inside = (x >= boundary[0]) & (x <= boundary[1])
    basis = np.empty((x.shape[0], len(knots) - _DEGREE - 1))
    basis[inside] = splines(x[inside])
    slopes = splines.derivative(1)
    for end in (0, 1):  # beyond a boundary knot: the line of its value and slope there
        side = x < boundary[0] if end == 0 else x > boundary[1]
        if side.any():
            basis[side] = splines(boundary[end]) + np.outer(x[side] - boundary[end],
                                                            slopes(boundary[end]))
    constraints = splines.derivative(2)(boundary)  # (2, k): second derivatives at the ends
    if not intercept:
        constraints, basis = constraints[:, 1:], basis[:, 1:]
    q = np.linalg.qr(constraints.T, mode="complete")[0]
    return (basis @ q)[:, 2:]
