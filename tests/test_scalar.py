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
from mixedmodels.core.start import moment_start, one_component_start


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
    BOUND_REACH above it shows a positive gradient. Then 4 points far above the start."""
    for derivative, most in ((lambda phi: 1.0 + 3.0 * np.sqrt(phi), 14),
                             (lambda phi: 1.0 + phi, 9)):
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
def test_same_optimum_as_bobyqa_in_no_more_evaluations(formula, name, reml):
    data = mm.datasets.load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        newton = mm.lmer(formula, data, reml=reml)
        bobyqa = mm.lmer(formula, data, reml=reml, settings=OptSettings(method="bobyqa"))
    assert newton.optsummary.optimizer == NAME
    assert newton.objective == pytest.approx(bobyqa.objective, rel=1e-12)
    assert newton.theta == pytest.approx(bobyqa.theta, rel=1e-7, abs=1e-9)
    # Newton's evaluations have the gradient but for the bound's, the 4 far above (``FAR``)
    # and lme4's start (after a start at the moment estimate); BOBYQA's count has the
    # polish's 3 gradients
    summary = newton.optsummary
    assert summary.gradient_evaluations <= bobyqa.optsummary.evaluations
    assert 4 <= summary.evaluations - summary.gradient_evaluations <= 6


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


def test_a_point_above_the_best_brackets_the_minimum():
    """From theta = 1 the gradient is positive, and so it is at 0.25 and near 0, but the
    criterion at 0.25 is above its value at 1: a minimum lies between them (0.8074 by ML),
    which the gradients' signs alone missed (the iteration returned the start)."""
    y = [11.820179, 1.952933, 1.580213, -0.32708, 0.816046, 0.015961, 2.464183, -1.654548,
         -0.986421, -1.172946, 11.791189, -1.713645, -1.003081, -0.24434, -1.219059,
         -0.172584, -0.387931]
    data = pd.DataFrame({"y": y, "g": ["g0"] + ["g1"] * 6 + ["g2"] * 4 + ["g3"] * 6})
    model = mm.LinearMixedModel("y ~ 1 + (1 | g)", data, reml=False)
    fit = model.fit()
    search = brent(lambda t: model.objective(np.array([t])), bounds=(0.0, 5.0),
                   method="bounded", options={"xatol": 1e-10})
    assert fit.theta[0] == pytest.approx(search.x, rel=1e-6)
    assert fit.objective <= search.fun + 1e-12 * search.fun
    assert abs(model.system.objective_and_gradient(fit.theta, False)[1][0]) < 1e-6


def _two_minima(seed: int) -> pd.DataFrame:
    """A few groups, one far off, and an outlier row: criteria with a minimum on the bound and
    another above it."""
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(3, 7))
    g = np.repeat(np.arange(n_groups), rng.integers(1, 8, n_groups))
    b = rng.normal(size=n_groups) * rng.choice([0.0, 0.3, 1.0])
    b[rng.integers(n_groups)] += rng.choice([3, 5, 10, 20])
    x, e = rng.normal(size=g.size), rng.normal(size=g.size)
    if rng.random() < 0.5:
        e[rng.integers(g.size)] += rng.choice([-10, 10, 30])
    return pd.DataFrame({"y": 1 + 0.5 * x + b[g] + e, "x": x, "g": [f"g{i}" for i in g]})


def _grid_minimum(model) -> float:
    """The criterion's minimum over theta in [0, 1e3]: a grid in log theta and 0, refined
    by Brent's bounded search between the best point's neighbours."""
    grid = np.concatenate([[0.0], np.geomspace(1e-4, 1e3, 400)])
    values = [model.objective(np.array([t])) for t in grid]
    best = int(np.argmin(values))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    search = brent(lambda t: model.objective(np.array([t])), bounds=(low, high),
                   method="bounded", options={"xatol": 1e-10})
    return min(search.fun, values[best])


@pytest.mark.parametrize("seed", [940070977, 255618588, 830383139, 90834040])
def test_a_small_variance_found_after_the_bound_is_probed(seed):
    """The secant steps from theta = 1 and 0.25 reach below 0, the point near the bound
    shows a negative gradient, and the minimum (theta 0.1 to 0.16) is above it: a line in
    theta through that point took it for the root (the secant in theta^2 is taken across
    scales), and criteria equal to rounding must not narrow the bracket."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(int(rng.integers(3, 15))), 1)
    sizes = rng.integers(2, 12, g.size)
    g = np.repeat(g, sizes)
    b = rng.normal(size=g.max() + 1) * rng.choice([0.0, 0.2, 0.5, 1.0])
    x = rng.normal(size=g.size)
    data = pd.DataFrame({"y": 1 + 0.5 * x + b[g] + rng.normal(size=g.size), "x": x,
                         "g": g.astype(str)})
    for formula in ("y ~ x + (1 | g)", "y ~ 1 + (1 | g)"):
        for reml in (True, False):
            model = mm.LinearMixedModel(formula, data, reml=reml)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = model.fit()
            assert fit.objective <= _grid_minimum(model) + 1e-9 * abs(fit.objective)


@pytest.mark.parametrize("seed", [77686226, 280358755, 745171762, 38305289, 435010444])
def test_the_lower_of_two_minima(seed):
    """Where the bound is lower than the minimum the iteration ends at, it searches again
    from the bound up (BOBYQA from theta = 1 reached the bound on these data; the iteration
    alone stopped 0.006 to 0.33 above it, at the other minimum)."""
    data = _two_minima(seed)
    model = mm.LinearMixedModel("y ~ x + (1 | g)", data, reml=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit()
    assert fit.objective <= _grid_minimum(model) + 1e-9 * abs(fit.objective)


@pytest.mark.parametrize("scale", [1e-3, 1e-6, 1e-9, 1e-12])
def test_a_slope_in_tiny_units_reaches_its_bound(scale):
    """A variance on the bound is approached in the column's units (theta there is 1e-8 of
    1 / sd(x)), and the bound is tried at once: lme4's theta = 0, not 1e4 (x 1e-12)."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(10), 10)
    x = rng.normal(size=100)
    data = pd.DataFrame({"y": 1 + 0.5 * x + rng.normal(size=100), "x": x * scale,
                         "g": g.astype(str)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer("y ~ x + (0 + x | g)", data)
    assert fit.theta[0] == 0.0


def test_no_positive_curvature_bisects_the_bracket():
    """The secant steps from theta = 1 overshoot to 823, past the minimum at 61, where the
    curvature is negative: the bracket (1.75, 823) is bisected (first steps of 0.75 walked
    back from 823: 964 evaluations, BOBYQA 52)."""
    y = [8.865640847018419, 9.518744042471841, 0.9485251149655252, 1.0031963848317684,
         -4.629674356965916, -4.257780254725284, 12.751670565726258, -8.386132908792788,
         1.7800893316241562, 1.2335323349813463, -26.757156751485205, 2.0125695710630844,
         7.232129010948393, 2.746672410596042, 0.026255518866950496, 4.149082676214197,
         4.152176603635916, 4.621195169065098]
    g = [0, 1, 2, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 13, 14]
    data = pd.DataFrame({"y": y, "g": [str(i) for i in g]})
    model = mm.LinearMixedModel("y ~ 1 + (1 | g)", data)
    fit = model.fit()
    assert fit.optsummary.evaluations < 30
    assert fit.objective <= _grid_minimum(model) + 1e-9 * abs(fit.objective)


@pytest.mark.parametrize("initial_step", [1e-6, 1e-3, 10.0, 1e4, 1e5, 1e6])
def test_any_first_step(initial_step):
    """A first step far past the minimum (theta 108) lands where the criterion is flat and
    the secant's step is short: no minimum, as the secant spans the whole range (it stopped
    there, 140 to 190 above the optimum); a tiny one is followed by secant steps."""
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(12), 10)
    x = rng.normal(size=120)
    y = 1 + 0.5 * x + (rng.normal(size=12) * 100)[g] + rng.normal(size=120)
    data = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    reference = mm.lmer("y ~ x + (1 | g)", data)
    fit = mm.lmer("y ~ x + (1 | g)", data, settings=OptSettings(initial_step=initial_step))
    assert fit.optsummary.optimizer == NAME
    assert fit.objective == pytest.approx(reference.objective, rel=1e-11)
    assert fit.optsummary.evaluations < 40


def test_ends_at_the_gradients_rounding():
    """A gradient with noise of 1e-6: the secant steps reach it in a few steps, then only
    jitter; the iteration ends at the smallest gradient seen, within the noise's reach of
    the minimum (noise / curvature: 3e-8 here), in at most 22 evaluations over 20 seeds, 5
    of them at the bound and far above."""
    for seed in range(20):
        rng = np.random.default_rng(seed)

        def noisy(x):
            value, gradient = _quartic(x)
            return value, gradient + 1e-6 * rng.uniform(-1.0, 1.0)

        summary = minimize_scalar(noisy, 1.0, 1.0)
        assert summary.final[0] == pytest.approx(2.0, abs=1e-7)
        assert summary.evaluations <= 22


def test_an_end_on_the_bound_looks_far_above_the_start():
    """Prior weights over 7 orders of magnitude put the start, in the intercept's units, at
    0.043, from which the iteration goes to the minimum on the bound (101.08 by ML); lme4
    from theta = 1 reaches 76.12 at 8.74, which the points 10 to 1000 times the start show."""
    data = pd.DataFrame({
        "y": [1.8876187092966197, -1.1601210704603302, 1.173593949631746, 1.3165137907457716,
              -5.546216413628432, -6.851465014457826, -8.744491103383465, -6.3236404534863375,
              0.8795187117237653, -1.0902689868771103, 2.771763076421995, 11.182144273850803],
        "x": [0.5213876579274748, -2.005898092704245, 0.5464855970529483, 0.6786590406854278,
              -1.173035859220186, -0.842066119520443, -0.7329461981284741,
              -0.7421964772267418, -2.389692358930274, -0.6184789653276177,
              0.14204767269813093, 0.9727618713561201],
        "g": ["g0"] * 4 + ["g1"] * 4 + ["g2"] * 3 + ["g3"],
        "w": [0.00026741746030149846, 6.318480990085446, 1.9929216003547503,
              0.003859314885542039, 195.4239616455935, 0.5859335337407974,
              0.0026059882622533267, 1.1319674555436905, 0.0002858126771877828,
              0.00019094739694517694, 6184.786658350781, 9.327331310699309]})
    model = mm.LinearMixedModel("y ~ x + (1 | g)", data, reml=False, weights="w")
    fit = model.fit()
    assert fit.objective <= _grid_minimum(model) + 1e-9 * abs(fit.objective)
    assert fit.objective == pytest.approx(76.1218, abs=5e-5)  # lme4 1.1-31's -2 logLik


def test_a_start_below_the_minimum_looks_at_lme4s_start():
    """The moment estimate, 0.22, lies below both minima of this ML criterion (47.370 on
    the bound, 47.267 at 1.24): the iteration goes down to the bound, and lme4's start,
    theta = 1 (47.324), which the points 10 to 1000 times the start pass over, shows the
    lower one."""
    data = pd.DataFrame({
        "y": [-3.7230382499610517, -1.797715388902256, -2.3329224486862574,
              -0.6832966852950809, 2.8457881766327815, -0.7464352068719288,
              0.466526023100136, -0.0892153138940831, -0.7250558769705455, 1.972092070699317,
              -2.3307251527546584, 0.24031101040018077, 0.03163334834531195],
        "x": [1.0355287582622557, -3.88490351589196, -6.80882009701904, -2.903771073840529,
              0.007608206505815443, -2.000057054934291, 1.4161692796496317,
              -3.5116054509286916, -0.2245937362323008, 5.069460792885478,
              -3.1304518585436694, -2.370482383492195, 1.5542098241381606],
        "g": ["0", "1", "1", "1", "1", "1", "2", "2", "2", "2", "2", "3", "3"]})
    model = mm.LinearMixedModel("y ~ x + (1 | g)", data, reml=False)
    unit = float(model.theta_units()[0])
    assert one_component_start(model.system.crossproducts, unit) == pytest.approx(0.2173,
                                                                                 abs=1e-4)
    fit = model.fit()
    assert fit.optsummary.initial[0] != unit
    assert fit.objective <= _grid_minimum(model) + 1e-9 * abs(fit.objective)
    assert fit.theta[0] == pytest.approx(1.24, abs=0.01)


MOMENT_MODELS = [
    ("Yield ~ 1 + (1 | Batch)", "dyestuff", None),
    ("travel ~ 1 + (1 | Rail)", "rail", None),
    ("effort ~ Type + (1 | Subject)", "ergostool", None),
    ("Reaction ~ Days + (1 | Subject)", "sleepstudy", None),
    ("Reaction ~ Days + (0 + Days | Subject)", "sleepstudy", None),
    ("Reaction ~ 0 + (1 | Subject)", "sleepstudy", None),
    ("Reaction ~ Days + (1 | Subject)", "sleepstudy", "Days"),
]


@pytest.mark.parametrize("formula, name, weights", MOMENT_MODELS)
def test_one_component_start_is_the_general_moment_start(formula, name, weights):
    """The closed form of one component is the MIVQUE(0) estimate of ``moment_start``, with
    or without fixed effects and prior weights (Days + 1 as weights)."""
    data = mm.datasets.load(name)
    if weights:
        data = data.assign(w=data[weights] + 1.0)
    model = mm.LinearMixedModel(formula, data, weights="w" if weights else None)
    unit = float(model.theta_units()[0])
    start = one_component_start(model.system.crossproducts, unit)
    general = moment_start(model.structure.parameters, model.system.crossproducts)
    assert start == pytest.approx(general[0], rel=1e-10)
    assert model.fit().optsummary.initial[0] == start


@pytest.mark.parametrize("formula, name", [("Yield ~ 1 + (1 | Batch)", "dyestuff"),
                                           ("travel ~ 1 + (1 | Rail)", "rail"),
                                           ("effort ~ Type + (1 | Subject)", "ergostool")])
def test_balanced_reml_starts_at_its_optimum(formula, name):
    """On balanced data the REML estimate of a positive variance component is the ANOVA
    estimate, which MIVQUE(0) is: the fit starts at its optimum and needs at most 5
    gradients (8 to 12 from lme4's start)."""
    fit = mm.lmer(formula, mm.datasets.load(name))
    assert fit.optsummary.initial[0] == pytest.approx(fit.theta[0], rel=1e-8)
    assert fit.optsummary.gradient_evaluations <= 5


def test_a_negative_moment_estimate_starts_at_lme4s_start():
    """Dyestuff2's between-batch mean square is below the residual's: the estimate is
    negative, and the fit starts where lme4's does (from the floor, the iteration can
    descend to the bound past a minimum above it)."""
    model = mm.LinearMixedModel("Yield ~ 1 + (1 | Batch)", mm.datasets.load("dyestuff2"))
    unit = float(model.theta_units()[0])
    assert one_component_start(model.system.crossproducts, unit) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert model.fit().optsummary.initial[0] == unit


def test_an_end_on_the_bound_from_the_moment_estimate_is_searched_from_lme4s_start():
    """x near 5e8 without an intercept: from the moment estimate, theta 0.10, the iteration
    goes down to the bound (125.680 by ML), and the points 10 to 1000 times that start miss
    the minimum, 122.764 at 1,328, which lme4's start and the points 10 to 1000 times it
    reach."""
    data = pd.DataFrame({
        "y": [1990.0, 2004, 1997, 1991, 2011, 2004, 1999, 2002, 2000, 2009, 2004, 1999, 2003,
              1997, 1994, 2000, 2003, 1996, 2005, 2010],
        "x": [494900000.0, 501100000, 497700000, 494300000, 505100000, 500900000, 499000000,
              501000000, 499900000, 503700000, 501700000, 498900000, 500300000, 498400000,
              496000000, 499400000, 500800000, 497000000, 501600000, 503500000],
        "g": ["g5"] * 6 + ["g6"] * 2 + ["g8"] * 3 + ["g9"] * 8 + ["g10"]})
    model = mm.LinearMixedModel("y ~ 0 + x + (1 | g)", data, reml=False)
    fit = model.fit()
    assert fit.optsummary.initial[0] == pytest.approx(0.1035, abs=1e-4)
    assert fit.objective == pytest.approx(122.76383, abs=1e-5)
    assert fit.theta[0] == pytest.approx(1327.94, rel=1e-4)
    assert fit.objective <= model.objective(np.array([1327.92])) + 1e-9 * fit.objective


def test_an_interior_end_is_compared_three_times_lme4s_start():
    """A REML fit with weights from 1e-3 to 1.8e3 has minima at 0.23 units (638.271) and
    at 4.75 units (635.062): from the moment estimate, 0.17 units, the iteration reaches the
    first, and of the points compared with it only 3 units, 3 times lme4's start, is lower
    (636.224)."""
    sizes = [7, 5, 4, 7, 1, 10, 1, 3, 9, 7, 9, 1, 4]
    weights = [1.66901549, 35.47774635, 0.03562008, 0.00108251, 0.04486239, 418.69558771,
               0.02234685, 12.38825347, 1797.82664419, 2.55647999, 10.85573961, 1.3157719,
               0.58641634]
    data = pd.DataFrame({
        "y": [6.7464868, 5.49352676, 25.16368346, 2.00991724, 8.73695671, 7.38039932,
              4.66568034, -4.17287692, -1.39528855, 1.72477194, 1.85156522, 2.53446001,
              3.75798389, 23.17414566, 23.97005697, 24.37959089, 2.20958659, 4.76677198,
              1.87595214, 3.21210175, 1.89765956, -1.79899116, 4.78424733, -133.50463565,
              -3.143883, -1.64016791, -4.65899619, -2.49230044, 1.34445708, -0.43141525,
              -1.57775092, -1.83046256, -0.24014824, -2.77520715, 1.38252122, 41.50527512,
              43.7212124, 46.07732921, -1.49562269, -0.08989606, -0.18146841, 1.33887763,
              2.10206234, 0.48265675, -1.58712417, -3.27499902, 8.80456357, -3.11724665,
              1.25127611, -15.36455229, 0.62924348, 1.82904028, 3.30603718, -3.15985904,
              -6.02255298, 8.93080339, 5.14895496, 41.80807809, 6.02917515, 3.71579483,
              13.1648001, 5.17930348, 6.65380334, -1.46399745, 2.17387754, -3.21561259,
              3.98168289, -1.51449166],
        "x": [-0.25435498, 1.80332128, 2.20511732, -0.94741711, 0.89796627, 1.84987344,
              0.46537467, 0.01481863, -1.11592045, 0.53076586, 1.02872003, 0.68164489,
              0.55230741, 1.53058095, 1.46461385, -0.6841218, 0.47094829, 1.00806202,
              0.80160489, 0.44188409, 0.1391345, -0.97791162, 1.47796605, 2.216165,
              -1.08083668, -0.19879354, -2.64568611, -0.63236311, 2.25081124, 0.34000382,
              0.06933656, 0.52260113, 0.2744841, -0.39080559, 1.47356931, -1.72604795,
              -0.39335574, 0.08075811, -0.48644025, -0.07897853, -0.06668366, 0.70419264,
              0.52934873, -1.86615358, -0.25196708, 0.31084137, 1.01370796, -1.26253017,
              -0.03469391, 0.32002958, -1.0177285, 0.45273363, 0.47546823, -2.32272383,
              -0.83323321, 0.40036784, -0.63200118, -2.38507227, 0.42891535, -1.13515272,
              3.31203479, -0.69250565, 0.10275762, -0.58697372, -1.27732803, -1.52363087,
              -0.43842745, -0.61592326],
        "g": np.repeat([f"g{i}" for i in range(len(sizes))], sizes),
        "w": np.repeat(weights, sizes)})
    model = mm.LinearMixedModel("y ~ 0 + x + (1 | g)", data, weights="w")
    unit = float(model.theta_units()[0])
    fit = model.fit()
    assert fit.optsummary.initial[0] == pytest.approx(0.167 * unit, rel=0.01)
    assert fit.objective <= _grid_minimum(model) + 1e-9 * abs(fit.objective)
    assert fit.objective == pytest.approx(635.062, abs=1e-3)
