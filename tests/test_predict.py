"""predict(): fitted data, new data (I() terms, factors), unseen levels, missing values,
confidence intervals."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from conftest import dataset_for, load_reference, reference_ids

import mixedmodels as mm
from mixedmodels.predict import predict


@pytest.mark.parametrize("model_id", reference_ids())
def test_training_predictions_equal_fitted(model_id):
    record = load_reference(model_id)
    data = dataset_for(record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer(record["formula"], data)
    # rows with a missing response (classic/carrots) are predicted too, but were not fitted
    used = data.index.get_indexer(fit.model.design.frame.index)
    assert len(used) == fit.nobs and np.all(used >= 0)
    everything = predict(fit, data)
    assert len(everything) == len(data) and np.all(np.isfinite(everything))
    np.testing.assert_allclose(everything[used], fit.fitted, rtol=0, atol=1e-10)
    np.testing.assert_allclose(predict(fit), fit.fitted, rtol=0, atol=1e-10)
    np.testing.assert_allclose(predict(fit, data, include_random=False)[used],
                               fit.X @ fit.beta, rtol=0, atol=1e-10)


def test_new_subject_policies(sleep):
    new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["308", "999"]})
    b = sleep.beta
    population = predict(sleep, new, new_levels="population")
    u308 = sleep.ranef["Subject"].loc["308"].to_numpy()
    assert population[0] == pytest.approx(b[0] + u308[0])
    assert population[1] == pytest.approx(b[0] + 5 * b[1])
    with pytest.raises(ValueError, match="'999'.*'Subject'"):
        predict(sleep, new)
    nan = predict(sleep, new, new_levels="nan")
    assert nan[0] == pytest.approx(population[0]) and np.isnan(nan[1])
    np.testing.assert_allclose(predict(sleep, new, include_random=False),
                               [b[0], b[0] + 5 * b[1]])


def test_integer_subject_labels_match(sleep):
    # the fit's Subject column is str; integer codes in new data give the same labels
    data = mm.datasets.load("sleepstudy")
    new = pd.DataFrame({"Days": [3.0], "Subject": [int(data["Subject"].iloc[0])]})
    u = sleep.ranef["Subject"].loc[str(data["Subject"].iloc[0])].to_numpy()
    b = sleep.beta
    assert predict(sleep, new)[0] == pytest.approx(b[0] + u[0] + 3 * (b[1] + u[1]))


def test_identity_terms_and_factor_by_hand(quiet_fit):
    fit = quiet_fit("distance ~ I(age^2) + Sex + (age | Subject)", "orthodont")
    assert fit.x_names == ("(Intercept)", "I(age^2)", "SexMale")
    new = pd.DataFrame({"age": [9.0, 13.5, 7.0], "Sex": ["Female", "Male", "Male"],
                        "Subject": ["F03", "M05", "M11"]})
    b = fit.fixef
    u = fit.ranef["Subject"]
    expected = [
        b["(Intercept)"] + 81 * b["I(age^2)"] + u.loc["F03", "(Intercept)"] + 9 * u.loc["F03", "age"],
        b["(Intercept)"] + 13.5 ** 2 * b["I(age^2)"] + b["SexMale"]
        + u.loc["M05", "(Intercept)"] + 13.5 * u.loc["M05", "age"],
        b["(Intercept)"] + 49 * b["I(age^2)"] + b["SexMale"]
        + u.loc["M11", "(Intercept)"] + 7 * u.loc["M11", "age"],
    ]
    np.testing.assert_allclose(predict(fit, new), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="'Sex'.*'Other'"):
        predict(fit, new.assign(Sex=["Female", "Other", "Male"]))


def test_ergostool_factor_by_hand(quiet_fit):
    fit = quiet_fit("effort ~ Type + (1 | Subject)", "ergostool")
    assert fit.x_names == ("(Intercept)", "TypeT2", "TypeT3", "TypeT4")
    new = pd.DataFrame({"Type": ["T3", "T1", "T4"], "Subject": ["2", "5", "9"]})
    b, u = fit.fixef, fit.ranef["Subject"]["(Intercept)"]
    expected = [b["(Intercept)"] + b["TypeT3"] + u.loc["2"], b["(Intercept)"] + u.loc["5"],
                b["(Intercept)"] + b["TypeT4"] + u.loc["9"]]
    np.testing.assert_allclose(predict(fit, new), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="'Type'.*'T5'"):
        predict(fit, new.assign(Type=["T5", "T1", "T2"]))


def test_nested_groups_by_hand(quiet_fit):
    fit = quiet_fit("strength ~ 1 + (1 | batch/cask)", "pastes")
    new = pd.DataFrame({"batch": ["B", "Q"], "cask": ["c", "a"]})
    ranef = fit.ranef
    assert set(ranef) == {"batch", "cask:batch"}  # lme4's name and level labels: "c:B"
    expected = [fit.beta[0] + ranef["batch"].iloc[:, 0].loc["B"]
                + ranef["cask:batch"].iloc[:, 0].loc["c:B"],
                fit.beta[0]]
    got = predict(fit, new, new_levels="population")
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_missing_values_give_nan(sleep):
    new = pd.DataFrame({"Days": [1.0, np.nan, 2.0], "Subject": ["308", "309", None]})
    got = predict(sleep, new)
    assert np.isfinite(got[0]) and np.isnan(got[1]) and np.isnan(got[2])
    # without the random part the grouping factor is not needed
    fixed = predict(sleep, new, include_random=False)
    assert np.isnan(fixed[1]) and fixed[2] == pytest.approx(sleep.beta[0] + 2 * sleep.beta[1])


def test_confidence_interval_by_hand(sleep):
    new = pd.DataFrame({"Days": [0.0, 4.5], "Subject": ["308", "330"]}, index=["a", "b"])
    table = predict(sleep, new, include_random=False, interval="confidence", level=0.9)
    X = np.array([[1.0, 0.0], [1.0, 4.5]])
    V = sleep.vcov.to_numpy()
    se = np.sqrt([x @ V @ x for x in X])
    z = scipy.stats.norm.ppf(0.95)
    fitted = X @ sleep.beta
    assert list(table.columns) == ["fit", "lower", "upper"] and list(table.index) == ["a", "b"]
    np.testing.assert_allclose(table["fit"], fitted, rtol=1e-12)
    np.testing.assert_allclose(table["lower"], fitted - z * se, rtol=1e-12)
    np.testing.assert_allclose(table["upper"], fitted + z * se, rtol=1e-12)
    conditional = predict(sleep, new, interval="confidence", level=0.9)
    np.testing.assert_allclose(conditional["fit"], predict(sleep, new), rtol=1e-12)
    np.testing.assert_allclose(conditional["upper"] - conditional["fit"], z * se, rtol=1e-12)


def test_bad_arguments(sleep):
    with pytest.raises(ValueError, match="new_levels"):
        predict(sleep, new_levels="zero")
    with pytest.raises(ValueError, match="interval"):
        predict(sleep, interval="prediction")
    with pytest.raises(ValueError, match="Days"):
        predict(sleep, pd.DataFrame({"Subject": ["308"]}))
