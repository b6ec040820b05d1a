"""The Newton polish's curvature: the secant Hessian of the optimizer's last steps
(``core.optimize._secant_hessian``), its BFGS corrections, and the forward differences it
falls back to; the polished optimum does not depend on which was used."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import dataset_for, load_reference

from mixedmodels.core import optimize
from mixedmodels.core.optimize import BestPoint, _secant_hessian, newton_polish
from mixedmodels.lmm import model as model_module
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


@pytest.mark.parametrize("model_id", ["classic/insteval", "crossed slopes"])
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


def _flat(noise: float = 1e-13):
    """A flat objective (100 to relative ``noise``, like a criterion's last bits) whose
    gradient says otherwise: no step can gain anything."""
    calls = {"n": 0}

    def objective_and_gradient(x):
        calls["n"] += 1
        return 100.0 * (1.0 + noise * np.sin(1e3 * calls["n"])), np.array([1e-3, 1e-3])

    return objective_and_gradient, calls


def test_lbfgs_stall_stops_after_evaluations_without_progress():
    """``stall``: after that many evaluations in a row without progress beyond ftol_rel,
    L-BFGS stops with FTOL_REACHED; its line search's last calls are answered, not
    evaluated nor counted."""
    settings = optimize.OptSettings(ftol_rel=1e-10, ftol_abs=0.0, xtol_abs=0.0)
    function, calls = _flat()
    stalled = optimize.minimize_lbfgs(function, np.ones(2), np.zeros(2), settings, stall=8)
    assert stalled.return_code == "FTOL_REACHED"
    assert stalled.evaluations == calls["n"] == 1 + 8


def test_lbfgs_stall_ends_penicillins_line_search_in_rounding(monkeypatch):
    """Penicillin's crossed model: L-BFGS reaches the optimum in about 12 evaluations, where
    the criterion's rounding (5e-10) exceeds what its steps gain; its line search then spun
    20 evaluations, failed, and BOBYQA continued (42 more). The rule stops it, and the
    Newton steps give BOBYQA's optimum."""
    record = load_reference("penicillin_crossed")
    data = dataset_for(record)
    model = LinearMixedModel(record["formula"], data)
    lbfgs = model.optimize(optimize.OptSettings(method="lbfgs"))
    bobyqa = model.optimize(optimize.OptSettings(method="bobyqa"))
    assert lbfgs.optimizer == "LD_LBFGS" and lbfgs.return_code == "FTOL_REACHED"
    assert lbfgs.evaluations <= 30
    assert lbfgs.fmin == pytest.approx(bobyqa.fmin, rel=1e-12)
    np.testing.assert_allclose(lbfgs.final, bobyqa.final, rtol=1e-8)
    monkeypatch.setattr(model_module, "LBFGS_STALL", 10**6)
    spinning = model.optimize(optimize.OptSettings(method="lbfgs"))
    assert spinning.evaluations > 2 * lbfgs.evaluations
