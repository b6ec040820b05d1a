"""The selected inverse of a blocked Cholesky factor: (L L')^{-1} where L is stored.

The recurrence of Takahashi, Fagan and Chin (1973), by block columns from the last: with
Sigma = (L L')^{-1}, Sigma L = L^{-T} is upper triangular, so for i >= j

    Sigma_ij = -(sum_{m > j} Sigma_im L_mj) L_jj^{-1}                      (i > j)
    Sigma_jj = L_jj^{-T} L_jj^{-1} - (sum_{m > j} Sigma_mj' L_mj) L_jj^{-1}

(Sigma_im = Sigma_mi' for m > i). Each block of Sigma is computed only where L stores one:
dense blocks of L give dense blocks of Sigma; the first diagonal block (``BlockDiagonal``)
gives its level-diagonal blocks only; a ``BlockSparse`` L[i][0] gives Sigma_i0 on its own
pattern, each entry a sum over the pairs of stored entries sharing a column (the pair plan
of ``linalg.blocks``, which the NumPy rank update uses too). So the work is that of the
factorization, and no dense q x q matrix is formed for a sparse block. Those entries are all
the gradient of the profiled criterion needs (``core.gradient``): A's pattern lies within L's.

The blocks are handed in as for ``Factor``: the diagonal blocks and those below them of the
leading block rows (the random effects, and for REML the fixed effects too).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dsyrk as _syrk
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dpotri as _potri

from ..threads import threads_for_block
from .blocks import TILE_BYTES, BlockDiagonal, BlockSparse, times_blockdiag
from .compiled import column_gathers_kernel, dense_gathers_kernel

__all__ = ["level_blocks", "selected_inverse"]

#: the numbers of left and of right that a restricted product by a dense right gathers at a
#: time (2 MB each): all of them at once, with every entry's row and column, took 43 MB at the
#: gradient's peak for the g2 x g1 block of 10^6 rows crossed in 50,000 x 2,000 levels
GATHERED = 2**18

#: the rows of a dense diagonal block of Sigma updated at a time: a band, not a second copy of
#: the block (32 MB at 2,000 levels)
TILE_ROWS = 256


def selected_inverse(diagonal: list, below: dict) -> dict:
    """Sigma = (L L')^{-1} on the pattern of the blocked lower-triangular L.

    Args:
        diagonal: L_jj for each block row j: ``BlockDiagonal`` for j = 0, dense after.
        below: L_ij (i > j) by (i, j): ``BlockSparse`` or dense for j = 0, dense after.

    Returns:
        Sigma_ij (i >= j) by (i, j): a ``BlockDiagonal`` of the level-diagonal blocks for
        (0, 0), the type of L_i0 (on its pattern) for (i, 0), dense arrays otherwise.

    Raises:
        TypeError: for block types the recurrence has no kernel for (a dense L_jj is required
            for j > 0).
    """
    nb = len(diagonal)
    sigma: dict = {}

    def full(i: int, m: int):
        return sigma[i, m] if i >= m else sigma[m, i].T

    for j in range(nb - 1, 0, -1):
        if not isinstance(diagonal[j], np.ndarray):
            raise TypeError(f"no selected-inverse kernel for a diagonal block of type "
                            f"{type(diagonal[j]).__name__} after the first")
        rows = diagonal[j].shape[0]
        with threads_for_block(rows):
            own = _potri(diagonal[j], lower=1)[0]  # L_jj^-T L_jj^-1, lower triangle
        later = range(j + 1, nb)
        if later:  # Y = L_{>j,j} L_jj^-1; Sigma_{>j,j} = -Sigma_{>j,>j} Y
            below_j = np.vstack([below[m, j] for m in later])
            scaled = scipy.linalg.solve_triangular(diagonal[j], below_j.T, lower=True,
                                                   trans="T", check_finite=False).T
            rest = np.block([[full(i, m) for m in later] for i in later])
            column = -(rest @ scaled)
            own = _plus_quadratic_form(own, scaled, rest, column)
            starts = np.cumsum([0] + [below[m, j].shape[0] for m in later])
            for m, start, stop in zip(later, starts[:-1], starts[1:]):
                sigma[m, j] = column[start:stop]
        own = _symmetric_from_lower(own)
        sigma[j, j] = own
    _first_column(diagonal[0], below, sigma, full, nb)
    return sigma


def _plus_quadratic_form(own: np.ndarray, scaled: np.ndarray, rest: np.ndarray,
                         column: np.ndarray) -> np.ndarray:
    """own + Y' R Y on own's lower triangle (in place where LAPACK allows), for Y = ``scaled``
    (k, n) and R = ``rest`` (k, k) positive definite, ``column`` = -R Y: by its Cholesky
    factor C, (C' Y)' (C' Y) with BLAS's rank-k update (dsyrk, half the flops of a full
    product and no band loop); where R's factor fails (rounding in a nearly singular R), by
    bands of ``TILE_ROWS`` rows of -Y' column, not a second dense n x n."""
    root, info = _potrf(rest, lower=1)
    if info == 0:
        half = np.tril(root).T @ scaled
        return _syrk(1.0, half, beta=1.0, c=own, trans=1, lower=1, overwrite_c=1)
    for start in range(0, own.shape[0], TILE_ROWS):
        own[start:start + TILE_ROWS] -= scaled[:, start:start + TILE_ROWS].T @ column
    return own


def _symmetric_from_lower(a: np.ndarray, tile: int = TILE_ROWS) -> np.ndarray:
    """a with its upper triangle replaced by the transpose of its lower one, in place, a band
    of ``tile`` rows at a time (``np.tril(a) + np.tril(a, -1).T`` takes two more copies of a:
    64 MB at 2,000 x 2,000)."""
    n = a.shape[0]
    for start in range(0, n, tile):
        stop = min(start + tile, n)
        band = a[start:stop, start:stop]
        band[...] = np.tril(band) + np.tril(band, -1).T
        a[start:stop, stop:] = a[stop:, start:stop].T
    return a


def _first_column(first: BlockDiagonal, below: dict, sigma: dict, full, nb: int) -> None:
    """Sigma_i0 (i > 0) on L_i0's pattern and the level-diagonal blocks of Sigma_00."""
    inverse = first.inverse_blocks()  # (levels, p, p) lower triangular
    scaled = {m: times_blockdiag(below[m, 0], inverse) for m in range(1, nb)}  # L_m0 L_00^-1
    for i in range(1, nb):
        target = below[i, 0]
        sparse = [m for m in range(1, nb) if isinstance(scaled[m], BlockSparse)]
        dense = [m for m in range(1, nb) if m not in sparse]
        parts = [_restricted_product(full(i, m), scaled[m], target, symmetric=i == m)
                 for m in sparse]
        if dense:  # one product by the dense blocks side by side: one gather, not one each
            parts.append(_restricted_product(np.hstack([full(i, m) for m in dense]),
                                             np.vstack([scaled[m] for m in dense]), target))
        sigma[i, 0] = _negated(target, sum(parts[1:], parts[0]))
    own = np.einsum("lba,lbc->lac", inverse, inverse)  # L_00^-T L_00^-1, per level
    for m in range(1, nb):
        own = own - _column_block_products(sigma[m, 0], scaled[m], first.data.shape[0])
    sigma[0, 0] = BlockDiagonal(0.5 * (own + np.swapaxes(own, 1, 2)))


def _restricted_product(left: np.ndarray, right, target, symmetric: bool = False):
    """(left @ right) where ``target`` stores entries: dense for a dense target, else the
    values of target's stored entries (flattened as its ``data``). ``symmetric``: left is
    symmetric and right has target's pattern (Sigma_ii L_i0 L_00^-1), so that each pair of
    stored entries of a column serves once."""
    if isinstance(target, np.ndarray):
        if isinstance(right, BlockSparse):
            return (right.to_scipy().T @ left.T).T
        return left @ right
    if not isinstance(target, BlockSparse):
        raise TypeError(f"no selected-inverse kernel for a block of type "
                        f"{type(target).__name__}")
    if isinstance(right, BlockSparse):
        # entry (r, c) of target: sum over stored (s, c) of right of left[r, s] right[s, c]
        kernel = column_gathers_kernel()
        if kernel is not None:
            return _by_columns(kernel, left, right, target, symmetric)
        if symmetric:
            return _symmetric_restricted_product(left, right, target)
        plan = target.product_plan(right, symmetric=False)
        values = left.ravel()[plan.target] * right.data.ravel()[plan.right]
        return np.bincount(plan.left, values, target.data.size)
    columns = target.by_columns()  # the entries' rows and columns, a few at a time
    out = np.empty(target.data.size)
    kernel = dense_gathers_kernel()
    if kernel is not None:
        kernel(out, np.ascontiguousarray(left), np.ascontiguousarray(right.T), columns.start,
               columns.rows, columns.positions)
        return out
    step = max(1, GATHERED // left.shape[1])
    for start in range(0, len(columns.rows), step):
        part = np.arange(start, min(start + step, len(columns.rows)))
        cols = np.searchsorted(columns.start, part, side="right") - 1
        out[columns.positions[part]] = np.einsum("ek,ke->e", left[columns.rows[part]],
                                                 right[:, cols])
    return out


def _by_columns(kernel, left: np.ndarray, right: BlockSparse, target: BlockSparse,
                symmetric: bool) -> np.ndarray:
    """``_restricted_product`` by the compiled loop over each column's pairs of elements: the
    pair plan's sums in its order, without its three integers per pair (for the g2 x g1 block
    of 10^6 rows crossed in 50,000 x 2,000 levels, 250 MB kept and 900 MB to build them)."""
    out = np.empty(target.data.size)
    columns, right_columns = target.by_columns(), right.by_columns()
    tile = max(1, TILE_BYTES // (8 * left.shape[1]))
    kernel(out, left, columns.start, columns.rows, columns.positions, right_columns.start,
           right_columns.rows, right_columns.values(right.data), symmetric, tile)
    return out


def _symmetric_restricted_product(left: np.ndarray, right: BlockSparse,
                                  target: BlockSparse) -> np.ndarray:
    """The ``symmetric`` case of ``_restricted_product``: each pair (e, f) of stored entries
    of one column, rows r >= s, adds left[r, s] right[f] to e and left[r, s] right[e] to f
    (once when e is f)."""
    plan = target.product_plan(right, symmetric=True)
    weights = left.ravel()[plan.target]
    data = right.data.ravel()
    out = np.bincount(plan.left, weights * data[plan.right], target.data.size)
    weights[plan.left == plan.right] = 0.0
    return out + np.bincount(plan.right, weights * data[plan.left], target.data.size)


def _negated(target, values):
    """-values as a block of target's type."""
    if isinstance(target, BlockSparse):
        return target.with_data(-values.reshape(target.data.shape))
    return -values


def _column_block_products(a, b, levels: int) -> np.ndarray:
    """(levels, p, p): for each column block l, a[:, l]' b[:, l] (a, b of one pattern)."""
    if isinstance(a, BlockSparse):
        products = np.einsum("bsa,bsc->bac", a.data, b.data)
        p = products.shape[1]
        out = np.zeros((levels, p * p))
        for e in range(p * p):
            out[:, e] = np.bincount(a.indices, products[:, e // p, e % p], levels)
        return out.reshape(levels, p, p)
    rows = a.shape[0]
    p = a.shape[1] // levels
    return np.swapaxes(a.reshape(rows, levels, p), 0, 1).transpose(0, 2, 1) @ np.swapaxes(
        b.reshape(rows, levels, p), 0, 1)


def level_blocks(block, levels: int) -> np.ndarray:
    """(levels, p, p) the level-diagonal blocks of a square block (``BlockDiagonal`` or
    dense, level-major)."""
    if isinstance(block, BlockDiagonal):
        return block.data
    p = block.shape[0] // levels
    return np.einsum("lalb->lab", block.reshape(levels, p, levels, p))
