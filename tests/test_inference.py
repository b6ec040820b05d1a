"""Satterthwaite and Kenward-Roger tests and profile intervals against lmerTest, pbkrtest, lme4."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import mixedmodels as mm

REFERENCE = Path(__file__).parent / "reference"
MODELS = sorted(p.stem for p in REFERENCE.glob("*.json")
                if "formula" in json.loads(p.read_text()))


def _reference(model_id):
    return json.loads((REFERENCE / f"{model_id}.json").read_text())


def _values(entry):
    return np.array(list(entry.values()) if isinstance(entry, dict) else entry, dtype=float)


_FITS = {}


def _fit(model_id, reml):
    key = (model_id, reml)
    if key not in _FITS:
        ref = _reference(model_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = mm.lmer(ref["formula"], mm.datasets.load(ref["data"][:-4]), reml=reml)
    return _FITS[key]


def _close_p(ours, theirs):
    """p-values within 1e-3 relative or 1e-8 absolute."""
    return np.all((np.abs(ours - theirs) <= 1e-3 * np.abs(theirs)) | (np.abs(ours - theirs) < 1e-8))


@pytest.mark.parametrize("model_id", MODELS)
@pytest.mark.parametrize("ddf, key", [("satterthwaite", "satterthwaite"),
                                      ("kenward-roger", "kenward_roger")])
def test_coefficient_df_and_p(model_id, ddf, key):
    ref = _reference(model_id)["REML"][key]
    table = _fit(model_id, True).coef_table(ddf)
    np.testing.assert_allclose(table["df"].to_numpy(), _values(ref["df"]), rtol=1e-3)
    assert _close_p(table["p"].to_numpy(), _values(ref["p"]))
    assert list(table.columns) == ["estimate", "std_error", "df", "t", "p"]


@pytest.mark.parametrize("model_id", MODELS)
def test_satterthwaite_t_values(model_id):
    ref = _reference(model_id)["REML"]["satterthwaite"]
    table = _fit(model_id, True).coef_table("satterthwaite")
    np.testing.assert_allclose(table["t"].to_numpy(), _values(ref["t"]), rtol=1e-5)


def test_kenward_roger_adjusted_covariance_is_larger():
    fit = _fit("ergostool", True)
    adjusted = fit.coef_table("kenward-roger")["std_error"]
    plain = fit.coef_table("satterthwaite")["std_error"]
    assert np.all(adjusted.to_numpy() >= plain.to_numpy() - 1e-12)


def test_residual_and_asymptotic_df():
    fit = _fit("sleepstudy_corr", True)
    residual = fit.coef_table("residual")
    assert np.all(residual["df"] == fit.nobs - 2)
    asymptotic = fit.coef_table("asymptotic")
    assert np.all(np.isinf(asymptotic["df"]))
    z = asymptotic["t"].to_numpy()
    np.testing.assert_allclose(asymptotic["p"], 2 * __import__("scipy").stats.norm.sf(np.abs(z)))


def test_unknown_ddf_is_a_clear_error():
    with pytest.raises(ValueError, match="satterthwaite"):
        _fit("dyestuff", True).coef_table("bogus")


@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger"])
def test_single_row_contrast_matches_coefficient_test(ddf):
    fit = _fit("sleepstudy_corr", True)
    result = fit.test([[0, 1]], ddf=ddf)
    row = fit.coef_table(ddf).loc["Days"]
    assert result["num_df"] == 1
    assert result["F"] == pytest.approx(row["t"] ** 2, rel=1e-8)
    assert result["den_df"] == pytest.approx(row["df"], rel=1e-8)
    assert result["p"] == pytest.approx(row["p"], rel=1e-6)


@pytest.mark.parametrize("ddf, key", [("satterthwaite", "anova_satterthwaite"),
                                      ("kenward-roger", "anova_kenward_roger")])
def test_multi_row_f_test_ergostool(ddf, key):
    """The Type F test: all three treatment contrasts at once (lmerTest/pbkrtest values)."""
    fit = _fit("ergostool", True)
    ref = _reference("ergostool")["REML"][key][0]
    result = fit.test(np.eye(4)[1:], ddf=ddf)
    assert result["num_df"] == ref["numdf"] == 3
    assert result["F"] == pytest.approx(ref["F"], rel=1e-4)
    assert result["den_df"] == pytest.approx(ref["dendf"], rel=1e-3)
    assert result["p"] == pytest.approx(ref["p"], rel=1e-3)


def test_kenward_roger_needs_reml():
    with pytest.raises(ValueError, match="REML"):
        _fit("sleepstudy_int", False).coef_table("kenward-roger")


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
@pytest.mark.parametrize("model_id", MODELS)
def test_profile_intervals_match_lme4(model_id, reml):
    """lme4 profiles a REML fit on the ML deviance (it refits by ML first), so its confint on a
    REML fit equals the ML entries' profile_ci: checked with lme4 1.1.31, e.g. sleepstudy
    (Days | Subject) REML: sd_(Intercept)|Subject 14.3814182 37.7159953, Days 7.3586533
    13.5759188; Dyestuff REML: sd_(Intercept)|Batch 12.19854 84.06305."""
    ref = _reference(model_id)["ML"]["profile_ci"]
    intervals = _fit(model_id, reml).confint("profile")
    for row in ref:
        width = row["upper"] - row["lower"]
        lower, upper = intervals.loc[row["param"]]
        assert abs(lower - row["lower"]) <= 1e-3 * width, row["param"]
        assert abs(upper - row["upper"]) <= 1e-3 * width, row["param"]
    assert list(intervals.index) == [row["param"] for row in ref]


def test_boundary_parameter_gets_lower_bound_zero():
    intervals = _fit("dyestuff2_singular", False).confint("profile")
    assert intervals.loc["sd_(Intercept)|Batch", "lower"] == 0.0


def test_wald_intervals():
    fit = _fit("sleepstudy_corr", False)
    intervals = fit.confint("wald")
    z = 1.959963984540054
    np.testing.assert_allclose(intervals.loc["Days"], fit.fixef["Days"] + np.array([-z, z])
                               * fit.stderr["Days"])
    assert intervals.loc["sigma"].isna().all()


def test_profile_traces_cross_zero_at_the_estimate():
    fit = _fit("dyestuff", False)
    traces = fit.profile()
    sigma = traces[traces.parameter == "sigma"]
    assert len(sigma) >= 5
    assert np.all(np.diff(sigma["zeta"].to_numpy()) > 0)  # zeta increases with the value
    at_estimate = sigma.iloc[np.argmin(np.abs(sigma["value"] - fit.sigma))]
    assert at_estimate["zeta"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("model_id", MODELS)
@pytest.mark.parametrize("ddf, key", [("satterthwaite", "anova_satterthwaite"),
                                      ("kenward-roger", "anova_kenward_roger")])
def test_type3_anova_matches_lmertest(model_id, ddf, key):
    reference = _reference(model_id)["REML"][key]
    table = _fit(model_id, True).anova(ddf)
    assert list(table.index) == [row["term"] for row in reference]
    for row in reference:
        ours = table.loc[row["term"]]
        assert ours["num_df"] == row["numdf"]
        assert ours["F"] == pytest.approx(row["F"], rel=1e-4)
        assert ours["den_df"] == pytest.approx(row["dendf"], rel=1e-3)
        assert _close_p(np.array([ours["p"]]), np.array([row["p"]]))
    assert list(table.columns) == ["F", "num_df", "den_df", "p"]
