"""The ``mixedmodels`` command line: output, JSON record and one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import mixedmodels as mm
from mixedmodels.cli import main

REFERENCE = Path(__file__).parent / "reference"
SLEEP = "Reaction ~ Days + (Days | Subject)"


def reference(name: str) -> dict:
    return json.loads((REFERENCE / f"{name}.json").read_text())


def rel_close(actual: float, expected: float, rtol: float) -> bool:
    return abs(actual - expected) <= rtol * abs(expected)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sleep_ref() -> dict:
    return reference("sleepstudy_corr")


@pytest.fixture(scope="module")
def reml_record() -> dict:
    """The --json output for sleepstudy, produced once per module."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["fit", SLEEP, "--data", "sleepstudy", "--json"])
    assert code == 0 and err.getvalue() == ""
    return json.loads(out.getvalue())


def test_fit_prints_the_summary(capsys, sleep_ref):
    code, out, err = run(capsys, "fit", SLEEP, "--data", "SleepStudy")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "Linear mixed model fit by REML ['lmerMod']"
    assert f"REML criterion at convergence: {sleep_ref['REML']['criterion']:.1f}" in lines
    assert "Number of obs: 180, groups: Subject, 18" in lines
    intercept = next(line for line in lines if line.startswith("(Intercept)")).split()
    assert intercept[1:] == ["251.405", "6.825", "36.838"]


def test_json_matches_lme4(reml_record, sleep_ref):
    ref = sleep_ref["REML"]
    assert reml_record["method"] == "REML" and reml_record["nobs"] == 180
    assert rel_close(reml_record["objective"], ref["criterion"], 1e-6)
    assert rel_close(reml_record["aic"], ref["AIC"], 1e-6)
    assert rel_close(reml_record["bic"], ref["BIC"], 1e-6)
    assert rel_close(reml_record["sigma"], ref["sigma"], 1e-4)
    for name, value in ref["fixef"].items():
        assert rel_close(reml_record["fixef"][name], value, 1e-6)
        assert rel_close(reml_record["stderr"][name], ref["se"][name], 1e-4)
    assert reml_record["is_singular"] is False and reml_record["converged"] is True
    variances = [row["vcov"] for row in reml_record["varcorr"]]
    expected = [row["vcov"] for row in ref["varcorr"]]
    assert all(rel_close(a, e, 1e-4) for a, e in zip(variances, expected))


def test_ml_flag_gives_the_ml_criterion(capsys, sleep_ref):
    code, out, err = run(capsys, "fit", SLEEP, "--data", "sleepstudy", "--ml", "--json")
    record = json.loads(out)
    assert code == 0 and record["method"] == "ML"
    assert rel_close(record["objective"], sleep_ref["ML"]["criterion"], 1e-6)
    code, out, _ = run(capsys, "fit", SLEEP, "--data", "sleepstudy", "--ml")
    assert out.startswith("Linear mixed model fit by maximum likelihood")
    assert "1751.9" in out and "REML criterion" not in out


def test_csv_path(capsys, tmp_path, sleep_ref):
    path = tmp_path / "sleep.csv"
    mm.datasets.load("sleepstudy").to_csv(path, index=False)
    code, out, err = run(capsys, "fit", SLEEP, "--data", str(path), "--json")
    assert code == 0 and err == ""
    record = json.loads(out)
    assert record["nobs"] == 180
    assert rel_close(record["objective"], sleep_ref["REML"]["criterion"], 1e-6)


def test_singular_fit_warns_on_stderr(capsys):
    ref = reference("dyestuff2_singular")["REML"]
    code, out, err = run(capsys, "fit", "Yield ~ 1 + (1 | Batch)", "--data", "dyestuff2")
    assert code == 0
    assert "boundary (singular) fit" in out
    assert f"REML criterion at convergence: {ref['criterion']:.1f}" in out
    lines = err.splitlines()
    assert lines and all(line.startswith("mixedmodels: warning: ") for line in lines)
    assert "singular" in lines[0]


def assert_one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mixedmodels: error: ")
    return lines[0]


def test_missing_file(capsys, tmp_path):
    missing = tmp_path / "nothing.csv"
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "--data", str(missing)))
    assert str(missing) in line


def test_unknown_dataset(capsys):
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "--data", "sleepstudie"))
    assert "'sleepstudie'" in line and "sleepstudy" in line


def test_unknown_column(capsys):
    line = assert_one_line_error(
        *run(capsys, "fit", "Reaction ~ Dayz + (Days | Subject)", "--data", "sleepstudy"))
    assert "'Dayz'" in line


def test_formula_syntax_error(capsys):
    line = assert_one_line_error(
        *run(capsys, "fit", "Reaction ~ Days + (Days | Subject", "--data", "sleepstudy"))
    assert "never closed" in line


def test_missing_data_option(capsys):
    line = assert_one_line_error(*run(capsys, "fit", SLEEP))
    assert "--data" in line


def test_unreadable_csv(capsys, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "--data", str(path)))
    assert str(path) in line


def test_console_script_through_python_m(tmp_path, sleep_ref):
    result = subprocess.run(
        [sys.executable, "-m", "mixedmodels", "fit", SLEEP, "--data", "sleepstudy", "--json"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert rel_close(json.loads(result.stdout)["objective"], sleep_ref["REML"]["criterion"], 1e-6)
    bad = subprocess.run(
        [sys.executable, "-m", "mixedmodels", "fit", SLEEP, "--data", str(tmp_path / "no.csv")],
        capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("mixedmodels: error: no such file")
    assert "Traceback" not in bad.stderr
