"""Stateful transforms (poly, scale, center, bs...) on data with missing values: as R's model
frame, every term is evaluated on all the rows before the incomplete ones are dropped, so the
transforms' state comes from all the rows; predictions, refits and hypothesis contrasts keep it
(tests/reference/transforms_missing.json, made by transforms_missing.R)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference

import mixedmodels as mm
from mixedmodels.design.build import build_design
from mixedmodels.errors import DataError
from mixedmodels.formula.parse import parse_formula

REFERENCE = load_reference("transforms_missing")
FITTED = [case for case in REFERENCE["cases"] if "error" not in case]
NEW = pd.DataFrame(REFERENCE["new"])
# lme4 reaches a slightly different optimum for this ill-conditioned model (criteria within
# 1e-8): its random-effects parameters and modes are compared more loosely
LOOSE = "y ~ Days + (poly(Days, 2) | Subject)"


def sleepstudy() -> pd.DataFrame:
    data = mm.datasets.load("sleepstudy")
    first = sorted(data.Subject.unique())[:9]
    return data.assign(half=np.where(data.Subject.isin(first), "first", "second"))


def data_for(name: str) -> pd.DataFrame:
    """The versions of sleepstudy transforms_missing.R fits: y (Reaction missing for
    Days >= 8), x (Days missing at some rows) and g (Subject missing at some rows)."""
    data = sleepstudy()
    if name == "y":
        return data.assign(y=data.Reaction.where(data.Days < 8))
    if name == "x":
        return data.assign(x=data.Days.astype(float).mask(data.index.isin(REFERENCE["x_missing"])))
    return data.assign(g=data.Subject.mask(data.index.isin(REFERENCE["g_missing"])))


def quiet_lmer(formula: str, data: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, data)


@pytest.fixture(scope="module")
def fits():
    return {case["formula"]: quiet_lmer(case["formula"], data_for(case["data"]))
            for case in FITTED}


@pytest.mark.parametrize("case", FITTED, ids=[case["formula"] for case in FITTED])
def test_matches_lme4(fits, case):
    """The basis comes from all the rows: lme4's estimates, names, criterion and theta."""
    fit = fits[case["formula"]]
    assert fit.nobs == case["nobs"]
    assert fit.objective == pytest.approx(case["reml_criterion"], rel=1e-10)
    assert list(fit.fixef.index) == list(case["fixef"])
    se = np.array(list(case["se"].values()))
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(case["fixef"].values()), rtol=0,
                               atol=1e-4 * se.min())
    np.testing.assert_allclose(fit.stderr.to_numpy(), se, rtol=1e-4)
    loose = case["formula"] == LOOSE
    np.testing.assert_allclose(fit.theta, case["theta"], rtol=1e-3 if loose else 1e-5)


@pytest.mark.parametrize("case", FITTED, ids=[case["formula"] for case in FITTED])
def test_anova_matches_lmertest(fits, case):
    fit = fits[case["formula"]]
    for kind in ("type1", "type3"):
        table = fit.anova(type=int(kind[-1]))
        rows = [row for row in case["anova"][kind] if row["F"] != "NA"]  # aliased: no test
        assert list(table.index) == [row["term"] for row in rows]
        for row in rows:
            assert table.loc[row["term"], "num_df"] == row["numdf"]
            assert table.loc[row["term"], "F"] == pytest.approx(
                row["F"], rel=1e-4 if case["formula"] == LOOSE else 1e-6)
            assert table.loc[row["term"], "den_df"] == pytest.approx(row["dendf"], rel=1e-4)


PREDICTED = [case for case in FITTED if "predict_new" in case]


@pytest.mark.parametrize("case", PREDICTED, ids=[case["formula"] for case in PREDICTED])
def test_predictions_apply_the_fit_state(fits, case):
    """New data are transformed with the state learnt from the fit's data (lme4's predvars),
    not with the new rows' own mean or basis."""
    fit = fits[case["formula"]]
    np.testing.assert_allclose(fit.predict(NEW, include_random=False),
                               case["predict_new_population"], rtol=1e-7)
    np.testing.assert_allclose(fit.predict(NEW), case["predict_new"],
                               rtol=1e-5 if case["formula"] == LOOSE else 1e-7)


def test_offset_predictions_apply_the_fit_state(fits):
    """An offset's transform keeps the fit's centre and scale on new data too (R's predict
    evaluates offset(scale(Days)) anew on the new rows)."""
    fit = fits["Reaction ~ x + offset(scale(Days)) + (1 | Subject)"]
    offset = (NEW.Days.to_numpy() - 4.5) / np.std(np.arange(10.0).repeat(18), ddof=1)
    expected = fit.fixef["(Intercept)"] + fit.fixef["x"] * NEW.x.to_numpy() + offset
    np.testing.assert_allclose(fit.predict(NEW, include_random=False), expected, rtol=1e-12)


def test_poly_refuses_missing_values_of_its_variable_as_r_does():
    case = next(case for case in REFERENCE["cases"] if "error" in case)
    assert "missing values are not allowed in 'poly'" in case["error"]
    with pytest.raises(DataError) as info:
        quiet_lmer(case["formula"], data_for(case["data"]))
    message = str(info.value)
    assert "poly(x, 2): column 'x' has 4 missing value(s) (rows 2, 49, 99, 150)" in message
    assert "dropna(subset=['x'])" in message and "raw = TRUE" in message
    raw = quiet_lmer("Reaction ~ poly(x, 2, raw = TRUE) + (1 | Subject)", data_for("x"))
    assert raw.nobs == 176


# Every stateful transform formulaic offers, in the fixed part and in a random-effects term:
# the design of data with missing responses (on Days 1 and 2, and from Days 5 on for 12 of the
# 18 subjects) is that of the complete data, restricted to the rows used: the state does not
# depend on which responses are missing (learnt from the rows used, the mean, the knots and
# the basis would move). Raw polynomials and a given centre have no state: the same anyway.
TRANSFORMS = ["poly(Days, 2)", "scale(Days)", "center(Days)", "standardize(Days)",
              "bs(Days, df = 4)", "bs(Days, df = 5, degree = 2)", "cr(Days, df = 3)",
              "cs(Days, df = 4)", "cc(Days, df = 4)", "poly(Days, 3, raw = TRUE)",
              "scale(Days, center = 2, scale = FALSE)"]


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("where", ["fixed", "random"])
def test_every_transform_learns_from_all_rows(transform, where):
    data = sleepstudy()
    late = (data.Days >= 5) & data.Subject.isin(sorted(data.Subject.unique())[:12])
    data = data.assign(Reaction=data.Reaction.mask(late | data.Days.isin([1, 2])))
    formula = (f"Reaction ~ {transform} + (1 | Subject)" if where == "fixed"
               else f"Reaction ~ 1 + (0 + {transform} | Subject)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        missing = build_design(parse_formula(formula), data, nobs_checks="ignore")
        complete = build_design(parse_formula(formula), data.fillna({"Reaction": 0.0}))
    rows = complete.rows.get_indexer(missing.rows)
    np.testing.assert_array_equal(missing.X, complete.X[rows])
    np.testing.assert_array_equal(missing.terms[0].values, complete.terms[0].values[rows])
    assert missing.n == 84


@pytest.mark.parametrize("transform, center, scale", [
    ("scale(x)", True, True), ("center(x)", True, False),
    ("standardize(x)", True, True), ("scale(x, center = False)", False, True)])
def test_scale_leaves_missing_values_of_its_variable_out_as_r_does(transform, center, scale):
    """R's scale: the mean and the sd of the values that are not missing; their rows are
    dropped with the other incomplete rows."""
    data = data_for("x")
    with pytest.warns(mm.DataWarning, match="dropped 4 of 180"):
        design = build_design(parse_formula(f"Reaction ~ {transform} + (1 | Subject)"), data)
    x = data.x.dropna().to_numpy()
    ddof = 0 if transform.startswith("standardize") else 1
    centred = x - x.mean() if center else x
    expected = centred / np.sqrt(np.sum(centred ** 2) / (len(x) - ddof)) if scale else centred
    np.testing.assert_allclose(design.X[:, 1], expected, rtol=1e-12)


def test_rows_missing_in_the_grouping_factor_keep_the_basis():
    fit = quiet_lmer("Reaction ~ poly(Days, 2) + (1 | g)", data_for("g"))
    complete = quiet_lmer("Reaction ~ poly(Days, 2) + (1 | Subject)", sleepstudy())
    np.testing.assert_array_equal(fit.X, complete.X[fit.model.design.rows])


def test_refits_keep_the_basis(fits):
    """The copy for workers and group deletion refit with the fit's basis, as R's update with
    subset (the model frame is evaluated before the subset is taken)."""
    fit = fits["y ~ poly(Days, 2) + Days + (1 | Subject)"]
    copy = fit.model.rebuild().fit()
    np.testing.assert_array_equal(copy.X, fit.X)
    assert copy.objective == pytest.approx(fit.objective, rel=1e-12)
    without = fit.model.rebuild(rows=fit.model.design.frame.Subject != "308")
    keep = (fit.model.design.frame.Subject != "308").to_numpy()
    np.testing.assert_array_equal(without.design.X, fit.X[keep])
    deletion = fit.influence_groups("Subject", progress=False)
    np.testing.assert_allclose(deletion.loc["308", list(fit.x_names)].to_numpy(dtype=float),
                               without.fit().beta, rtol=1e-10)


def test_pickled_fit_predicts_with_the_fit_state(fits):
    fit = fits["y ~ bs(Days, df = 4) + (1 | Subject)"]
    copy = pickle.loads(pickle.dumps(fit))
    np.testing.assert_array_equal(copy.predict(NEW), fit.predict(NEW))


def test_level_seen_only_in_dropped_rows_is_no_level():
    """R's drop.unused.levels, for factors made in the formula too (factor(x), C(x, coding)):
    the terms are evaluated on all the rows, but a level seen only in dropped rows (Days 9)
    is no column."""
    data = sleepstudy().assign(Reaction=lambda f: f.Reaction.where(f.Days < 9))
    for term, names in [("factor(Days)", [f"factor(Days){k}" for k in range(1, 9)]),
                        ("C(factor(Days), contr.sum)",
                         [f"C(factor(Days), contr.sum){k}" for k in range(1, 9)])]:
        fit = quiet_lmer(f"Reaction ~ {term} + (1 | Subject)", data)
        assert list(fit.x_names[1:]) == names and fit.model.design.dropped == ()
    banded = data.assign(band=pd.Categorical(np.where(data.Days < 9, "low", "top"),
                                             ["low", "top", "none"]))
    # one level left, "low": no factor, as R's "contrasts can be applied only to factors
    # with 2 or more levels"
    with pytest.raises(mm.DataError, match=r"factor 'C\(band\)' .* single level \('low'\)"):
        quiet_lmer("Reaction ~ Days + C(band) + (1 | Subject)", banded)
