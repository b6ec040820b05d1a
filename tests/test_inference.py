"""Satterthwaite and Kenward-Roger tests and profile intervals against lmerTest, pbkrtest, lme4,
on every reference model (the shared ones and the classic ones, see conftest)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
from conftest import dataset_for, fit_reference, load_reference, reference_ids

import mixedmodels as mm
from mixedmodels.core.gradient import deviance_gradient
from mixedmodels.core.numdiff import hessian, jacobian
from mixedmodels.inference.profile import Profiler
from mixedmodels.inference.satterthwaite import GRADIENT_STEP, varpar_derivatives

MODELS = reference_ids()
# the longest checks (over 1 s each on a 2-core machine) run with ``pytest -m slow``
#: profiles in the slow run: the costly ones, and some of those like the default run's
#: (orthodont, sleepstudy, pastes: unstructured, nested, crossed...)
SLOW_PROFILES = {"classic/machines_unstructured", "classic/pixel", "classic/assay",
                 "classic/carrots", "classic/ham", "classic/mathach", "classic/chickweight",
                 "classic/bodyweight", "classic/oats", "classic/alfalfa",
                 "classic/machines_nested", "penicillin_crossed", "pastes_nested",
                 "sleepstudy_uncorr", "orthodont"}
SLOW_DF = {"classic/insteval"}


def _marked(models, slow):
    return [pytest.param(m, marks=pytest.mark.slow) if m in slow else m for m in models]


def _values(entry):
    return np.array(list(entry.values()) if isinstance(entry, dict) else entry, dtype=float)


_FITS = {}


def _fit(model_id, reml):
    key = (model_id, reml)
    if key not in _FITS:
        _FITS[key] = fit_reference(load_reference(model_id), "REML" if reml else "ML")
    return _FITS[key]


def _reference_entry(model_id, method, key):
    """lme4's results under ``key``, or skip: the largest model (InstEval) has no
    Kenward-Roger, conditional modes or profile in its reference (pbkrtest forms n x n)."""
    entry = load_reference(model_id)[method].get(key)
    if not entry:
        pytest.skip(f"no {key} in the reference of {model_id}")
    return entry


def _close_p(ours, theirs):
    """p-values within 1e-3 relative or 1e-8 absolute."""
    return np.all((np.abs(ours - theirs) <= 1e-3 * np.abs(theirs)) | (np.abs(ours - theirs) < 1e-8))


@pytest.mark.parametrize("model_id", _marked(MODELS, SLOW_DF))
@pytest.mark.parametrize("ddf, key", [("satterthwaite", "satterthwaite"),
                                      ("kenward-roger", "kenward_roger")])
def test_coefficient_df_and_p(model_id, ddf, key):
    ref = _reference_entry(model_id, "REML", key)
    table = _fit(model_id, True).coef_table(ddf)
    np.testing.assert_allclose(table["df"].to_numpy(), _values(ref["df"]), rtol=1e-3)
    assert _close_p(table["p"].to_numpy(), _values(ref["p"]))
    assert list(table.columns) == ["estimate", "std_error", "df", "t", "p"]


@pytest.mark.parametrize("model_id", _marked(MODELS, SLOW_DF))
def test_satterthwaite_t_values(model_id):
    ref = load_reference(model_id)["REML"]["satterthwaite"]
    table = _fit(model_id, True).coef_table("satterthwaite")
    # t = estimate / se: as close as the standard errors (4e-5 on InstEval, where the REML
    # criterion is flat to 1e-13 relative around the optimum)
    np.testing.assert_allclose(table["t"].to_numpy(), _values(ref["t"]), rtol=1e-4)


@pytest.mark.parametrize("model_id", ["classic/beets", "classic/bodyweight", "sleepstudy_corr",
                                      "classic/machines_unstructured"])
def test_satterthwaite_df_do_not_depend_on_row_order(model_id):
    """The Hessian from the analytic gradient: the same rows in another order (whose criterion
    differs by rounding) give the same df to 1e-8; second differences of the criterion moved
    beets' by 4.9e-6."""
    record = load_reference(model_id)
    data = dataset_for(record)
    shuffled = data.sample(frac=1.0, random_state=3)
    df = _fit(model_id, True).coef_table()["df"].to_numpy()
    again = mm.lmer(record["formula"], shuffled).coef_table()["df"].to_numpy()
    np.testing.assert_allclose(again, df, rtol=1e-8)


@pytest.mark.parametrize("model_id", ["sleepstudy_corr", "pastes_nested", "classic/beets"])
@pytest.mark.parametrize("reml", [True, False])
def test_satterthwaite_hessian(model_id, reml):
    """H from differences of the analytic gradient does not depend on the step (to 1e-7 of
    each entry or 1e-8 of the largest), and
    equals lmerTest's way, second differences of the deviance, where those are accurate. On
    beets' ML fit (theta = 0.05) second differences move by 0.4% with the step (1.5644 at
    lmerTest's, 1.5596 at half of it, 1.6979 at a fifth) and the gradient's stay at 1.5581717."""
    fit = _fit(model_id, reml)
    derivatives = varpar_derivatives(fit)
    system = fit.model.system
    scale = np.max(np.abs(derivatives.hessian))

    def gradient(phi):
        return deviance_gradient(system, phi[:-1], phi[-1], reml)[1]

    halved = jacobian(gradient, derivatives.varpar, relative=GRADIENT_STEP / 2)
    np.testing.assert_allclose(derivatives.hessian, 0.5 * (halved + halved.T), rtol=1e-7,
                               atol=1e-8 * scale)
    if model_id != "classic/beets":
        expected = hessian(lambda phi: system.deviance(phi[:-1], phi[-1], reml),
                           derivatives.varpar)
        np.testing.assert_allclose(derivatives.hessian, expected, rtol=1e-5,
                                   atol=1e-8 * scale)


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
    ref = load_reference("ergostool")["REML"][key][0]
    result = fit.test(np.eye(4)[1:], ddf=ddf)
    assert result["num_df"] == ref["numdf"] == 3
    assert result["F"] == pytest.approx(ref["F"], rel=1e-4)
    assert result["den_df"] == pytest.approx(ref["dendf"], rel=1e-3)
    assert result["p"] == pytest.approx(ref["p"], rel=1e-3)


def test_kenward_roger_needs_reml():
    with pytest.raises(ValueError, match="REML"):
        _fit("sleepstudy_int", False).coef_table("kenward-roger")


def _profiled_deviance_check(fit, name, value):
    """(ours, best): the profiled ML deviance at psi_name = value from our inner fit, and the
    lowest value two other optimizers (L-BFGS-B, then Nelder-Mead, from our optimum and from
    the estimate) reach, both less the deviance at the estimate."""
    profiler = Profiler(fit)
    j = profiler.names.index(name)
    free = [i for i in range(len(profiler.psi_hat)) if i != j]
    lower, upper = profiler.space.bounds()
    ours, psi_ours = profiler._profiled_variance(j, value, profiler.psi_hat)

    def deviance(x):
        psi = profiler.psi_hat.copy()
        psi[free], psi[j] = np.clip(x, lower[free], upper[free]), value
        return profiler._variance_deviance(psi)

    best = ours
    bounds = list(zip(lower[free], np.where(np.isfinite(upper[free]), upper[free], None)))
    for start in (psi_ours[free], profiler.psi_hat[free]):
        with np.errstate(invalid="ignore"):  # differences of infinite deviances
            first = scipy.optimize.minimize(deviance, start, method="L-BFGS-B", bounds=bounds)
            second = scipy.optimize.minimize(deviance, first.x, method="Nelder-Mead",
                                             options={"xatol": 1e-10, "fatol": 1e-12})
        best = min(best, first.fun, second.fun)
    return ours - profiler.dev_hat, best - profiler.dev_hat


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
@pytest.mark.parametrize("model_id", _marked(MODELS, SLOW_PROFILES))
def test_profile_intervals_match_lme4(model_id, reml):
    """Within 1e-3 of the interval's width of lme4's, or, where lme4's endpoint is off (lme4
    interpolates a spline through zeta on a grid, and on the correlation of a singular fit
    reports -1), exact: the profiled deviance at our endpoint is z^2 above the minimum, and no
    other optimizer finds a lower profiled deviance there.

    lme4 profiles a REML fit on the ML deviance (it refits by ML first), so its confint on a
    REML fit equals the ML entries' profile_ci: checked with lme4 1.1.31, e.g. sleepstudy
    (Days | Subject) REML: sd_(Intercept)|Subject 14.3814182 37.7159953, Days 7.3586533
    13.5759188; Dyestuff REML: sd_(Intercept)|Batch 12.19854 84.06305."""
    ref = _reference_entry(model_id, "ML", "profile_ci")
    fit = _fit(model_id, reml)
    intervals = fit.confint("profile")
    assert list(intervals.index) == [row["param"] for row in ref]
    ml_fit = _fit(model_id, False)
    z2 = 1.959963984540054 ** 2
    for row in ref:
        width = row["upper"] - row["lower"]
        for side in ("lower", "upper"):
            ours = intervals.loc[row["param"], side]
            if abs(ours - row[side]) <= 1e-3 * width:
                continue
            assert row["param"].startswith(("sd_", "cor_")), (row, ours)
            deviance, best = _profiled_deviance_check(ml_fit, row["param"], ours)
            assert deviance == pytest.approx(z2, rel=1e-4), (row, side, ours)
            assert best >= deviance - 1e-6, (row, side, ours)
            theirs, _ = _profiled_deviance_check(ml_fit, row["param"], row[side])
            assert abs(theirs - z2) > abs(deviance - z2), (row, side, theirs)


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


@pytest.mark.parametrize("model_id", _marked(MODELS, SLOW_DF))
@pytest.mark.parametrize("ddf, key", [("satterthwaite", "anova_satterthwaite"),
                                      ("kenward-roger", "anova_kenward_roger")])
def test_type3_anova_matches_lmertest(model_id, ddf, key):
    reference = _reference_entry(model_id, "REML", key)
    table = _fit(model_id, True).anova(ddf)
    assert list(table.index) == [row["term"] for row in reference]
    for row in reference:
        ours = table.loc[row["term"]]
        assert ours["num_df"] == row["numdf"]
        assert ours["F"] == pytest.approx(row["F"], rel=1e-4)
        assert ours["den_df"] == pytest.approx(row["dendf"], rel=1e-3)
        assert _close_p(np.array([ours["p"]]), np.array([row["p"]]))
    assert list(table.columns) == ["sum_sq", "mean_sq", "num_df", "den_df", "F", "p"]


@pytest.mark.slow
def test_profile_on_an_executor():
    from concurrent.futures import ProcessPoolExecutor

    fit = _fit("sleepstudy_corr", True)
    serial = fit.confint("profile")
    with ProcessPoolExecutor(2) as pool:
        parallel = fit.confint("profile", executor=pool)
        traces = fit.profile(points=6, executor=pool)
    np.testing.assert_allclose(parallel.to_numpy(), serial.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(traces["zeta"], fit.profile(points=6)["zeta"], rtol=1e-9,
                               atol=1e-12)


@pytest.mark.slow  # 2.6 s: the default run's budget
def test_confint_parameters():
    fit = _fit("sleepstudy_corr", True)
    every = fit.confint("profile")
    some = fit.confint("profile", parameters=["Days", "sigma", "Days"])
    assert list(some.index) == ["sigma", "Days"]  # the model's order, once each, as lme4
    pd.testing.assert_frame_equal(some, every.loc[["sigma", "Days"]])
    wald = fit.confint("wald", parameters="Days")
    pd.testing.assert_frame_equal(wald, fit.confint("wald").loc[["Days"]])
    with pytest.raises(ValueError, match="'sd_Days'"):
        fit.confint("profile", parameters=["sd_Days"])


def test_confint_methods_in_lme4s_spelling():
    fit = _fit("sleepstudy_corr", True)
    pd.testing.assert_frame_equal(fit.confint("Wald"), fit.confint("wald"))
    boot = fit.confint("boot", n=4, seed=1, progress=False, level=0.5)
    pd.testing.assert_frame_equal(boot, fit.confint("Bootstrap", n=4, seed=1, progress=False,
                                                    level=0.5))


def test_confint_rows_keep_the_models_order():
    """lme4's confint(parm=) gives its rows in the model's order, each once."""
    fit = _fit("sleepstudy_corr", True)
    wald = fit.confint("wald", parameters=["Days", "sigma", "(Intercept)", "Days"])
    assert list(wald.index) == ["sigma", "(Intercept)", "Days"]
    pd.testing.assert_frame_equal(wald, fit.confint("wald").loc[list(wald.index)])


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_df_do_not_depend_on_the_response_units(scale):
    """Satterthwaite's and Kenward-Roger's df and F of a response in other units are the
    same: sigma of 1e-5 took an absolute difference step past 0 (an error, or NaN df), and
    Kenward-Roger's information matrix, of variances and correlations, was inverted by an
    absolute test (136 df became 9,006 at 1e6 on an ar1 gls)."""
    trial = mm.datasets.load("trial")
    scaled = trial.assign(y=trial.y * scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fit_of in (lambda d: mm.lmer("y ~ arm * visit + (1 | patient)", d),
                       lambda d: mm.gls("y ~ arm * visit", d,
                                        correlation="ar1(visit | patient)")):
            fit, expected = fit_of(scaled), fit_of(trial)
            for ddf in ("satterthwaite", "kenward-roger"):
                ours, theirs = fit.anova(ddf=ddf), expected.anova(ddf=ddf)
                np.testing.assert_allclose(np.asarray(ours[["F", "num_df", "den_df"]], float),
                                           np.asarray(theirs[["F", "num_df", "den_df"]], float),
                                           rtol=1e-6)
            np.testing.assert_allclose(fit.coef_table()["df"], expected.coef_table()["df"],
                                       rtol=1e-6)


def test_profile_where_the_factor_fails_in_floating_point(monkeypatch):
    """The profile's inner fits treat a deviance the Cholesky factor cannot evaluate (theta
    beyond what floating point holds, as with a response fitted almost exactly) as infinite,
    instead of raising numpy's LinAlgError: here every theta above 1.6 fails (the fit's is
    1.2), which sigma's inner fits probe, and its interval is the same."""
    from mixedmodels.core.pls import PLSSystem

    data = mm.datasets.load("sleepstudy")
    expected = mm.lmer("Reaction ~ Days + (1 | Subject)", data).confint(parameters=["sigma"])
    evaluate = PLSSystem.deviance

    def failing(self, theta, sigma, reml):
        if theta[0] > 1.6:
            raise np.linalg.LinAlgError("not positive definite")
        return evaluate(self, theta, sigma, reml)

    monkeypatch.setattr(PLSSystem, "deviance", failing)
    fit = mm.lmer("Reaction ~ Days + (1 | Subject)", data)
    np.testing.assert_allclose(fit.confint(parameters=["sigma"]).to_numpy(),
                               expected.to_numpy(), rtol=1e-6)


def test_profile_where_the_correlations_are_no_covariance(monkeypatch):
    """A variance parameter's inner fit that tries correlations no covariance matrix has
    (the psi space's map to theta raises) counts the deviance there as infinite: the profile
    of Machines' unstructured (Machine | Worker) crossed such points (a regression once)."""
    from mixedmodels.inference import profile

    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
    expected = fit.confint(parameters=["cor_Days.(Intercept)|Subject"])
    original = profile._VarianceSpace.to_theta

    def failing(self, psi):
        if psi[1] > 0.7:  # the correlation's entry of psi (its upper limit is 0.685)
            raise np.linalg.LinAlgError("the matrix is indefinite: no covariance")
        return original(self, psi)

    monkeypatch.setattr(profile._VarianceSpace, "to_theta", failing)
    again = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
    intervals = again.confint(parameters=["cor_Days.(Intercept)|Subject"])
    np.testing.assert_allclose(intervals.to_numpy(), expected.to_numpy(), rtol=1e-6)
