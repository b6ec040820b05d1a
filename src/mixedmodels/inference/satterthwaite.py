"""Satterthwaite degrees of freedom for linear contrasts of the fixed effects (as lmerTest).

With phi = (theta, sigma) and C(phi) = Var(beta-hat) = sigma^2 (R_X R_X')^{-1}(theta):

* A = 2 H^{-1}, H the Hessian of the (REML or ML) deviance in phi: the asymptotic covariance
  of phi-hat;
* J_k = dC / dphi_k;
* for a contrast l: v = l' C l, g_k = l' J_k l and  df = 2 v^2 / (g' A g).

F tests of several rows (lmerTest's ``contestMD``): rotate L by the eigenvectors of L C L', take
one Satterthwaite df nu_m per direction, and combine them as
E = sum nu_m / (nu_m - 2), ddf = 2 E / (E - q)  (or 2 if any nu_m <= 2).

Every derivative is taken on functions whose cost does not depend on n. H is the Jacobian of
the deviance's analytic gradient (``core.gradient.deviance_gradient``) by central differences,
made symmetric, where the model has that gradient (no residual-structure parameters); else, as
lmerTest, the second differences of the deviance itself. Second differences divide the
deviance's rounding by the square of the step, and the solution's rounding depends on the order
of the rows: the same rows in another order moved beets' df by 4.9e-6 that way, and by 4e-9
through the gradient (``tests/test_inference.py``).

A structured term's correlation parameters (``cs``, ``ar1``, ``toep``) are bounded on both
sides, and the map to Lambda is undefined beyond the bounds, where the steps of the numerical
derivatives could go; they are differentiated on the real line instead (``ParameterMap``'s
``unbounded``: a scaled atanh). The df do not depend on the parameterization at the optimum
(H and g transform with the same Jacobian). A correlation parameter on its bound (a boundary
fit) is held at its value. lme4's parameters (and every sd) are used as they are, as
lmerTest does, except for a (1 + x | g) term on a covariate far from 0, which the optimizer
searched in centred coordinates (``core.centring``): there theta is ill-conditioned (on
sleepstudy with Days + 1000 the slope's df came out -13, against 17 for Days), and the
derivatives are taken in the centred coordinates: the analytic gradient times the Jacobian
of the map to theta (17.0000017 for the slope's df at Days + 1000; second differences of the
deviance gave 17.00013).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.gradient import deviance_gradient
from ..core.numdiff import hessian, jacobian

__all__ = ["VarparDerivatives", "varpar_derivatives", "satterthwaite_df", "combine_f_ddf"]

#: Relative steps of the central differences (each refined 4 times by Richardson
#: extrapolation): of the analytic gradient for H, and of Var(beta-hat) for J. Large steps
#: keep the rounding of the differenced values small against the step; the extrapolation
#: removes the truncation error (see the module docstring).
GRADIENT_STEP = 0.1
VCOV_STEP = 1e-2
#: the relative step of the centred coordinates' map to theta (``core.centring``), a few
#: QR decompositions of k x k matrices: exact but for rounding
MAP_STEP = 1e-4


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
    # sigma enters as sigma / sigma-hat, and lme4's theta divided by its columns' units
    # (``core.start.theta_units``): the differences' steps are then relative to each
    # parameter's natural size (a sigma below numdiff's zero tolerance took an absolute step
    # of 1e-4, past 0; so did a slope's theta of 1.5e-7 on sleepstudy's Days * 1e5, whose
    # df came out 0.11 against 17); the results are mapped back below (df do not depend on
    # the parameters' scale)
    unit = fit.sigma
    theta = np.asarray(fit.theta, dtype=float)
    scale = fit.model.theta_units()
    free = np.ones(len(theta) + 1, dtype=bool)
    centred = fit.model.centred_coordinates()
    if centred is not None:  # a term on a covariate far from 0: in its centred coordinates
        scale = centred.units(scale)
        coordinates = centred.centred(theta)
    elif not parameters.linear:  # structured terms: correlations on the real line, or held
        n = parameters.n_params  # theta may have other parameters after the terms'
        free[:n] = ~(np.isfinite(parameters.lower()) & np.isfinite(parameters.upper())
                     & parameters.on_boundary(theta[:n]))
        coordinates = parameters.unbounded(np.where(free[:-1], theta, 0.0))
    else:
        coordinates = theta
    full = np.append(coordinates / scale, 1.0)
    varpar = full[free]

    def unpacked(phi):
        point = full.copy()
        point[free] = phi
        return point

    def theta_of(phi):
        if centred is not None:
            return centred.theta(phi[:-1] * scale)
        if parameters.linear:
            return phi[:-1] * scale
        return np.where(free[:-1], parameters.bounded(unpacked(phi)[:-1] * scale), theta)

    def vcov(phi):
        return (phi[-1] * unit) ** 2 * system.unscaled_vcov(system.factor(theta_of(phi)))

    if hasattr(system, "objective_and_gradient"):  # the Jacobian of the analytic gradient
        def gradient(phi):
            value, by_varpar = deviance_gradient(system, theta_of(phi), phi[-1] * unit, reml)
            if not np.isfinite(value):
                raise np.linalg.LinAlgError("the factor failed within the Hessian's steps")
            by_varpar[-1] *= unit
            if centred is not None:  # d theta / d theta_c: the map's Jacobian, differenced
                by_varpar[:-1] = jacobian(centred.theta, phi[:-1] * scale,
                                          relative=MAP_STEP) @ by_varpar[:-1]
            elif not parameters.linear:  # d theta / d z, the map acting on each alone
                by_varpar[:-1] *= parameters.bounded_derivative(unpacked(phi)[:-1] * scale)
            by_varpar[:-1] *= scale
            return by_varpar[free]

        jac = jacobian(gradient, varpar, relative=GRADIENT_STEP)
        h = 0.5 * (jac + jac.T)
    else:
        h = hessian(lambda phi: system.deviance(theta_of(phi), phi[-1] * unit, reml), varpar)
    try:
        cov = 2.0 * np.linalg.inv(h)
    except np.linalg.LinAlgError:
        cov = 2.0 * np.linalg.pinv(h)
    jac_theta = jacobian(vcov, varpar, relative=VCOV_STEP)
    per = 1.0 / np.append(scale, unit)[free]  # d phi / d parameter
    return VarparDerivatives(varpar / per, h * np.outer(per, per), cov / np.outer(per, per),
                             jac_theta * per[:, None, None])


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
