"""The Newton polish's curvature: the secant Hessian of the optimizer's last steps
(``core.optimize._secant_hessian``), its BFGS corrections, and the forward differences it
falls back to; the polished optimum does not depend on which was used."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import dataset_for, load_reference

import mixedmodels as mm
from mixedmodels.core import optimize, start
from mixedmodels.core.optimize import BestPoint, _secant_hessian, newton_polish
from mixedmodels.lmm.model import LinearMixedModel

HESSIAN = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, -0.2], [0.5, -0.2, 2.0]])
CENTRE = np.array([0.7, -0.3, 1.2])


def _quadratic(x):
    d = np.asarray(x) - CENTRE
    return 0.5 * d @ HESSIAN @ d, HESSIAN @ d


def _history(points):
    return [(np.array(p, dtype=float), _quadratic(p)[1]) for p in points]


def test_secant_hessian_of_a_quadratic_is_its_hessian():
    x = CENTRE + 1e-4
    rng = np.random.default_rng(0)
    history = _history([x + rng.normal(0, 1e-3, 3) for _ in range(5)])
    secant = _secant_hessian(x, _quadratic(x)[1], history, np.arange(3))
    np.testing.assert_allclose(secant, HESSIAN, rtol=1e-8)


def test_secant_hessian_needs_points_that_determine_it():
    x = CENTRE + 1e-4
    gradient = _quadratic(x)[1]
    free = np.arange(3)
    along_one_line = _history([x + t * np.array([1.0, 2.0, 0.5]) * 1e-3 for t in (1, 2, 3, 4)])
    assert _secant_hessian(x, gradient, along_one_line, free) is None
    assert _secant_hessian(x, gradient, _history([x + 1e-3, x - 2e-3]), free) is None
    far = _history([x + np.eye(3)[i] for i in range(3)])  # beyond SECANT_RADIUS
    assert _secant_hessian(x, gradient, far, free) is None
    # a point that moved a held parameter says nothing about the free ones' curvature
    held = _history([x + 1e-3 * np.eye(3)[i] for i in range(3)])
    assert _secant_hessian(x, gradient, held, np.array([0, 1])) is not None
    assert _secant_hessian(x, gradient, held, np.array([0, 2])) is not None
    moved = _history([x + 1e-3 * np.array([1.0, 0.0, 1.0]), x + 1e-3 * np.array([0.0, 1.0, 1.0])])
    assert _secant_hessian(x, gradient, moved, np.array([0, 1])) is None


def _model(model_id: str) -> LinearMixedModel:
    record = load_reference(model_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LinearMixedModel(record["formula"], dataset_for(record))


@pytest.mark.parametrize("model_id", [pytest.param("classic/insteval", marks=pytest.mark.slow),
                                      "crossed slopes"])
def test_polished_optimum_is_the_same_with_the_secant_or_differences(model_id, monkeypatch):
    """L-BFGS fits on the blocked factor: polished with the secant curvature (and BFGS's
    corrections) or with the forward-difference Hessian, the same theta to 1e-9 and
    criterion to 1e-12; the secant saves gradients."""
    if model_id == "crossed slopes":
        rng = np.random.default_rng(5)
        rows = 3000
        g1, g2, x = rng.integers(0, 150, rows), rng.integers(0, 60, rows), rng.normal(size=rows)
        y = (x + rng.normal(size=150)[g1] + 0.4 * rng.normal(size=150)[g1] * x
             + 0.6 * rng.normal(size=60)[g2] + rng.normal(size=rows))
        data = pd.DataFrame({"y": y, "x": x, "g1": [f"a{v}" for v in g1],
                             "g2": [f"b{v}" for v in g2]})
        model = LinearMixedModel("y ~ x + (1 + x | g1) + (1 | g2)", data)
    else:
        model = _model(model_id)
    assert model.system.evaluation_is_costly
    with_secant = model.optimize()
    assert with_secant.optimizer == "LD_LBFGS"
    monkeypatch.setattr(optimize, "_secant_hessian", lambda *args: None)
    differenced = model.optimize()
    np.testing.assert_allclose(with_secant.final, differenced.final, rtol=1e-9, atol=1e-10)
    assert with_secant.fmin == pytest.approx(differenced.fmin, rel=1e-12)
    assert with_secant.gradient_evaluations < differenced.gradient_evaluations


@pytest.mark.parametrize("wrong", ["not positive definite", "misleading"])
def test_a_wrong_secant_falls_back_to_differences(wrong, monkeypatch):
    """A secant curvature that is not positive definite is not used; one whose first step
    fails is replaced by forward differences: the polish ends where it ends without it."""
    model = _model("classic/pixel")
    reference = model.optimize()
    criterion_and_gradient = BestPoint(model._criterion_and_gradient)
    start = reference.final * (1 + 1e-4)
    unpolished = optimize.replace(reference, final=start, fmin=model._criterion(start))
    k = len(start)
    bad = -np.eye(k) if wrong == "not positive definite" else 1e-6 * np.eye(k)
    monkeypatch.setattr(optimize, "_secant_hessian", lambda *args: bad)
    polished = newton_polish(criterion_and_gradient, unpolished,
                             model.structure.parameters.upper())
    np.testing.assert_allclose(polished.final, reference.final, rtol=1e-8, atol=1e-9)
    assert polished.gradient_evaluations - unpolished.gradient_evaluations >= 1 + k



def _slopes(seed: int, groups: int, per: int, intercept_sd: float, slope_sd: float,
            noise: float = 1.0, x_scale: float = 1.0, weights: bool = False) -> pd.DataFrame:
    """y = 1 + 0.5 x + b0[g] + b1[g] x + e, x standard normal stored times ``x_scale``."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    b0 = rng.normal(size=groups) * intercept_sd
    b1 = rng.normal(size=groups) * slope_sd
    y = 1 + 0.5 * x + b0[g] + b1[g] * x + noise * rng.normal(size=g.size)
    data = pd.DataFrame({"y": y, "x": x * x_scale, "g": [f"G{i}" for i in g]})
    if weights:
        data["w"] = 10 ** rng.uniform(-1, 1, size=g.size)
    return data


# (seed, groups, per group, intercept sd, slope sd, noise, x scale, weights, reml): fits on
# which a default fit once stopped above BOBYQA's optimum, silently
HARD_FITS = [
    (5, 3, 20, 0.0, 1.0, 1.0, 1.0, False, True),  # L-BFGS at a saddle (3.5e-3 above)
    (0, 200, 10, 1.0, 0.0, 0.05, 1e-4, False, False),  # a stop in a line search (83 above)
    (2, 3, 20, 1.0, 0.0, 1.0, 1.0, True, False),  # the same, with prior weights (4.4 above)
]


@pytest.mark.parametrize("seed, groups, per, sd0, sd1, noise, scale, weights, reml", HARD_FITS)
def test_default_fits_reach_the_optimum_where_lbfgs_can_stop_short(
        seed, groups, per, sd0, sd1, noise, scale, weights, reml):
    """Correlated slopes (3 parameters: L-BFGS by default) with a variance near 0: the
    default fit reaches BOBYQA's optimum or a lower one. At a saddle (the Newton steps'
    Hessian at L-BFGS's end is not positive definite) BOBYQA continues from there."""
    data = _slopes(seed, groups, per, sd0, sd1, noise, scale, weights)
    arguments = {"reml": reml, "weights": "w" if weights else None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = mm.lmer("y ~ x + (x | g)", data, **arguments)
        bobyqa = mm.lmer("y ~ x + (x | g)", data, settings=mm.OptSettings(method="bobyqa"),
                         **arguments)
    assert auto.optsummary.optimizer.startswith("LD_LBFGS")
    assert auto.objective <= bobyqa.objective + 1e-9 * abs(bobyqa.objective)


def test_a_saddle_is_reported_and_left():
    """L-BFGS alone stops at the saddle (its Newton steps' Hessian is indefinite there); the
    default fit's continuation ends where the Hessian of the free parameters is positive
    definite, 3.5e-3 lower."""
    data = _slopes(*HARD_FITS[0][:7])
    model = LinearMixedModel("y ~ x + (x | g)", data)
    saddle = model.optimize(mm.OptSettings(method="lbfgs"))
    assert saddle.optimizer == "LD_LBFGS + LN_BOBYQA"
    with pytest.MonkeyPatch.context() as patch:  # without the continuation
        patch.setattr(LinearMixedModel, "_continued", lambda self, summary, *_: summary)
        stopped = model.optimize(mm.OptSettings(method="lbfgs"))
    assert stopped.curvature == "indefinite"
    assert stopped.fmin - saddle.fmin > 1e-3
    assert saddle.curvature in ("positive definite", "")


def _extreme_weights() -> pd.DataFrame:
    """(x || g) data of 8 groups (one of 1 row, the others of 3) with prior weights from 1e-6
    to 1e6: the slope's sd is 1e-3 in truth."""
    rng = np.random.default_rng(347)
    sizes = np.array([1] + [3] * 7)
    g = np.repeat(np.arange(8), sizes)
    x = [rng.normal(size=g.size) for _ in range(4)][0]
    covariance = np.outer([1.0, 1e-3], [1.0, 1e-3]) * np.array([[1.0, 0.5], [0.5, 1.0]])
    values, vectors = np.linalg.eigh(covariance)
    b = rng.normal(size=(8, 2)) @ (vectors * np.sqrt(np.clip(values, 0, None))).T
    y = 1.0 + 0.5 * x + b[g, 0] + b[g, 1] * x + 5.0 * rng.normal(size=g.size)
    weights = 10 ** rng.uniform(-6, 6, size=g.size)
    y = y + 5.0 * rng.normal(size=g.size) / np.sqrt(weights)
    return pd.DataFrame({"y": y, "x1": x, "w": weights, "g": [f"G{i}" for i in g]})


def test_bobyqa_leaves_a_stop_where_the_hessian_is_indefinite():
    """BOBYQA (2 parameters) stopped with the intercept's sd at 1.2e-4, just outside lme4's
    singular tolerance, where the Hessian is indefinite, 0.83 above the optimum L-BFGS
    finds; its restart from there reaches it. (With the slope's unit from its root mean
    square, as an uncorrelated slope's is now, BOBYQA reaches the optimum at once: the stop
    is reproduced with the unit from its sd, as before.)"""
    data = _extreme_weights()
    original_continued = LinearMixedModel._continued
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {method: mm.lmer("y ~ x1 + (x1 || g)", data, weights="w",
                                settings=mm.OptSettings(method=method))
                for method in ("auto", "lbfgs")}
    assert fits["auto"].optsummary.optimizer == "LN_BOBYQA"
    assert fits["auto"].optsummary.curvature == "positive definite"
    assert fits["auto"].objective == pytest.approx(fits["lbfgs"].objective, rel=1e-10)
    with pytest.MonkeyPatch.context() as patch:  # without the continuation, sd's units
        patch.setattr(LinearMixedModel, "_continued", lambda self, summary, *_: summary)
        patch.setattr(start, "_with_intercept", lambda parameters, block, j: np.ones(
            sum(parameters.structures[t].k for t in parameters.blocks[block]), bool))
        stopped = LinearMixedModel("y ~ x1 + (x1 || g)", data, weights="w").optimize()
        assert stopped.curvature == "indefinite"
        assert stopped.fmin - fits["auto"].objective > 0.5
        continued = LinearMixedModel("y ~ x1 + (x1 || g)", data, weights="w")
        patch.setattr(LinearMixedModel, "_continued", original_continued)
        assert continued.optimize().fmin == pytest.approx(fits["lbfgs"].objective, rel=1e-10)
