"""Newton's method on a single covariance parameter: the optimizer of models with one
variance component ((1 | g) alone, the commonest mixed model).

With one parameter, theta >= 0, the analytic gradient of the profiled criterion
(``core.gradient``) is a function of one variable whose root is the optimum, and each
gradient costs about two evaluations of the criterion. A safeguarded secant method on the
derivative finds it to the gradient's precision in 2 to 12 gradients (3 to 5 by REML on the
balanced reference models from the moment estimate the model starts it at), and 4 or 5
evaluations of the criterion alone check the bound and points far above (see below), where
BOBYQA takes 14 to 30 evaluations and the Newton polish (``optimize.newton_polish``) 3
gradients more: the whole fit of the small reference models with one parameter (Dyestuff,
Dyestuff2, ergoStool, Rail, sleepstudy's (1 | Subject), cake) is faster for it
(``benchmarks/bench_ab.py``).

The method is the safeguarded Newton iteration of Press et al. (Numerical Recipes, 3rd ed.,
2007, section 9.4, ``rtsafe``), with a secant for the second derivative (Nocedal and Wright
2006, section 3.5), and the interval updates of a line search (More and Thuente 1994): a
point no higher than the best one (to the criterion's rounding) puts the minimum on the side
its gradient points to, and a higher point puts it between itself and the best one (from
theta = 1 with a positive gradient, a higher criterion at 0.25 shows a minimum between
them, which the gradients' signs alone miss). A step that leaves the bracket, or none
(the secant's curvature is not positive), is replaced by bisection of it (geometric where it
spans more than a factor 4), or by doubling theta while nothing bounds the minimum above.
A short step ends the iteration only at the lowest point and from a secant of two points
near each other (``LOCAL``): far out the criterion flattens, and a secant across the range
gives a short step where there is no minimum.

The criterion depends on theta only through theta^2 (Lambda Lambda' = theta^2 P P' for the
term's fixed pattern P): f(theta) = F(theta^2), and the gradient g = 2 theta F'(theta^2)
vanishes at 0 whether or not the minimum is there. Two secant models of g are kept, linear
in theta and theta F' linear in theta^2; each step takes the one that predicts the gradient
at the point before the last two better, and the second where the two points are more than
a factor ``SCALES`` apart (a line through a point near 0 takes g's vanishing there for a
root). The second is exact where F' is linear, which is where the first fails: a small
variance component, whose g is nearly cubic in theta above its minimum (the first model's
steps shrink by a third each: 52 gradients from theta = 1 to a minimum at 1e-6, 4 with
both). A minimum on the bound 0 (F'(0) > 0) is found by a step to or below 0, which tries
the point ``BOUND_REACH`` units above 0 instead: a positive gradient there, at the lowest
point, ends the iteration, and 0 itself is tried.

An end above 0 is compared with the bound, one evaluation: where the bound is lower, another
minimum lies below the end, and the iteration runs again from the bound up. A few groups
with one far off can give the criterion a minimum at 0 and another above it; from theta = 1
either can be reached, and this reaches the lower. The end is also compared with the
points 3, 10, 100 and 1,000 times the largest of it, the start and 1 unit (lme4's start,
``FAR``), four evaluations (0 to 6% of a small model's whole fit), and with 1 unit where the
iteration started elsewhere (at a moment estimate: ``lmm.model``), and the iteration runs
again from the lowest where it is lower: the iteration follows the criterion down from its
start and never looks far above it (``_far_above``); with prior weights the criterion can
have several minima. These comparisons need the criterion only, not its gradient. An end at
the bound from another start than lme4's is searched again from lme4's start: a narrow
minimum between the bound and the start can be passed over on the way down.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

from .optimize import POLISH_ROUNDING, SNAP_ROUNDING, OptSettings, OptSummary

__all__ = ["minimize_scalar"]

#: steps below this much of the larger of theta and its unit end the iteration: the Newton
#: polish's tolerance (``optimize.POLISH_TOLERANCE``), where the gradient's rounding decides
#: the next digit
STEP_TOLERANCE = 1e-11
#: theta this close to 0, in its units, with a positive gradient ends the iteration: the
#: bound is then tried (``optimize.SNAP_DISTANCE`` is 1e-3)
BOUND_REACH = 1e-8

#: two points farther apart than this factor take the secant model in theta^2: across scales
#: the gradient's vanishing at 0 (its symmetry) dominates, which a line in theta through a
#: point near 0 takes for a root there
SCALES = 100.0

#: a short step ends the iteration only from a secant of points this close, relative
#: (``_local``); its steps shrink superlinearly, to 1e-3 or less before the last
LOCAL = 0.1

#: a step shorter than this, relative, from a secant of nearby points (``_local``), after
#: which the gradient is above this share of the smallest seen so far, ends the iteration at
#: that smallest: the secant steps cut the gradient superlinearly until its rounding, below
#: which they only jitter
FLOOR_STEP = 1e-6
FLOOR_RATIO = 0.5

#: the end is compared with these multiples of the largest of it, the start and lme4's start
#: (``_far_above``)
FAR = (3.0, 10.0, 100.0, 1000.0)

#: the name in ``OptSummary.optimizer``
NAME = "Newton (one parameter)"


def minimize_scalar(objective_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
                    initial: float, unit: float, settings: OptSettings = OptSettings(),
                    backend: str = "",
                    objective: Callable[[np.ndarray], float] | None = None) -> OptSummary:
    """Minimize a function of theta^2 over theta >= 0 from ``initial`` by the safeguarded
    secant method on its derivative (see the module's docstring).

    Args:
        objective_and_gradient: (value, gradient (1,)) at theta (1,); a non-finite value is
            taken as outside the domain, above the minimum.
        initial: the start, > 0.
        unit: theta's natural size (``core.start.theta_units``), lme4's start in those
            units, which scales the first step (``settings.initial_step`` of it), the step
            tolerance (``STEP_TOLERANCE``) and the approach to the bound (``BOUND_REACH``).
        settings: only ``initial_step`` and ``maxeval`` apply; the other tolerances are
            BOBYQA's and L-BFGS's, all looser than where this stops.
        objective: the value alone at theta (1,), where it costs less than with the
            gradient (about half, on a compiled small system): the comparisons with the bound
            and the far points need no gradient. Default: ``objective_and_gradient``'s.

    Returns:
        an ``OptSummary`` of the lowest of the iterations' ends (from ``initial``; from the
        bound up where the bound is below that end; from ``unit`` where the end is at the
        bound and the start another; from the lowest of the points ``FAR`` times the
        largest of it, the start and ``unit``, and ``unit`` where the start is another,
        where one is lower): each the last point, or the
        best point seen where the last is higher by more than the criterion's rounding
        (``optimize.POLISH_ROUNDING``), or 0 where the approach to the bound ended no
        lower than the bound; each call counted as an evaluation, those with the gradient
        as gradient evaluations too;
        return code XTOL_REACHED at a step below the tolerance or at the bound, SUCCESS at
        a gradient of exactly 0, MAXEVAL_REACHED otherwise; ``curvature`` "positive
        definite" where the last secant's curvature is positive, "" where the iteration
        ended at or near the bound, else "indefinite".
    """
    start = time.perf_counter()
    trace: list[float] = []
    gradients = 0
    point = np.empty(1)

    def evaluate(x: float) -> tuple[float, float]:
        nonlocal gradients
        point[0] = x
        value, gradient = objective_and_gradient(point)
        trace.append(value)
        gradients += 1
        return (value, float(gradient[0])) if math.isfinite(value) else (math.inf, 0.0)

    def value_at(x: float) -> float:
        if objective is None:
            return evaluate(x)[0]
        point[0] = x
        value = objective(point)
        trace.append(value)
        return value if math.isfinite(value) else math.inf

    first_step = settings.initial_step * unit
    x, value, code, curvature = _iterate(evaluate, value_at, float(initial), unit, first_step,
                                         settings.maxeval, trace)
    if curvature is not None and len(trace) < settings.maxeval:  # an end above 0
        if value_at(0.0) < value - POLISH_ROUNDING * abs(value):
            # a lower minimum below x, on the bound or above it: searched from the bound up
            again = _iterate(evaluate, value_at, 10.0 * BOUND_REACH * unit, unit, first_step,
                             settings.maxeval, trace, x)
            if again[1] < value:
                x, value, code, curvature = again
    if curvature is None and float(initial) != unit and len(trace) < settings.maxeval:
        # an end at the bound from another start than lme4's (a moment estimate): the
        # iteration from lme4's start too, which a narrow minimum between the bound and the
        # start may lie on the way of (4 of 8,000 simulated fits, ML, most with prior weights:
        # from theta 0.040 the fit went to the bound at 481.147, from lme4's start to 481.113
        # at theta 0.021)
        again = _iterate(evaluate, value_at, unit, unit, first_step, settings.maxeval, trace)
        if again[1] < value:
            x, value, code, curvature = again
    x, value, code, curvature = _far_above(evaluate, value_at, x, value, code, curvature,
                                           float(initial), unit, first_step, settings.maxeval,
                                           trace)
    shape = ("" if curvature is None else
             "positive definite" if curvature > 0.0 else "indefinite")
    return OptSummary(NAME, settings, np.array([float(initial)]), np.zeros(1), np.array([x]),
                      float(value), len(trace), code, time.perf_counter() - start,
                      np.array(trace), backend, gradients, shape)


def _far_above(evaluate, value_at, x: float, value: float, code: str, curvature,
               initial: float, unit: float, first_step: float, maxeval: int, trace: list):
    """The end, or the iteration from the lowest of the points ``FAR`` times the largest of
    the start, the end and ``unit`` (lme4's start, in theta's units), and ``unit`` itself
    where the iteration started elsewhere, where one is lower: the iteration follows the
    criterion down from its start, and a minimum far above is never looked at (from a start
    at the MIVQUE(0)
    estimate, 0.22, an ML fit of 4 groups, one far off, went to the bound at 47.370, where
    lme4 from 1 reaches 47.267 at 1.24; from 0.10, an ML fit of x near 5e8 without an
    intercept went to the bound at 125.680, where the minimum is 122.764 at 1,328, which
    the points 10 to 1000 times lme4's start show; from 0.17 units, a REML fit with
    weights stopped at a minimum at 0.23 units, 638.271, where the lower one is 635.062 at
    4.75, which the point 3 times lme4's start shows; prior weights over 7 orders of
    magnitude put the start, in the intercept's units, at 0.043, from which the fit went to
    0 at 101.08 by ML, where lme4 from 1 reaches 76.12 at 8.74; a slope's start 0.94 went to
    0.44 at 78.81, where the minimum is 68.52 at 10.5; weighted fits stopped at 0.097 and
    0.090 from starts at 0.047 and 0.057, 4.7 and 1.5 above the minima near 1)."""
    top = max(initial, x, unit)
    points = [factor * top for factor in FAR] + ([unit] if initial != unit else [])
    far = []
    for point in points:
        if len(trace) >= maxeval:
            break
        far.append((value_at(point), point))
    lowest = min(far, default=(math.inf, 0.0))
    if not lowest[0] < value - POLISH_ROUNDING * abs(value) or len(trace) >= maxeval:
        return x, value, code, curvature
    again = _iterate(evaluate, value_at, lowest[1], unit, first_step, maxeval, trace)
    return again if again[1] < value else (x, value, code, curvature)


def _iterate(evaluate, value_at, x: float, unit: float, first_step: float, maxeval: int,
             trace: list, high: float = math.inf) -> tuple[float, float, str, float | None]:
    """The safeguarded secant iteration from x, the minimum bracketed below ``high``:
    (theta, value, return code, curvature: None where it ended at or near the bound).
    ``evaluate``: (value, derivative) at theta; ``value_at``: the value alone."""
    value, gradient = evaluate(x)
    low = 0.0  # the bracket of the minimum: (low, high)
    best_x, best_value = x, value
    points: list[tuple[float, float]] = []  # the last three finite (theta, gradient)
    # (|gradient|, theta, value) of the lowest points' smallest gradient
    flattest = (math.inf, x, value)
    curvature = 0.0
    code = "MAXEVAL_REACHED"
    while len(trace) < maxeval:
        finite = math.isfinite(value)
        lowest = finite and value <= best_value + POLISH_ROUNDING * abs(best_value)
        if lowest:
            if value < best_value:  # (within the criterion's rounding: the gradient decides)
                best_x, best_value = x, value
            if gradient == 0.0:
                code = "SUCCESS"
                break
            if (abs(gradient) > FLOOR_RATIO * flattest[0] and _local(points, unit)
                    and abs(x - flattest[1]) <= FLOOR_STEP * max(unit, x)):
                # a step this short no longer lowers the gradient: its rounding is reached
                # (the next steps jitter: 12 more gradients at theta 272 on a weighted fit)
                return flattest[1], flattest[2], "XTOL_REACHED", curvature
            if abs(gradient) < flattest[0]:
                flattest = (abs(gradient), x, value)
            if gradient > 0.0:  # the gradient's sign: which side of x the minimum is
                high = min(high, x)
            else:
                low = max(low, x)
        elif x < best_x:  # above the best point's value, or outside the domain: the
            low = max(low, x)  # minimum lies between this point and the best one
        else:
            high = min(high, x)
        if finite:
            points = points[-2:] + [(x, gradient)]
        if x == best_x and gradient > 0.0 and x <= BOUND_REACH * unit:
            bound_value = value_at(0.0)  # on the way to the bound: try it
            if bound_value <= best_value + SNAP_ROUNDING * max(1.0, abs(best_value)):
                return 0.0, bound_value, "XTOL_REACHED", None
            return best_x, best_value, "XTOL_REACHED", None
        trial, curvature = _secant_step(points) if finite else (None, 0.0)
        if trial is None and finite and len(points) == 1:
            trial = x - math.copysign(first_step, gradient)  # the first step
        if trial is None or not low < trial < high:
            trial = _safeguard(trial, low, high, x, unit, first_step)
        tolerance = STEP_TOLERANCE * max(unit, x)
        if high - low <= tolerance:
            code = "XTOL_REACHED"
            break
        if abs(trial - x) <= tolerance:
            if lowest and _local(points, unit):
                code = "XTOL_REACHED"
                break
            # no minimum: a point above the best one, however short the step from it, or a
            # short step from a secant across a wide range (flat far out: 1e5 above the
            # minimum after an initial_step of 1e5, the criterion 140 above the optimum)
            trial = _safeguard(None, low, high, x, unit, first_step)
        x = trial
        value, gradient = evaluate(x)
    if value <= best_value + POLISH_ROUNDING * abs(best_value):
        # the last point, where the gradient is smallest, unless rounding aside it is higher
        return x, value, code, curvature
    return best_x, best_value, code, curvature


def _local(points: list[tuple[float, float]], unit: float) -> bool:
    """The last two points are within ``LOCAL`` of the larger's size (or unit) of each other:
    their secant is the derivative's there, and a short step from it ends the iteration."""
    if len(points) < 2:
        return False
    (x1, _), (x2, _) = points[-2:]
    return abs(x2 - x1) <= LOCAL * max(unit, x1, x2)


def _secant_step(points: list[tuple[float, float]]) -> tuple[float | None, float]:
    """(the next theta, or None, and the curvature in theta there) from the secant of the last
    two points' gradients, in the model of the two (g linear in theta, or g / (2 theta)
    linear in theta^2) that predicts the gradient at the point before them better; None
    where that model's curvature is not positive (the other is not taken: its prediction
    was the worse). A step of the second model to theta^2 <= 0 is returned as 0."""
    if len(points) < 2:
        return None, 0.0
    (x1, g1), (x2, g2) = points[-2:]
    if x1 == x2:
        return None, 0.0
    slope = (g2 - g1) / (x2 - x1)  # g = g2 + slope (theta - x2)
    p1, p2 = x1 * x1, x2 * x2
    h1, h2 = g1 / (2.0 * x1), g2 / (2.0 * x2)
    rise = (h2 - h1) / (p2 - p1)  # g = 2 theta (h2 + rise (theta^2 - p2))
    squared = max(x1, x2) > SCALES * min(x1, x2)
    if len(points) == 3 and not squared:
        x0, g0 = points[0]
        linear_error = abs(g2 + slope * (x0 - x2) - g0)
        squared_error = abs(2.0 * x0 * (h2 + rise * (x0 * x0 - p2)) - g0)
        squared = squared_error < linear_error
    if not squared:
        return (x2 - g2 / slope, slope) if slope > 0.0 else (None, slope)
    if not rise > 0.0:
        return None, rise
    target = p2 - h2 / rise
    # the curvature in theta at the root: d/dtheta of 2 theta (h2 + rise (theta^2 - p2))
    return (math.sqrt(target) if target > 0.0 else 0.0), 4.0 * rise * max(target, 0.0)


def _safeguard(trial: float | None, low: float, high: float, x: float, unit: float,
               first_step: float) -> float:
    """The point to try instead of a step to ``trial`` outside the bracket (low, high), or
    of no step (``trial`` None: the secant's curvature is not positive, or the step left a
    point above the best one):

    - at or below 0 with no negative gradient seen yet, the point ``BOUND_REACH`` units
      above 0: its gradient tells at once whether the minimum is on the bound (halving the
      distance took 27 gradients to 1e-8 on Dyestuff2 by ML);
    - within a bracket that spans more than a factor 4 above 0, its geometric mean, as a
      scale parameter's range is bisected;
    - within a narrower bracket, its midpoint;
    - with no positive gradient yet, twice theta (at least one first step more).
    """
    if trial is not None and trial <= low == 0.0 and x > 2.0 * BOUND_REACH * unit:
        return BOUND_REACH * unit
    if not math.isfinite(high):
        return max(2.0 * x, x + first_step)
    if low > 0.0 and high > 4.0 * low:
        return math.sqrt(low * high)
    return 0.5 * (low + high)
