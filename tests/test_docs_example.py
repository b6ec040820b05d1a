"""The greenhouse worked example (docs/greenhouse.py): the matrices it prints are the right ones,
and the package's REML estimates agree with a brute-force maximization on the dense V."""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "greenhouse.py"
POT_OF_SEEDLING = np.array([1, 1, 1, 2, 2, 3, 3, 3, 4, 4])


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("greenhouse_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        out = module.main()
    out["printed"] = printed.getvalue()
    return out


def same_pot() -> np.ndarray:
    return POT_OF_SEEDLING[:, None] == POT_OF_SEEDLING[None, :]


def test_data_and_fit_are_the_documented_design(example):
    df, fit = example["data"], example["fit"]
    assert df.shape[0] == 10 and fit.nobs == 10
    np.testing.assert_array_equal(df["pot"].to_numpy(), POT_OF_SEEDLING)
    assert df.groupby("pot")["moisture"].nunique().eq(1).all()  # pots nested in moisture
    assert df.groupby("moisture")["pot"].nunique().eq(2).all()
    assert sorted(df.groupby("pot").size().tolist()) == [2, 2, 3, 3]
    assert fit.reml and fit.converged and not fit.is_singular
    assert fit.x_names == ("(Intercept)", "moisturewet")
    wet = (df["moisture"] == "wet").to_numpy(dtype=float)
    np.testing.assert_array_equal(example["X"], np.column_stack([np.ones(10), wet]))
    assert "== V = Var(y) = Z G Z' + R ==" in example["printed"]


def test_z_is_the_pot_indicator(example):
    Z = example["Z"]
    assert Z.shape == (10, 4)
    expected = (POT_OF_SEEDLING[:, None] == np.arange(1, 5)[None, :]).astype(float)
    np.testing.assert_array_equal(Z, expected)
    np.testing.assert_array_equal(example["fit"].Z.toarray(), expected)


def test_zzt_is_block_diagonal_with_ones_within_pots(example):
    ZZt = example["ZZt"]
    np.testing.assert_array_equal(ZZt, same_pot().astype(float))
    blocks = [np.ones((3, 3)), np.ones((2, 2)), np.ones((3, 3)), np.ones((2, 2))]
    np.testing.assert_array_equal(ZZt, scipy.linalg.block_diag(*blocks))


def variance_components(fit):
    vc = fit.varcorr
    sigma2_p = float(vc.loc[vc["group"] == "pot", "vcov"].iloc[0])
    sigma2_e = float(vc.loc[vc["group"] == "Residual", "vcov"].iloc[0])
    return sigma2_p, sigma2_e


def test_v_is_zgz_plus_r_computed_by_hand(example):
    fit, Z, V = example["fit"], example["Z"], example["V"]
    sigma2_p, sigma2_e = variance_components(fit)
    assert sigma2_p == pytest.approx(example["sigma2_p"], rel=1e-14)
    assert sigma2_e == pytest.approx(fit.sigma ** 2, rel=1e-12)
    G = sigma2_p * np.eye(4)
    R = sigma2_e * np.eye(10)
    np.testing.assert_allclose(example["G"], G, rtol=1e-12, atol=0)
    np.testing.assert_allclose(example["R"], R, rtol=1e-12, atol=0)
    by_hand = Z @ G @ Z.T + R
    np.testing.assert_allclose(V, by_hand, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fit.V.toarray(), by_hand, rtol=1e-12, atol=1e-14)
    # entry by entry: sigma_p^2 + sigma_e^2 on the diagonal, sigma_p^2 within a pot, 0 between
    expected = np.where(same_pot(), sigma2_p, 0.0) + sigma2_e * np.eye(10)
    np.testing.assert_allclose(V, expected, rtol=1e-12, atol=1e-14)


def test_v_is_block_diagonal(example):
    V = example["V"]
    assert np.all(V[~same_pot()] == 0.0)
    assert np.all(V[same_pot()] > 0.0)
    assert example["fit"].V.nnz == int(same_pot().sum())  # 9 + 4 + 9 + 4 stored entries


def test_icc(example):
    V, icc = example["V"], example["icc"]
    sigma2_p, sigma2_e = variance_components(example["fit"])
    assert icc == pytest.approx(sigma2_p / (sigma2_p + sigma2_e), rel=1e-14)
    assert 0.0 < icc < 1.0
    pairs = [(i, j) for i in range(10) for j in range(10) if i != j and same_pot()[i, j]]
    assert len(pairs) == 2 * (3 + 1 + 3 + 1)
    for i, j in pairs:
        assert V[i, j] / V[i, i] == pytest.approx(icc, rel=1e-12)
        assert V[i, j] / np.sqrt(V[i, i] * V[j, j]) == pytest.approx(icc, rel=1e-12)


def test_overparameterized_fit_drops_alpha2(example):
    fit, over = example["fit"], example["fit_over"]
    X_over = example["X_over"]
    assert X_over.shape == (10, 3) and np.linalg.matrix_rank(X_over) == 2
    np.testing.assert_array_equal(X_over[:, 1] + X_over[:, 2], X_over[:, 0])
    assert len(example["warnings"]) == 1
    assert example["warnings"][0].startswith("DataWarning:")
    assert "alpha2" in example["warnings"][0] and "alpha1" not in example["warnings"][0]
    assert tuple(over.model.design.dropped) == ("alpha2",)
    assert over.x_names == ("(Intercept)", "alpha1")
    assert over.X.shape == (10, 2)
    np.testing.assert_array_equal(over.X, X_over[:, :2])
    # the same model, reparameterized: equal fits up to the optimizer's tolerance
    assert over.objective == pytest.approx(fit.objective, rel=1e-10)
    np.testing.assert_allclose(over.fitted, fit.fitted, rtol=0, atol=1e-5)
    assert variance_components(over) == pytest.approx(variance_components(fit), rel=1e-5)
    # intercept = mu + alpha2 = the wet mean; alpha1 = alpha1 - alpha2 = -(wet - dry)
    assert over.beta[0] == pytest.approx(fit.beta.sum(), rel=1e-6)
    assert over.beta[1] == pytest.approx(-fit.beta[1], rel=1e-5)


def test_fitted_is_x_beta_plus_z_u(example):
    fit, X, Z = example["fit"], example["X"], example["Z"]
    np.testing.assert_allclose(X @ fit.beta + Z @ fit.u, fit.fitted, rtol=1e-14, atol=1e-12)
    np.testing.assert_allclose(example["fitted"], fit.fitted, rtol=1e-14, atol=1e-12)
    # and beta, u are the GLS estimate and the BLUP given V
    V, G, y = example["V"], example["G"], fit.y
    Vinv = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ Vinv @ X, X.T @ Vinv @ y)
    u = G @ Z.T @ Vinv @ (y - X @ beta)
    np.testing.assert_allclose(fit.beta, beta, rtol=1e-10)
    np.testing.assert_allclose(fit.u, u, rtol=1e-8, atol=1e-10)
    # within each moisture level the two pots' BLUPs sum to zero
    assert fit.u[0] + fit.u[1] == pytest.approx(0.0, abs=1e-10)
    assert fit.u[2] + fit.u[3] == pytest.approx(0.0, abs=1e-10)


def reml_criterion(log_variances, X, Z, y):
    """-2 restricted log-likelihood on the dense V (lme4's REML criterion, with its constant)."""
    sigma2_p, sigma2_e = np.exp(log_variances)
    n, p = X.shape
    V = sigma2_p * Z @ Z.T + sigma2_e * np.eye(n)
    Vinv = np.linalg.inv(V)
    xtvx = X.T @ Vinv @ X
    beta = np.linalg.solve(xtvx, X.T @ Vinv @ y)
    r = y - X @ beta
    return (np.linalg.slogdet(V)[1] + np.linalg.slogdet(xtvx)[1] + r @ Vinv @ r
            + (n - p) * np.log(2 * np.pi))


def test_reml_estimates_match_brute_force(example):
    fit, X, Z = example["fit"], example["X"], example["Z"]
    y = fit.y
    # start away from the answer: equal variances, the total variance split in half
    start = np.log(np.full(2, np.var(y) / 2))
    result = scipy.optimize.minimize(reml_criterion, start, args=(X, Z, y), method="Nelder-Mead",
                                     options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 10_000})
    assert result.success
    sigma2_p, sigma2_e = np.exp(result.x)
    assert variance_components(fit) == pytest.approx((sigma2_p, sigma2_e), rel=1e-4)
    assert fit.objective == pytest.approx(result.fun, rel=1e-10)
    # the package's criterion is the same function: check it away from the optimum too
    theta = np.array([0.5])
    sigma2 = fit.sigma ** 2
    assert fit.model.objective(theta) >= fit.objective
    other = scipy.optimize.minimize_scalar(
        lambda log_s2e: reml_criterion([np.log(theta[0] ** 2) + log_s2e, log_s2e], X, Z, y),
        bracket=(np.log(sigma2) - 1, np.log(sigma2) + 1))
    assert fit.model.objective(theta) == pytest.approx(other.fun, rel=1e-8)


# -- the R side: compound symmetry within pot -----------------------------------------------------
def test_compound_symmetry_on_the_r_side_is_the_random_pot_model(example):
    fit, gls_fit = example["fit"], example["gls_fit"]
    assert not gls_fit.model.random_effects and gls_fit.Z.shape == (10, 0)
    assert gls_fit.objective == pytest.approx(fit.objective, rel=1e-9)
    np.testing.assert_allclose(gls_fit.beta, fit.beta, rtol=1e-7)
    np.testing.assert_allclose(gls_fit.stderr, fit.stderr, rtol=1e-5)
    np.testing.assert_allclose(example["V_gls"], example["V"], rtol=0, atol=1e-6)
    assert example["rho"] == pytest.approx(example["icc"], rel=1e-6)
    sigma2_p, sigma2_e = variance_components(fit)
    assert gls_fit.sigma ** 2 == pytest.approx(sigma2_p + sigma2_e, rel=1e-6)
    # V of the R side by hand: sigma^2 ((1 - rho) I + rho J) within pots, 0 between
    rho, sigma2 = example["rho"], gls_fit.sigma ** 2
    by_hand = np.where(same_pot(), sigma2 * rho, 0.0) + sigma2 * (1 - rho) * np.eye(10)
    np.testing.assert_allclose(example["V_gls"], by_hand, rtol=1e-12, atol=1e-14)
    printed = example["printed"]
    assert "Generalized least squares fit by REML" in printed
    assert f"Correlation structure within pot: Compound symmetry, Rho = {rho:.4g}" in printed


def _dense_reml(V, X, y):
    Vinv = np.linalg.inv(V)
    xtvx = X.T @ Vinv @ X
    beta = np.linalg.solve(xtvx, X.T @ Vinv @ y)
    r = y - X @ beta
    n, p = X.shape
    return (np.linalg.slogdet(V)[1] + np.linalg.slogdet(xtvx)[1] + r @ Vinv @ r
            + (n - p) * np.log(2 * np.pi))


def test_negative_within_pot_correlation_only_on_the_r_side(example):
    g_side, r_side = example["g_side"], example["r_side"]
    heights = example["negative_data"]["height"].to_numpy()
    np.testing.assert_array_equal(r_side.y, heights)
    # G side: the pot variance stops at its boundary 0
    assert g_side.is_singular
    assert any("singular" in message for message in example["g_side_warnings"])
    sigma2_p, _ = variance_components(g_side)
    assert sigma2_p == pytest.approx(0.0, abs=1e-8)
    # R side: rho negative, inside (-1/(m - 1), 0), and a better (lower) REML criterion
    rho, lower = example["rho_negative"], example["rho_lower_bound"]
    assert lower == pytest.approx(-0.5)
    assert lower + 0.1 < rho < -0.1
    assert not r_side.is_singular
    assert r_side.objective < g_side.objective - 0.1
    # both criteria equal the dense REML criterion at their own estimates
    X = r_side.X
    sigma2 = r_side.sigma ** 2
    V_r = np.where(same_pot(), sigma2 * rho, 0.0) + sigma2 * (1 - rho) * np.eye(10)
    np.testing.assert_allclose(r_side.V.toarray(), V_r, rtol=1e-12, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(V_r) > 0)
    assert r_side.objective == pytest.approx(_dense_reml(V_r, X, heights), rel=1e-10)
    V_g = g_side.V.toarray()
    assert g_side.objective == pytest.approx(_dense_reml(V_g, X, heights), rel=1e-10)
    # at rho = 0 the R side is the G side's boundary fit: the same criterion
    no_correlation = r_side.model.objective(np.array([r_side.model.structure.parameters
                                                      .residual.from_values(np.array([0.0]))[0]]))
    assert no_correlation == pytest.approx(g_side.objective, rel=1e-8)
    assert f"rho = {rho:.4f}" in example["printed"]
