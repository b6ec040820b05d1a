"""Elementwise expressions of columns (``design.expressions``): evaluated without formulaic,
to the same matrices, names, fits and errors as formulaic's path."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.design.build import build_design
from mixedmodels.design.encoding import fast_encoding
from mixedmodels.design.expressions import numeric_expression
from mixedmodels.design.materialize import formula_matrix
from mixedmodels.design.names import r_column_names
from mixedmodels.errors import DataError
from mixedmodels.formula.parse import parse_formula

# formulaic's text of a fixed part, as the formula's parser hands it on (R's ^ as **)
EXPRESSIONS = [
    "I(x ** 2)", "x + I(x ** 2)", "x + I(x ** 2) + I(x ** 3)", "log(x + 1)", "log(x + 1, 2)",
    "exp(-x / 10)", "sqrt(abs(x - 3))", "I(1 / (x + 1))", "floor(x / 2)", "ceiling(x / 3)",
    "sin(x) + cos(x)", "log10(x + 1) + log2(x + 1) + log1p(x) + expm1(x / 10)",
    "a * I(x ** 2)", "a:log(x + 1)", "x:I(x ** 2)", "I(x * z) + a:I(z - x)",
    "0 + a + a:sqrt(x)", "I(x ** 0.5) + sign(z)", "exp2(x / 4) + exp10(x / 8)", "I(-x) + I(+z)",
    "I(x * (x > 2)) + I(z * ((x >= 3) & (x != 5)))", "I(x % 3) + I(x // 2) + I(z * ~(x < 4))",
]


def _frame(dtype: str) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame({"x": pd.array(rng.integers(0, 9, 60), dtype=dtype),
                         "z": rng.normal(size=60), "a": rng.choice(["p", "q", "r"], 60)})


def _same_as_formulaic(text: str, frame: pd.DataFrame, atol: float = 0.0):
    """The fast encoding of ``text`` on ``frame``, checked to have formulaic's path's names
    and matrix (to ``atol``: 0, or a coding's rounding)."""
    encoding = fast_encoding(text, frame)
    assert encoding is not None
    reference = formula_matrix(text, frame)
    assert encoding.names == r_column_names(reference.columns)
    np.testing.assert_allclose(encoding.matrix(frame), np.asarray(reference, dtype=float),
                               rtol=0, atol=atol)
    return encoding


@pytest.mark.parametrize("dtype", ["int64", "float64", "int8", "uint16", "Int64"])
@pytest.mark.parametrize("fixed", EXPRESSIONS)
def test_expressions_equal_formulaic(fixed, dtype):
    """Each expression, on integers of several widths, floats and pandas' nullable integers,
    is evaluated directly, to the formulaic path's matrix (to the bit) and names."""
    assert _same_as_formulaic(fixed, _frame(dtype)).expressions  # evaluated here


@pytest.mark.parametrize("text", [
    "scale(x)", "poly(x, 2)", "center(x)", "np.log(x)", "log(x, base=2)", "I(x == 'a')",
    "I(2)", "C(a)", "x", "I(x if x else z)", "lag(x)", "I(True + x)", "I(x and z)",
])
def test_other_expressions_are_formulaic(text):
    """Stateful transforms, comparisons, attributes, keywords and anything but the listed
    operators and functions are not evaluated directly (formulaic's path, as before)."""
    assert numeric_expression(text) is None


@pytest.mark.parametrize("fixed", ["log(x)", "I(x ** -1)", "sqrt(x - 4)"])
def test_values_formulaic_must_judge_go_to_formulaic(fixed):
    """log(0), 1/0, the square root of a negative number: the direct way leaves them to
    formulaic's path (its error)."""
    assert fast_encoding(fixed, _frame("int64")) is None


def test_a_column_read_and_called_is_formulaic():
    frame = _frame("float64").assign(log=1.0)
    assert numeric_expression("log(log + x)") is None
    assert fast_encoding("I(log * x)", frame) is not None  # read only: the column


@pytest.mark.parametrize("formula, column", [
    ("log(Reaction) ~ Days + (Days | Subject)", ("log_reaction", np.log, "Reaction")),
    ("Reaction ~ Days + I(Days^2) + (Days | Subject)", ("days2", np.square, "Days")),
    ("Reaction ~ log(Days + 1) + (1 | Subject) + (0 + log(Days + 1) | Subject)",
     ("log_days", np.log1p, "Days")),
    ("Reaction ~ Days + (1 | Subject) + offset(I(Days/2))", ("half", lambda d: d / 2, "Days")),
])
def test_fits_equal_fits_on_computed_columns(formula, column):
    """A fit whose formula has an expression equals the fit of the same model with the
    expression's values computed beforehand as a column."""
    data = mm.datasets.load("sleepstudy")
    name, function, source = column
    data[name] = function(data[source].astype(float))
    replaced = (formula.replace("log(Reaction)", name).replace("I(Days^2)", name)
                .replace("log(Days + 1)", name).replace("I(Days/2)", name))
    fit, expected = mm.lmer(formula, data), mm.lmer(replaced, data)
    assert fit.objective == pytest.approx(expected.objective, rel=1e-12)
    np.testing.assert_allclose(fit.fixef.to_numpy(), expected.fixef.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(fit.predict(data.head(20)).to_numpy(),
                               expected.predict(data.head(20)).to_numpy(), rtol=1e-10)


def test_log_of_zero_is_the_same_error():
    data = mm.datasets.load("sleepstudy")
    for formula in ("log(Days) ~ 1 + (1 | Subject)", "Reaction ~ log(Days) + (1 | Subject)"):
        with pytest.raises(DataError, match=r"log\(Days\)"):
            mm.lmer(formula, data)


@pytest.mark.parametrize("formula", [
    "Reaction ~ Days + (1 | Subject)", "Reaction ~ log(Days + 1) + (1 | Subject)",
    "Reaction ~ scale(Days) + (1 | Subject)", "Reaction ~ 1 + (Days | Subject)",
    "Reaction ~ 1 + (1 | Subject) + offset(Days)",
])
@pytest.mark.parametrize("values", [["a", "b", "c"], [True, False, True]])
def test_prediction_needs_numbers_where_the_fit_had_them(formula, values):
    """New data with text, or True and False, in a column the fit read as numbers: a
    DataError that names the column (R's predict: 'variable was fitted with type numeric'),
    whichever path encodes it."""
    data = mm.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer(formula, data)
    with pytest.raises(DataError, match="newdata column 'Days' was numeric"):
        fit.predict(data.head(3).assign(Days=values))


FACTOR_FORMULAS = ["factor(k)", "0 + factor(k)", "x + factor(k):x", "factor(k) * a",
                   "as_factor(k) + I(x ** 2)", "factor(k):factor(j)", "a + factor(j)"]


@pytest.mark.parametrize("values", [[3, 1, 2, 10], [0.5, 2.0, 1.0, 1.5], ["b", "a", "B", "c"]])
@pytest.mark.parametrize("fixed", FACTOR_FORMULAS)
def test_factor_of_a_column_equals_formulaic(fixed, values):
    """R's factor() of a column of integers, floats (levels labelled 2, not 2.0) or text: the
    fast encoding, to the formulaic path's matrix and names (levels sorted as numbers:
    factor(k)10 after factor(k)3)."""
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"k": rng.choice(np.array(values, dtype=object), 60),
                          "j": rng.integers(1, 4, 60).astype(np.int8),
                          "x": rng.normal(size=60), "a": rng.choice(["p", "q"], 60)})
    frame["k"] = frame["k"].astype(type(values[0]) if not isinstance(values[0], str) else "str")
    encoding = _same_as_formulaic(fixed, frame)
    assert encoding.sources


@pytest.mark.parametrize("text", ["factor(k, levels=[1, 2, 3])", "factor(k + 1)", "factor(b)",
                                  "factor(g)", "factor(o)"])
def test_other_factor_calls_are_formulaic(text):
    """factor() with levels, of an expression, of a boolean or a categorical column: the
    formulaic path, as before."""
    frame = pd.DataFrame({"k": [1, 2, 3, 1], "b": [True, False, True, True],
                          "g": pd.Categorical(["u", "v", "u", "v"]),
                          "o": pd.Categorical(["u", "v", "u", "v"], ordered=True)})
    assert fast_encoding(text, frame) is None


def test_factor_fits_and_predictions_equal_those_of_a_text_column():
    data = mm.datasets.load("sleepstudy")
    data["Dc"] = data["Days"].map(lambda d: f"{d:02d}")  # the same order as numbers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular: the (0 + factor(Days > 4) | Subject) term
        fit = mm.lmer("Reaction ~ factor(Days) + (1 | Subject) "
                      "+ (0 + factor(Days > 4) | Subject)", data)
        expected = mm.lmer("Reaction ~ Dc + (1 | Subject) + (0 + factor(Days > 4) | Subject)",
                           data)
    assert fit.objective == pytest.approx(expected.objective, rel=1e-12)
    assert list(fit.fixef.index)[1:3] == ["factor(Days)1", "factor(Days)2"]
    np.testing.assert_allclose(fit.fixef.to_numpy(), expected.fixef.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(fit.predict(data.iloc[::7]).to_numpy(),
                               expected.predict(data.iloc[::7]).to_numpy(), rtol=1e-10)
    with pytest.raises(DataError, match="'Days' has the level '12'"):
        fit.predict(data.head(2).assign(Days=[1, 12]))


def test_integers_and_float32_are_read_as_r_numbers():
    """Integer columns in arithmetic are R's numbers, 64-bit floats: the square of
    timestamps in milliseconds does not wrap around (R: I(t^2) aliased with t, dropped), a
    negative power of integers is a fraction, and float32 columns are not rounded to single
    precision; each fit equals the fit of the same data as float64."""
    data = mm.datasets.load("sleepstudy")
    stamps = data.assign(t=(1_700_000_000_000 + data.Days * 86_400_000).astype("int64"))
    singles = data.astype({"Reaction": "float32", "Days": "float32"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for formula, frame, column in [
                ("Reaction ~ t + I(t^2) + (1 | Subject)", stamps, "t"),
                ("Reaction ~ I((Days + 1)^-1) + I(2^Days) + (1 | Subject)", data, "Days"),
                ("log(Reaction) ~ log(Days + 1) + exp(-Days/5) + (1 | Subject)", singles,
                 "Days")]:
            fit = mm.lmer(formula, frame)
            floats = frame.astype({column: "float64", "Reaction": "float64"})
            expected = mm.lmer(formula, floats)
            assert fit.objective == pytest.approx(expected.objective, rel=1e-13)
            assert list(fit.fixef.index) == list(expected.fixef.index)
            np.testing.assert_allclose(fit.fixef.to_numpy(), expected.fixef.to_numpy(),
                                       rtol=1e-12)
            np.testing.assert_allclose(fit.predict(frame.head(5)).to_numpy(),
                                       expected.predict(floats.head(5)).to_numpy(), rtol=1e-12)
    fit = mm.lmer("Reaction ~ I(2^Days) + (1 | Subject)", data)
    new = pd.DataFrame({"Days": [70], "Subject": ["308"]})
    assert fit.predict(new, include_random=False).iloc[0] == pytest.approx(
        fit.fixef.iloc[0] + fit.fixef.iloc[1] * 2.0 ** 70, rel=1e-12)


DEPARSED = json.loads((Path(__file__).parent / "reference" / "deparse_names.json").read_text())


@pytest.mark.parametrize("record", DEPARSED, ids=[r["term"] for r in DEPARSED])
def test_column_names_are_r_deparse(record):
    """Each term's model-matrix columns are named as R deparses the term (deparse_names.R):
    no spaces around / and ^, numbers as R formats them (1e+05, 1e-04, 2 for 2.0), the
    parentheses R's precedence needs, dotted column names bare."""
    data = mm.datasets.load("sleepstudy").assign(x=lambda f: f.Days + 1.0,
                                                 **{"Days.x": lambda f: f.Days + 2.0})
    design = build_design(parse_formula(f"Reaction ~ {record['term']} + (1 | Subject)"), data)
    assert sorted(design.x_names + design.dropped) == sorted(record["columns"])


LOGICAL_FORMULAS = ["b", "0 + b", "x:b", "b * a", "I(x > 4)", "x:I(x > 4)", "I(z > 0) * b",
                    "0 + I((x > 2) & (x < 7))", "a:I(x == 3)"]


@pytest.mark.parametrize("kind", ["bool", "boolean", "object"])
@pytest.mark.parametrize("fixed", LOGICAL_FORMULAS)
def test_logical_variables_equal_formulaic(fixed, kind):
    """Bool columns (NumPy's, pandas' nullable, Python's as objects) and logical expressions
    are factors of levels FALSE and TRUE, both coded as R codes a logical: the fast encoding
    equals the formulaic path's matrix and names."""
    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"x": rng.integers(0, 9, 50), "z": rng.normal(size=50),
                          "a": rng.choice(["p", "q"], 50)})
    frame["b"] = pd.Series(rng.random(50) > 0.4).astype(kind)
    encoding = _same_as_formulaic(fixed, frame)
    assert encoding.logical


def test_a_logical_with_one_value_keeps_both_levels():
    frame = pd.DataFrame({"x": np.arange(6.0), "b": [True] * 6})
    for fixed in ("0 + b", "x:b", "I(x >= 0)"):
        _same_as_formulaic(fixed, frame)


ELEMENTWISE_TEMPLATES = ["Reaction ~ log({c} + 1) + (1 | Subject)",
                         "Reaction ~ I({c}^2) + ({c} | Subject)",
                         "Reaction ~ 1 + offset({c}) + (1 | Subject)"]


@pytest.mark.parametrize("column, template", [
    *[(column, template) for column in ("Days.x", "True", "a b")
      for template in ELEMENTWISE_TEMPLATES],
    *[(column, template) for column in ("Days.x", "a b") for template in (
        "Reaction ~ factor({c}) + (1 | Subject)",
        "Reaction ~ poly({c}, 2) + (0 + sqrt({c} + 1) | Subject)")]])
def test_columns_named_as_r_allows_are_read_in_calls(template, column):
    """A column whose name has a dot (Days.x: R's style), or needs backquotes, is read as
    that column inside calls too (log(Days.x) was the attribute x of a column Days), and so
    is one named as Python's constant True in an elementwise expression (log(True) was log of
    the constant): the fit equals the fit on a plain name, and the names are R's (R:
    log(Days.x + 1), log(True + 1), log(`a b` + 1))."""
    data = mm.datasets.load("sleepstudy")
    data[column] = data["Days"]
    written = f"`{column}`" if " " in column else column
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer(template.format(c=written), data)
        expected = mm.lmer(template.format(c="Days"), data)
    assert fit.objective == pytest.approx(expected.objective, rel=1e-12)
    assert list(fit.fixef.index) == [name.replace("Days", written)
                                     for name in expected.fixef.index]
    np.testing.assert_allclose(fit.predict(data.head(10)).to_numpy(),
                               expected.predict(data.head(10)).to_numpy(), rtol=1e-10)


def test_a_python_keyword_as_a_column_in_a_call_says_to_rename_it():
    data = mm.datasets.load("sleepstudy").assign(**{"class": lambda f: f.Days % 3})
    with pytest.raises(mm.FormulaError, match=r"'class' is a Python keyword.*rename the col"):
        mm.lmer("Reaction ~ factor(class) + (1 | Subject)", data)
    assert mm.lmer("Reaction ~ class + (1 | Subject)", data).fixef.index[1] == "class"


@pytest.mark.parametrize("formula", [
    "Reaction ~ log(Days + 1) + (1 | Subject)", "Reaction ~ Days + offset(log(Days + 1)) + "
    "(1 | Subject)", "Reaction ~ Days + (0 + log(Days + 1) | Subject)"])
@pytest.mark.parametrize("interval", [None, "confidence", "prediction"])
def test_new_rows_with_unusable_values_predict_nan_with_a_warning(formula, interval):
    """New data whose terms are not finite (log of 0 or of a negative number), in the fixed
    part, an offset or a random-effects term: those rows' predictions (and intervals) are
    NaN, with one DataWarning naming them, as R's predict gives NaN ("NaNs produced"); the
    other rows are predicted as without them, and no NumPy warning leaks."""
    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer(formula, data)
    new = data.head(4).assign(Days=[1.0, -1.0, -3.0, 2.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predicted = np.asarray(fit.predict(new, interval=interval), dtype=float)
    assert [w.category for w in caught] == [mm.DataWarning]
    assert "2 row(s) of newdata (rows 1, 2)" in str(caught[0].message)
    assert np.isnan(predicted[[1, 2]]).all()
    expected = np.asarray(fit.predict(new.iloc[[0, 3]], interval=interval), dtype=float)
    np.testing.assert_allclose(predicted[[0, 3]], expected, rtol=1e-12)


def test_new_data_without_a_column_the_formula_reads_is_a_data_error():
    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer("Reaction ~ log(Days + 1) + (1 | Subject)", data)
    with pytest.raises(DataError, match="newdata has no column 'Days', which the model uses"):
        fit.predict(data[["Subject"]].head(3))


@pytest.mark.parametrize("formula", ["Reaction ~ log(Subject) + (1 | Subject)",
                                     "Reaction ~ I(Subject^2) + (1 | Subject)",
                                     "log(Subject) ~ 1 + (1 | Subject)",
                                     "Reaction ~ Days + (0 + sqrt(Subject) | Subject)"])
def test_numbers_of_a_text_column_name_it(formula):
    """A function of numbers of a text column: a DataError naming the column and the way to
    numbers (was NumPy's 'loop of ufunc does not support argument 0 of type str'), with the
    term in R's spelling (I(Subject^2), not I(Subject**2))."""
    data = mm.datasets.load("sleepstudy")
    with pytest.raises(DataError, match=r"reads the column 'Subject' as numbers, but it holds "
                                        r"str values \(e\.g\. '308'\).*pd\.to_numeric") as error:
        mm.lmer(formula, data)
    assert "**" not in str(error.value)


@pytest.mark.parametrize("formula, values", [
    ("Reaction ~ log(Days^2 + 1) + (1 | Subject)", lambda d: np.log(d ** 2 + 1)),
    ("Reaction ~ sqrt(Days^2 + 4) + (1 | Subject)", lambda d: np.sqrt(d ** 2 + 4)),
    ("Reaction ~ I(Days %% 3) + (1 | Subject)", lambda d: d % 3),
    ("Reaction ~ I(Days %/% 3) + (1 | Subject)", lambda d: d // 3),
    ("Reaction ~ I(Days * !(Days > 4)) + (1 | Subject)", lambda d: d * (d <= 4)),
    ("Reaction ~ poly(Days^2, 2) + (1 | Subject)", None),
])
def test_r_operators_inside_calls(formula, values):
    """R's ^, %%, %/% and ! inside any call are R's power, remainder, integer division and
    negation (^ was Python's exclusive or outside I(): log(Days^2 + 1) was log(Days XOR 3));
    each fit equals the fit on the values computed beforehand."""
    data = mm.datasets.load("sleepstudy")
    days = data["Days"].astype(float)
    computed = data.assign(v=values(days) if values else days ** 2)
    fit = mm.lmer(formula, data)
    expected = mm.lmer("Reaction ~ " + ("poly(v, 2)" if values is None else "v")
                       + " + (1 | Subject)", computed)
    assert fit.objective == pytest.approx(expected.objective, rel=1e-12)
    np.testing.assert_allclose(fit.fixef.to_numpy(), expected.fixef.to_numpy(), rtol=1e-9)


STATEFUL_FORMULAS = ["scale(x)", "center(x)", "standardize(x)", "scale(x, scale=False)",
                     "scale(x, center=False)", "scale(x):a", "z + scale(z) + center(x)",
                     "0 + a + a:scale(x)", "poly(x, 2)", "poly(x, 3):a", "a * poly(x, 2)",
                     "poly(x, 2, raw=True) + z", "poly(x, degree=3, raw=False)",
                     "0 + poly(x, 1):a + scale(z)"]


@pytest.mark.parametrize("fixed", STATEFUL_FORMULAS)
def test_stateful_transforms_equal_formulaic(fixed):
    """scale, center, standardize and poly of a column learn their state from every row of
    the data, those dropped for another column's missing values too (R's model frame), as
    formulaic's path: the same matrix, names (poly(x, 2)1, poly(x, 2)2) and recorded
    state."""
    from mixedmodels.design.materialize import ModelData

    rng = np.random.default_rng(6)
    whole = pd.DataFrame({"x": rng.integers(0, 30, 40), "z": rng.normal(size=40),
                          "a": rng.choice(["p", "q"], 40)})
    whole.loc[[3, 17], "z"] = np.nan  # dropped rows, whose x still counts in x's state
    drop = np.array([3, 17])
    frame = whole.drop(index=drop)
    rows = ModelData(frame, whole, drop, {})
    encoding = fast_encoding(fixed, rows.columns, rows=rows)
    assert encoding is not None and encoding.states
    reference = formula_matrix(fixed, whole, drop)
    assert encoding.names == r_column_names(reference.columns)
    np.testing.assert_array_equal(encoding.matrix(rows.columns),
                                  np.asarray(reference, dtype=float))
    learnt = reference.model_spec.transform_state
    assert rows.transforms.keys() == learnt.keys()
    for key, state in learnt.items():
        for field_, value in state.items():
            assert np.array_equal(rows.transforms[key][field_], value)


def test_scale_uses_every_row_and_keeps_its_state_for_new_data():
    """scale(Days): the mean and sd of Days over all 180 rows, those whose response is
    missing too (R's model frame), and the same centre and scale for new data."""
    data = mm.datasets.load("sleepstudy")
    data.loc[[0, 5, 9], "Reaction"] = np.nan
    days = data["Days"].astype(float)
    computed = data.assign(s=(days - days.mean()) / days.std())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer("Reaction ~ scale(Days) + (scale(Days) | Subject)", data)
        expected = mm.lmer("Reaction ~ s + (s | Subject)", computed)
    assert list(fit.fixef.index) == ["(Intercept)", "scale(Days)"]
    assert fit.objective == pytest.approx(expected.objective, rel=1e-12)
    np.testing.assert_allclose(fit.fixef.to_numpy(), expected.fixef.to_numpy(), rtol=1e-10)
    new = pd.DataFrame({"Days": [0, 4.5, 20], "Subject": ["308", "309", "310"]})
    np.testing.assert_allclose(
        fit.predict(new).to_numpy(),
        expected.predict(new.assign(s=(new.Days - days.mean()) / days.std())).to_numpy(),
        rtol=1e-10)


def test_a_recorded_state_is_applied_not_learnt_again():
    """Rows with a recorded state (a refit on some of the rows, a partition of a larger data
    set) apply it: scale(x) is (x - 10) / 2 under the state centre 10, scale 2."""
    from mixedmodels.design.materialize import ModelData

    frame = pd.DataFrame({"x": [1.0, 4.0, 9.0, 16.0]})
    state = {"ddof": 1, "center": np.array(10.0), "scale": np.array(2.0)}
    for keep_levels in (False, True):
        rows = ModelData.of(frame, {"scale(x)": state}, keep_levels=keep_levels)
        encoding = fast_encoding("0 + scale(x)", rows.columns, keep_levels, rows)
        np.testing.assert_array_equal(encoding.matrix(rows.columns)[:, 0],
                                      (frame.x.to_numpy() - 10.0) / 2.0)
    partition = ModelData.of(frame, keep_levels=True)  # no state: learnt from all partitions
    assert fast_encoding("0 + scale(x)", partition.columns, True, partition) is None


CODINGS = ["Sum", "contr.sum", "Treatment", "Treatment(reference='q')", "contr.treatment",
           "contr.treatment(3, base=2)", "Helmert", "contr.helmert", "Poly", "contr.poly",
           "contr.SAS", "Diff", "[[1, 0], [0, 1], [-1, -1]]", "{'pq': [1, -1, 0], 'r': [1, 1, -2]}",
           "contrasts=Sum"]


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("template", ["C(a, {c})", "0 + C(a, {c})", "x + C(a, {c}):x",
                                      "C(a, {c}) * b", "C(a, {c}):b", "C(a, {c}) + C(b, Sum)"])
def test_codings_equal_formulaic(template, coding):
    """C(x, coding) of a text column, every coding in both spellings, by contrasts or by
    indicators as R's rule codes it in the term: the fast encoding equals the formulaic
    path's matrix and names (lme4's: contrast_codings.R)."""
    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"a": rng.choice(["p", "q", "r"], 60), "b": rng.choice(["u", "v"], 60),
                          "x": rng.normal(size=60)})
    text = template.format(c=coding)
    encoding = _same_as_formulaic(text, frame, 1e-15)
    assert encoding.codings


def test_coded_factor_predictions_check_new_levels():
    data = mm.datasets.load("sleepstudy").assign(g=lambda f: (f.Days % 3).map(str))
    fit = mm.lmer("Reaction ~ C(g, Sum) + (1 | Subject)", data)
    with pytest.raises(DataError, match="'g' has the level '7'"):
        fit.predict(data.head(2).assign(g=["1", "7"]))
    np.testing.assert_allclose(fit.predict(data.head(9)).to_numpy(), fit.fitted[:9], rtol=1e-12)


FORMULAS_OF_EVERY_KIND = [
    "log(Reaction) ~ log(Days + 1) + (0 + I(Days > 3) | Subject)",
    "Reaction ~ scale(Days) + poly(Days, 2) + factor(Days > 5) + (1 | Subject)",
    "Reaction ~ C(Subject, Sum) + I(Days^2) + (1 | Days)",
]


@pytest.mark.parametrize("formula", FORMULAS_OF_EVERY_KIND)
def test_fits_with_expressions_pickle(formula):
    """A fit whose encoding holds compiled expressions pickles (as its text) and predicts the
    same after (a code object alone does not pickle: executors' refits, saved fits)."""
    import pickle

    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer(formula, data)
    again = pickle.loads(pickle.dumps(fit))
    np.testing.assert_array_equal(again.predict(data.head(30)).to_numpy(),
                                  fit.predict(data.head(30)).to_numpy())


@pytest.mark.slow
def test_refits_with_expressions_on_a_process_pool():
    from concurrent.futures import ProcessPoolExecutor

    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer(FORMULAS_OF_EVERY_KIND[0], data)
    serial = fit.influence_groups("Subject", progress=False)
    with ProcessPoolExecutor(2) as pool:
        parallel = fit.influence_groups("Subject", progress=False, executor=pool)
    pd.testing.assert_frame_equal(parallel, serial)


@pytest.mark.parametrize("fixed", ["o", "0 + o", "o:a", "o * x", "a + o:x", "C(a, Sum) * o"])
def test_ordered_factors_equal_formulaic(fixed):
    """An ordered categorical, coded by R's orthogonal polynomials (o.L, o.Q, ...) or by
    indicators as R's rule codes it in the term: the fast encoding equals the formulaic
    path's matrix and names (lme4's: ordered_factors.R)."""
    rng = np.random.default_rng(12)
    frame = pd.DataFrame({"a": rng.choice(["p", "q", "r"], 60), "x": rng.normal(size=60),
                          "o": pd.Categorical(rng.choice(["lo", "mid", "hi", "top"], 60),
                                              categories=["lo", "mid", "hi", "top"],
                                              ordered=True)})
    encoding = _same_as_formulaic(fixed, frame, 1e-15)
    assert encoding.codings


@pytest.mark.parametrize("fixed", ["relevel(g, ref='r')", "relevel(g, 'q') * x",
                                   "0 + relevel(g, ref=2)", "relevel(k, ref=3):x",
                                   "relevel(g, ref='absent')"])
def test_relevel_equals_formulaic(fixed):
    """R's relevel(x, ref) of a column, ref a label or a position (a label no row has leaves
    the levels as they are, as the function does for new data): the fast encoding equals
    the formulaic path's matrix and names."""
    rng = np.random.default_rng(13)
    frame = pd.DataFrame({"g": rng.choice(["p", "q", "r"], 40), "k": rng.integers(1, 5, 40),
                          "x": rng.normal(size=40)})
    _same_as_formulaic(fixed, frame)


@pytest.mark.parametrize("template", ["Reaction ~ log({c} + 1) + (1 | Subject)",
                                      "Reaction ~ I({c}^2) + ({c} | Subject)",
                                      "Reaction ~ poly({c}, 2) + (1 | Subject)"])
def test_a_dotted_column_in_a_call_is_read_whatever_its_prefix(template):
    """log(Days.x) reads the column Days.x where the data have no column Days (it failed,
    naming Days as missing), and where a column Days has missing values, its rows are kept
    (the columns the model reads were Days')."""
    data = mm.datasets.load("sleepstudy")
    expected = mm.lmer(template.format(c="Days"), data)
    alone = data.rename(columns={"Days": "Days.x"})
    fit = mm.lmer(template.format(c="Days.x"), alone)
    assert fit.objective == pytest.approx(expected.objective, rel=1e-12)
    assert fit.nobs == 180
    beside = alone.assign(Days=np.where(np.arange(180) % 7 == 0, np.nan, 1.0))
    fit = mm.lmer(template.format(c="Days.x"), beside)
    assert fit.nobs == 180 and fit.objective == pytest.approx(expected.objective, rel=1e-12)
