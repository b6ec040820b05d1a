"""Satterthwaite degrees of freedom for linear contrasts of the fixed effects (as lmerTest).

With phi = (theta, sigma) and C(phi) = Var(beta-hat) = sigma^2 (R_X R_X')^{-1}(theta):

* A = 2 H^{-1}, H the Hessian of the (REML or ML) deviance in phi: the asymptotic covariance
  of phi-hat;
* J_k = dC / dphi_k;
* for a contrast l: v = l' C l, g_k = l' J_k l and  df = 2 v^2 / (g' A g).

F tests of several rows (lmerTest's ``contestMD``): rotate L by the eigenvectors of L C L', take
one Satterthwaite df nu_m per direction, and combine them as
E = sum nu_m / (nu_m - 2), ddf = 2 E / (E - q)  (or 2 if any nu_m <= 2).

Every derivative is taken numerically on functions whose cost does not depend on n.

A structured term's correlation parameters (``cs``, ``ar1``, ``toep``) are bounded on both
sides, and the map to Lambda is undefined beyond the bounds, where the steps of the numerical
derivatives could go; they are differentiated on the real line instead (``ParameterMap``'s
``unbounded``: a scaled atanh). The df do not depend on the parameterization at the optimum
(H and g transform with the same Jacobian). A correlation parameter on its bound (a boundary
fit) is held at its value. lme4's parameters (and every sd) are used as they are, as
lmerTest does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.numdiff import hessian, jacobian

__all__ = ["VarparDerivatives", "varpar_derivatives", "satterthwaite_df", "combine_f_ddf"]


@dataclass(frozen=True)
class VarparDerivatives:
    """Curvature of the deviance in phi = (theta, sigma) and dVar(beta)/dphi at the optimum."""

    varpar: np.ndarray
    hessian: np.ndarray
    cov_varpar: np.ndarray  # A = 2 H^{-1}
    jac_vcov: np.ndarray  # (k + 1, p, p)


def varpar_derivatives(fit) -> VarparDerivatives:
    """Hessian of the deviance and Jacobian of Var(beta-hat) at the fit's (theta, sigma)."""
    system, reml = fit.model.system, fit.reml
    parameters = fit.model.structure.parameters
    if parameters.linear:
        varpar = np.append(fit.theta, fit.sigma)

        def theta_of(phi):
            return phi[:-1]
    else:  # structured terms: their correlations on the real line, those on a bound held
        n = parameters.n_params  # theta may have other parameters after the terms'
        held = np.zeros(len(fit.theta), dtype=bool)
        held[:n] = (np.isfinite(parameters.lower()) & np.isfinite(parameters.upper())
                    & parameters.on_boundary(fit.theta[:n]))
        free = np.append(~held, True)
        z = parameters.unbounded(np.where(held, 0.0, fit.theta))
        full = np.append(z, fit.sigma)
        varpar = full[free]

        def theta_of(phi):
            point = full.copy()
            point[free] = phi
            return np.where(held, fit.theta, parameters.bounded(point[:-1]))

    def deviance(phi):
        return system.deviance(theta_of(phi), phi[-1], reml)

    def vcov(phi):
        return phi[-1] ** 2 * system.unscaled_vcov(system.factor(theta_of(phi)))

    h = hessian(deviance, varpar)
    try:
        cov = 2.0 * np.linalg.inv(h)
    except np.linalg.LinAlgError:
        cov = 2.0 * np.linalg.pinv(h)
    jac_theta = jacobian(vcov, varpar)
    return VarparDerivatives(varpar, h, cov, jac_theta)


def satterthwaite_df(contrast: np.ndarray, vcov: np.ndarray, deriv: VarparDerivatives) -> float:
    """df for the single contrast l' beta."""
    variance = contrast @ vcov @ contrast
    gradient = np.einsum("i,kij,j->k", contrast, deriv.jac_vcov, contrast)
    return float(2 * variance ** 2 / (gradient @ deriv.cov_varpar @ gradient))


def combine_f_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """Denominator df of an F statistic from the df of its q orthogonal t statistics."""
    nu = np.asarray(nu, dtype=float)
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    e = float(np.sum(nu / (nu - 2)))
    return 2 * e / (e - len(nu))
