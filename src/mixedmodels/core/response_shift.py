"""The response as the cross-products see it: y - X b0 where y lies far from its residual.

A holds y'y, X'y and Z'y, and the penalized residual sum of squares r^2 is y'y less what the
factor explains: when |y| is many times |y - X b|, r^2 keeps only about eps (|y| / |r|)^2 of
its relative precision. sleepstudy's ``Reaction ~ Days + (Days | Subject)`` with 1e6 added to
Reaction stopped 2.5e-4 above its criterion, 0.024 above at + 1e7 and 25 above at + 1e8 (theta
0.87 for 0.23), where lme4, which forms r^2 from the residuals themselves, keeps the optimum.

b0 in X's column space changes nothing but beta: y - X b0 has the same criterion, theta, sigma
and conditional modes, and beta - b0 for beta. So where |y| > ``SHIFT_RATIO`` |y - X b0| (b0
the least-squares coefficients, from the R of a QR decomposition of [X y]), the cross-products
are formed from y - X b0 row by row, and b0 is added back to the fixed effects
(``FittedModel.beta``; the profile's fixed-effect values). Elsewhere the response is used as it
is: the loss is below 1e-12 relative at that ratio, and fits of ordinary data keep lme4's
arithmetic. The same R comes from the rows in memory (``build_design``) and from a Dask
DataFrame's partitions (``partitioned.model``), which form y - X b0 in their own rows.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dtrtrs

__all__ = ["SHIFT_RATIO", "least_squares", "response_shift", "shifted_response"]

#: |y| / |y - X b0| beyond which the cross-products are formed from y - X b0
SHIFT_RATIO = 100.0


def response_shift(r: np.ndarray | None) -> np.ndarray | None:
    """b0 (p,), the least-squares coefficients of y on X, where the response is that far from
    its residual (see the module docstring), else None.

    Args:
        r: ((p + 1) x (p + 1)) the R of a QR decomposition of [X y] (X's kept columns, y
            less its offset) in its upper triangle (what is below is not read): |y| is the
            norm of its last column, |y - X b0| its last diagonal entry, R_XX b0 = R_Xy.
            None (no R: X without columns): no shift.
    """
    if r is None or r.shape[1] < 2:
        return None
    p = r.shape[1] - 1
    column = r[:p + 1, p]
    if not np.sqrt(column @ column) > SHIFT_RATIO * abs(r[p, p]):
        return None
    return least_squares(r)


def least_squares(r: np.ndarray) -> np.ndarray | None:
    """(p,) the least-squares coefficients of y on X from the R of [X y] (its upper
    triangle: R_XX b = R_Xy), or None where R_XX is singular or b not finite."""
    p = r.shape[1] - 1
    b, info = dtrtrs(r[:p, :p], r[:p, p])  # (the upper triangle only)
    return b if info == 0 and np.all(np.isfinite(b)) else None


def shifted_response(X: np.ndarray, y: np.ndarray, shift: np.ndarray | None) -> np.ndarray:
    """y - X b0 (a new array), or y itself without a shift."""
    return y if shift is None else y - X @ shift
