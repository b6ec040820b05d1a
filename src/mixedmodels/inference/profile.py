"""Profile likelihood: zeta traces and confidence intervals (as lme4's ``profile``/``confint``).

Parameters are named as lme4's ``oldNames = FALSE``: ``sd_<column>|<group>``,
``cor_<column2>.<column1>|<group>``, ``sigma``, then the fixed effects. For a parameter psi_j
fixed at v, the deviance is minimized over all other parameters, and

    zeta(v) = sign(v - psi_j-hat) sqrt(dev(v) - dev(psi-hat)).

The interval at level 1 - alpha is where zeta = -/+ z_{1 - alpha/2}, found by root finding on
zeta (not by interpolating a grid). A standard deviation whose zeta stays above -z down to 0 gets
the lower bound 0; a correlation whose zeta does not reach z before +/-1 gets that bound.

Every parameter is profiled on the ML deviance, as lme4 does: a REML fit is first refitted by
ML, and its profile and intervals are those of the ML fit (lme4's ``confint`` on a REML fit gives
the same numbers). The REML criterion is not used because it cannot profile the fixed effects:
it changes with them only through X, not through their value.

The inner fits are BOBYQA's, then, where the deviance has an analytic gradient (lme4's
parameters, no residual structure), Newton steps (``core.optimize.newton_polish``): BOBYQA's
stop is known to about 1e-7 in the parameters, and two fits of the same data whose deviances
differ by rounding (rows in another order, or summed over partitions) moved MathAch's interval
for a correlation by 5e-8; with the steps, by 3e-10. They cost 10 to 50% more time.

The inner fits of a variance parameter move in psi, except for the correlations of unstructured
terms of 3 or more columns: those are not free (most points of their box are indefinite
matrices, no model), and a singular term's optimum lies on the curved edge of the valid ones,
where a box-constrained optimizer stalls. They move in the partial correlations of a vine
instead (``partial_correlations``), free in [-1, 1], the vine rooted so that a profiled
correlation is one of them. On a rank-2 term of 3 columns this moved a correlation's lower
limit from -1 (31 above the deviance's minimum there) to -0.565, where a brute-force minimum
rises by the chi-square quantile.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd

from ..core.centring import CentredCoordinates
from ..core.gradient import deviance_gradient
from ..core.optimize import OptSettings, OptSummary, minimize_bobyqa, newton_polish
from ..covariance.parameters import ParameterMap
from ..covariance.structures import LinearStructure
from ..parallel.executor import run_tasks
from ..validate import check_executor, check_integer, check_level
from .distributions import ndtri
from .parameters import parameter_names
from .partial_correlations import Vine

__all__ = ["Profiler", "profile_intervals", "profile_table", "profile_traces", "profiler_of"]


@dataclass
class _VarianceSpace:
    """psi = (the terms' sds and correlations, sigma) <-> (theta, sigma); a correlation with a
    zero sd is 0 here (any value gives the same model)."""

    parameters: ParameterMap

    def to_theta(self, psi: np.ndarray) -> np.ndarray:
        return self.parameters.from_sdcor(psi[:-1], psi[-1])

    def from_theta(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        return np.append(np.nan_to_num(self.parameters.sdcor(theta, sigma)), sigma)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lower, upper = self.parameters.sdcor_bounds()
        return np.append(lower, 0.0), np.append(upper, np.inf)


@dataclass
class _CentredSpace(_VarianceSpace):
    """psi_c = the sds and correlations of the centred columns (``core.centring``), and sigma
    <-> (theta, sigma). The shift moves only a centred term's intercept: every other sd and
    correlation, and sigma, is the same in psi_c as in psi (``unchanged``)."""

    centred: CentredCoordinates

    def to_theta(self, psi: np.ndarray) -> np.ndarray:
        return self.centred.theta(super().to_theta(psi))

    def from_theta(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        return super().from_theta(self.centred.centred(theta), sigma)

    def unchanged(self, plain: _VarianceSpace) -> np.ndarray:
        """(len(psi),) bool: the components that are the same in this space as in
        ``plain``'s, told at a generic theta (those the shift moves differ there)."""
        parameters = self.parameters
        n = parameters.n_params
        theta = np.clip(parameters.start() + 0.1 * np.arange(1, n + 1) / n,
                        parameters.lower(), parameters.upper())
        return np.isclose(plain.from_theta(theta, 1.0), self.from_theta(theta, 1.0),
                          rtol=1e-9, atol=0.0)


@dataclass(frozen=True)
class _Vines:
    """psi <-> phi: the correlations of each unstructured term of 3 or more columns replaced by
    the partial correlations of a C-vine (``partial_correlations.Vine``). In psi, a point is a
    model only where those correlations form a positive semi-definite matrix, whose curved
    edge stalls an optimizer (and a singular fit's optimum lies on it); in phi, every point of
    the box [-1, 1] is one. The other components are the same in both.

    Attributes:
        terms: per such term, the positions of its correlations in psi and its vine.
    """

    terms: tuple[tuple[np.ndarray, Vine], ...]

    def to_psi(self, phi: np.ndarray) -> np.ndarray:
        psi = np.array(phi, dtype=float)
        for index, vine in self.terms:
            psi[index] = vine.correlations(phi[index])
        return psi

    def to_phi(self, psi: np.ndarray) -> np.ndarray:
        phi = np.array(psi, dtype=float)
        for index, vine in self.terms:
            phi[index] = vine.partials(psi[index])
        return phi


def _vines(parameters: ParameterMap, j: int) -> _Vines | None:
    """The vines of the model's unstructured terms of 3 or more columns (None if it has none);
    the term whose correlation psi_j is, if one, rooted at one of that correlation's columns
    and with its other next, so that phi_j = psi_j."""
    terms = []
    for structure, where in zip(parameters.structures, parameters.slices):
        if not isinstance(structure, LinearStructure) or structure.k < 3:
            continue
        rows, cols = structure.pattern.rows, structure.pattern.cols
        off = rows != cols
        if off.sum() != structure.k * (structure.k - 1) // 2:  # not a full block
            continue
        index = np.arange(where.start, where.stop)[off]
        order = tuple(range(structure.k))
        if j in index:
            pair = (int(rows[off][index == j][0]), int(cols[off][index == j][0]))
            order = pair + tuple(c for c in order if c not in pair)
        terms.append((index, Vine(structure.k, rows[off], cols[off], order)))
    return _Vines(tuple(terms)) if terms else None


@dataclass(frozen=True)
class _Partials:
    """psi <-> phi for a residual correlation whose values form no box (``Correlation.
    box_values`` False: ARMA's coefficients, most of whose box is no stationary process):
    phi holds its partial autocorrelations (``boundary_values``), every point of [-1, 1] one.
    A coefficient is affine in its own partial autocorrelation, the others held (the
    Durbin-Levinson recursion is linear in each step's), so a profiled coefficient fixes that
    partial in closed form (``fixed``). In psi, the inner fits of ARMA(2, 1) near the edge of
    stationarity stalled, and zeta was not even monotone.

    Attributes:
        index: the correlation's positions in psi.
        correlation: the bound structure.
    """

    index: np.ndarray
    correlation: object

    def to_psi(self, phi: np.ndarray) -> np.ndarray:
        psi = np.array(phi, dtype=float)
        partial = np.clip(phi[self.index], -1 + 1e-15, 1 - 1e-15)
        psi[self.index] = self.correlation.values(2 * np.arctanh(partial))
        return psi

    def to_phi(self, psi: np.ndarray) -> np.ndarray:
        phi = np.array(psi, dtype=float)
        phi[self.index] = np.tanh(self.correlation.from_values(psi[self.index]) / 2)
        return phi

    def fixed(self, phi: np.ndarray, j: int, value: float) -> tuple[np.ndarray, float]:
        """(phi with psi_j = value by moving phi_j, how far outside [-1, 1] that puts phi_j):
        where no stationary, invertible process has that coefficient with the others held,
        phi_j on its bound and the excess, which the inner fits' objective penalizes
        (``EXCESS_PENALTY``) so that they are led back to the processes that have it, where
        the optimum often lies near that edge (an infinite objective outside stalled them).
        The bound is ``EDGE``, where the deviance is still finite (at +/-1 the process has a
        unit root, and its correlation matrices are singular)."""
        phi = phi.copy()
        phi[j] = 0.0
        at_zero = self.to_psi(phi)[j]
        phi[j] = 0.5
        slope = (self.to_psi(phi)[j] - at_zero) / 0.5
        partial = (value - at_zero) / slope if slope != 0 else np.inf
        phi[j] = np.clip(partial, -EDGE, EDGE)
        return phi, abs(partial) - EDGE if abs(partial) > EDGE else 0.0


def _partials(parameters: ParameterMap) -> _Partials | None:
    """The map of the residual correlation's coefficients to its partial autocorrelations,
    where its values form no box; else None."""
    correlation = parameters.residual.correlation if parameters.residual is not None else None
    if correlation is None or correlation.box_values:
        return None
    start = parameters.n_random
    return _Partials(np.arange(start, start + correlation.n_params), correlation)


class Profiler:
    """Profiles of one fit; each parameter's zeta function and interval are computed on demand."""

    def __init__(self, fit):
        self.fit = fit if not fit.reml else _ml_refit(fit)
        self.names = parameter_names(fit)
        self.space = _VarianceSpace(fit.model.structure.parameters)
        # the inner fits of a model searched in centred coordinates run in them, wherever
        # the profiled parameter is one the shift leaves as it is (``_centred_for``)
        centred = self.fit.model.centred_coordinates()
        self.centred = (None if centred is None
                        else _CentredSpace(fit.model.structure.parameters, centred))
        self._unchanged = None if centred is None else self.centred.unchanged(self.space)
        self.system = fit.model.system
        self.psi_hat = self.space.from_theta(self.fit.theta, self.fit.sigma)
        self.dev_hat = self._variance_deviance(self.psi_hat)
        # smallest first steps of the inner fits: sds and sigma on sigma's scale, correlations
        # on their own; theta is relative to sigma already
        self._lower, self._upper = self.space.bounds()
        self._is_correlation = self._lower < 0
        self._psi_floor = np.where(self._is_correlation, 0.05, 0.02 * self.fit.sigma)
        # Newton steps finish the inner fits where the deviance has an analytic gradient (no
        # residual-structure parameters; lme4's parameters): BOBYQA's stops, 1e-7 apart for
        # criteria that differ by rounding, moved the intervals by up to 5e-8
        self._has_gradient = (hasattr(self.system, "objective_and_gradient")
                              and fit.model.structure.parameters.linear)
        self._vines: dict[int, _Vines | None] = {}  # the inner fits' coordinates, per psi_j
        self._partials = _partials(fit.model.structure.parameters)

    # -- deviance with one parameter fixed -------------------------------------------------------
    def _variance_deviance(self, psi: np.ndarray, space: _VarianceSpace | None = None) -> float:
        """ML deviance at psi (of ``space``, by default lme4's); infinite where it cannot be
        evaluated (sigma <= 0, or sds so large that the Cholesky factor fails in floating
        point)."""
        if psi[-1] <= 0:
            return np.inf
        try:
            theta = (space or self.space).to_theta(psi)
        except np.linalg.LinAlgError:  # correlations that no covariance matrix has
            return np.inf
        return self._deviance(theta, psi[-1])

    def _deviance(self, theta: np.ndarray, sigma: float) -> float:
        """ML deviance at (theta, sigma); infinite where the Cholesky factor fails in floating
        point (sds many orders of magnitude above sigma: a response fitted almost exactly)."""
        try:
            return self.system.deviance(theta, sigma, False)
        except np.linalg.LinAlgError:
            return np.inf

    def _centred_for(self, j: int | None) -> _CentredSpace | None:
        """The centred space where the inner fits with psi_j fixed run in it (a model searched
        in centred coordinates, psi_j one the shift leaves as it is; j None: sigma or a fixed
        effect, over all of theta), else None. Where lme4's intercept is far from the data
        its sd and correlations are nearly degenerate: at Days - 2000 on sleepstudy (700 sds)
        the slope sd's upper limit came out 7% low in them and the profile took 25 times as
        long."""
        if self.centred is None:
            return None
        if j is not None and not self._unchanged[j]:
            return None
        return self.centred

    def _variance_deviance_and_gradient(self, phi: np.ndarray, free: list,
                                        vines: _Vines | None = None) -> tuple:
        """The ML deviance at phi (psi, or with ``vines`` their coordinates) and its gradient
        by phi[free]: the analytic gradient by (theta, sigma)
        (``core.gradient.deviance_gradient``) times the Jacobian of phi's map to theta, by
        central differences of that closed form (no factorization), one-sided where the other
        side is no covariance matrix."""
        def to_theta(point):
            return self.space.to_theta(point if vines is None else vines.to_psi(point))

        if phi[-1] <= 0:
            return np.inf, np.zeros(len(free))
        try:
            theta = to_theta(phi)
            value, by_varpar = deviance_gradient(self.system, theta, phi[-1], False)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros(len(free))
        jacobian = np.empty((len(free), len(by_varpar)))
        for row, i in enumerate(free):
            h = _MAP_STEP * max(abs(phi[i]), 1e-3)
            ends = []
            for step in (h, -h):
                moved = phi.copy()
                moved[i] += step
                try:
                    ends.append((step, to_theta(moved)))
                except np.linalg.LinAlgError:
                    ends.append((0.0, theta))
            (h_up, up), (h_down, down) = ends
            if h_up == h_down:
                return np.inf, np.zeros(len(free))
            jacobian[row, :-1] = (up - down) / (h_up - h_down)
            jacobian[row, -1] = float(i == len(phi) - 1)  # sigma is its own coordinate
        return value, jacobian @ by_varpar

    def _profiled_variance(self, j: int, value: float,
                           start: np.ndarray) -> tuple[float, np.ndarray]:
        """min over psi with psi_j = value."""
        centred = self._centred_for(j)
        if centred is not None:
            return self._centred_variance(j, value, [start, self.psi_hat], centred)
        free = [i for i in range(len(start)) if i != j]
        lower, upper = self._lower, self._upper
        # the coordinates of the inner fit: psi, with the correlations of unstructured terms
        # of 3 or more columns replaced by partial correlations (``_Vines``), phi_j = psi_j
        if j not in self._vines:
            self._vines[j] = _vines(self.fit.model.structure.parameters, j)
        vines, partials = self._vines[j], self._partials
        to_psi = (lambda phi: phi) if vines is None else vines.to_psi
        to_phi = (lambda psi: psi) if vines is None else vines.to_phi
        if partials is not None:  # (the vines' terms and the correlation's are apart)
            to_psi = (lambda phi, inner=to_psi: inner(partials.to_psi(phi)))
            to_phi = (lambda psi, inner=to_phi: partials.to_phi(inner(psi)))
            lower, upper = lower.copy(), upper.copy()
            lower[partials.index], upper[partials.index] = -1.0, 1.0
        base = to_phi(start)

        def fixed(x):  # (phi, how far it is from any with psi_j = value: ``_Partials``)
            phi = base.copy()
            phi[free] = x
            if partials is not None and j in partials.index:
                return partials.fixed(phi, j, value)
            phi[j] = value
            return phi, 0.0

        def coordinates(x):
            return fixed(x)[0]

        def objective(x):
            phi, excess = fixed(x)
            return self._variance_deviance(to_psi(phi)) + EXCESS_PENALTY * excess * excess

        starts = [np.clip(base[free], lower[free], upper[free]),
                  np.clip(to_phi(self.psi_hat)[free], lower[free], upper[free])]
        if self._is_correlation[j] and self._is_correlation[free].any():
            # with one correlation moved, the others' values may make a 2 x 2 block of
            # correlations far from its optimum: also start with them at 0
            uncorrelated = np.where(self._is_correlation[free], 0.0, starts[1])
            starts.append(uncorrelated)

        def value_and_gradient(x):
            return self._variance_deviance_and_gradient(coordinates(x), free, vines)

        results = []
        for initial in starts:
            summary = _bobyqa(objective, initial, lower[free], upper[free],
                              self._psi_floor[free])
            if self._has_gradient:
                summary = newton_polish(value_and_gradient, summary, upper[free])
            phi, excess = fixed(summary.final)
            if excess > 0.0:  # no process has psi_j = value near this start
                results.append((np.inf, start))
                continue
            psi = to_psi(phi)
            results.append((self._variance_deviance(psi), psi))
        return min(results, key=lambda pair: pair[0])

    def _centred_variance(self, j: int, value: float, starts: list,
                          centred: _CentredSpace) -> tuple[float, np.ndarray]:
        """``_profiled_variance`` with BOBYQA over the centred space's psi_c (psi_j, the same
        there, fixed), from each of ``starts`` (psi) mapped to it, then Newton steps in psi
        from its optimum mapped back."""
        free = [i for i in range(len(starts[0])) if i != j]
        lower, upper = self._lower, self._upper
        results = []
        for psi0 in starts:
            start = centred.from_theta(self.space.to_theta(psi0), psi0[-1])
            start[j] = value

            def objective(x, start=start):
                psi = start.copy()
                psi[free] = x
                return self._variance_deviance(psi, centred)

            summary = _bobyqa(objective, np.clip(start[free], lower[free], upper[free]),
                              lower[free], upper[free], self._psi_floor[free])
            psi_c = start.copy()
            psi_c[free] = summary.final
            psi = self.space.from_theta(centred.to_theta(psi_c), psi_c[-1])
            psi[j] = value
            if self._has_gradient:
                summary = newton_polish(lambda x: self._variance_deviance_and_gradient(
                    np.concatenate([x[:j], [value], x[j:]]), free),
                    replace(summary, final=psi[free], fmin=self._variance_deviance(psi)),
                    upper[free])
                psi[free] = summary.final
            results.append((self._variance_deviance(psi), psi))
        return min(results, key=lambda pair: pair[0])

    def _profiled_sigma(self, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """min over theta with sigma = value: a box-constrained problem in theta (the psi
        space has the awkward |cor| <= 1 bounds, on which the inner fit can stall)."""
        if not value > 0:  # sigma = 0: no model (the deviance is infinite)
            return np.inf, start
        parameters = self.fit.model.structure.parameters
        lower, upper = parameters.lower(), parameters.upper()
        centred = self._centred_for(None)
        results = []
        for initial in (self.space.to_theta(start), self.fit.theta):
            summary = _theta_bobyqa(lambda x: self._deviance(x, value), initial, lower, upper,
                                    centred)
            if self._has_gradient:
                summary = newton_polish(
                    lambda x: _without_last(deviance_gradient(self.system, x, value, False)),
                    summary, upper)
            theta = summary.final
            results.append((self._deviance(theta, value),
                            self.space.from_theta(theta, value)))
        return min(results, key=lambda pair: pair[0])

    def _profiled_fixed(self, j: int, value: float, theta0: np.ndarray) -> tuple[float, np.ndarray]:
        """ML deviance minimized over theta (beta and sigma profiled) with beta_j = value
        (beta_j - b0_j in a system of y - X b0: ``core.response_shift``)."""
        p = len(self.fit.beta)
        shift = self.fit.model.response_shift
        transform = np.zeros((p + 1, p))
        keep = [i for i in range(p) if i != j]
        transform[keep, np.arange(p - 1)] = 1.0
        transform[j, -1] = -(value if shift is None else value - shift[j])
        transform[p, -1] = 1.0
        system = self.system.with_fixed_transform(transform)
        parameters = self.fit.model.structure.parameters
        summary = _theta_bobyqa(lambda x: system.objective(x, False), theta0,
                                parameters.lower(), parameters.upper(), self._centred_for(None))
        if self._has_gradient:
            summary = newton_polish(lambda x: system.objective_and_gradient(x, False), summary,
                                    parameters.upper())
        theta = summary.final
        return system.objective(theta, False), theta

    # -- zeta and intervals ---------------------------------------------------------------------
    def zeta_function(self, name: str):
        """zeta(v) for one parameter. Each inner fit starts from the optimum found at the
        nearest value already evaluated (and, for variance parameters, also from the fit's
        optimum), so that zeta does not depend on the order of evaluation."""
        j = self.names.index(name)
        nvar = len(self.psi_hat)
        if j < nvar:
            center, dev_min = self.psi_hat[j], self.dev_hat
            inner = self._profiled_sigma if j == nvar - 1 else (
                lambda v, start: self._profiled_variance(j, v, start))
            optima = {center: self.psi_hat.copy()}
        else:
            k = j - nvar
            center, dev_min, inner = self.fit.beta[k], self.fit.objective, (
                lambda v, start: self._profiled_fixed(k, v, start))
            optima = {center: self.fit.theta.copy()}
        cache: dict[float, float] = {}

        def zeta(v):
            if v not in cache:
                nearest = min(optima, key=lambda u: abs(u - v))
                dev, optima[v] = inner(v, optima[nearest])
                cache[v] = np.sign(v - center) * np.sqrt(max(dev - dev_min, 0.0))
            return cache[v]

        return zeta, center

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        z = ndtri(0.5 + level / 2)
        zeta, center = self.zeta_function(name)
        j = self.names.index(name)
        lower_bound, upper_bound = self._bounds(j)
        scale = self._scale(j, center)
        return (_endpoint(zeta, center, -z, scale, lower_bound),
                _endpoint(zeta, center, z, scale, upper_bound))

    def _bounds(self, j: int) -> tuple[float, float]:
        """Parameter j's range: sd and sigma [0, inf), correlation [-1, 1], fixed effect any."""
        if j < len(self._lower):
            return self._lower[j], self._upper[j]
        return -np.inf, np.inf

    def _scale(self, j: int, center: float) -> float:
        """The first step away from the estimate when looking for an endpoint."""
        nvar = len(self._lower)
        if j >= nvar:
            return 2.0 * float(self.fit.stderr.iloc[j - nvar])
        if self._is_correlation[j]:
            return 0.25
        return 0.5 * abs(center) if center > 0 else 0.5 * self.fit.sigma

    def trace(self, name: str, level: float = 0.99, points: int = 12) -> pd.DataFrame:
        """zeta on a grid spanning the profile interval at ``level``."""
        low, high = self.interval(name, level)
        zeta, center = self.zeta_function(name)
        values = np.unique(np.concatenate([np.linspace(low, center, points // 2 + 1),
                                           np.linspace(center, high, points // 2 + 1)]))
        return pd.DataFrame({"parameter": name, "value": values,
                             "zeta": [zeta(v) for v in values]})


def _ml_refit(fit):
    """The ML fit of a REML fit's model; a singular ML optimum is expected and not reported."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="boundary \\(singular\\) fit")
        return fit.model.with_reml(False).fit()


def _without_last(value_and_gradient: tuple) -> tuple:
    """(value, gradient by theta) from ``deviance_gradient``'s (value, gradient by theta and
    sigma)."""
    value, gradient = value_and_gradient
    return value, gradient[:-1]


def _endpoint(zeta, center: float, target: float, scale: float, bound: float) -> float:
    """v on the side of ``target`` with zeta(v) = target, or ``bound`` if zeta never gets there."""
    direction = np.sign(target)
    previous = center
    step = scale
    for _ in range(60):
        candidate = center + direction * step
        if (direction < 0 and candidate <= bound) or (direction > 0 and candidate >= bound):
            if abs(zeta(bound)) < abs(target):
                return float(bound)
            candidate = bound
        if abs(zeta(candidate)) >= abs(target):
            from scipy.optimize import brentq  # 0.1 s to import: only when profiling

            return float(brentq(lambda v: zeta(v) - target,
                                min(previous, candidate), max(previous, candidate),
                                xtol=1e-10))
        previous = candidate
        step *= 1.6
    return float("nan")


_THETA_FLOOR = 0.02
#: the inner fits' penalty per squared excess of a partial autocorrelation beyond +/-``EDGE``
#: (``_Partials.fixed``): a deviance of 10,000 at an excess of 0.01
EXCESS_PENALTY = 1e8
#: the partial autocorrelations a profiled ARMA coefficient may move to (``_Partials``)
EDGE = 1.0 - 1e-6
_MAP_STEP = 1e-6  # relative step of the central differences of psi's map to theta
PROFILE_SETTINGS = OptSettings(ftol_rel=1e-12, ftol_abs=1e-10, xtol_abs=1e-10, maxeval=5000)


def _bobyqa(objective, x0, lower, upper, floor) -> OptSummary:
    """The inner fits: BOBYQA from x0. Each coordinate's first step is a tenth of its value (at
    least ``floor``), and at most half the way to its lower bound: BOBYQA moves a start closer
    than one step to a bound onto that bound, where the deviance may be infinite (sigma = 0)
    or far from the optimum."""
    x0 = np.clip(np.asarray(x0, dtype=float), lower, upper)
    if len(x0) == 0:
        value = objective(x0)
        return OptSummary("none", PROFILE_SETTINGS, x0, lower, x0, value, 1, "SUCCESS", 0.0,
                          np.array([value]))
    step = np.maximum(np.abs(x0) * 0.1, floor)
    inside = x0 > lower
    step[inside] = np.minimum(step[inside], 0.5 * (x0 - lower)[inside])
    step = np.minimum(step, np.where(np.isfinite(upper - lower), (upper - lower) / 4, step))
    return minimize_bobyqa(objective, x0, lower, PROFILE_SETTINGS, upper,
                           np.maximum(step, 1e-8))


def _theta_bobyqa(objective, theta0, lower, upper, centred: _CentredSpace | None) -> OptSummary:
    """The inner fits over theta: BOBYQA from theta0, over the centred coordinates theta_c
    (which have theta's bounds) where ``centred`` is given; the summary's point in theta."""
    if centred is None:
        return _bobyqa(objective, theta0, lower, upper, _THETA_FLOOR)
    coordinates = centred.centred
    summary = _bobyqa(lambda x: objective(coordinates.theta(x)), coordinates.centred(theta0),
                      lower, upper, _THETA_FLOOR)
    return replace(summary, final=coordinates.theta(summary.final))


# -- several parameters, optionally on an executor ------------------------------------------------
def profile_intervals(fit, names, level: float, executor=None) -> list[tuple[float, float]]:
    """The profile interval of each parameter, in the order of ``names``; with an executor
    (``concurrent.futures``, e.g. a Dask cluster's), one task per parameter."""
    return _per_parameter(fit, partial(Profiler.interval, level=level), names, executor)


def profile_traces(fit, names, level: float, points: int, executor=None) -> list:
    """The zeta trace of each parameter (see ``Profiler.trace``), as ``profile_intervals``."""
    return _per_parameter(fit, partial(Profiler.trace, level=level, points=points), names,
                          executor)


def profile_table(fit, level: float = 0.99, points: int = 12, executor=None) -> pd.DataFrame:
    """Zeta traces of every parameter (columns parameter, value, zeta), each spanning its
    profile interval at ``level`` with about ``points`` values (at least 2)."""
    level, executor = check_level(level), check_executor(executor)
    points = check_integer(points, "points", minimum=2)
    traces = profile_traces(fit, parameter_names(fit), level, points, executor)
    return pd.concat(traces, ignore_index=True)


def profiler_of(fit) -> Profiler:
    """The fit's ``Profiler``, built once per fit (it keeps the inner fits' optima)."""
    return fit.memo("profiler", lambda: Profiler(fit))


def _per_parameter(fit, method, names, executor) -> list:
    """``method(profiler, name)`` for each name; on an executor the fit's profiler (its ML
    refit done once, here) is sent to the workers, one task per parameter."""
    return run_tasks(method, profiler_of(fit), names, executor=executor, chunk_size=1)
