"""The cross-products A = [Z X y]' Psi^-1 [Z X y] as a value: built from rows, summed with ``+``.

A is a sum over observations (for a residual structure that is diagonal, or block-diagonal
within groups whose rows are kept together), so the A of a data set is the sum of the A's of
any partition of its rows: chunks of one array, partitions of a Dask DataFrame, workers of a
cluster. Everything a fit needs from the data is in A; the criterion then costs nothing in n
(Bates et al. 2015, section 3.1; the blocked layout of Bates et al. 2025, arXiv 2505.11674).

Layout, with blocks Z_b of the grouping factors (ordered as the random-effects structure's
blocks) and [X y] last:

* ``diag[b]``: (levels_b, p_b, p_b), the per-level blocks of Z_b' Z_b (block-diagonal: an
  observation belongs to one level of each factor);
* ``off[i, j]``: Z_i' Z_j for i > j, a scipy sparse or a dense array;
* ``xy_z[b]``: (p + 1, q_b), [X y]' Z_b;
* ``xy``: (p + 1, p + 1), [X y]' [X y];
* ``n``: the number of observations, ``log_det_psi``: their share of log|Psi|.

``reweighted`` rows (a new residual structure on the same rows, as iteratively reweighted
fits need) are built from the same design without re-reading the data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from ..covariance.residual import Identity, ResidualStructure

__all__ = ["CHUNK_ROWS", "CrossProducts"]

CHUNK_ROWS = 250_000  # rows per chunk when A is accumulated from arrays in memory
DENSE_Z_ENTRIES = 200_000  # rows x q up to this: Z blocks dense (scipy's overhead dominates)


@dataclass(frozen=True, eq=False)
class CrossProducts:
    """A = [Z X y]' Psi^-1 [Z X y] in blocks (see the module docstring for the layout)."""

    diag: tuple[np.ndarray, ...]
    off: dict
    xy_z: tuple[np.ndarray, ...]
    xy: np.ndarray
    n: int
    log_det_psi: float = 0.0

    @classmethod
    def from_rows(cls, blocks, xy: np.ndarray, residual: ResidualStructure,
                  rows=slice(None)) -> "CrossProducts":
        """A of some rows.

        Args:
            blocks: the random-effects blocks (``ReBlock``: ``codes`` (n,), ``values`` (n, p),
                ``nlevels``, ``p``, ``q``) of all rows.
            xy: (n, p + 1) [X y] of all rows (not whitened).
            residual: the residual structure of all rows.
            rows: which rows (a slice, indices or a boolean mask).
        """
        every_row = isinstance(rows, slice) and rows == slice(None)
        chunk_residual = residual if every_row else residual.subset(np.arange(residual.n)[rows])
        chunk = chunk_residual.whiten(xy[rows])
        n = chunk.shape[0]
        dense = n * sum(b.q for b in blocks) <= DENSE_Z_ENTRIES
        zs, diag = [], []
        for block in blocks:
            codes = block.codes[rows]
            values = chunk_residual.whiten(block.values[rows])
            diag.append(_per_level_products(codes, values, block.nlevels))
            zs.append(_z_matrix(codes, values, block.q, dense))
        off = {}
        for i in range(len(blocks)):
            for j in range(i):
                product = zs[i].T @ zs[j]
                off[i, j] = product if dense else sp.csr_array(product)
        xy_z = tuple(np.asarray(z.T @ chunk).T for z in zs)
        return cls(tuple(diag), off, xy_z, chunk.T @ chunk, n, chunk_residual.log_det())

    @classmethod
    def accumulate(cls, blocks, xy: np.ndarray, residual: ResidualStructure,
                   chunk_rows: int = CHUNK_ROWS) -> "CrossProducts":
        """A of all rows, summed over chunks of ``chunk_rows`` consecutive rows (no dense
        matrix of all rows and all random effects is ever formed). A residual structure that
        correlates rows (whose groups need not be consecutive) whitens all rows first; the
        chunks then sum whitened rows."""
        n = xy.shape[0]
        if not residual.separable:
            blocks = [replace(block, values=residual.whiten(block.values)) for block in blocks]
            whitened = cls.accumulate(blocks, residual.whiten(xy), Identity(n), chunk_rows)
            return replace(whitened, log_det_psi=residual.log_det())
        if n <= chunk_rows:
            return cls.from_rows(blocks, xy, residual)
        total = None
        for start in range(0, n, chunk_rows):
            part = cls.from_rows(blocks, xy, residual, slice(start, min(start + chunk_rows, n)))
            total = part if total is None else total + part
        return total

    def __add__(self, other: "CrossProducts") -> "CrossProducts":
        """The cross-products of the union of two disjoint sets of rows."""
        if not isinstance(other, CrossProducts):
            return NotImplemented
        if len(self.diag) != len(other.diag) or self.xy.shape != other.xy.shape:
            raise ValueError("cross-products of different models cannot be added")
        return CrossProducts(
            tuple(a + b for a, b in zip(self.diag, other.diag)),
            {key: _add(self.off[key], other.off[key]) for key in self.off},
            tuple(a + b for a, b in zip(self.xy_z, other.xy_z)),
            self.xy + other.xy, self.n + other.n, self.log_det_psi + other.log_det_psi)

    def z_gram(self) -> sp.csr_array:
        """Z'Z (q x q, sparse, both triangles) from the blocks."""
        k = len(self.diag)
        grid = [[None] * k for _ in range(k)]
        for b, blocks in enumerate(self.diag):
            grid[b][b] = sp.block_diag(list(blocks)) if len(blocks) else None
        for (i, j), block in self.off.items():
            grid[i][j] = sp.csr_array(block)
            grid[j][i] = sp.csr_array(block).T
        return sp.csr_array(sp.block_array(grid, format="csr"))

    def with_response_rows(self, xy_z: tuple[np.ndarray, ...], xy: np.ndarray) -> "CrossProducts":
        """The same Z'Z blocks with new [X y] blocks (a new response, or transformed X)."""
        return CrossProducts(self.diag, self.off, tuple(xy_z), xy, self.n, self.log_det_psi)


def _per_level_products(codes: np.ndarray, values: np.ndarray, levels: int) -> np.ndarray:
    """(levels, p, p): sum over each level's rows of the outer products of their values."""
    p = values.shape[1]
    out = np.zeros((levels, p, p))
    for r in range(p):
        for c in range(r + 1):
            sums = np.bincount(codes, values[:, r] * values[:, c], levels)
            out[:, r, c] = sums
            out[:, c, r] = sums
    return out


def _z_matrix(codes: np.ndarray, values: np.ndarray, q: int, dense: bool):
    """Z_b of these rows: row i has its values at its level's p columns (level-major)."""
    n, p = values.shape
    columns = codes[:, None] * p + np.arange(p)
    if dense:
        z = np.zeros((n, q))
        z[np.arange(n)[:, None], columns] = values
        return z
    indptr = np.arange(0, n * p + 1, p)
    return sp.csr_array((values.ravel(), columns.ravel(), indptr), shape=(n, q))


def _add(a, b):
    """The sum of two stored blocks, sparse when both are."""
    if sp.issparse(a) and sp.issparse(b):
        return sp.csr_array(a + b)
    return np.asarray(_dense(a) + _dense(b))


def _dense(block) -> np.ndarray:
    return block.toarray() if sp.issparse(block) else block
