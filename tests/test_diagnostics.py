"""Residual and fitted kinds, leverage, Cook's distance and case deletion by group, against
dense computations (sleepstudy, n = 180) and hand refits."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels import diagnostics as dg


@pytest.fixture(scope="module")
def dense(sleep):
    X, y = sleep.X, sleep.y
    V = sleep.V.toarray()
    Vi = np.linalg.inv(V)
    C = np.linalg.inv(X.T @ Vi @ X)
    n = len(y)
    P = X @ C @ X.T @ Vi
    H = P + sleep.Z.toarray() @ sleep.G.toarray() @ sleep.Z.toarray().T @ Vi @ (np.eye(n) - P)
    return {"V": V, "C": C, "H": H}


def test_residual_and_fitted_kinds(sleep):
    y, X, b = sleep.y, sleep.X, sleep.beta
    zu = sleep.Z @ sleep.u
    np.testing.assert_allclose(dg.residuals(sleep), y - X @ b - zu, atol=1e-10)
    np.testing.assert_allclose(dg.residuals(sleep, "pearson"), y - X @ b - zu, atol=1e-10)
    np.testing.assert_allclose(dg.residuals(sleep, "pearson", scaled=True),
                               (y - X @ b - zu) / sleep.sigma, atol=1e-10)
    np.testing.assert_allclose(dg.residuals(sleep, "marginal"), y - X @ b, atol=1e-10)
    np.testing.assert_allclose(dg.fitted(sleep), X @ b + zu, atol=1e-10)
    np.testing.assert_allclose(dg.fitted(sleep, "marginal"), X @ b, atol=1e-10)
    with pytest.raises(ValueError, match="kind"):
        dg.residuals(sleep, "deviance")
    with pytest.raises(ValueError, match="kind"):
        dg.fitted(sleep, "population")


def test_dense_hat_matrix_reproduces_fit(sleep, dense):
    np.testing.assert_allclose(dense["H"] @ sleep.y, sleep.fitted, atol=1e-8)
    np.testing.assert_allclose(dense["C"], sleep.vcov.to_numpy(), rtol=1e-8)


def test_leverage_equals_dense_diagonal(sleep, dense):
    h = dg.leverage(sleep)
    np.testing.assert_allclose(h, np.diag(dense["H"]), rtol=0, atol=1e-10)
    # trace of H: effective number of parameters, between p and p + q
    assert 2 < h.sum() < 2 + 36


def test_leverage_crossed_dense(quiet_fit):
    fit = quiet_fit("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin")
    X = fit.X
    Vi = np.linalg.inv(fit.V.toarray())
    C = np.linalg.inv(X.T @ Vi @ X)
    n = len(fit.y)
    P = X @ C @ X.T @ Vi
    Z = fit.Z.toarray()
    H = P + Z @ fit.G.toarray() @ Z.T @ Vi @ (np.eye(n) - P)
    np.testing.assert_allclose(dg.leverage(fit), np.diag(H), atol=1e-10)


@pytest.mark.parametrize("i", [0, 7, 95, 179])
def test_cooks_distance_equals_exact_deletion(sleep, dense, i):
    X, y, V, C = sleep.X, sleep.y, dense["V"], dense["C"]
    keep = np.arange(len(y)) != i
    Vi = np.linalg.inv(V[np.ix_(keep, keep)])
    b_i = np.linalg.solve(X[keep].T @ Vi @ X[keep], X[keep].T @ Vi @ y[keep])
    d = sleep.beta - b_i
    expected = d @ np.linalg.inv(C) @ d / X.shape[1]
    assert dg.cooks_distance(sleep)[i] == pytest.approx(expected, rel=1e-8)


def test_influence_groups_matches_hand_refit(sleep):
    table = dg.influence_groups(sleep, "Subject", progress=False)
    assert len(table) == 18 and table.index.name == "Subject"
    data = mm.datasets.load("sleepstudy")
    subject = table.index[3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit = mm.lmer("Reaction ~ Days + (Days | Subject)",
                        data[data["Subject"].astype(str) != subject])
    d = sleep.beta - refit.beta
    expected = d @ np.linalg.inv(sleep.vcov.to_numpy()) @ d / 2
    row = table.loc[subject]
    assert row["cooks_distance"] == pytest.approx(expected, rel=1e-6)
    assert row["nobs_deleted"] == 10
    np.testing.assert_allclose([row["(Intercept)"], row["Days"]], refit.beta, rtol=1e-8)
    np.testing.assert_allclose([row["delta (Intercept)"], row["delta Days"]], -d, rtol=1e-6)
    assert (table["cooks_distance"] > 0).all()


def test_influence_groups_bad_group(sleep):
    with pytest.raises(ValueError, match="'Nope'"):
        dg.influence_groups(sleep, "Nope", progress=False)


def test_fit_methods_delegate(sleep):
    np.testing.assert_allclose(sleep.leverage(), dg.leverage(sleep))
    np.testing.assert_allclose(sleep.cooks_distance(), dg.cooks_distance(sleep))
    np.testing.assert_allclose(sleep.predict(), sleep.fitted)


def test_fit_methods_for_residual_and_fitted_kinds():
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
    marginal = fit.X @ fit.beta
    np.testing.assert_allclose(fit.resid(), fit.y - fit.fitted)
    np.testing.assert_allclose(fit.resid("pearson", scaled=True), (fit.y - fit.fitted) / fit.sigma)
    np.testing.assert_allclose(fit.resid("marginal"), fit.y - marginal)
    np.testing.assert_allclose(fit.fitted_values("marginal"), marginal)
    np.testing.assert_allclose(fit.fitted_values(), fit.fitted)


@pytest.mark.slow
def test_influence_groups_on_an_executor(sleep):
    from concurrent.futures import ProcessPoolExecutor

    serial = sleep.influence_groups("Subject", progress=False)
    with ProcessPoolExecutor(2) as pool:
        parallel = sleep.influence_groups("Subject", progress=False, executor=pool)
    pd.testing.assert_frame_equal(parallel, serial)
    distributed = pytest.importorskip("distributed")
    with distributed.Client(n_workers=2, threads_per_worker=1, processes=True,
                            dashboard_address=None) as client:
        on_dask = sleep.influence_groups("Subject", progress=False,
                                         executor=client.get_executor())
    pd.testing.assert_frame_equal(on_dask, serial)


# -- per-observation results labelled as the data's rows (na_action) ---------------------------

@pytest.fixture(scope="module")
def gappy():
    """sleepstudy with labels that are not positions (in reverse order) and three rows with a
    missing response, and its fit."""
    data = mm.datasets.load("sleepstudy")
    data.index = [f"obs{i}" for i in range(len(data))][::-1]
    data.loc[["obs3", "obs100", "obs177"], "Reaction"] = np.nan
    with pytest.warns(mm.DataWarning, match="dropped 3 of 180"):
        fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    return data, fit


def test_per_observation_methods_are_series_of_the_fitted_rows(gappy):
    data, fit = gappy
    kept = data.index[data["Reaction"].notna()]
    for series, values, name in [
            (fit.fitted_values(), fit.fitted, "fitted"),
            (fit.fitted_values("marginal"), dg.fitted(fit, "marginal"), "fitted"),
            (fit.resid(), fit.residuals, "residual"),
            (fit.resid("pearson", scaled=True), dg.residuals(fit, "pearson", True), "residual"),
            (fit.predict(), fit.fitted, "prediction"),
            (fit.leverage(), dg.leverage(fit), "leverage"),
            (fit.cooks_distance(), dg.cooks_distance(fit), "cooks_distance")]:
        assert isinstance(series, pd.Series) and series.name == name
        assert series.index.equals(kept)
        np.testing.assert_array_equal(series.to_numpy(), values)


def test_na_exclude_lines_up_with_the_data(gappy):
    data, fit = gappy
    missing = data["Reaction"].isna().to_numpy()
    frame = data.copy()
    frame["fitted"] = fit.fitted_values(na_action="exclude")
    frame["residual"] = fit.resid(na_action="exclude")
    assert frame.index.equals(data.index)
    assert frame.loc[missing, ["fitted", "residual"]].isna().all().all()
    np.testing.assert_array_equal(frame.loc[~missing, "fitted"].to_numpy(), fit.fitted)
    np.testing.assert_allclose(frame["Reaction"] - frame["fitted"], frame["residual"],
                               rtol=1e-12)
    for result in (fit.fitted_values(na_action="exclude"), fit.leverage(na_action="exclude"),
                   fit.predict(interval="confidence", na_action="exclude")):
        assert result.index.equals(data.index)  # every row, in the data's order
        assert result[missing].isna().all(axis=None)
    table = fit.predict(interval="confidence", na_action="exclude")
    np.testing.assert_array_equal(table["fit"].to_numpy()[~missing], fit.fitted)


def test_na_exclude_without_dropped_rows_is_omit(sleep):
    np.testing.assert_array_equal(sleep.resid(na_action="exclude"), sleep.resid())
    assert sleep.resid(na_action="exclude").index.equals(sleep.model.design.rows)


def test_na_exclude_needs_unique_labels():
    data = mm.datasets.load("sleepstudy")
    data.index = np.arange(len(data)) // 2
    data.loc[3, "Reaction"] = np.nan
    with pytest.warns(mm.DataWarning):
        fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    assert len(fit.resid()) == 178
    with pytest.raises(mm.DataError, match="duplicate labels"):
        fit.resid(na_action="exclude")


def test_na_exclude_of_a_dict_of_columns():
    data = mm.datasets.load("sleepstudy")
    data.loc[[0, 5], "Reaction"] = np.nan
    with pytest.warns(mm.DataWarning):
        fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data.to_dict("list"))
    fitted = fit.fitted_values(na_action="exclude")
    assert list(fitted.index) == list(range(180)) and fitted[[0, 5]].isna().all()


def test_prediction_keeps_the_index_of_new_data(sleep):
    new = pd.DataFrame({"Days": [2.0, np.nan, 7.0], "Subject": ["308", "309", "310"]},
                       index=["c", "a", "b"])
    predicted = sleep.predict(new)
    assert isinstance(predicted, pd.Series) and predicted.name == "prediction"
    assert list(predicted.index) == ["c", "a", "b"] and np.isnan(predicted["a"])
    u = sleep.ranef["Subject"].loc["310"].to_numpy()
    assert predicted["b"] == pytest.approx(sleep.beta[0] + u[0] + 7 * (sleep.beta[1] + u[1]))
    new["prediction"] = predicted  # aligned on the labels
    np.testing.assert_array_equal(new["prediction"].to_numpy(), predicted.to_numpy())
    table = sleep.predict(new, interval="prediction")
    assert list(table.index) == ["c", "a", "b"]
    np.testing.assert_array_equal(table["fit"].to_numpy(), predicted.to_numpy())
