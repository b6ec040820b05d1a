"""Bad or awkward input: each case gets a clear error or warning (never a raw numpy, pandas or
formulaic traceback), and the awkward-but-valid cases fit exactly as their clean equivalents."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference

import mixedmodels as mm
from mixedmodels import DataError, DataWarning, FitWarning, FormulaError

SLEEP = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return mm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def sleep_fit(sleep):
    return mm.lmer(SLEEP, sleep)


def quiet_lmer(formula, data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, data, **kwargs)


def assert_same_fit(a, b, rel=1e-7):
    """Two fits of the same model: the same optimum and estimates."""
    assert a.objective == pytest.approx(b.objective, rel=rel)
    assert list(a.fixef.index) == list(b.fixef.index)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-5,
                               atol=1e-5 * a.stderr.max())
    np.testing.assert_allclose(a.stderr.to_numpy(), b.stderr.to_numpy(), rtol=1e-4)
    assert a.sigma == pytest.approx(b.sigma, rel=1e-4)
    np.testing.assert_allclose(a.varcorr.sdcor.to_numpy(), b.varcorr.sdcor.to_numpy(),
                               rtol=1e-3, atol=1e-4 * a.sigma)


def test_errors_are_value_errors():
    assert issubclass(FormulaError, ValueError) and issubclass(DataError, ValueError)
    assert issubclass(DataWarning, UserWarning) and issubclass(FitWarning, UserWarning)


# --- the formula ---------------------------------------------------------------------------------

@pytest.mark.parametrize("formula, name, suggestion", [
    ("Reaction ~ days + (Days | Subject)", "days", "Days"),
    ("Reaction ~ Days + (Days | subject)", "subject", "Subject"),
    ("Reaction ~ Days + (dayz | Subject)", "dayz", "Days"),
    ("reaction ~ Days + (Days | Subject)", "reaction", "Reaction"),
])
def test_unknown_column_is_named_with_suggestions(sleep, formula, name, suggestion):
    with pytest.raises(FormulaError) as info:
        mm.lmer(formula, sleep)
    message = str(info.value)
    assert f"'{name}'" in message
    assert f"Did you mean '{suggestion}'" in message
    assert "Reaction, Days, Subject" in message  # the columns there are


def test_unknown_column_without_close_match(sleep):
    with pytest.raises(FormulaError, match="'Weight'") as info:
        mm.lmer("Reaction ~ Weight + (1 | Subject)", sleep)
    assert "Did you mean" not in str(info.value)


def test_unknown_function_is_called_a_function(sleep):
    with pytest.raises(FormulaError, match=r"calls foo\(\.\.\.\)"):
        mm.lmer("Reaction ~ foo(Days) + (1 | Subject)", sleep)


def test_bad_offsets(sleep):
    """Offsets are supported (tests/test_offsets.py); these are not."""
    with pytest.raises(FormulaError, match="subtracted"):
        mm.lmer("Reaction ~ Days - offset(Days) + (1 | Subject)", sleep)
    with pytest.raises(FormulaError, match="needs an expression"):
        mm.lmer("Reaction ~ Days + offset() + (1 | Subject)", sleep)
    with pytest.raises(DataError, match="offset 'Subject'.*numeric"):
        mm.lmer("Reaction ~ Days + offset(Subject) + (1 | Subject)", sleep)


def _caret_position(message: str) -> int:
    """0-based column of the caret under the formula in a FormulaError message."""
    lines = message.splitlines()
    return lines[-1].index("^") - 2


@pytest.mark.parametrize("formula, position, words", [
    ("Reaction ~ Days * + (Days | Subject)", 16, "fixed-effects"),
    ("Reaction ~ Days $ 3 + (1 | Subject)", 16, "Unknown operator"),
    ("Reaction ~ Days + (Days $ 2 | Subject)", 24, "random-effects"),
    ("Reaction ~ Days + (Days | Subject", 18, "never closed"),
    ("Reaction ~ Days + (1 | Subject))", 31, "no matching"),
    ("Reaction Days + (1 | Subject)", 29, "exactly one '~'"),
    ("Reaction ~ Days + (1 | Subject) | Days", 32, "inside its own parentheses"),
    ("Reaction ~ Days + ( | Subject)", 20, "nothing left of the bar"),
    ("Reaction ~ Days + (1 | )", 23, "grouping factor"),
    ("Reaction ~ Days - (1 | Subject)", 18, "cannot be subtracted"),
    ("Reaction ~ Days + (0 || Subject)", 19, "no columns"),
])
def test_syntax_errors_mark_the_position(sleep, formula, position, words):
    with pytest.raises(FormulaError) as info:
        mm.lmer(formula, sleep)
    message = str(info.value)
    assert words in message
    assert f"(at position {position + 1})" in message
    assert formula in message
    assert _caret_position(message) == position
    assert "\x1b[" not in message and "\u29db" not in message  # no terminal colour codes


@pytest.mark.parametrize("formula, name", [
    ("Reaction time ~ Days + (1 | Subject)", "Reaction time"),
    ("Reaction ~ Days Subject + (1 | Subject)", "Days Subject"),
])
def test_two_names_side_by_side_suggest_backquotes(sleep, formula, name):
    """A column name with a space, unquoted, reads as two names without an operator."""
    with pytest.raises(FormulaError) as info:
        mm.lmer(formula, sleep)
    assert (f"; if '{name}' is the name of one column, write it in backquotes: `{name}`"
            in str(info.value))
    renamed = sleep.rename(columns={"Reaction": "Reaction time"})
    assert mm.lmer("`Reaction time` ~ Days + (1 | Subject)", renamed).objective == \
        pytest.approx(mm.lmer("Reaction ~ Days + (1 | Subject)", sleep).objective, rel=1e-12)


@pytest.mark.parametrize("formula", ["Reaction ~ `Days:r` + Days * r + (1 | Subject)",
                                     "Reaction ~ Days + r + (`Days:r` + Days:r | Subject)"])
def test_a_column_named_as_an_interaction_of_the_formula_is_refused(sleep, formula):
    """formulaic names the column `Days:r` and the interaction Days:r alike and kept one of
    them: the model lost a column without a word (lme4 fits both)."""
    rng = np.random.default_rng(3)
    data = sleep.assign(**{"Days:r": rng.normal(size=len(sleep)),
                           "r": rng.normal(size=len(sleep))})
    with pytest.raises(FormulaError, match=r"the column 'Days:r' has the name of the "
                                           r"interaction of 'Days' and 'r'.*rename the column "
                                           r"\(e\.g\. data\.rename\(columns=\{'Days:r': "
                                           r"'Days_r'\}\)\)"):
        mm.lmer(formula, data)
    assert mm.lmer("Reaction ~ `Days:r` + (1 | Subject)", data).fixef.index[1] == "Days:r"


def test_non_numeric_response_example_is_text(sleep):
    """The example value of a text response is one that is not a number (a spreadsheet's
    '250' next to '258,7' shows what is wrong no better than the first value)."""
    data = sleep.assign(R=sleep.Reaction.round(1).astype(str).str.replace(".", ","))
    data.loc[0, "R"] = "250"
    with pytest.raises(DataError, match=r"response 'R' must be numeric, but its dtype is \S+ "
                                         r"\(e\.g\. '258,7'\)"):
        mm.lmer("R ~ Days + (1 | Subject)", data)


@pytest.mark.parametrize("formula", [None, 3, ["y ~ x"]])
def test_formula_must_be_a_string(sleep, formula):
    with pytest.raises(FormulaError, match="must be a string"):
        mm.lmer(formula, sleep)


def test_empty_formula(sleep):
    with pytest.raises(FormulaError, match="empty"):
        mm.lmer("  ", sleep)


def test_no_random_effects(sleep):
    with pytest.raises(FormulaError, match="no random-effects term"):
        mm.lmer("Reaction ~ Days", sleep)


# --- the response --------------------------------------------------------------------------------

def test_non_numeric_response(sleep):
    data = sleep.assign(R=sleep.Reaction.astype(str))
    with pytest.raises(DataError, match=r"response 'R' must be numeric") as info:
        mm.lmer("R ~ Days + (1 | Subject)", data)
    assert "pd.to_numeric" in str(info.value)
    assert "np." not in str(info.value)


def test_boolean_response_is_zero_one(sleep):
    """As lme4 reads a logical response (tests/test_logical_variables.py has its values)."""
    logical = mm.lmer("y ~ Days + (1 | Subject)", sleep.assign(y=sleep.Reaction > 300))
    numbers = mm.lmer("y ~ Days + (1 | Subject)",
                      sleep.assign(y=(sleep.Reaction > 300).astype(float)))
    assert logical.objective == numbers.objective


def test_constant_response(sleep):
    with pytest.raises(DataError, match="'y' is constant"):
        mm.lmer("y ~ Days + (1 | Subject)", sleep.assign(y=2.5))


def test_response_fitted_exactly_by_the_fixed_effects(sleep):
    with pytest.raises(DataError, match="exactly"):
        mm.lmer("y ~ Days + (1 | Subject)", sleep.assign(y=3 + 2 * sleep.Days))


def test_response_expression(sleep):
    fit = quiet_lmer("log(Reaction) ~ Days + (Days | Subject)", sleep)
    direct = quiet_lmer("logR ~ Days + (Days | Subject)",
                        sleep.assign(logR=np.log(sleep.Reaction)))
    assert_same_fit(fit, direct)
    np.testing.assert_allclose(fit.y, np.log(sleep.Reaction.to_numpy()))


# --- missing and infinite values -----------------------------------------------------------------

def test_missing_values_dropped_with_a_count(sleep):
    data = sleep.copy()
    data.loc[[3, 10, 50], "Reaction"] = np.nan
    data["Days"] = data["Days"].astype(float)
    data.loc[[7, 10], "Days"] = np.nan
    data.loc[100, "Subject"] = None
    with pytest.warns(DataWarning, match=r"dropped 5 of 180 rows") as record:
        fit = mm.lmer(SLEEP, data)
    message = str(record[0].message)
    assert "Reaction: 3" in message and "Days: 2" in message and "Subject: 1" in message
    clean = mm.lmer(SLEEP, data.dropna())
    assert fit.nobs == clean.nobs == 175
    assert fit.objective == pytest.approx(clean.objective, rel=1e-12)
    np.testing.assert_allclose(fit.fixef, clean.fixef, rtol=1e-10)
    np.testing.assert_allclose(fit.theta, clean.theta, rtol=1e-10, atol=1e-12)


def test_missing_values_in_unused_columns_are_ignored(sleep):
    data = sleep.assign(other=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        fit = mm.lmer(SLEEP, data)
    assert fit.nobs == 180


def test_unused_category_after_dropping_is_no_column(sleep):
    """A level seen only in dropped rows is not a level (R's model.frame), so no aliased
    column is dropped for it."""
    data = mm.datasets.load("ergostool")
    data["Type"] = pd.Categorical(data["Type"])
    data.loc[data.Type == "T4", "effort"] = np.nan
    with pytest.warns(DataWarning, match="dropped 9 of 36") as record:
        fit = mm.lmer("effort ~ Type + (1 | Subject)", data)
    assert not any("rank deficient" in str(w.message) for w in record)
    assert list(fit.fixef.index) == ["(Intercept)", "TypeT2", "TypeT3"]
    assert fit.model.design.dropped == ()


def test_all_rows_missing(sleep):
    """The error itself names the column (a caller who filters warnings sees it)."""
    with pytest.warns(DataWarning), pytest.raises(
            DataError, match=r"no rows are left .*column 'Reaction' has no values \(all 180"):
        mm.lmer(SLEEP, sleep.assign(Reaction=np.nan))
    odd = np.arange(180) % 2 == 1
    with pytest.warns(DataWarning), pytest.raises(
            DataError, match=r"every row misses a value .*\(missing per column: a: 90, b: 90\)"):
        mm.lmer("Reaction ~ a + b + (1 | Subject)",
                sleep.assign(a=np.where(odd, np.nan, 1.0), b=np.where(odd, 1.0, np.nan)))


@pytest.mark.parametrize("column", ["Days", "Reaction"])
def test_complex_numbers_are_refused(sleep, column):
    with pytest.raises(DataError, match=f"column '{column}' has complex numbers"):
        mm.lmer(SLEEP, sleep.assign(**{column: sleep[column] + 0j}))


@pytest.mark.parametrize("column", ["Days", "Reaction"])
def test_infinite_value_names_the_column(sleep, column):
    data = sleep.copy()
    data[column] = data[column].astype(float)
    data.loc[5, column] = np.inf if column == "Days" else -np.inf
    with pytest.raises(DataError, match=rf"column '{column}' has 1 infinite value"):
        mm.lmer(SLEEP, data)


def test_computed_infinite_value_names_the_column(sleep):
    with np.errstate(divide="ignore"), pytest.raises(
            DataError, match=r"'log\(Days\)' has 18 non-finite"):
        mm.lmer("Reaction ~ log(Days) + (1 | Subject)", sleep)
    with np.errstate(divide="ignore"), pytest.raises(DataError, match=r"random-effects"):
        mm.lmer("Reaction ~ Days + (log(Days) | Subject)", sleep)


# --- the data frame and grouping factors ---------------------------------------------------------

def test_empty_frame(sleep):
    with pytest.raises(DataError, match="no rows"):
        mm.lmer(SLEEP, sleep.iloc[:0])


def test_grouping_factor_with_a_level_per_observation(sleep):
    with pytest.raises(DataError, match=r"'id' has 180 levels for 180 observations"):
        mm.lmer("Reaction ~ Days + (1 | id)", sleep.assign(id=np.arange(180)))


def test_grouping_factor_with_a_single_level(sleep):
    with pytest.raises(DataError, match=r"'one' has a single level \('a'\)"):
        mm.lmer("Reaction ~ Days + (1 | one)", sleep.assign(one="a"))


def test_duplicated_column_names(sleep):
    data = sleep.copy()
    data.columns = ["Reaction", "Reaction", "Subject"]
    with pytest.raises(DataError, match="more than one column named 'Reaction'"):
        mm.lmer("Reaction ~ 1 + (1 | Subject)", data)


def test_dict_of_columns_is_accepted(sleep, sleep_fit):
    fit = mm.lmer(SLEEP, sleep.to_dict("list"))
    assert fit.objective == pytest.approx(sleep_fit.objective, rel=1e-12)


def test_integer_grouping_column_fits_as_strings(sleep, sleep_fit):
    data = sleep.assign(Subject=sleep.Subject.astype(int))
    assert data.Subject.dtype.kind == "i"
    fit = mm.lmer(SLEEP, data)
    assert_same_fit(fit, sleep_fit, rel=1e-12)
    assert list(fit.ranef["Subject"].index) == list(sleep_fit.ranef["Subject"].index)
    np.testing.assert_allclose(fit.ranef["Subject"].to_numpy(),
                               sleep_fit.ranef["Subject"].to_numpy(), rtol=1e-8, atol=1e-8)


def test_integer_levels_sort_numerically(sleep):
    data = sleep.assign(code=sleep.Subject.astype(int) % 7 * 5)  # 0, 5, 10, ..., 30
    fit = quiet_lmer("Reaction ~ Days + (1 | code)", data)
    assert list(fit.ranef["code"].index) == ["0", "5", "10", "15", "20", "25", "30"]


# --- rank deficiency and collinearity ------------------------------------------------------------

@pytest.mark.parametrize("extra, name", [
    (lambda d: 3.0, "c"),
    (lambda d: d.Days, "c"),
    (lambda d: 2 * d.Days - 1, "c"),
])
def test_aliased_fixed_effect_is_dropped(sleep, sleep_fit, extra, name):
    data = sleep.assign(c=extra(sleep))
    with pytest.warns(DataWarning, match=rf"rank deficient: dropping aliased column\(s\) {name}"):
        fit = mm.lmer("Reaction ~ Days + c + (Days | Subject)", data)
    assert fit.model.design.dropped == (name,)
    assert list(fit.fixef.index) == ["(Intercept)", "Days"]
    assert_same_fit(fit, sleep_fit, rel=1e-10)


def test_aliased_categorical_level_is_dropped():
    data = mm.datasets.load("ergostool")
    data["T4"] = (data.Type == "T4").astype(float)
    with pytest.warns(DataWarning, match="T4"):
        fit = mm.lmer("effort ~ Type + T4 + (1 | Subject)", data)
    assert fit.model.design.dropped == ("T4",)
    clean = mm.lmer("effort ~ Type + (1 | Subject)", mm.datasets.load("ergostool"))
    assert_same_fit(fit, clean, rel=1e-10)


@pytest.fixture(scope="module")
def collinear_fit(sleep):
    data = sleep.assign(x2=2 * sleep.Days)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit = mm.lmer("Reaction ~ Days + (Days + x2 | Subject)", data)
    return fit, record


def test_collinear_random_slopes_fit_without_crashing(collinear_fit, sleep_fit):
    fit, record = collinear_fit
    data_warnings = [str(w.message) for w in record if issubclass(w.category, DataWarning)]
    assert any("x2" in m and "linear combinations" in m for m in data_warnings)
    assert fit.model.design.terms[0].aliased == ("x2",)
    # the extra column adds nothing the likelihood can see
    assert fit.objective == pytest.approx(sleep_fit.objective, rel=1e-6)
    np.testing.assert_allclose(fit.fixef, sleep_fit.fixef, rtol=1e-4)
    assert list(fit.varcorr.var1[:3]) == ["(Intercept)", "Days", "x2"]


def test_collinear_random_slopes_are_a_singular_fit(collinear_fit):
    fit, record = collinear_fit
    assert fit.is_singular
    assert any(issubclass(w.category, FitWarning) and "singular" in str(w.message)
               for w in record)


def test_duplicated_random_intercepts_are_reported(sleep):
    with pytest.warns(DataWarning, match=r"\(Intercept\) are linear combinations"):
        quiet = mm.LinearMixedModel("Reaction ~ Days + (1 | Subject) + (1 | Subject)", sleep)
    assert quiet.design.terms[1].aliased == ("(Intercept)",)


# --- scale ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=[True, False], ids=["REML", "ML"])
def scaled_fits(request, sleep):
    reml = request.param
    base = mm.lmer(SLEEP, sleep, reml=reml)
    scaled = {c: mm.lmer(SLEEP, sleep.assign(Reaction=sleep.Reaction * c), reml=reml)
              for c in (1e-8, 1e8)}
    return reml, base, scaled


def _sd_ratio(base, fit, c):
    sds = base.varcorr.var2.isna().to_numpy()
    return fit.varcorr.sdcor.to_numpy()[sds] / (c * base.varcorr.sdcor.to_numpy()[sds])


def test_extreme_response_scale(scaled_fits):
    """criterion(c y) = criterion(y) + 2 (n - p) log c under REML (2 n log c under ML); beta,
    standard errors and sds scale by c, correlations do not change."""
    reml, base, scaled = scaled_fits
    n, p = base.nobs, len(base.beta)
    for c, fit in scaled.items():
        shift = 2 * (n - p if reml else n) * np.log(c)
        assert fit.objective == pytest.approx(base.objective + shift, rel=1e-9, abs=1e-7)
        np.testing.assert_allclose(fit.fixef / c, base.fixef, rtol=1e-5)
        np.testing.assert_allclose(fit.stderr / c, base.stderr, rtol=1e-3)
        np.testing.assert_allclose(_sd_ratio(base, fit, c), 1.0, rtol=1e-3)
        corr = ~base.varcorr.var2.isna().to_numpy()
        np.testing.assert_allclose(fit.varcorr.sdcor[corr], base.varcorr.sdcor[corr],
                                   atol=1e-3)
        assert fit.is_singular == base.is_singular
        assert fit.converged


def test_extreme_response_scale_sds_to_1e5(scaled_fits):
    reml, base, scaled = scaled_fits
    for c, fit in scaled.items():
        np.testing.assert_allclose(_sd_ratio(base, fit, c), 1.0, rtol=1e-5)
        np.testing.assert_allclose(fit.stderr / c, base.stderr, rtol=1e-5)


# --- formula features against their expansions ---------------------------------------------------

def test_identity_power_is_named_like_r(sleep):
    fit = mm.lmer("Reaction ~ Days + I(Days^2) + (1 | Subject)", sleep)
    assert list(fit.fixef.index) == ["(Intercept)", "Days", "I(Days^2)"]
    np.testing.assert_array_equal(fit.X[:, 2], sleep.Days.to_numpy() ** 2)
    direct = mm.lmer("Reaction ~ Days + D2 + (1 | Subject)", sleep.assign(D2=sleep.Days ** 2))
    assert fit.objective == pytest.approx(direct.objective, rel=1e-10)


def test_treatment_contrasts_with_r_names():
    data = mm.datasets.load("ergostool")
    fit = mm.lmer("effort ~ Type + (1 | Subject)", data)
    assert list(fit.fixef.index) == ["(Intercept)", "TypeT2", "TypeT3", "TypeT4"]
    # the reference is the first level in sorted order, whatever the row order
    shuffled = data.iloc[np.random.default_rng(0).permutation(len(data))]
    shuffled = shuffled.sort_values("Type", ascending=False, kind="stable")
    assert shuffled.Type.iloc[0] == "T4"
    again = mm.lmer("effort ~ Type + (1 | Subject)", shuffled)
    assert list(again.fixef.index) == list(fit.fixef.index)
    np.testing.assert_allclose(again.fixef, fit.fixef, rtol=1e-10)
    # T1's mean is the intercept; each coefficient is that type's difference from T1
    means = data.groupby("Type").effort.mean()
    assert fit.fixef["(Intercept)"] == pytest.approx(means["T1"])
    assert fit.fixef["TypeT3"] == pytest.approx(means["T3"] - means["T1"])


def test_categorical_order_sets_the_reference():
    data = mm.datasets.load("ergostool")
    data["Type"] = pd.Categorical(data.Type, categories=["T4", "T1", "T2", "T3"])
    fit = mm.lmer("effort ~ Type + (1 | Subject)", data)
    assert list(fit.fixef.index) == ["(Intercept)", "TypeT1", "TypeT2", "TypeT3"]
    means = data.groupby("Type", observed=True).effort.mean()
    assert fit.fixef["(Intercept)"] == pytest.approx(means["T4"])


def test_nested_slash_equals_expanded_terms():
    pastes = mm.datasets.load("pastes")
    nested = mm.lmer("strength ~ 1 + (1 | batch/cask)", pastes)
    expanded = mm.lmer("strength ~ 1 + (1 | cask:batch) + (1 | batch)", pastes)
    assert list(nested.varcorr.group) == ["cask:batch", "batch", "Residual"]
    assert list(expanded.varcorr.group) == list(nested.varcorr.group)
    assert_same_fit(nested, expanded, rel=1e-12)
    # the interaction is the same grouping as the precomputed 'sample' column (batch:cask)
    sample = mm.lmer("strength ~ 1 + (1 | sample) + (1 | batch)", pastes)
    other_order = mm.lmer("strength ~ 1 + (1 | batch:cask) + (1 | batch)", pastes)
    assert_same_fit(nested, sample)
    assert_same_fit(nested, other_order)
    assert list(other_order.ranef["batch:cask"].index) == list(sample.ranef["sample"].index)
    levels = list(nested.ranef["cask:batch"].index)
    assert levels[:3] == ["a:A", "a:B", "a:C"]  # the first factor varies slowest


@pytest.mark.parametrize("formula", [
    "Reaction ~ Days + (0 + Days | Subject)",
    "Reaction ~ Days + (-1 + Days | Subject)",
    "Reaction ~ Days + (Days - 1 | Subject)",
    "Reaction ~ Days + (Days + 0 | Subject)",
])
def test_slope_without_intercept(sleep, formula):
    reference = mm.lmer("Reaction ~ Days + (0 + Days | Subject)", sleep)
    fit = mm.lmer(formula, sleep)
    assert_same_fit(fit, reference, rel=1e-12)
    assert list(fit.varcorr.var1) == ["Days", None]
    assert len(fit.theta) == 1


def test_double_bar_equals_separate_terms(sleep):
    double = mm.lmer("Reaction ~ Days + (Days || Subject)", sleep)
    separate = mm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)
    assert_same_fit(double, separate, rel=1e-12)
    assert list(double.varcorr.group) == ["Subject", "Subject.1", "Residual"]
    assert len(double.theta) == 2


def test_double_bar_splits_interactions(sleep):
    data = sleep.assign(z=np.sin(sleep.Days))
    double = quiet_lmer("Reaction ~ Days + (Days * z || Subject)", data)
    separate = quiet_lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject) + "
                          "(0 + z | Subject) + (0 + Days:z | Subject)", data)
    assert list(double.varcorr.var1[:4]) == ["(Intercept)", "Days", "z", "Days:z"]
    assert_same_fit(double, separate, rel=1e-10)


def test_redundant_parentheses_around_a_bar(sleep, sleep_fit):
    fit = mm.lmer("Reaction ~ Days + ((Days | Subject))", sleep)
    assert fit.objective == pytest.approx(sleep_fit.objective, rel=1e-12)


def test_messages_have_no_raw_library_reprs(sleep):
    """Nothing like np.str_('a') or a formulaic marker reaches a message."""
    cases = [
        ("Reaction ~ Days + (1 | one)", sleep.assign(one="a")),
        ("Reaction ~ Days $ 2 + (1 | Subject)", sleep),
        ("y ~ Days + (1 | Subject)", sleep.assign(y=sleep.Days.astype("category"))),
    ]
    for formula, data in cases:
        with pytest.raises(ValueError) as info:
            mm.lmer(formula, data)
        assert not re.search(r"np\.\w+\(|\x1b\[|\u29db", str(info.value)), str(info.value)


NOBS_CASES = load_reference("nobs_checks")


@pytest.mark.parametrize("case", NOBS_CASES, ids=[c["formula"] + str(len(c["days"]))
                                                  for c in NOBS_CASES])
def test_nobs_checks_as_lme4(case, sleep):
    """lme4 refuses a grouping factor with as many levels as observations and a term with as
    many random effects; the others fit to lme4's criterion (nobs_checks.R)."""
    data = sleep.assign(id=[f"r{i}" for i in range(len(sleep))])
    rows = data[data.Days.isin(case["days"])]
    if not case["refused"]:
        fit = mm.lmer(case["formula"], rows)
        assert fit.objective == pytest.approx(case["reml_criterion"], rel=1e-6)
        return
    with pytest.raises(DataError, match="nobs_checks='warning' or 'ignore'"):
        mm.lmer(case["formula"], rows)
    with pytest.warns(DataWarning, match="observations"):
        warned = mm.lmer(case["formula"], rows, nobs_checks="warning")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        warnings.simplefilter("ignore", FitWarning)
        ignored = mm.lmer(case["formula"], rows, nobs_checks="ignore")
    assert ignored.objective == pytest.approx(warned.objective, rel=1e-12)


def test_nobs_checks_value_is_checked(sleep):
    with pytest.raises(ValueError, match="nobs_checks must be one of 'error', 'warning', "
                                         "'ignore', not 'no'"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", sleep, nobs_checks="no")


def test_swapped_formula_and_data(sleep):
    """A data frame where the formula goes: a short message that says the order, not the
    frame's printout."""
    with pytest.raises(FormulaError) as caught:
        mm.lmer(sleep, "Reaction ~ Days + (1 | Subject)")
    message = str(caught.value)
    assert "formula first, then the data" in message and "\n" not in message


@pytest.mark.parametrize("data", [[1, 2, 3], np.zeros((3, 3)), pd.Series([1.0, 2.0])])
def test_data_that_is_no_frame_is_a_type_error(data):
    """A list, an array or a Series is no data frame (pandas would name its columns 0, 1,
    ...): the error says what data must be, for the fit and for predictions."""
    with pytest.raises(mm.ArgumentTypeError, match="data must be a pandas DataFrame or a dict"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", data)
    fit = mm.lmer("Reaction ~ Days + (1 | Subject)",
                  mm.datasets.load("sleepstudy").to_dict("list"))  # a dict of columns is data
    with pytest.raises(mm.ArgumentTypeError, match="newdata must be a pandas DataFrame"):
        fit.predict(data)


@pytest.mark.parametrize("formula, factor", [
    ("Reaction ~ Days + one + (1 | Subject)", "'one' of the fixed effects"),
    ("Reaction ~ Days + one:Days + (1 | Subject)", "'one' of the fixed effects"),
    ("Reaction ~ Days + C(one) + (1 | Subject)", "'C(one)' of the fixed effects"),
    ("Reaction ~ Days + factor(constant) + (1 | Subject)", "'factor(constant)' of the fixed"),
    ("Reaction ~ Days + (one | Subject)", "'one' of the random-effects term (one | Subject)"),
])
def test_factor_of_a_single_level_is_an_error(formula, factor):
    """A factor with one level in the rows used is an error, as R's "contrasts can be
    applied only to factors with 2 or more levels"; its column was dropped silently."""
    data = mm.datasets.load("sleepstudy").assign(one="a", constant=7)
    with pytest.raises(DataError, match=re.escape(factor) + r".* has a single level"):
        mm.lmer(formula, data)


@pytest.mark.parametrize("formula, where", [
    ("Reaction ~ Days + (Reaction | Subject)", "the random-effects term (Reaction | Subject)"),
    ("Reaction ~ Days + Reaction + (1 | Subject)", "the fixed effects"),
    ("Reaction ~ Days + I(Reaction / 2) + (1 | Subject)", "the fixed effects"),
    ("Reaction ~ Days + offset(Reaction) + (1 | Subject)", "an offset"),
    ("Reaction ~ Days + (1 | Reaction)", "grouping factor"),
])
def test_response_as_a_predictor_is_an_error(formula, where):
    """The response column on the right of '~' would explain itself (a slope on it fitted
    sleepstudy with a criterion of -2,619); a response computed from a predictor's column
    is a model (a change adjusted for its baseline)."""
    data = mm.datasets.load("sleepstudy")
    with pytest.raises(FormulaError, match=re.escape(where)):
        mm.lmer(formula, data)
    assert np.isfinite(mm.lmer("I(Reaction - Days) ~ Days + (1 | Subject)", data).objective)


def test_refit_matches_a_series_by_label_and_confint_names_unknown_options():
    """refit(y) reads a Series by its index labels, as weights (a shuffled Series refitted
    the shuffled response); confint's unknown bootstrap option is named, lme4's nsim too."""
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
    y = pd.Series(fit.y, index=fit.resid().index)
    expected = fit.refit(fit.y).loglik
    assert fit.refit(y.sample(frac=1, random_state=2)).loglik == pytest.approx(expected,
                                                                               rel=1e-12)
    with pytest.raises(DataError, match="labels not in the fitted rows' index: 1000"):
        fit.refit(y.set_axis(y.index + 1000))
    with pytest.raises(mm.ArgumentTypeError, match="lme4's nsim is n here"):
        fit.confint("bootstrap", nsim=40)


def test_too_many_random_effects_hints_at_numbers_stored_as_text_only_for_columns():
    """The hint to convert a column of numbers stored as text names a column of the data, not
    a factor the formula makes on purpose (it said to convert data['factor(visit)'])."""
    data = mm.datasets.load("orthodont").assign(visit=lambda d: (d["age"] - 6) // 2)
    with pytest.raises(mm.DataError, match="108 random effects") as made:
        mm.lmer("distance ~ age + (0 + factor(visit) | Subject)", data)
    assert "pd.to_numeric" not in str(made.value)
    with pytest.raises(mm.DataError, match=r"the column 'visit' is text.*pd.to_numeric"):
        mm.lmer("distance ~ age + (0 + visit | Subject)", data.assign(visit=data["visit"]
                                                                       .astype(str)))


def test_columns_with_names_of_several_levels_are_refused(sleep):
    """After groupby().agg the columns are a MultiIndex: ('Reaction', 'mean')."""
    summary = sleep.groupby(["Subject", "Days"]).agg({"Reaction": ["mean"]}).reset_index()
    with pytest.raises(DataError, match=r"^data: the columns have names of 2 levels \(a "
                                        r"MultiIndex, e\.g\. \('Subject', ''\)\).*flatten"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", summary)


def test_arrow_dictionary_text_is_a_factor(sleep):
    """read_parquet(..., dtype_backend="pyarrow") gives a categorical column Arrow's dictionary
    type: a factor with the dictionary's levels, as the same column of text."""
    pa = pytest.importorskip("pyarrow")
    late = pd.Series(np.where(sleep.Days > 4, "late", "early"), index=sleep.index)
    encoded = sleep.assign(f=late.astype(pd.ArrowDtype(pa.dictionary(pa.int32(), pa.string()))))
    fit = mm.lmer("Reaction ~ f + (1 | Subject)", encoded)
    text = mm.lmer("Reaction ~ f + (1 | Subject)", sleep.assign(f=late))
    assert list(fit.fixef.index) == ["(Intercept)", "flate"]
    np.testing.assert_allclose(fit.fixef, text.fixef, rtol=1e-12)
    np.testing.assert_allclose(fit.predict(encoded.head()), text.predict(sleep.assign(
        f=late).head()), rtol=1e-12)


def test_columns_named_by_numbers_are_named_in_the_message(sleep):
    """A frame made of a NumPy array has columns 0, 1, ...: the message says the name is a
    number, not text (it was "Did you mean '0'?")."""
    frame = pd.DataFrame(sleep[["Reaction", "Days"]].to_numpy()).assign(Subject=sleep.Subject)
    with pytest.raises(FormulaError, match=r"named by the int 0, not by text; give the columns "
                                           r"names of text, e\.g\. data\.columns = "
                                           r"data\.columns\.astype\(str\)"):
        mm.lmer("`0` ~ `1` + (1 | Subject)", frame)


def test_rows_of_a_numpy_index_are_named_as_numbers(sleep):
    data = sleep.set_axis(np.arange(1000, 1000 + len(sleep)), axis=0)
    data.loc[1003, "Reaction"] = np.inf
    with pytest.raises(DataError, match=r"\(first at row 1003\)"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", data)
    data = data.astype({"Reaction": object})
    data.loc[1003, "Reaction"] = "?"  # text among numbers: the rows are listed
    with pytest.raises(DataError, match=r"'\?' \(row 1003\)"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", data)


def test_rows_of_a_numpy_index_in_weights_and_residual_structures():
    """A frame indexed by a NumPy array's labels: messages name a row 103, not
    np.int64(103) (the weights, an AR(1) position, a power variance's zero)."""
    sleep = mm.datasets.load("sleepstudy")
    sleep.index = pd.Index(np.arange(180) * 10 + 3)
    sleep["w"] = 1.0
    sleep.loc[103, "w"] = -1.0
    with pytest.raises(mm.DataError, match=r"at row 103\)"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", sleep, weights="w")
    sleep["x"] = sleep.Days.astype(float)
    sleep.loc[13, "x"] = 0.5
    with pytest.raises(mm.DataError, match=r"row 13 has 0.5"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", sleep, correlation="ar1(x | Subject)")
    sleep.loc[13, "x"] = 0.0
    with pytest.raises(mm.DataError, match=r"; row 3 has 0"):
        mm.gls("Reaction ~ Days", sleep, variance="power(x)")


def test_interaction_as_a_grouping_factor_says_how_to_write_it(sleep):
    """lme4's (1 | interaction(a, b)) is (1 | a:b) here: the message says so, with a caret
    under the call."""
    with pytest.raises(mm.FormulaError, match=r"interaction\(a, b\) as a grouping factor is "
                                              r"a:b here \(at position 24\)"):
        mm.lmer("Reaction ~ Days + (1 | interaction(Subject, Days))", sleep)
    with pytest.raises(mm.FormulaError, match=r"names joined by ':' or '/' \(at position"):
        mm.lmer("Reaction ~ Days + (1 | log(Subject))", sleep)
