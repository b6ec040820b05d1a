"""The optimizers of theta, with bounds, and the record of what they did.

Two methods, both NLopt's: BOBYQA (derivative-free, Powell 2009) and L-BFGS (Liu and Nocedal
1989) driven by the analytic gradient of the profiled criterion (``core.gradient``); a
single variance component has its own (``core.scalar``). Settings, start, end, evaluation
counts and the objective trace are kept together in one frozen ``OptSummary``. The
convergence check scales the gradient by the Hessian: it asks how much one more Newton step
could still lower the objective, 0.5 g' H^{-1} g, which, unlike the size of the raw
gradient, does not grow with the number of observations (lme4's false alarms on large data).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable

import nlopt
import numpy as np
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dpotri as _potri

from .numdiff import jacobian, step_sizes

__all__ = ["BestPoint", "OptSettings", "OptSummary", "check_convergence", "minimize_bobyqa",
           "minimize_lbfgs", "newton_polish", "numerical_polish", "snap_to_bounds"]

#: the values of ``OptSettings.method``
METHODS = ("auto", "bobyqa", "lbfgs")
#: the return codes of an optimizer that met its own tolerances
CONVERGED = ("SUCCESS", "FTOL_REACHED", "XTOL_REACHED")
#: the number of past gradients L-BFGS keeps (NLopt's vector storage)
LBFGS_STORAGE = 100

#: parameters closer than this to a bound are tried at the bound (MixedModels.jl's
#: ``xtol_zero_abs``)
SNAP_DISTANCE = 1e-3
#: the objective at the bound may exceed the optimum by this much, relative (rounding)
SNAP_ROUNDING = 1e-12

#: Newton polish (``newton_polish``): at most this many free parameters and steps; the
#: relative step of the Hessian's differences; parameters this close to a bound are held; a
#: step may raise the objective by this much, relative (its rounding on large data); steps
#: this small, relative, end it
POLISH_PARAMETERS = 12
POLISH_STEPS = 4
HESSIAN_STEP = 1e-6
BOUND_GAP = 1e-8
POLISH_ROUNDING = 1e-10
POLISH_TOLERANCE = 1e-11
#: the polish's curvature from the optimizer's last steps (``_secant_hessian``): points kept,
#: the nearest and the farthest a point may be (relative to theta: nearer, the gradient's
#: rounding swamps its change; farther, the third derivative), and the largest condition
#: number of their steps
SECANT_HISTORY = 32
SECANT_NEAREST = 1e-6
SECANT_RADIUS = 1e-2
SECANT_CONDITION = 1e6
#: the numerical polish's gradient (``numerical_polish``): central differences with steps of
#: this much of each parameter, then half of it, combined by Richardson extrapolation
NUMERICAL_STEP = 1e-3
NUMERICAL_ROUNDS = 2

_RESULTS = {
    nlopt.SUCCESS: "SUCCESS", nlopt.STOPVAL_REACHED: "STOPVAL_REACHED",
    nlopt.FTOL_REACHED: "FTOL_REACHED", nlopt.XTOL_REACHED: "XTOL_REACHED",
    nlopt.MAXEVAL_REACHED: "MAXEVAL_REACHED", nlopt.MAXTIME_REACHED: "MAXTIME_REACHED",
}


@dataclass(frozen=True)
class OptSettings:
    """Optimizer settings.

    ``method``: "bobyqa", "lbfgs" (the analytic gradient; models without residual-structure
    parameters), or "auto": L-BFGS where an evaluation is costly (the blocked factor:
    several grouping factors, so 2 parameters or more, and more than a hundred rows in
    Lambda' A Lambda + I) and from 3 parameters on smaller systems, where it reaches the same
    optimum in a third to a thirtieth of BOBYQA's evaluations; BOBYQA otherwise, where the
    compiled evaluations cost less than the gradient's bookkeeping, and for structured terms
    (``lmm.model.GRADIENT_FROM``); with a single variance component (one parameter), Newton's
    method on it (``core.scalar``: it stops where the gradient's rounding does, tighter than
    the tolerances below, and honours ``initial_step`` and ``maxeval``).

    The tolerances have NLopt's names and serve both methods; their defaults are tighter than
    lme4's, which stop early on some models; the extra evaluations cost little because each is
    cheap.
    """

    ftol_rel: float = 1e-13
    ftol_abs: float = 1e-11
    xtol_rel: float = 0.0
    xtol_abs: float = 1e-10
    initial_step: float = 0.75
    maxeval: int = 100_000
    method: str = "auto"


@dataclass(frozen=True)
class OptSummary:
    """What the optimizer was given and what it did."""

    optimizer: str
    settings: OptSettings
    initial: np.ndarray
    lower_bounds: np.ndarray
    final: np.ndarray
    fmin: float
    evaluations: int
    return_code: str
    seconds: float
    trace: np.ndarray = field(repr=False)
    backend: str = ""  # the objective's back-end (see ``core.pls``), when it is a model's
    gradient_evaluations: int = 0
    #: the Newton polish's Hessian of the parameters off their bounds at ``final``:
    #: "positive definite", "indefinite" (not positive definite: a saddle, or a flat
    #: direction), or "" (no polish)
    curvature: str = ""

    @property
    def stopped_normally(self) -> bool:
        return self.return_code in ("SUCCESS", "FTOL_REACHED", "XTOL_REACHED",
                                    "ROUNDOFF_LIMITED")

    def __str__(self) -> str:
        backend = f" of the {self.backend} objective" if self.backend else ""
        gradients = (f" ({self.gradient_evaluations} with the gradient)"
                     if self.gradient_evaluations else "")
        return (f"{self.optimizer}: {self.return_code} after {self.evaluations} evaluations"
                f"{gradients}{backend} ({self.seconds * 1e3:.1f} ms), objective {self.fmin:.10g}\n"
                f"  theta {np.array2string(self.final, precision=6)}")


class BestPoint:
    """``objective_and_gradient`` that remembers its value and gradient at the lowest value
    it has returned (``at``), and the last ``SECANT_HISTORY`` points and gradients
    (``history``): the Newton polish starts where the optimizer stopped, whose gradient the
    optimizer has already paid for, with the curvature its last steps measured
    (``newton_polish``)."""

    def __init__(self, objective_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
                 history: bool = True):
        """``history``: keep the last points (False: only the best, for a polish that
        differences its Hessian)."""
        self._objective_and_gradient = objective_and_gradient
        self._x: np.ndarray | None = None
        self._value = np.inf
        self._gradient = np.zeros(0)
        self.history: deque = deque(maxlen=SECANT_HISTORY if history else 0)

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = self._objective_and_gradient(x)
        if self.history.maxlen and math.isfinite(value):
            self.history.append((np.array(x, dtype=float), np.array(gradient, dtype=float)))
        if value < self._value:
            self._x, self._value = np.array(x, dtype=float), value
            self._gradient = np.array(gradient, dtype=float)
        return value, gradient

    def reflect(self, signs: np.ndarray) -> None:
        """Map what is remembered to the coordinates signs * x (a sign change of some
        parameters that leaves the objective as it is: ``ParameterMap.canonical``), whose
        gradients are signs * g."""
        if self._x is not None:
            self._x, self._gradient = self._x * signs, self._gradient * signs
        self.history = deque(((x * signs, g * signs) for x, g in self.history),
                             maxlen=self.history.maxlen)

    def at(self, x: np.ndarray) -> tuple[float, np.ndarray] | None:
        """(value, gradient) at x when x is the best point returned so far, else None."""
        if self._x is None or not np.array_equal(x, self._x):
            return None
        return self._value, self._gradient.copy()


def minimize_bobyqa(objective: Callable[[np.ndarray], float], initial: np.ndarray,
                    lower: np.ndarray, settings: OptSettings = OptSettings(),
                    upper: np.ndarray | None = None,
                    initial_step: np.ndarray | None = None, backend: str = "") -> OptSummary:
    """Minimize ``objective`` over lower <= x (<= upper) with NLopt's BOBYQA.

    ``initial_step`` (one per coordinate) overrides ``settings.initial_step``; a step is at
    most a quarter of its parameter's range when both bounds are finite (a correlation's).
    ``backend`` names the objective's back-end in the summary. A non-finite
    objective value counts as very large. NLopt raises when round-off stops progress
    (typically at a boundary optimum); the best point evaluated is then the result, with
    return code ROUNDOFF_LIMITED.
    """
    trace: list[float] = []
    best = {"value": np.inf, "x": np.array(initial, dtype=float)}

    def wrapped(x, grad):  # NLopt's signature; BOBYQA uses no gradient
        value = objective(x)
        trace.append(value)
        if value < best["value"]:
            best["value"], best["x"] = value, x.copy()
        return value if math.isfinite(value) else 1e300

    opt = nlopt.opt(nlopt.LN_BOBYQA, len(initial))
    steps = np.full(len(initial), settings.initial_step) if initial_step is None else \
        np.asarray(initial_step, dtype=float)
    if upper is not None:  # BOBYQA's first steps must fit twice in a parameter's range
        width = np.asarray(upper, dtype=float) - np.asarray(lower, dtype=float)
        steps = np.where(np.isfinite(width), np.minimum(steps, width / 4), steps)
    opt.set_initial_step(steps)
    return _run(opt, wrapped, initial, lower, upper, settings, trace, best, backend,
                gradients=False)


def minimize_lbfgs(objective_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
                   initial: np.ndarray, lower: np.ndarray, settings: OptSettings = OptSettings(),
                   upper: np.ndarray | None = None, backend: str = "") -> OptSummary:
    """Minimize over lower <= x (<= upper) with NLopt's L-BFGS (low-storage BFGS, Nocedal
    1980; Liu and Nocedal 1989) and the analytic gradient, with ``settings``' tolerances.

    ``objective_and_gradient(x)`` returns (value, gradient); a non-finite value counts as
    very large. Each call counts as one evaluation and one gradient evaluation. NLopt raises
    when round-off stops progress, or when its line search finds no descent; the best point
    evaluated is then the result, with return code ROUNDOFF_LIMITED or FAILURE; FAILURE too
    when no evaluation was finite (NLopt, given zero gradients there, reports SUCCESS).
    """
    trace: list[float] = []
    best = {"value": np.inf, "x": np.array(initial, dtype=float)}

    def wrapped(x, grad):
        value, gradient = objective_and_gradient(x)
        trace.append(value)
        if value < best["value"]:
            best["value"], best["x"] = value, x.copy()
        if not math.isfinite(value):
            grad[:] = 0.0
            return 1e300
        grad[:] = gradient
        return value

    opt = nlopt.opt(nlopt.LD_LBFGS, len(initial))
    opt.set_vector_storage(LBFGS_STORAGE)
    summary = _run(opt, wrapped, initial, lower, upper, settings, trace, best, backend,
                   gradients=True)
    if not np.isfinite(summary.fmin):  # no finite value seen: nothing converged
        return replace(summary, return_code="FAILURE")
    return summary


def _run(opt, wrapped, initial, lower, upper, settings: OptSettings, trace: list, best: dict,
         backend: str, gradients: bool) -> OptSummary:
    """Run an NLopt optimizer with ``settings`` and summarize."""
    opt.set_min_objective(wrapped)
    opt.set_lower_bounds(lower)
    if upper is not None:
        opt.set_upper_bounds(upper)
    opt.set_ftol_rel(settings.ftol_rel)
    opt.set_ftol_abs(settings.ftol_abs)
    opt.set_xtol_rel(settings.xtol_rel)
    opt.set_xtol_abs(settings.xtol_abs)
    opt.set_maxeval(settings.maxeval)
    start = time.perf_counter()
    try:
        opt.optimize(np.asarray(initial, dtype=float))
        code = _RESULTS.get(opt.last_optimize_result(), str(opt.last_optimize_result()))
    except nlopt.RoundoffLimited:
        code = "ROUNDOFF_LIMITED"
    except nlopt.runtime_error:  # NLopt's generic failure: L-BFGS's line search failed
        code = "FAILURE"
    seconds = time.perf_counter() - start
    name = {nlopt.LN_BOBYQA: "LN_BOBYQA", nlopt.LD_LBFGS: "LD_LBFGS"}[opt.get_algorithm()]
    return OptSummary(name, settings, np.array(initial, dtype=float), np.asarray(lower),
                      best["x"], float(best["value"]), len(trace), code, seconds,
                      np.array(trace), backend, len(trace) if gradients else 0)


def newton_polish(objective_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
                  summary: OptSummary, upper: np.ndarray | None = None,
                  known: tuple[float, np.ndarray] | None = None,
                  history=(), scale: np.ndarray | None = None) -> OptSummary:
    """Newton steps from the optimizer's end on the parameters off their bounds, with the
    analytic gradient, while they lower the Newton decrement g' H^-1 g and do not raise the
    objective beyond its rounding, at most ``POLISH_STEPS``; models with more than
    ``POLISH_PARAMETERS`` free parameters are left as they are. ``known``: (value, gradient)
    at ``summary.final`` when the optimizer computed them there (``BestPoint.at``), not
    computed again. ``scale``: (n,) each parameter's natural size (its column's units,
    ``core.start.theta_units``; default 1): the Hessian's differences and the test that a
    step no longer moves x are relative to the larger of it and |x|, so that a slope's sd
    of 5e-7 (a covariate in units 1e6 times too small) is differenced by 5e-13, not by a
    step twice its size that left the gradient at 4.5e-3.

    H is the secant curvature of the optimizer's last evaluations near the end
    (``history``, pairs of point and gradient: ``_secant_hessian``), which costs nothing;
    where they do not determine it, or its first step fails, the forward-difference Hessian
    at the end (one gradient per free parameter). An approximate H only slows the steps'
    convergence (each shrinks the error by about H's relative error), not where they end;
    each step's own secant pair then corrects it (BFGS's update). On InstEval: 2 steps
    instead of 3 differences and 1 step. (On a compiled small system the fit of the secant,
    about 0.15 ms, costs more than the differences' gradients: models pass no history there.)

    Why: both optimizers stop when the objective changes by less than ``ftol_rel``, which
    leaves theta known to about the square root of that (worse along flat directions): two
    fits whose objectives differ only by rounding (the same rows summed in another order,
    e.g. over partitions of the data) then stop at thetas 1e-6 apart. Newton steps from
    there land where the gradient vanishes, to the gradient's own precision (about 1e-10),
    the same point for both.
    """
    x = summary.final  # replaced, never changed in place
    lower = summary.lower_bounds
    upper = np.full(len(x), np.inf) if upper is None else np.asarray(upper, dtype=float)
    scale = np.ones(len(x)) if scale is None else np.asarray(scale, dtype=float)
    free = _free_parameters(x, lower, upper)
    if not 0 < len(free) <= POLISH_PARAMETERS:
        return summary
    # the bounds and units of the free parameters, as Python's floats: the steps' tests on a
    # few numbers cost microseconds each in NumPy
    bounds = list(zip(lower[free].tolist(), upper[free].tolist()))
    units = scale[free].tolist()
    value, gradient = objective_and_gradient(x) if known is None else known
    calls = int(known is None)
    secant = _secant_hessian(x, gradient, history, free)
    inverse = None if secant is None else _inverse_if_positive_definite(secant)
    if inverse is None:
        inverse = _differenced_inverse(objective_and_gradient, x, gradient, free, scale)
        calls += len(free)
    curvature = "indefinite" if inverse is None else "positive definite"
    moved = False
    steps = 0
    while inverse is not None and steps < POLISH_STEPS:
        step = -(inverse @ gradient[free])
        trial = x.copy()
        trial[free] += step
        inside = all(low <= v <= high for v, (low, high) in zip(trial[free].tolist(), bounds))
        if inside:
            trial_value, trial_gradient = objective_and_gradient(trial)
            calls += 1
            steps += 1
            trial_step = -(inverse @ trial_gradient[free])
        # the objective gains less than its own rounding here: the step is judged by the
        # gradient (its Newton decrement g' H^-1 g must fall), the objective only guards
        # against a step out of the quadratic region
        if not (inside and trial_value <= value + POLISH_ROUNDING * abs(value)
                and trial_gradient[free] @ -trial_step < gradient[free] @ -step):
            if secant is None or moved:
                break
            secant = None  # the secant curvature misled the first step: difference it
            inverse = _differenced_inverse(objective_and_gradient, x, gradient, free, scale)
            curvature = "indefinite" if inverse is None else "positive definite"
            calls += len(free)
            steps = 0
            continue
        if secant is not None:  # the step's own secant pair corrects H (BFGS's update)
            inverse = _bfgs_inverse_update(inverse, step, (trial_gradient - gradient)[free])
        x, value, gradient = trial, min(trial_value, value), trial_gradient
        moved = True
        if all(abs(d) <= POLISH_TOLERANCE * max(unit, abs(v))
               for d, unit, v in zip(trial_step.tolist(), units, x[free].tolist())):
            break  # the next step would not move x: no gradient spent to confirm it
    if not moved:
        return replace(summary, evaluations=summary.evaluations + calls,
                       gradient_evaluations=summary.gradient_evaluations + calls,
                       curvature=curvature)
    return replace(summary, final=x, fmin=float(min(value, summary.fmin)),
                   evaluations=summary.evaluations + calls,
                   gradient_evaluations=summary.gradient_evaluations + calls,
                   curvature=curvature)


def _free_parameters(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The positions of the parameters farther than ``BOUND_GAP`` from their bounds."""
    return np.array([i for i, (v, low, high) in enumerate(zip(x.tolist(), lower.tolist(),
                                                              upper.tolist()))
                     if low + BOUND_GAP < v < high - BOUND_GAP], dtype=np.intp)


def _bfgs_inverse_update(inverse: np.ndarray, step: np.ndarray,
                         change: np.ndarray) -> np.ndarray:
    """BFGS's update of an inverse Hessian by one step and its gradient change (Nocedal and
    Wright 2006, eq. 6.17), left as it is when the pair has no positive curvature."""
    curvature = step @ change
    if not curvature > 0.0:
        return inverse
    rho = 1.0 / curvature
    left = np.eye(len(step)) - rho * np.outer(step, change)
    return left @ inverse @ left.T + rho * np.outer(step, step)


def _differenced_inverse(objective_and_gradient, x: np.ndarray, gradient: np.ndarray,
                         free: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """The inverse of the forward-difference Hessian of the free parameters at x (one
    gradient each, steps of ``HESSIAN_STEP`` relative to the larger of ``scale`` and |x|),
    or None where it is not positive definite."""
    hessian = np.empty((len(free), len(free)))
    for column, i in enumerate(free):
        shifted = x.copy()
        shifted[i] += HESSIAN_STEP * max(scale[i], abs(x[i]))
        hessian[:, column] = (objective_and_gradient(shifted)[1][free] - gradient[free]) / (
            shifted[i] - x[i])
    return _inverse_if_positive_definite((hessian + hessian.T) / 2)


def _secant_hessian(x: np.ndarray, gradient: np.ndarray, history, free: np.ndarray):
    """The Hessian of the free parameters that best maps the steps from x to the last
    evaluated points near it onto their gradients' changes, H (x_i - x) = g_i - g in least
    squares, symmetrized; or None when those points do not determine it.

    The points: the latest ``SECANT_HISTORY`` evaluations, those from ``SECANT_NEAREST`` to
    ``SECANT_RADIUS`` away from x (relative to max(1, |x|)) that moved only free parameters,
    at most 2 per free parameter, the nearest first. Their steps must span the free
    parameters with a condition number below ``SECANT_CONDITION``. Each pair's change is H's
    step to O(|step|) (the third derivative), so points near x give H to about the radius,
    relative.
    """
    k = len(free)
    if len(history) < k:  # BOBYQA's polish: no gradients seen
        return None
    scale = np.maximum(1.0, np.abs(x))
    held = np.setdiff1d(np.arange(len(x)), free)
    steps = []
    for point, g in history:
        step = point - x
        distance = np.max(np.abs(step) / scale)
        if SECANT_NEAREST <= distance <= SECANT_RADIUS and not np.any(step[held]):
            steps.append((distance, step[free], (g - gradient)[free]))
    if len(steps) < k:
        return None
    steps.sort(key=lambda item: item[0])
    chosen = steps[:2 * k]
    S = np.array([s for _, s, _ in chosen]).T  # (k, m)
    Y = np.array([y for _, _, y in chosen]).T
    singular = np.linalg.svd(S / scale[free][:, None], compute_uv=False)
    if not singular[-1] > singular[0] / SECANT_CONDITION:
        return None
    hessian = np.linalg.lstsq(S.T, Y.T, rcond=None)[0].T  # H S = Y
    return (hessian + hessian.T) / 2


def _inverse_if_positive_definite(matrix: np.ndarray) -> np.ndarray | None:
    """The inverse of a symmetric matrix when it is positive definite (a minimum's
    curvature), else None; by LAPACK's Cholesky routines, a few microseconds for the polish's
    few parameters where numpy.linalg's checks cost ten times more."""
    factor, info = _potrf(matrix, lower=1)
    if info != 0:
        return None
    inverse, info = _potri(factor, lower=1)
    if info != 0:
        return None
    for i in range(len(inverse) - 1):  # the upper triangle from the lower (np.tril: 10 us)
        inverse[i, i + 1:] = inverse[i + 1:, i]
    return inverse


def numerical_polish(objective: Callable[[np.ndarray], float], summary: OptSummary,
                     upper: np.ndarray | None = None) -> OptSummary:
    """``newton_polish`` with the gradient by central differences, for a criterion without an
    analytic one (a residual structure's parameters): steps ``NUMERICAL_STEP`` of each free
    parameter and half that, combined by Richardson extrapolation (``numdiff.jacobian``),
    4 k + 1 evaluations per gradient of k free parameters. The gradient is then known to
    about the objective's rounding over the step (1e-9 on the reference models): two fits of
    the same data whose objectives differ by rounding (the rows in another order, or summed
    over partitions), which BOBYQA stops up to 1e-6 apart, land within 1e-9 of each other,
    and BOBYQA's stop in a flat direction moves to the optimum (by 5e-5 on BodyWeight's
    variance function, 5e-9 lower). Left as it is when a difference would cross a bound (a
    parameter near its bound), or where the criterion is not finite.
    """
    x = summary.final
    lower = summary.lower_bounds
    upper = np.full(len(x), np.inf) if upper is None else np.asarray(upper, dtype=float)
    free = _free_parameters(x, lower, upper)
    steps = step_sizes(x[free], NUMERICAL_STEP)
    if np.any(x[free] - steps <= lower[free]) or np.any(x[free] + steps >= upper[free]):
        return summary
    calls = 0

    def evaluate(theta: np.ndarray) -> float:
        nonlocal calls
        calls += 1
        try:
            return objective(theta)
        except np.linalg.LinAlgError:  # a structured term outside its domain
            return np.inf

    def value_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        def of_free(values: np.ndarray) -> float:
            point = theta.copy()
            point[free] = values
            return evaluate(point)

        gradient = np.zeros(len(theta))
        with np.errstate(invalid="ignore"):  # (inf - inf where the criterion is not finite)
            gradient[free] = jacobian(of_free, theta[free], NUMERICAL_STEP, NUMERICAL_ROUNDS)
        if not np.all(np.isfinite(gradient)):  # no step from here
            gradient[:] = 0.0
        return evaluate(theta), gradient

    polished = newton_polish(value_and_gradient, summary, upper)
    return replace(polished, evaluations=summary.evaluations + calls,
                   gradient_evaluations=summary.gradient_evaluations)


def snap_to_bounds(objective: Callable[[np.ndarray], float], summary: OptSummary,
                   distance: float = SNAP_DISTANCE) -> OptSummary:
    """Move parameters that stopped just inside their lower bound onto it where the objective is
    no worse (to rounding), one at a time, nearest first, as MixedModels.jl does after its
    optimizer: near a boundary optimum the objective is flat, and a derivative-free optimizer
    stops wherever its trust region shrinks (lme4 lands on the bound, we would stop at 1e-4).

    Returns:
        the summary with the new optimum, its evaluations added (the same summary when no
        parameter is near its bound).
    """
    x, fmin = summary.final.copy(), summary.fmin
    # in Python's floats: a few parameters, where each NumPy operation costs microseconds
    gaps = [value - bound for value, bound in zip(x.tolist(), summary.lower_bounds.tolist())]
    near = sorted((gap, i) for i, gap in enumerate(gaps) if 0.0 < gap < distance)
    trace = []
    for _, i in near:
        trial = x.copy()
        trial[i] = summary.lower_bounds[i]
        value = objective(trial)
        trace.append(value)
        if value <= fmin + SNAP_ROUNDING * max(1.0, abs(fmin)):
            x, fmin = trial, min(value, fmin)
    if not trace:
        return summary
    return replace(summary, final=x, fmin=float(fmin),
                   evaluations=summary.evaluations + len(trace),
                   trace=np.concatenate([summary.trace, trace]))


@dataclass(frozen=True)
class ConvergenceCheck:
    """Finite-difference gradient and Hessian at the optimum, over the free parameters.

    Attributes:
        free: indices of theta not on their lower bound.
        gradient, hessian: on the free parameters.
        newton_decrement: 0.5 g' H^{-1} g, the decrease one more Newton step would achieve.
        message: empty when converged, else what is wrong.
    """

    free: np.ndarray
    gradient: np.ndarray
    hessian: np.ndarray
    newton_decrement: float
    message: str

    @property
    def converged(self) -> bool:
        return not self.message


DECREMENT_TOLERANCE = 1e-4  # in deviance units: far below any difference that matters


def check_convergence(objective: Callable[[np.ndarray], float], theta: np.ndarray,
                      lower: np.ndarray, on_boundary: np.ndarray,
                      units: np.ndarray | None = None) -> ConvergenceCheck:
    """Is theta a local minimum? Central differences on the parameters off their bounds
    (``on_boundary``: a bool per parameter, from the covariance structures' boundary rule),
    with steps of 1e-4 times each parameter's size, at least its natural unit (``units``,
    default 1; ``core.start.theta_units``): on a slope in units 1e5 times too large, theta
    about 2e-6, steps of 1e-4 reported a gradient of -7544 at the optimum."""
    free = np.flatnonzero(~on_boundary)
    k = len(free)
    if k == 0:
        return ConvergenceCheck(free, np.zeros(0), np.zeros((0, 0)), 0.0, "")
    least = 1.0 if units is None else np.asarray(units, dtype=float)[free]
    steps = 1e-4 * np.maximum(np.abs(theta[free]), least)
    steps = np.minimum(steps, np.maximum((theta[free] - lower[free]) / 2, 1e-8))

    def at(offsets):
        point = theta.copy()
        point[free] += offsets
        return objective(point)

    f0 = at(np.zeros(k))
    gradient, hessian = np.zeros(k), np.zeros((k, k))
    plus, minus = np.zeros(k), np.zeros(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = steps[i]
        plus[i], minus[i] = at(e), at(-e)
        gradient[i] = (plus[i] - minus[i]) / (2 * steps[i])
        hessian[i, i] = (plus[i] - 2 * f0 + minus[i]) / steps[i] ** 2
    for i in range(k):
        for j in range(i):
            ei, ej = np.zeros(k), np.zeros(k)
            ei[i], ej[j] = steps[i], steps[j]
            value = (at(ei + ej) - at(ei - ej) - at(ej - ei) + at(-ei - ej)) / (
                4 * steps[i] * steps[j])
            hessian[i, j] = hessian[j, i] = value
    try:
        chol = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return ConvergenceCheck(free, gradient, hessian, np.nan,
                                "the Hessian at the optimum is not positive definite: the "
                                "model may be over-parameterized or the optimum a saddle")
    scaled = np.linalg.solve(chol, gradient)
    decrement = 0.5 * float(scaled @ scaled)
    message = "" if decrement < DECREMENT_TOLERANCE else (
        f"one more Newton step would lower the objective by {decrement:.2g}: the optimizer "
        "may have stopped early; try tighter settings or rescale the predictors")
    return ConvergenceCheck(free, gradient, hessian, decrement, message)
