"""The analytic gradient of the profiled ML or REML criterion with respect to theta.

With Omega = T' A T + diag(I_q, 0) (T = blockdiag(Lambda, I), A the stored cross-products of
[Z X y]) and L its blocked Cholesky factor, the profiled criteria are

    ML:   log|Omega_Z| + n log r^2 + const,      REML: log|Omega_K| + (n - p) log r^2 + const,

Omega_Z the random-effects block, Omega_K = Omega without the response's row and column.
Each entry lam_b[r, c] of a block's relative covariance factor enters Lambda_b as
I_levels (x) E_rc, so that

* d log|Omega_S| = 2 tr(Omega_S^{-1} T' A dT) = 2 sum over the levels l of block b of
  (Omega_S^{-1} T' A)_{(l, c), (l, r)}: it needs Omega_S^{-1} only where A stores entries,
  which the selected inverse of L gives (``linalg.selected_inverse``);
* d r^2 = -2 rho' dLambda v (the envelope theorem: r^2 is a minimum over v and beta), with v
  the spherical random effects and rho = Z'(y - Z Lambda v - X beta) formed from A's blocks:
  the sum over levels of rho_l[r] v_l[c].

Nothing of size n and no dense q x q matrix is formed where L's blocks are sparse; the cost is
about twice that of the factorization. Small systems (q + p + 1 <= ``SMALL_SYSTEM``) apply the
same formulas to the dense matrices at once (``PLSSystem.small_system``): one compiled loop,
or a few LAPACK calls. The entries' gradient is mapped to theta through the ``ParameterMap``'s
patterns and, for structures not linear in their parameters, the chain rule
(``CovarianceStructure.entries_jacobian``). Models with parameters of a residual structure
(a correlation structure or variance function) have no analytic gradient here.

The derivation follows the profiled-deviance calculus of Bates and DebRoy (2004), "Linear
mixed models and penalized least squares", J. Multivariate Anal. 91, section 4, on the blocked
factor of Bates et al. (2025), arXiv 2505.11674.
"""

from __future__ import annotations

import math

import numpy as np

from ..linalg.blocks import BlockSparse, block_times, transpose_times
from ..linalg.compiled import single_factor_gradient_kernel
from ..linalg.selected_inverse import level_blocks, selected_inverse
from ..threads import blas_threads_for

__all__ = ["profiled_gradient", "deviance_gradient"]


def profiled_gradient(system, theta: np.ndarray, reml: bool) -> tuple[float, np.ndarray]:
    """The criterion and its gradient at theta.

    Args:
        system: a ``PLSSystem`` (R = sigma^2 I or known weights: no residual parameters).
        theta: (n_params,) inside the domain.
        reml: the REML criterion, else -2 log-likelihood.

    Returns:
        (criterion, (n_params,) gradient); (inf, zeros) when the factor fails at theta.
    """
    return _gradient(system, theta, reml, None)


def deviance_gradient(system, theta: np.ndarray, sigma: float,
                      reml: bool) -> tuple[float, np.ndarray]:
    """The criterion not profiled over sigma (``PLSSystem.deviance``) and its gradient by
    (theta, sigma): the same formulas with r^2's derivative weighted by 1 / sigma^2 instead of
    d / r^2, and d/d sigma = 2 d / sigma - 2 r^2 / sigma^3 (d = n - p or n).

    Returns:
        (deviance, (n_params + 1,) gradient); (inf, zeros) when the factor fails at theta.
    """
    value, gradient = _gradient(system, theta, reml, sigma)
    if not np.isfinite(value):
        return value, np.zeros(len(theta) + 1)
    r2, dof = gradient[-1], system.n - system.p if reml else system.n
    return value, np.append(gradient[:-1], 2.0 * dof / sigma - 2.0 * r2 / sigma ** 3)


def _gradient(system, theta: np.ndarray, reml: bool, sigma: float | None):
    """``profiled_gradient`` (sigma None), else the deviance at sigma and its gradient by
    theta followed by r^2."""
    parameters = system.structure.parameters
    single = getattr(system, "single_factor", None)
    kernel = None if single is None else single_factor_gradient_kernel()
    try:
        entries = parameters.entries(theta)
        pieces = None
        if kernel is not None:  # one grouping factor: a loop over its levels
            dof = system.n - system.p if reml else system.n
            pieces, by_entry = single.gradient(kernel, entries, reml, dof,
                                               0.0 if sigma is None else sigma ** 2)
            if pieces[2] < 0.0:
                return _failed(theta, sigma)
        elif system.small_system is not None:  # one dense matrix: the same formulas
            pieces, by_entry = system.small_system.gradient(entries, reml, system.n, sigma)
        if pieces is None or system.refines(pieces[2]):  # the blocked factor (r^2 from the
            # rows where A's has lost its precision: ``PLSSystem.row_residuals``)
            with blas_threads_for(system.largest_dense_block):  # as the factor limits BLAS
                factor = system.factor(theta)
                pieces = system.pieces_of(factor)
                by_entry = (_entries_gradient(system, factor, reml, sigma)
                            if np.isfinite(system.criterion(pieces, reml)) else None)
        value = system.criterion(pieces, reml, sigma)
    except np.linalg.LinAlgError:
        return _failed(theta, sigma)
    if not math.isfinite(value):
        return _failed(theta, sigma)
    if not parameters.linear:
        out = np.zeros(len(theta))
        for structure, part, entry_part in zip(parameters.structures, parameters.slices,
                                               parameters.entry_slices):
            out[part] = structure.entries_jacobian(theta[part]).T @ by_entry[entry_part]
        by_entry = out
    return value, by_entry if sigma is None else np.append(by_entry, pieces[2])


def _failed(theta: np.ndarray, sigma: float | None) -> tuple[float, np.ndarray]:
    """``_gradient``'s result outside the domain: inf and zeros."""
    return math.inf, np.zeros(len(theta) + (sigma is not None))


def _entries_gradient(system, factor, reml: bool,
                      residual_sd: float | None = None) -> np.ndarray:
    """The criterion's gradient by the entries vector, from the blocked factor (at sigma, not
    profiled, unless it is None)."""
    parameters = system.structure.parameters
    per_block = _factor_gradients(system, factor, reml, residual_sd)
    out = np.zeros(sum(s.n_entries for s in parameters.structures))
    for pattern, gradient in zip(parameters.patterns, per_block):
        np.add.at(out, pattern.index, gradient[pattern.rows, pattern.cols])
    return out


def _factor_gradients(system, factor, reml: bool,
                      residual_sd: float | None) -> list[np.ndarray]:
    """Per random-effects block, the (p, p) derivatives of the criterion by the entries of
    its lam."""
    k, p = factor.k, factor.p
    lambdas = factor.lambdas
    sigma = selected_inverse(*factor.leading_blocks(fixed=reml))
    beta, spherical = factor.response_solution()
    if factor.fixed_basis is not None:
        beta = factor.fixed_basis @ beta  # in the columns of A (X R^-1)
    b = [(v.reshape(-1, lam.shape[0]) @ lam.T).ravel() for v, lam in zip(spherical, lambdas)]
    dof = (system.n - p) if reml else system.n
    r2, rows = factor.pwrss(), None
    if system.refines(r2):  # r^2, rho and v from the rows (``PLSSystem.row_residuals``)
        r2, rows, spherical = system.row_residuals(factor)
    weight = dof / r2 if residual_sd is None else 1.0 / residual_sd ** 2
    out = []
    for j in range(k):
        levels = system.blocks[j].nlevels
        logdet = _logdet_trace(system, sigma, lambdas, j, levels, reml and p > 0)
        rho = _residual_crossproduct(system, j, b, beta) if rows is None else rows[j]
        dr2 = -2.0 * rho.reshape(levels, -1).T @ spherical[j].reshape(levels, -1)
        out.append(2.0 * logdet.T + weight * dr2)
    return out


def _logdet_trace(system, sigma: dict, lambdas, j: int, levels: int,
                  fixed: bool) -> np.ndarray:
    """G_j (p_j x p_j): the sum over block j's levels of the level-diagonal blocks of
    Omega_S^{-1} T' A restricted to block j's columns."""
    lam = lambdas[j]
    own = np.einsum("ba,lbc->lac", lam, system.A_diag[j])  # lam' A_l per level
    out = np.einsum("lab,lbc->ac", level_blocks(sigma[j, j], levels), own)
    p_j = lam.shape[0]
    for m in range(len(system.blocks)):
        if m > j:  # Sigma_mj and Lambda_m' A_mj, both stored (q_m x q_j)
            out += _column_sum(sigma[m, j], _scale_rows(system.A_off[m, j], lambdas[m]),
                               levels, p_j)
        elif m < j:  # Sigma_jm and A_jm Lambda_m, both stored (q_j x q_m)
            out += _row_sum(sigma[j, m], _scale_columns(system.A_off[j, m], lambdas[m]),
                            levels, p_j)
    if fixed:
        p = system.p
        out += _column_sum(sigma[len(system.blocks), j], system.A_xy[j][:p], levels, p_j)
    return out


def _scale_rows(block, lam: np.ndarray):
    """Lambda' block (Lambda = I (x) lam on the rows)."""
    if isinstance(block, BlockSparse):
        return block.with_data(np.einsum("ba,nbc->nac", lam, block.data))
    p = lam.shape[0]
    rows = block.reshape(-1, p, block.shape[1])
    return np.einsum("ba,lbc->lac", lam, rows).reshape(block.shape)


def _scale_columns(block, lam: np.ndarray):
    """block Lambda (Lambda = I (x) lam on the columns)."""
    if isinstance(block, BlockSparse):
        return block.with_data(block.data @ lam)
    p = lam.shape[0]
    return (block.reshape(block.shape[0], -1, p) @ lam).reshape(block.shape)


def _column_sum(s, a, levels: int, p: int) -> np.ndarray:
    """sum over column blocks l of s[:, l]' a[:, l] (s, a of one pattern, p x p)."""
    if isinstance(s, BlockSparse):
        return np.einsum("nsa,nsc->ac", s.data, a.data)
    return s.reshape(-1, p).T @ a.reshape(-1, p)


def _row_sum(s, a, levels: int, p: int) -> np.ndarray:
    """sum over row blocks l of s[l, :] a[l, :]' (s, a of one pattern, p x p)."""
    if isinstance(s, BlockSparse):
        return np.einsum("nas,ncs->ac", s.data, a.data)
    return (s.reshape(levels, p, -1) @ np.swapaxes(a.reshape(levels, p, -1), 1, 2)).sum(0)


def _residual_crossproduct(system, j: int, b: list[np.ndarray], beta: np.ndarray):
    """rho_j = Z_j'(y - Z b - X beta) from A's blocks (b = Lambda v the random effects)."""
    xy = system.A_xy[j]
    levels = system.blocks[j].nlevels
    own = np.einsum("lab,lb->la", system.A_diag[j], b[j].reshape(levels, -1)).ravel()
    rho = xy[-1] - xy[:-1].T @ beta - own
    for m in range(len(system.blocks)):
        if m < j:
            rho -= block_times(system.A_off[j, m], b[m])
        elif m > j:
            rho -= transpose_times(system.A_off[m, j], b[m])
    return rho
