"""Every reference model, by REML and ML, against R's lme4 (tests/reference/*.json).

Tolerances: the objective may not be worse than lme4's best optimum by more than 1e-6 relative
(nor better by more: that would mean a different criterion); fixed effects within 2e-3 of
their standard errors; standard errors and standard deviations within 2e-3 relative (an sd
near zero: 1e-4 absolute); correlations within 5e-3; conditional modes within 2e-3 of their
conditional sds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import METHODS, reference_ids

CASES = [(model_id, method) for model_id in reference_ids() for method in METHODS]
IDS = [f"{model_id}-{method}" for model_id, method in CASES]

OBJECTIVE_RTOL = 1e-6
FIXEF_IN_SE = 2e-3
SD_RTOL = 2e-3
SD_ATOL = 1e-4
CORR_ATOL = 5e-3
CONDVAL_IN_CONDSD = 2e-3


def test_all_models_are_there():
    assert len(reference_ids(classic=False)) == 10  # the shared models
    assert len(reference_ids()) == 25  # and 15 classic ones
    assert len(CASES) == 50


@pytest.fixture(params=CASES, ids=IDS)
def case(request, reference_fits):
    return reference_fits[request.param]


def _label(value):
    """lme4's NA (JSON null) and pandas' None/NaN are the same missing label."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _close_sd(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= max(SD_RTOL * abs(theirs), SD_ATOL)


def test_objective_no_worse_than_lme4(case):
    record, ref, fit = case
    crit = ref["criterion"]
    assert fit.objective <= crit + OBJECTIVE_RTOL * abs(crit), (fit.objective, crit)
    # much lower than lme4's optimum would mean that we compute another function
    assert fit.objective >= crit - OBJECTIVE_RTOL * abs(crit), (fit.objective, crit)
    assert fit.reml == (ref is record["REML"])
    assert fit.nobs == ref.get("nobs", record["nobs"])  # rows used: without missing values


def test_loglik_aic_bic(case):
    _, ref, fit = case
    for ours, theirs in [(fit.loglik, ref["logLik"]), (fit.aic, ref["AIC"]),
                         (fit.bic, ref["BIC"])]:
        assert ours == pytest.approx(theirs, rel=OBJECTIVE_RTOL, abs=1e-8)
    assert fit.loglik == pytest.approx(-0.5 * fit.objective, rel=1e-14)


def test_fixed_effects_within_standard_errors(case):
    _, ref, fit = case
    assert list(fit.fixef.index) == list(ref["fixef"])
    se = np.array(list(ref["se"].values()))
    error = np.abs(fit.fixef.to_numpy() - np.array(list(ref["fixef"].values())))
    assert np.all(error <= FIXEF_IN_SE * se), error / se


def test_standard_errors_and_vcov(case):
    _, ref, fit = case
    assert list(fit.stderr.index) == list(ref["se"])
    se = np.array(list(ref["se"].values()))
    np.testing.assert_allclose(fit.stderr.to_numpy(), se, rtol=SD_RTOL)
    vcov = np.array(ref["vcov"], dtype=float).reshape(len(se), len(se))
    scale = np.sqrt(np.outer(se, se))
    assert np.all(np.abs(fit.vcov.to_numpy() - vcov) <= SD_RTOL * scale)


def test_sigma(case):
    _, ref, fit = case
    assert fit.sigma == pytest.approx(ref["sigma"], rel=SD_RTOL)


def test_varcorr_labels(case):
    _, ref, fit = case
    ours = [tuple(_label(v) for v in row)
            for row in fit.varcorr[["group", "var1", "var2"]].itertuples(index=False)]
    theirs = [(_label(r["grp"]), _label(r["var1"]), _label(r["var2"])) for r in ref["varcorr"]]
    assert ours == theirs


def test_varcorr_values(case):
    _, ref, fit = case
    for row, r in zip(fit.varcorr.itertuples(index=False), ref["varcorr"]):
        if _label(r["var2"]) is None:  # a standard deviation
            assert _close_sd(row.sdcor, r["sdcor"]), (row, r)
            variance_tol = max(2 * SD_RTOL * r["vcov"], 2 * SD_ATOL * max(r["sdcor"], SD_ATOL))
            assert abs(row.vcov - r["vcov"]) <= variance_tol + 1e-12, (row, r)
        elif r["sdcor"] is None:
            assert math.isnan(row.sdcor)
        else:
            assert abs(row.sdcor - r["sdcor"]) <= CORR_ATOL, (row, r)
    assert fit.varcorr.iloc[-1]["sdcor"] == pytest.approx(fit.sigma, rel=1e-14)


def test_singular_flag(case):
    _, ref, fit = case
    assert fit.is_singular == ref["singular"]


def test_theta(case):
    """theta in lme4's order; entries agree to the precision the sds do."""
    _, ref, fit = case
    theta = np.atleast_1d(np.array(ref["theta"], dtype=float))  # JSON unboxes length 1
    assert fit.theta.shape == theta.shape
    assert np.all(np.abs(fit.theta - theta) <= SD_RTOL * np.maximum(np.abs(theta), 1.0) + 1e-4)


def test_ranef_table(case):
    _, ref, fit = case
    table = fit.ranef_table()
    theirs = ref["ranef"]
    if not theirs:  # not recorded for the largest model (InstEval)
        pytest.skip("no conditional modes in the reference")
    assert list(table.columns) == ["grpvar", "term", "grp", "condval", "condsd"]
    assert list(table["grpvar"]) == theirs["grpvar"]
    assert list(table["term"]) == theirs["term"]
    assert list(table["grp"]) == theirs["grp"]
    condsd = np.array(theirs["condsd"], dtype=float)
    condval = np.array(theirs["condval"], dtype=float)
    floor = 1e-8 * fit.sigma  # for a zero variance, both condval and condsd are zero
    assert np.all(np.abs(table["condval"].to_numpy() - condval)
                  <= CONDVAL_IN_CONDSD * condsd + floor)
    assert np.all(np.abs(table["condsd"].to_numpy() - condsd) <= SD_RTOL * condsd + floor)


def test_ranef_dict_matches_table(case):
    _, _, fit = case
    table = fit.ranef_table()
    for group, frame in fit.ranef.items():
        assert isinstance(frame, pd.DataFrame)
        for term in frame.columns:
            rows = table[(table.grpvar == group) & (table.term == term)]
            assert list(rows.grp) == list(frame.index)
            np.testing.assert_array_equal(rows.condval.to_numpy(), frame[term].to_numpy())


def test_fitted_and_residuals_head(case):
    record, ref, fit = case
    n = len(ref["fitted_head"])
    tol = SD_RTOL * ref["sigma"]
    np.testing.assert_allclose(fit.fitted[:n], ref["fitted_head"], rtol=0, atol=tol)
    np.testing.assert_allclose(fit.residuals[:n], ref["resid_head"], rtol=0, atol=tol)
    np.testing.assert_allclose(fit.fitted + fit.residuals, fit.y, rtol=1e-12,
                               atol=1e-12 * np.abs(fit.y).max())


def test_coef_is_fixef_plus_ranef(case):
    """lme4's coef(): per level, the fixed effects plus the level's conditional modes."""
    _, _, fit = case
    for group, table in fit.coef.items():
        modes = fit.ranef[group]
        assert list(table.index) == list(modes.index)
        extra = [c for c in modes.columns if c not in fit.fixef.index]
        assert list(table.columns) == list(dict.fromkeys(extra)) + list(fit.fixef.index)
        for column in table.columns:
            expected = fit.fixef.get(column, 0.0) + (modes[column].to_numpy()
                                                      if column in modes else 0.0)
            np.testing.assert_allclose(table[column].to_numpy(), expected, rtol=1e-12)


def test_coef_matches_lme4_on_pastes(reference_fits):
    """lme4 1.1.31: coef(lmer(strength ~ 1 + (1 | batch/cask), Pastes)): batch A 60.85398,
    B 59.78082; cask:batch a:A 61.82802, a:C 57.48112."""
    fit = reference_fits["pastes_nested", "REML"][2]
    assert fit.coef["batch"].loc["A", "(Intercept)"] == pytest.approx(60.85398, abs=1e-5)
    assert fit.coef["batch"].loc["B", "(Intercept)"] == pytest.approx(59.78082, abs=1e-5)
    assert fit.coef["cask:batch"].loc["a:A", "(Intercept)"] == pytest.approx(61.82802, abs=1e-5)
    assert fit.coef["cask:batch"].loc["a:C", "(Intercept)"] == pytest.approx(57.48112, abs=1e-5)
