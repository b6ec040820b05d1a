"""Correlation matrices by the partial correlations of a C-vine: coordinates in a box.

The correlations of a k x k correlation matrix are not free: from k = 3 on, most points of
[-1, 1]^(k(k-1)/2) are indefinite matrices, and the positive semi-definite ones fill a convex
body with a curved edge. The partial correlations of a C-vine are free: any values in [-1, 1]
are those of exactly one correlation matrix, and every correlation matrix has such values
(Lewandowski, Kurowicka & Joe 2009, "Generating random correlation matrices based on vines and
extended onion method", J. Multivariate Analysis 100; the same map as Stan's ``corr_matrix``
transform). With the variables in the order ``order``, the vine's first tree joins
``order[0]`` (its root) to each other variable with their plain correlation, and partial
correlation p[a, b] (a < b, positions in ``order``) is that of variables a and b given those
before a. The lower Cholesky factor L of the matrix in that order is then

    L[b, a] = p[a, b] sqrt(prod_{m < a} (1 - p[m, b]^2)),   L[b, b] = sqrt(prod_{m < b} (...)).

``Vine`` maps the correlation parameters of one unstructured term (in its pattern's order) to
and from these partial correlations. The profile's inner fits (``profile``) move in them, so
that they move in a box; rooted at a column of a profiled correlation, that correlation is one
of the vine's own coordinates (a correlation with the root is a partial correlation given
nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..covariance.structures import semidefinite_cholesky

__all__ = ["Vine"]


@dataclass(frozen=True)
class Vine:
    """The partial correlations of one term's k columns, in the order ``order``.

    Attributes:
        k: the number of columns.
        rows, cols: (m,) the correlation parameters' entries (row > col) of the k x k matrix,
            in the order the term lists them.
        order: the columns' order in the vine (``order[0]`` its root).
    """

    k: int
    rows: np.ndarray
    cols: np.ndarray
    order: tuple[int, ...]

    def __post_init__(self):
        where = np.empty(self.k, dtype=np.int64)
        where[list(self.order)] = np.arange(self.k)
        first, second = where[self.rows], where[self.cols]
        object.__setattr__(self, "_a", np.minimum(first, second))
        object.__setattr__(self, "_b", np.maximum(first, second))
        object.__setattr__(self, "_pairs", list(zip(self._a.tolist(), self._b.tolist())))

    def _positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b), each (m,): the positions in ``order`` of each parameter's columns, a < b."""
        return self._a, self._b

    def correlations(self, partials: np.ndarray) -> np.ndarray:
        """(m,) the correlations of (m,) partial correlations in [-1, 1].

        Raises:
            numpy.linalg.LinAlgError: a partial correlation outside [-1, 1].
        """
        values = np.asarray(partials, dtype=float).tolist()
        if any(abs(v) > 1.0 for v in values):
            raise np.linalg.LinAlgError("a partial correlation outside [-1, 1]")
        # in Python's floats: a term has a few columns, and each NumPy call costs microseconds
        p = [[0.0] * self.k for _ in range(self.k)]
        for (a, b), value in zip(self._pairs, values):
            p[a][b] = value
        factor = []  # rows of the lower Cholesky factor, row b of length b + 1
        for b in range(self.k):
            row, remaining = [], 1.0  # 1 - the squares of the row's entries so far
            for m in range(b):
                entry = p[m][b] * math.sqrt(remaining)
                row.append(entry)
                remaining = max(remaining - entry * entry, 0.0)
            row.append(math.sqrt(remaining))
            factor.append(row)
        return np.array([sum(x * y for x, y in zip(factor[a], factor[b]))
                         for a, b in self._pairs])

    def partials(self, correlations: np.ndarray) -> np.ndarray:
        """(m,) the partial correlations of (m,) correlations, whose matrix must be positive
        semi-definite; where a partial correlation is not determined (a variable already
        explained by those before it), 0.

        Raises:
            numpy.linalg.LinAlgError: the correlations' matrix is indefinite.
        """
        a, b = self._positions()
        matrix = np.eye(self.k)
        matrix[a, b] = matrix[b, a] = correlations
        factor = semidefinite_cholesky(matrix)
        used = np.cumsum(np.hstack([np.zeros((self.k, 1)), factor[:, :-1] ** 2]), axis=1)
        denominator = np.sqrt(np.maximum(1.0 - used[b, a], 0.0))
        values = np.divide(factor[b, a], denominator, out=np.zeros(len(a)),
                           where=denominator > 1e-12)
        return np.clip(values, -1.0, 1.0)
