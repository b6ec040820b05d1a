"""The optimizer's start (``core.start``): MIVQUE(0) from A, checked against its definition on
dense matrices, against lme4's REML optimum where the two coincide (balanced designs), and by
what it saves; and the polish's reuse of the optimizer's last gradient (``BestPoint``)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import dataset_for, load_reference

import mixedmodels as mm
from mixedmodels.core import crossproducts as cp
from mixedmodels.core.start import SCALE_FLOOR, _mivque0, moment_start
from mixedmodels.lmm import model as lmm_model
from mixedmodels.lmm.model import LinearMixedModel


def _crossed(seed: int, rows: int = 600, slopes: bool = True) -> pd.DataFrame:
    """An unbalanced crossed design: subjects x items, a slope varying by subject, some rows
    missing at random."""
    rng = np.random.default_rng(seed)
    subject = rng.integers(0, 30, rows)
    item = rng.integers(0, 12, rows)
    x = rng.normal(size=rows)
    y = (1.0 + 0.5 * x + rng.normal(0, 0.8, 30)[subject]
         + (rng.normal(0, 0.4, 30)[subject] * x if slopes else 0.0)
         + rng.normal(0, 0.6, 12)[item] + rng.normal(0, 1.0, rows))
    return pd.DataFrame({"y": y, "x": x, "subject": [f"s{s}" for s in subject],
                         "item": [f"i{i}" for i in item]})


def _dense_mivque0(model: LinearMixedModel) -> tuple[float, list[np.ndarray]]:
    """MIVQUE(0) from its definition: Q = I - X X^+, one component per column of each
    block's Z, sum_u ||Z_t' Q Z_u||_F^2 s_u = ||Z_t' Q y||^2 with Z_0 = I."""
    design = model.design
    X, y = design.X, design.y
    n = len(y)
    Q = np.eye(n) - X @ np.linalg.pinv(X)
    columns, owners = [np.eye(n)], []
    for b, block in enumerate(model.structure.blocks):
        for c in range(block.p):
            z = np.zeros((n, block.nlevels))
            z[np.arange(n), block.codes] = block.values[:, c]
            columns.append(z)
            owners.append((b, c))
    m = len(columns)
    system = np.array([[np.sum((columns[t].T @ Q @ columns[u]) ** 2) for u in range(m)]
                       for t in range(m)])
    right = np.array([np.sum((columns[t].T @ Q @ y) ** 2) for t in range(m)])
    sigma = np.linalg.solve(system, right)
    blocks = [np.zeros(block.p) for block in model.structure.blocks]
    for (b, c), value in zip(owners, sigma[1:]):
        blocks[b][c] = value
    return float(sigma[0]), blocks


@pytest.mark.parametrize("formula, seed", [
    ("y ~ x + (1 + x | subject) + (1 | item)", 1),
    ("y ~ x + (1 | subject) + (0 + x | subject) + (1 | item)", 2),
    ("y ~ 1 + (1 | subject) + (1 | item) + (1 | subject:item)", 3),
    ("y ~ x + (x || item)", 4),
])
@pytest.mark.parametrize("dense_z", [True, False])
def test_mivque0_equals_its_definition(formula, seed, dense_z, monkeypatch):
    """From A's blocks (stored dense or sparse) as from the dense n x n definition."""
    monkeypatch.setattr(cp, "DENSE_Z_ENTRIES", 10**9 if dense_z else 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LinearMixedModel(formula, _crossed(seed))
    residual, blocks = _mivque0(model.system.crossproducts)
    expected_residual, expected_blocks = _dense_mivque0(model)
    assert residual == pytest.approx(expected_residual, rel=1e-10)
    for ours, expected in zip(blocks, expected_blocks):
        np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12 * expected_residual)


# balanced designs whose REML optimum is interior: MIVQUE(0) is there the ANOVA estimate, which
# is the REML estimate (Searle, Casella and McCulloch 1992, section 6.6)
BALANCED = ["dyestuff", "penicillin_crossed", "pastes_nested", "rail", "classic/oats",
            "classic/machines_nested", "classic/alfalfa", "classic/orange", "classic/cake",
            "classic/assay"]


@pytest.mark.parametrize("model_id", BALANCED)
def test_start_is_lme4s_reml_optimum_on_balanced_designs(model_id):
    record = load_reference(model_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LinearMixedModel(record["formula"], dataset_for(record))
    start = moment_start(model.structure.parameters, model.system.crossproducts)
    np.testing.assert_allclose(start, record["REML"]["theta"], rtol=2e-5)


def test_start_keeps_lme4s_where_the_moments_say_nothing():
    sleep = mm.datasets.load("sleepstudy")
    structured = LinearMixedModel("Reaction ~ Days + cs(Days | Subject)", sleep)
    parameters = structured.structure.parameters
    assert not parameters.linear
    np.testing.assert_array_equal(moment_start(parameters, structured.system.crossproducts),
                                  parameters.start())
    # a variance estimated <= 0 is started off the bound, correlations at 0
    dyestuff2 = LinearMixedModel("Yield ~ 1 + (1 | Batch)", mm.datasets.load("dyestuff2"))
    assert moment_start(dyestuff2.structure.parameters,
                        dyestuff2.system.crossproducts) == pytest.approx([SCALE_FLOOR])
    correlated = LinearMixedModel("Reaction ~ Days + (Days | Subject)", sleep)
    start = moment_start(correlated.structure.parameters, correlated.system.crossproducts)
    assert start[1] == 0.0 and start[0] > 0.0 and start[2] > 0.0


def test_the_start_saves_gradients_on_crossed_designs(monkeypatch):
    """A costly (blocked) system: L-BFGS from MIVQUE(0) reaches lme4's start's optimum in
    fewer gradients."""
    rng = np.random.default_rng(7)
    rows = 6000
    levels = {"subject": 400, "item": 150, "group": 20}
    codes = {name: rng.integers(0, count, rows) for name, count in levels.items()}
    x = rng.normal(size=rows)
    y = 2.0 + 0.3 * x + rng.normal(0, 1.0, rows) + sum(
        rng.normal(0, sd, levels[name])[codes[name]]
        for name, sd in (("subject", 0.7), ("item", 0.5), ("group", 0.3)))
    data = pd.DataFrame({"y": y, "x": x, **{name: [f"{name[0]}{v}" for v in c]
                                              for name, c in codes.items()}})
    formula = "y ~ x + (1 | subject) + (1 | item) + (1 | group)"
    fit = mm.lmer(formula, data)
    assert fit.model.system.evaluation_is_costly
    assert fit.optsummary.optimizer == "LD_LBFGS"
    monkeypatch.setattr(LinearMixedModel, "_lbfgs_start",
                        lambda self: self.structure.parameters.start())
    from_lme4 = mm.lmer(formula, data)
    assert fit.objective == pytest.approx(from_lme4.objective, rel=1e-12)
    np.testing.assert_allclose(fit.theta, from_lme4.theta, rtol=1e-8)
    assert fit.optsummary.gradient_evaluations < from_lme4.optsummary.gradient_evaluations


@pytest.mark.parametrize("model_id", ["classic/insteval", "classic/ham", "classic/pixel",
                                      "sleepstudy_corr"])
def test_every_recorded_gradient_was_computed(model_id, monkeypatch):
    """The summary counts the gradients computed, not those the polish was handed
    (``BestPoint``): the optimizer's last one is not computed again."""
    record = load_reference(model_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LinearMixedModel(record["formula"], dataset_for(record))
    calls = []
    original = model.system.objective_and_gradient

    def counted(theta, reml):
        calls.append(np.array(theta))
        return original(theta, reml)

    monkeypatch.setattr(model.system, "objective_and_gradient", counted)
    summary = model.optimize()
    assert summary.gradient_evaluations == len(calls) > 0
    seen = {tuple(theta) for theta in calls}
    assert len(seen) == len(calls)  # no point computed twice


def test_polished_tolerances_apply_to_lbfgs(monkeypatch):
    """L-BFGS stops at the polished tolerances where Newton steps follow, and the optimum
    is the one at the user's tolerances."""
    record = load_reference("classic/pixel")
    data = dataset_for(record)
    fit = mm.lmer(record["formula"], data)
    assert fit.optsummary.optimizer == "LD_LBFGS"
    monkeypatch.setattr(lmm_model, "POLISHED_TOLERANCES", {})
    tight = mm.lmer(record["formula"], data)
    assert fit.objective == pytest.approx(tight.objective, rel=1e-11)
    np.testing.assert_allclose(fit.theta, tight.theta, rtol=1e-8, atol=1e-9)
    assert fit.optsummary.evaluations < tight.optsummary.evaluations


def _slopes(scale: float, weight: float = 1.0) -> pd.DataFrame:
    """Crossed factors, a random slope on x * scale, prior weights times ``weight``."""
    rng = np.random.default_rng(20)
    rows = 3000
    g1, g2, x = rng.integers(0, 120, rows), rng.integers(0, 60, rows), rng.normal(size=rows)
    w = rng.uniform(0.2, 5.0, rows)
    y = (1 + x + rng.normal(size=120)[g1] + 0.5 * rng.normal(size=120)[g1] * x
         + 0.7 * rng.normal(size=60)[g2] + rng.normal(size=rows) / np.sqrt(w))
    return pd.DataFrame({"y": y, "xs": x * scale, "w": w * weight,
                         "g1": [f"a{v}" for v in g1], "g2": [f"b{v}" for v in g2]})


FORMULA = "y ~ xs + (xs || g1) + (1 | g2)"


@pytest.mark.parametrize("scale", [1e-4, 1e4, 1e6])
def test_start_and_fit_follow_the_columns_units(scale):
    """A slope's covariate in other units: the start's and the optimum's slope sd scale by
    its inverse (the MIVQUE system is equilibrated; L-BFGS runs in the columns' units), where
    unscaled the start hit its ceiling and L-BFGS stopped 14 to 30% above the optimum."""
    base = LinearMixedModel(FORMULA, _slopes(1.0), weights="w")
    other = LinearMixedModel(FORMULA, _slopes(scale), weights="w")
    mapping = np.array([1.0, 1.0 / scale, 1.0])
    np.testing.assert_allclose(
        moment_start(other.structure.parameters, other.system.crossproducts),
        moment_start(base.structure.parameters, base.system.crossproducts) * mapping,
        rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit, expected = other.fit(), base.fit()
    np.testing.assert_allclose(fit.theta, expected.theta * mapping, rtol=1e-6)
    assert fit.optsummary.gradient_evaluations <= 2 * expected.optsummary.gradient_evaluations


@pytest.mark.parametrize("reml", [True, False])
def test_fit_follows_the_weights_units(reml):
    """Prior weights times 1e8: sigma times 1e4, theta times 1e-4, the same fit (lme4's
    singularity rule, theta < 1e-4, then flags it: it is in theta's absolute units)."""
    base = LinearMixedModel("y ~ xs + (1 | g1) + (1 | g2)", _slopes(1.0), reml=reml,
                            weights="w")
    heavy = LinearMixedModel("y ~ xs + (1 | g1) + (1 | g2)", _slopes(1.0, 1e8), reml=reml,
                             weights="w")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit, expected = heavy.fit(), base.fit()
    np.testing.assert_allclose(fit.theta, expected.theta * 1e-4, rtol=1e-6)
    assert fit.sigma == pytest.approx(expected.sigma * 1e4, rel=1e-8)


def test_lbfgs_starts_again_where_the_start_is_not_finite(monkeypatch):
    """A start whose criterion is not finite is a failure to L-BFGS (NLopt, handed zero
    gradients there, says SUCCESS): the fit starts again from lme4's start."""
    from mixedmodels.core.optimize import OptSettings, minimize_lbfgs

    summary = minimize_lbfgs(lambda x: (np.inf, np.zeros(2)), np.ones(2), np.zeros(2),
                             OptSettings())
    assert summary.return_code == "FAILURE"
    data = _slopes(1.0)
    expected = mm.lmer("y ~ xs + (1 | g1) + (1 | g2)", data)
    monkeypatch.setattr(LinearMixedModel, "_lbfgs_start", lambda self: np.full(2, 1e8))
    fit = mm.lmer("y ~ xs + (1 | g1) + (1 | g2)", data)
    assert fit.optsummary.optimizer == "LD_LBFGS"
    assert np.isinf(fit.optsummary.trace[0])
    assert fit.objective == pytest.approx(expected.objective, rel=1e-12)


def _lam_of(theta: np.ndarray) -> np.ndarray:
    return np.array([[theta[0], 0.0], [theta[1], theta[2]]])


def _correlated(seed: int, shift: float, scale: float) -> pd.DataFrame:
    """(1 + x | g) + (1 | h) on 30 x 20 levels (a small system, 4 parameters), x with mean
    ``shift`` and sd ``scale``, a negative slope-intercept correlation."""
    rng = np.random.default_rng(seed)
    rows = 2000
    g, h, x = rng.integers(0, 30, rows), rng.integers(0, 20, rows), rng.normal(size=rows)
    cov = np.array([[1.0, -0.3 * 0.6], [-0.3 * 0.6, 0.36]])
    effects = rng.normal(size=(30, 2)) @ np.linalg.cholesky(cov).T
    y = 2 + x + effects[g, 0] + effects[g, 1] * x + 0.5 * rng.normal(size=20)[h] + rng.normal(
        size=rows)
    return pd.DataFrame({"y": y, "x": x * scale + shift, "xc": x, "g": [f"A{i}" for i in g],
                         "h": [f"B{i}" for i in h]})


@pytest.mark.parametrize("shift, scale", [(50.0, 1.0), (500.0, 1.0), (0.0, 1e4),
                                          (0.0, 1e-4)])
@pytest.mark.parametrize("reml", [True, False])
def test_small_lbfgs_fits_reach_the_optimum_in_any_units(shift, scale, reml):
    """A slope on x = shift + scale * xc (uncentred, or in large or small units) is the model
    of xc reparameterized: the fit's criterion equals the centred, unit-scale fit's mapped
    optimum (lam_x = T^-1 lam_c, T = [[1, shift / scale], [0, 1 / scale]]), where lme4's
    start in theta's own units stopped 1.7e-5 to 19% above it. A mean 50 and 500 sds from
    0 is searched in centred coordinates (``core.centring``): in lme4's parameterization it
    was too ill-conditioned for either optimizer at 500 (L-BFGS 2e-3 above the optimum,
    BOBYQA 0.1). The two criteria agree to 1e-9 relative: at 500 sds from 0 the criterion
    in theta is rounded at about 1e-10 relative, and where each fit stops within that
    depends on the machine's rounding."""
    data = _correlated(74, shift, scale)
    formula = "y ~ x + (1 + x | g) + (1 | h)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer(formula, data, reml=reml)
        centred = mm.lmer("y ~ xc + (1 + xc | g) + (1 | h)", data, reml=reml)
    if shift:
        assert fit.optsummary.optimizer.startswith("LD_LBFGS")
        assert fit.optsummary.optimizer.endswith("(centred)")
    else:
        assert fit.optsummary.optimizer == "LD_LBFGS"
    inverse = np.array([[1.0, -shift / scale], [0.0, 1.0 / scale]])
    mapped = inverse @ _lam_of(centred.theta)
    lower = np.linalg.cholesky(mapped @ mapped.T)
    theta = np.array([lower[0, 0], lower[1, 0], lower[1, 1], centred.theta[3]])
    optimum = LinearMixedModel(formula, data, reml=reml).objective(theta)
    assert fit.objective == pytest.approx(optimum, rel=1e-9)


@pytest.mark.parametrize("method", ["bobyqa", "auto"])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4, 86400.0])
def test_small_fits_reach_the_optimum_in_any_units(scale, method):
    """Small fits (3 parameters: sleepstudy's) run on theta / theta_units from lme4's start
    in the columns' units, BOBYQA's and L-BFGS's ("auto"): Days in seconds (86400) or any
    other unit give the fit of Days mapped (the slope's sd and its lam entries divided by
    the scale)."""
    data = mm.datasets.load("sleepstudy").assign(t=lambda d: d["Days"] * scale)
    settings = mm.OptSettings(method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer("Reaction ~ t + (t | Subject)", data, settings=settings)
        days = mm.lmer("Reaction ~ Days + (Days | Subject)", data, settings=settings)
    assert fit.optsummary.optimizer == ("LN_BOBYQA" if method == "bobyqa" else "LD_LBFGS")
    np.testing.assert_allclose(fit.theta, days.theta / np.array([1.0, scale, scale]),
                               rtol=1e-6)
    # REML: log|X'V^-1X| gains 2 log(scale) from t's column (X'V^-1X's row and column of t
    # are scale times Days')
    assert fit.objective == pytest.approx(days.objective + 2.0 * np.log(scale), rel=1e-10)
