"""Likelihood-ratio tests (``mm.anova``) match lme4's ``anova(m0, m1, ...)``.

The reference tables come from tests/reference/lrt_reference.R (lrt.json).
"""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.inference.lrt import COLUMNS, REFIT_MESSAGE

REFERENCE = json.loads((Path(__file__).parent / "reference" / "lrt.json").read_text())
COMPARISONS = {c["id"]: c for c in REFERENCE["comparisons"]}


def quiet(function, *args, **kwargs):
    """Call, returning the result and the warnings it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function(*args, **kwargs)
    return result, caught


@pytest.fixture(scope="session")
def data():
    cache = {}

    def load(name: str) -> pd.DataFrame:
        if name not in cache:
            cache[name] = mm.datasets.load(name)
        return cache[name]
    return load


@pytest.fixture(scope="session")
def fit(data):
    """Fits shared by all tests: fit(data name, formula, reml)."""
    cache = {}

    def get(name: str, formula: str, reml: bool = True) -> mm.LmmFit:
        key = (name, formula, reml)
        if key not in cache:
            cache[key] = quiet(mm.lmer, formula, data(name), reml=reml)[0]
        return cache[key]
    return get


@pytest.fixture(scope="module")
def tables(fit):
    """Our anova table and its warnings for each reference comparison."""
    out = {}
    for cid, comparison in COMPARISONS.items():
        fits = [fit(comparison["data"], m["formula"], m["reml"]) for m in comparison["models"]]
        out[cid] = quiet(mm.anova, *fits, refit=comparison["refit"])
    return out


def reference_column(comparison: dict, column: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in comparison["table"][column]], float)


@pytest.mark.parametrize("cid", sorted(COMPARISONS))
def test_table_matches_lme4(cid, tables):
    comparison = COMPARISONS[cid]
    table, _ = tables[cid]
    assert list(table.columns) == list(COLUMNS)
    assert list(table.index) == comparison["table"]["formula"]
    assert table["npar"].tolist() == comparison["table"]["npar"]
    df = reference_column(comparison, "Df")
    np.testing.assert_array_equal(table["Df"].to_numpy(), df)  # NaN first, then exact
    for column in ("deviance", "logLik", "AIC", "BIC", "Chisq"):
        np.testing.assert_allclose(table[column].to_numpy(), reference_column(comparison, column),
                                   rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=column)
    np.testing.assert_allclose(table["p"].to_numpy(), reference_column(comparison, "p"),
                               rtol=1e-4, atol=1e-10, equal_nan=True, err_msg="p")
    assert np.isnan(table.iloc[0][["Chisq", "Df", "p"]].to_numpy(float)).all()


@pytest.mark.parametrize("cid", sorted(COMPARISONS))
def test_refit_warning_as_lme4_message(cid, tables):
    comparison = COMPARISONS[cid]
    table, caught = tables[cid]
    refit = [w for w in caught if REFIT_MESSAGE in str(w.message)]
    assert len(refit) == int(comparison["refit_message"])
    assert all(issubclass(w.category, mm.FitWarning) for w in refit)
    assert all(w.filename == __file__ for w in refit)  # attributed to the caller
    any_reml = any(m["reml"] for m in comparison["models"])
    assert table.attrs["criterion"] == ("REML" if any_reml and not comparison["refit"] else "ML")
    expected = [m["formula"] for m in comparison["models"] if m["reml"] and comparison["refit"]]
    assert sorted(table.attrs["refitted"]) == sorted(expected)


def test_refit_is_the_ml_fit(fit):
    """The refitted rows are exactly those of the models fitted by ML directly."""
    reml = [fit("sleepstudy", f, True) for f in ("Reaction ~ Days + (1 | Subject)",
                                                 "Reaction ~ Days + (Days | Subject)")]
    ml = [fit("sleepstudy", f.formula, False) for f in reml]
    refitted, caught = quiet(mm.anova, *reml)
    direct, none = quiet(mm.anova, *ml)
    assert any(REFIT_MESSAGE in str(w.message) for w in caught)
    assert not any(REFIT_MESSAGE in str(w.message) for w in none)
    pd.testing.assert_frame_equal(refitted, direct, rtol=1e-9)
    assert all(f.reml for f in reml)  # the given fits are left as they were


def test_rows_sorted_by_npar_whatever_the_argument_order(fit):
    comparison = COMPARISONS["sleepstudy_triple"]
    fits = [fit("sleepstudy", m["formula"], m["reml"]) for m in comparison["models"]]
    first = None
    for permutation in itertools.permutations(fits):
        table, _ = quiet(mm.anova, *permutation)
        assert table["npar"].is_monotonic_increasing
        assert list(table.index) == comparison["table"]["formula"]
        if first is None:
            first = table
        else:
            pd.testing.assert_frame_equal(table, first)


def test_names_label_the_rows_in_argument_order(fit):
    m1 = fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", False)
    m0 = fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", False)
    table = mm.anova(m1, m0, names=["m1", "m0"])
    assert list(table.index) == ["m0", "m1"]
    with pytest.raises(ValueError, match="2 models"):
        mm.anova(m1, m0, names=["m1"])
    with pytest.raises(ValueError, match="distinct"):
        mm.anova(m1, m0, names=["m", "m"])


def test_equal_formulas_get_generic_labels(fit, data):
    """Same formula text on the same response: Days as a number, then as a factor."""
    sleep = data("sleepstudy")
    linear = fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", False)
    factor = quiet(mm.lmer, "Reaction ~ Days + (1 | Subject)",
                   sleep.assign(Days=sleep["Days"].astype(str)), reml=False)[0]
    table = mm.anova(factor, linear)
    assert list(table.index) == ["model 2", "model 1"]
    assert table["Df"].iloc[1] == factor.npar - linear.npar == 8


def test_chisq_is_clamped_at_zero_as_lme4(fit, data):
    """A larger model with a worse likelihood (here: stopped after one evaluation) gives
    Chisq 0 and p 1, as lme4's 2 * pmax(0, diff(logLik))."""
    small = fit("sleepstudy", "Reaction ~ Days + (Days || Subject)", False)
    stopped = quiet(mm.lmer, "Reaction ~ Days + (Days | Subject)", data("sleepstudy"),
                    reml=False, settings=mm.OptSettings(maxeval=1))[0]
    assert stopped.objective > small.objective
    table = mm.anova(small, stopped)
    assert table["Chisq"].iloc[1] == 0.0
    assert table["p"].iloc[1] == 1.0
    assert table["deviance"].iloc[1] == pytest.approx(stopped.objective)


# -- refusals --------------------------------------------------------------------------------
def test_refuses_different_number_of_observations(fit, data):
    full = fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", False)
    dropped = quiet(mm.lmer, "Reaction ~ Days + (Days | Subject)",
                    data("sleepstudy").iloc[1:], reml=False)[0]
    with pytest.raises(ValueError, match="same data.*180 observations.*179"):
        mm.anova(full, dropped)


def test_refuses_different_response(fit, data):
    sleep = data("sleepstudy")
    full = fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", False)
    shifted = quiet(mm.lmer, "Reaction ~ Days + (Days | Subject)",
                    sleep.assign(Reaction=sleep["Reaction"] + 1.0), reml=False)[0]
    with pytest.raises(ValueError, match="response values") as refused:
        mm.anova(full, shifted)
    assert "another order" not in str(refused.value)
    # the same rows in another order: refused (the models must share their rows' order), and
    # the message says so
    shuffled = quiet(mm.lmer, "Reaction ~ Days + (Days | Subject)", sleep.iloc[::-1],
                     reml=False)[0]
    with pytest.raises(ValueError, match="the same values in another order"):
        mm.anova(full, shuffled)


def test_offsets_must_nest(data):
    """An offset is a coefficient held at 1: offset(2 * x) with x = Days / 2 is nested in a
    model with Days, and two models with one offset are nested as their columns are; against
    a model without Days it is refused (it ran a chi-square test of two models that are not
    nested)."""
    sleep = data("sleepstudy").assign(x=lambda d: d["Days"] * 0.5,
                                      w=lambda d: (d["Days"] % 3).astype(float),
                                      x2=lambda d: d["Days"] ** 2.0)

    def ml(formula):
        return quiet(mm.lmer, formula, sleep, reml=False)[0]

    held = ml("Reaction ~ w + offset(2 * x) + (1 | Subject)")
    free = ml("Reaction ~ w + Days + (1 | Subject)")
    table = mm.anova(held, free)
    assert table["Chisq"].iloc[1] == pytest.approx(2 * (free.loglik - held.loglik), rel=1e-10)
    smaller = ml("Reaction ~ 1 + offset(2 * x) + (1 | Subject)")
    assert mm.anova(smaller, held)["Df"].iloc[1] == 1
    with pytest.raises(ValueError, match="offsets differ by more than a combination"):
        mm.anova(held, ml("Reaction ~ w + x2 + (1 | Subject)"))


def test_refuses_before_refitting(fit, data):
    """Data and nesting are checked first: no refit warning for refused models."""
    full = fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", True)
    dropped = quiet(mm.lmer, "Reaction ~ Days + (Days | Subject)",
                    data("sleepstudy").iloc[1:])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="same data"):
            mm.anova(full, dropped)


def test_refuses_different_grouping_factors(fit):
    by_day = fit("sleepstudy", "Reaction ~ Days + (1 | Days)", False)
    by_subject = fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", False)
    with pytest.raises(ValueError, match="not nested.*grouping factor 'Days'"):
        mm.anova(by_day, by_subject)


def test_equal_numbers_of_parameters_are_compared_without_a_test(fit):
    """As lme4's anova(a, b) of (1 | Subject) and (0 + Days | Subject): AIC 1802.1 and
    1782.1 (ML), and no p-value."""
    a = fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", False)
    b = fit("sleepstudy", "Reaction ~ Days + (0 + Days | Subject)", False)
    table = mm.anova(a, b)
    assert table["AIC"].round(1).tolist() == [1802.1, 1782.1]
    assert table[["Chisq", "Df", "p"]].isna().all().all()


def test_refuses_fixed_effects_not_in_the_larger_model(fit):
    small = fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", False)
    large = fit("sleepstudy", "Reaction ~ 1 + (Days | Subject)", False)
    with pytest.raises(ValueError, match="not nested.*fixed effect\\(s\\) Days"):
        mm.anova(large, small)


def test_refuses_random_slopes_not_in_the_larger_model(fit):
    slope = fit("sleepstudy", "Reaction ~ Days + (0 + Days | Subject)", False)
    crossed = fit("sleepstudy", "Reaction ~ Days + (1 | Subject) + (1 | Days)", False)
    with pytest.raises(ValueError, match="not nested.*random effects \\(Days \\| Subject\\)"):
        mm.anova(slope, crossed)


def test_nesting_by_span_and_partition(fit):
    """Nested models whose column names differ are accepted: the intercept is in the span of
    Type's indicator columns, and (1 | batch:cask) groups as lme4's cask:batch."""
    table = mm.anova(fit("ergostool", "effort ~ 1 + (1 | Subject)", False),
                     fit("ergostool", "effort ~ 0 + Type + (1 | Subject)", False))
    reference = COMPARISONS["ergostool_type"]["table"]
    np.testing.assert_allclose(table["Chisq"].iloc[1], reference["Chisq"][1], rtol=1e-6)
    table = mm.anova(fit("pastes", "strength ~ 1 + (1 | batch:cask)", False),
                     fit("pastes", "strength ~ 1 + (1 | batch/cask)", False))
    reference = COMPARISONS["pastes_nested_vs_cask"]["table"]
    np.testing.assert_allclose(table["Chisq"].iloc[1], reference["Chisq"][1], rtol=1e-6)


def test_no_refit_refuses_reml_fits_with_different_fixed_effects(fit):
    m0 = fit("sleepstudy", "Reaction ~ 1 + (1 | Subject)", True)
    m1 = fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", True)
    with pytest.raises(ValueError, match="different fixed effects.*refit=True"):
        mm.anova(m0, m1, refit=False)


def test_no_refit_refuses_reml_mixed_with_ml(fit):
    m0 = fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", False)
    m1 = fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", True)
    with pytest.raises(ValueError, match="some by ML"):
        mm.anova(m0, m1, refit=False)


def test_refuses_fewer_than_two_models_and_non_fits(fit):
    m0 = fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", False)
    with pytest.raises(ValueError, match="two or more"):
        mm.anova(m0)
    with pytest.raises(TypeError, match="not a fitted model"):
        mm.anova(m0, "Reaction ~ Days + (Days | Subject)")


def test_exported():
    """mm.anova is the facade's: inference.lrt.anova's table, printed as lme4 prints it."""
    assert "anova" in mm.__all__
    assert mm.anova is __import__("mixedmodels.api", fromlist=["anova"]).anova


def test_module_example():
    import doctest

    import mixedmodels.inference.lrt

    assert doctest.testmod(mixedmodels.inference.lrt).failed == 0


def test_residual_structures_are_named_in_the_labels(data):
    """Fits of one formula that differ in their residual structure: numbered labels, each
    listed with its formula, correlation= and variance= (they were two rows of the same
    formula)."""
    orthodont = data("orthodont")
    ar1 = mm.gls("distance ~ age * Sex", orthodont, correlation="ar1(age | Subject)",
                 reml=False)
    cs = mm.gls("distance ~ age * Sex", orthodont, correlation=mm.cov.CS("Subject"),
                variance="ident(Sex)", reml=False)
    table = mm.anova(cs, ar1)
    assert list(table.index) == ["model 2", "model 1"]
    assert table.attrs["formulas"] == {
        "model 2": "distance ~ age * Sex, correlation=ar1(age | Subject)",
        "model 1": "distance ~ age * Sex, correlation=cs(1 | Subject), variance=ident(Sex)"}
    assert "model 1: distance ~ age * Sex, correlation=cs(1 | Subject)" in str(table)
    assert table["logLik"].tolist() == [ar1.loglik, cs.loglik]
