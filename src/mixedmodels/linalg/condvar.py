"""Diagonal blocks of (L_Z L_Z')^{-1}: the conditional variances of the spherical effects.

Var(v | y) = sigma^2 (L_Z L_Z')^{-1} (given beta, as lme4's ``condVar``), so
Var(u_level | y) = sigma^2 lam C_level lam' with C_level the level's p x p diagonal block of
(L_Z L_Z')^{-1} = L_Z^{-T} L_Z^{-1}. Block column j of L_Z^{-1} is, by forward substitution,

    Y_j = L_jj^{-1},    Y_i = -L_ii^{-1} sum_{j <= m < i} L_im Y_m   (i > j),

and C's diagonal block j is sum_i Y_i' Y_i. The first block column is done in chunks of levels,
so no dense matrix with all q_1 columns is ever formed.
"""

from __future__ import annotations

import numpy as np

from .blocks import BlockDiagonal, BlockSparse, lower_solve

__all__ = ["spherical_condvar"]

LEVEL_CHUNK = 512


def spherical_condvar(L: list, sizes: list[int]) -> list[np.ndarray]:
    """For each random-effects block (``sizes[b]`` columns per level), a (levels, p, p) array
    of C's diagonal blocks."""
    k = len(sizes)
    return [_first_block(L, k)] + [_dense_block(L, k, j, sizes[j]) for j in range(1, k)]


def _first_block(L: list, k: int) -> np.ndarray:
    first: BlockDiagonal = L[0][0]
    inverse = first.inverse_blocks()  # (levels, p, p), lower triangular
    result = np.swapaxes(inverse, 1, 2) @ inverse
    levels, p = inverse.shape[:2]
    if k == 1:
        return result
    # L_i0 L_00^{-1}, still block-sparse, for every later block row i
    scaled = [_times_block_diagonal(L[i][0], inverse) for i in range(1, k)]
    for start in range(0, levels, LEVEL_CHUNK):
        stop = min(start + LEVEL_CHUNK, levels)
        columns = slice(start * p, stop * p)
        ys: list[np.ndarray] = []
        for i in range(1, k):
            rhs = scaled[i - 1][:, columns]
            rhs = rhs.toarray() if hasattr(rhs, "toarray") else rhs
            for m in range(1, i):
                rhs = rhs + L[i][m] @ ys[m - 1]
            ys.append(-lower_solve(L[i][i], rhs))
        for y in ys:
            blocks = y.reshape(y.shape[0], stop - start, p)
            result[start:stop] += np.einsum("qla,qlb->lab", blocks, blocks)
    return result


def _times_block_diagonal(block, inverse: np.ndarray):
    """block @ blockdiag(inverse): block-sparse (as scipy CSC, for column slicing) or dense."""
    if isinstance(block, BlockSparse):
        return block.with_data(block.data @ inverse[block.indices]).to_scipy().tocsc()
    levels, p = inverse.shape[:2]
    rows = block.reshape(block.shape[0], levels, p)
    return np.einsum("rlc,lcd->rld", rows, inverse).reshape(block.shape)


def _dense_block(L: list, k: int, j: int, p: int) -> np.ndarray:
    diagonal: np.ndarray = L[j][j]
    ys = [lower_solve(diagonal, np.eye(diagonal.shape[0]))]
    for i in range(j + 1, k):
        rhs = sum(L[i][m] @ ys[m - j] for m in range(j, i))
        ys.append(-lower_solve(L[i][i], rhs))
    levels = diagonal.shape[0] // p
    result = np.zeros((levels, p, p))
    for y in ys:
        blocks = y.reshape(y.shape[0], levels, p)
        result += np.einsum("qla,qlb->lab", blocks, blocks)
    return result
