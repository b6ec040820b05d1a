"""Functions in formulas under R's names (factor, sqrt, log1p, ...) against lme4 and lmerTest
(tests/reference/formula_functions.json, made by formula_functions.R)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference
from formulaic.transforms import TRANSFORMS

import mixedmodels as mm
from mixedmodels.formula.parse import formulaic_expression
from mixedmodels.formula.rfunctions import FORMULA_CONTEXT, factor, ifelse, pmin, r_not

REFERENCE = json.loads((Path(__file__).parent / "reference" / "formula_functions.json")
                       .read_text())


@pytest.mark.parametrize("record", REFERENCE, ids=[r["formula"] for r in REFERENCE])
def test_matches_lme4(record):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer(record["formula"], mm.datasets.load("sleepstudy"))
    assert fit.objective == pytest.approx(record["criterion"], rel=1e-8)
    assert list(fit.fixef.index) == list(record["fixef"])
    se = np.array(list(record["se"].values()))
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(record["fixef"].values()),
                               rtol=0, atol=1e-4 * se.min())
    np.testing.assert_allclose(fit.stderr.to_numpy(), se, rtol=1e-4)
    table = fit.anova()
    assert list(table.index) == [row["term"] for row in record["anova"]]
    for row in record["anova"]:
        assert table.loc[row["term"], "F"] == pytest.approx(row["F"], rel=1e-4)
        assert table.loc[row["term"], "den_df"] == pytest.approx(row["dendf"], rel=1e-3)


def test_factor_levels_are_sorted_values():
    values = pd.Series([10, 2, 2, np.nan, 33], index=list("abcde"))
    result = factor(values)  # floats (a NaN among them): sorted as numbers, labelled as R's
    assert list(result.cat.categories) == ["2", "10", "33"]
    assert list(result.index) == list("abcde") and pd.isna(result["d"])
    assert list(factor(pd.Series([3, 1, 2])).cat.categories) == [1, 2, 3]
    halves = factor(pd.Series([1.5, 0.5, 2.0]))
    assert list(halves.cat.categories) == ["0.5", "1.5", "2"] and halves[2] == "2"


def test_factor_of_a_condition_is_named_as_in_r():
    """lme4 1.1.31, lmer(log(Reaction) ~ factor(Days > 4) * Days + (Days | Subject)):
    fixef names (Intercept), factor(Days > 4)TRUE, Days, factor(Days > 4)TRUE:Days."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer("log(Reaction) ~ factor(Days > 4) * Days + (Days | Subject)",
                      mm.datasets.load("sleepstudy"))
    assert list(fit.fixef.index) == ["(Intercept)", "factor(Days > 4)TRUE", "Days",
                                     "factor(Days > 4)TRUE:Days"]
    new = pd.DataFrame({"Days": [2.0, 7.0], "Subject": ["308", "308"]})
    x = np.array([[1, 0, 2, 0], [1, 1, 7, 7]], dtype=float)
    expected = x @ fit.beta + fit.ranef["Subject"].loc["308"].to_numpy() @ [[1, 1], [2, 7]]
    np.testing.assert_allclose(fit.predict(new), expected, rtol=1e-12)


REFERENCE_DIR = Path(__file__).parent / "reference"
R_OPERATORS = json.loads((REFERENCE_DIR / "r_operators.json").read_text())
#: R's spelling that the formula does not take, and ours
_WRITTEN = {"levels = 0:9": "levels = c(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"}
#: names ours deparses otherwise than R (none)
_NAMED: dict[str, str] = {}


@pytest.mark.parametrize("case", R_OPERATORS, ids=[c["formula"] for c in R_OPERATORS])
def test_r_operators_and_functions_as_lme4(case):
    """R's operators inside a call (tests/reference/r_operators.R, lme4 1.1.31): arithmetic
    reads a logical as 0 and 1 (I(-(x > 5)) is -1 or 0, not the negation; I(b + c) counts,
    not "or"), & and | a number as nonzero, ! of a number is whether it is 0 and binds
    looser than a comparison; and factor(labels =), relevel() of a number's label, ifelse,
    pmin, pmax; and columns whose names R does not read as names, backquoted in the model's
    names. The criterion, the fixed effects and their names are lme4's."""
    formula = case["formula"]
    for r_text, ours in _WRITTEN.items():
        formula = formula.replace(r_text, ours)
    data = (mm.datasets.load("sleepstudy") if case["data"] == "sleep"
            else pd.read_csv(REFERENCE_DIR / "data" / "logic.csv"))
    if case["data"] == "spaced":  # R's names of columns R does not read as names
        data = pd.DataFrame({"y": data.y, "word len": data.x, "g": data.g,
                             "my f": np.where(data.b, "yes", "no")})
    fit = mm.lmer(formula, data)
    if "anova_rows" in case:
        assert list(fit.ranef["g"].columns) == case["ranef_columns"]
        assert list(fit.anova().index) == case["anova_rows"]
    assert fit.objective == pytest.approx(case["criterion"], rel=1e-9)
    names = [_NAMED.get(name, name) for name in case["fixef"]]
    for r_text, ours in _WRITTEN.items():
        names = [name.replace(r_text, ours) for name in names]
    assert list(fit.fixef.index) == names
    # (the spaced names' model is a boundary fit, where lme4's stop is 1e-5 from the optimum)
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(case["fixef"].values()),
                               rtol=1e-4 if fit.is_singular else 1e-7, atol=1e-9)


R_EXPRESSIONS = json.loads((REFERENCE_DIR / "r_expressions.json").read_text())


def test_r_expressions_give_r_values():
    """250 random expressions of R's operators and functions (tests/reference/r_expressions.R,
    R 4.2.2): the Python that a formula's call is written as (``formula.rcode``) gives R's
    values on every row, to 1e-12 (logical values as 0 and 1)."""
    data = pd.read_csv(REFERENCE_DIR / "data" / "logic.csv").rename(columns={"c": "cc"})
    columns = {name: data[name] for name in data.columns}
    for case in R_EXPRESSIONS:
        python = formulaic_expression(f"I({case['expr']})")[2:-1]
        with np.errstate(all="ignore"):  # (formulaic's transforms, then the formula's names)
            values = eval(python, {"__builtins__": {}, **TRANSFORMS, **FORMULA_CONTEXT},
                          columns)  # noqa: S307
        values = np.broadcast_to(np.asarray(values, dtype=float), (len(data),))
        np.testing.assert_allclose(values, case["values"], rtol=1e-12, atol=1e-12,
                                   err_msg=case["expr"])


def test_not_of_a_constant_and_ifelse_of_one_test_are_r_s():
    """R's !TRUE is FALSE (Python's ~True is -2), and ifelse of a test of one value is one
    value, yes's or no's first (R's length is the test's)."""
    assert r_not(True) is False and r_not(0) == 1
    assert ifelse(True, pd.Series([2.0, 3.0]), 0) == 2.0


def test_or_inside_identity_is_a_fixed_effect():
    """I(b | c), which lme4 reads as a random-effects term (and fails), is R's "or" here: the
    fit of a column holding it."""
    data = pd.read_csv(REFERENCE_DIR / "data" / "logic.csv")
    fit = mm.lmer("y ~ I(b | c) + I(!(x > 5) | c) + I(b & !c | nn == 2) + (1 | g)", data)
    same = mm.lmer("y ~ either + other + third + (1 | g)",
                   data.assign(either=data.b | data.c, other=(data.x <= 5) | data.c,
                               third=(data.b & ~data.c) | (data.nn == 2)))
    assert list(fit.fixef.index) == ["(Intercept)", "I(b | c)TRUE", "I(!(x > 5) | c)TRUE",
                                     "I(b & !c | nn == 2)TRUE"]
    np.testing.assert_allclose(fit.fixef.to_numpy(), same.fixef.to_numpy(), rtol=1e-10)


def test_factor_of_doubles_is_labelled_as_r_prints_them_and_pi_is_r_pi():
    """R's factor() of a double column labels its levels as.character does: 15 significant
    digits, in fixed notation unless the scientific one is shorter (1e+05, 1e-05, 2.5; lme4
    names the column factor(v)1e+05); an integer column's 100000 stays 100000. R's pi is
    known: sin(2 * pi * Time), nlme's Ovary model, is the fit of that column."""
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"y": rng.normal(size=60), "Time": rng.uniform(size=60),
                         "g": np.repeat(list("abcdef"), 10),
                         "v": np.tile([1e5, 2.5, 1e-5], 20),
                         "k": np.tile([1, 3, 100000, 3], 15)})
    fit = mm.lmer("y ~ factor(v) + factor(k) + sin(2 * pi * Time) + (1 | g)", data)
    assert list(fit.fixef.index) == ["(Intercept)", "factor(v)2.5", "factor(v)1e+05",
                                     "factor(k)3", "factor(k)100000", "sin(2 * pi * Time)"]
    same = mm.lmer("y ~ factor(v) + factor(k) + wave + (1 | g)",
                   data.assign(wave=np.sin(2 * np.pi * data.Time)))
    np.testing.assert_allclose(fit.fixef.to_numpy(), same.fixef.to_numpy(), rtol=1e-10)
    assert list(factor(pd.Series([0.1 + 0.2, 1 / 3])).cat.categories) == [
        "0.3", "0.333333333333333"]


@pytest.mark.parametrize("formula, words", [
    ("y ~ I(factor(k) * 2) + (1 | g)", r"in I\(factor\(k\) \* 2\): arithmetic .* not text or"),
    ("y ~ ifelse(f, 1, 0) + (1 | g)", "takes a logical test .or numbers., not text"),
    ("y ~ I(h & f) + (1 | g)", "'f'"),
    ("y ~ ifelse(x > 5, x, NA) + (1 | g)", "has 58 non-finite value.s. .* in rows 0, 1, 4"),
])
def test_r_operators_refuse_text_as_r_does(formula, words):
    """Arithmetic and logical operators on text or a factor are errors, as in R (ifelse of
    text fitted a constant, factor(k) * 2 raised pandas' TypeError), and the message shows
    the formula's own text."""
    data = pd.read_csv(REFERENCE_DIR / "data" / "logic.csv")
    with pytest.raises((mm.FormulaError, mm.DataError), match=words) as caught:
        mm.lmer(formula, data)
    assert "_r_" not in str(caught.value)


def test_a_bar_inside_ifelse_is_or():
    """ifelse(b | c, 1, 0) is R's "or" (was refused as a covariance structure); another
    function of a bar is still refused as one."""
    data = pd.read_csv(REFERENCE_DIR / "data" / "logic.csv")
    fit = mm.lmer("y ~ ifelse(b | c, 1, 0) + (1 | g)", data)
    same = mm.lmer("y ~ either + (1 | g)", data.assign(either=(data.b | data.c) * 1.0))
    np.testing.assert_allclose(fit.fixef.to_numpy(), same.fixef.to_numpy(), rtol=1e-10)
    with pytest.raises(mm.FormulaError, match="not a covariance structure"):
        mm.lmer("y ~ x + diagg(x | g)", data)


def test_factor_labels_rename_and_merge_levels_as_r():
    """R's factor(x, labels = ...): the levels renamed in order, a label given twice merging
    its levels (lme4 1.1.31: (Intercept) 271.630178889, ...late 53.7554255556; the merged
    Days pairs 260.573780556, 13.603175, 38.0101583, 54.8906389, 83.1665833); the same fits
    as of columns holding those labels. New data lacking a level need the levels named."""
    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer('Reaction ~ factor(Days > 4, labels = c("early", "late")) + (1 | Subject)',
                  data)
    assert list(fit.fixef.index) == ["(Intercept)",
                                     'factor(Days > 4, labels = c("early", "late"))late']
    same = mm.lmer("Reaction ~ half + (1 | Subject)",
                   data.assign(half=np.where(data.Days > 4, "late", "early")))
    np.testing.assert_allclose(fit.fixef.to_numpy(), same.fixef.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(fit.fixef.to_numpy(), [271.630178889, 53.7554255556],
                               rtol=1e-9)
    pairs = mm.lmer('Reaction ~ factor(Days, levels = c(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), '
                    'labels = c("a", "a", "b", "b", "c", "c", "d", "d", "e", "e")) '
                    '+ (1 | Subject)', data)
    np.testing.assert_allclose(pairs.fixef.to_numpy(), [260.573780556, 13.603175,
                                                        38.0101583333, 54.8906388889,
                                                        83.1665833333], rtol=1e-9)
    early = pd.DataFrame({"Days": [1, 2], "Subject": ["308", "308"]})
    with pytest.raises(mm.DataError, match="2 labels .early, late. for the 1 levels FALSE; "
                                           ".*name the levels too"):
        fit.predict(early)
    named = mm.lmer('Reaction ~ factor(Days > 4, levels = c(FALSE, TRUE), '
                    'labels = c("early", "late")) + (1 | Subject)', data)
    np.testing.assert_allclose(named.predict(early), same.predict(early.assign(half="early")),
                               rtol=1e-12)
    with pytest.raises(mm.FormulaError, match="1 labels .early. for the 2 levels FALSE, TRUE"):
        mm.lmer('Reaction ~ factor(Days > 4, labels = c("early")) + (1 | Subject)', data)


def test_ifelse_pmin_pmax_as_r():
    """lme4 1.1.31: pmin(Days, 5) + pmax(Days, 3): 228.22406447811, 5.64737104377,
    9.90549579125; ifelse(Days > 4, log(Days), 0): 270.6566148318, 28.9400788595 (log(0)
    of the rows not chosen is no error); predictions of new data re-evaluate them."""
    data = mm.datasets.load("sleepstudy")
    for formula, expected in (
            ("Reaction ~ pmin(Days, 5) + pmax(Days, 3) + (1 | Subject)",
             [228.22406447811, 5.64737104377, 9.90549579125]),
            ("Reaction ~ ifelse(Days > 4, log(Days), 0) + (1 | Subject)",
             [270.6566148318, 28.9400788595])):
        fit = mm.lmer(formula, data)
        np.testing.assert_allclose(fit.fixef.to_numpy(), expected, rtol=1e-9)
        np.testing.assert_allclose(fit.predict(data.iloc[[3, 50, 99]]),
                                   fit.fitted[[3, 50, 99]], rtol=1e-12)
    missing = pd.Series([1.0, np.nan, 6.0])
    np.testing.assert_array_equal(ifelse(missing > 4, 1, 0), [0.0, 0.0, 1.0])  # NaN > 4: False
    np.testing.assert_array_equal(ifelse(pd.Series([True, None, False], dtype="boolean"), 1, 0),
                                  [1.0, np.nan, 0.0])
    np.testing.assert_array_equal(pmin(missing, 5), [1.0, np.nan, 5.0])
    with pytest.raises(mm.FormulaError, match="takes numbers for yes and no"):
        mm.lmer('Reaction ~ ifelse(Days > 4, "a", "b") + (1 | Subject)', data)


def test_relevel_takes_a_level_as_r_prints_it():
    """relevel(factor(Days), "3"): the label "3" of a column of numbers, as in R (lme4 1.1.31:
    (Intercept) 282.992011111); relevel(f, 3) is the third level ("2"), R's position."""
    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer('Reaction ~ relevel(factor(Days), "3") + (1 | Subject)', data)
    order = mm.lmer("Reaction ~ factor(Days, levels = c(3, 0, 1, 2, 4, 5, 6, 7, 8, 9)) "
                    "+ (1 | Subject)", data)
    np.testing.assert_allclose(fit.fixef.to_numpy(), order.fixef.to_numpy(), rtol=1e-10)
    assert fit.fixef.iloc[0] == pytest.approx(282.992011111, rel=1e-9)
    third = mm.lmer("Reaction ~ relevel(factor(Days), 3) + (1 | Subject)", data)
    assert third.fixef.iloc[0] == pytest.approx(265.3619, rel=1e-9)
    with pytest.raises(mm.FormulaError, match="no level '33'; its levels are '0', '1'"):
        mm.lmer('Reaction ~ relevel(factor(Days), "33") + (1 | Subject)', data)


def test_predict_with_factor_uses_the_fit_levels(sleep_factor):
    new = pd.DataFrame({"Days": [5, 0], "Subject": ["308", "309"]})
    fit = sleep_factor
    expected = [fit.fixef["(Intercept)"] + fit.fixef["factor(Days)5"]
                + fit.ranef["Subject"].loc["308", "(Intercept)"],
                fit.fixef["(Intercept)"] + fit.ranef["Subject"].loc["309", "(Intercept)"]]
    np.testing.assert_allclose(fit.predict(new), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="11"):
        fit.predict(pd.DataFrame({"Days": [11], "Subject": ["308"]}))


def test_unknown_function_lists_the_known_ones():
    with pytest.raises(mm.FormulaError, match="sqrt"):
        mm.lmer("Reaction ~ cube(Days) + (1 | Subject)", mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def sleep_factor():
    return mm.lmer("Reaction ~ factor(Days) + (1 | Subject)", mm.datasets.load("sleepstudy"))


LITERALS = load_reference("r_literals")


@pytest.mark.parametrize("record", LITERALS, ids=[r["formula"] for r in LITERALS])
def test_r_literals_and_raw_polynomials(record):
    """TRUE/FALSE in formulas, raw polynomials numbered 1..d and keyword arguments spelled as
    R deparses them (r_literals.R)."""
    fit = mm.lmer(record["formula"], mm.datasets.load("sleepstudy"))
    assert list(fit.fixef.index) == list(record["fixef"])
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(record["fixef"].values()), rtol=1e-6)
    assert fit.objective == pytest.approx(record["reml_criterion"], rel=1e-8)


def test_python_spelling_of_literals_gives_r_names():
    fit = mm.lmer("Reaction ~ poly(Days,3,raw=True) + (1 | Subject)",
                  mm.datasets.load("sleepstudy"))
    assert list(fit.fixef.index)[1:] == [f"poly(Days, 3, raw = TRUE){k}" for k in (1, 2, 3)]


def test_log_to_a_base_as_r():
    """R's log(x, base): formulaic's log is NumPy's, whose second argument is its output."""
    data = mm.datasets.load("sleepstudy").assign(D1=lambda f: f.Days + 1)
    natural = mm.lmer("Reaction ~ log(D1) + (1 | Subject)", data).fixef.iloc[1]
    for formula, base in [("Reaction ~ log(D1, 2) + (1 | Subject)", 2.0),
                          ("Reaction ~ log(D1, base = 10) + (1 | Subject)", 10.0)]:
        fit = mm.lmer(formula, data)
        assert fit.fixef.iloc[1] == pytest.approx(natural * np.log(base), rel=1e-9)


@pytest.mark.parametrize("formula, words", [
    ("Reaction ~ I(center(D1) * D1^-1) + (1 | Subject)",  # (elementwise ones are R's numbers)
     "write a float power (x^-1.0) or a quotient"),
    ("Reaction ~ . + (1 | Subject)", "'.' (every other column of the data) is not supported"),
    ("Reaction ~ .^2 - Subject + (1 | Subject)", "'.' (every other column of the data) is not"),
    ("Reaction ~ Days * . + (1 | Subject)", "'.' (every other column of the data) is not"),
    ("Reaction ~ Days + (. | Subject)", "'.' (every other column of the data) is not"),
    ("Reaction ~ poly(Days, D1, degree = 2) + (1 | Subject)",
     "poly() of several variables (R's poly(x, z, degree = 2)) is not supported"),
])
def test_python_failures_of_r_spellings_say_what_to_write(formula, words):
    data = mm.datasets.load("sleepstudy").assign(D1=lambda f: f.Days + 1)
    with pytest.raises(mm.FormulaError, match=re.escape(words)):
        mm.lmer(formula, data)


def test_log_of_zero_is_one_clear_error_without_numpy_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(mm.DataError, match="'log\\(Days\\)' has 18 non-finite value"):
            mm.lmer("Reaction ~ log(Days) + (1 | Subject)", mm.datasets.load("sleepstudy"))


def test_factor_of_a_float_column_is_named_as_in_r():
    """R prints factor(x)'s levels of a double column without '.0': factor(D)1, not 1.0."""
    data = mm.datasets.load("sleepstudy")
    fit = mm.lmer("Reaction ~ factor(D) + (1 | Subject)", data.assign(D=data.Days * 1.0))
    expected = mm.lmer("Reaction ~ factor(D) + (1 | Subject)", data.assign(D=data.Days))
    assert fit.x_names == expected.x_names and fit.x_names[1] == "factor(D)1"
    np.testing.assert_allclose(fit.fixef, expected.fixef, rtol=1e-10)
    np.testing.assert_allclose(fit.predict(data.assign(D=data.Days * 1.0).head(12)),
                               fit.fitted[:12], rtol=1e-12)


@pytest.mark.parametrize("sizes", [(15, 10), (3, 50), (13, 11)])
def test_interaction_of_many_combinations_is_the_column_of_its_labels(sizes):
    """interaction(a, b) with more than 127 combinations (pandas stores a categorical's
    codes as int8 below 128 levels, and their arithmetic overflowed): the same fit as the
    column of the combinations' labels."""
    na, nb = sizes
    n = 4 * na * nb
    rng = np.random.default_rng(sum(sizes))
    frame = pd.DataFrame({"a": np.repeat(np.arange(na), n // na).astype(str),
                          "b": np.tile(np.arange(nb), n // nb),
                          "g": (np.arange(n) % 4).astype(str), "y": rng.normal(size=n)})
    frame["ab"] = frame.a + "." + frame.b.astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer("y ~ interaction(a, b) + (1 | g)", frame)
        reference = mm.lmer("y ~ ab + (1 | g)", frame)
    assert len(fit.fixef) == na * nb
    assert fit.objective == pytest.approx(reference.objective, rel=1e-10)
    np.testing.assert_allclose(np.sort(fit.fixef.to_numpy()[1:]),
                               np.sort(reference.fixef.to_numpy()[1:]), atol=1e-8)
