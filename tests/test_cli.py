"""The ``mixedmodels`` command line: output, JSON record and one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
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


def test_csv_missing_values_are_empty_cells_and_na(capsys, tmp_path):
    """A level named "None" (as nlme's Alfalfa dates) stays a level; NA and empty cells are
    missing and dropped with a count."""
    data = mm.datasets.load("ergostool")
    data["Type"] = data["Type"].replace({"T1": "None"})
    data["effort"] = data["effort"].astype(float)
    data.loc[[0, 5], "effort"] = np.nan
    path = tmp_path / "ergo.csv"
    data.to_csv(path, index=False, na_rep="NA")
    code, out, err = run(capsys, "fit", "effort ~ Type + (1 | Subject)", "--data", str(path),
                         "--json")
    assert code == 0
    record = json.loads(out)
    assert record["nobs"] == len(data) - 2
    assert "2" in err and "missing" in err
    expected = mm.lmer("effort ~ Type + (1 | Subject)", data.dropna())
    assert set(record["fixef"]) == set(expected.fixef.index)
    assert "TypeT2" in record["fixef"] and "TypeNone" not in record["fixef"]  # None: baseline


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


# -- fit --ddf / --anova -------------------------------------------------------------------------

def test_fit_ddf_kenward_roger(capsys, sleep_ref):
    code, out, err = run(capsys, "fit", SLEEP, "--data", "sleepstudy", "--ddf", "kenward-roger")
    assert code == 0 and err == ""
    assert out.startswith("Linear mixed model fit by REML")
    assert "kenward-roger degrees of freedom" in out
    df = sleep_ref["REML"]["kenward_roger"]["df"]["Days"]
    row = [line for line in out.splitlines() if line.startswith("Days ")][-1].split()
    assert row[0] == "Days" and float(row[3]) == pytest.approx(df, abs=1e-3)  # 17.0


def test_fit_anova(capsys, sleep_ref):
    code, out, err = run(capsys, "fit", SLEEP, "--data", "sleepstudy", "--anova")
    assert code == 0 and err == ""
    ref = sleep_ref["REML"]["anova_satterthwaite"][0]
    assert f"{ref['F']:.3f}" == "45.853" and "45.853" in out
    row = out.splitlines()[-1].split()  # Days, Sum Sq, Mean Sq, NumDF, DenDF, F value, p
    assert row[0] == "Days" and float(row[5]) == pytest.approx(ref["F"], rel=1e-5)


def test_fit_anova_type(capsys):
    code, out, _ = run(capsys, "fit", "distance ~ age * Sex + (age | Subject)", "--data",
                       "orthodont", "--anova", "--anova-type", "1", "--json")
    assert code == 0
    fit = mm.lmer("distance ~ age * Sex + (age | Subject)", mm.datasets.load("orthodont"))
    expected = fit.anova(type=1)
    rows = json.loads(out)["anova"]["rows"]
    assert [rows[term]["F"] for term in expected.index] == pytest.approx(
        expected["F"].tolist(), rel=1e-10)
    code, out, _ = run(capsys, "fit", "distance ~ age * Sex + (age | Subject)", "--data",
                       "orthodont", "--anova", "--anova-type", "2")
    assert code == 0 and "Type II Analysis of Variance Table with Satterthwaite's method" in out


def test_fit_ddf_json(capsys):
    code, out, _ = run(capsys, "fit", SLEEP, "--data", "sleepstudy", "--ddf", "residual",
                       "--anova", "--json")
    record = json.loads(out)
    assert code == 0 and record["coef_table"]["rows"]["Days"]["df"] == 178
    assert record["anova"]["rows"]["Days"]["F"] == pytest.approx(45.853, rel=1e-4)


def test_fit_bad_ddf(capsys):
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "--data", "sleepstudy",
                                      "--ddf", "welch"))
    assert "--ddf" in line and "kenward-roger" in line


# -- gauge-rr ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gauge_csv(tmp_path_factory):
    rng = np.random.default_rng(7)
    parts, inter = rng.normal(0, 2, 8), rng.normal(0, 0.3, (8, 3))
    rows = [(f"P{i}", f"Op {j}", 5 + parts[i] + 0.2 * j + inter[i, j] + rng.normal(0, 0.4))
            for i in range(8) for j in range(3) for _ in range(2)]
    frame = pd.DataFrame(rows, columns=["Part", "Operator", "Thickness (mm)"])
    path = tmp_path_factory.mktemp("gauge") / "gauge.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_gauge_rr_prints_the_table(capsys, gauge_csv):
    path, frame = gauge_csv
    code, out, err = run(capsys, "gauge-rr", str(path), "--part", "Part", "--operator",
                         "Operator", "--response", "Thickness (mm)", "--tolerance", "10")
    assert code == 0
    assert "total gauge R&R" in out and "% tolerance" in out
    expected = mm.gauge_rr(frame, "Part", "Operator", "Thickness (mm)", tolerance=10)
    assert f"Number of distinct categories: {expected.ndc}" in out


def test_gauge_rr_json(capsys, gauge_csv):
    path, frame = gauge_csv
    code, out, err = run(capsys, "gauge-rr", str(path), "--part", "Part", "--operator",
                         "Operator", "--response", "Thickness (mm)", "--json")
    assert code == 0
    record = json.loads(out)
    expected = mm.gauge_rr(frame, "Part", "Operator", "Thickness (mm)")
    for name, row in expected.table.iterrows():
        assert record["table"][name]["variance"] == pytest.approx(row["variance"], rel=1e-6)
        assert record["table"][name]["% contribution"] == pytest.approx(
            row["% contribution"], rel=1e-6)
    assert record["ndc"] == expected.ndc and record["balanced"] is True
    assert record["anova_variances"]["repeatability"] == pytest.approx(
        expected.anova_components.loc["repeatability", "variance"])


def test_gauge_rr_unknown_column(capsys, gauge_csv):
    path, _ = gauge_csv
    line = assert_one_line_error(*run(capsys, "gauge-rr", str(path), "--part", "Part",
                                      "--operator", "Operatr", "--response", "Thickness (mm)"))
    assert "'Operatr'" in line


def test_gauge_rr_missing_option_and_file(capsys, tmp_path):
    line = assert_one_line_error(*run(capsys, "gauge-rr", "dyestuff", "--part", "Batch"))
    assert "--operator" in line
    line = assert_one_line_error(*run(capsys, "gauge-rr", str(tmp_path / "no.csv"), "--part",
                                      "a", "--operator", "b", "--response", "c"))
    assert "no such file" in line


def test_fit_predict_writes_predictions(capsys, tmp_path):
    data = mm.datasets.load("sleepstudy")
    new = data.iloc[[0, 1, 15]].copy()
    new.loc[new.index[-1], "Subject"] = "999"  # an unseen subject: population prediction
    new_csv, out_csv = tmp_path / "new.csv", tmp_path / "predictions.csv"
    new.to_csv(new_csv, index=False)
    code, _, _ = run(capsys, "fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy",
                     "--predict", str(new_csv), "--out", str(out_csv))
    assert code == 0
    written = pd.read_csv(out_csv)
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    np.testing.assert_allclose(written["prediction"].iloc[:2], fit.fitted[[0, 1]], rtol=1e-8)
    population = fit.fixef["(Intercept)"] + fit.fixef["Days"] * new["Days"].iloc[-1]
    assert written["prediction"].iloc[-1] == pytest.approx(population, rel=1e-8)
    assert list(written.columns) == ["Reaction", "Days", "Subject", "prediction"]


def test_fit_predict_writes_the_rows_as_the_file_has_them(capsys, tmp_path):
    """The rows of --predict are written back as their cells read, beside the predictions: a
    column of whole numbers with a missing cell (read as floats) keeps 308, not 308.0, and
    the missing cell stays as it was; a semicolon file's cells too."""
    fit = mm.lmer(SLEEP, mm.datasets.load("sleepstudy"))
    for sep, text in ((",", "Days,Subject,id\n1,308,17\n2,,NA\n3,309,19\n"),
                      (";", "Days;Subject;id\n1;308;17\n2;;NA\n3;309;19\n")):
        new_path, out = tmp_path / "new.csv", tmp_path / "out.csv"
        new_path.write_text(text)
        code, _, err = run(capsys, "fit", SLEEP, "--data", "sleepstudy", "--predict",
                           str(new_path), "--out", str(out))
        assert code == 0, err
        lines = out.read_text().splitlines()
        assert lines[0] == "Days,Subject,id,prediction"
        assert [line.rsplit(",", 1)[0] for line in lines[1:]] == ["1,308,17", "2,,NA",
                                                                  "3,309,19"]
        written = pd.read_csv(out)
        new = pd.DataFrame({"Days": [1.0, 2.0, 3.0], "Subject": ["308", None, "309"]})
        np.testing.assert_allclose(written["prediction"],
                                   fit.predict(new, new_levels="population"), rtol=1e-10)


def test_fit_predict_with_interval(capsys, tmp_path):
    new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["308", "999"]})
    new_path, out = tmp_path / "new.csv", tmp_path / "out.csv"
    new.to_csv(new_path, index=False)
    code, _, err = run(capsys, "fit", SLEEP, "--data", "sleepstudy", "--predict", str(new_path),
                       "--out", str(out), "--interval", "prediction")
    assert code == 0, err
    written = pd.read_csv(out, dtype={"Subject": str})
    fit = mm.lmer(SLEEP, mm.datasets.load("sleepstudy"))
    expected = fit.predict(new, new_levels="population", interval="prediction")
    assert list(written.columns) == ["Days", "Subject", "prediction", "se", "lower", "upper"]
    np.testing.assert_allclose(written[["prediction", "se", "lower", "upper"]].to_numpy(),
                               expected[["fit", "se", "lower", "upper"]].to_numpy(), rtol=1e-9)
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "--data", "sleepstudy",
                                      "--interval", "confidence"))
    assert "--predict" in line


def test_fit_predict_notes_rows_predicted_otherwise(capsys, tmp_path):
    """Rows with a new level or no level of a grouping factor get its population prediction
    (counted in a note); a weighted fit's prediction intervals without the weights' column
    take weight 1 (said in a note)."""
    data = mm.datasets.load("sleepstudy").assign(w=lambda f: 1 + f.Days / 5)
    data_path, new_path, out = tmp_path / "w.csv", tmp_path / "new.csv", tmp_path / "out.csv"
    data.to_csv(data_path, index=False)
    pd.DataFrame({"Days": [0.0, 5.0, 2.0, 1.0], "Subject": ["308", "999", None, "998"]}).to_csv(
        new_path, index=False)
    code, _, err = run(capsys, "fit", SLEEP, "--data", str(data_path), "--weights", "w",
                       "--predict", str(new_path), "--out", str(out), "--interval",
                       "prediction")
    assert code == 0, err
    notes = [line for line in err.splitlines() if "predicted without" in line
             or "prior weight" in line]
    assert notes == [
        f"mixedmodels: note: {new_path}: 3 of its 4 rows predicted without the random effects "
        "of 'Subject' (its population prediction): 2 with a level not in the fit's data, 1 "
        "without a value",
        f"mixedmodels: note: {new_path} has no column 'w' (--weights): its prediction "
        "intervals take a prior weight of 1 for every row"]


@pytest.mark.parametrize("interval, existing", [(None, "prediction"), ("confidence", "se")])
def test_fit_predict_refuses_columns_it_would_add(capsys, tmp_path, interval, existing):
    new_path, out = tmp_path / "new.csv", tmp_path / "out.csv"
    pd.DataFrame({"Days": [0.0], "Subject": ["308"], existing: [1.0]}).to_csv(new_path,
                                                                            index=False)
    extra = ("--interval", interval) if interval else ()
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "--data", "sleepstudy",
                                      "--predict", str(new_path), "--out", str(out), *extra))
    assert f"{new_path} has the column(s) '{existing}', which --out adds" in line
    assert not out.exists()


def test_fit_weights(capsys, tmp_path):
    data = mm.datasets.load("sleepstudy").assign(w=lambda f: 1 + f.Days / 5)
    path = tmp_path / "sleep.csv"
    data.to_csv(path, index=False)
    code, out, err = run(capsys, "fit", SLEEP, "--data", str(path), "--weights", "w", "--json")
    assert code == 0, err
    expected = mm.lmer(SLEEP, data, weights="w")
    assert json.loads(out)["objective"] == pytest.approx(expected.objective, rel=1e-12)
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "--data", str(path), "--weights",
                                      "ww"))
    assert "'ww'" in line


@pytest.mark.slow
def test_fit_report_writes_html(capsys, tmp_path):
    report = tmp_path / "report.html"
    code, out, _ = run(capsys, "fit", "Reaction ~ Days + (Days | Subject)", "--data",
                       "sleepstudy", "--report", str(report))
    assert code == 0 and "Random effects" in out
    html = report.read_text()
    assert "251.405" in html and html.count("data:image/png;base64,") >= 4


@pytest.mark.slow
def test_fit_report_uses_the_ddf_option(capsys, tmp_path):
    report = tmp_path / "report.html"
    code, _, err = run(capsys, "fit", SLEEP, "--data", "sleepstudy", "--ddf", "kenward-roger",
                       "--report", str(report))
    assert code == 0 and err == ""
    assert "Kenward-Roger&#x27;s denominator degrees of freedom" in report.read_text()


@pytest.mark.parametrize("extra", [["--predict", "new.csv"], ["--out", "p.csv"],
                                   ["--predict", "missing.csv", "--out", "p.csv"],
                                   ["--report", "no/such/dir/report.html"]])
def test_fit_file_options_bad_input(capsys, tmp_path, monkeypatch, extra):
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"Days": [1], "Subject": ["308"]}).to_csv("new.csv", index=False)
    code, out, err = run(capsys, "fit", "Reaction ~ Days + (Days | Subject)", "--data",
                         "sleepstudy", *extra)
    assert_one_line_error(code, out, err)


# -- reading CSV files: --sep, other separators, missing-value codes, text among numbers --------

@pytest.fixture(scope="module")
def sleep_data() -> pd.DataFrame:
    return mm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def sleep_objective(sleep_data) -> float:
    return mm.lmer(SLEEP, sleep_data).objective


def fit_record(capsys, *argv: str) -> tuple[dict, str]:
    code, out, err = run(capsys, "fit", SLEEP, *argv, "--json")
    assert code == 0, err
    return json.loads(out), err


@pytest.mark.parametrize("sep, given", [(";", ";"), ("\t", "\\t"), ("\t", "tab"), ("|", "|")])
def test_sep_reads_the_file(capsys, tmp_path, sleep_data, sleep_objective, sep, given):
    path = tmp_path / "sleep.csv"
    sleep_data.to_csv(path, sep=sep, index=False)
    record, err = fit_record(capsys, "--data", str(path), "--sep", given)
    assert err == ""  # the separator was given: no note
    assert record["objective"] == pytest.approx(sleep_objective, rel=1e-10)


def test_sep_for_gauge_rr_and_predict(capsys, tmp_path, gauge_csv, sleep_data):
    path, frame = gauge_csv
    semicolons = tmp_path / "gauge.csv"
    frame.to_csv(semicolons, sep=";", index=False)
    code, out, err = run(capsys, "gauge-rr", str(semicolons), "--sep", ";", "--part", "Part",
                         "--operator", "Operator", "--response", "Thickness (mm)", "--json")
    assert code == 0 and err == ""
    assert json.loads(out)["ndc"] == mm.gauge_rr(frame, "Part", "Operator",
                                                 "Thickness (mm)").ndc
    new, out_csv = tmp_path / "new.csv", tmp_path / "out.csv"
    sleep_data.iloc[:3].to_csv(new, sep=";", index=False)
    code, _, err = run(capsys, "fit", SLEEP, "--data", "sleepstudy", "--sep", ";",
                       "--predict", str(new), "--out", str(out_csv))
    assert code == 0 and err == ""
    assert len(pd.read_csv(out_csv)) == 3


@pytest.mark.parametrize("value", ["ab", "", ";;", '"', "\\n"])
def test_sep_bad_value(capsys, value):
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "--data", "sleepstudy",
                                      "--sep", value))
    assert "--sep" in line and "one character" in line


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_other_separator_is_read_with_a_note(capsys, tmp_path, sleep_data, sleep_objective,
                                             sep):
    """Without --sep, a header with no comma but with ';' (a tab, '|') gives the separator."""
    path = tmp_path / "sleep.csv"
    sleep_data.to_csv(path, sep=sep, index=False)
    record, err = fit_record(capsys, "--data", str(path))
    assert record["objective"] == pytest.approx(sleep_objective, rel=1e-10)
    assert err.splitlines() == [f"mixedmodels: note: {path}: the header has no ',' but has "
                                f"{sep!r}: read with {sep!r} as the separator (--sep chooses "
                                "another)"]


def test_usual_missing_codes_are_missing_and_counted(capsys, tmp_path, sleep_data):
    text = sleep_data.astype(str)
    text.loc[3, "Reaction"], text.loc[16, "Reaction"], text.loc[30, "Reaction"] = ".", "n/a", "NA"
    text.loc[20, "Days"] = ""
    path = tmp_path / "codes.csv"
    text.to_csv(path, index=False)
    record, err = fit_record(capsys, "--data", str(path))
    expected = mm.lmer(SLEEP, sleep_data.drop(index=[3, 16, 20, 30]))
    assert record["nobs"] == 176
    assert record["objective"] == pytest.approx(expected.objective, rel=1e-10)
    notes = [line for line in err.splitlines() if line.startswith("mixedmodels: note: ")]
    assert notes == [f"mixedmodels: note: {path}: 4 cells read as missing (empty, 'NA', 'NaN', "
                     "'N/A', '.', 'n/a'): Reaction 3, Days 1"]


MISSING_ADVICE = ("Make those values missing (NA or an empty cell in a CSV file; in pandas, "
                  "data[{0!r}] = pd.to_numeric(data[{0!r}], errors='coerce')): their rows are "
                  "then dropped")


@pytest.mark.parametrize("column, cells, expected", [
    ("Reaction", {3: "?", 16: "?", 30: "missing"},
     "the response 'Reaction' holds numbers and text: '?' (rows 4, 17), 'missing' (row 31). "
     + MISSING_ADVICE.format("Reaction")),
    ("Days", {0: "none"},
     "column 'Days' holds numbers and text: 'none' (row 1); as text it would be a factor with "
     "one level per value. " + MISSING_ADVICE.format("Days") + ". Or write factor(Days) in "
     "the formula if the column is categorical"),
    ("Reaction", {k: "-" for k in range(7)},
     "the response 'Reaction' holds numbers and text: '-' (rows 1, 2, 3, 4, 5, ...). "
     + MISSING_ADVICE.format("Reaction")),
])
def test_text_among_numbers_is_reported(capsys, tmp_path, sleep_data, column, cells, expected):
    """Where the model reads the column as numbers, with the rows counted from 1 after the
    header."""
    text = sleep_data.astype(str)
    for row, value in cells.items():
        text.loc[row, column] = value
    path = tmp_path / "stray.csv"
    text.to_csv(path, index=False)
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "--data", str(path)))
    assert line == f"mixedmodels: error: {expected}"


def test_text_among_numbers_in_labels_or_unused_columns_is_text(capsys, tmp_path, sleep_data,
                                                                sleep_objective):
    """Subject IDs 308, ..., 372 with one '372b', and a column of notes the model does not
    use holding 'redo' among numbers: read as text, as R's read.csv reads them, and fitted."""
    text = sleep_data.astype(str).assign(note="1")
    text.loc[text.Subject == "372", "Subject"] = "372b"
    text.loc[5, "note"] = "redo"
    path = tmp_path / "ids.csv"
    text.to_csv(path, index=False)
    record, err = fit_record(capsys, "--data", str(path))
    assert err == "" and record["objective"] == pytest.approx(sleep_objective, rel=1e-10)


def test_rows_are_numbered_from_one_in_every_message(capsys, tmp_path, sleep_data):
    text = sleep_data.astype(str)
    text.loc[3, "Reaction"] = "inf"  # the 4th data row
    path = tmp_path / "inf.csv"
    text.to_csv(path, index=False)
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "--data", str(path)))
    assert "(first at row 4)" in line, line


def test_text_columns_are_not_numbers(capsys, tmp_path, sleep_data, sleep_objective):
    """A column of labels (most cells not numbers) is read as text, without a complaint."""
    labelled = sleep_data.assign(Subject="S" + sleep_data["Subject"])
    labelled.loc[0, "Subject"] = "308"  # one label that looks like a number
    labelled.loc[0:9, "Subject"] = "308"
    path = tmp_path / "labels.csv"
    labelled.to_csv(path, index=False)
    record, err = fit_record(capsys, "--data", str(path))
    assert err == "" and record["objective"] == pytest.approx(sleep_objective, rel=1e-10)


def test_read_csv_is_the_datasets_reader():
    frame = mm.datasets.read_csv(io.StringIO("a;b\n1;None\nNA;x\n"), sep=";")
    assert frame["a"].isna().tolist() == [False, True]
    assert frame["b"].tolist() == ["None", "x"]  # a level named None stays a level


# -- a formula the shell split or cut short ----------------------------------------------------

HOME = str(Path("~").expanduser())


@pytest.mark.parametrize("argv, pieces", [
    # mixedmodels fit Reaction ~ Days + Days --data sleepstudy   (~ is the home directory)
    (["Reaction", HOME, "Days", "+", "Days", "--data", "sleepstudy"],
     "Reaction ~ Days + Days"),
    # the same cut at an unquoted '|': --data went to the next command of the pipe
    (["Reaction", HOME, "Days", "+", "(Days"], "Reaction ~ Days + (Days"),
    (["Reaction~Days", "+(1|Subject)", "--data", "sleepstudy"], "Reaction~Days +(1|Subject)"),
    (["--data", "sleepstudy", "Reaction", "~Days+(1|Subject)"], "Reaction ~Days+(1|Subject)"),
])
def test_split_formula_gets_a_hint_to_quote_it(capsys, argv, pieces):
    line = assert_one_line_error(*run(capsys, "fit", *argv))
    assert "the shell splits an unquoted formula" in line
    assert line.endswith(f"quote the whole formula, e.g. mixedmodels fit '{pieces}' --data ...")


@pytest.mark.parametrize("formula", ["Reaction ~ Days +", "Reaction ~ Days + (", "Reaction ~"])
def test_formula_cut_short_gets_a_hint_to_quote_it(capsys, formula):
    line = assert_one_line_error(*run(capsys, "fit", "--data", "sleepstudy", formula))
    assert f"the formula {formula!r} ends in {formula[-1]!r}" in line
    assert "quote the whole formula" in line


def test_quoted_formula_with_a_stray_argument_is_not_called_split(capsys):
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "sleep-study.csv", "--data",
                                      "sleepstudy"))
    assert "unrecognized arguments: sleep-study.csv" in line and "quote" not in line
    line = assert_one_line_error(*run(capsys, "fit", SLEEP, "sleepstudy.csv"))
    assert "--data" in line and "quote" not in line


@pytest.mark.parametrize("given", [None, ";"])
def test_decimal_commas_with_semicolons(capsys, tmp_path, sleep_data, sleep_objective, given):
    """Spreadsheets that separate fields with ';' write decimals with ','; such columns are
    read as numbers, with a note; a column of labels stays labels."""
    path = tmp_path / "euro.csv"
    euro = sleep_data.assign(Reaction=sleep_data.Reaction.map(lambda v: str(v).replace(".", ",")))
    euro.to_csv(path, sep=";", index=False)
    extra = () if given is None else ("--sep", given)
    record, err = fit_record(capsys, "--data", str(path), *extra)
    assert "read ',' as the decimal mark in 'Reaction'" in err
    assert record["objective"] == pytest.approx(sleep_objective, rel=1e-10)


def test_a_file_read_as_one_column_suggests_its_separator(capsys, tmp_path, sleep_data):
    path = tmp_path / "sleep.csv"
    sleep_data.to_csv(path, index=False)
    code, _, err = run(capsys, "fit", SLEEP, "--data", str(path), "--sep", ";")
    assert code == 2
    assert (f"mixedmodels: note: {path}: read as one column, whose name "
            "'Reaction,Days,Subject' holds ',': is that the separator (--sep ',')?") in err


def test_decimal_commas_among_whole_numbers(capsys, tmp_path, sleep_data):
    """A spreadsheet writes 250 (no comma) next to 258,7: the column is numbers all the same."""
    rounded = sleep_data.assign(Reaction=sleep_data.Reaction.round(1))
    rounded.loc[::3, "Reaction"] = rounded.Reaction[::3].round()
    euro = rounded.assign(Reaction=rounded.Reaction.map(
        lambda v: str(int(v)) if v == int(v) else str(v).replace(".", ",")))
    assert not euro.Reaction.str.contains(",").all()
    path = tmp_path / "euro.csv"
    euro.to_csv(path, sep=";", index=False)
    record, err = fit_record(capsys, "--data", str(path))
    assert "read ',' as the decimal mark in 'Reaction'" in err
    assert record["objective"] == pytest.approx(mm.lmer(SLEEP, rounded).objective, rel=1e-10)


# -- Parquet files and Dask ------------------------------------------------------------------
@pytest.fixture
def parquet_files(tmp_path):
    pytest.importorskip("pyarrow")
    frame = mm.datasets.load("sleepstudy")
    folder = tmp_path / "visits"
    folder.mkdir()
    frame.iloc[:90].to_parquet(folder / "part-0.parquet")
    frame.iloc[90:].to_parquet(folder / "part-1.parquet")
    return folder


@pytest.mark.parametrize("source", ["{folder}", "{folder}/*.parquet", "{folder}/part-0.parquet"])
def test_parquet_data_in_memory(capsys, parquet_files, source):
    code, out, _ = run(capsys, "fit", SLEEP, "--data", source.format(folder=parquet_files),
                       "--json")
    assert code == 0
    rows = 90 if source.endswith("part-0.parquet") else 180
    assert json.loads(out)["nobs"] == rows


@pytest.mark.slow
def test_dask_on_a_local_cluster(capsys, parquet_files, sleep_ref):
    pytest.importorskip("distributed")
    code, out, err = run(capsys, "fit", SLEEP, "--data", f"{parquet_files}/*.parquet",
                         "--dask", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["nobs"] == 180
    assert rel_close(record["objective"], sleep_ref["REML"]["criterion"], 1e-6)
    assert "cross-products pass" in err  # the progress bars


@pytest.mark.slow
def test_dask_mistakes(capsys, parquet_files):
    code, _, err = run(capsys, "fit", SLEEP, "--data", f"{parquet_files}/none*.parquet",
                       "--dask")
    assert code == 2 and "no file matches the pattern" in err
    code, _, err = run(capsys, "fit", SLEEP, "--data", str(parquet_files / "r.csv"), "--dask")
    assert code == 2 and "no such file" in err
    empty = parquet_files / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "fit", SLEEP, "--data", str(empty), "--dask")
    assert code == 2 and "is a directory without Parquet files" in err
    code, _, err = run(capsys, "fit", SLEEP, "--data", "sleepstudy", "--dask")
    assert code == 2 and "sleepstudy is a bundled data set, and --dask reads files" in err
    code, _, err = run(capsys, "fit", SLEEP, "--data", str(parquet_files), "--dask",
                       "--report", str(parquet_files / "r.html"))
    assert code == 2 and "--report" in err
