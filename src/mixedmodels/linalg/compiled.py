"""The criterion's pieces for one-grouping-factor and small models as compiled loops (numba).

With a single grouping factor, L_Z is block-diagonal, one p x p block per level, so

    log|L_Z|^2 = sum_l log|M_l|,   M_l = lam' A_l lam + I,
    L_XX L_XX' = A_XX - sum_l B_l' M_l^{-1} B_l,   B_l = lam' (Z_l' [X y]),

and the whole evaluation is a loop over levels of p x p algebra followed by one small Cholesky:
a few microseconds, where the same steps as NumPy calls cost more in call overhead than in
arithmetic. The criterion's gradient is the same kind of loop (``_single_factor_gradient``:
4.5 us on sleepstudy's correlated slopes, where the dense system's takes 15). Most mixed
models have one grouping factor; the others use the blocked path, whose products of
block-sparse blocks (the factor's rank update in ``linalg.blocks``, the selected inverse's in
``linalg.selected_inverse``) are compiled too: NumPy's way, the pair plan, keeps three
integers per pair of stored elements that share a column. So is the division of a dense
block by the first factor's block-diagonal one (``_dense_times_blockdiag``), whose NumPy form
runs inner loops as short as the levels' blocks.

A process loads the kernels at its first fit of a system larger than ``core.pls.SMALL_SYSTEM``
rows (q + p + 1), where they pay at once. A small system's fits run on the NumPy back-ends, which
give the same criterion to rounding, until they have taken ``KERNELS_AFTER_SECONDS`` in all
(``count_numpy_seconds``): then the kernels load, as renting skis until the rent reaches their
price. The first fit of sleepstudy's ``Reaction ~ Days + (Days | Subject)`` in a new process
took 0.83-0.91 s with the kernels, loading them, and 0.03-0.04 s without; the next fit of
another shape 16-19 ms against 5-8 ms. Residual structures' marginal pieces wait for the
kernels in the same way, and a batch of refits fixes its back-ends before it starts
(``batch_policy``). A process that asked for the NumPy back-ends
(``prefer_numpy``: the command line, which fits one model per process) never loads them;
``load_kernels`` loads them at once (a benchmark's warm process). Measured on the 2-core
reference machine with numba 0.68:

* importing numba takes 0.15-0.35 s; the first call of a kernel compiles it, 1.2-1.7 s for
  the single-factor one (with numba's own start-up), 0.4-0.7 s more for the dense one,
  0.7-1.2 s for the marginal one; from numba's on-disk cache (``cache=True``) the first
  costs 0.2-0.4 s;
* per evaluation of sleepstudy's ``Reaction ~ Days + (Days | Subject)`` (q = 36), the
  single-factor kernel takes 2.5 us, NumPy's dense back-end 20 us, the blocked factor 56 us:
  whole fits in 1.4 against 3.2 ms, a bootstrap of 200 refits in 0.25 against 0.6 s. The
  kernels' lead narrows with size (one factor of 10,000 levels with 3 random effects: 2.4
  against 3.8 ms per evaluation; of 3,000 levels with one, the kernel is slower).

So a process that fits one small model is faster without the kernels: the README's
``mixedmodels fit "Reaction ~ Days + (Days | Subject)" --data sleepstudy`` took 3.2 s of CPU
on its first run after ``pip install`` with them (3.0 s wall on a quiet machine) and 1.5 s on
later runs (a cached kernel still costs 0.4-0.7 s per process: numba's import and start-up,
which no query of its cache avoids); without them 0.9 s on every run. A process that fits
models repeatedly (a notebook, a bootstrap, a simulation study) gains 2-3 times per fit from
its first dozens of fits on. Parallel workers follow their caller (``parallel.executor``).
Without numba, or if compiling fails, the NumPy back-ends are used all the same.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

from .symmetric import from_lower

__all__ = ["BATCH_KERNELS", "KERNELS_AFTER_SECONDS", "SingleFactorObjective",
           "SmallDenseObjective", "column_gathers_kernel", "column_pairs_kernel", "columns_of_t",
           "batch_policy", "count_numpy_seconds", "dense_blockdiag_kernel",
           "dense_gathers_kernel", "dense_gradient_kernel",
           "dense_kernel", "kernel_policy", "load_kernels", "marginal_kernel", "prefer_numpy",
           "single_factor_gradient_kernel", "single_factor_kernel"]

#: Seconds of small systems' optimizations on the NumPy back-ends after which a process loads
#: the kernels: by then the NumPy back-ends have cost about what loading costs (0.4-0.9 s
#: here). sleepstudy's correlated slopes: a whole fit in 8-10 ms on them, of which the
#: optimizer's 4.4-5.7, against 2 ms with the kernels; 0.5 s is 90-110 such fits, which cost
#: 0.6-0.8 s more than the kernels would.
KERNELS_AFTER_SECONDS = 0.5

#: A batch of at least this many tasks (a bootstrap's or a simulation's refits:
#: ``parallel.executor``) loads the kernels before it starts, unless the process prefers the
#: NumPy back-ends: 100 refits of sleepstudy's correlated slopes take 0.6-0.8 s more on them,
#: about what loading costs. A smaller batch runs on the back-ends of its start throughout.
BATCH_KERNELS = 100

_numpy_seconds = 0.0

_KERNEL = None
_AUTOLOAD = True
_DENSE_KERNEL = None
_DENSE_GRADIENT_KERNEL = None
_MARGINAL_KERNEL = None
_COLUMN_PAIRS_KERNEL = None
_COLUMN_GATHERS_KERNEL = None
_DENSE_GATHERS_KERNEL = None
_SINGLE_FACTOR_GRADIENT_KERNEL = None
_DENSE_BLOCKDIAG_KERNEL = None


def _cholesky(matrix, size, first, p):
    """Lower Cholesky of matrix[:size, :size] in place, also updating the rows below it;
    returns 2 sum log diag, or NaN if the matrix is not positive definite. Its leading
    ``first`` rows and columns are block-diagonal in p x p blocks (the levels of the first
    grouping factor; ``first`` = 0: none), whose zeros stay zero and are skipped."""
    rows = matrix.shape[0]
    logdet = 0.0
    for j in range(size):
        start = j - j % p if j < first else 0  # the column's first nonzero in row j
        diagonal = matrix[j, j]
        for k in range(start, j):
            diagonal -= matrix[j, k] * matrix[j, k]
        if diagonal <= 0.0:
            return math.nan
        diagonal = math.sqrt(diagonal)
        matrix[j, j] = diagonal
        logdet += 2.0 * math.log(diagonal)
        for i in range(j + 1, rows):
            if j < first and start + p <= i < first:  # another level of the first factor
                continue
            value = matrix[i, j]
            for k in range(start, j):
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


def _solve_transposed(lower, n, right, out):
    """out[:n] <- the solution x of L' x = right[:n], L = lower[:n, :n] (lower triangular)."""
    for i in range(n - 1, -1, -1):
        total = right[i]
        for k in range(i + 1, n):
            total -= lower[k, i] * out[k]
        out[i] = total / lower[i, i]


def _lower_inverse(lower, n, out):
    """out[:n, :n] <- the inverse of the lower triangular lower[:n, :n] (lower triangular;
    ``out``'s upper triangle is left as it is)."""
    for i in range(n):
        for j in range(i):
            total = 0.0
            for k in range(j, i):
                total -= lower[i, k] * out[k, j]
            out[i, j] = total / lower[i, i]
        out[i, i] = 1.0 / lower[i, i]


def _level_update(lam, a, c, block, scaled, schur):
    """One level l of a single grouping factor: ``block`` <- L_l, the lower Cholesky factor
    of M_l = lam' A_l lam + I (``a`` = A_l, p x p); ``scaled`` <- W_l = L_l^-1 lam' C_l (``c``
    = C_l, p x m); ``schur`` -= W_l' W_l (lower triangle). Returns log|M_l|, or NaN when the
    Cholesky fails."""
    p, m = a.shape[0], c.shape[1]
    for i in range(p):
        for j in range(i + 1):
            total = 0.0
            for x in range(p):
                for y in range(p):
                    total += lam[x, i] * a[x, y] * lam[y, j]
            block[i, j] = total + (1.0 if i == j else 0.0)
    logdet = _cholesky(block, p, 0, 1)
    if math.isnan(logdet):
        return logdet
    for i in range(p):
        for col in range(m):
            total = 0.0
            for x in range(p):
                total += lam[x, i] * c[x, col]
            for k in range(i):
                total -= block[i, k] * scaled[k, col]
            scaled[i, col] = total / block[i, i]
    for r in range(m):
        for col in range(r + 1):
            total = 0.0
            for k in range(p):
                total += scaled[k, r] * scaled[k, col]
            schur[r, col] -= total
    return logdet


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
    scaled = np.empty((p, m))
    for level in range(levels):
        logdet = _level_update(lam, blocks[level], cross[level], block, scaled, schur)
        if math.isnan(logdet):
            return 0.0, 0.0, -1.0
        logdet_z += logdet
    logdet_x = _cholesky(schur, m - 1, 0, 1)  # log|R_X|^2 from the first m - 1 pivots
    if math.isnan(logdet_x) or _cholesky_last(schur, m) <= 0.0:
        return 0.0, 0.0, -1.0
    return logdet_z, logdet_x, schur[m - 1, m - 1] ** 2


def _single_factor_gradient(entries, lam_rows, lam_cols, lam_index, blocks, cross, xy, reml,
                            dof, variance, gradient):
    """``_single_factor_pieces`` at the entries and, into ``gradient``, the criterion's
    derivatives by them: ``_dense_gradient``'s formulas with the levels uncoupled. With
    M_l = L_l L_l', W_l = L_l^-1 lam' C_l (its X columns W_X, its y column u), the X part of
    the factor R_X and beta from R_X' beta = (R's y row):

        v_l = L_l^-T (u - W_X beta),  rho_l = c_y - A_l lam v_l - C_X beta,
        Omega_S^-1's level block  L_l^-T (I + W_X Sxx W_X') L_l^-1,  with X: -L_l^-T W_X Sxx,

    Sxx = (R_X R_X')^-1 (REML; under ML, S is Z's rows only: L_l^-T L_l^-1 and no X part).
    An entry of lam at (a, b) gets 2 sum_i Omega_S^-1[b, i] (T'A)[i, a] - weight rho[a] v[b]
    from each level, weight 2 d / r^2 (profiled) or 2 / ``variance``. O(levels p^3) instead
    of the dense system's O((q + p)^3)."""
    levels, p, m = blocks.shape[0], blocks.shape[1], xy.shape[0]
    fixed = m - 1
    lam = np.zeros((p, p))
    for k in range(lam_rows.shape[0]):
        lam[lam_rows[k], lam_cols[k]] = entries[lam_index[k]]
    factors = np.zeros((levels, p, p))
    scaled = np.empty((levels, p, m))
    schur = xy.copy()
    logdet_z = 0.0
    for level in range(levels):
        logdet = _level_update(lam, blocks[level], cross[level], factors[level], scaled[level],
                               schur)
        if math.isnan(logdet):
            return 0.0, 0.0, -1.0
        logdet_z += logdet
    logdet_x = _cholesky(schur, fixed, 0, 1)
    if math.isnan(logdet_x) or _cholesky_last(schur, m) <= 0.0:
        return 0.0, 0.0, -1.0
    r2 = schur[m - 1, m - 1] ** 2
    beta = np.empty(fixed)
    _solve_transposed(schur, fixed, schur[m - 1], beta)
    sxx = np.zeros((fixed, fixed))
    if reml:  # (R_X R_X')^-1 from R_X's inverse
        rinv = np.zeros((fixed, fixed))
        _lower_inverse(schur, fixed, rinv)
        for i in range(fixed):
            for j in range(i + 1):
                total = 0.0
                for k in range(i, fixed):
                    total += rinv[k, i] * rinv[k, j]
                sxx[i, j] = total
                sxx[j, i] = total
    weight = 2.0 * dof / r2 if variance == 0.0 else 2.0 / variance
    gradient[:] = 0.0
    v, u, rho, linv = np.empty(p), np.empty(p), np.empty(p), np.zeros((p, p))
    g, inner, sigma = np.empty((p, fixed)), np.empty((p, p)), np.empty((p, p))
    cross_x, lam_a = np.empty((p, fixed)), np.empty((p, p))
    for level in range(levels):
        block = factors[level]
        for i in range(p):  # v = L^-T (u - W_X beta)
            total = scaled[level, i, fixed]
            for j in range(fixed):
                total -= scaled[level, i, j] * beta[j]
            u[i] = total
        _solve_transposed(block, p, u, v)
        for a in range(p):  # rho = c_y - A_l lam v - C_X beta
            total = cross[level, a, fixed]
            for s in range(p):
                bs = 0.0
                for t in range(p):
                    bs += lam[s, t] * v[t]
                total -= blocks[level, a, s] * bs
            for j in range(fixed):
                total -= cross[level, a, j] * beta[j]
            rho[a] = total
        _lower_inverse(block, p, linv)
        for i in range(p):  # G = W_X Sxx; inner = I + G W_X'
            for j in range(fixed):
                total = 0.0
                for k in range(fixed):
                    total += scaled[level, i, k] * sxx[k, j]
                g[i, j] = total
        for i in range(p):
            for j in range(p):
                total = 1.0 if i == j else 0.0
                for k in range(fixed):
                    total += g[i, k] * scaled[level, j, k]
                inner[i, j] = total
        for i in range(p):  # Omega^-1's level block: L^-T inner L^-1
            for j in range(p):
                total = 0.0
                for a in range(i, p):
                    for b in range(j, p):
                        total += linv[a, i] * inner[a, b] * linv[b, j]
                sigma[i, j] = total
        for i in range(p):  # with X: -L^-T G
            for j in range(fixed):
                total = 0.0
                for a in range(i, p):
                    total -= linv[a, i] * g[a, j]
                cross_x[i, j] = total
        for i in range(p):  # lam' A_l
            for a in range(p):
                total = 0.0
                for s in range(p):
                    total += lam[s, i] * blocks[level, s, a]
                lam_a[i, a] = total
        for k in range(lam_rows.shape[0]):
            a, b = lam_rows[k], lam_cols[k]
            trace = 0.0
            for i in range(p):
                trace += sigma[b, i] * lam_a[i, a]
            for j in range(fixed):
                trace += cross_x[b, j] * cross[level, a, j]
            gradient[lam_index[k]] += 2.0 * trace - weight * rho[a] * v[b]
    return logdet_z, logdet_x, r2


def _dense_factor(theta, col_start, col_rows, col_index, full, q, first, p, values, scaled):
    """T'AT + diag(I_q, 0) into ``scaled`` and its Cholesky factor in place, T =
    blockdiag(Lambda, I) given column by column (rows col_rows[col_start[c]:col_start[c + 1]],
    ``values`` set to theta at col_index, or 1 where col_index is -1); the first grouping
    factor's ``first`` rows are block-diagonal in p x p blocks (``_cholesky``). Returns
    (log|L_Z|^2, log|R_X|^2, r^2), r^2 = -1 if the Cholesky fails."""
    size = full.shape[0]
    for k in range(col_rows.shape[0]):
        values[k] = 1.0 if col_index[k] < 0 else theta[col_index[k]]
    for j in range(size):
        level_end = j - j % p + p if j < first else 0  # the end of column j's level
        for i in range(j, size):
            if level_end <= i < first:  # another level of the first factor: A's zeros
                scaled[i, j] = 0.0
                continue
            total = 1.0 if (i == j and i < q) else 0.0
            for a in range(col_start[i], col_start[i + 1]):
                row = col_rows[a]
                for b in range(col_start[j], col_start[j + 1]):
                    total += values[a] * full[row, col_rows[b]] * values[b]
            scaled[i, j] = total
    logdet = _cholesky(scaled, size - 1, first, p)
    if math.isnan(logdet) or _cholesky_last(scaled, size) <= 0.0:
        return 0.0, 0.0, -1.0
    logdet_z = 0.0
    for j in range(q):
        logdet_z += 2.0 * math.log(scaled[j, j])
    return logdet_z, logdet - logdet_z, scaled[size - 1, size - 1] ** 2


def _dense_pieces(theta, col_start, col_rows, col_index, full, q, first, p):
    """The same pieces from one dense matrix (``_dense_factor``)."""
    size = full.shape[0]
    return _dense_factor(theta, col_start, col_rows, col_index, full, q, first, p,
                         np.empty(col_rows.shape[0]), np.empty((size, size)))


def _dense_gradient(entries, col_start, col_rows, col_index, full, q, first, p, kept, dof,
                    variance, rows, cols, index, gradient):
    """The criterion's pieces at the entries and, into ``gradient``, its derivatives by them
    (``core.gradient``'s formulas on the dense matrices): of the criterion profiled over
    sigma when ``variance`` is 0, else of the deviance at sigma^2 = ``variance``; r^2 = -1
    outside the domain."""
    size = full.shape[0]
    values, scaled = np.empty(col_rows.shape[0]), np.empty((size, size))
    logdet_z, logdet_x, r2 = _dense_factor(entries, col_start, col_rows, col_index, full, q,
                                           first, p, values, scaled)
    if r2 < 0.0:
        return logdet_z, logdet_x, r2
    # the inverse W of L_S (S: the first ``kept`` rows), then Sigma = W' W; both by rows, so
    # that the inner loops run along contiguous rows and skip L's zeros (the first factor's
    # levels are uncoupled); each entry's sum is taken in the same order as by entries
    inverse = np.zeros((kept, kept))
    for i in range(kept):
        for k in range(i):
            factor = scaled[i, k]
            if factor != 0.0:
                for j in range(k + 1):
                    inverse[i, j] -= factor * inverse[k, j]
        for j in range(i):
            inverse[i, j] /= scaled[i, i]
        inverse[i, i] = 1.0 / scaled[i, i]
    sigma = np.zeros((kept, kept))
    for k in range(kept):
        for i in range(k + 1):
            w = inverse[k, i]
            if w != 0.0:
                for j in range(i + 1):
                    sigma[i, j] += w * inverse[k, j]
    for i in range(kept):
        for j in range(i):
            sigma[j, i] = sigma[i, j]
    # (T'A)[S, :q], column by column of T
    crossed = np.zeros((kept, q))
    for i in range(kept):
        for a in range(col_start[i], col_start[i + 1]):
            for j in range(q):
                crossed[i, j] += values[a] * full[col_rows[a], j]
    # [v; beta] from L_K' [v; beta] = L's last row; b = Lambda v; rho = Z'(y - Z b - X beta)
    m = size - 1
    solution = np.empty(m)
    _solve_transposed(scaled, m, scaled[size - 1], solution)
    b = np.zeros(q)
    for j in range(q):
        for a in range(col_start[j], col_start[j + 1]):
            b[col_rows[a]] += values[a] * solution[j]
    rho = np.empty(q)
    for i in range(q):
        total = full[i, size - 1]
        for j in range(q):
            total -= full[i, j] * b[j]
        for j in range(q, m):
            total -= full[i, j] * solution[j]
        rho[i] = total
    gradient[:] = 0.0
    weight = 2.0 * dof / r2 if variance == 0.0 else 2.0 / variance
    for k in range(rows.shape[0]):
        r, c = rows[k], cols[k]
        trace = 0.0
        for i in range(kept):
            trace += sigma[c, i] * crossed[i, r]
        gradient[index[k]] += 2.0 * trace - weight * rho[r] * solution[c]
    return logdet_z, logdet_x, r2


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
        logdet = _cholesky(work, m, 0, 1)
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
    logdet_x = _cholesky(total, size - 1, 0, 1)
    if math.isnan(logdet_x) or _cholesky_last(total, size) <= 0.0:
        return 0.0, 0.0, -1.0
    return logdet_v, logdet_x, total[size - 1, size - 1] ** 2


def _column_pair_products(out, start_a, rows_a, values_a, start_b, rows_b, values_b,
                          symmetric, tile):
    """out += A B' for block-sparse A and B given by their stored elements column by column
    (column c's are ``start[c]:start[c + 1]`` of ``rows`` and ``values``, rows increasing):
    out[r, s] gains a[r, c] b[s, c] for every column c that stores both, summed over c in
    increasing order, as the pair plan's bincount sums them (the same result to the last
    bit). ``symmetric`` (B is A): the lower triangle, then mirrored. The rows of out are
    written ``tile`` at a time, so that those written stay in cache (``blocks.TILE_BYTES``)."""
    columns = start_a.shape[0] - 1
    size = out.shape[0]
    cursor = start_a[:-1].copy()  # each column's first element in rows not yet written
    for first_row in range(0, size, tile):
        end_row = first_row + tile
        for c in range(columns):
            x = cursor[c]
            while x < start_a[c + 1] and rows_a[x] < end_row:
                r, value = rows_a[x], values_a[x]
                for y in range(start_b[c], x + 1 if symmetric else start_b[c + 1]):
                    out[r, rows_b[y]] += value * values_b[y]
                x += 1
            cursor[c] = x
    if symmetric:
        for r in range(size):
            for s in range(r):
                out[s, r] = out[r, s]


def _column_pair_gathers(out, left, start_t, rows_t, positions_t, start_r, rows_r, values_r,
                         symmetric, tile):
    """The entries of left @ R at the stored elements of T (block-sparse R and T by columns
    as in ``_column_pair_products``; out in the order of T's data): the element (r, c) gets
    left[r, s] r[s, c] summed over the elements (s, c) of R in increasing s, as the pair
    plan's bincount sums them (the same result to the last bit). ``symmetric`` (R has T's
    pattern and order; left is symmetric): as the plan's symmetric pairs, the lower triangle
    of left read once per pair of elements, the part of rows s <= r and that of rows s > r
    summed apart, then added. Rows of left are read ``tile`` at a time."""
    columns = start_t.shape[0] - 1
    size = left.shape[0]
    stored = rows_t.shape[0] if symmetric else 0
    low, high = np.empty(stored), np.zeros(stored)
    cursor = start_t[:-1].copy()  # each column's first element in rows not yet read
    for first_row in range(0, size, tile):
        end_row = first_row + tile
        for c in range(columns):
            x = cursor[c]
            while x < start_t[c + 1] and rows_t[x] < end_row:
                r, total = rows_t[x], 0.0
                if symmetric:
                    for y in range(start_r[c], x + 1):
                        weight = left[r, rows_r[y]]
                        total += weight * values_r[y]
                        high[y] += (weight if y != x else 0.0) * values_r[x]
                    low[x] = total
                else:
                    for y in range(start_r[c], start_r[c + 1]):
                        total += left[r, rows_r[y]] * values_r[y]
                    out[positions_t[x]] = total
                x += 1
            cursor[c] = x
    for x in range(stored):
        out[positions_t[x]] = low[x] + high[x]


def _dense_times_blockdiag(block, blocks, out):
    """out <- block @ blockdiag(blocks): each of the (rows, levels * p) dense block's column
    blocks times its level's (p x p) matrix (``linalg.blocks.times_blockdiag``), along the
    rows; NumPy's batched product of (rows x p) by (p x p) matrices runs inner loops of length
    p (10 times slower on the 256 x 160 block of a crossed design with p = 2)."""
    levels, p = blocks.shape[0], blocks.shape[1]
    for r in range(block.shape[0]):
        for level in range(levels):
            base = level * p
            for q in range(p):
                total = 0.0
                for s in range(p):
                    total += block[r, base + s] * blocks[level, s, q]
                out[r, base + q] = total


def _dense_pattern_gathers(out, left, right_t, start_t, rows_t, positions_t):
    """The entries of left @ R at the stored elements of T, for a dense R given transposed
    (``right_t`` = R', one row per column of T) and T by columns as in
    ``_column_pair_products``: the element (r, c) gets left[r, :] . R[:, c], summed over the
    inner index in increasing order."""
    inner = left.shape[1]
    for c in range(start_t.shape[0] - 1):
        for x in range(start_t[c], start_t[c + 1]):
            r, total = rows_t[x], 0.0
            for k in range(inner):
                total += left[r, k] * right_t[c, k]
            out[positions_t[x]] = total


def load_kernels() -> bool:
    """Use the compiled kernels in this process from now on (see the module docstring): import
    numba and wrap them, each compiled (or read from numba's cache) at its first call. False
    when numba is not available."""
    global _KERNEL
    if _KERNEL is None:
        try:
            import numba

            global _cholesky, _cholesky_last, _dense_factor, _level_update  # compiled helpers
            _cholesky = numba.njit(cache=True, nogil=True)(_cholesky)
            _cholesky_last = numba.njit(cache=True, nogil=True)(_cholesky_last)
            _level_update = numba.njit(cache=True, nogil=True, inline="always")(_level_update)
            global _solve_transposed, _lower_inverse
            _solve_transposed = numba.njit(cache=True, nogil=True)(_solve_transposed)
            _lower_inverse = numba.njit(cache=True, nogil=True)(_lower_inverse)
            _dense_factor = numba.njit(cache=True, nogil=True)(_dense_factor)
            _KERNEL = numba.njit(cache=True, nogil=True)(_single_factor_pieces)
            global _DENSE_KERNEL, _MARGINAL_KERNEL, _COLUMN_PAIRS_KERNEL, _COLUMN_GATHERS_KERNEL
            _DENSE_KERNEL = numba.njit(cache=True, nogil=True)(_dense_pieces)
            global _DENSE_GRADIENT_KERNEL
            _DENSE_GRADIENT_KERNEL = numba.njit(cache=True, nogil=True)(_dense_gradient)
            _MARGINAL_KERNEL = numba.njit(cache=True, nogil=True)(_marginal_pieces)
            _COLUMN_PAIRS_KERNEL = numba.njit(cache=True, nogil=True)(_column_pair_products)
            _COLUMN_GATHERS_KERNEL = numba.njit(cache=True, nogil=True)(_column_pair_gathers)
            global _DENSE_GATHERS_KERNEL, _SINGLE_FACTOR_GRADIENT_KERNEL
            _SINGLE_FACTOR_GRADIENT_KERNEL = numba.njit(cache=True, nogil=True)(
                _single_factor_gradient)
            _DENSE_GATHERS_KERNEL = numba.njit(cache=True, nogil=True)(_dense_pattern_gathers)
            global _DENSE_BLOCKDIAG_KERNEL
            _DENSE_BLOCKDIAG_KERNEL = numba.njit(cache=True, nogil=True)(_dense_times_blockdiag)
        except Exception:  # noqa: BLE001 - no numba, or it cannot compile here: use NumPy
            _KERNEL = False
    return bool(_KERNEL)


def prefer_numpy() -> None:
    """Keep this process on the NumPy back-ends: fits no longer load the kernels (those
    already loaded stay in use). For processes that fit one model (the command line)."""
    global _AUTOLOAD
    _AUTOLOAD = False


def count_numpy_seconds(seconds: float) -> None:
    """Add a fit's optimizer seconds on the NumPy back-ends (before the kernels load) to this
    process's total, which decides when they load (``KERNELS_AFTER_SECONDS``)."""
    global _numpy_seconds
    _numpy_seconds += seconds


def kernel_policy() -> str:
    """This process's policy: "loaded" (the kernels are in use), "numpy" (``prefer_numpy``,
    or no numba) or "earn" (loaded at a large system's fit, or once fits on the NumPy
    back-ends have taken ``KERNELS_AFTER_SECONDS``)."""
    if _KERNEL:
        return "loaded"
    return "numpy" if _KERNEL is False or not _AUTOLOAD else "earn"


@contextmanager
def batch_policy(tasks: int, threads: bool = False):
    """The kernels' policy for a batch of ``tasks`` refits, fixed while it runs, so that the
    tasks use the same back-ends whichever process runs them and whatever the chunking:
    yields "loaded" (loaded now if the batch has at least ``BATCH_KERNELS`` tasks or may run
    on ``threads`` of this process, or already) or "numpy" (none is loaded during the batch).
    Threads share one BLAS setting, so the NumPy back-ends' sums would depend on how the
    threads interleave (bootstrap replicates 7.6e-11 apart); the kernels' do not."""
    global _AUTOLOAD
    if kernel_policy() == "earn" and (tasks >= BATCH_KERNELS or threads):
        load_kernels()
    policy = kernel_policy()
    if policy != "earn":
        yield policy
        return
    _AUTOLOAD = False
    try:
        yield "numpy"
    finally:
        _AUTOLOAD = True


def _loaded(small: bool = False):
    """The kernels: loaded at the first request unless ``prefer_numpy`` has run, or for a
    ``small`` system once the small systems' fits have earned them (see the module)."""
    if _KERNEL is None and _AUTOLOAD and (not small
                                          or _numpy_seconds >= KERNELS_AFTER_SECONDS):
        load_kernels()
    return _KERNEL


def single_factor_kernel(small: bool = False):
    """The compiled single-factor objective, or None (no numba, ``prefer_numpy``, or a
    ``small`` system before the kernels are earned)."""
    return _loaded(small) or None


def single_factor_gradient_kernel():
    """The compiled single-factor criterion and gradient once the kernels are loaded, else
    None (it goes with ``single_factor_kernel``'s objective, which loaded them)."""
    return _SINGLE_FACTOR_GRADIENT_KERNEL if _KERNEL else None


def dense_kernel():
    """The compiled dense objective (small systems only), or None (no numba,
    ``prefer_numpy``, or not earned yet)."""
    return _DENSE_KERNEL if _loaded(small=True) else None


def dense_gradient_kernel():
    """The compiled dense criterion and gradient (small systems only), or None (no numba,
    ``prefer_numpy``, or not earned yet)."""
    return _DENSE_GRADIENT_KERNEL if _loaded(small=True) else None


def marginal_kernel():
    """The compiled marginal-pieces kernel, or None (no numba, ``prefer_numpy``, or not
    earned yet: NumPy's batched computation is within 1.5 times of it even on 3,000 keys of 6
    rows, so its loading waits as a small system's does)."""
    return _MARGINAL_KERNEL if _loaded(small=True) else None


def column_pairs_kernel():
    """The compiled product of two block-sparse blocks by columns (``linalg.blocks``' rank
    update), or None (no numba, or ``prefer_numpy``)."""
    return _COLUMN_PAIRS_KERNEL if _loaded() else None


def column_gathers_kernel():
    """The compiled product of a dense and a block-sparse block on another's pattern, by
    columns (``linalg.selected_inverse``), or None (no numba, or ``prefer_numpy``)."""
    return _COLUMN_GATHERS_KERNEL if _loaded() else None


def dense_blockdiag_kernel():
    """The compiled product of a dense block and a block-diagonal one
    (``linalg.blocks.times_blockdiag``), or None (no numba, or ``prefer_numpy``)."""
    return _DENSE_BLOCKDIAG_KERNEL if _loaded() else None


def dense_gathers_kernel():
    """The compiled product of two dense blocks on a block-sparse block's pattern
    (``linalg.selected_inverse``), or None (no numba, or ``prefer_numpy``)."""
    return _DENSE_GATHERS_KERNEL if _loaded() else None


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
        self.xy = from_lower(xy)

    def __call__(self, theta: np.ndarray) -> tuple[float, float, float]:
        """(log|L_Z|^2, log|R_X|^2, r^2) at theta; r^2 = -1 outside the domain. theta goes in
        as a writable copy: numba compiles a kernel once per argument type, and the optimizer
        passes read-only arrays, the convergence check writable ones."""
        return self.kernel(np.array(theta, dtype=np.float64), self.lam_rows, self.lam_cols,
                           self.lam_index, self.blocks, self.cross, self.xy)

    def gradient(self, kernel, entries: np.ndarray, reml: bool, dof: int,
                 variance: float) -> tuple[tuple[float, float, float], np.ndarray]:
        """The pieces and the criterion's gradient by the entries, from the compiled
        ``kernel`` (``single_factor_gradient_kernel``): ``dof`` the criterion's degrees of
        freedom, ``variance`` 0 (profiled over sigma) or sigma^2 (the deviance at sigma)."""
        gradient = np.zeros(len(entries))
        pieces = kernel(np.array(entries, dtype=np.float64), self.lam_rows, self.lam_cols,
                        self.lam_index, self.blocks, self.cross, self.xy, bool(reml), dof,
                        float(variance), gradient)
        return pieces, gradient


def columns_of_t(rows: np.ndarray, cols: np.ndarray, index: np.ndarray, q: int,
                 size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T = blockdiag(Lambda, I) (size x size; Lambda's entries at (rows, cols) are theta at
    ``index``) by columns: (col_start (size + 1,), col_rows, col_index), column c's entries
    at col_start[c]:col_start[c + 1], index -1 for the unit [X y] columns'."""
    extra = np.arange(q, size)
    rows = np.concatenate([rows, extra])
    cols = np.concatenate([cols, extra])
    index = np.concatenate([index, np.full(len(extra), -1)])
    order = np.argsort(cols, kind="stable")
    col_start = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=size))])
    return col_start, rows[order].astype(np.int64), index[order].astype(np.int64)


class SmallDenseObjective:
    """The inputs of the compiled dense computation: A as one symmetric matrix, and T's
    pattern by columns (Z columns from Lambda's entries, then unit [X y] columns); the first
    grouping factor's ``first`` columns, ``p`` per level, are block-diagonal in A."""

    name = "compiled dense"

    def __init__(self, kernel, full: np.ndarray, columns: tuple, q: int, first: int, p: int):
        """``columns``: T by columns (``columns_of_t``)."""
        self.kernel = kernel
        self.first, self.p = first, p
        self.col_start, self.col_rows, self.col_index = columns
        self.full, self.q = full, q

    def __call__(self, theta: np.ndarray) -> tuple[float, float, float]:
        """(log|L_Z|^2, log|R_X|^2, r^2) at theta; r^2 = -1 outside the domain (theta copied
        as in ``SingleFactorObjective``)."""
        return self.kernel(np.array(theta, dtype=np.float64), self.col_start, self.col_rows,
                           self.col_index, self.full, self.q, self.first, self.p)

    def gradient(self, kernel, entries: np.ndarray, kept: int, dof: int, variance: float,
                 rows: np.ndarray, cols: np.ndarray,
                 index: np.ndarray) -> tuple[tuple[float, float, float], np.ndarray]:
        """The pieces and the criterion's gradient by the entries, from the compiled
        ``kernel`` (``dense_gradient_kernel``): Omega_S of the first ``kept`` rows, ``dof``
        the criterion's degrees of freedom, ``variance`` 0 (profiled over sigma) or sigma^2
        (the deviance at sigma), (rows, cols, index) the entries' positions in T."""
        gradient = np.zeros(len(entries))
        pieces = kernel(np.array(entries, dtype=np.float64), self.col_start, self.col_rows,
                        self.col_index, self.full, self.q, self.first, self.p, kept, dof,
                        float(variance), rows, cols, index, gradient)
        return pieces, gradient
