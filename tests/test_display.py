"""The printed summary matches lme4's numbers and layout."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.output.display import SINGULAR_NOTE, Summary, abbreviate, r_format

REFERENCE = Path(__file__).parent / "reference"


def reference(name: str) -> dict:
    return json.loads((REFERENCE / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def sleep_ref() -> dict:
    return reference("sleepstudy_corr")


@pytest.fixture(scope="module")
def sleep_fit():
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def sleep_text(sleep_fit) -> str:
    return str(sleep_fit.summary())


@pytest.fixture(scope="module")
def singular_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.FitWarning)
        return mm.lmer("Yield ~ 1 + (1 | Batch)", mm.datasets.load("dyestuff2"))


def section(text: str, title: str) -> list[str]:
    """The lines of one section: from its title to the next blank line."""
    lines = text.splitlines()
    start = lines.index(title) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def close_to_printed(printed: str, expected: float, rtol: float = 2e-5) -> bool:
    """The expected value, rounded as printed: half a unit of the last digit, plus the
    small relative difference between two optimizers' estimates of the same optimum."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(float(printed) - expected) <= 0.5 * 10.0 ** -decimals + rtol * abs(expected)


def test_header_and_criterion(sleep_text, sleep_ref):
    lines = sleep_text.splitlines()
    assert lines[0] == "Linear mixed model fit by REML ['lmerMod']"
    assert lines[1] == "Formula: Reaction ~ Days + (Days | Subject)"
    criterion = f"{sleep_ref['REML']['criterion']:.1f}"
    assert criterion == "1743.6"
    assert f"REML criterion at convergence: {criterion}" in lines


def test_scaled_residuals_are_quantiles_over_sigma(sleep_text, sleep_fit):
    names, values = section(sleep_text, "Scaled residuals:")
    assert names.split() == ["Min", "1Q", "Median", "3Q", "Max"]
    expected = np.quantile(sleep_fit.residuals / sleep_fit.sigma, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose([float(v) for v in values.split()], expected, atol=1e-4)
    assert values.split()[0] == "-3.9536" and values.split()[-1] == "5.1793"  # lme4's


def test_random_effects_table(sleep_text, sleep_ref):
    rows = section(sleep_text, "Random effects:")
    assert rows[0].split() == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    intercept, slope, residual = (row.split() for row in rows[1:4])
    vc = sleep_ref["REML"]["varcorr"]
    assert intercept[:2] == ["Subject", "(Intercept)"]
    assert close_to_printed(intercept[2], vc[0]["vcov"])   # 612.1
    assert close_to_printed(intercept[3], vc[0]["sdcor"])  # 24.74
    assert slope[0] == "Days"
    assert close_to_printed(slope[1], vc[1]["vcov"])       # 35.07
    assert slope[2] == "5.922" and close_to_printed(slope[2], vc[1]["sdcor"])
    assert slope[3] == f"{vc[2]['sdcor']:.2f}" == "0.07"  # Corr on the second row only
    assert residual[0] == "Residual"
    assert close_to_printed(residual[1], vc[3]["vcov"])    # 654.9
    assert close_to_printed(residual[2], vc[3]["sdcor"])   # 25.59
    assert rows[4] == "Number of obs: 180, groups: Subject, 18"


def test_fixed_effects_table(sleep_text, sleep_ref):
    rows = section(sleep_text, "Fixed effects:")
    assert rows[0].split() == ["Estimate", "Std.", "Error", "t", "value"]
    ref = sleep_ref["REML"]
    t_ref = ref["satterthwaite"]["t"]
    for row, name in zip(rows[1:], ["(Intercept)", "Days"]):
        label, estimate, stderr, tvalue = row.split()
        assert label == name
        assert estimate == f"{ref['fixef'][name]:.3f}"
        assert stderr == f"{ref['se'][name]:.3f}"
        assert tvalue == f"{t_ref[name]:.3f}"
    assert "251.405" in rows[1] and "36.838" in rows[1] and "10.467" in rows[2]


def test_correlation_of_fixed_effects(sleep_text, sleep_ref):
    rows = section(sleep_text, "Correlation of Fixed Effects:")
    vcov = np.array(sleep_ref["REML"]["vcov"])
    corr = vcov[0, 1] / np.sqrt(vcov[0, 0] * vcov[1, 1])
    assert rows[0].split() == ["(Intr)"]
    assert rows[1].split() == ["Days", f"{corr:.3f}"]
    assert f"{corr:.3f}" == "-0.138"


def test_ml_summary_has_information_criteria():
    ref = reference("sleepstudy_corr")["ML"]
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"),
                  reml=False)
    text = str(fit.summary())
    assert text.startswith("Linear mixed model fit by maximum likelihood")
    assert "REML criterion" not in text
    lines = text.splitlines()
    k = next(i for i, line in enumerate(lines) if line.split()[:1] == ["AIC"])
    assert lines[k].split() == ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    expected = [ref["AIC"], ref["BIC"], ref["logLik"], ref["criterion"], 174]
    assert [float(v) for v in lines[k + 1].split()] == [round(v, 1) for v in expected]
    assert lines[k + 1].split()[-1] == "174"  # a count, as lme4 prints it


def test_uncorrelated_terms_get_separate_rows():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.FitWarning)
        fit = mm.lmer("Reaction ~ Days + (Days || Subject)", mm.datasets.load("sleepstudy"))
    ref = reference("sleepstudy_uncorr")["REML"]
    rows = section(str(fit.summary()), "Random effects:")
    assert rows[0].split() == ["Groups", "Name", "Variance", "Std.Dev."]
    assert rows[1].split()[:2] == ["Subject", "(Intercept)"]
    assert rows[2].split()[:2] == ["Subject.1", "Days"]
    assert close_to_printed(rows[2].split()[3], ref["varcorr"][1]["sdcor"])
    assert rows[4] == "Number of obs: 180, groups: Subject, 18"


def test_nested_groups_are_listed():
    fit = mm.lmer("strength ~ 1 + (1 | batch/cask)", mm.datasets.load("pastes"))
    text = str(fit.summary())
    assert "Number of obs: 60, groups: cask:batch, 30; batch, 10" in text
    assert "Correlation of Fixed Effects" not in text  # one fixed effect


def test_singular_fit_is_noted(singular_fit):
    ref = reference("dyestuff2_singular")["REML"]
    text = str(singular_fit.summary())
    assert text.splitlines()[-1] == SINGULAR_NOTE  # in the package's terms, not R's help
    assert "help(" not in text
    rows = section(text, "Random effects:")
    assert rows[1].split() == ["Batch", "(Intercept)", "0.00", "0.000"]
    assert rows[2].split() == ["Residual", f"{ref['varcorr'][1]['vcov']:.2f}",
                               f"{ref['varcorr'][1]['sdcor']:.3f}"]  # 13.81, 3.716
    fixed = section(text, "Fixed effects:")
    assert fixed[1].split() == ["(Intercept)", "5.6656", "0.6784", "8.352"]


def test_regular_fit_has_no_notes(sleep_text):
    assert "singular" not in sleep_text
    assert "failed to converge" not in sleep_text
    assert "convergence code" not in sleep_text


def html_cells(page: str) -> list[str]:
    return re.findall(r"<td[^>]*>([^<]*)</td>", page)


def test_html_has_tables_with_the_numbers(sleep_fit, sleep_text, sleep_ref):
    page = sleep_fit.summary()._repr_html_()
    assert page.startswith("<div") and page.endswith("</div>")
    assert page.count("<table>") == 4  # residuals, random, fixed, correlation
    assert "<p>REML criterion at convergence: 1743.6</p>" in page
    cells = html_cells(page)
    vc = sleep_ref["REML"]["varcorr"]
    expected = [vc[0]["vcov"], vc[0]["sdcor"], vc[1]["vcov"], vc[1]["sdcor"],
                vc[3]["vcov"], vc[3]["sdcor"]]
    random_table = page.split("<table>")[2]  # residuals first, then random effects
    rows = [html_cells(row) for row in random_table.split("<tr>")[2:]]
    assert [row[:2] for row in rows] == [["Subject", "(Intercept)"], ["", "Days"],
                                         ["Residual", ""]]
    random = [rows[i][j] for i in (0, 1, 2) for j in (2, 3)]
    assert all(close_to_printed(c, e) for c, e in zip(random, expected)), random
    for number in ["0.07", "251.405", "6.825", "36.838", "10.467", "1.546", "6.771", "-0.138"]:
        assert number in cells
    assert "<th>(Intercept)</th>" in page and "<th>Days</th>" in page
    assert "<p>Number of obs: 180, groups: Subject, 18</p>" in page
    # every number of the text's tables is a cell of the HTML
    text_numbers = re.findall(r"(?<![\w.])-?\d+\.\d+(?![\w.])", sleep_text)
    assert set(text_numbers) - {"1743.6"} <= set(cells)
    assert sleep_fit._repr_html_() == page


def test_html_escapes_text(singular_fit):
    page = Summary(singular_fit)._repr_html_()
    assert f"<p>{SINGULAR_NOTE}</p>" in page
    assert "['lmerMod']" not in page and "[&#x27;lmerMod&#x27;]" in page


@pytest.mark.parametrize("values, digits, expected", [
    ([612.0899, 35.0717, 654.941], 4, ["612.09", " 35.07", "654.94"]),
    ([24.74045, 5.922133, 25.59182], 4, ["24.740", " 5.922", "25.592"]),
    ([0.0, 13.8063], 4, [" 0.00", "13.81"]),
    ([1e-10, 1.5], 7, ["1.0e-10", "1.5e+00"]),
    ([247.0], 7, ["247"]),
])
def test_r_format(values, digits, expected):
    assert r_format(values, digits) == expected


def test_abbreviate_like_r():
    assert abbreviate(["(Intercept)", "SexMale", "age", "TypeT2"], 6) == [
        "(Intr)", "SexMal", "age", "TypeT2"]
    names = abbreviate(["conditionA", "conditionB"], 6)
    assert len(set(names)) == 2


def test_abbreviate_names_with_spaces_like_r():
    """R's abbreviate() of 12 names at minlength 6 and 11 (tests/reference/abbreviate.R):
    spaces are removed last and not counted while characters are dropped (ply(Dys,2)1, not
    ply(Dy, 2)1)."""
    import json
    from pathlib import Path

    cases = json.loads((Path(__file__).parent / "reference" / "abbreviate.json").read_text())
    for case in cases:
        assert abbreviate(case["names"], case["minlength"]) == case["abbreviated"]


def test_no_fixed_effects_is_said_as_lme4_says_it():
    """lme4's print.summary.merMod without coefficients: "No fixed effect coefficients", no
    empty table header."""
    fit = mm.lmer("Reaction ~ 0 + (1 | Subject)", mm.datasets.load("sleepstudy"))
    text = str(fit.summary())
    assert text.rstrip().endswith("No fixed effect coefficients")
    assert "Estimate" not in text
