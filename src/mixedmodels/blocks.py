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

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.linalg.lapack import dpotrf as _potrf

__all__ = ["BlockDiagonal", "BlockSparse", "cholesky", "rdiv", "rank_update", "log_diagonal_sum"]


@dataclass
class BlockDiagonal:
    """A block-diagonal matrix: ``data[k]`` is the p x p block of level k."""

    data: np.ndarray  # (levels, p, p)

    @property
    def p(self) -> int:
        return self.data.shape[1]

    def toarray(self) -> np.ndarray:
        return sp.block_diag(list(self.data)).toarray()

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

    def with_data(self, data: np.ndarray) -> "BlockSparse":
        return BlockSparse(data, self.indices, self.indptr, self.shape)

    def to_scipy(self):
        pr, pc = self.data.shape[1:]
        if pr == 1 and pc == 1:
            return sp.csr_array((self.data.reshape(-1), self.indices, self.indptr), self.shape)
        return sp.bsr_array((self.data, self.indices, self.indptr), self.shape)

    def toarray(self) -> np.ndarray:
        return self.to_scipy().toarray()

    @classmethod
    def from_scipy(cls, matrix, blocksize: tuple[int, int]) -> "BlockSparse":
        bsr = sp.bsr_array(matrix, blocksize=blocksize)
        bsr.sort_indices()
        return cls(np.array(bsr.data), bsr.indices.copy(), bsr.indptr.copy(), bsr.shape)


# --- Cholesky of a diagonal block --------------------------------------------------------------

def cholesky(block):
    """Lower Cholesky factor of a symmetric positive-definite diagonal block."""
    if isinstance(block, BlockDiagonal):
        if block.p == 1:
            return BlockDiagonal(np.sqrt(block.data))
        return BlockDiagonal(np.linalg.cholesky(block.data))
    if isinstance(block, np.ndarray):
        factor, info = _potrf(block, lower=1, clean=1)
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

def _rdiv_sparse_blockdiag(target: BlockSparse, factor: BlockDiagonal) -> BlockSparse:
    return target.with_data(_solve_rows(target.data, factor.data[target.indices][:, None]))


def _rdiv_dense_blockdiag(target: np.ndarray, factor: BlockDiagonal) -> np.ndarray:
    levels, p = factor.data.shape[:2]
    if p == 1:
        return target / factor.data[:, 0, 0]
    blocks = target.reshape(target.shape[0], levels, p)
    return _solve_rows(blocks, factor.data).reshape(target.shape)


def _solve_rows(rows: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """x with x @ lower.T = rows, row by row: rows (..., p), lower (..., p, p) broadcastable.

    Forward substitution over the p columns: a few vectorized operations for the small p of
    random-effects terms, instead of a batched inverse and product.
    """
    if lower.shape[-1] == 1:
        return rows / lower[..., 0, 0][..., None]
    out = np.empty(rows.shape)
    for c in range(lower.shape[-1]):
        value = rows[..., c] - np.einsum("...d,...d->...", out[..., :c], lower[..., c, :c])
        out[..., c] = value / lower[..., c, c]
    return out


def _rdiv_dense_dense(target: np.ndarray, factor: np.ndarray) -> np.ndarray:
    return scipy.linalg.solve_triangular(factor, target.T, lower=True, check_finite=False).T


_RDIV = {
    (BlockSparse, BlockDiagonal): _rdiv_sparse_blockdiag,
    (np.ndarray, BlockDiagonal): _rdiv_dense_blockdiag,
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
    left = a.to_scipy()
    right = left if b is a else b.to_scipy()
    return target - (left @ right.T).toarray()


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
