"""Starting values of theta: MIVQUE(0) estimates of the variances, from the cross-products A.

lme4 starts every fit at lam = I: each random effect's sd equal to the residual sd. On large
data that start is far from the optimum, and a quasi-Newton method spends most of its
gradients finding the scale of each direction (InstEval: 28 gradients from lam = I, 11 from
the start below). SAS PROC MIXED starts its REML iterations at the MIVQUE(0) estimates
(Rao 1971; Goodnight 1978; Searle, Casella and McCulloch 1992, section 11.3): the minimum-
variance quadratic unbiased estimates of the variance components under the prior guess
V = I, which take no iterations. For components sigma_t^2 with design columns Z_t
(t = 1..m, and t = 0 for the residual, Z_0 = I) and Q = I - X (X'X)^- X', they solve

    sum_u ||Z_t' Q Z_u||_F^2 sigma_u^2 = ||Z_t' Q y||^2        (t = 0..m).

Here each column c of each grouping factor b's block is one component (the correlations of a
vector-valued term are left at 0, as lme4's start leaves them), and every term is computed
from A alone, with G = (X'X)^- and U_t = X' Z_t (p x levels):

    Z_t' Q Z_u = Z_t' Z_u - U_t' G U_u,
    ||Z_t' Q Z_u||^2 = ||Z_t' Z_u||^2 - 2 <Z_t' Z_u, U_t' G U_u> + tr(G U_t U_t' G U_u U_u'),

with no dense levels_t x levels_u matrix, so that in-memory and partitioned fits start at the
same point and the cost is that of one pass over A's stored entries. The system's entries
scale with the fourth power of each column's units (a slope on income in dollars, prior
weights of 1e8), so it is solved equilibrated (unit diagonal): unscaled, its singular values
spanned more than 1e16 and the solve kept only the largest.

The diagonal of each lam is then sqrt(sigma_c^2 / sigma_e^2), kept where the column's share
of an observation's sd, sigma_c spread_c / sigma_e (unit-free; ``theta_units``), lies within
[``SCALE_FLOOR``, ``SCALE_CEILING``]: off the bound 0 and finite, in the column's own units.
The optimum does not depend on the start; only the number of evaluations to reach it does.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from scipy.linalg.lapack import dposv as _posv
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dtrtrs as _trtrs

from ..covariance.parameters import ParameterMap
from .crossproducts import CrossProducts

__all__ = ["moment_start", "one_component_start", "set_units", "theta_units",
           "unit_start"]

#: each column's share of an observation's sd, relative to the residual sd, is kept within
#: these: off the bound 0, where the criterion's derivative by a diagonal entry of lam
#: vanishes whatever the optimum, and finite
SCALE_FLOOR = 0.1
SCALE_CEILING = 100.0
#: a column's sd about its mean is its spread unless it is below this share of its mean
#: square (rounding: an intercept, or a column constant within the data)
CENTRED_SHARE = 1e-8


def moment_start(parameters: ParameterMap, crossproducts: CrossProducts) -> np.ndarray:
    """(n_params,) theta to start the optimizer at: the diagonal entries of every linear
    term's lam from the MIVQUE(0) variances (see the module docstring), the other
    parameters at ``parameters.start()``.

    Falls back to ``unit_start`` where the estimates say nothing (a residual variance
    estimated <= 0, as with prior weights spanning 1e6, or non-finite cross-products), and
    to ``parameters.start()`` for structured terms and residual structures. A shared
    parameter (``HomogeneousDiagonal``) gets the geometric mean of its columns' scales.
    """
    start = np.array(parameters.start(), dtype=float)
    if not parameters.linear or parameters.residual is not None:
        return start
    variances = _mivque0(crossproducts)
    if variances is None:
        return unit_start(parameters, crossproducts)
    residual, blocks = variances
    for block, spread, pattern in zip(blocks, _column_spreads(parameters, crossproducts),
                                      parameters.patterns):
        share = np.sqrt(np.maximum(block, 0.0) / residual) * spread
        scales = np.clip(share, SCALE_FLOOR, SCALE_CEILING) / spread
        means, filled = _geometric_means(np.log(scales), pattern, pattern.rows == pattern.cols,
                                         len(start))
        start[filled] = means
    return start


def one_component_start(crossproducts: CrossProducts, unit: float) -> float | None:
    """theta to start a model with one variance component on one column per level ((1 | g),
    (0 + x | g)) at: its MIVQUE(0) estimate, in closed form (the system of the module
    docstring has two equations then), where it lies within [``SCALE_FLOOR``,
    ``SCALE_CEILING``] ``unit``s (``theta_units``: 1 / the column's root mean square). None
    where the estimates say nothing (a residual variance <= 0, X'X not positive definite,
    non-finite A) and where the variance is estimated at or below 0, or beyond those limits:
    from the floor, Newton's method went down to the bound in 6 of 3,000 simulated fits
    whose optimum lies above it (a few groups, one far off, weights), which lme4's start
    reaches.

    On balanced data this is the REML optimum itself where it is positive (the ANOVA
    estimate): Newton's method on the one parameter (``core.scalar``) then takes 3 to 5
    gradients instead of 8 to 12 from lme4's start on the reference models, for about 20 us.
    The general computation (``moment_start``) costs 75 us and more, most of a small model's
    saving."""
    xy, n = crossproducts.xy, crossproducts.n
    p = xy.shape[0] - 1
    levels = crossproducts.diag[0][:, 0, 0]  # Z'Z's diagonal
    cross = crossproducts.xy_z[0]  # [X y]'Z, (p + 1, levels)
    whiten, rank = _whitening(xy[:p, :p])
    if rank < p:
        return None
    whitened = whiten(np.column_stack([cross[:p], xy[:p, p]]))  # R^-T [X'Z X'y]
    b, c = whitened[:, :-1], whitened[:, -1]  # (_mivque0's B_t and c)
    squares = np.add.reduce(b * b, axis=0)
    outer = b @ b.T
    a11 = float(levels @ levels - 2.0 * (levels @ squares) + np.sum(outer * outer))
    a12 = float(levels.sum() - squares.sum())
    zr = cross[p] - c @ b
    rss = float(xy[p, p] - c @ c)
    b1, a22 = float(zr @ zr), float(n - p)
    determinant = a11 * a22 - a12 * a12
    if not determinant > 0.0:
        return None
    tau = (b1 * a22 - a12 * rss) / determinant
    residual = (a11 * rss - a12 * b1) / determinant
    if not (residual > 0.0 and tau > 0.0 and np.isfinite(tau)):
        return None
    share = math.sqrt(tau / residual) / unit
    return share * unit if SCALE_FLOOR <= share <= SCALE_CEILING else None


def unit_start(parameters: ParameterMap, crossproducts: CrossProducts) -> np.ndarray:
    """lme4's start, lam = I, in the columns' units (``theta_units``): each column's sd
    equal to sigma divided by the column's spread. Where every column is an intercept or has
    spread 1 it is lme4's start; with a slope on x * 1e4 it starts that sd 1e4 times lower,
    where lme4's start put L-BFGS on a plateau 7 to 19% above the optimum."""
    return np.array(parameters.start(), dtype=float) * theta_units(parameters, crossproducts)


def theta_units(parameters: ParameterMap, crossproducts: CrossProducts) -> np.ndarray:
    """(n_params,) the natural unit of each parameter: 1 / spread(Z_r) for an entry of a
    linear term's lam in row r (an sd of column r relative to sigma is in the inverse of the
    column's units), the geometric mean over the entries a parameter fills; for a
    structured term's (cs, ar1, toep) sd, that of its column, or over all its columns for
    a shared sd (on sleepstudy with Days * 1e4, cs(Days | Subject) stopped 0.12 above the
    optimum, unscaled); 1 for the other parameters (correlations). The spread of a column
    (``_column_spreads``) is its sd about its mean where its term is unstructured and has
    an intercept, else its root mean square, both weighted by the prior weights, so that an
    intercept's is 1 without weights. L-BFGS runs on theta divided by these, so that a slope
    on income in dollars (theta about 1e-5) and an intercept (about 1) are steps of one
    size; unscaled, its line search failed there. The sd, not the root mean square: on a
    covariate with mean 500 and sd 1, the root mean square's unit stopped L-BFGS 4e-4
    above the optimum.
    """
    units = np.ones(parameters.n_params)
    if not parameters.linear:  # structured terms: per parameter, its columns' spreads
        spreads = _column_spreads(parameters, crossproducts)
        for t, structure in enumerate(parameters.structures):
            spread = spreads[parameters.block_of[t]][parameters.offsets[t]:][:structure.k]
            for i, columns in enumerate(structure.unit_columns()):
                if columns:
                    units[parameters.slices[t].start + i] = np.exp(
                        -np.mean(np.log(spread[list(columns)])))
        return units
    if all(diag.shape[1] == 1 for diag in crossproducts.diag):  # one column per factor
        sizes = [float(diag.sum()) for diag in crossproducts.diag]
        if all(math.isfinite(size) and size > 0.0 for size in sizes):
            for size, pattern in zip(sizes, parameters.patterns):
                units[pattern.index] = math.sqrt(crossproducts.n / size)
        return units
    for spread, pattern in zip(_column_spreads(parameters, crossproducts), parameters.patterns):
        set_units(units, spread, pattern)
    return units


def set_units(units: np.ndarray, spread: np.ndarray, pattern) -> None:
    """Set ``units`` (n_params,) of the parameters a block's ``pattern`` fills, from its
    columns' ``spread`` (k,): the geometric mean of 1 / spread over the rows they fill
    (``theta_units``)."""
    means, filled = _geometric_means(-np.log(spread), pattern,
                                     np.ones(len(pattern.rows), bool), len(units))
    units[filled] = means


def _geometric_means(logs: np.ndarray, pattern, entries: np.ndarray, size: int):
    """(means, filled): per parameter of a block's pattern, exp of the mean of ``logs`` (one
    per block column) over the rows of the ``entries`` (a mask of the pattern's entries) it
    fills; ``filled`` marks the parameters, of ``size``, that fill any."""
    index = pattern.index[entries]
    counts = np.bincount(index, minlength=size)
    sums = np.bincount(index, logs[pattern.rows[entries]], minlength=size)
    filled = counts > 0
    return np.exp(sums[filled] / counts[filled]), filled


def _column_spreads(parameters: ParameterMap, crossproducts: CrossProducts) -> list:
    """Per block of A, the (k_b,) spreads of its columns (see ``theta_units``), from A's
    level blocks: W_c = sum_i w_i z_ic^2 and, with an intercept column j, the weighted mean
    m_c = sum_i w_i z_ic / sum_i w_i = sum_l A_l[c, j] / W_j. Spread^2 = (W_c - m_c^2 W_j) / n,
    or W_c / n where that is not clearly positive (the intercept itself); 1 where W_c is 0
    or not finite.

    The sd about the mean only for the columns of a term with the intercept and with
    correlations ((1 + x | g)), whose covariance moves the mean into the intercept; the root
    mean square for the others: in (x || g) or diag(x | g) the slope's sd scales x itself
    (on sleepstudy with Days + 1000, whose sd is 2.9 and root mean square 1,004, BOBYQA in
    units of the sd stopped 0.075 above the optimum)."""
    spreads = []
    for b, (diag, j) in enumerate(zip(crossproducts.diag, parameters.block_intercepts())):
        totals = diag.sum(axis=0)  # (k, k): sum over levels
        sizes = np.diagonal(totals).copy()
        squares = sizes
        if j >= 0 and totals[j, j] > 0.0:
            means = totals[:, j] / totals[j, j]
            centred = sizes - means ** 2 * totals[j, j]
            about_mean = (centred > CENTRED_SHARE * sizes) & _with_intercept(parameters, b, j)
            squares = np.where(about_mean, centred, sizes)
        spread = np.sqrt(squares / crossproducts.n)
        spreads.append(np.where(np.isfinite(spread) & (spread > 0.0), spread, 1.0))
    return spreads


def _mivque0(crossproducts: CrossProducts):
    """(sigma_e^2, per block the (k_b,) variances of its columns), or None when the
    residual variance is not positive or A is not finite.

    With X'X = R'R (Cholesky; where X'X is singular, W'W its pseudo-inverse in place of
    R^-1 R^-T) every product weighted by G is one of B_t = R^-T U_t (p x levels):
    U_t' G U_u = B_t' B_u, and tr(G U_t U_t' G U_u U_u') = <B_t B_t', B_u B_u'>; with
    c = R^-T X'y, Z_t' Q y = Z_t'y - B_t' c and y' Q y = y'y - c'c."""
    xy, n = crossproducts.xy, crossproducts.n
    p = xy.shape[0] - 1
    if not np.all(np.isfinite(xy)):
        return None
    whiten, rank = _whitening(xy[:p, :p])
    c = whiten(xy[:p, p])
    # per component: (block, column, B_t (p, levels), Z_t' Z_t's level diagonal, Z_t' Q y)
    components = []
    for b, (diag, xy_z) in enumerate(zip(crossproducts.diag, crossproducts.xy_z)):
        k = diag.shape[1]
        whitened = whiten(xy_z[:p])
        for col in range(k):
            bt = whitened[:, col::k]
            components.append((b, col, bt, diag[:, col, col], xy_z[p, col::k] - c @ bt))
    m = len(components)
    system = np.zeros((m + 1, m + 1))
    right = np.zeros(m + 1)
    outer = [bt @ bt.T for _, _, bt, _, _ in components]  # B_t B_t' (p, p)
    for t, (bt, ct, wt, own, zr) in enumerate(components):
        right[t] = zr @ zr
        system[t, m] = system[m, t] = own.sum() - float(np.sum(wt * wt))
        for s in range(t + 1):
            bs, cs, ws = components[s][:3]
            if bs == bt:  # Z_t' Z_s is diagonal in the levels: its values
                block = crossproducts.diag[bt][:, ct, cs]
                cross = float(block @ np.add.reduce(wt * ws, axis=0))
                squares = block @ block
            else:
                block = _off_block(crossproducts, bt, ct, bs, cs)
                cross = float(np.sum(wt.T * (block @ ws.T)))
                squares = _sum_of_squares(block)
            system[t, s] = system[s, t] = squares - 2.0 * cross + float(
                np.sum(outer[t] * outer[s]))
    right[m] = float(xy[p, p] - c @ c)
    system[m, m] = n - rank
    if not (np.all(np.isfinite(system)) and np.all(np.isfinite(right))):
        return None
    diagonal = np.diagonal(system)
    if not np.all(diagonal > 0.0):
        return None
    scale = 1.0 / np.sqrt(diagonal)  # equilibrated: the columns' units cancel
    sigma = scale * _solve_semidefinite(system * np.outer(scale, scale), scale * right)
    if not sigma[m] > 0.0:
        return None
    blocks = [np.zeros(d.shape[1]) for d in crossproducts.diag]
    for (b, col, *_), value in zip(components, sigma[:m]):
        blocks[b][col] = value
    return float(sigma[m]), blocks


def _whitening(gram: np.ndarray):
    """(whiten, rank): ``whiten(rhs)`` is R^-T rhs for ``gram`` (X'X, p x p) = R'R, its
    Cholesky factor, where it is positive definite (rank p); elsewhere W rhs with W'W the
    pseudo-inverse of ``gram``, from its eigenvalues above rounding."""
    p = gram.shape[0]
    if p:
        factor, info = _potrf(gram, lower=0)
        if info == 0 and np.all(np.diagonal(factor) > 0.0):
            return (lambda rhs: _trtrs(factor, rhs, lower=0, trans=1)[0]), p
    values, vectors = np.linalg.eigh(gram)
    kept = values > p * np.finfo(float).eps * max(values.max(initial=0.0), 0.0)
    w = (vectors[:, kept] / np.sqrt(values[kept])).T
    return (lambda rhs: w @ rhs), int(kept.sum())


def _solve_semidefinite(matrix: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The solution of matrix x = right for a symmetric positive semi-definite matrix: by
    its Cholesky factor where it is positive definite, else in least squares."""
    solution, info = _posv(matrix, right, lower=0)[1:]
    if info == 0 and np.all(np.isfinite(solution)):
        return solution
    return np.linalg.lstsq(matrix, right, rcond=None)[0]


def _off_block(crossproducts: CrossProducts, bt: int, ct: int, bs: int, cs: int):
    """Z_t' Z_s for columns ct of block bt and cs of block bs (levels_t x levels_s)."""
    kt, ks = crossproducts.diag[bt].shape[1], crossproducts.diag[bs].shape[1]
    if bt > bs:
        return crossproducts.off[bt, bs][ct::kt, cs::ks]
    return crossproducts.off[bs, bt][cs::ks, ct::kt].T


def _sum_of_squares(block) -> float:
    if sp.issparse(block):
        return float(block.multiply(block).sum())
    return float(np.sum(np.square(block)))


def _with_intercept(parameters: ParameterMap, block: int, j: int) -> np.ndarray:
    """(k_b,) bool: the block's columns in an unstructured term (linear, with entries off
    lam's diagonal: its covariance absorbs the shift) that has the block's intercept column
    ``j``."""
    out = []
    for t in parameters.blocks[block]:
        structure, first = parameters.structures[t], parameters.offsets[t]
        pattern = structure.pattern
        correlated = structure.linear and bool(np.any(pattern.rows != pattern.cols))
        out += [correlated and first <= j < first + structure.k] * structure.k
    return np.array(out, dtype=bool)

