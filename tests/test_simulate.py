"""simulate(): draws from the fitted model, y* ~ N(X beta, V), reproducible by seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import mixedmodels as mm
from mixedmodels.inference.bootstrap import bootstrap
from mixedmodels.inference.simulate import Simulator, simulate

REFERENCE = Path(__file__).parent / "reference"


@pytest.fixture(scope="module")
def sleep_fit():
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def penicillin_fit():
    return mm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", mm.datasets.load("penicillin"))


def test_shape_and_reproducibility(sleep_fit):
    draws = simulate(sleep_fit, n=5, seed=42)
    assert draws.shape == (180, 5)
    assert np.all(np.isfinite(draws))
    np.testing.assert_array_equal(draws, simulate(sleep_fit, n=5, seed=42))
    # a Generator or SeedSequence seeded alike gives the same stream
    np.testing.assert_array_equal(draws, simulate(sleep_fit, 5, np.random.default_rng(42)))
    np.testing.assert_array_equal(draws, simulate(sleep_fit, 5, np.random.SeedSequence(42)))
    # the columns are independent of n: the first k of n are the k draws
    np.testing.assert_array_equal(draws[:, :2], simulate(sleep_fit, n=2, seed=42))
    assert simulate(sleep_fit, n=0, seed=1).shape == (180, 0)


def test_different_seeds_differ(sleep_fit):
    a, b = simulate(sleep_fit, 3, seed=1), simulate(sleep_fit, 3, seed=2)
    assert np.all(a != b)
    # and the columns of one call differ from each other
    assert np.all(a[:, 0] != a[:, 1])


def test_z_lambda_stays_sparse(sleep_fit):
    simulator = Simulator.from_fit(sleep_fit)
    assert sp.issparse(simulator.zlam)
    assert simulator.zlam.shape == (180, 36)
    assert simulator.zlam.nnz <= 180 * 2  # one lam row (2 entries) per observation
    np.testing.assert_allclose(simulator.zlam.toarray(),
                               sleep_fit.Z.toarray() @ sleep_fit.Lambda.toarray(), atol=1e-12)
    np.testing.assert_allclose(simulator.mean, sleep_fit.X @ sleep_fit.beta)
    assert simulator.sigma == sleep_fit.sigma


def _check_moments(fit, draws, pairs):
    """Mean vs X beta (per observation, z-scores) and covariance entries vs V."""
    n = draws.shape[1]
    V = fit.V.toarray()
    mean = fit.X @ fit.beta
    z = (draws.mean(axis=1) - mean) / np.sqrt(np.diag(V) / n)
    assert np.max(np.abs(z)) < 4.5  # max over <= 180 standard normals
    # the grand mean, whose variance is 1'V1 / (nobs^2 n)
    se_grand = np.sqrt(V.sum() / n) / len(mean)
    assert abs(draws.mean() - mean.mean()) < 4 * se_grand
    centered = draws - mean[:, None]
    for i, j in pairs:
        empirical = centered[i] @ centered[j] / n
        se = np.sqrt((V[i, i] * V[j, j] + V[i, j] ** 2) / n)
        assert abs(empirical - V[i, j]) < 4 * se, (i, j, empirical, V[i, j], se)


def test_moments_match_the_model(sleep_fit):
    draws = simulate(sleep_fit, n=4000, seed=2024)
    rows = np.flatnonzero(sleep_fit.model.design.frame["Subject"].astype(str).to_numpy()
                          == sleep_fit.model.design.frame["Subject"].astype(str).iloc[0])
    assert len(rows) == 10
    a, b, c = rows[0], rows[9], rows[4]
    other = np.flatnonzero(~np.isin(np.arange(180), rows))[0]
    V = sleep_fit.V.toarray()
    assert V[a, b] > 0.2 * np.sqrt(V[a, a] * V[b, b])  # a strong within-subject covariance
    assert V[a, other] == 0
    _check_moments(sleep_fit, draws, [(a, a), (b, b), (a, b), (a, c), (c, b), (a, other)])
    # the whole within-subject block, entry by entry
    block = np.cov(draws[rows], bias=True)
    se = np.sqrt((np.outer(np.diag(V)[rows], np.diag(V)[rows]) + V[np.ix_(rows, rows)] ** 2)
                 / draws.shape[1])
    assert np.all(np.abs(block - V[np.ix_(rows, rows)]) < 4.5 * se)


def test_crossed_factors(penicillin_fit):
    """Two grouping factors: covariance through the shared plate, the shared sample, both."""
    fit = penicillin_fit
    frame = fit.model.design.frame
    plate, sample = frame["plate"].astype(str).to_numpy(), frame["sample"].astype(str).to_numpy()
    i = 0
    same_plate = np.flatnonzero((plate == plate[i]) & (sample != sample[i]))[0]
    same_sample = np.flatnonzero((sample == sample[i]) & (plate != plate[i]))[0]
    neither = np.flatnonzero((sample != sample[i]) & (plate != plate[i]))[0]
    V = fit.V.toarray()
    assert V[i, same_plate] > 0 and V[i, same_sample] > V[i, same_plate] and V[i, neither] == 0
    draws = simulate(fit, n=4000, seed=7)
    assert draws.shape == (144, 4000)
    _check_moments(fit, draws, [(i, i), (i, same_plate), (i, same_sample), (i, neither)])


def test_ml_fit_uses_its_own_sigma(sleep_fit):
    ml = sleep_fit.model.with_reml(False).fit()
    reference = json.loads((REFERENCE / "sleepstudy_corr.json").read_text())["ML"]
    assert ml.sigma == pytest.approx(reference["sigma"], rel=1e-4)
    assert Simulator.from_fit(ml).sigma == ml.sigma
    draws = simulate(ml, 3000, seed=3)
    # residual variance within subjects: var(y_i - y_j) over a subject's pairs -> 2 (V_ii - V_ij)
    V = ml.V.toarray()
    diff = draws[0] - draws[1]
    expected = V[0, 0] + V[1, 1] - 2 * V[0, 1]
    assert diff.var() == pytest.approx(expected, rel=4 * np.sqrt(2 / 3000))


def test_refits_recover_the_variance_components(sleep_fit):
    """200 responses simulated from the REML fit and refitted: the means of the estimated
    variances (REML: nearly unbiased) and fixed effects are within 3 Monte-Carlo standard
    errors of the values simulated from. (The sds themselves are biased low by Jensen's
    inequality, by about 2 standard errors of the mean at 200 replicates, so the test is on
    the variance scale.)"""
    n = 200
    result = bootstrap(sleep_fit, n, seed=2024, progress=False)
    assert result.n_failed == 0
    table = result.replicates
    truth = result.estimate
    for name in ["sd_(Intercept)|Subject", "sd_Days|Subject", "sigma"]:
        variances = table[name].to_numpy() ** 2
        se = variances.std(ddof=1) / np.sqrt(n)
        assert abs(variances.mean() - truth[name] ** 2) < 3 * se, name
        # and the sds are in the right place, within 5 % of the truth
        assert table[name].mean() == pytest.approx(truth[name], rel=0.05), name
    for name in ["(Intercept)", "Days"]:
        values = table[name].to_numpy()
        se = values.std(ddof=1) / np.sqrt(n)
        assert abs(values.mean() - truth[name]) < 3 * se, name
        # the spread of the estimates matches the fit's standard error (chi-square tolerance)
        assert values.std(ddof=1) == pytest.approx(sleep_fit.stderr[name], rel=0.2), name
    # the correlation (0.07 in the fit) is recovered to within 0.1
    assert table["cor_Days.(Intercept)|Subject"].mean() == pytest.approx(
        truth["cor_Days.(Intercept)|Subject"], abs=0.1)


def test_refit_equals_a_fresh_fit_of_the_new_response():
    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    y_new = fit.simulate(1, seed=3)[:, 0]
    refitted = fit.refit(y_new)
    fresh = mm.lmer("Reaction ~ Days + (Days | Subject)", data.assign(Reaction=y_new))
    assert refitted.objective == pytest.approx(fresh.objective, rel=1e-12)
    np.testing.assert_allclose(refitted.fixef, fresh.fixef, rtol=1e-9)
    np.testing.assert_allclose(refitted.theta, fresh.theta, atol=1e-6)
    with pytest.raises(ValueError, match="observations"):
        fit.refit(y_new[:-1])
