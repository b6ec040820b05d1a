"""The analytic gradient of the profiled criterion, its selected inverse, and L-BFGS.

* The gradient equals central finite differences of the objective on every reference model,
  REML and ML, at lme4's start, at the optimum and at a point away from both.
* The selected inverse equals the dense inverse of L L' wherever L stores a block, for every
  pair of block types (block-sparse with one and two columns per level, dense, three factors).
* L-BFGS reaches BOBYQA's optimum to 1e-8 relative on every reference model, and the summary
  records the method and the gradient evaluations.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import METHODS, dataset_for, load_reference, reference_ids

import mixedmodels as mm
from mixedmodels.core import pls
from mixedmodels.core.gradient import _entries_gradient, deviance_gradient, profiled_gradient
from mixedmodels.core.optimize import POLISH_STEPS
from mixedmodels.core.scalar import NAME as SCALAR_NEWTON
from mixedmodels.linalg.blocks import BlockDiagonal, BlockSparse
from mixedmodels.linalg.selected_inverse import selected_inverse
from mixedmodels.lmm.model import GRADIENT_FROM, GRADIENT_FROM_BLOCKED


def _thetas(fit) -> list[np.ndarray]:
    parameters = fit.model.structure.parameters
    lower = parameters.lower()
    rng = np.random.default_rng(5)
    away = np.where(lower == 0, fit.theta * rng.uniform(0.5, 1.5, len(lower)) + 0.05,
                    fit.theta + rng.normal(0, 0.2, len(lower)))
    return [parameters.start(), fit.theta, away]


OBJECTIVE_NOISE = 1e-12  # the criterion's relative rounding on the larger reference models


def _finite_differences(objective, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences with Richardson extrapolation (error O(h^4)), and an estimate of
    their error: the difference of the two central differences (rounding in the objective,
    whose relative noise can reach 1e-12 on large models, over a small step)."""
    out, spread = np.zeros(len(theta)), np.zeros(len(theta))
    for i in range(len(theta)):
        h = 1e-3 * max(abs(theta[i]), 1e-2)
        step = np.zeros(len(theta))
        step[i] = h
        wide = (objective(theta + 2 * step) - objective(theta - 2 * step)) / (4 * h)
        narrow = (objective(theta + step) - objective(theta - step)) / (2 * h)
        out[i] = (4 * narrow - wide) / 3
        # the two differences can agree by chance: add the rounding bound itself
        spread[i] = abs(narrow - wide) + OBJECTIVE_NOISE * abs(objective(theta)) / h
    return out, spread


# InstEval's finite differences (3 s) run with the slow tests
GRADIENT_MODELS = [pytest.param(model_id, marks=pytest.mark.slow)
                   if model_id == "classic/insteval" else model_id
                   for model_id in reference_ids()]


@pytest.mark.parametrize("model_id", GRADIENT_MODELS)
def test_gradient_equals_finite_differences(model_id, reference_fits):
    fit = reference_fits[model_id, "REML"][2]
    model = fit.model
    for reml in (True, False):
        sibling = model.with_reml(reml)
        for theta in _thetas(fit):
            system = sibling.system
            value, gradient = profiled_gradient(system, theta, reml)
            assert value == pytest.approx(sibling._criterion(theta), rel=1e-10)
            expected, spread = _finite_differences(
                lambda x: system.objective_from(system.factor(x), reml), theta)
            scale = max(1.0, np.max(np.abs(expected)))
            assert np.all(np.abs(gradient - expected) <= 1e-6 * scale + spread), (reml, theta)


@pytest.mark.parametrize("model_id", GRADIENT_MODELS)
def test_deviance_gradient_equals_finite_differences(model_id, reference_fits):
    """The criterion at a given sigma (Satterthwaite's Hessian differentiates this gradient),
    by theta and sigma, at the optimum and away from it."""
    fit = reference_fits[model_id, "REML"][2]
    for reml in (True, False):
        system = fit.model.with_reml(reml).system
        for point in (np.append(fit.theta, fit.sigma),
                      np.append(_thetas(fit)[2], 1.3 * fit.sigma)):
            value, gradient = deviance_gradient(system, point[:-1], point[-1], reml)
            assert value == pytest.approx(system.deviance(point[:-1], point[-1], reml),
                                          rel=1e-10)
            expected, spread = _finite_differences(
                lambda x: system.deviance(x[:-1], x[-1], reml), point)
            scale = max(1.0, np.max(np.abs(expected)))
            assert np.all(np.abs(gradient - expected) <= 1e-6 * scale + spread), (reml, point)


@pytest.mark.parametrize("model_id", reference_ids())
def test_dense_and_blocked_gradients_agree(model_id, reference_fits, monkeypatch):
    """Small systems take the dense path (compiled, or NumPy); the blocked factor gives the
    same gradient, and the same pieces."""
    system = reference_fits[model_id, "REML"][2].model.system
    if system.small_system is None:
        pytest.skip("not a small system")
    for reml in (True, False):
        for theta in _thetas(reference_fits[model_id, "REML"][2]):
            factor = system.factor(theta)
            blocked = _entries_gradient(system, factor, reml)
            scale = max(1.0, np.max(np.abs(blocked)))
            compiled_pieces, compiled = system.small_system.gradient(theta, reml, system.n)
            with monkeypatch.context() as patch:
                patch.setattr(pls, "dense_gradient_kernel", lambda: None)
                numpy_pieces, numpy = system.small_system.gradient(theta, reml, system.n)
            for pieces, gradient in ((compiled_pieces, compiled), (numpy_pieces, numpy)):
                assert np.max(np.abs(gradient - blocked)) <= 1e-7 * scale
                assert system.criterion(pieces, reml) == pytest.approx(
                    system.objective_from(factor, reml), rel=1e-10)


SINGLE_FACTOR = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", None),
    ("Reaction ~ 0 + (Days | Subject)", "sleepstudy", None),  # no fixed effects
    ("Reaction ~ Days + (Days || Subject)", "sleepstudy", "w"),  # prior weights
    ("Reaction ~ Days + cs(0 + factor(period) | Subject)", "sleepstudy", None),
    ("Reaction ~ Days + ar1(0 + factor(period) | Subject)", "sleepstudy", None),
    ("y ~ arm * visit + (visit | patient)", "trial", None),
]


@pytest.mark.parametrize("formula, name, weights", SINGLE_FACTOR)
def test_single_factor_gradient_equals_the_dense_and_blocked_ones(formula, name, weights):
    """One grouping factor's gradient kernel (a loop over its levels) gives the dense
    system's and the blocked factor's pieces and gradient, under REML and ML, profiled over
    sigma or at a given sigma, for linear and structured terms."""
    data = mm.datasets.load(name)
    data = data.assign(w=np.linspace(0.5, 2.0, len(data)), period=np.arange(len(data)) % 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer(formula, data, weights=weights)
    system = fit.model.system
    assert system.single_factor is not None
    rng = np.random.default_rng(3)
    for theta in (fit.theta, fit.theta * rng.uniform(0.7, 1.3, len(fit.theta))):
        for reml in (True, False):
            for sigma in (None, 0.8 * fit.sigma):
                single = _gradient_of(system, theta, reml, sigma)
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(system, "single_factor", None)
                    dense = _gradient_of(system, theta, reml, sigma)
                    patch.setattr(system, "_small", None)
                    patch.setattr(pls, "SMALL_SYSTEM", 0)
                    blocked = _gradient_of(system, theta, reml, sigma)
                for other in (dense, blocked):
                    assert single[0] == pytest.approx(other[0], rel=1e-11)
                    scale = max(1.0, np.max(np.abs(other[1])))
                    assert np.max(np.abs(single[1] - other[1])) <= 1e-8 * scale


def _gradient_of(system, theta, reml, sigma):
    if sigma is None:
        return profiled_gradient(system, theta, reml)
    return deviance_gradient(system, theta, sigma, reml)


def _dense_lower(factor, fixed: bool) -> np.ndarray:
    diagonal, below = factor.leading_blocks(fixed)
    sizes = [b.data.shape[0] * b.data.shape[1] if isinstance(b, BlockDiagonal) else b.shape[0]
             for b in diagonal]
    starts = np.cumsum([0] + sizes)
    out = np.zeros((starts[-1], starts[-1]))
    for i, block in enumerate(diagonal):
        out[starts[i]:starts[i + 1], starts[i]:starts[i + 1]] = (
            block.toarray() if isinstance(block, BlockDiagonal) else block)
    for (i, j), block in below.items():
        out[starts[i]:starts[i + 1], starts[j]:starts[j + 1]] = (
            block.toarray() if isinstance(block, BlockSparse) else block)
    return out, starts


def _crossed(levels: tuple[int, ...], n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {f"g{k}": rng.integers(0, m, n).astype(str) for k, m in enumerate(levels)}
    data["x"] = rng.normal(size=n)
    data["y"] = data["x"] + rng.normal(size=n)
    return pd.DataFrame(data)


SELECTED = [
    ("y ~ x + (1 | g0) + (1 | g1)", (900, 400), 4000, "BlockSparse"),
    ("y ~ x + (1 + x | g0) + (1 + x | g1)", (500, 300), 4000, "BlockSparse"),
    ("y ~ x + (1 + x | g0) + (1 | g1) + (1 | g2)", (40, 30, 7), 3000, "ndarray"),
    ("y ~ x + (1 | g0) + (1 + x | g1) + (1 | g2)", (900, 300, 6), 5000, "BlockSparse"),
    ("y ~ x + (1 | g0) + (1 | g1) + (1 | g2)", (900, 300, 200), 5000, "BlockSparse"),
]


@pytest.mark.parametrize("formula, levels, n, first_type", [  # the 5,000-row ones: slow
    case if case[2] < 5000 else pytest.param(*case, marks=pytest.mark.slow) for case in SELECTED])
def test_selected_inverse_equals_dense_inverse(formula, levels, n, first_type):
    """Sigma on L's pattern equals the dense inverse (REML's rows: with the fixed effects; ML's:
    without), and the gradient (REML, ML) through these blocks equals finite differences."""
    model = mm.LinearMixedModel(formula, _crossed(levels, n, seed=len(levels) + n))
    assert type(model.system.A_off[1, 0]).__name__ == first_type
    theta = model.structure.parameters.start() + 0.3
    factor = model.system.factor(theta)
    for fixed in (True, False):
        sigma = selected_inverse(*factor.leading_blocks(fixed))
        dense, starts = _dense_lower(factor, fixed)
        inverse = np.linalg.inv(dense @ dense.T)
        for (i, j), block in sigma.items():
            expected = inverse[starts[i]:starts[i + 1], starts[j]:starts[j + 1]]
            if isinstance(block, BlockDiagonal):
                actual, mask = block.toarray(), BlockDiagonal(np.ones_like(block.data)).toarray()
            elif isinstance(block, BlockSparse):
                actual = block.toarray()
                mask = block.with_data(np.ones_like(block.data)).toarray()
            else:
                actual, mask = block, np.ones_like(block)
            scale = np.max(np.abs(inverse))
            assert np.max(np.abs((actual - expected) * mask)) <= 1e-10 * scale, (i, j)
        # and the gradient through these blocks
        system = model.system
        _, gradient = profiled_gradient(system, theta, fixed)
        expected, spread = _finite_differences(
            lambda x: system.objective_from(system.factor(x), fixed), theta)
        scale = max(1.0, np.max(np.abs(expected)))
        assert np.all(np.abs(gradient - expected) <= 1e-6 * scale + spread)


@pytest.mark.parametrize("formula, levels, n", [case[:3] for case in SELECTED[2:]])
def test_quadratic_form_update_without_the_factor_of_the_rest(formula, levels, n, monkeypatch):
    """A dense diagonal block of Sigma gains Y' Sigma_rest Y by the rank-k update through
    Sigma_rest's Cholesky factor, or, where that factor fails, by bands of the product: the
    same blocks to rounding."""
    from mixedmodels.linalg import selected_inverse as module

    model = mm.LinearMixedModel(formula, _crossed(levels, n, seed=len(levels) + n))
    leading = model.system.factor(model.structure.parameters.start() + 0.3).leading_blocks(True)
    by_factor = selected_inverse(*leading)
    monkeypatch.setattr(module, "_potrf", lambda a, lower: (a, 1))
    _assert_same_blocks(selected_inverse(*leading), by_factor, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("formula, levels, n", [case[:3] for case in SELECTED
                                                if case[3] == "BlockSparse"])
def test_dense_gathers_kernel_equals_numpys(formula, levels, n, monkeypatch):
    """Products of dense blocks on a block-sparse pattern: the compiled loop and NumPy's
    gathers give the same blocks to rounding."""
    from mixedmodels.linalg import selected_inverse as module

    model = mm.LinearMixedModel(formula, _crossed(levels, n, seed=len(levels) + n))
    leading = model.system.factor(model.structure.parameters.start() + 0.3).leading_blocks(True)
    compiled = selected_inverse(*leading)
    monkeypatch.setattr(module, "dense_gathers_kernel", lambda: None)
    monkeypatch.setattr(module, "GATHERED", 64)  # NumPy's gathers, a few entries at a time
    _assert_same_blocks(selected_inverse(*leading), compiled, rtol=1e-11, atol=1e-14)


def _assert_same_blocks(actual: dict, expected: dict, rtol: float, atol: float) -> None:
    """Two selected inverses' blocks (dense, or block-sparse by their data) agree."""
    for key, block in expected.items():
        other = actual[key]
        np.testing.assert_allclose(getattr(other, "data", other), getattr(block, "data", block),
                                   rtol=rtol, atol=atol)


@pytest.mark.parametrize("formula, levels, n", [case[:3] for case in SELECTED
                                                if case[3] == "BlockSparse"])
def test_selected_inverse_by_columns_is_the_pair_plans(formula, levels, n, monkeypatch):
    """The compiled products of the block-sparse column (by columns, some rows of Sigma at a
    time) add what the pair plan adds, in its order: the same blocks to the last bit."""
    model = mm.LinearMixedModel(formula, _crossed(levels, n, seed=len(levels) + n))
    factor = model.system.factor(model.structure.parameters.start() + 0.3)
    leading = factor.leading_blocks(True)
    compiled = [selected_inverse(*leading)]
    module = "mixedmodels.linalg.selected_inverse"
    with monkeypatch.context() as patch:
        patch.setattr(f"{module}.TILE_BYTES", 8)  # one row at a time
        compiled.append(selected_inverse(*leading))
        patch.setattr(f"{module}.column_gathers_kernel", lambda: None)
        planned = selected_inverse(*leading)
    for key, block in planned.items():
        for sigma in compiled:
            other = sigma[key]
            assert type(other) is type(block)
            np.testing.assert_array_equal(getattr(other, "data", other),
                                          getattr(block, "data", block))


def _fit(record, method: str, optimizer: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(record["formula"], dataset_for(record), reml=(method == "REML"),
                       settings=mm.OptSettings(method=optimizer))


# InstEval's refits (3.5 and 4.5 s) run with the slow tests
OPTIMA = [pytest.param(model_id, method, marks=[pytest.mark.slow] if (
    model_id == "classic/insteval") else [])
    for method in METHODS for model_id in reference_ids()]


@pytest.mark.parametrize("model_id, method", OPTIMA)
def test_lbfgs_reaches_the_bobyqa_optimum(model_id, method, reference_fits):
    record, _, fit = reference_fits[model_id, method]
    used = "lbfgs" if fit.optsummary.optimizer.startswith("LD_LBFGS") else "bobyqa"
    other = _fit(record, method, "bobyqa" if used == "lbfgs" else "lbfgs")
    assert abs(other.objective - fit.objective) <= 1e-8 * abs(fit.objective)
    gradient_fit = fit if used == "lbfgs" else other
    assert gradient_fit.optsummary.optimizer.startswith("LD_LBFGS")
    assert gradient_fit.optsummary.gradient_evaluations > 0


def test_auto_uses_the_gradient_where_it_pays(reference_fits):
    """auto: Newton's method with one parameter, L-BFGS from GRADIENT_FROM_BLOCKED
    parameters on the blocked factor and from GRADIENT_FROM on smaller systems, BOBYQA
    elsewhere."""
    chosen = set()
    for (_, _), (_, _, fit) in reference_fits.items():
        costly = fit.model.system.evaluation_is_costly
        least = GRADIENT_FROM_BLOCKED if costly else GRADIENT_FROM
        n_params = fit.model.structure.parameters.n_params
        gradient = n_params >= least
        assert fit.optsummary.optimizer.startswith("LD_LBFGS") == gradient
        assert (fit.optsummary.optimizer == SCALAR_NEWTON) == (n_params == 1)
        if n_params == 1:
            chosen.add("scalar")
            continue
        # BOBYQA's fits use the gradient only in the Newton polish: a few calls per parameter
        polish = fit.optsummary.gradient_evaluations <= 2 + POLISH_STEPS * (
            1 + fit.model.structure.parameters.n_params)
        assert gradient or polish
        chosen.add((costly, gradient))
    assert {(True, True), (False, True), (False, False), "scalar"} <= chosen


def test_lbfgs_refuses_residual_parameters():
    with pytest.raises(ValueError, match="analytic gradient"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", mm.datasets.load("sleepstudy"),
                correlation="ar1(Days | Subject)", settings=mm.OptSettings(method="lbfgs"))


def test_method_is_checked():
    with pytest.raises(ValueError, match="settings.method"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", mm.datasets.load("sleepstudy"),
                settings=mm.OptSettings(method="newton"))


@pytest.mark.parametrize("model_id", ["pastes_nested", "sleepstudy_corr", "classic/oats",
                                      "classic/bodyweight"])
def test_bobyqa_stops_earlier_where_newton_steps_follow(model_id, monkeypatch):
    """BOBYQA at 1e-10 then Newton steps reach the optimum of BOBYQA at 1e-13 then Newton
    steps, in fewer evaluations."""
    from mixedmodels.lmm import model as lmm_model

    record = load_reference(model_id)
    data = dataset_for(record)
    fit = mm.lmer(record["formula"], data)
    assert fit.optsummary.settings == mm.OptSettings()  # the user's, as given
    monkeypatch.setattr(lmm_model, "POLISHED_TOLERANCES", {})
    tight = mm.lmer(record["formula"], data)
    assert fit.objective == pytest.approx(tight.objective, rel=1e-11)
    np.testing.assert_allclose(fit.theta, tight.theta, rtol=1e-9, atol=1e-9)
    assert fit.optsummary.evaluations < tight.optsummary.evaluations


def test_dense_numpy_gradient_is_thread_safe(reference_fits):
    """The NumPy dense path makes T per call: threads sharing a system (a profile on an
    executor) get the serial results."""
    from concurrent.futures import ThreadPoolExecutor

    fit = reference_fits["penicillin_crossed", "REML"][2]
    small = fit.model.system.small_system
    rng = np.random.default_rng(3)
    points = [fit.theta * rng.uniform(0.5, 1.5, len(fit.theta)) for _ in range(64)]

    def gradient(theta):
        return small._numpy_gradient(theta, small.size - 1, fit.nobs - 1, 2.0)[1]

    serial = [gradient(theta) for theta in points]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(gradient, points))
    for one, other in zip(serial, threaded):
        np.testing.assert_array_equal(one, other)
