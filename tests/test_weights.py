"""Prior weights (Var(e_i) = sigma^2 / w_i) against lme4, lmerTest and pbkrtest
(tests/reference/weights.json, made by weights_reference.R), and against the definitions."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

REFERENCE = json.loads((Path(__file__).parent / "reference" / "weights.json").read_text())
CASES = [(case, method) for case in REFERENCE for method in ("REML", "ML")]
IDS = [f"{case['id']}-{method}" for case, method in CASES]


def _data(case) -> pd.DataFrame:
    data = mm.datasets.load(case["data"])
    row = np.arange(len(data))  # the expressions of weights_reference.R
    days = data["Days"] if "Days" in data else None
    weights = {"1 + Days / 5": lambda: 1 + days / 5,
               "1 + (row % 3) / 2": lambda: 1 + (row % 3) / 2,
               "0.5 + (row % 4) / 4": lambda: 0.5 + (row % 4) / 4}[case["weights"]]()
    return data.assign(w=np.asarray(weights, dtype=float))


_FITS = {}


def _fit(case, method):
    key = (case["id"], method)
    if key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = mm.lmer(case["formula"], _data(case), reml=method == "REML",
                                 weights="w")
    return _FITS[key]


@pytest.mark.parametrize("case, method", CASES, ids=IDS)
def test_fit_matches_lme4(case, method):
    ref = case[method]
    fit = _fit(case, method)
    assert fit.objective == pytest.approx(ref["criterion"], rel=1e-8)
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-8)
    se = np.array(list(ref["se"].values()))
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), rtol=0,
                               atol=1e-3 * se.min())
    np.testing.assert_allclose(fit.stderr.to_numpy(), se, rtol=1e-3)
    np.testing.assert_allclose(fit.varcorr["sdcor"].to_numpy(), ref["sdcor"], rtol=1e-3,
                               atol=1e-5)
    table = fit.ranef_table()
    condsd = np.array(ref["condsd"])
    np.testing.assert_allclose(table["condval"], ref["condval"], rtol=0, atol=1e-3 * condsd.max())
    np.testing.assert_allclose(table["condsd"], condsd, rtol=1e-3)
    tol = 1e-4 * fit.sigma
    np.testing.assert_allclose(fit.fitted[:10], ref["fitted_head"], rtol=0, atol=tol)
    np.testing.assert_allclose(fit.residuals[:10], ref["resid_head"], rtol=0, atol=tol)
    np.testing.assert_allclose(fit.resid("pearson")[:10], ref["pearson_head"], rtol=0, atol=tol)
    np.testing.assert_allclose(fit.leverage()[:10], ref["hat_head"], rtol=1e-3)
    np.testing.assert_allclose(fit.cooks_distance(method="lme4")[:10], ref["cooks_head"],
                               rtol=1e-3)  # as the hat values
    np.testing.assert_allclose(fit.coef_table("satterthwaite")["df"], ref["satterthwaite_df"],
                               rtol=1e-3)
    np.testing.assert_allclose(fit.ranova()["logLik"], ref["ranova_logLik"], rtol=1e-7)


# the fixed effects' profiles by refits with beta_j = v in an offset: "{rest} + offset(_o)"
# with _o = v * (column of beta_j)
CONSTRAINED = {
    ("sleepstudy", "(Intercept)"): ("Reaction ~ 0 + Days + offset(_o) + (Days | Subject)", None),
    ("sleepstudy", "Days"): ("Reaction ~ 1 + offset(_o) + (Days | Subject)", "Days"),
    ("pastes", "(Intercept)"): ("strength ~ 0 + offset(_o) + (1 | batch/cask)", None),
    ("penicillin", "(Intercept)"): ("diameter ~ 0 + offset(_o) + (1 | plate) + (1 | sample)", None),
}


@pytest.mark.parametrize("case", REFERENCE, ids=[c["id"] for c in REFERENCE])
def test_kenward_roger(case):
    """pbkrtest ignores prior weights; its reference is the same model without weights, rows
    scaled by sqrt(w), fitted in R (whose REML criterion less sum(log w) is the weighted one)."""
    ref = case["REML"]
    assert ref["scaled_criterion"] == pytest.approx(ref["criterion"], rel=1e-7)
    fit = _fit(case, "REML")
    np.testing.assert_allclose(fit.coef_table("kenward-roger")["df"], ref["kenward_roger_df"],
                               rtol=1e-3)


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"], marks=() if c["id"] == "penicillin"
                                              else pytest.mark.slow) for c in REFERENCE])
def test_profile_intervals(case):
    """Variance parameters: lme4's profile. Fixed effects: lme4 1.1.31 profiles them without
    the weights (Pastes' intercept: 60.06 to 60.34, where the profiled deviance is only 0.0004
    and 0.21 above its minimum), so ours are checked by their definition instead: the ML
    deviance of the refit with beta_j held at the endpoint is z^2 above the minimum."""
    fit = _fit(case, "ML")
    data = _data(case)
    intervals = fit.confint("profile")
    for row in case["ML"]["profile_ci"]:
        ours = intervals.loc[row["param"]]
        if row["param"] in fit.x_names:
            formula, column = CONSTRAINED[case["id"], row["param"]]
            for value in ours:
                offset = value * (data[column] if column else 1.0)
                constrained = mm.lmer(formula, data.assign(_o=offset), reml=False, weights="w")
                assert constrained.objective - fit.objective == pytest.approx(
                    1.959963984540054 ** 2, rel=1e-5)
            continue
        width = row["upper"] - row["lower"]
        assert abs(ours["lower"] - row["lower"]) <= 1e-3 * width, row
        assert abs(ours["upper"] - row["upper"]) <= 1e-3 * width, row


def test_objective_equals_dense_definition():
    """-2 log L and the REML criterion from V = Z G Z' + sigma^2 W^-1, built densely."""
    case = REFERENCE[0]
    for method in ("REML", "ML"):
        fit = _fit(case, method)
        X, y = fit.X, fit.y
        V = fit.V.toarray()
        Vi = np.linalg.inv(V)
        beta = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
        r = y - X @ beta
        value = np.linalg.slogdet(V)[1] + r @ Vi @ r + len(y) * np.log(2 * np.pi)
        if method == "REML":
            value += np.linalg.slogdet(X.T @ Vi @ X)[1] - X.shape[1] * np.log(2 * np.pi)
        assert fit.objective == pytest.approx(value, rel=1e-10)
        np.testing.assert_allclose(fit.R.diagonal(), fit.sigma ** 2 / _data(case)["w"])


def test_weights_one_are_no_weights_and_scale_invariance():
    data = _data(REFERENCE[0])
    plain = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    ones = mm.lmer("Reaction ~ Days + (Days | Subject)", data, weights=np.ones(len(data)))
    assert ones.objective == plain.objective
    # scaling all weights by c leaves beta and theta and scales sigma by sqrt(c):
    # Var(e_i) = sigma^2 / w_i stays
    weighted = _fit(REFERENCE[0], "REML")
    scaled = mm.lmer("Reaction ~ Days + (Days | Subject)", data, weights=4 * data["w"])
    np.testing.assert_allclose(scaled.fixef, weighted.fixef, rtol=1e-7)
    assert scaled.sigma == pytest.approx(weighted.sigma * 2, rel=1e-6)
    np.testing.assert_allclose(scaled.theta, weighted.theta / 2, rtol=1e-4)  # sd_u / sigma


def test_simulation_and_bootstrap_use_the_weights():
    fit = _fit(REFERENCE[0], "REML")
    draws = fit.simulate(4000, seed=1) - (fit.X @ fit.beta)[:, None]
    w = _data(REFERENCE[0])["w"].to_numpy()
    # Var(y_i) = z_i' G z_i + sigma^2 / w_i: the diagonal of V
    empirical = draws.var(axis=1)
    np.testing.assert_allclose(empirical, fit.V.diagonal(), rtol=0.12)
    assert np.corrcoef(empirical - (fit.Z @ fit.G @ fit.Z.T).diagonal(), 1 / w)[0, 1] > 0.9
    boot = fit.bootstrap(5, seed=3, progress=False)
    refit = fit.model.with_response(fit.simulate(1, seed=np.random.SeedSequence(3)
                                                 .spawn(5)[0])[:, 0]).fit()
    assert boot.replicates["sigma"].iloc[0] == pytest.approx(refit.sigma, rel=1e-10)


def test_rebuild_keeps_the_rows_weights():
    """model.rebuild (the refits of group deletion, ranova and portable bootstrap models) is
    the model of those rows of the data, with their weights, by the criterion asked for."""
    data = _data(REFERENCE[0])
    fit = _fit(REFERENCE[0], "REML")
    keep = data["Subject"].astype(str) != "308"
    subset = fit.model.rebuild(rows=keep.to_numpy(), reml=False)
    direct = mm.LinearMixedModel(fit.formula, data[keep], reml=False, weights="w")
    assert type(subset) is mm.lmm.LinearMixedModel and not subset.reml  # a plain one
    np.testing.assert_array_equal(subset.design.weights, data["w"][keep])
    theta = np.array([0.9, 0.1, 0.2])
    assert subset.objective(theta) == direct.objective(theta)
    other = fit.model.rebuild(formula="Reaction ~ Days + (1 | Subject)")
    assert other.reml and other.design.weights_label == "w" and other.design.n == len(data)


def test_summary_names_the_weights():
    """lme4 prints a line "Weights: w" under the formula; the scaled residuals are the
    Pearson residuals over sigma (lme4: Min -3.8862, Max 4.5443 for this model)."""
    data = _data(REFERENCE[0])
    fit = mm.lmer("Reaction ~ Days + offset(Days) + (1 | Subject)", data, weights="w")
    lines = str(fit.summary()).splitlines()
    assert lines[2] == "Weights: w"
    scaled = fit.resid("pearson", scaled=True)
    assert scaled.min() == pytest.approx(-3.8862, abs=1e-4)
    assert scaled.max() == pytest.approx(4.5443, abs=1e-4)
    plain = mm.lmer("Reaction ~ Days + (1 | Subject)", data)
    assert "Weights" not in str(plain.summary())


def test_bad_weights():
    data = _data(REFERENCE[0])
    formula = "Reaction ~ Days + (1 | Subject)"
    with pytest.raises(mm.DataError, match="positive"):
        mm.lmer(formula, data, weights=data["w"] - 2)
    with pytest.raises(mm.DataError, match="'ww'.*Did you mean 'w'"):
        mm.lmer(formula, data, weights="ww")
    with pytest.raises(mm.DataError, match="one value per row"):
        mm.lmer(formula, data, weights=[1.0, 2.0])
    with pytest.raises(mm.DataError, match="numeric"):
        mm.lmer(formula, data, weights="Subject")
    with_missing = data.assign(w=data["w"].where(data.index != 3))
    with pytest.warns(mm.DataWarning, match="1 of 180"):
        fit = mm.lmer(formula, with_missing, weights="w")
    assert fit.nobs == 179


def test_zero_weights_drop_their_rows():
    """A row of weight 0 carries no information: it is dropped with a message, and the fit is
    that of the other rows (lme4 keeps such rows and reports an infinite criterion; its fit
    of the rows left is REML 1733.515 for the weights below)."""
    data = mm.datasets.load("sleepstudy").assign(w=lambda f: 1 + f.Days / 4)
    data.loc[data.index[[2, 49, 50]], "w"] = 0.0
    formula = "Reaction ~ Days + (Days | Subject)"
    with pytest.warns(mm.DataWarning, match=r"dropped 3 of 180 rows whose weight 'w' is 0 "
                                            r"\(rows 2, 49, 50\)"):
        fit = mm.lmer(formula, data, weights="w")
    rest = mm.lmer(formula, data[data.w > 0], weights="w")
    assert fit.nobs == 177 and fit.objective == pytest.approx(rest.objective, rel=1e-12)
    assert fit.objective == pytest.approx(1733.515, abs=5e-4)
    with pytest.raises(mm.DataError, match="every weight in 'w' is 0"):
        mm.lmer(formula, data.assign(w=0.0), weights="w")


def test_weights_series_are_matched_to_rows_by_label():
    """A Series of weights is read by its index labels, as pandas aligns it: shuffled, it
    gives the same fit as its values in the data's order; labels that are not the data's
    are an error that says so, and a single number is the wrong type."""
    data = mm.datasets.load("sleepstudy")
    weights = pd.Series(np.where(data.Days > 4, 2.0, 1.0), index=data.index)
    formula = "Reaction ~ Days + (1 | Subject)"
    expected = mm.lmer(formula, data, weights=weights.to_numpy()).objective
    for given in (weights, weights.sample(frac=1, random_state=1)):
        assert mm.lmer(formula, data, weights=given).objective == pytest.approx(expected,
                                                                                 rel=1e-12)
    with pytest.raises(mm.DataError, match="labels not in the data's index: 1000"):
        mm.lmer(formula, data, weights=weights.set_axis(weights.index + 1000))
    with pytest.raises(mm.DataError, match="repeated labels, or not every row's label"):
        mm.lmer(formula, data, weights=weights.iloc[:-1])
    for scalar in (3, 2.5):
        with pytest.raises(mm.ArgumentTypeError, match="weights must be a column name"):
            mm.lmer(formula, data, weights=scalar)


@pytest.mark.parametrize("case, method", CASES, ids=IDS)
def test_cooks_distance_of_lme4_without_weights(case, method):
    """lme4's cooks.distance (from the hat values); the package's default, the exact
    deletion, is checked against refits in test_diagnostics."""
    data = mm.datasets.load(case["data"])
    fit = mm.lmer(case["formula"], data, reml=method == "REML")
    np.testing.assert_allclose(fit.cooks_distance(method="lme4")[:10],
                               case[method]["cooks_unweighted_head"], rtol=1e-4)
    with pytest.raises(ValueError, match="method must be one of 'deletion', 'lme4'"):
        fit.cooks_distance(method="refit")
