"""Every printed table shows every column, under R's names and with R's number formatting,
wrapped (not cut) at a narrow terminal width."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.cli import main
from mixedmodels.output.display import Table, format_pval

WIDTH = 60
SLEEP = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture
def narrow(monkeypatch):
    """A 60-column terminal, for pandas and for the package."""
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    with pd.option_context("display.width", WIDTH):
        yield


@pytest.fixture(scope="module")
def sleep():
    return mm.lmer(SLEEP, mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def orthodont():
    return mm.lmer("distance ~ age * Sex + (age | Subject)", mm.datasets.load("orthodont"))


@pytest.fixture(scope="module")
def nested_ml():
    data = mm.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.FitWarning)
        return [mm.lmer(f, data, reml=False) for f in (
            "Reaction ~ 1 + (1 | Subject)", "Reaction ~ Days + (1 | Subject)", SLEEP)]


def assert_whole(text: str, names: list[str], table_lines: bool = True) -> None:
    """No column elided, every column name printed; with ``table_lines``, no line wider than
    the terminal (headings and formulas are not wrapped, as in R)."""
    assert "..." not in text, text
    for name in names:
        assert name in text, (name, text)
    if table_lines:
        assert max(len(line) for line in text.splitlines()) <= WIDTH, text


COEF = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
F_TESTS = ["F value", "NumDF", "DenDF", "Pr(>F)"]
LRT = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
RANOVA = ["npar", "logLik", "AIC", "LRT", "Df", "Pr(>Chisq)"]


@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger", "residual", "asymptotic"])
def test_coefficient_table(narrow, orthodont, ddf):
    table = orthodont.coef_table(ddf)
    text = str(table)
    assert_whole(text, COEF)
    assert repr(table) == text and isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["estimate", "std_error", "df", "t", "p"]  # the data as before


def test_coefficient_table_as_lmertest(sleep):
    """lmerTest: (Intercept) 251.405 6.825 17.000 36.838 < 2e-16 / Days ... 3.26e-06."""
    lines = str(sleep.coef_table()).splitlines()
    assert lines[0].split() == ["Estimate", "Std.", "Error", "df", "t", "value", "Pr(>|t|)"]
    assert lines[1].split() == ["(Intercept)", "251.405", "6.825", "17.000", "36.838", "<",
                                "2e-16"]
    assert lines[2].split() == ["Days", "10.467", "1.546", "17.000", "6.771", "3.26e-06"]


@pytest.mark.parametrize("type", [1, 2, 3])
def test_f_tests(narrow, orthodont, type):
    heading, *table = str(orthodont.anova(type=type)).splitlines()  # (a heading is not
    assert heading == (f"Type {'I' * type} Analysis of Variance Table with "  # wrapped, as R)
                       "Satterthwaite's method")
    assert_whole("\n".join(table), ["Sum Sq", "Mean Sq"] + F_TESTS)


def test_f_tests_as_lmertest(sleep):
    """lmerTest's anova() of sleepstudy's correlated slopes, as R prints it:
         Sum Sq Mean Sq NumDF DenDF F value    Pr(>F)
    Days  30031   30031     1    17  45.853 3.264e-06"""
    lines = str(sleep.anova()).splitlines()
    assert lines[0] == "Type III Analysis of Variance Table with Satterthwaite's method"
    assert lines[1].split() == ["Sum", "Sq", "Mean", "Sq", "NumDF", "DenDF", "F", "value",
                                "Pr(>F)"]
    assert lines[2].split() == ["Days", "30031", "30031", "1", "17", "45.853", "3.264e-06"]


def test_likelihood_ratio_table(narrow, nested_ml):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.FitWarning)
        table = mm.anova(*nested_ml)
    text = str(table)
    assert_whole(text, LRT)
    assert "Models:" not in text  # the rows are labelled by the formulas already
    assert table.attrs["criterion"] == "ML"


def test_likelihood_ratio_as_lme4(nested_ml):
    """lme4: m1 6 1763.9 1783.1 -875.97 1751.9 42.139 2 7.072e-10, the models listed above."""
    text = str(mm.anova(*nested_ml[1:], names=["m0", "m1"]))
    lines = text.splitlines()
    assert lines[:3] == ["Models:", "m0: Reaction ~ Days + (1 | Subject)", f"m1: {SLEEP}"]
    assert lines[3].split() == LRT
    assert lines[4].split() == ["m0", "4", "1802.1", "1814.9", "-897.04", "1794.1"]
    assert lines[5].split() == ["m1", "6", "1763.9", "1783.1", "-875.97", "1751.9", "42.139",
                                "2", "7.072e-10"]


def test_ranova_table(narrow, sleep, orthodont):
    for fit in (sleep, orthodont):
        for reduce_terms in (True, False):
            text = str(fit.ranova(reduce_terms=reduce_terms))
            assert_whole(text, RANOVA, table_lines=False)
            assert text.startswith("ANOVA-like table for random-effects: Single term deletions")
            assert fit.formula in text.splitlines()


def test_varcorr_table(narrow, orthodont):
    table = orthodont.varcorr
    text = str(table)
    assert_whole(text, ["group", "var1", "var2", "vcov", "sdcor"])
    assert "None" not in text and "<NA>" in text  # R prints a missing name as <NA>
    assert table["sdcor"].iloc[-1] == orthodont.sigma
    header = text.splitlines()[0].split()
    assert header == list(table.columns)  # what is printed indexes the table


def test_gauge_table(narrow):
    rng = np.random.default_rng(3)
    rows = [(f"P{i}", f"O{j}", rng.normal() + i + 0.5 * j) for i in range(6) for j in range(3)
            for _ in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.FitWarning)  # the interaction variance may be 0
        study = mm.gauge_rr(pd.DataFrame(rows, columns=["p", "o", "y"]), "p", "o", "y",
                            tolerance=12)
    assert_whole(str(study), list(study.table.columns), table_lines=False)
    table_text = str(study).split("\n\n")[1]
    assert max(len(line) for line in table_text.splitlines()) <= WIDTH


def test_summary_wraps(narrow, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    fit = mm.lmer("effort ~ Type + (1 | Subject)", mm.datasets.load("ergostool"))
    text = str(fit.summary())
    fixed = text.split("Fixed effects:\n")[1].split("\n\n")[0]
    assert max(len(line) for line in fixed.splitlines()) <= 40
    assert "t value" in fixed and "TypeT4" in fixed


def test_command_line_tables(narrow, capsys):
    code = main(["fit", SLEEP, "--data", "sleepstudy", "--ddf", "satterthwaite", "--anova"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert_whole(out, COEF + F_TESTS, table_lines=False)
    coefficients = out.split("degrees of freedom:\n")[1].split("Type III Analysis")[0]
    tables = [coefficients, out.split("Satterthwaite's method\n")[1]]
    assert all(len(line) <= WIDTH for table in tables for line in table.splitlines())


def test_wide_table_wraps_in_blocks():
    """As R prints a wide matrix: the columns that fit, then the rest, each with the row
    names."""
    table = Table(["aaaa", "bbbb", "cccc"], [["1", "2", "3"], ["4", "5", "6"]], ["x", "yy"],
                  align="r")
    assert table.text(12).splitlines() == [
        "   aaaa bbbb", "x     1    2", "yy    4    5", "   cccc", "x     3", "yy    6"]
    assert table.text().splitlines()[0] == "   aaaa bbbb cccc"


@pytest.mark.parametrize("values, digits, expected", [  # R's format.pval(values, digits)
    ([3.263721e-06, 1.170912e-17], 3, ["3.26e-06", " < 2e-16"]),
    ([0.05, 1e-20], 3, ["  0.05", "<2e-16"]),
    ([0.5178, 0.0237, np.nan], 3, ["0.5178", "0.0237", "      "]),
    ([0.005375, 0.032614], 4, ["0.005375", "0.032614"]),
])
def test_format_pval(values, digits, expected):
    assert format_pval(values, digits) == expected
