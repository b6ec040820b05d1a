"""Newton's method on one covariance parameter (``core.scalar``): on functions whose minimum
is known, and on every model of one variance component against BOBYQA and brute force."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar as brent

import mixedmodels as mm
from mixedmodels.core.optimize import OptSettings
from mixedmodels.core.scalar import BOUND_REACH, NAME, minimize_scalar


def _even(derivative_of_phi):
    """f(x) = F(x^2) given F' (an even function, as a variance component's criterion), with
    F(0) = 0: (value, gradient) at x (1,), by the trapezoid rule on F' (fine enough here)."""
    def objective_and_gradient(x):
        t = float(x[0])
        phi = np.linspace(0.0, t * t, 2001)
        value = float(np.trapezoid(derivative_of_phi(phi), phi))
        return value, np.array([2.0 * t * float(derivative_of_phi(t * t))])
    return objective_and_gradient


def _quartic(x):
    """(x^2 - 4)^2: minimum 0 at 2."""
    t = float(x[0])
    return (t * t - 4.0) ** 2, np.array([4.0 * t * (t * t - 4.0)])


@pytest.mark.parametrize("start", [0.01, 1.0, 2.5, 10.0, 1e4])
def test_interior_minimum_from_any_start(start):
    summary = minimize_scalar(_quartic, start, 1.0)
    assert summary.optimizer == NAME and summary.return_code in ("XTOL_REACHED", "SUCCESS")
    assert summary.final[0] == pytest.approx(2.0, rel=1e-10)
    assert summary.curvature == "positive definite"
    assert summary.evaluations == summary.gradient_evaluations == len(summary.trace) < 40


def test_minimum_on_the_bound_is_approached_in_a_few_gradients():
    """F' > 0 everywhere: the minimum is on the bound 0. With F' = 1 + 3 sqrt(phi) the
    gradient 2 theta + 6 theta^2 has a simple root at 0, which the secant steps reach
    superlinearly; with F' = 1 + phi the second model's first step is to 0, and the point
    BOUND_REACH above it shows a positive gradient."""
    for derivative, most in ((lambda phi: 1.0 + 3.0 * np.sqrt(phi), 10),
                             (lambda phi: 1.0 + phi, 5)):
        summary = minimize_scalar(_even(derivative), 1.0, 1.0)
        assert summary.final[0] <= BOUND_REACH
        assert summary.curvature == ""  # left to the caller's test of the bound
        assert summary.evaluations <= most


@pytest.mark.parametrize("phi_star", [1e-2, 1e-6, 1e-12])
def test_small_interior_minimum(phi_star):
    """F' = phi - phi*: the minimum at sqrt(phi*), found below the first probe of the bound
    when it is farther in than BOUND_REACH."""
    summary = minimize_scalar(_even(lambda phi: phi - phi_star), 1.0, 1.0)
    if math.sqrt(phi_star) > 2 * BOUND_REACH:
        assert summary.final[0] == pytest.approx(math.sqrt(phi_star), rel=1e-6)
        assert summary.curvature == "positive definite"
    else:
        assert summary.final[0] <= 2 * BOUND_REACH
    assert summary.evaluations < 40


def test_outside_the_domain_counts_as_beyond_the_minimum():
    def objective_and_gradient(x):
        t = float(x[0])
        if t >= 5.0:
            return math.inf, np.array([0.0])
        return (t - 3.0) ** 2, np.array([2.0 * (t - 3.0)])

    summary = minimize_scalar(objective_and_gradient, 8.0, 1.0)
    assert summary.final[0] == pytest.approx(3.0, rel=1e-12)
    assert summary.fmin == pytest.approx(0.0, abs=1e-20)


def test_evaluation_limit():
    limited = minimize_scalar(_quartic, 10.0, 1.0, OptSettings(maxeval=3))
    assert limited.return_code == "MAXEVAL_REACHED" and limited.evaluations == 3
    assert limited.fmin == min(limited.trace)


ONE_COMPONENT = [
    ("Yield ~ 1 + (1 | Batch)", "dyestuff"),
    ("Yield ~ 1 + (1 | Batch)", "dyestuff2"),
    ("effort ~ 1 + Type + (1 | Subject)", "ergostool"),
    ("travel ~ 1 + (1 | Rail)", "rail"),
    ("Reaction ~ 1 + Days + (1 | Subject)", "sleepstudy"),
    ("Reaction ~ 1 + Days + (0 + Days | Subject)", "sleepstudy"),
    ("diameter ~ 1 + (1 | plate)", "penicillin"),
    ("diameter ~ 1 + (1 | sample)", "penicillin"),
]


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("formula, name", ONE_COMPONENT)
def test_same_optimum_as_bobyqa_in_fewer_evaluations(formula, name, reml):
    data = mm.datasets.load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        newton = mm.lmer(formula, data, reml=reml)
        bobyqa = mm.lmer(formula, data, reml=reml, settings=OptSettings(method="bobyqa"))
    assert newton.optsummary.optimizer == NAME
    assert newton.objective == pytest.approx(bobyqa.objective, rel=1e-12)
    assert newton.theta == pytest.approx(bobyqa.theta, rel=1e-7, abs=1e-9)
    assert newton.optsummary.evaluations < bobyqa.optsummary.evaluations


def _small_variance_data(sd_between: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), 6)
    x = rng.normal(size=g.size)
    y = 1.0 + 0.5 * x + rng.normal(0.0, sd_between, 12)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"g": g.astype(str), "x": x, "y": y})


@pytest.mark.parametrize("sd_between", [0.0, 0.05, 0.2, 0.4, 1.0, 30.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_optimum_is_brute_forces(sd_between, seed):
    """Against Brent's bounded search of the criterion over theta in [0, 100] (xatol 1e-10),
    with the bound itself: ties of small between-group variances, minima on the bound and
    far from the start."""
    data = _small_variance_data(sd_between, seed)
    model = mm.LinearMixedModel("y ~ x + (1 | g)", data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit()
    criterion = lambda t: model.objective(np.array([t]))  # noqa: E731
    search = brent(criterion, bounds=(0.0, 100.0), method="bounded",
                   options={"xatol": 1e-10, "maxiter": 500})
    best = min(search.fun, criterion(0.0))
    assert fit.objective <= best + 1e-10 * abs(best)
    assert fit.optsummary.evaluations < 25
