"""The compiled one-factor objective equals the blocked computation and brute force."""

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.linalg.compiled import load_kernels

pytestmark = pytest.mark.skipif(not load_kernels(), reason="numba is not available")

FORMULAS = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)"),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject)"),
    ("orthodont", "distance ~ age * Sex + (age | Subject)"),
    ("ergostool", "effort ~ Type + (0 + Type | Subject)"),
]


@pytest.mark.parametrize("name, formula", FORMULAS)
@pytest.mark.parametrize("reml", [True, False])
def test_compiled_equals_blocked(name, formula, reml):
    model = mm.LinearMixedModel(formula, mm.datasets.load(name), reml=reml,
                                nobs_checks="ignore")  # ergoStool: as many effects as rows
    system = model.system
    assert system.backend == "compiled single factor"
    rng = np.random.default_rng(0)
    for _ in range(5):
        parameters = model.structure.parameters
        theta = parameters.start() * rng.uniform(0.1, 2.0) + np.where(
            parameters.lower() == 0, 0.0, rng.normal(0, 0.3, parameters.n_params))
        blocked = system.objective_from(system.factor(theta), reml)
        assert system.objective(theta, reml) == pytest.approx(blocked, rel=1e-11)


def test_compiled_path_rebuilt_for_a_new_response():
    data = mm.datasets.load("sleepstudy")
    model = mm.LinearMixedModel("Reaction ~ Days + (Days | Subject)", data)
    other = model.with_response(data["Reaction"].to_numpy() * 3.0)
    theta = np.array([0.9, 0.02, 0.2])
    blocked = other.system.objective_from(other.system.factor(theta), True)
    assert other.objective(theta) == pytest.approx(blocked, rel=1e-11)
    assert other.objective(theta) != pytest.approx(model.objective(theta), rel=1e-6)


SMALL_MULTI_FACTOR = [
    ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("pastes", "strength ~ 1 + (1 | batch/cask)"),
    ("orthodont", "distance ~ age + (1 | Subject) + (age | Sex)"),
]


@pytest.mark.parametrize("name, formula", SMALL_MULTI_FACTOR)
@pytest.mark.parametrize("reml", [True, False])
def test_compiled_dense_equals_blocked(name, formula, reml):
    model = mm.LinearMixedModel(formula, mm.datasets.load(name), reml=reml,
                                nobs_checks="ignore")  # ergoStool: as many effects as rows
    system = model.system
    assert system.backend == "compiled dense"
    rng = np.random.default_rng(1)
    for _ in range(5):
        lower = model.structure.parameters.lower()
        theta = np.where(lower == 0, rng.uniform(0.05, 2.0, model.structure.parameters.n_params),
                         rng.normal(0, 0.3, model.structure.parameters.n_params))
        blocked = system.objective_from(system.factor(theta), reml)
        assert system.objective(theta, reml) == pytest.approx(blocked, rel=1e-11)
