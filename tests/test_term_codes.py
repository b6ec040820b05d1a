"""R's rule for coding a term's factors (``design.term_codes``): the columns of model matrices
whose terms' margins are not all in the model, and lme4/lmerTest fits of such models, against
tests/reference/term_codes.json (made by term_codes.R, with the data it wrote)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.design.encoding import fast_encoding
from mixedmodels.design.materialize import formula_matrix
from mixedmodels.design.names import r_column_names
from mixedmodels.design.term_codes import contrast_codes
from mixedmodels.formula.parse import parse_formula

HERE = Path(__file__).parent / "reference"
REFERENCE = json.loads((HERE / "term_codes.json").read_text())
DATA = pd.read_csv(HERE / "data" / "term_codes.csv")
DATA["o"] = pd.Categorical(DATA["b"], categories=["x", "y", "z"], ordered=True)
DATA["lg"] = DATA["x"] > 0


def _fixed(formula: str) -> str:
    """The fixed part of ``y <formula> + (1 | g)`` as the package reads it (R's order of
    terms and of the factors within them)."""
    return parse_formula(f"y {formula} + (1 | g)").fixed


@pytest.mark.parametrize("record", REFERENCE["model_matrix"],
                         ids=[r["formula"] for r in REFERENCE["model_matrix"]])
def test_model_matrix_columns_are_r_s(record):
    """Both ways a model matrix is built (plain columns without formulaic, anything else with
    it) give R's columns, in R's order, and R's rank."""
    fixed = _fixed(record["formula"])
    encoding = fast_encoding(fixed, DATA)
    assert encoding is not None
    assert list(encoding.names) == record["columns"]
    X = encoding.matrix(DATA)
    assert np.linalg.matrix_rank(X) == record["rank"]
    matrix = formula_matrix(fixed, DATA)
    assert list(r_column_names(matrix.columns)) == record["columns"]
    np.testing.assert_array_equal(np.asarray(matrix, dtype=float), X)


def _fit(formula: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, DATA)


@pytest.mark.parametrize("record", REFERENCE["fits"], ids=[r["formula"] for r in REFERENCE["fits"]])
def test_fit_matches_lme4(record):
    """lme4's coefficients (the aliased column dropped as lme4 drops it), random-effects
    columns and criterion, lmerTest's type I, II and III F tests (their numerator df count the
    columns kept), and predictions for new data, a new level among them."""
    fit = _fit(record["formula"])
    # random-effects columns that are collinear (a:c's five on four cells) make the fit
    # singular; lme4 stops there up to 5e-4 above the optimum (ours is below, never above)
    close = 1e-2 if fit.is_singular else 1e-4
    assert fit.objective <= record["criterion"] + 1e-8 * abs(record["criterion"])
    assert fit.objective == pytest.approx(record["criterion"], abs=1e-3 if fit.is_singular
                                          else 1e-8 * abs(record["criterion"]))
    assert list(fit.fixef.index) == list(record["fixef"])
    se = np.array(list(record["se"].values()))
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(record["fixef"].values()),
                               rtol=0, atol=close * se.min())
    np.testing.assert_allclose(fit.stderr.to_numpy(), se, rtol=close)
    columns = record["ranef_columns"]  # a single name is a string in the JSON
    assert list(fit.ranef["g"].columns) == ([columns] if isinstance(columns, str) else columns)
    for kind, rows in record["anova"].items():
        table = fit.anova(type=int(kind))
        assert list(table.index) == [row["term"] for row in rows], kind
        for row in rows:
            assert table.loc[row["term"], "num_df"] == row["numdf"]
            assert table.loc[row["term"], "F"] == pytest.approx(row["F"], rel=close)
            if not fit.is_singular:  # else the covariance parameters are not identified:
                # the Satterthwaite df of (a:c | g) depend on where on its flat ridge a fit
                # stops
                assert table.loc[row["term"], "den_df"] == pytest.approx(row["dendf"],
                                                                         rel=1e-3)
    if record["predict"] is not None:  # None: R cannot (see term_codes.R)
        new = DATA.iloc[[0, 49, 99, 149, 199]].assign(g=["g01", "g05", "new", "g12", "g24"])
        np.testing.assert_allclose(fit.predict(new, new_levels="population"),
                                   record["predict"], rtol=close / 10)


def test_the_rule_on_its_own():
    """The rule as written in R's TermCode: containment in an earlier term (not equality),
    numeric factors counted, and the first factor by indicators without an intercept."""
    categorical = frozenset({"a", "b", "c"})
    assert contrast_codes(((), ("a", "b")), categorical) == ((), (False, False))
    assert contrast_codes(((), ("a",), ("a", "b")), categorical) == ((), (True,), (False, True))
    assert contrast_codes(((), ("x", "z"), ("x", "a")), categorical) == (
        (), (None, None), (None, True))  # {x} is in x:z
    assert contrast_codes((("b",), ("a",)), categorical) == ((False,), (True,))
    assert contrast_codes((("x",), ("a", "b")), categorical) == ((None,), (False, False))
    assert contrast_codes(((), ("a", "b"), ("b", "c"), ("a", "c")), categorical) == (
        (), (False, False), (False, True), (True, True))


@pytest.mark.parametrize("record", REFERENCE["random"],
                         ids=[r["formula"] for r in REFERENCE["random"]])
def test_random_effects_terms_match_lme4(record):
    """A random-effects term's interactions have R's order of factors (``cp:x``, ``x:alo``,
    also after ``||`` splits the term) in its columns and in lmerTest's ranova rows; nested
    grouping factors have lme4's names (``c:(a:g)`` of ``g/a/c``, ``a:c:g`` of ``g/a:c``)."""
    fit = _fit(record["formula"])
    assert fit.objective == pytest.approx(record["criterion"], rel=1e-8)
    columns, groups = record["ranef_columns"], record["groups"]  # a string when one in R
    assert list(fit.ranef["g"].columns) == ([columns] if isinstance(columns, str) else columns)
    assert list(fit.ranef) == ([groups] if isinstance(groups, str) else groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = fit.ranova()
    assert list(table.index[1:]) == [row["term"] for row in record["ranova"]]
    for row in record["ranova"]:
        assert table.loc[row["term"], "Df"] == row["Df"]
        # reduced fits are singular: lme4 stops at most 4e-5 below our log-likelihood
        assert table.loc[row["term"], "LRT"] <= row["LRT"] + 1e-6
        assert table.loc[row["term"], "LRT"] == pytest.approx(row["LRT"], abs=1e-4)


def test_coding_functions_called_with_their_arguments():
    """R's contr.* called with n (a number of levels, or their labels): the matrix R returns,
    with its column names; wrong arguments are FormulaErrors that say what R's take."""
    by_labels = _fit('y ~ C(b, contr.treatment(["x", "y", "z"])) + (1 | g)')
    assert list(by_labels.fixef.index)[1:] == ['C(b, contr.treatment(["x", "y", "z"]))y',
                                               'C(b, contr.treatment(["x", "y", "z"]))z']
    bare = _fit("y ~ C(b, contr.treatment) + (1 | g)")
    np.testing.assert_array_equal(by_labels.model.design.X, bare.model.design.X)
    with pytest.raises(mm.FormulaError, match="one row per level"):
        _fit("y ~ C(b, contr.treatment(4)) + (1 | g)")
    with pytest.raises(mm.FormulaError, match="position of the reference level, 1 to 3"):
        _fit("y ~ C(b, contr.treatment(3, base = 5)) + (1 | g)")
    with pytest.raises(mm.FormulaError, match=r"contr.sum\(\) takes n and contrasts"):
        _fit("y ~ C(b, contr.sum(3, base = 2)) + (1 | g)")
    with pytest.raises(mm.FormulaError, match="number of levels"):
        _fit("y ~ C(b, contr.helmert('three')) + (1 | g)")


@pytest.mark.parametrize("column, formula, clash", [
    ("log", "y ~ log(z + 1) + (1 | g)", "y ~ log + log(z + 1) + (1 | g)"),
    ("C", "y ~ C(b, contr.sum) + (1 | g)", "y ~ C(b, contr.sum) + C + (1 | g)"),
    ("factor", "y ~ factor(b) + (1 | g)", "y ~ factor(b):factor + (1 | g)"),
    ("poly", "y ~ poly(x, 2) + (1 | g)", "y ~ poly(poly, 2) + (1 | g)"),
    ("scale", "y ~ scale(x, scale = FALSE) + (1 | g)", "y ~ scale(scale) + (1 | g)"),
    ("log", "y ~ x + (log(z + 1) | g)", "y ~ x + (log + log(z + 1) | g)"),
])
def test_a_column_named_as_a_called_function(column, formula, clash):
    """A column named as a function the formula calls does not hide the function, as R looks
    a called name up among functions: the fit, its rows and its predictions are those
    without the column; a part of the formula that also reads the column is refused, saying
    what to do (another part may read it: the fixed part, where a term calls the
    function)."""
    shadowed = DATA.assign(**{column: np.where(np.arange(len(DATA)) % 7, DATA["z"], np.nan)})
    fit, plain = _fit_data(formula, shadowed), _fit_data(formula, DATA)
    assert fit.nobs == plain.nobs == len(DATA)  # the column's missing values drop no row
    assert fit.objective == plain.objective
    pd.testing.assert_series_equal(fit.fixef, plain.fixef)
    np.testing.assert_array_equal(fit.predict(shadowed.head(5)), plain.predict(DATA.head(5)))
    with pytest.raises(mm.FormulaError, match=f"reads the column '{column}' and calls"):
        _fit_data(clash, shadowed)
    if "|" in formula.split("+")[-1] and "(1 | g)" not in formula:
        both = _fit_data(formula.replace("~ x", f"~ x + {column}"), shadowed)
        assert both.nobs < len(DATA) and f"{column}" in both.fixef.index


def _fit_data(formula: str, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, data)


def test_r_functions_of_factors_say_what_is_wrong():
    """relevel's reference must be a level of the fit's data (new data may lack it: a one-row
    prediction is coded with the fit's levels); factor()'s levels must name every value;
    as.numeric() of text that is not numbers says what to write."""
    fit = _fit('y ~ relevel(b, ref = "y") + (1 | g)')
    one_row = DATA.iloc[[0]]  # b is "x": its own levels lack the reference "y"
    assert one_row["b"].iloc[0] == "x"
    np.testing.assert_allclose(fit.predict(one_row), fit.fitted[:1], rtol=1e-12)
    for formula, words in [('y ~ relevel(b, ref = "Y") + (1 | g)', "has no level 'Y'"),
                           ("y ~ relevel(b, ref = 4) + (1 | g)", "a position is 1 to 3"),
                           ("y ~ factor(t, levels = c(1, 2, 10)) + (1 | g)",
                            "the value 20 is not among the levels"),
                           ("y ~ as.numeric(b) + (1 | g)", "give the data a column of numbers")]:
        with pytest.raises(mm.FormulaError, match=re.escape(words)):
            _fit(formula)


def test_a_column_called_as_a_function_it_is_not():
    """A call of a name that is a column and no function (spl(x, 3) with a column spl) is a
    FormulaError that says so and lists the functions by R's names."""
    with pytest.raises(mm.FormulaError, match=r"'spl' is a column of the data, not a function"
                                              r".* as\.factor, as\.integer"):
        _fit_data("y ~ spl(x, 3) + (1 | g)", DATA.assign(spl=1.0))


@pytest.mark.slow  # four Dask fits (2.3 s)
def test_r_functions_of_factors_over_partitions():
    """Coding functions called with arguments, and interactions of columns, give the
    in-memory fit on a Dask DataFrame whose partitions each lack levels. interaction() and
    as.character() make levels of the values they are given, which each partition would
    learn from its own rows (on sleepstudy, interaction(Subject, half) got the first
    partition's 12 of 36 combinations, silently): they are refused, naming the call."""
    dd = pytest.importorskip("dask.dataframe")
    sorted_rows = DATA.drop(columns=["o", "lg"]).sort_values("b")  # a level per partition
    for formula in ["y ~ C(b, contr.treatment(3, base = 2)) + (1 | g)", "y ~ a:b + (1 | g)"]:
        fit = _fit(formula)
        over = _fit_data(formula, dd.from_pandas(sorted_rows, npartitions=4))
        assert over.objective == pytest.approx(fit.objective, rel=1e-10)
        assert list(over.fixef.index) == list(fit.fixef.index)
        np.testing.assert_allclose(over.fixef, fit.fixef, rtol=1e-8, atol=1e-10)
    for formula, call in [("y ~ interaction(a, b) + (1 | g)", "interaction(a, b)"),
                          ("y ~ as.character(t) + x + (1 | g)", "as.character(t)")]:
        with pytest.raises(mm.FormulaError, match=re.escape(call) + " in the formula"):
            _fit_data(formula, dd.from_pandas(sorted_rows, npartitions=4))


def test_natural_spline_basis_is_r_s_inside_and_beyond_the_boundary_knots():
    """ns(x, 3) of the fit's data, evaluated at new values, among them values beyond the
    boundary knots (each column the line of its value and slope there), is R's basis."""
    from mixedmodels.formula.splines import ns

    record = REFERENCE["ns_basis"]
    state: dict = {}
    ns(DATA["x"], record["df"], _state=state)  # the knots of the fit's data
    basis = np.asarray(ns(pd.Series(record["x"], dtype=float), record["df"], _state=state))
    np.testing.assert_allclose(basis, record["basis"], rtol=1e-10, atol=1e-12)
    with pytest.raises(mm.FormulaError, match="df is at least 1"):
        _fit("y ~ ns(x, 0) + (1 | g)")
