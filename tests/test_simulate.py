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


# -- held random effects (lme4's use.u, re.form) and new data ----------------------------------
def _check_mean_and_cov(draws, mean, V, atol=4.5):
    """Each row's mean and every covariance entry of the draws against the model's, within
    ``atol`` standard errors (the draws' mean: sqrt(V_ii / n); a covariance entry:
    sqrt((V_ii V_jj + V_ij^2) / n))."""
    n = draws.shape[1]
    z = (draws.mean(axis=1) - mean) / np.sqrt(np.diag(V) / n)
    assert np.max(np.abs(z)) < atol
    centered = draws - mean[:, None]
    empirical = centered @ centered.T / n
    se = np.sqrt((np.outer(np.diag(V), np.diag(V)) + V ** 2) / n)
    assert np.all(np.abs(empirical - V) < atol * se)


def test_all_random_effects_held_is_the_fit_plus_residual_noise(sleep_fit):
    """include_random=True (lme4's use.u = TRUE): y* = X beta + Z u_hat + sigma e*, the e*
    the first nobs normals of each simulation's chunk of the stream."""
    draws = sleep_fit.simulate(3, seed=5, include_random=True)
    noise = np.random.default_rng(5).standard_normal((3, 180)).T
    np.testing.assert_allclose(draws, sleep_fit.fitted[:, None] + sleep_fit.sigma * noise,
                               rtol=1e-13)


def test_some_random_effects_held(penicillin_fit):
    """Holding plate: mean X beta + Z_plate u_plate, covariance Z_s G_s Z_s' + sigma^2 I."""
    fit = penicillin_fit
    rows = np.arange(0, 144, 7)  # 21 rows spread over plates and samples
    draws = fit.simulate(6000, seed=8, include_random=["plate"])[rows]
    Z, G = fit.Z.toarray(), fit.G.toarray()
    plate = np.arange(Z.shape[1]) < len(fit.ranef["plate"])  # plate has more levels: first
    u = np.concatenate([fit.ranef["plate"].to_numpy().ravel(),
                        fit.ranef["sample"].to_numpy().ravel()])
    mean = fit.X @ fit.beta + Z[:, plate] @ u[plate]
    V = (Z[:, ~plate] @ G[np.ix_(~plate, ~plate)] @ Z[:, ~plate].T
         + fit.sigma ** 2 * np.eye(144))
    _check_mean_and_cov(draws, mean[rows], V[np.ix_(rows, rows)])


def test_new_data_moments(sleep_fit):
    """New rows: a subject of the fit twice, a new subject twice, drawn (not held): every
    level's random effect is a new draw, shared by its rows."""
    newdata = {"Days": [0.0, 7.0, 2.0, 9.5, 4.0], "Subject": ["308", "308", "new", "new", "335"]}
    draws = sleep_fit.simulate(8000, seed=9, newdata=newdata)
    zs = np.column_stack([np.ones(5), newdata["Days"]])
    g = sleep_fit.G.toarray()[:2, :2]
    same = np.equal.outer(newdata["Subject"], newdata["Subject"])
    V = np.where(same, zs @ g @ zs.T, 0.0) + sleep_fit.sigma ** 2 * np.eye(5)
    _check_mean_and_cov(draws, zs @ sleep_fit.beta, V)


def test_new_data_held_levels(sleep_fit):
    """Held: a known level gets its conditional mode; an unseen one follows new_levels."""
    newdata = {"Days": [3.0, 3.0, 3.0], "Subject": ["308", "new", None]}
    with pytest.raises(mm.DataError, match=r"the level 'new' of the grouping factor 'Subject' "
                                           r"\(row 1\).*new_levels='draw'"):
        sleep_fit.simulate(2, newdata={"Days": [1.0, 2.0], "Subject": ["308", "new"]},
                           include_random=True)
    with pytest.raises(mm.DataError, match=r"a missing value of the grouping factor 'Subject' "
                                           r"\(row 2\)"):
        sleep_fit.simulate(2, newdata=newdata, include_random=True)
    known = sleep_fit.predict({"Days": [3.0], "Subject": ["308"]}).iloc[0]
    population = sleep_fit.beta @ [1.0, 3.0]
    z = np.array([1.0, 3.0])
    marginal = z @ sleep_fit.G.toarray()[:2, :2] @ z + sleep_fit.sigma ** 2
    kinds = {"population": (population, sleep_fit.sigma ** 2), "draw": (population, marginal)}
    for new_levels, (mean, variance) in kinds.items():
        draws = sleep_fit.simulate(8000, seed=10, newdata=newdata, include_random=True,
                                   new_levels=new_levels)
        # the unseen level and the missing one: independent draws (each a level of its own)
        _check_mean_and_cov(draws, np.array([known, mean, mean]),
                            np.diag([sleep_fit.sigma ** 2, variance, variance]))
    nan = sleep_fit.simulate(2, seed=1, newdata=newdata, include_random=True,
                             new_levels="nan")
    assert np.isfinite(nan[0]).all() and np.isnan(nan[1:]).all()


def test_new_data_rows_missing_a_value_are_nan(sleep_fit):
    newdata = {"Days": [1.0, np.nan, 2.0], "Subject": ["308", "309", "310"]}
    draws = sleep_fit.simulate(4, seed=1, newdata=newdata)
    assert draws.shape == (3, 4)
    assert np.isnan(draws[1]).all() and np.isfinite(draws[[0, 2]]).all()
    assert np.isnan(sleep_fit.simulate(2, newdata={"Days": [np.nan], "Subject": ["1"]})).all()


def test_new_data_residual_variances():
    """New observations get the residual variance of predict's prediction interval: here a
    variance function's, for gls (no random effects)."""
    data = mm.datasets.load("sleepstudy")
    fit = mm.gls("Reaction ~ Days", data, variance="exp(Days)")
    newdata = {"Days": [0.0, 4.0, 9.0]}
    draws = fit.simulate(8000, seed=3, newdata=newdata)
    variances = fit.sigma ** 2 * mm.diagnostics.predict.new_observation_variances(
        fit, __import__("pandas").DataFrame(newdata))
    assert variances[2] > 2 * variances[0]
    X = np.column_stack([np.ones(3), newdata["Days"]])
    _check_mean_and_cov(draws, X @ fit.beta, np.diag(variances))


def test_simulate_arguments(sleep_fit):
    with pytest.raises(ValueError, match="new_levels"):
        sleep_fit.simulate(1, new_levels="drop")
    with pytest.raises(ValueError, match="include_random must list grouping factors"):
        sleep_fit.simulate(1, include_random=["Subjects"])
    with pytest.raises(mm.DataError, match="newdata has no column 'Subject'"):
        sleep_fit.simulate(1, newdata={"Days": [1.0]})
    ar1 = mm.lmer("Reaction ~ Days + (1 | Subject)", mm.datasets.load("sleepstudy"),
                  correlation="ar1(Days | Subject)")
    with pytest.raises(ValueError, match="correlated"):
        ar1.simulate(1, newdata={"Days": [1.0], "Subject": ["308"]})
    # the fitted rows of a correlated fit, held: the fit plus correlated residual noise
    held = ar1.simulate(2, seed=4, include_random=True)
    noise = np.random.default_rng(4).standard_normal((2, 180)).T
    np.testing.assert_allclose(held, ar1.fitted[:, None]
                               + ar1.sigma * ar1.residual.color(noise), rtol=1e-12)
