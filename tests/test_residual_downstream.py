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
from mixedmodels.inference.kenward_roger import KenwardRoger, clusters

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
    import mixedmodels.inference.kenward_roger as kr
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
