"""The criterion's pieces for one-grouping-factor and small models as compiled loops (numba).

With a single grouping factor, L_Z is block-diagonal, one p x p block per level, so

    log|L_Z|^2 = sum_l log|M_l|,   M_l = lam' A_l lam + I,
    L_XX L_XX' = A_XX - sum_l B_l' M_l^{-1} B_l,   B_l = lam' (Z_l' [X y]),

and the whole evaluation is a loop over levels of p x p algebra followed by one small Cholesky:
a few microseconds, where the same steps as NumPy calls cost more in call overhead than in
arithmetic. Most mixed models have one grouping factor; the others use the blocked path.

The kernels are used once ``load_kernels`` has run in the process; until then fits use the
NumPy back-ends (``core.pls``, ``core.marginal``), which give the same criterion to rounding.
A fit never loads them itself: in a process that fits a few models they cost more than they
save. Measured on the 2-core reference machine with numba 0.68:

* importing numba takes 0.15-0.35 s; the first call of a kernel compiles it, 1.2-1.7 s for
  the single-factor one (with numba's own start-up), 0.4-0.7 s more for the dense one,
  0.7-1.2 s for the marginal one; from numba's on-disk cache (``cache=True``) the first
  costs 0.2-0.4 s;
* per evaluation of sleepstudy's ``Reaction ~ Days + (Days | Subject)`` (q = 36), the
  single-factor kernel takes 2.5 us, NumPy's dense back-end 20 us, the blocked factor 56 us:
  whole fits in 1.4 against 3.2 ms, a bootstrap of 200 refits in 0.25 against 0.6 s. The
  kernels' lead narrows with size (one factor of 10,000 levels with 3 random effects: 2.4
  against 3.8 ms per evaluation; of 3,000 levels with one, the kernel is slower).

So compiling pays back after some 1,000 fits of a small model, and within one fit only for
models of some 10^5 levels; a cached kernel still costs 0.4-0.7 s per process (numba's import
and start-up, which no query of its cache avoids), more than a small fit. The README's
``mixedmodels fit "Reaction ~ Days + (Days | Subject)" --data sleepstudy`` took 3.2 s of CPU
on its first run after ``pip install`` with the kernels (3.0 s wall on a quiet machine; two
compilations: 2.7 s once theta goes in as a writable copy, one compilation) and 1.5 s on later
runs; without them 0.9 s on every run. A process that fits many models (a long bootstrap, a
simulation study, speed benchmarks) calls ``load_kernels()`` first; parallel workers follow
their caller (``parallel.executor``). Without numba, or if compiling fails, the NumPy back-ends
are used all the same.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SingleFactorObjective", "SmallDenseObjective", "dense_kernel", "load_kernels",
           "marginal_kernel", "single_factor_kernel"]

_KERNEL = None
_DENSE_KERNEL = None
_MARGINAL_KERNEL = None


def _cholesky(matrix, size):
    """Lower Cholesky of matrix[:size, :size] in place, also updating the rows below it;
    returns 2 sum log diag, or NaN if the matrix is not positive definite."""
    logdet = 0.0
    for j in range(size):
        diagonal = matrix[j, j]
        for k in range(j):
            diagonal -= matrix[j, k] * matrix[j, k]
        if diagonal <= 0.0:
            return math.nan
        diagonal = math.sqrt(diagonal)
        matrix[j, j] = diagonal
        logdet += 2.0 * math.log(diagonal)
        for i in range(j + 1, matrix.shape[0]):
            value = matrix[i, j]
            for k in range(j):
                value -= matrix[i, k] * matrix[j, k]
            matrix[i, j] = value / diagonal
    return logdet


def _cholesky_last(matrix, size):
    """The last pivot after ``_cholesky(matrix, size - 1)``: set in place, and returned."""
    last = size - 1
    value = matrix[last, last]
    for k in range(last):
        value -= matrix[last, k] * matrix[last, k]
    matrix[last, last] = math.sqrt(value) if value > 0.0 else 0.0
    return value


def _single_factor_pieces(theta, lam_rows, lam_cols, lam_index, blocks, cross, xy):
    """The criterion's pieces (log|L_Z|^2, log|R_X|^2, r^2); r^2 = -1 if a Cholesky fails."""
    levels, p = blocks.shape[0], blocks.shape[1]
    m = xy.shape[0]
    lam = np.zeros((p, p))
    for k in range(lam_rows.shape[0]):
        lam[lam_rows[k], lam_cols[k]] = theta[lam_index[k]]
    schur = xy.copy()
    logdet_z = 0.0
    block = np.empty((p, p))
    scaled_cross = np.empty((p, m))
    for level in range(levels):
        # M = lam' A lam + I, lower triangle
        for i in range(p):
            for j in range(i + 1):
                total = 0.0
                for a in range(p):
                    for b in range(p):
                        total += lam[a, i] * blocks[level, a, b] * lam[b, j]
                block[i, j] = total + (1.0 if i == j else 0.0)
        logdet = _cholesky(block, p)
        if math.isnan(logdet):
            return 0.0, 0.0, -1.0
        logdet_z += logdet
        # W = L^{-1} lam' C, then schur -= W' W
        for i in range(p):
            for c in range(m):
                total = 0.0
                for a in range(p):
                    total += lam[a, i] * cross[level, a, c]
                for k in range(i):
                    total -= block[i, k] * scaled_cross[k, c]
                scaled_cross[i, c] = total / block[i, i]
        for r in range(m):
            for c in range(r + 1):
                total = 0.0
                for k in range(p):
                    total += scaled_cross[k, r] * scaled_cross[k, c]
                schur[r, c] -= total
    logdet_x = _cholesky(schur, m - 1)  # log|R_X|^2 from the first m - 1 pivots
    if math.isnan(logdet_x) or _cholesky_last(schur, m) <= 0.0:
        return 0.0, 0.0, -1.0
    return logdet_z, logdet_x, schur[m - 1, m - 1] ** 2


def _dense_pieces(theta, col_start, col_rows, col_index, full, q):
    """The same pieces from one dense matrix: T'AT + diag(I_q, 0), T = blockdiag(Lambda, I)
    given column by column (rows col_rows[col_start[c]:col_start[c + 1]], values theta at
    col_index, or 1 where col_index is -1), then one Cholesky."""
    size = full.shape[0]
    values = np.empty(col_rows.shape[0])
    for k in range(col_rows.shape[0]):
        values[k] = 1.0 if col_index[k] < 0 else theta[col_index[k]]
    scaled = np.empty((size, size))
    for j in range(size):
        for i in range(j, size):
            total = 1.0 if (i == j and i < q) else 0.0
            for a in range(col_start[i], col_start[i + 1]):
                row = col_rows[a]
                for b in range(col_start[j], col_start[j + 1]):
                    total += values[a] * full[row, col_rows[b]] * values[b]
            scaled[i, j] = total
    logdet = _cholesky(scaled, size - 1)
    if math.isnan(logdet) or _cholesky_last(scaled, size) <= 0.0:
        return 0.0, 0.0, -1.0
    logdet_z = 0.0
    for j in range(q):
        logdet_z += 2.0 * math.log(scaled[j, j])
    return logdet_z, logdet - logdet_z, scaled[size - 1, size - 1] ** 2


def _marginal_pieces(psi, real, z, lam, counts, pieces, size):
    """The criterion's pieces from the marginal covariance of K keys of padded units
    (``core.marginal``): per key V = Psi + (Z lam)(Z lam)' (identity on padding rows), its
    Cholesky factor, log|V| times the key's count, and V^-1 contracted with the key's pieces
    into the (size x size) [X y]' V^-1 [X y]; then its Cholesky factor."""
    keys, m = psi.shape[0], psi.shape[1]
    pz = z.shape[2]
    total = np.zeros((size, size))
    flat = total.reshape(size * size)
    work = np.empty((m, m))
    inverse = np.empty((m, m))
    zl = np.empty((m, pz))
    logdet_v = 0.0
    for k in range(keys):
        for a in range(m):
            for c in range(pz):
                value = 0.0
                for e in range(pz):
                    value += z[k, a, e] * lam[e, c]
                zl[a, c] = value
        for a in range(m):
            for b in range(a + 1):
                if real[k, a] and real[k, b]:
                    value = psi[k, a, b]
                    for c in range(pz):
                        value += zl[a, c] * zl[b, c]
                else:
                    value = 1.0 if a == b else 0.0
                work[a, b] = value
        logdet = _cholesky(work, m)
        if math.isnan(logdet):
            return 0.0, 0.0, -1.0
        logdet_v += counts[k] * logdet
        for j in range(m):  # L^-1, lower triangular, by forward substitution
            for i in range(m):
                if i < j:
                    inverse[i, j] = 0.0
                    continue
                value = 1.0 if i == j else 0.0
                for t in range(j, i):
                    value -= work[i, t] * inverse[t, j]
                inverse[i, j] = value / work[i, i]
        base = k * m * m
        for a in range(m):
            for b in range(m):
                weight = 0.0  # (V^-1)_ab = sum_t L^-1[t, a] L^-1[t, b]
                for t in range(max(a, b), m):
                    weight += inverse[t, a] * inverse[t, b]
                if weight != 0.0:
                    row = base + a * m + b
                    for e in range(size * size):
                        flat[e] += weight * pieces[row, e]
    logdet_x = _cholesky(total, size - 1)
    if math.isnan(logdet_x) or _cholesky_last(total, size) <= 0.0:
        return 0.0, 0.0, -1.0
    return logdet_v, logdet_x, total[size - 1, size - 1] ** 2


def load_kernels() -> bool:
    """Use the compiled kernels in this process from now on (see the module docstring): import
    numba and wrap them, each compiled (or read from numba's cache) at its first call. False
    when numba is not available."""
    global _KERNEL
    if _KERNEL is None:
        try:
            import numba

            global _cholesky, _cholesky_last  # the kernels call the compiled helpers
            _cholesky = numba.njit(cache=True, nogil=True)(_cholesky)
            _cholesky_last = numba.njit(cache=True, nogil=True)(_cholesky_last)
            _KERNEL = numba.njit(cache=True, nogil=True)(_single_factor_pieces)
            global _DENSE_KERNEL, _MARGINAL_KERNEL
            _DENSE_KERNEL = numba.njit(cache=True, nogil=True)(_dense_pieces)
            _MARGINAL_KERNEL = numba.njit(cache=True, nogil=True)(_marginal_pieces)
        except Exception:  # noqa: BLE001 - no numba, or it cannot compile here: use NumPy
            _KERNEL = False
    return bool(_KERNEL)


def single_factor_kernel():
    """The compiled single-factor objective once ``load_kernels`` has loaded it, else None."""
    return _KERNEL or None


def dense_kernel():
    """The compiled dense objective once ``load_kernels`` has loaded it, else None."""
    return _DENSE_KERNEL if _KERNEL else None


def marginal_kernel():
    """The compiled marginal-pieces kernel once ``load_kernels`` has loaded it, else None."""
    return _MARGINAL_KERNEL if _KERNEL else None


class SingleFactorObjective:
    """The inputs of the compiled loop, laid out once per model."""

    name = "compiled single factor"

    def __init__(self, kernel, block, diag: np.ndarray, cross: np.ndarray, xy: np.ndarray):
        self.kernel = kernel
        pattern = block.pattern  # the factor is linear in theta: lam[rows, cols] = theta[index]
        self.lam_rows, self.lam_cols, self.lam_index = pattern.rows, pattern.cols, pattern.index
        self.blocks = np.ascontiguousarray(diag)
        levels, p = block.nlevels, block.p
        self.cross = np.ascontiguousarray(cross.reshape(-1, levels, p).transpose(1, 2, 0))
        self.xy = np.tril(xy) + np.tril(xy, -1).T

    def __call__(self, theta: np.ndarray) -> tuple[float, float, float]:
        """(log|L_Z|^2, log|R_X|^2, r^2) at theta; r^2 = -1 outside the domain. theta goes in
        as a writable copy: numba compiles a kernel once per argument type, and the optimizer
        passes read-only arrays, the convergence check writable ones."""
        return self.kernel(np.array(theta, dtype=np.float64), self.lam_rows, self.lam_cols,
                           self.lam_index, self.blocks, self.cross, self.xy)


class SmallDenseObjective:
    """The inputs of the compiled dense computation: A as one symmetric matrix, and T's
    pattern by columns (Z columns from Lambda's entries, then unit [X y] columns)."""

    name = "compiled dense"

    def __init__(self, kernel, full: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                 index: np.ndarray, q: int):
        self.kernel = kernel
        size = full.shape[0]
        extra = np.arange(q, size)
        rows = np.concatenate([rows, extra])
        cols = np.concatenate([cols, extra])
        index = np.concatenate([index, np.full(len(extra), -1)])
        order = np.argsort(cols, kind="stable")
        self.col_rows = rows[order].astype(np.int64)
        self.col_index = index[order].astype(np.int64)
        self.col_start = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=size))])
        self.full, self.q = full, q

    def __call__(self, theta: np.ndarray) -> tuple[float, float, float]:
        """(log|L_Z|^2, log|R_X|^2, r^2) at theta; r^2 = -1 outside the domain (theta copied
        as in ``SingleFactorObjective``)."""
        return self.kernel(np.array(theta, dtype=np.float64), self.col_start, self.col_rows,
                           self.col_index, self.full, self.q)
