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
from mixedmodels.diagnostics.predict import predict


# InstEval's (3 s) runs with the slow tests
@pytest.mark.parametrize("model_id", [
    pytest.param(model_id, marks=pytest.mark.slow) if model_id == "classic/insteval"
    else model_id for model_id in reference_ids()])
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
        b["(Intercept)"] + 81 * b["I(age^2)"] + u.loc["F03", "(Intercept)"]
        + 9 * u.loc["F03", "age"],
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
    """A missing covariate gives NaN; a missing grouping value is an unknown level (an error
    by default, as lme4; NaN with new_levels="nan")."""
    new = pd.DataFrame({"Days": [1.0, np.nan, 2.0], "Subject": ["308", "309", None]})
    with pytest.raises(mm.DataError, match="missing value of the grouping factor"):
        predict(sleep, new)
    got = predict(sleep, new, new_levels="nan")
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
    assert list(table.columns) == ["fit", "se", "lower", "upper"]
    assert list(table.index) == ["a", "b"]
    np.testing.assert_allclose(table["se"], se, rtol=1e-12)
    np.testing.assert_allclose(table["fit"], fitted, rtol=1e-12)
    np.testing.assert_allclose(table["lower"], fitted - z * se, rtol=1e-12)
    np.testing.assert_allclose(table["upper"], fitted + z * se, rtol=1e-12)
    conditional = predict(sleep, new, interval="confidence", level=0.9)  # of X b + Z u:
    np.testing.assert_allclose(conditional["fit"], predict(sleep, new), rtol=1e-12)  # its se
    np.testing.assert_allclose(conditional["upper"] - conditional["fit"],  # is Henderson's
                               z * conditional["se"], rtol=1e-12)  # (test below)


def test_bad_arguments(sleep):
    with pytest.raises(ValueError, match="new_levels"):
        predict(sleep, new_levels="zero")
    with pytest.raises(ValueError, match="interval"):
        predict(sleep, interval="tolerance")
    with pytest.raises(ValueError, match="Days"):
        predict(sleep, pd.DataFrame({"Subject": ["308"]}))


# -- prediction intervals --------------------------------------------------------------------------
def _dense_prediction_variance(fit, X0, Z0, new_blocks=()):
    """Var(y0 - y0_hat) from the definitions, with dense n x n matrices: y0_hat = c'y with
    c' = x0'B + z0'G Z'V^-1 (I - X B), B = (X'V^-1 X)^-1 X'V^-1; since c'X = x0',
    y0 - y0_hat = (z0'u - c'Z u) + e0 - c'e, so Var = (z0 - Z'c)' G (z0 - Z'c) + s2 (1 + c'c).
    Columns of Z0 in ``new_blocks`` (q index arrays) belong to levels new to the fit: their
    random effects are independent of the data, they are left out of the BLUP part (their
    columns of z0 enter only through the variance of the new level)."""
    X = fit.X
    Z = fit.Z.toarray()
    G = fit.G.toarray()
    s2 = fit.sigma ** 2
    V = Z @ G @ Z.T + s2 * np.eye(len(X))
    Vi = np.linalg.inv(V)
    B = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi)
    out = []
    for x0, z0 in zip(X0, Z0):
        known = z0.copy()
        extra = 0.0
        for columns in new_blocks:
            block = z0[columns]
            extra += block @ G[np.ix_(columns, columns)] @ block  # the new level's own effect
            known[columns] = 0.0
        c = x0 @ B + known @ G @ Z.T @ Vi @ (np.eye(len(X)) - X @ B)
        d = known - Z.T @ c
        out.append(d @ G @ d + s2 * (1 + c @ c) + extra)
    return np.array(out)


def test_prediction_interval_equals_dense_definition(sleep):
    new = pd.DataFrame({"Days": [0.0, 4.5, 9.0, 3.0], "Subject": ["308", "330", "372", "999"]})
    table = predict(sleep, new, interval="prediction", new_levels="population", level=0.9)
    levels = list(sleep.model.structure.blocks[0].levels)
    X0 = np.column_stack([np.ones(4), new["Days"]])
    Z0 = np.zeros((4, sleep.Z.shape[1]))
    for i, (days, subject) in enumerate(zip(new["Days"], new["Subject"])):
        if subject in levels:
            j = levels.index(subject)
            Z0[i, 2 * j:2 * j + 2] = [1.0, days]
    expected = _dense_prediction_variance(sleep, X0[:3], Z0[:3])
    np.testing.assert_allclose(table["se"].to_numpy()[:3] ** 2, expected, rtol=1e-8)
    # a new subject: the population prediction, with the full between-subject variance
    x = X0[3]
    lam = sleep.model.structure.blocks[0].lam(sleep.theta)
    g = sleep.sigma ** 2 * lam @ lam.T
    z = np.array([1.0, 3.0])
    new_subject = x @ sleep.vcov.to_numpy() @ x + z @ g @ z + sleep.sigma ** 2
    assert table["se"].iloc[3] ** 2 == pytest.approx(new_subject, rel=1e-8)
    zq = scipy.stats.norm.ppf(0.95)
    np.testing.assert_allclose(table["upper"] - table["fit"], zq * table["se"], rtol=1e-12)
    np.testing.assert_allclose(table["fit"], predict(sleep, new, new_levels="population"))
    # wider than the confidence interval, narrower than the marginal one
    confidence = predict(sleep, new, interval="confidence", new_levels="population")
    marginal = predict(sleep, new, include_random=False, interval="prediction")
    assert np.all(table["se"] > confidence["se"])
    assert np.all(marginal["se"].to_numpy()[:3] > table["se"].to_numpy()[:3])
    np.testing.assert_allclose(marginal["se"].iloc[3], table["se"].iloc[3], rtol=1e-10)


def test_prediction_interval_crossed_and_nested_by_definition(quiet_fit):
    """Two grouping factors, with a level new to the fit in one of them."""
    fit = quiet_fit("strength ~ 1 + (1 | batch/cask)", "pastes")
    data = mm.datasets.load("pastes")
    new = data.iloc[[0, 7, 30]].copy()
    new.loc[new.index[2], "cask"] = "z"  # batch known, cask:batch new
    table = predict(fit, new, interval="prediction", new_levels="population")
    structure = fit.model.structure
    starts = np.cumsum([0] + [b.q for b in structure.blocks])
    Z0 = np.zeros((3, starts[-1]))
    for b, block in enumerate(structure.blocks):
        factors = block.group.split(":")
        labels = new[factors].astype(str).agg(":".join, axis=1)
        levels = [str(level) for level in block.levels]
        for i, label in enumerate(labels):
            if label in levels:
                Z0[i, starts[b] + levels.index(label)] = 1.0
    # rows 0 and 1: both levels known; row 2: its batch is known, its cask:batch level is new
    # (no BLUP; its effect, independent of the data, adds its variance)
    expected = _dense_prediction_variance(fit, np.ones((2, 1)), Z0[:2])
    np.testing.assert_allclose(table["se"].to_numpy()[:2] ** 2, expected, rtol=1e-8)
    cask = next(b for b in structure.blocks if ":" in b.group)
    sd_cask = fit.sigma * cask.lam(fit.theta)[0, 0]
    batch_only = _dense_prediction_variance(fit, np.ones((1, 1)), Z0[2:]) + sd_cask ** 2
    assert table["se"].iloc[2] ** 2 == pytest.approx(batch_only[0], rel=1e-8)


def test_prediction_interval_missing_rows_and_fitted_data(sleep):
    new = pd.DataFrame({"Days": [1.0, np.nan], "Subject": ["308", "309"]})
    table = predict(sleep, new, interval="prediction")
    assert np.isfinite(table["se"].iloc[0]) and table.iloc[1].isna().all()
    own = predict(sleep, interval="prediction")
    np.testing.assert_allclose(own["fit"], sleep.fitted)
    again = predict(sleep, mm.datasets.load("sleepstudy"), interval="prediction")
    np.testing.assert_allclose(own["se"].to_numpy(), again["se"].to_numpy(), rtol=1e-10)
    assert np.all(own["se"] > sleep.sigma)


def test_some_grouping_factors_only(quiet_fit):
    """As lme4's re.form = ~(1 | batch): Pastes' batch-level predictions are coef()$batch
    (lme4 1.1.31: batch A 60.85398, B 59.78082)."""
    fit = quiet_fit("strength ~ 1 + (1 | batch/cask)", "pastes")
    data = mm.datasets.load("pastes")
    batch_only = predict(fit, data, include_random=["batch"])
    by_batch = pd.Series(batch_only.to_numpy(), index=data["batch"].to_numpy()).groupby(
        level=0).first()
    assert by_batch["A"] == pytest.approx(60.85398, abs=1e-5)
    assert by_batch["B"] == pytest.approx(59.78082, abs=1e-5)
    np.testing.assert_allclose(predict(fit, include_random=["batch"]), batch_only)
    both = predict(fit, data, include_random=["batch", "cask:batch"])
    np.testing.assert_allclose(both, fit.fitted, rtol=1e-12)
    # a prediction interval without the cask effects counts their variance as unknown
    wide = predict(fit, data.head(3), include_random=["batch"], interval="prediction")
    narrow = predict(fit, data.head(3), interval="prediction")
    assert np.all(wide["se"] > narrow["se"])
    with pytest.raises(ValueError, match="'cask'.*'cask:batch'"):
        predict(fit, data, include_random=["cask"])
    with pytest.raises(ValueError, match="include_random"):
        predict(fit, data, include_random=5)


MISSING_GROUP = load_reference("predict_missing_group")


@pytest.mark.parametrize("case", MISSING_GROUP, ids=[c["formula"] for c in MISSING_GROUP])
def test_missing_or_new_grouping_level_as_lme4(case):
    """A missing grouping value is an unknown level, as in lme4: an error by default, the
    population prediction with new levels allowed (predict_missing_group.R)."""
    fit = mm.lmer(case["formula"], mm.datasets.load("sleepstudy"))
    new = pd.DataFrame({"Days": case["days"], "Subject": case["subject"]},
                       index=[f"row{i}" for i in range(len(case["days"]))])
    assert case["error_without_new_levels"]
    with pytest.raises(mm.DataError, match=r"missing value of the grouping factor 'Subject' "
                                           r"\(rows 'row0', 'row2'\)"):
        fit.predict(new)
    np.testing.assert_allclose(fit.predict(new, new_levels="population"),
                               case["allow_new_levels"], rtol=1e-7)
    nan = fit.predict(new, new_levels="nan").to_numpy()
    assert np.isnan(nan[[0, 2, 3]]).all() and nan[1] == pytest.approx(case["allow_new_levels"][1],
                                                                       rel=1e-7)
    numeric_codes = new.assign(Subject=pd.to_numeric(new.Subject))  # NaN in a float column
    np.testing.assert_allclose(fit.predict(numeric_codes, new_levels="population"),
                               case["allow_new_levels"], rtol=1e-7)


def test_messages_show_plain_values(sleep):
    """Levels in messages are shown as the user wrote them, not as numpy scalars."""
    data = mm.datasets.load("ergostool")
    fit = mm.lmer("effort ~ Type + (1 | Subject)", data)
    new = data.head(2).assign(Type=["T1", "T9"])
    with pytest.raises(mm.DataError) as caught:
        fit.predict(new)
    assert "'T9'" in str(caught.value) and "np.str_" not in str(caught.value)
    with pytest.raises(mm.DataError) as caught:
        sleep.predict(pd.DataFrame({"Days": [1], "Subject": ["S999"]}))
    assert "'S999'" in str(caught.value) and "np." not in str(caught.value)


def test_new_data_without_the_grouping_column(sleep):
    new = pd.DataFrame({"Days": [0.0, 5.0]})
    with pytest.raises(mm.DataError, match="no column 'Subject'.*include_random=False"):
        sleep.predict(new)
    np.testing.assert_allclose(sleep.predict(new, include_random=False),
                               sleep.beta[0] + sleep.beta[1] * new.Days.to_numpy())


def test_random_part_of_some_factors_needs_only_their_columns():
    """``include_random=["g"]`` predicts with g's conditional modes, as lme4's ``re.form = ~
    (1 | g)``: newdata needs no column of h (the prediction interval's variance of h's
    effects is the marginal one, whatever its level); the values and the intervals are those
    with h present."""
    rng = np.random.default_rng(0)
    n = 120
    data = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 6, n).astype(str),
                         "h": rng.integers(0, 4, n).astype(str)})
    data["y"] = (data["x"] + rng.normal(size=6)[data["g"].astype(int)]
                 + rng.normal(size=4)[data["h"].astype(int)] + rng.normal(size=n))
    fit = mm.lmer("y ~ x + (1 | g) + (1 | h)", data)
    new = data.iloc[:5]
    for interval in (None, "prediction", "confidence"):
        ours = fit.predict(new.drop(columns="h"), include_random=["g"], interval=interval)
        theirs = fit.predict(new, include_random=["g"], interval=interval)
        np.testing.assert_allclose(np.asarray(ours, dtype=float),
                                   np.asarray(theirs, dtype=float), rtol=1e-12)
    with pytest.raises(mm.DataError, match="no column 'h'"):
        fit.predict(new.drop(columns="h"), include_random=["h"])


def test_confidence_intervals_with_random_effects_are_henderson_s():
    """A confidence interval centred on X b + Z u has the prediction error variance of that
    conditional mean, [x0; z0]' C [x0; z0] with C the inverse of Henderson's mixed-model
    equations (R = sigma^2 I here), computed densely; without the random effects, x0' V_b x0."""
    import scipy.sparse as sp

    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    X, Z = np.asarray(fit.X), (fit.Z.toarray() if sp.issparse(fit.Z) else np.asarray(fit.Z))
    G = fit.G.toarray() if sp.issparse(fit.G) else np.asarray(fit.G)
    r = fit.sigma ** 2
    C = np.linalg.inv(np.block([[X.T @ X / r, X.T @ Z / r],
                                [Z.T @ X / r, Z.T @ Z / r + np.linalg.inv(G)]]))
    rows = [0, 15, 77, 179]
    W = np.hstack([X[rows], Z[rows]])
    expected = np.sqrt(np.einsum("ij,jk,ik->i", W, C, W))
    for table in (fit.predict(data.iloc[rows], interval="confidence"),
                  fit.predict(interval="confidence").iloc[rows]):
        np.testing.assert_allclose(table["se"].to_numpy(), expected, rtol=1e-8)
    population = fit.predict(data.iloc[rows], interval="confidence", include_random=False)
    vcov = fit.vcov.to_numpy()
    np.testing.assert_allclose(population["se"].to_numpy(),
                               np.sqrt(np.einsum("ij,jk,ik->i", X[rows], vcov, X[rows])),
                               rtol=1e-10)
    new = data.iloc[[0]].assign(Subject="new")  # a new level: its random effect's variance too
    table = fit.predict(new, interval="confidence", new_levels="population")
    lam_z = fit.model.structure.blocks[0].lam(fit.theta).T @ np.array([1.0, 0.0])
    assert table["se"].iloc[0] == pytest.approx(
        np.sqrt(population["se"].iloc[0] ** 2 + r * lam_z @ lam_z), rel=1e-8)


def test_a_grouping_column_all_missing_in_new_data():
    """Every value of a grouping factor missing: its random part is unknown (population, NaN,
    or the error naming the rows), as with one missing value (was an IndexError)."""
    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    for missing in (np.nan, None):
        new = pd.DataFrame({"Days": [1.0, 2.0], "Subject": [missing, missing]})
        np.testing.assert_allclose(fit.predict(new, new_levels="population").to_numpy(),
                                   fit.fixef.iloc[0] + fit.fixef.iloc[1] * new.Days, rtol=1e-12)
        assert fit.predict(new, new_levels="nan").isna().all()
        with pytest.raises(mm.DataError, match="missing value of the grouping factor 'Subject'"):
            fit.predict(new)


def test_new_levels_as_nan_give_no_warning():
    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predicted = fit.predict(pd.DataFrame({"Days": [1.0, 2.0], "Subject": ["308", "new"]}),
                                new_levels="nan")
    assert np.isfinite(predicted.iloc[0]) and np.isnan(predicted.iloc[1])


def test_new_data_as_a_dict_of_single_values_or_of_unequal_columns():
    """A dict of single values is one row, as R's data.frame(Days = 1, Subject = "308");
    columns of different lengths are a DataError that lists them (was pandas' message)."""
    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    one = fit.predict({"Days": 1, "Subject": "308"})
    assert one.tolist() == pytest.approx(
        fit.predict(pd.DataFrame({"Days": [1], "Subject": ["308"]})).tolist(), rel=1e-14)
    with pytest.raises(mm.DataError, match=r"different lengths \(Days: 2, Subject: 3\)"):
        fit.predict({"Days": [1, 2], "Subject": ["308", "309", "310"]})


def test_contrast_tests_of_degenerate_matrices():
    """test(L): a zero L is a ValueError (it gave F = NaN with 0 df), a rank-deficient one a
    FitWarning (as lmerTest's contest warns), tested on its rank."""
    fit = mm.lmer("distance ~ age * Sex + (age | Subject)", mm.datasets.load("orthodont"))
    with pytest.raises(ValueError, match="no estimable row"):
        fit.test([[0, 0, 0, 0]])
    with pytest.warns(mm.FitWarning, match="rank 1, less than its 2 rows"):
        result = fit.test([[0, 1, 0, 0], [0, 2, 0, 0]])
    assert result["num_df"] == 1
    assert result["F"] == pytest.approx(fit.test([[0, 1, 0, 0]])["F"], rel=1e-10)
    # Kenward-Roger tests the same hypothesis on L's independent rows (it raised numpy's
    # LinAlgError): three rows of rank 2 give the two rows' test, any rhs that fits included
    L3, rhs3 = [[0, 1, 0, 0], [0, 0, 0, 1], [0, 1, 0, 1]], [0.5, -0.1, 0.4]
    with pytest.warns(mm.FitWarning, match="rank 2, less than its 3 rows"):
        both = fit.test(L3, ddf="kenward-roger", rhs=rhs3)
    two = fit.test(L3[:2], ddf="kenward-roger", rhs=rhs3[:2])
    assert both["num_df"] == two["num_df"] == 2
    for key in ("F", "den_df", "p"):
        assert both[key] == pytest.approx(two[key], rel=1e-9)
    # an rhs that contradicts itself (b = 0 and 2 b = 5) is refused, on every method
    for ddf in ("satterthwaite", "kenward-roger", "residual"):
        with pytest.raises(ValueError, match="rhs does not fit L"):
            fit.test([[0, 1, 0, 0], [0, 2, 0, 0]], ddf=ddf, rhs=[0, 5])


def test_simulations_beyond_memory_say_so():
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
    with pytest.raises(MemoryError, match="simulate fewer at a time"):
        fit.simulate(10 ** 12)
