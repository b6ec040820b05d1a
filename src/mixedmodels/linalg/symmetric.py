"""A symmetric matrix from the lower triangle of a small one, at little cost.

``np.tril(a) + np.tril(a, -1).T`` takes three copies and two ``np.tril`` calls (about 10 us
each, whatever the size, on this package's small matrices: [X y]'s block of A, a term's
correlations): per fit that is tens of microseconds of a small model's one or two
milliseconds. The strict upper triangle is copied from the lower one instead, through index
arrays made once per size.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["from_lower"]


@lru_cache(maxsize=64)
def _strict_upper(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(size, 1)


def from_lower(a: np.ndarray) -> np.ndarray:
    """(k, k) the symmetric matrix whose lower triangle is a's (a new float array; what is
    above a's diagonal is not read)."""
    out = np.array(a, dtype=float)
    rows, cols = _strict_upper(out.shape[0])
    out[rows, cols] = out[cols, rows]
    return out
