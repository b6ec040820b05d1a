"""Penalized least squares: the matrix A, its blocked Cholesky factor L(theta), the objective.

With Z = [Z_1 .. Z_k] (one block per grouping factor) and Lambda(theta) block-diagonal,

    A = [Z X y]' [Z X y],      L L' = Lambda' A Lambda + I  (identity on the Z blocks only).

From L alone (Bates et al. 2015, section 3):

    log|L_Z|^2 = 2 sum log diag(L_Z),  log|R_X|^2 = 2 sum log diag(L_XX),  r^2 = L[-1, -1]^2,
    ML:   -2 log L = log|L_Z|^2 + n (1 + log(2 pi r^2 / n)),
    REML: log|L_Z|^2 + log|R_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p))).

A is built once, by accumulating over row chunks; each evaluation then costs nothing in n.
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.linalg.lapack import dpotrf as _potrf

from ..linalg.blocks import (
    BlockDiagonal,
    BlockSparse,
    cholesky,
    log_diagonal_sum,
    rank_update,
    rdiv,
)
from ..linalg.compiled import (
    SingleFactorObjective,
    SmallDenseObjective,
    load_dense_kernel,
    load_kernel,
)
from .structure import ReStructure
from ..linalg.factor import Factor
from ..linalg.threads import blas_threads_for

__all__ = ["PLSSystem", "sparse_z"]

CHUNK_ROWS = 250_000
DENSE_LIMIT = 40_000  # off-diagonal blocks with fewer entries are stored dense: faster kernels
DENSE_Z_ENTRIES = 200_000  # rows x q up to this: A is accumulated from dense Z blocks
# q + p + 1 up to this: one dense Cholesky per theta beats the block loop (two crossed factors,
# whole fits: size 63: 1.9 ms against 3.4 ms; 98: 3.4 against 3.8; 143: 7.6 against 4.8)
SMALL_SYSTEM = 100


class PLSSystem:
    """A = [Z X y]'[Z X y] in blocks, and L(theta) from it."""

    def __init__(self, structure: ReStructure, X: np.ndarray, y: np.ndarray,
                 weights: np.ndarray | None = None):
        """``weights``: prior weights w (Var(e_i) = sigma^2 / w_i), or None for ones. The
        system is that of the rows scaled by sqrt(w), whose -2 log-likelihood differs from
        that of the data by the constant sum(log w) (log|V| = log|W^1/2 V W^1/2| - sum log w)."""
        self.structure = structure
        self.n, self.p = X.shape
        self.blocks = structure.blocks
        self._root_w = None if weights is None else np.sqrt(np.asarray(weights, dtype=float))
        self._log_w = 0.0 if weights is None else float(np.sum(np.log(weights)))
        self._x = X if self._root_w is None else X * self._root_w[:, None]
        y = y if self._root_w is None else y * self._root_w
        self._accumulate(np.column_stack([self._x, y]))

    def _z_rows(self, block, rows: slice = slice(None)):
        """Rows of Z_b, scaled by sqrt(w) for a weighted system."""
        z = block.z_matrix(rows)
        if self._root_w is None:
            return z
        return sp.csr_array(sp.diags_array(self._root_w[rows]) @ z)

    # -- built once ----------------------------------------------------------------------------
    def _accumulate(self, xy: np.ndarray) -> None:
        k = len(self.blocks)
        diag = [np.zeros((b.nlevels, b.p, b.p)) for b in self.blocks]
        offdiag = {(i, j): None for i in range(k) for j in range(i)}
        xy_rows = [np.zeros((xy.shape[1], b.q)) for b in self.blocks]
        xy_xy = np.zeros((xy.shape[1], xy.shape[1]))
        for start in range(0, self.n, CHUNK_ROWS):
            rows = slice(start, min(start + CHUNK_ROWS, self.n))
            chunk = xy[rows]
            # small problems: Z_b as dense arrays (scipy's sparse overhead dominates there)
            dense = chunk.shape[0] * sum(b.q for b in self.blocks) <= DENSE_Z_ENTRIES
            zs = [None if dense else self._z_rows(b, rows) for b in self.blocks]
            for b, block in enumerate(self.blocks):
                codes, values = block.codes[rows], block.values[rows]
                if self._root_w is not None:
                    values = values * self._root_w[rows, None]
                if dense:
                    zs[b] = _dense_z(codes, values, block.q)
                for r in range(block.p):
                    for c in range(r + 1):
                        sums = np.bincount(codes, values[:, r] * values[:, c], block.nlevels)
                        diag[b][:, r, c] += sums
                        if r != c:
                            diag[b][:, c, r] += sums
                xy_rows[b] += (zs[b].T @ chunk).T
                for j in range(b):
                    product = zs[b].T @ zs[j]
                    product = product if dense else product.tocsr()
                    offdiag[b, j] = product if offdiag[b, j] is None else offdiag[b, j] + product
            xy_xy += chunk.T @ chunk
        self.A_diag = diag
        # later diagonal blocks fill in, so their A is kept dense (built once here)
        self.A_dense_diagonal = {j: BlockDiagonal(diag[j]).toarray() for j in range(1, k)}
        self.A_off = {(i, j): self._offdiagonal_block(m, i, j) for (i, j), m in offdiag.items()}
        self.A_xy = xy_rows
        self.A_xyxy = xy_xy
        self._set_fast_paths()

    def _set_fast_paths(self) -> None:
        """Cheaper ways to the same objective: a compiled loop for one grouping factor, one
        dense Cholesky for small models (both equal the block loop to rounding). Also the rows
        of the factor's largest dense diagonal block (the grouping factors after the first,
        which fill in, and [X y]), which decides the BLAS threads of ``factor``."""
        self.largest_dense_block = max([b.q for b in self.blocks[1:]] + [self.p + 1])
        self._single = self._small = None
        if len(self.blocks) == 1:
            kernel = load_kernel()
            if kernel is not None:
                self._single = SingleFactorObjective(kernel, self.blocks[0], self.A_diag[0],
                                                     self.A_xy[0], self.A_xyxy, self.n, self.p)
                return
        if sum(b.q for b in self.blocks) + self.A_xyxy.shape[0] <= SMALL_SYSTEM:
            small = _SmallSystem(self)
            kernel = load_dense_kernel()
            self._small = small if kernel is None else SmallDenseObjective(
                kernel, small.full, small.rows, small.cols, small.index, small.q, self.n, self.p)

    def _offdiagonal_block(self, product, i: int, j: int):
        """Z_i'Z_j as stored: block-sparse below the first block when large, else dense."""
        if j == 0 and product.shape[0] * product.shape[1] > DENSE_LIMIT:
            return BlockSparse.from_scipy(sp.csr_array(product),
                                          (self.blocks[i].p, self.blocks[j].p))
        return product if isinstance(product, np.ndarray) else product.toarray()

    def with_response(self, y: np.ndarray) -> "PLSSystem":
        """A copy for a new response: Z'y, X'y and y'y are recomputed, the rest is shared."""
        other = copy.copy(self)
        other.A_xy = [a.copy() for a in self.A_xy]
        other.A_xyxy = self.A_xyxy.copy()
        if self._root_w is not None:
            y = y * self._root_w
        for b, block in enumerate(self.blocks):
            other.A_xy[b][-1] = self._z_rows(block).T @ y
        x = self._x
        other.A_xyxy[-1, :-1] = other.A_xyxy[:-1, -1] = x.T @ y
        other.A_xyxy[-1, -1] = y @ y
        other._set_fast_paths()
        return other

    def with_fixed_transform(self, transform: np.ndarray) -> "PLSSystem":
        """A copy whose [X y] is [X y] @ transform ((p + 1) x (p' + 1), last column the new
        response): e.g. dropping a column of X and moving it, times a constant, into y.
        Only the [X y] blocks of A change, by A -> T' A (T)."""
        other = copy.copy(self)
        other.A_xy = [transform.T @ a for a in self.A_xy]
        other.A_xyxy = transform.T @ self.A_xyxy @ transform
        other.p = transform.shape[1] - 1
        other._x = self._x @ transform[:-1, :-1]
        other._set_fast_paths()
        return other

    # -- per theta -----------------------------------------------------------------------------
    def factor(self, theta: np.ndarray) -> Factor:
        """The blocked Cholesky factor of Lambda' A Lambda + I (Z part) for this theta.

        Raises:
            numpy.linalg.LinAlgError: if [X y] is numerically rank deficient at this theta.
        """
        lambdas = self.structure.parameters.lambdas(theta)
        k = len(self.blocks)
        L = [[None] * (i + 1) for i in range(k + 1)]
        with blas_threads_for(self.largest_dense_block):
            for j in range(k + 1):
                diagonal = self._scaled_diagonal(j, lambdas)
                for m in range(j):
                    diagonal = rank_update(diagonal, L[j][m], L[j][m])
                L[j][j] = cholesky(diagonal)
                for i in range(j + 1, k + 1):
                    below = self._scaled_offdiagonal(i, j, lambdas)
                    for m in range(j):
                        below = rank_update(below, L[i][m], L[j][m])
                    L[i][j] = rdiv(below, L[j][j])
        return Factor(theta, lambdas, L)

    def _scaled_diagonal(self, j: int, lambdas):
        """Lambda_j' A_jj Lambda_j + I, or A for the [X y] block."""
        if j == len(self.blocks):
            return self.A_xyxy
        lam = lambdas[j]
        if j == 0:
            return BlockDiagonal(_scale_blocks(self.A_diag[0], lam))
        dense = self.A_dense_diagonal[j]
        levels, p = self.blocks[j].nlevels, self.blocks[j].p
        scaled = _scale_dense(dense, lam, lam, levels, p, levels, p)
        scaled[np.diag_indices_from(scaled)] += 1.0
        return scaled

    def _scaled_offdiagonal(self, i: int, j: int, lambdas):
        """Lambda_i' A_ij Lambda_j (no Lambda on the left for the [X y] block row)."""
        lam_j = lambdas[j]
        block_j = self.blocks[j]
        if i == len(self.blocks):
            rows = self.A_xy[j].reshape(-1, block_j.nlevels, block_j.p)
            return (rows @ lam_j).reshape(self.A_xy[j].shape)
        lam_i = lambdas[i]
        stored = self.A_off[i, j]
        if isinstance(stored, BlockSparse):
            return stored.with_data(lam_i.T @ stored.data @ lam_j)
        block_i = self.blocks[i]
        return _scale_dense(stored, lam_i, lam_j, block_i.nlevels, block_i.p, block_j.nlevels,
                            block_j.p)

    # -- the criterion -------------------------------------------------------------------------
    def objective(self, theta: np.ndarray, reml: bool) -> float:
        """REML criterion or -2 log-likelihood at theta (the profiled deviance)."""
        if self._single is not None:
            return self._single(theta, reml) - self._log_w
        if self._small is not None:
            return self._small(theta, reml) - self._log_w
        try:
            factor = self.factor(theta)
        except np.linalg.LinAlgError:
            return np.inf
        return self.objective_from(factor, reml)

    def objective_from(self, factor: Factor, reml: bool) -> float:
        r2 = factor.pwrss()
        if reml:
            dof = self.n - self.p
            logdet = factor.logdet_z() + factor.logdet_x()
            return logdet + dof * (1.0 + np.log(2 * np.pi * r2 / dof)) - self._log_w
        return (factor.logdet_z() + self.n * (1.0 + np.log(2 * np.pi * r2 / self.n))
                - self._log_w)

    def deviance(self, theta: np.ndarray, sigma: float, reml: bool) -> float:
        """-2 log-likelihood (or REML criterion) at (theta, sigma), not profiled over sigma:

            log|L_Z|^2 [+ log|R_X|^2] + d log(2 pi sigma^2) + r^2 / sigma^2 - sum(log w),
            d = n [- p].
        """
        factor = self.factor(theta)
        dof = self.n - self.p if reml else self.n
        logdet = factor.logdet_z() + (factor.logdet_x() if reml else 0.0)
        return (logdet + dof * np.log(2 * np.pi * sigma ** 2) + factor.pwrss() / sigma ** 2
                - self._log_w)

    def unscaled_vcov(self, factor: Factor) -> np.ndarray:
        """(R_X R_X')^{-1}: Var(beta-hat) / sigma^2 at this theta."""
        rx_inverse = scipy.linalg.solve_triangular(factor.xy[: self.p, : self.p],
                                                   np.eye(self.p), lower=True)
        return rx_inverse.T @ rx_inverse


def _dense_z(codes: np.ndarray, values: np.ndarray, q: int) -> np.ndarray:
    """Z_b as a dense (rows, q) array: row i has its values at its level's p columns."""
    n, p = values.shape
    z = np.zeros((n, q))
    z[np.arange(n)[:, None], codes[:, None] * p + np.arange(p)] = values
    return z


class _SmallSystem:
    """The whole of A as one dense matrix, for models so small that one LAPACK Cholesky of
    T' A T + diag(I, 0) (T = blockdiag(Lambda, I)) costs less than the block loop's calls.
    Used for the objective only; it equals the blocked computation to rounding."""

    def __init__(self, system: "PLSSystem"):
        blocks = system.blocks
        starts = np.cumsum([0] + [b.q for b in blocks])
        q = int(starts[-1])
        size = q + system.A_xyxy.shape[0]
        full = np.zeros((size, size))
        for i, block in enumerate(blocks):
            levels, p = block.nlevels, block.p
            within = starts[i] + np.arange(levels)[:, None, None] * p
            rows_ = within + np.arange(p)[None, :, None]
            cols_ = within + np.arange(p)[None, None, :]
            full[rows_, cols_] = system.A_diag[i]
            for j in range(i):
                stored = system.A_off[i, j]
                dense = stored.toarray() if isinstance(stored, BlockSparse) else stored
                full[starts[i]:starts[i + 1], starts[j]:starts[j + 1]] = dense
            full[q:, starts[i]:starts[i + 1]] = system.A_xy[i]
        full[q:, q:] = system.A_xyxy
        self.full = np.tril(full) + np.tril(full, -1).T
        rows, cols, index = [], [], []
        for i, block in enumerate(blocks):
            offsets = starts[i] + np.arange(block.nlevels)[:, None] * block.p
            rows.append((offsets + block.pattern.rows).ravel())
            cols.append((offsets + block.pattern.cols).ravel())
            index.append(np.tile(block.pattern.index, block.nlevels))
        self.rows, self.cols = np.concatenate(rows), np.concatenate(cols)
        self.index = np.concatenate(index)
        self.q, self.size, self.n, self.p = q, size, system.n, system.p
        self.diagonal = np.arange(q) * (size + 1)  # flat positions of the Z part's diagonal
        self.transform = np.eye(size)  # its Lambda entries are overwritten for every theta

    def __call__(self, theta: np.ndarray, reml: bool) -> float:
        self.transform[self.rows, self.cols] = theta[self.index]
        scaled = self.transform.T @ (self.full @ self.transform)
        scaled.ravel()[self.diagonal] += 1.0
        factor, info = _potrf(scaled, lower=1, overwrite_a=1)
        if info != 0:
            return np.inf
        diagonal = np.diagonal(factor)
        r2 = diagonal[-1] ** 2
        logdet = 2.0 * np.log(diagonal[: -1 if reml else self.q]).sum()
        dof = self.n - self.p if reml else self.n
        return float(logdet + dof * (1.0 + np.log(2 * np.pi * r2 / dof)))


def _scale_blocks(blocks: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """lam' B_l lam + I for each (p x p) block B_l.

    With row-major vec, vec(lam' B lam) = vec(B) kron(lam, lam): one product for all levels.
    """
    levels, p = blocks.shape[:2]
    if p == 1:
        return blocks * (lam[0, 0] ** 2) + 1.0
    kron = (lam[:, None, :, None] * lam[None, :, None, :]).reshape(p * p, p * p)
    flat = blocks.reshape(levels, p * p) @ kron
    flat[:, :: p + 1] += 1.0
    return flat.reshape(levels, p, p)


def _scale_dense(a: np.ndarray, lam_i, lam_j, li: int, pi: int, lj: int, pj: int) -> np.ndarray:
    """Lambda_i' A Lambda_j for dense A with level-major columns."""
    if pi == 1 and pj == 1:
        return a * (lam_i[0, 0] * lam_j[0, 0])
    blocks = a.reshape(li, pi, lj, pj)
    return np.einsum("ba,ibjc,cd->iajd", lam_i, blocks, lam_j).reshape(a.shape)


def sparse_z(structure: ReStructure) -> sp.csr_array:
    """Z = [Z_1 .. Z_k] as one sparse matrix."""
    return sp.hstack([b.z_matrix() for b in structure.blocks], format="csr")
