"""Restrictions of theta to structures nested in a Toeplitz correlation, and to a residual
correlation's independence (``Held``).

A Toeplitz correlation of L lags (a ``toep()`` random-effects term, or ``correlation=
"toep(...)"``) contains two one-parameter structures: compound symmetry (every lag's
correlation rho) and AR(1) (lag l's correlation rho^l). Its likelihood, over the partial
autocorrelations, can have more than one local optimum, and the optimizer can stop at one
that is worse than the nested structures' optima: on Machines, ``score ~ Machine +
toep(0 + Machine | Worker, hom = TRUE)`` stopped at a REML criterion of 215.809, above the
nested ``cs`` term's 215.688, while the Toeplitz optimum is 215.161.

A ``Restriction`` is theta with one Toeplitz part replaced by one such rho, the other
parameters free: ``LinearMixedModel.optimize`` minimizes over it, and where its optimum is
below the unrestricted fit's it continues from there, so that a Toeplitz fit is never worse
than the fits of its compound-symmetric and AR(1) special cases. ``Held`` holds the last
lag's partial autocorrelation at +/-1 the same way: with few groups the optimum can be on
that boundary, which the optimizer, starting at 0, does not reach.

rho is given to the optimizer unbounded, as v with rho = lo + (hi - lo) (1 + tanh v) / 2:
(lo, hi) = (-1/L, 1) for compound symmetry (positive definite for L + 1 times), (-1, 1) for
AR(1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .correlation import autocorrelations, partial_autocorrelations

__all__ = ["Held", "Restriction", "toeplitz_restrictions"]

#: how far inside its bounds a nested structure's start rho is kept (its v finite)
_INSIDE = 1e-6


@dataclass(frozen=True)
class Restriction:
    """theta (n,) with the parameters ``part`` given by one correlation rho of a nested
    structure: the restricted vector w is theta without ``part``, then v (rho on the
    unbounded scale).

    Attributes:
        name: the nested structure and where ("cs in term 2", "ar1 in the residual
            correlation").
        theta: the full theta the restriction starts from (its other parameters).
        part: the parameters the nested structure replaces.
        lags: rho -> the lag correlations (L,) of the nested structure.
        parameters: lag correlations (L,) -> the parameters of ``part``.
        rho_bounds: (lo, hi) of rho.
        rho: the start's rho: theta's lag-1 correlation.
        lower, upper: (n,) the bounds of theta.
    """

    name: str
    theta: np.ndarray
    part: slice
    lags: Callable[[float], np.ndarray]
    parameters: Callable[[np.ndarray], np.ndarray]
    rho_bounds: tuple[float, float]
    rho: float
    lower: np.ndarray
    upper: np.ndarray

    def _others(self, vector: np.ndarray) -> np.ndarray:
        return np.delete(vector, np.arange(len(vector))[self.part])

    def start(self) -> np.ndarray:
        """w at theta's other parameters and the start's ``rho``."""
        lo, hi = self.rho_bounds
        inside = np.clip((self.rho - lo) / (hi - lo), _INSIDE, 1 - _INSIDE)
        return np.append(self._others(self.theta), np.arctanh(2 * inside - 1))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of w: theta's for the other parameters, none for v."""
        return (np.append(self._others(self.lower), -np.inf),
                np.append(self._others(self.upper), np.inf))

    def full(self, w: np.ndarray) -> np.ndarray:
        """theta (n,) of the restricted vector w."""
        lo, hi = self.rho_bounds
        rho = lo + (hi - lo) * (1 + np.tanh(w[-1])) / 2
        theta = np.empty(len(self.theta))
        keep = np.ones(len(theta), dtype=bool)
        keep[self.part] = False
        theta[keep] = w[:-1]
        theta[self.part] = self.parameters(self.lags(rho))
        return theta


@dataclass(frozen=True)
class Held:
    """theta (n,) with the parameters ``indices`` held at ``values``: the restricted vector w
    is theta without them. Held are a Toeplitz correlation's last partial autocorrelation at
    +/-(1 - ``BOUND_GAP``) (the boundary, where the Toeplitz matrix is singular), and a
    residual correlation structure's independence (every correlation 0), the model it
    extends: an AR(1) residual correlation with random intercepts and slopes stopped at
    phi = 1, 16 above its own model's criterion at phi = 0 (residual sd 1e-2 of the
    groups'); the optimizer compares the fit with the restricted one, and continues from it
    where it is better.

    Attributes:
        name: what is held ("pacf 3 = +1 in term 1", "independent residuals").
        theta, lower, upper: as ``Restriction``'s.
        indices, values: the parameters held, and their values.
    """

    name: str
    theta: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def start(self) -> np.ndarray:
        return np.delete(self.theta, self.indices)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.delete(self.lower, self.indices), np.delete(self.upper, self.indices)

    def full(self, w: np.ndarray) -> np.ndarray:
        theta = np.empty(len(self.theta))
        keep = np.ones(len(theta), dtype=bool)
        keep[self.indices] = False
        theta[keep] = w
        theta[self.indices] = self.values
        return theta


#: how far inside +/-1 a partial autocorrelation is held on its bound (``Held``): within
#: the singular tolerance, where the criterion is its limit at the bound to about 1e-6
BOUND_GAP = 1e-6


def toeplitz_restrictions(theta: np.ndarray, part: slice, lags: np.ndarray, where: str,
                          parameters: Callable[[np.ndarray], np.ndarray],
                          lower: np.ndarray, upper: np.ndarray) -> list[Restriction | Held]:
    """The restrictions of a Toeplitz correlation whose parameters are ``theta[part]`` and
    lag correlations ``lags`` (L,) (``parameters``: lag correlations to parameters): its
    compound-symmetric and AR(1) special cases, each starting from the lag-1 correlation,
    then the last lag's partial autocorrelation on its bounds +/-1 (``Held``: on few
    groups the optimum can be there, where the optimizer, starting at 0, does not go: 56.55
    against a fit of 63.46 on 4 groups of 4 times). The last lag's, which the fewest pairs
    of times inform: on 24 simulated fits of 4 groups of 4 times, the cs and AR(1)
    restrictions left 2 fits 0.44 and 0.62 above the optimum, and the last lag's bounds took
    both to it at 18% more evaluations; every lag's bounds did no better at 49% more. None
    for one lag, where all three structures are the same and the bound is the fit's own."""
    n_lags = len(lags)
    if n_lags < 2:
        return []
    powers = np.arange(1, n_lags + 1)
    lag1 = float(lags[0])
    out = [Restriction(f"cs in {where}", theta, part, lambda rho: np.full(n_lags, rho),
                       parameters, (-1.0 / n_lags, 1.0), lag1, lower, upper),
           Restriction(f"ar1 in {where}", theta, part, lambda rho: rho ** powers,
                       parameters, (-1.0, 1.0), lag1, lower, upper)]
    partial = partial_autocorrelations(lags)
    for sign in (1.0, -1.0):
        held = partial.copy()
        held[-1] = sign * (1.0 - BOUND_GAP)
        value = parameters(autocorrelations(held)[1:])[-1]
        if np.isfinite(value):
            out.append(Held(f"pacf {n_lags} = {sign:+.0f} in {where}", theta,
                            np.array([part.stop - 1]), np.array([float(value)]), lower, upper))
    return out
