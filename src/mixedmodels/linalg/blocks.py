"""Block types of the blocked Cholesky factor and the kernels between them.

The lower-triangular factor L of Lambda' A Lambda + I is stored as blocks L[i][j] (i >= j), one
block row per grouping factor and a last one for [X y]. Three block types occur:

* ``BlockDiagonal``: the first diagonal block; one small dense p x p block per level. It never
  fills in (observations of one factor meet no other level of that factor).
* ``BlockSparse``: L[i][0] for a later grouping factor i; the same block-sparsity as Z_i'Z_0.
* ``numpy.ndarray`` (dense): every other block.

Each kernel is a small function chosen by the pair of block types it is handed. A pair without a
kernel raises ``TypeError`` naming both types: nothing is ever made dense silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.linalg.lapack import dpotrf as _potrf

from ..threads import threads_for_block
from .compiled import column_pairs_kernel, dense_blockdiag_kernel

__all__ = ["BlockDiagonal", "BlockSparse", "ColumnOrder", "block_times", "cholesky",
           "log_diagonal_sum", "lower_solve", "rank_update", "rdiv", "times_blockdiag",
           "transpose_times", "upper_solve"]

#: the rows of its product that a compiled rank update writes at a time: about 4 MB of them,
#: which stay in cache (a 2,000 x 2,000 product of 10^7 pairs: 256 rows at a time, 46 ms;
#: 64 rows, 73 ms; 1,024 rows, 98 ms; all at once, 135 ms)
TILE_BYTES = 4 * 2**20


@dataclass
class BlockDiagonal:
    """A block-diagonal matrix: ``data[k]`` is the p x p block of level k."""

    data: np.ndarray  # (levels, p, p)

    @property
    def p(self) -> int:
        return self.data.shape[1]

    def toarray(self) -> np.ndarray:
        levels, p, _ = self.data.shape
        out = np.zeros((levels * p, levels * p))
        first = (np.arange(levels) * p)[:, None, None]
        out[first + np.arange(p)[None, :, None], first + np.arange(p)[None, None, :]] = self.data
        return out

    def inverse_blocks(self) -> np.ndarray:
        """(levels, p, p) inverses of the (lower-triangular) blocks."""
        if self.p == 1:
            return 1.0 / self.data
        return np.linalg.inv(self.data)


@dataclass
class BlockSparse:
    """A sparse matrix of dense (pr x pc) blocks in block-CSR layout (rows sorted)."""

    data: np.ndarray  # (nnz_blocks, pr, pc)
    indices: np.ndarray  # block column of each stored block
    indptr: np.ndarray  # (block_rows + 1,)
    shape: tuple[int, int]  # element shape
    # product plans and the column order (``by_columns``), shared by the pattern's blocks
    plans: dict = field(default_factory=dict, repr=False)

    def with_data(self, data: np.ndarray) -> "BlockSparse":
        """The same sparsity pattern (and cached plans) with new values."""
        return BlockSparse(data, self.indices, self.indptr, self.shape, self.plans)

    def product_plan(self, other: "BlockSparse", symmetric: bool) -> "ProductPlan":
        """The plan for ``self @ other.T`` (cached: patterns do not change between thetas);
        ``symmetric`` when other is self, so that only the lower triangle is planned."""
        key = (id(other.indices), symmetric)
        if key not in self.plans:
            self.plans[key] = (other.indices, ProductPlan.build(self, other, symmetric))
        return self.plans[key][1]

    def by_columns(self) -> "ColumnOrder":
        """The stored elements column by column (cached: patterns do not change between
        thetas)."""
        if "columns" not in self.plans:
            self.plans["columns"] = ColumnOrder.build(self)
        return self.plans["columns"]

    def element_coo(self):
        """(rows, columns) of every stored element, in the order of ``data.ravel()``."""
        pr, pc = self.data.shape[1:]
        block_rows = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        rows = (block_rows[:, None, None] * pr + np.arange(pr)[None, :, None])
        cols = (self.indices[:, None, None] * pc + np.arange(pc)[None, None, :])
        rows, cols = np.broadcast_arrays(rows, cols)
        return rows.ravel(), cols.ravel()


    def to_scipy(self):
        pr, pc = self.data.shape[1:]
        if pr == 1 and pc == 1:
            return sp.csr_array((self.data.reshape(-1), self.indices, self.indptr), self.shape)
        return sp.bsr_array((self.data, self.indices, self.indptr), self.shape)

    def toarray(self) -> np.ndarray:
        return self.to_scipy().toarray()

    @classmethod
    def from_scipy(cls, matrix, blocksize: tuple[int, int]) -> "BlockSparse":
        """A scipy sparse matrix in blocks of ``blocksize``. A CSR matrix of 1 x 1 blocks is
        one already: its own arrays serve (its indices sorted in place), so that A's stored
        block shares them with the cross-products (10^6 entries: 15 MB not copied)."""
        if blocksize == (1, 1) and sp.issparse(matrix) and matrix.format == "csr":
            matrix.sort_indices()
            return cls(matrix.data.reshape(-1, 1, 1), matrix.indices, matrix.indptr,
                       matrix.shape)
        bsr = sp.bsr_array(matrix, blocksize=blocksize)
        bsr.sort_indices()
        return cls(np.array(bsr.data), bsr.indices.copy(), bsr.indptr.copy(), bsr.shape)


@dataclass(frozen=True)
class ProductPlan:
    """Every pair of stored elements (one from A, one from B) that share a column, so that
    A B' = bincount(target, a[left] * b[right]) costs one gather and one scatter per theta.

    For A B' with B = A only the lower triangle is planned (``symmetric``)."""

    left: np.ndarray
    right: np.ndarray
    target: np.ndarray
    shape: tuple[int, int]
    symmetric: bool

    @classmethod
    def build(cls, a: "BlockSparse", b: "BlockSparse", symmetric: bool) -> "ProductPlan":
        rows_a, cols_a = a.element_coo()
        rows_b, cols_b = b.element_coo()
        order_b = np.argsort(cols_b, kind="stable")
        ncols = a.shape[1]
        count_b = np.bincount(cols_b, minlength=ncols)
        start_b = np.concatenate([[0], np.cumsum(count_b)[:-1]])
        repeats = count_b[cols_a]
        left = np.repeat(np.arange(len(rows_a)), repeats)
        offsets = np.arange(len(left)) - np.repeat(np.cumsum(repeats) - repeats, repeats)
        right = order_b[np.repeat(start_b[cols_a], repeats) + offsets]
        if symmetric:
            keep = rows_a[left] >= rows_b[right]
            left, right = left[keep], right[keep]
        target = rows_a[left].astype(np.int64) * b.shape[0] + rows_b[right]
        return cls(left, right, target, (a.shape[0], b.shape[0]), symmetric)

    def product(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """A B' (dense) from the flattened values of A and B."""
        size = self.shape[0] * self.shape[1]
        out = np.bincount(self.target, a[self.left] * b[self.right], size).reshape(self.shape)
        if self.symmetric:
            out = out + np.tril(out, -1).T
        return out


@dataclass(frozen=True)
class ColumnOrder:
    """The stored elements of a ``BlockSparse`` column by column: those of element column c
    are ``positions[start[c]:start[c + 1]]`` in ``data.ravel()``, in rows ``rows[...]``,
    increasing. What the compiled rank update needs of a pattern: two integers per stored
    element, where the pair plan keeps three per pair of elements sharing a column (10^6
    elements in 2,000 rows and 50,000 columns: 16 MB against 250 MB)."""

    start: np.ndarray
    rows: np.ndarray
    positions: np.ndarray

    @classmethod
    def build(cls, block: "BlockSparse") -> "ColumnOrder":
        rows, cols = block.element_coo()
        positions = np.argsort(cols, kind="stable")  # stable: rows stay increasing
        counts = np.bincount(cols, minlength=block.shape[1])
        return cls(np.concatenate([[0], np.cumsum(counts)]), rows[positions], positions)

    def values(self, data: np.ndarray) -> np.ndarray:
        """The values of ``data`` (a block's, of this pattern) in this order."""
        return data.reshape(-1)[self.positions]


# --- Cholesky of a diagonal block --------------------------------------------------------------

def cholesky(block):
    """Lower Cholesky factor of a symmetric positive-definite diagonal block."""
    if isinstance(block, BlockDiagonal):
        if block.p == 1:
            return BlockDiagonal(np.sqrt(block.data))
        return BlockDiagonal(np.linalg.cholesky(block.data))
    if isinstance(block, np.ndarray):
        # LAPACK's column-major layout without a transposing copy: a symmetric block stored
        # by rows is its own transpose by columns (400 x 400: a third of dpotrf's time)
        square = block.T if block.flags.c_contiguous else block
        with threads_for_block(block.shape[0]):
            factor, info = _potrf(square, lower=1, clean=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"matrix not positive definite (LAPACK info {info})")
        return factor
    raise TypeError(f"no Cholesky kernel for a diagonal block of type {type(block).__name__}")


def log_diagonal_sum(block) -> float:
    """Sum of the logs of the diagonal of a triangular block: half its log-determinant."""
    if isinstance(block, BlockDiagonal):
        return float(np.log(np.diagonal(block.data, axis1=1, axis2=2)).sum())
    return float(np.log(np.diagonal(block)).sum())


# --- right division by the transpose of a triangular diagonal block: T <- T L^{-T} -------------

def times_blockdiag(block, blocks: np.ndarray):
    """``block @ blockdiag(blocks)`` for an off-diagonal block (``BlockSparse`` or dense with
    level-major columns): each column block times its level's (p x p) matrix."""
    if isinstance(block, BlockSparse):
        return block.with_data(block.data @ blocks[block.indices])
    levels, p, _ = blocks.shape
    if p == 1:
        return block * blocks[:, 0, 0]
    kernel = dense_blockdiag_kernel()
    if kernel is not None:  # along the rows (NumPy's inner loops are of length p)
        out = np.empty(block.shape)
        kernel(np.ascontiguousarray(block), np.ascontiguousarray(blocks), out)
        return out
    per_level = np.swapaxes(block.reshape(-1, levels, p), 0, 1) @ blocks  # (levels, rows, p)
    return np.swapaxes(per_level, 0, 1).reshape(block.shape)


def _rdiv_blockdiag(target, factor: BlockDiagonal):
    """T L^-T as T blockdiag(L_l^-T): the level blocks of the first diagonal block are
    Cholesky factors of lam' A_l lam + I, whose singular values are all at least 1, so that
    inverting them loses nothing."""
    return times_blockdiag(target, np.swapaxes(factor.inverse_blocks(), 1, 2))


def _rdiv_dense_dense(target: np.ndarray, factor: np.ndarray) -> np.ndarray:
    return scipy.linalg.solve_triangular(factor, target.T, lower=True, check_finite=False).T


_RDIV = {
    (BlockSparse, BlockDiagonal): _rdiv_blockdiag,
    (np.ndarray, BlockDiagonal): _rdiv_blockdiag,
    (np.ndarray, np.ndarray): _rdiv_dense_dense,
}


def rdiv(target, factor):
    """``target @ inv(factor).T`` for a lower-triangular diagonal block ``factor``."""
    kernel = _RDIV.get((type(target), type(factor)))
    if kernel is None:
        raise TypeError(f"no right-division kernel for ({type(target).__name__}, "
                        f"{type(factor).__name__})")
    return kernel(target, factor)


# --- symmetric or general rank update: C <- C - A B' -------------------------------------------

def _update_sparse_sparse(target: np.ndarray, a: BlockSparse, b: BlockSparse) -> np.ndarray:
    """By the compiled loop over each column's pairs of elements when the kernels are loaded,
    else by the pair plan (one gather and one bincount): the same sums in the same order. The
    plan keeps three integers per pair and gathers a float for each at every call: for the
    2,000 x 2,000 update of 10^6 rows crossed in 50,000 x 2,000 levels (10^7 pairs), it
    keeps 250 MB and takes 165 MB more per call, against 16 MB kept and 40 MB per call (the
    product included) by columns, in 46 instead of 117 ms."""
    kernel = column_pairs_kernel()
    if kernel is None:
        plan = a.product_plan(b, symmetric=a is b)
        return target - plan.product(a.data.reshape(-1), b.data.reshape(-1))
    product = np.zeros((a.shape[0], b.shape[0]))
    left = a.by_columns()
    right = left if b is a else b.by_columns()
    left_values = left.values(a.data)
    right_values = left_values if b is a else right.values(b.data)
    tile = max(1, TILE_BYTES // (8 * product.shape[1]))
    kernel(product, left.start, left.rows, left_values, right.start, right.rows, right_values,
           b is a, tile)
    return np.subtract(target, product, out=product)


def _update_dense_sparse(target: np.ndarray, a: np.ndarray, b: BlockSparse) -> np.ndarray:
    return target - (b.to_scipy() @ a.T).T


def _update_dense_dense(target: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return target - a @ b.T


_RANK_UPDATE = {
    (BlockSparse, BlockSparse): _update_sparse_sparse,
    (np.ndarray, BlockSparse): _update_dense_sparse,
    (np.ndarray, np.ndarray): _update_dense_dense,
}


def rank_update(target: np.ndarray, a, b) -> np.ndarray:
    """``target - a @ b.T`` for a dense target."""
    kernel = _RANK_UPDATE.get((type(a), type(b)))
    if kernel is None or not isinstance(target, np.ndarray):
        raise TypeError(f"no rank-update kernel for ({type(a).__name__}, {type(b).__name__}) "
                        f"into {type(target).__name__}")
    return kernel(target, a, b)


# --- products and triangular solves with a vector or a matrix of columns -----------------------

def block_times(block, x: np.ndarray) -> np.ndarray:
    """``block @ x`` for an off-diagonal block (block-sparse or dense); x (cols,) or (cols, m)."""
    if isinstance(block, BlockSparse):
        return block.to_scipy() @ x
    if isinstance(block, np.ndarray):
        return block @ x
    raise TypeError(f"no product kernel for a block of type {type(block).__name__}")


def transpose_times(block, x: np.ndarray) -> np.ndarray:
    """``block.T @ x`` for an off-diagonal block (block-sparse or dense)."""
    if isinstance(block, BlockSparse):
        return block.to_scipy().T @ x
    if isinstance(block, np.ndarray):
        return block.T @ x
    raise TypeError(f"no transposed-product kernel for a block of type {type(block).__name__}")


def _per_level(block: BlockDiagonal, x: np.ndarray, transpose: bool) -> np.ndarray:
    """Solve with each level's triangular p x p block (``transpose``: with its transpose)."""
    levels, p = block.data.shape[:2]
    if p == 1:
        scale = block.data[:, 0, 0]
        return x / (scale if x.ndim == 1 else scale[:, None])
    factors = np.swapaxes(block.data, 1, 2) if transpose else block.data
    columns = x.reshape(levels, p, -1)
    return np.linalg.solve(factors, columns).reshape(x.shape)


def lower_solve(block, x: np.ndarray) -> np.ndarray:
    """``inv(block) @ x`` for a lower-triangular diagonal block."""
    if isinstance(block, BlockDiagonal):
        return _per_level(block, x, transpose=False)
    if isinstance(block, np.ndarray):
        return scipy.linalg.solve_triangular(block, x, lower=True, check_finite=False)
    raise TypeError(f"no triangular-solve kernel for a block of type {type(block).__name__}")


def upper_solve(block, x: np.ndarray) -> np.ndarray:
    """``inv(block.T) @ x`` for a lower-triangular diagonal block."""
    if isinstance(block, BlockDiagonal):
        return _per_level(block, x, transpose=True)
    if isinstance(block, np.ndarray):
        return scipy.linalg.solve_triangular(block, x, lower=True, trans="T", check_finite=False)
    raise TypeError(f"no triangular-solve kernel for a block of type {type(block).__name__}")

