"""The blocked Cholesky factor L(theta) and the solves of the mixed-model equations with it.

With T = W^1/2 Z Lambda (W the residual structure's weights) and X~ = W^1/2 X, the
mixed-model equations of the spherical random effects v and the fixed effects beta have the
matrix

    K = [[T'T + I, T'X~], [X~'T, X~'X~]] = L_K L_K',

whose Cholesky factor L_K is L without its last row and column (the response's). Block row
b < k of L belongs to grouping factor b; block row k is [Q y], where the fixed-effects
columns are the orthonormal Q = X~ R^-1 of ``fixed_basis`` R. The solves take and return
vectors in the columns of X: with D = blockdiag(I, R), K = D' K_Q D. ``solve`` is the one way the
package solves with K (or with its random-effects part M = T'T + I = L_Z L_Z'): prediction
intervals, leverage and Kenward-Roger all go through it, and no second factorization is made.
Reference: Bates et al. (2015), "Fitting Linear Mixed-Effects Models Using lme4", section 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .blocks import block_times, log_diagonal_sum, lower_solve, transpose_times, upper_solve

__all__ = ["Factor"]


@dataclass(frozen=True)
class Factor:
    """L(theta) in blocks: ``L[i][j]`` for i >= j; the last block row is [X y].

    Attributes:
        theta: the parameters it was computed at.
        lambdas: per grouping factor, the p x p relative covariance factor of one level.
        L: the blocks (``BlockDiagonal``, ``BlockSparse`` or dense arrays).
        fixed_basis: (p, p) upper-triangular R with X~ = Q R (Q the columns of L's last block
            row); None for R = I.
    """

    theta: np.ndarray
    lambdas: list
    L: list
    fixed_basis: np.ndarray | None = None

    @property
    def k(self) -> int:
        """The number of grouping factors."""
        return len(self.L) - 1

    @property
    def xy(self) -> np.ndarray:
        return self.L[-1][-1]

    @property
    def p(self) -> int:
        """The number of fixed effects."""
        return self.xy.shape[0] - 1

    def sizes(self) -> list[int]:
        """Rows of each random-effects block row (levels x p of its grouping factor)."""
        return [self.L[-1][j].shape[1] for j in range(self.k)]

    def logdet_z(self) -> float:
        """log|L_Z|^2 = log|T'T + I|."""
        return 2.0 * sum([log_diagonal_sum(self.L[b][b]) for b in range(self.k)])

    def logdet_x(self) -> float:
        """log|R_X|^2."""
        return 2.0 * float(np.log(np.diagonal(self.xy)[:-1]).sum())

    def pwrss(self) -> float:
        """Penalized weighted residual sum of squares r^2."""
        return float(self.xy[-1, -1] ** 2)

    # -- solves ------------------------------------------------------------------------------
    def _diagonal(self, i: int):
        """Diagonal block i of L_K (the fixed-effects rows of the last one)."""
        return self.L[i][i] if i < self.k else self.xy[: self.p, : self.p]

    def _below(self, i: int, j: int):
        """Block (i, j) of L_K, i > j."""
        return self.L[i][j] if i < self.k else self.L[i][j][: self.p]

    def leading_blocks(self, fixed: bool = True) -> tuple[list, dict]:
        """The blocks of L_K (``fixed``) or L_Z: (diagonal blocks, {(i, j): block below})."""
        blocks = self.k + 1 if fixed and self.p else self.k
        return ([self._diagonal(i) for i in range(blocks)],
                {(i, j): self._below(i, j) for i in range(blocks) for j in range(i)})

    def _split(self, rhs: np.ndarray, blocks: int) -> list[np.ndarray]:
        starts = np.cumsum([0] + self.sizes() + [self.p])[: blocks + 1]
        return [rhs[starts[i]:starts[i + 1]] for i in range(blocks)]

    def _basis_solve(self, x: np.ndarray, trans: str) -> np.ndarray:
        """R^-1 x (``trans="N"``) or R^-T x (``"T"``) for the fixed-effects rows x."""
        if self.fixed_basis is None or not len(x):
            return x
        return scipy.linalg.solve_triangular(self.fixed_basis, x, trans=trans,
                                             check_finite=False)

    def forward(self, rhs: np.ndarray, fixed: bool = True) -> np.ndarray:
        """(L_K^{-1} D^{-T}) rhs (or L_Z^{-1} rhs with ``fixed=False``), rhs of shape (rows,)
        or (rows, m) with rows = q [+ p], its fixed-effects rows in the columns of X: so that
        |forward(w)|^2 = w' K^{-1} w."""
        blocks = self.k + 1 if fixed else self.k
        parts = self._split(np.asarray(rhs, dtype=float), blocks)
        if fixed:
            parts[-1] = self._basis_solve(parts[-1], "T")
        out: list[np.ndarray] = []
        for i in range(blocks):
            value = parts[i]
            for j in range(i):
                value = value - block_times(self._below(i, j), out[j])
            out.append(lower_solve(self._diagonal(i), value))
        return np.concatenate(out)

    def backward(self, rhs: np.ndarray, fixed: bool = True) -> np.ndarray:
        """(D^{-1} L_K^{-T}) rhs (or L_Z^{-T} rhs with ``fixed=False``): its fixed-effects
        rows come out in the columns of X."""
        blocks = self.k + 1 if fixed else self.k
        parts = self._split(np.asarray(rhs, dtype=float), blocks)
        out: list[np.ndarray | None] = [None] * blocks
        for i in range(blocks - 1, -1, -1):
            value = parts[i]
            for j in range(i + 1, blocks):
                value = value - transpose_times(self._below(j, i), out[j])
            out[i] = upper_solve(self._diagonal(i), value)
        if fixed:
            out[-1] = self._basis_solve(out[-1], "N")
        return np.concatenate(out)

    def solve(self, rhs: np.ndarray, fixed: bool = True) -> np.ndarray:
        """x with K x = rhs (``fixed=False``: M x = rhs, M = T'T + I the random-effects part).

        Args:
            rhs: (q + p,) or (q + p, m); (q,) or (q, m) with ``fixed=False``. Rows follow
                the random-effects blocks (level-major within each grouping factor), then the
                fixed effects.

        Returns:
            an array of the shape of ``rhs``.
        """
        return self.backward(self.forward(rhs, fixed), fixed)

    def response_solution(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """beta and the spherical random effects v (u = Lambda v) at this theta: the solution
        of L_K' [v; beta] = the response's row of L.

        Returns:
            (beta, [v_1, ..., v_k]) with v_b of length q_b, level-major.
        """
        last = self.L[-1]
        row = np.concatenate([last[j][-1] for j in range(self.k)] + [self.xy[-1, : self.p]])
        solution = self.backward(row)
        q = sum(self.sizes())
        return solution[q:], self._split(solution[:q], self.k)
