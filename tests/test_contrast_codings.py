"""Type I, II and III ANOVA tables and their contrasts against lmerTest, for factors coded by
any of R's codings (``C(x, contr.sum)``...) and formulaic's (``C(x, Sum)``...), with and
without an intercept (tests/reference/contrast_codings.json, made by contrast_codings.R).

lmerTest's contrast rows are matched exactly, not only their span: the Satterthwaite df of a
multi-df test depends on the rows (its F does not).
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.inference import contrasts

HERE = Path(__file__).parent / "reference"
REFERENCE = json.loads((HERE / "contrast_codings.json").read_text())
MODELS = {model["id"]: model for model in REFERENCE["models"]}
DATA = {"split_plot": lambda: pd.read_csv(HERE / "cases" / "split_plot_noint.csv"),
        "sleepstudy_period": lambda: pd.read_csv(HERE / "cases" / "sleepstudy_period.csv"),
        "sim": lambda: pd.DataFrame(REFERENCE["data"]["sim"]),
        "sim_empty_cell": lambda: pd.DataFrame(REFERENCE["data"]["sim_empty_cell"])}
DDF = {"Satterthwaite": "satterthwaite", "Kenward-Roger": "kenward-roger"}
TABLES = [(model_id, key) for model_id, model in MODELS.items() for key in model["tables"]]
BUILDERS = {"type1": contrasts.type1_contrasts, "type2": contrasts.type2_contrasts,
            "type3": contrasts.type3_contrasts}
# formulaic's spellings of R's codings: the same matrices, the same names after the coding's
FORMULAIC = {"contr.sum": "Sum", "contr.helmert": "Helmert", "contr.poly": "Poly"}
# the same coding as R's contr.SAS and contr.sum, columns named by level and by key
SAS_AS_TREATMENT = "Treatment(reference = 'mid')"  # as R spells keyword arguments
SUM_AS_DICT = "{'e': [1, 0, -1], 'l': [0, 1, -1]}"

_FITS: dict = {}


def _fit(formula: str, data: str, reml: bool):
    key = (formula, data, reml)
    if key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = mm.lmer(formula, DATA[data](), reml=reml)
    return _FITS[key]


def _reference_fit(model_id: str):
    model = MODELS[model_id]
    return _fit(model["formula"], model["data"], model["REML"])


def _assert_table(fit, key: str, rows: list[dict], rename=lambda term: term):
    kind, ddf = key.split("_")
    table = fit.anova(DDF[ddf], type=int(kind[-1]))
    assert list(table.index) == [rename(row["term"]) for row in rows]
    for row in rows:
        ours = table.loc[rename(row["term"])]
        assert ours["num_df"] == row["numdf"]
        assert ours["F"] == pytest.approx(row["F"], rel=1e-4)
        assert ours["den_df"] == pytest.approx(row["dendf"], rel=1e-3)
        assert ours["p"] == pytest.approx(row["p"], rel=2e-3, abs=1e-10)


@pytest.mark.parametrize("model_id", MODELS)
def test_fixed_effects_named_as_lme4(model_id):
    fit = _reference_fit(model_id)
    assert list(fit.x_names) == MODELS[model_id]["x_names"]
    np.testing.assert_allclose(fit.beta, MODELS[model_id]["fixef"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("model_id, key", TABLES, ids=[f"{m}-{k}" for m, k in TABLES])
def test_anova_matches_lmertest(model_id, key):
    _assert_table(_reference_fit(model_id), key, MODELS[model_id]["tables"][key])


@pytest.mark.parametrize("model_id", MODELS)
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_contrast_rows_are_lmertests(model_id, kind):
    """The rows themselves (lmerTest's Doolittle rows for types I and II, and for type III
    with one term; mapped to the fit's coding for type III), to rounding."""
    design = _reference_fit(model_id).model.design
    ours = BUILDERS[kind](design.formula.fixed, design.frame, design.x_names)
    theirs = MODELS[model_id]["contrasts"][kind]
    assert list(ours) == list(theirs)
    for term, rows in theirs.items():
        np.testing.assert_allclose(ours[term], np.array(rows, dtype=float), rtol=0, atol=1e-8,
                                   err_msg=f"{kind} {term}")


def test_split_plot_without_intercept_type2_dendf():
    """The Satterthwaite df of a multi-df type II test depends on the rows' scaling."""
    table = _reference_fit("split_plot_noint_ml").anova(type=2)
    assert table.loc["a", "den_df"] == pytest.approx(6.1062, abs=1e-4)
    assert table.loc["a", "F"] == pytest.approx(131.701, rel=1e-5)
    assert table.loc["a", "p"] == pytest.approx(6.183e-06, rel=1e-3)


def test_sum_coded_type3():
    table = _fit("Reaction ~ C(period, Sum) + Days + (1 | Subject)", "sleepstudy_period",
                 True).anova(type=3)
    assert list(table.index) == ["C(period, Sum)", "Days"]
    np.testing.assert_allclose(table["F"], [0.0112, 18.377], rtol=5e-3)
    np.testing.assert_array_equal(table["num_df"], [2, 1])
    np.testing.assert_allclose(table["den_df"], [159, 159], rtol=1e-6)
    np.testing.assert_allclose(table["p"], [0.9889, 3.132e-05], rtol=1e-3)


SPELLINGS = [(model_id, r_name, ours) for model_id, model in MODELS.items()
             for r_name, ours in FORMULAIC.items() if r_name in model["formula"]]


@pytest.mark.parametrize("model_id, r_name, ours", SPELLINGS,
                         ids=[f"{m}-{o}" for m, _, o in SPELLINGS])
def test_formulaic_spelling(model_id, r_name, ours):
    """C(x, Sum) is C(x, contr.sum) and so on: the same estimates and tables, the names of
    the columns and terms with the coding's name replaced."""
    model = MODELS[model_id]
    fit = _fit(model["formula"].replace(r_name, ours), model["data"], model["REML"])
    assert list(fit.x_names) == [name.replace(r_name, ours) for name in model["x_names"]]
    np.testing.assert_allclose(fit.beta, model["fixef"], rtol=1e-6, atol=1e-6)
    for key, rows in model["tables"].items():
        _assert_table(fit, key, rows, lambda term: term.replace(r_name, ours))


@pytest.mark.parametrize("model_id, r_name, ours, first", [
    ("period_sas_by_days", "contr.SAS", SAS_AS_TREATMENT, "early"),
    ("period_sum", "contr.sum", SUM_AS_DICT, "e"),
    ("period_sum", "contr.sum", "[[1, 0], [0, 1], [-1, -1]]", "1"),
], ids=["treatment-reference", "custom-dict", "custom-rows"])
def test_same_coding_written_otherwise(model_id, r_name, ours, first):
    """Treatment against the last level is contr.SAS; a custom matrix [[1, 0], [0, 1],
    [-1, -1]] is contr.sum: the estimates and tables are R's; the first column is named by
    its level (treatment), the dict's key or its number (custom)."""
    model = MODELS[model_id]
    fit = _fit(model["formula"].replace(r_name, ours), model["data"], model["REML"])
    named = ours.replace("'", '"')  # strings as R deparses them, in double quotes
    assert fit.x_names[1] == f"C(period, {named}){first}"
    np.testing.assert_allclose(fit.beta, model["fixef"], rtol=1e-6, atol=1e-6)
    for key, rows in model["tables"].items():
        _assert_table(fit, key, rows, lambda term: term.replace(r_name, named))


@pytest.mark.parametrize("coding", ["Diff", "Helmert(scale = TRUE)", "contr.diff"])
def test_type3_does_not_depend_on_the_coding(coding):
    """Type III contrasts are mapped from the treatment coding: the same tests for any
    coding that spans the same columns."""
    model = MODELS["period_sum"]
    fit = _fit(model["formula"].replace("contr.sum", coding), model["data"], True)
    _assert_table(fit, "type3_Satterthwaite", model["tables"]["type3_Satterthwaite"],
                  lambda term: term.replace("contr.sum", coding))


def test_column_names_of_formulaic_spellings():
    data = DATA["sleepstudy_period"]()
    names = {coding: mm.lmer(f"Reaction ~ C(period, {coding}) + (1 | Subject)", data).x_names[1:]
             for coding in ["Sum", "Helmert", "Poly", "Treatment", "Diff", "contr.treatment",
                            "contr.SAS"]}
    assert names == {
        "Sum": ("C(period, Sum)1", "C(period, Sum)2"),
        "Helmert": ("C(period, Helmert)1", "C(period, Helmert)2"),
        "Poly": ("C(period, Poly).L", "C(period, Poly).Q"),
        "Treatment": ("C(period, Treatment)late", "C(period, Treatment)mid"),
        "Diff": ("C(period, Diff)D.late", "C(period, Diff)D.mid"),
        "contr.treatment": ("C(period, contr.treatment)2", "C(period, contr.treatment)3"),
        "contr.SAS": ("C(period, contr.SAS)1", "C(period, contr.SAS)2")}


@pytest.mark.parametrize("coding", ["contr.treatment", "contr.SAS", "Sum", "Helmert",
                                    "Treatment('mid')", "[[1, 0], [0, 1], [-1, -1]]"])
def test_coded_fit_pickles(coding):
    """A fit travels pickled to the bootstrap's processes: its codings pickle too."""
    fit = _fit(f"Reaction ~ C(period, {coding}) + Days + (1 | Subject)", "sleepstudy_period",
               True)
    copy = pickle.loads(pickle.dumps(fit))
    new = DATA["sleepstudy_period"]().iloc[::7]
    np.testing.assert_array_equal(copy.predict(new), fit.predict(new))


def test_prediction_on_new_data_with_fewer_levels():
    fit = _reference_fit("period_sum")
    early = DATA["sleepstudy_period"]().query("period == 'early'")
    np.testing.assert_allclose(fit.predict(early), fit.fitted[early.index], rtol=1e-12)


@pytest.mark.parametrize("term, message", [
    ("C(period, Deviation)", r"in C\(period, Deviation\): unknown coding 'Deviation'; use "
                             r"Treatment.*contr\.sum"),
    ("C(period, contrasts=Foo)", r"in C\(period, contrasts=Foo\): unknown coding 'Foo'"),
    ("C(period, contr.foo)", r"in C\(period, contr\.foo\): unknown coding contr\.foo; use "
                             r"Treatment.*contr\.sum"),
    ("C(period, 'contr.sum')", r"in C\(period, 'contr\.sum'\): .*without quotes.*contr\.sum"),
    ("C(period, 3)", r"in C\(period, 3\): unknown coding 3; use Treatment"),
    ("C(Days, Sum)", r"in C\(Days, Sum\): Days is numeric.*C\(factor\(Days\), \.\.\.\)"),
    ("C(Days, contr.sum)", r"in C\(Days, contr\.sum\): Days is numeric"),
    ("C(period, [[1, 0], [0, 1]])", r"the custom coding of period needs one row per level "
                                    r"\(3: early, late, mid\), but the matrix has 2 rows"),
    ("C(period, [1, 0, -1])", r"in C\(period, \[1, 0, -1\]\): a custom coding is a matrix"),
    ("C(period, [['a', 'b'], ['c', 'd'], ['e', 'f']])", r"a custom coding is a matrix of "
                                                        r"finite numbers"),
])
def test_bad_coding_is_a_formula_error(term, message):
    with pytest.raises(mm.FormulaError, match=message):
        mm.lmer(f"Reaction ~ {term} + Days + (1 | Subject)", DATA["sleepstudy_period"]())
