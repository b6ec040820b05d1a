"""Functions in formulas under R's names (factor, sqrt, log1p, ...) against lme4 and lmerTest
(tests/reference/formula_functions.json, made by formula_functions.R)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference

import mixedmodels as mm
from mixedmodels.formula.rfunctions import factor

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
    result = factor(values)
    assert list(result.cat.categories) == [2, 10, 33]
    assert list(result.index) == list("abcde") and pd.isna(result["d"])


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
