"""Every downstream feature on fits with a residual structure that has parameters
(correlation=, variance=) and on ``mm.gls``: it works (checked against nlme's values in
tests/reference/nlme_structures.json or a computation by hand) or refuses with a message that
names the feature, the reason and what to use instead."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.stats

import mixedmodels as mm
import mixedmodels.inference.kenward_roger as kr
from mixedmodels.cli import main
from mixedmodels.core.numdiff import hessian, jacobian
from mixedmodels.inference.kenward_roger import KenwardRoger, _ClusterSums, clusters

REFERENCE = Path(__file__).parent / "reference"
NLME = json.loads((REFERENCE / "nlme_structures.json").read_text())
MODELS = {entry["name"]: entry for entry in NLME["models"]}


def data(name: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "data" / f"{name}.csv")


_FITS: dict = {}


def nlme_fit(name: str):
    """Our fit of the nlme reference model ``name`` (e.g. "trial_gls_ar1_reml"), once."""
    if name not in _FITS:
        ours = MODELS[name]["ours"]
        fitter = mm.gls if ours["function"] == "gls" else mm.lmer
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[name] = fitter(ours["formula"], pd.read_csv(REFERENCE / MODELS[name]["data"]),
                                 reml=ours["reml"], correlation=ours["correlation"],
                                 variance=ours["variance"])
    return _FITS[name]


def test_our_fits_are_nlme_fits():
    """The premise of the rest: the fits reproduce nlme's log-likelihoods."""
    for name in MODELS:
        assert nlme_fit(name).loglik == pytest.approx(MODELS[name]["logLik"], abs=1e-4), name


# -- Kenward-Roger ----------------------------------------------------------------------------
def _brute_force_kr(X, V, derivatives):
    """Kenward & Roger (1997), first order (no R_ij), with dense n x n matrices, as pbkrtest
    writes it: V and its derivatives G_i in any parameterization."""
    Vinv = np.linalg.inv(V)
    phi = np.linalg.inv(X.T @ Vinv @ X)
    P = [-X.T @ Vinv @ G @ Vinv @ X for G in derivatives]
    Q = [[X.T @ Vinv @ Gi @ Vinv @ Gj @ Vinv @ X for Gj in derivatives] for Gi in derivatives]
    m = len(derivatives)
    info = np.array([[0.5 * np.trace(Vinv @ derivatives[i] @ Vinv @ derivatives[j])
                      - np.trace(phi @ Q[i][j]) + 0.5 * np.trace(phi @ P[i] @ phi @ P[j])
                      for j in range(m)] for i in range(m)])
    W = np.linalg.inv(info)
    U = sum(W[i, j] * (Q[i][j] - P[i] @ phi @ P[j]) for i in range(m) for j in range(m))
    return KenwardRoger(phi, phi + 2 * phi @ U @ phi, P, W)


def _same_kr(ours, theirs, beta, rtol=1e-5):
    scale = np.abs(theirs.adjusted_vcov).max()
    np.testing.assert_allclose(ours.adjusted_vcov, theirs.adjusted_vcov, rtol=rtol,
                               atol=1e-9 * scale)
    eye = np.eye(len(beta))
    for j in range(len(beta)):
        assert ours.test(eye[[j]], beta)["den_df"] == pytest.approx(
            theirs.test(eye[[j]], beta)["den_df"], rel=rtol)


@pytest.mark.parametrize("name", ["sleepstudy_corr", "pastes_nested", "penicillin_crossed",
                                  "ergostool", "orthodont"])
def test_kenward_roger_by_clusters_equals_the_sparse_form_on_lme4_models(name):
    """The per-cluster path on models without residual parameters: the same adjusted
    covariance and df as the sparse implementation, and pbkrtest's df."""
    record = json.loads((REFERENCE / f"{name}.json").read_text())
    fit = mm.lmer(record["formula"], mm.datasets.load(Path(record["data"]).stem.lower()))
    sparse = KenwardRoger.from_fit(fit, by_clusters=False)
    dense = KenwardRoger.from_fit(fit, by_clusters=True)
    _same_kr(dense, sparse, fit.beta, rtol=1e-9)
    pbkrtest = record["REML"]["kenward_roger"]["df"]
    pbkrtest = list(pbkrtest.values()) if isinstance(pbkrtest, dict) else pbkrtest
    eye = np.eye(len(fit.beta))
    ours = [dense.test(eye[[j]], fit.beta)["den_df"] for j in range(len(fit.beta))]
    np.testing.assert_allclose(ours, pbkrtest, rtol=1e-3)


def test_clusters_join_nested_and_crossed_factors():
    pastes = mm.lmer("strength ~ 1 + (1 | batch/cask)", mm.datasets.load("pastes"))
    assert len(np.unique(clusters(pastes))) == 10  # the batches
    penicillin = mm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)",
                         mm.datasets.load("penicillin"))
    assert len(np.unique(clusters(penicillin))) == 1  # crossed: one cluster
    trial = nlme_fit("trial_gls_ar1_reml")
    assert len(np.unique(clusters(trial))) == data("trial")["patient"].nunique()
    plain = mm.gls("distance ~ age", data("orthodont"))
    assert len(np.unique(clusters(plain))) == plain.nobs


def test_kenward_roger_with_a_variance_function_by_hand():
    """lme + varIdent(Sex): V = tau^2 Z Z' + sigma^2 diag(ratio^(2 male)), written by hand in
    the (tau^2, sigma^2, ratio) parameterization with its analytic derivatives; ours works
    on theta's scale with numerical derivatives of Psi."""
    fit = nlme_fit("orthodont_lme_ident_sex_reml")
    frame = data("orthodont")
    tau2 = fit.varcorr["vcov"].iloc[0]
    sigma2 = fit.sigma ** 2
    ratio = float(fit.model.structure.parameters.sdcor(fit.theta, fit.sigma)[-1])
    male = (frame["Sex"] == "Male").to_numpy()
    same = (frame["Subject"].to_numpy()[:, None] == frame["Subject"].to_numpy()[None, :])
    s2 = np.where(male, ratio ** 2, 1.0)
    V = tau2 * same + sigma2 * np.diag(s2)
    derivatives = [same.astype(float), np.diag(s2), sigma2 * np.diag(np.where(male, 2 * ratio, 0))]
    _same_kr(KenwardRoger.from_fit(fit), _brute_force_kr(fit.X, V, derivatives), fit.beta)


def test_kenward_roger_with_ar1_by_hand():
    """gls + AR(1) with gaps on the trial: V = sigma^2 phi^|t_i - t_j| within patient,
    derivatives in (sigma^2, phi) by hand."""
    fit = nlme_fit("trial_gls_ar1_reml")
    frame = data("trial")
    phi = MODELS["trial_gls_ar1_reml"]["cor_params"]
    phi = float(list(phi.values())[0] if isinstance(phi, dict) else phi[0])
    phi_ours = float(fit.model.structure.parameters.sdcor(fit.theta, fit.sigma)[-1])
    assert phi_ours == pytest.approx(phi, abs=1e-4)
    same = frame["patient"].to_numpy()[:, None] == frame["patient"].to_numpy()[None, :]
    lag = np.abs(frame["visit"].to_numpy()[:, None] - frame["visit"].to_numpy()[None, :])
    sigma2 = fit.sigma ** 2
    C = np.where(same, phi_ours ** lag, 0.0)
    dC = np.where(same & (lag > 0), lag * phi_ours ** np.maximum(lag - 1, 0), 0.0)
    np.testing.assert_allclose(sigma2 * C, fit.R.toarray(), rtol=1e-10, atol=1e-12)
    _same_kr(KenwardRoger.from_fit(fit), _brute_force_kr(fit.X, sigma2 * C, [C, sigma2 * dC]),
             fit.beta)
    sums = _ClusterSums.compute(fit)  # X'V^-1X summed over the patients: fit.vcov's inverse
    np.testing.assert_allclose(np.linalg.inv(sums.xvx), fit.vcov.to_numpy(), rtol=1e-8)
    assert len(sums.P) == 2 and sums.traces.shape == (2, 2)


def test_kenward_roger_with_random_intercept_and_ar1_by_hand():
    fit = nlme_fit("trial_lme_ar1_reml")
    frame = data("trial")
    same = frame["patient"].to_numpy()[:, None] == frame["patient"].to_numpy()[None, :]
    lag = np.abs(frame["visit"].to_numpy()[:, None] - frame["visit"].to_numpy()[None, :])
    phi = float(fit.model.structure.parameters.sdcor(fit.theta, fit.sigma)[-1])
    tau2, sigma2 = fit.varcorr["vcov"].iloc[0], fit.sigma ** 2
    C = np.where(same, phi ** lag, 0.0)
    dC = np.where(same & (lag > 0), lag * phi ** np.maximum(lag - 1, 0), 0.0)
    V = tau2 * same + sigma2 * C
    np.testing.assert_allclose(V, fit.V.toarray(), rtol=1e-10, atol=1e-12)
    _same_kr(KenwardRoger.from_fit(fit),
             _brute_force_kr(fit.X, V, [same.astype(float), C, sigma2 * dC]), fit.beta)


def test_kenward_roger_gls_compound_symmetry_equals_random_intercept():
    """The same model (rho > 0): the same Kenward-Roger df and adjusted standard errors,
    e.g. 25 df for the between-subject effect of Sex."""
    cs = nlme_fit("orthodont_gls_cs_reml")
    ri = nlme_fit("orthodont_lme_ri_reml")
    ours, theirs = cs.coef_table("kenward-roger"), ri.coef_table("kenward-roger")
    np.testing.assert_allclose(ours["df"], theirs["df"], rtol=1e-4)
    np.testing.assert_allclose(ours["std_error"], theirs["std_error"], rtol=1e-5)
    assert ours.loc["SexMale", "df"] == pytest.approx(25.0, rel=1e-4)
    np.testing.assert_allclose(cs.anova("kr")["den_df"], ri.anova("kr")["den_df"], rtol=1e-4)


def test_kenward_roger_no_longer_treats_psi_as_known():
    """With delta estimated the adjustment is larger than with Psi held at its estimate."""
    fit = nlme_fit("orthodont_lme_ident_sex_reml")
    estimated = KenwardRoger.from_fit(fit)
    assert len(estimated.P) == 3  # tau^2, sigma^2 and the sd ratio
    table = fit.coef_table("kr")
    assert table.loc["age", "std_error"] > fit.stderr["age"]


def test_kenward_roger_of_a_linear_model_is_ols():
    fit = mm.gls("distance ~ age + Sex", data("orthodont"))
    table = fit.coef_table("kr")
    np.testing.assert_allclose(table["df"], fit.nobs - 3, rtol=1e-10)
    np.testing.assert_allclose(table["std_error"], fit.stderr, rtol=1e-10)


def test_kenward_roger_refuses_one_large_cluster():
    frame = data("spatial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.gls("z ~ x1", frame, correlation="exp(x + y)")  # one group: all rows
    limit = kr.DENSE_CLUSTER_LIMIT
    kr.DENSE_CLUSTER_LIMIT = 100
    try:
        with pytest.raises(ValueError, match="Kenward-Roger.*200 rows.*satterthwaite"):
            fit.coef_table("kr")
    finally:
        kr.DENSE_CLUSTER_LIMIT = limit


# -- Satterthwaite ------------------------------------------------------------------------------
def test_satterthwaite_gls_compound_symmetry_equals_random_intercept():
    cs = nlme_fit("orthodont_gls_cs_reml")
    ri = nlme_fit("orthodont_lme_ri_reml")
    np.testing.assert_allclose(cs.coef_table()["df"], ri.coef_table()["df"], rtol=1e-4)
    np.testing.assert_allclose(cs.anova()["den_df"], ri.anova()["den_df"], rtol=1e-4)


def test_satterthwaite_with_ar1_by_hand():
    """lmerTest's recipe on a dense REML criterion written in (tau^2, sigma^2, phi): ours
    differentiates on theta's scale (phi through 2 atanh) and gets the same df."""
    fit = nlme_fit("trial_lme_ar1_reml")
    frame = data("trial")
    same = frame["patient"].to_numpy()[:, None] == frame["patient"].to_numpy()[None, :]
    lag = np.abs(frame["visit"].to_numpy()[:, None] - frame["visit"].to_numpy()[None, :])
    X, y = fit.X, fit.y

    def covariance(gamma):
        tau2, sigma2, phi = gamma
        return tau2 * same + sigma2 * np.where(same, phi ** lag, 0.0)

    def reml(gamma):
        Vinv = np.linalg.inv(covariance(gamma))
        xvx = X.T @ Vinv @ X
        r = y - X @ np.linalg.solve(xvx, X.T @ Vinv @ y)
        return (np.linalg.slogdet(covariance(gamma))[1] + np.linalg.slogdet(xvx)[1]
                + r @ Vinv @ r)

    def vcov(gamma):
        return np.linalg.inv(X.T @ np.linalg.inv(covariance(gamma)) @ X)

    phi = fit.model.structure.parameters.sdcor(fit.theta, fit.sigma)[-1]
    gamma = np.array([fit.varcorr["vcov"].iloc[0], fit.sigma ** 2, phi])
    A = 2 * np.linalg.inv(hessian(reml, gamma, relative=0.01))
    J = jacobian(vcov, gamma)
    eye = np.eye(X.shape[1])
    expected = [2 * (l @ vcov(gamma) @ l) ** 2 / (g @ A @ g)
                for l in eye for g in [np.einsum("i,kij,j->k", l, J, l)]]
    np.testing.assert_allclose(fit.coef_table("satterthwaite")["df"], expected, rtol=1e-4)


@pytest.mark.parametrize("name", ["trial_gls_ar1_reml", "trial_lme_ar1_reml",
                                  "orthodont_gls_symm_ident_reml", "spatial_gls_exp_reml"])
def test_satterthwaite_df_are_sensible(name):
    """Between the number of clusters and the number of observations, and close to
    Kenward-Roger's (both are first-order approximations of the same thing)."""
    fit = nlme_fit(name)
    satterthwaite = fit.coef_table("satterthwaite")["df"].to_numpy()
    kenward_roger = fit.coef_table("kr")["df"].to_numpy()
    assert np.all(satterthwaite > 1) and np.all(satterthwaite < fit.nobs)
    np.testing.assert_allclose(satterthwaite, kenward_roger, rtol=0.25)


# -- summary and report -------------------------------------------------------------------------
def _shown(value: float) -> str:
    return f"{value:.4g}"


def test_gls_summary_title_structure_and_no_groups():
    fit = nlme_fit("trial_gls_ar1_reml")
    text = str(fit.summary())
    lines = text.splitlines()
    assert lines[0] == "Generalized least squares fit by REML"
    assert "Linear mixed model" not in text and "Random effects:" not in text
    assert "groups:" not in text
    phi = MODELS["trial_gls_ar1_reml"]["cor_params"]["Phi1"]
    assert f"Correlation structure within patient: AR(1), Phi = {_shown(phi)}" in lines
    sigma = MODELS["trial_gls_ar1_reml"]["sigma"]
    assert "Residual standard error: 2.385" in lines and f"{sigma:.4g}" == "2.385"
    assert "Number of obs: 298" in lines
    ml = str(nlme_fit("trial_gls_ar1_ml").summary())
    assert ml.splitlines()[0] == "Generalized least squares fit by maximum likelihood"
    assert repr(fit).startswith("<LmmFit gls 'y ~ arm * visit' REML correlation='ar1(")


def test_summary_prints_each_structure_as_nlme_estimates_it():
    csh = nlme_fit("orthodont_gls_csh_reml")
    entry = MODELS["orthodont_gls_csh_reml"]
    rho = list(entry["cor_params"].values())[0]
    ratios = entry["var_sd_ratio_by_stratum"]
    text = str(csh.summary())
    assert f"Correlation structure within Subject: Compound symmetry, Rho = {_shown(rho)}" in text
    shown = ", ".join(f"{age}: {_shown(r)}" for age, r in ratios.items())
    assert f"Variance function: Different standard deviations per age (ratios {shown})" in text
    symm = nlme_fit("orthodont_gls_symm_ident_reml")
    line = next(line for line in str(symm.summary()).splitlines()
                if line.startswith("Correlation structure"))
    assert line.startswith("Correlation structure within Subject: General correlation over 4 "
                           "values of visit: ")
    for pair, value in MODELS["orthodont_gls_symm_ident_reml"]["cor_params"].items():
        i, j = pair[4:-1].split(",")
        assert f"cor_{i}.{j} = {_shown(value)}" in line
    lme = str(nlme_fit("orthodont_lme_ident_sex_reml").summary())
    assert lme.splitlines()[0] == "Linear mixed model fit by REML"
    assert "Number of obs: 108, groups: Subject, 27" in lme
    male = MODELS["orthodont_lme_ident_sex_reml"]["var_params"]["Male"]
    assert (f"Variance function: Different standard deviations per Sex (ratios Female: 1, "
            f"Male: {_shown(male)})") in lme
    power = MODELS["bodyweight_lme_power_reml"]["var_params"]["power"]
    prefix = "Variance function: Power of Time: sd proportional to |Time|^"
    line = next(line for line in str(nlme_fit("bodyweight_lme_power_reml").summary())
                .splitlines() if line.startswith(prefix))
    assert float(line[len(prefix):]) == pytest.approx(power, abs=2e-5)  # flat: nlme's to 1e-5
    car1 = nlme_fit("bodyweight_lme_car1_reml")
    phi = list(MODELS["bodyweight_lme_car1_reml"]["cor_params"].values())[0]
    assert f"Continuous AR(1), Phi = {_shown(phi)}" in str(car1.summary())
    exp = nlme_fit("spatial_gls_exp_reml")
    range_ = list(MODELS["spatial_gls_exp_reml"]["cor_params"].values())[0]
    assert f"Exponential spatial correlation, range = {_shown(range_)}" in str(exp.summary())


def test_summary_html_and_report_show_the_structure(tmp_path):
    pytest.importorskip("matplotlib")
    for name in ("trial_gls_ar1_reml", "orthodont_lme_ident_sex_reml"):
        fit = nlme_fit(name)
        lines = fit.model.structure.parameters.residual.describe(fit.theta[-1:])
        page = fit.summary()._repr_html_()
        path = mm.write_report(fit, tmp_path / f"{name}.html", ddf="kenward-roger")
        report = path.read_text(encoding="utf-8")
        for line in lines:
            escaped = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            assert escaped in page and f"<li>{escaped}</li>" in report
        assert "Kenward-Roger" in report
    report = (tmp_path / "trial_gls_ar1_reml.html").read_text(encoding="utf-8")
    assert "<title>Generalized least squares: y ~ arm * visit</title>" in report
    # a gls fit with one covariate: no panels of a grouping factor (there is none)
    simple = mm.gls("distance ~ age", data("orthodont"), correlation="ar1(visit | Subject)")
    assert "Correlation structure within Subject" in mm.output.report.report_html(simple)


# -- predict --------------------------------------------------------------------------------------
def _fixed_variance(fit, X0):
    return np.einsum("ij,jk,ik->i", X0, fit.vcov.to_numpy(), X0)


def test_prediction_interval_with_a_variance_function_by_hand():
    fit = mm.gls("distance ~ age + Sex", data("orthodont"), variance="ident(Sex)")
    ratio = float(fit.model.structure.parameters.sdcor(fit.theta, fit.sigma)[-1])
    new = pd.DataFrame({"age": [9.0, 11.0], "Sex": ["Female", "Male"]})
    table = fit.predict(new, interval="prediction")
    X0 = np.array([[1, 9, 0], [1, 11, 1.0]])
    se = np.sqrt(_fixed_variance(fit, X0) + fit.sigma ** 2 * np.array([1.0, ratio ** 2]))
    np.testing.assert_allclose(table["se"], se, rtol=1e-12)
    np.testing.assert_allclose(table["fit"], X0 @ fit.beta, rtol=1e-12)
    z = scipy.stats.norm.ppf(0.975)
    np.testing.assert_allclose(table["upper"], X0 @ fit.beta + z * se, rtol=1e-12)


def test_prediction_interval_with_a_power_variance_and_random_effects_by_hand():
    fit = nlme_fit("bodyweight_lme_power_reml")
    frame = data("bodyweight")
    power = MODELS["bodyweight_lme_power_reml"]["var_params"]["power"]
    new = frame.iloc[[0, 5]].assign(Rat="new rat")
    table = fit.predict(new, interval="prediction", new_levels="population")
    X0 = fit.X[[0, 5]]
    z0 = np.column_stack([np.ones(2), new["Time"].to_numpy()])
    G = fit.term_covariance(0)
    random = np.einsum("ij,jk,ik->i", z0, G, z0)
    s2 = np.abs(new["Time"].to_numpy()) ** (2 * power)
    se = np.sqrt(_fixed_variance(fit, X0) + random + fit.sigma ** 2 * s2)
    np.testing.assert_allclose(table["se"], se, rtol=1e-4)  # power: nlme's to 1e-5


def test_prediction_interval_with_a_correlation_only_has_unit_variance():
    fit = nlme_fit("trial_gls_ar1_reml")
    new = pd.DataFrame({"arm": ["control", "treated"], "visit": [7, 7]})
    table = fit.predict(new, interval="prediction")
    X0 = np.array([[1, 0, 7, 0], [1, 1, 7, 7.0]])
    se = np.sqrt(_fixed_variance(fit, X0) + fit.sigma ** 2)
    np.testing.assert_allclose(table["se"], se, rtol=1e-12)
    fitted = fit.predict(interval="prediction")  # the fitted rows: the same rule
    np.testing.assert_allclose(fitted["se"].iloc[:2],
                               np.sqrt(_fixed_variance(fit, fit.X[:2]) + fit.sigma ** 2))


def test_prediction_interval_uses_the_rows_prior_weights():
    frame = data("orthodont").assign(w=lambda d: np.where(d["Sex"] == "Male", 2.0, 1.0))
    fit = mm.gls("distance ~ age", frame, weights="w", variance="power(age)")
    power = float(fit.model.structure.parameters.sdcor(fit.theta, fit.sigma)[-1])
    new = pd.DataFrame({"age": [10.0, 10.0], "w": [1.0, 4.0]})
    X0 = np.array([[1, 10.0], [1, 10.0]])
    se = np.sqrt(_fixed_variance(fit, X0) + fit.sigma ** 2 * 10.0 ** (2 * power)
                 / np.array([1.0, 4.0]))
    np.testing.assert_allclose(fit.predict(new, interval="prediction")["se"], se, rtol=1e-12)
    without = fit.predict(new[["age"]], interval="prediction")["se"]  # no weights: weight 1
    np.testing.assert_allclose(without, se[[0, 0]], rtol=1e-12)


def test_prediction_interval_refuses_unknown_strata_and_missing_columns():
    fit = mm.gls("distance ~ age", data("orthodont"), variance="ident(Sex)")
    with pytest.raises(mm.DataError, match="level 'Other'.*ident\\(Sex\\) has no sd ratio"):
        fit.predict(pd.DataFrame({"age": [9.0], "Sex": ["Other"]}), interval="prediction")
    with pytest.raises(mm.DataError, match="no column 'Sex'.*variance function"):
        fit.predict(pd.DataFrame({"age": [9.0]}), interval="prediction")
    plain = fit.predict(pd.DataFrame({"age": [9.0]}))  # no interval: the column is not needed
    assert plain.iloc[0] == pytest.approx(fit.beta[0] + 9 * fit.beta[1])


# -- simulate, bootstrap, profile ---------------------------------------------------------------
def test_simulate_colors_the_noise_with_each_patients_psi():
    """y* = X beta + sigma L_g e*_g per patient, L_g the Cholesky factor of nlme's R_g /
    sigma^2, e* the stream's standard normals."""
    fit = nlme_fit("trial_gls_ar1_reml")
    draws = fit.simulate(2, seed=11)
    normals = np.random.default_rng(11).standard_normal((2, fit.nobs))
    block = MODELS["trial_gls_ar1_reml"]["r_blocks"][0]
    rows = np.array(block["rows"]) - 1
    L = np.linalg.cholesky(np.array(block["R"]) / fit.sigma ** 2)
    expected = fit.X[rows] @ fit.beta + fit.sigma * L @ normals[0, rows]
    np.testing.assert_allclose(draws[rows, 0], expected, rtol=1e-4)  # nlme's R to 1e-5


def test_bootstrap_replicate_is_a_refit_of_a_simulated_response():
    fit = nlme_fit("orthodont_gls_cs_reml")
    result = fit.bootstrap(3, seed=5, progress=False)
    assert result.parameters == ["Rho|Subject", "sigma", "(Intercept)", "age", "SexMale"]
    seed = np.random.SeedSequence(5).spawn(3)[1]
    y = fit.simulate(1, seed=np.random.default_rng(seed))[:, 0]
    refit = mm.gls("distance ~ age + Sex", data("orthodont").assign(distance=y),
                   correlation="cs(1 | Subject)")
    expected = [refit.model.structure.parameters.sdcor(refit.theta, refit.sigma)[0],
                refit.sigma, *refit.beta]
    np.testing.assert_allclose(result.replicates.iloc[1, 1:].to_numpy(dtype=float), expected,
                               rtol=1e-5)


@pytest.mark.parametrize("name, parameter", [("orthodont_gls_cs_reml", "Rho|Subject"),
                                             ("trial_lme_ar1_reml", "Phi|patient"),
                                             ("orthodont_lme_ident_sex_reml", "ratio_Male|Sex")])
def test_profile_interval_endpoints_are_z_squared_above_the_ml_deviance(name, parameter):
    """At each endpoint, the ML deviance minimized over the other parameters (by another
    optimizer) is 1.96^2 above the minimum."""
    fit = nlme_fit(name)
    interval = fit.confint("profile", parameters=[parameter]).loc[parameter]
    ml = fit.model.with_reml(False)
    parameters = fit.model.structure.parameters
    j = parameters.names().index(parameter)
    best = ml.fit().objective

    def profiled(value):
        def deviance(free):
            sdcor = parameters.sdcor(ml_fit.theta, ml_fit.sigma).copy()
            sdcor[np.arange(len(sdcor)) != j] = free
            sdcor[j] = value
            return ml.objective(parameters.from_sdcor(sdcor, 1.0))
        start = np.delete(parameters.sdcor(ml_fit.theta, ml_fit.sigma), j)
        if not len(start):
            return deviance(start)
        return scipy.optimize.minimize(deviance, start, method="Nelder-Mead",
                                       options={"xatol": 1e-9, "fatol": 1e-11}).fun

    ml_fit = ml.fit()
    z2 = scipy.stats.norm.ppf(0.975) ** 2
    for value in interval:
        assert profiled(value) - best == pytest.approx(z2, rel=2e-3)


def test_parameter_names_and_values_include_the_residual_structure():
    fit = nlme_fit("orthodont_gls_csh_reml")
    parameters = fit.model.structure.parameters
    assert parameters.names() == ["Rho|Subject", "ratio_10|age", "ratio_12|age", "ratio_14|age"]
    values = parameters.sdcor(fit.theta, fit.sigma)
    entry = MODELS["orthodont_gls_csh_reml"]
    expected = [list(entry["cor_params"].values())[0], *entry["var_params"].values()]
    np.testing.assert_allclose(values, expected, rtol=1e-4)
    np.testing.assert_allclose(parameters.from_sdcor(values, fit.sigma), fit.theta, rtol=1e-10)
    lower, upper = parameters.sdcor_bounds()
    np.testing.assert_allclose(lower, [-1 / 3, 0, 0, 0])
    assert fit.confint("wald").loc["Rho|Subject"].isna().all()


# -- ranova and likelihood-ratio tests ----------------------------------------------------------
def test_ranova_keeps_the_residual_structure_in_the_reduced_model():
    table = nlme_fit("trial_lme_ar1_reml").ranova()
    assert table.loc["<none>", "logLik"] == pytest.approx(
        MODELS["trial_lme_ar1_reml"]["logLik"], abs=1e-4)
    assert table.loc["(1 | patient)", "logLik"] == pytest.approx(
        MODELS["trial_gls_ar1_reml"]["logLik"], abs=1e-4)
    assert table.loc["(1 | patient)", "npar"] == 6


def test_ranova_refuses_gls():
    with pytest.raises(ValueError, match="ranova tests the random-effects terms.*mm.gls.*"
                                         "mm.anova\\(fit1, fit2, refit=False\\)"):
        nlme_fit("trial_gls_ar1_reml").ranova()


def test_anova_between_residual_structures_on_the_reml_likelihood():
    ar1 = nlme_fit("orthodont_gls_arh1_reml")  # ARH(1): 1 + 3 parameters
    csh = nlme_fit("orthodont_gls_csh_reml")  # CSH: 1 + 3
    un = nlme_fit("orthodont_gls_symm_ident_reml")  # UN: 6 + 3
    table = mm.anova(ar1, csh, un, refit=False, names=["ARH(1)", "CSH", "UN"])
    assert table.attrs["criterion"] == "REML" and not table.attrs["refitted"]
    assert list(table.index) == ["ARH(1)", "CSH", "UN"]
    for label, name in (("ARH(1)", "orthodont_gls_arh1_reml"), ("CSH", "orthodont_gls_csh_reml"),
                        ("UN", "orthodont_gls_symm_ident_reml")):
        assert table.loc[label, "logLik"] == pytest.approx(MODELS[name]["logLik"], abs=1e-4)
        assert table.loc[label, "AIC"] == pytest.approx(MODELS[name]["AIC"], abs=1e-3)
        assert table.loc[label, "npar"] == MODELS[name]["df"]
    assert table.loc["CSH", ["Chisq", "Df", "p"]].isna().all()  # as many parameters: no test
    chisq = 2 * (MODELS["orthodont_gls_symm_ident_reml"]["logLik"]
                 - MODELS["orthodont_gls_csh_reml"]["logLik"])
    assert table.loc["UN", "Chisq"] == pytest.approx(chisq, abs=2e-4)
    assert table.loc["UN", "Df"] == 5
    assert table.loc["UN", "p"] == pytest.approx(scipy.stats.chi2.sf(chisq, 5), rel=1e-3)


def test_anova_refits_structures_by_ml_with_nlmes_ml_likelihoods():
    with pytest.warns(mm.FitWarning, match="refitting"):
        table = mm.anova(nlme_fit("trial_gls_ar1_reml"), nlme_fit("trial_lme_ar1_reml"))
    assert table.attrs["criterion"] == "ML"
    assert table["logLik"].to_list() == pytest.approx(
        [MODELS["trial_gls_ar1_ml"]["logLik"], MODELS["trial_lme_ar1_ml"]["logLik"]], abs=1e-4)


def test_anova_compares_equal_parameters_without_a_test():
    ri = nlme_fit("orthodont_lme_ri_reml")
    assert mm.anova(ri, ri, refit=False)[["Chisq", "Df", "p"]].isna().all().all()
    cs = nlme_fit("orthodont_gls_cs_reml")  # the same model written on the R side
    table = mm.anova(ri, cs, refit=False, names=["G side", "R side"])
    assert table["logLik"].iloc[0] == pytest.approx(table["logLik"].iloc[1], abs=1e-6)
    assert np.isnan(table["Chisq"].iloc[1])


@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger", "residual", "asymptotic"])
def test_coef_table_and_anova_with_every_ddf(ddf):
    fit = nlme_fit("trial_lme_ar1_reml")
    table = fit.coef_table(ddf)
    np.testing.assert_allclose(table["estimate"], list(MODELS["trial_lme_ar1_reml"]
                                                       ["fixef"].values()), rtol=1e-5)
    if ddf != "kenward-roger":
        np.testing.assert_allclose(table["std_error"], list(MODELS["trial_lme_ar1_reml"]
                                                            ["fixef_se"].values()), rtol=1e-4)
    expected = {"residual": fit.nobs - 4, "asymptotic": np.inf}
    if ddf in expected:
        assert np.all(table["df"] == expected[ddf])
    f_tests = fit.anova(ddf)
    assert list(f_tests.index) == ["arm", "visit", "arm:visit"]
    assert f_tests.loc["arm:visit", "F"] == pytest.approx(table.loc["armtreated:visit", "t"] ** 2,
                                                          rel=1e-8)


# -- residuals and influence -----------------------------------------------------------------------
@pytest.mark.parametrize("name", [name for name in MODELS if MODELS[name]["r_blocks"]
                                  and "normalized" in MODELS[name]["r_blocks"][0]])
def test_normalized_and_pearson_residuals_are_nlmes(name):
    """normalized: nlme's resid(type = "normalized"), L^-1 (y - fitted) / sigma per group (L
    the Cholesky factor of the group's R block), but for compound symmetry (Helmert-type,
    ``CS.normalizing_rotation``); pearson = (y - fitted) / (sigma s_i)."""
    fit = nlme_fit(name)
    normalized = fit.resid("normalized").to_numpy()
    pearson = fit.resid("pearson", scaled=True).to_numpy()
    for block in MODELS[name]["r_blocks"]:
        rows = np.array(block["rows"]) - 1
        R = np.array(block["R"])
        r = fit.y[rows] - fit.fitted[rows]
        np.testing.assert_allclose(normalized[rows], block["normalized"], rtol=1e-4, atol=1e-5)
        if "cs" not in (MODELS[name]["ours"].get("correlation") or ""):
            L = np.linalg.cholesky(R)  # = sigma L_Psi
            np.testing.assert_allclose(normalized[rows], scipy.linalg.solve_triangular(
                L, r, lower=True), rtol=1e-4, atol=1e-6)
        else:  # another whitening of the same R: the group's sum of squares is the same
            assert np.sum(normalized[rows] ** 2) == pytest.approx(r @ np.linalg.solve(R, r),
                                                                  rel=1e-5)
        np.testing.assert_allclose(pearson[rows], r / np.sqrt(np.diag(R)), rtol=1e-4)


def test_normalized_residuals_are_scaled_anyway():
    fit = nlme_fit("trial_gls_ar1_reml")
    np.testing.assert_array_equal(fit.resid("normalized", scaled=True),
                                  fit.resid("normalized"))


def test_normalized_residuals_without_a_correlation_are_scaled_pearson():
    fit = nlme_fit("orthodont_lme_ident_sex_reml")
    np.testing.assert_allclose(fit.resid("normalized"), fit.resid("pearson", scaled=True),
                               rtol=1e-12)


def _dense_influence(fit, every=7):
    """Leverage diag(H) and Cook's distance by exact deletion, with the dense V."""
    V, X, y, b = fit.V.toarray(), fit.X, fit.y, fit.beta
    n, p = X.shape
    Vinv = np.linalg.inv(V)
    C = np.linalg.inv(X.T @ Vinv @ X)
    ZGZ = (fit.Z @ fit.G @ fit.Z.T).toarray() if fit.Z.shape[1] else np.zeros((n, n))
    H = X @ C @ X.T @ Vinv + ZGZ @ Vinv @ (np.eye(n) - X @ C @ X.T @ Vinv)
    rows = np.arange(0, n, every)
    cooks = []
    for i in rows:
        keep = np.arange(n) != i
        W = np.linalg.inv(V[np.ix_(keep, keep)])
        deleted = np.linalg.solve(X[keep].T @ W @ X[keep], X[keep].T @ W @ y[keep])
        cooks.append((b - deleted) @ np.linalg.solve(C, b - deleted) / p)
    return np.diag(H), rows, np.array(cooks)


@pytest.mark.parametrize("name", ["trial_gls_ar1_reml", "trial_lme_ar1_reml",
                                  "orthodont_gls_csh_reml", "orthodont_lme_ident_sex_reml",
                                  "spatial_gls_exp_reml"])
def test_leverage_and_cooks_distance_are_exact(name):
    fit = nlme_fit(name)
    leverage, rows, cooks = _dense_influence(fit)
    np.testing.assert_allclose(fit.leverage(), leverage, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fit.cooks_distance().to_numpy()[rows], cooks, rtol=1e-7,
                               atol=1e-14)


def test_leverage_of_a_linear_model_is_the_hat_matrix():
    fit = mm.gls("distance ~ age + Sex", data("orthodont"))
    X = fit.X
    np.testing.assert_allclose(fit.leverage(), np.diag(X @ np.linalg.solve(X.T @ X, X.T)),
                               rtol=1e-10)
    assert fit.leverage().sum() == pytest.approx(3.0)


def test_group_deletion_is_a_refit_without_the_group():
    fit = nlme_fit("orthodont_gls_cs_reml")
    table = fit.influence_groups("Subject", progress=False)
    frame = data("orthodont")
    refit = mm.gls("distance ~ age + Sex", frame[frame["Subject"] != "M13"],
                   correlation="cs(1 | Subject)")
    np.testing.assert_allclose(table.loc["M13", list(fit.x_names)].to_numpy(dtype=float),
                               refit.beta, rtol=1e-6)
    delta = refit.beta - fit.beta
    cook = delta @ np.linalg.solve(fit.vcov.to_numpy(), delta) / 3
    assert table.loc["M13", "cooks_distance"] == pytest.approx(cook, rel=1e-5)


# -- plots -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_plots_with_residual_structures():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gls_fit = nlme_fit("trial_gls_ar1_reml")
    for plot in (mm.plots.residuals_vs_fitted, mm.plots.qq_residuals):
        figure = plot(gls_fit)
        axis = figure.axes[0]
        assert axis.get_ylabel() in ("Standardized residuals", "Normalized residuals")
        plt.close(figure)
    figure = mm.plots.qq_residuals(gls_fit)
    points = figure.axes[0].collections[0].get_offsets()[:, 1]
    np.testing.assert_allclose(points, np.sort(gls_fit.resid("normalized")))
    plt.close(figure)
    for plot, args in ((mm.plots.caterpillar, ()), (mm.plots.qq_ranef, ()),
                       (mm.plots.group_panels, ("visit",))):
        with pytest.raises(ValueError, match=f"{plot.__name__} draws per grouping factor of "
                                             "the random effects.*mm.gls.*residuals_vs_fitted"):
            plot(gls_fit, *args)
    lme = nlme_fit("trial_lme_ar1_reml")
    for figure in (mm.plots.caterpillar(lme), mm.plots.group_panels(lme, "visit")):
        plt.close(figure)


# -- the README's worked example -------------------------------------------------------------------
def test_readme_example_prints_what_the_readme_shows(monkeypatch, capsys):
    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Structured residuals (R side)"):]
    code = section[section.index("```python\nimport mixedmodels"):]
    code = code[len("```python\n"):code.index("```\n", 10)]
    shown = section[section.index(code) + len(code) + len("```\n\n```\n"):]
    shown = shown[:shown.index("```\n")]
    monkeypatch.setenv("COLUMNS", "100")
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out == shown


# -- the command line ----------------------------------------------------------------------------
def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


TRIAL_CSV = str(REFERENCE / "data" / "trial.csv")


def test_cli_fits_gls_for_a_formula_without_random_effects(capsys):
    code, out, err = run(capsys, "fit", "y ~ arm * visit", "--data", TRIAL_CSV,
                         "--correlation", "ar1(visit | patient)", "--ddf", "kr")
    assert code == 0
    assert err.strip() == ("mixedmodels: note: the formula has no random-effects terms: fitted "
                           "by generalized least squares (mm.gls) with --correlation "
                           "ar1(visit | patient)")
    lines = out.splitlines()
    assert lines[0] == "Generalized least squares fit by REML"
    phi = MODELS["trial_gls_ar1_reml"]["cor_params"]["Phi1"]
    assert f"Correlation structure within patient: AR(1), Phi = {_shown(phi)}" in lines
    assert "Fixed effects, kenward-roger degrees of freedom:" in lines
    row = next(line for line in lines if line.startswith("armtreated:visit") and
               len(line.split()) == 6).split()
    table = nlme_fit("trial_gls_ar1_reml").coef_table("kr")
    assert float(row[3]) == pytest.approx(table.loc["armtreated:visit", "df"], rel=1e-5)


def test_cli_lmer_with_correlation_and_variance_json(capsys):
    code, out, err = run(capsys, "fit", "distance ~ age + Sex + (1 | Subject)", "--data",
                         str(REFERENCE / "data" / "orthodont.csv"), "--variance", "ident(Sex)",
                         "--json")
    assert code == 0 and err == ""
    record = json.loads(out)
    entry = MODELS["orthodont_lme_ident_sex_reml"]
    assert record["model"] == "lmer"
    assert record["loglik"] == pytest.approx(entry["logLik"], abs=1e-4)
    assert record["residual_structure"] == [
        f"Variance function: Different standard deviations per Sex (ratios Female: 1, Male: "
        f"{_shown(entry['var_params']['Male'])})"]
    for name, value in entry["fixef"].items():
        assert record["fixef"][name] == pytest.approx(value, rel=1e-5)


def test_cli_linear_model_and_bundled_trial(capsys):
    code, out, err = run(capsys, "fit", "y ~ arm * visit", "--data", "trial", "--json")
    assert code == 0
    assert "fitted by generalized least squares (mm.gls), i.e. the linear model" in err
    record = json.loads(out)
    assert record["model"] == "gls" and record["residual_structure"] == []
    assert record["nobs"] == 298
    X = nlme_fit("trial_gls_ar1_reml").X
    ols = np.linalg.lstsq(X, data("trial")["y"].to_numpy(), rcond=None)[0]
    np.testing.assert_allclose(list(record["fixef"].values()), ols, rtol=1e-8)


def test_cli_reports_bad_structures_in_one_line(capsys):
    code, out, err = run(capsys, "fit", "y ~ arm * visit + (1 | patient)", "--data", TRIAL_CSV,
                         "--correlation", "ar2(visit | patient)")
    assert code == 2 and out == ""
    assert err.startswith("mixedmodels: error: correlation='ar2(visit | patient)' is not a "
                          "correlation structure; use one of ar1(")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "fit", "y ~ arm * visit", "--data", TRIAL_CSV,
                       "--variance", "ident(centre)")
    assert code == 2 and "centre" in err and len(err.strip().splitlines()) == 2  # note + error


def test_cli_predicts_with_a_variance_function(capsys, tmp_path):
    new = tmp_path / "new.csv"
    pd.DataFrame({"age": [9.0, 11.0], "Sex": ["Female", "Male"]}).to_csv(new, index=False)
    out_path = tmp_path / "out.csv"
    code, _, err = run(capsys, "fit", "distance ~ age + Sex", "--data",
                       str(REFERENCE / "data" / "orthodont.csv"), "--variance", "ident(Sex)",
                       "--predict", str(new), "--out", str(out_path), "--interval", "prediction")
    assert code == 0
    written = pd.read_csv(out_path)
    fit = mm.gls("distance ~ age + Sex", data("orthodont"), variance="ident(Sex)")
    expected = fit.predict(pd.read_csv(new), interval="prediction")
    np.testing.assert_allclose(written["se"], expected["se"], rtol=1e-6)


# -- boundaries and edge cases ---------------------------------------------------------------------
def test_a_residual_parameter_on_its_bound_is_reported_as_such():
    """Compound symmetry at its lower bound -1/(m - 1): the warning and the summary's note
    name the residual structure, not the random effects."""
    frame = pd.DataFrame({"moisture": ["dry"] * 5 + ["wet"] * 5,
                          "pot": [1, 1, 1, 2, 2, 3, 3, 3, 4, 4],
                          "height": [13.1, 15.3, 13.9, 13.1, 14.7, 17.8, 19.8, 18.5, 19.4, 17.6]})
    with pytest.warns(mm.FitWarning, match="boundary \\(singular\\) fit: a parameter of the "
                                           "residual structure is on its bound"):
        fit = mm.gls("height ~ moisture", frame, correlation="cs(1 | pot)")
    assert fit.is_singular
    rho = fit.model.structure.parameters.sdcor(fit.theta, fit.sigma)[-1]
    assert rho == pytest.approx(-0.5, abs=1e-4)
    lines = str(fit.summary()).splitlines()
    assert lines[-1].startswith("boundary fit: a parameter of the residual structure is on its "
                                "bound") and "see the residual structure above" in lines[-1]
    assert not any(line.startswith("boundary (singular) fit: a variance") for line in lines)


def test_linear_model_summary_has_no_structure_title():
    text = str(mm.gls("distance ~ age", data("orthodont")).summary())
    assert "Residual structure:" not in text
    assert "Residual standard error: " in text and "Number of obs: 108" in text


def test_toeplitz_values_outside_the_model_have_no_parameters():
    """The profile moves one autocorrelation at a time; a combination that no stationary
    process has maps to NaN (an infinite deviance), not silently to another point."""
    toep = mm.cov.Toep("visit", "Subject").bind(np.arange(1.0, 5.0)[:, None], np.array([4]))
    assert toep.lags == 3
    values = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(toep.values(toep.from_values(values)), values, rtol=1e-12)
    assert np.isnan(toep.from_values(np.array([0.9, -0.5, 0.2]))).all()
    fit = mm.gls("distance ~ age * Sex", data("orthodont"), correlation="toep(visit | Subject)")
    lower, upper = fit.confint(parameters=["cor_lag1|Subject"]).loc["cor_lag1|Subject"]
    estimate = fit.model.structure.parameters.sdcor(fit.theta, fit.sigma)[0]
    assert -1 < lower < estimate < upper < 1


def test_gls_has_no_random_effects_and_says_so():
    fit = nlme_fit("trial_gls_ar1_reml")
    assert fit.ranef == {} and fit.coef == {} and fit.condvar == {} and len(fit.u) == 0
    assert list(fit.ranef_table().columns) == ["grpvar", "term", "grp", "condval", "condsd"]
    assert fit.ranef_table().empty
    assert list(fit.varcorr["group"]) == ["Residual"]
    with pytest.raises(ValueError, match="term_covariance.*mm.gls.*fit.R"):
        fit.term_covariance(0)
    with pytest.raises(ValueError, match="include_random lists 'patient'.*no random effects"):
        fit.predict(data("trial").head(2), include_random=["patient"])
    np.testing.assert_allclose(fit.predict(data("trial").head(2), include_random=False),
                               fit.X[:2] @ fit.beta)
    np.testing.assert_allclose(fit.V.toarray(), fit.R.toarray())


def test_prediction_variance_of_power_at_zero_is_nan():
    """power(x) at x = 0 is an sd of 0 (or infinity): refused in the fit's rows, and NaN with
    a DataWarning for new rows (their prediction interval equalled the confidence one)."""
    data = mm.datasets.load("sleepstudy").assign(x=lambda d: d["Days"] + 1.0)
    fit = mm.gls("Reaction ~ Days", data, variance="power(x)")
    newdata = pd.DataFrame({"Days": [1.0, 2.0, 3.0], "x": [0.0, 0.5, 2.0]})
    with pytest.warns(mm.DataWarning, match=r"x = 0 in 1 row\(s\) \(0\)"):
        table = fit.predict(newdata, interval="prediction")
    assert np.isnan(table["se"].iloc[0]) and np.isfinite(table["se"].iloc[1:]).all()
    assert np.isfinite(table["fit"]).all()
