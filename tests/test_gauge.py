"""Gauge R&R: REML components from lmer, ANOVA-method components by hand, the AIAG table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

FORMULA = "y ~ 1 + (1|part) + (1|operator) + (1|part:operator)"


def crossed(seed: int = 20240601, parts: int = 10, operators: int = 3, reps: int = 3):
    rng = np.random.default_rng(seed)
    part_effect = rng.normal(0, 2.0, parts)
    oper_effect = rng.normal(0, 0.5, operators)
    inter = rng.normal(0, 0.3, (parts, operators))
    rows = []
    for i in range(parts):
        for j in range(operators):
            for _ in range(reps):
                y = 10 + part_effect[i] + oper_effect[j] + inter[i, j] + rng.normal(0, 0.4)
                rows.append((f"P{i + 1}", f"O{j + 1}", y))
    return pd.DataFrame(rows, columns=["part", "operator", "y"])


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return crossed()


@pytest.fixture(scope="module")
def study(data):
    return mm.gauge_rr(data, "part", "operator", "y", tolerance=15.0)


def test_reml_components_are_lmer_s(data, study):
    vc = mm.lmer(FORMULA, data).varcorr.set_index("group")["vcov"]
    v = study.table["variance"]
    assert v["repeatability"] == vc["Residual"]
    assert v["operator"] == vc["operator"]
    assert v["operator x part"] == vc["part:operator"]
    assert v["part-to-part"] == vc["part"]
    assert v["reproducibility"] == vc["operator"] + vc["part:operator"]
    assert v["total gauge R&R"] == pytest.approx(
        vc["Residual"] + vc["operator"] + vc["part:operator"], rel=1e-14)
    assert v["total variation"] == pytest.approx(vc.sum(), rel=1e-14)
    assert list(study.table.index) == list(mm.gauge.COMPONENTS)


def test_anova_method_by_hand(data, study):
    p, o, r = 10, 3, 3
    y = data["y"].to_numpy().reshape(p, o, r)  # rows are ordered part, operator, replicate
    m = y.mean()
    part_mean, oper_mean, cell_mean = y.mean(axis=(1, 2)), y.mean(axis=(0, 2)), y.mean(axis=2)
    ms_p = o * r * np.sum((part_mean - m) ** 2) / (p - 1)
    ms_o = p * r * np.sum((oper_mean - m) ** 2) / (o - 1)
    resid = cell_mean - part_mean[:, None] - oper_mean[None, :] + m
    ms_po = r * np.sum(resid ** 2) / ((p - 1) * (o - 1))
    ms_e = np.sum((y - cell_mean[:, :, None]) ** 2) / (p * o * (r - 1))
    a = study.anova_components["variance"]
    assert a["repeatability"] == pytest.approx(ms_e, rel=1e-10)
    assert a["operator x part"] == pytest.approx((ms_po - ms_e) / r, rel=1e-10)
    assert a["operator"] == pytest.approx((ms_o - ms_po) / (p * r), rel=1e-10)
    assert a["part-to-part"] == pytest.approx((ms_p - ms_po) / (o * r), rel=1e-10)
    assert study.mean_squares.loc["part", "MS"] == pytest.approx(ms_p, rel=1e-10)
    assert study.mean_squares.loc["repeatability", "df"] == 60
    assert study.balanced and study.replicates == 3
    # all positive here, so REML and ANOVA agree for balanced data
    assert np.allclose(study.table["variance"], study.table["variance (ANOVA)"], rtol=1e-4)


def test_percentages_add_up(study):
    t = study.table
    assert t.loc["total gauge R&R", "% contribution"] + t.loc["part-to-part", "% contribution"] \
        == pytest.approx(100, rel=1e-12)
    assert t.loc["total variation", "% contribution"] == pytest.approx(100)
    assert t.loc["total variation", "% study variation"] == pytest.approx(100)
    v = t["variance"]
    assert v["repeatability"] + v["reproducibility"] == pytest.approx(v["total gauge R&R"])
    assert np.allclose(t["sd"], np.sqrt(v))
    assert np.allclose(t["study variation"], 6 * t["sd"])
    total_sd = math.sqrt(v["total variation"])
    assert t.loc["part-to-part", "% study variation"] == pytest.approx(
        100 * math.sqrt(v["part-to-part"]) / total_sd)


def test_tolerance_and_ndc(study, data):
    t = study.table
    assert t.loc["total gauge R&R", "% tolerance"] == pytest.approx(
        100 * 6 * math.sqrt(t.loc["total gauge R&R", "variance"]) / 15.0)
    expected = math.floor(1.41 * t.loc["part-to-part", "sd"] / t.loc["total gauge R&R", "sd"])
    assert study.ndc == expected and study.ndc >= 1
    without = mm.gauge_rr(data, "part", "operator", "y")
    assert "% tolerance" not in without.table.columns


def test_odd_column_names(data, study):
    renamed = data.rename(columns={"part": "Part no.", "operator": "Op (name)", "y": "y val"})
    other = mm.gauge_rr(renamed, "Part no.", "Op (name)", "y val", tolerance=15.0)
    pd.testing.assert_frame_equal(other.table, study.table)
    assert "Op (name)" in str(other)


def test_unbalanced(data):
    unbalanced = data.drop(index=[0, 4, 40]).reset_index(drop=True)
    study = mm.gauge_rr(unbalanced, "part", "operator", "y")
    assert not study.balanced and study.mean_squares is None
    assert study.table["variance (ANOVA)"].isna().all()
    assert any("unbalanced" in note for note in study.notes)
    vc = mm.lmer(FORMULA, unbalanced).varcorr.set_index("group")["vcov"]
    assert study.table.loc["part-to-part", "variance"] == vc["part"]
    assert (study.table["variance"] >= 0).all()


@pytest.mark.filterwarnings("ignore::mixedmodels.FitWarning")
def test_negative_anova_estimate_is_flagged():
    # operators identical on average: MS_O < MS_PO is likely; search seeds for one
    for seed in range(50):
        rng = np.random.default_rng(seed)
        rows = [(f"P{i}", f"O{j}", i + rng.normal(0, 1)) for i in range(5) for j in range(3)
                for _ in range(2)]
        frame = pd.DataFrame(rows, columns=["p", "o", "y"])
        study = mm.gauge_rr(frame, "p", "o", "y")
        if study.anova_components.loc["operator", "variance"] < 0:
            break
    else:  # pragma: no cover
        pytest.fail("no seed gave a negative operator estimate")
    assert study.anova_components.loc["operator", "negative"]
    assert any("negative" in note for note in study.notes)
    assert study.table.loc["operator", "variance"] >= 0


def test_rendering(study):
    text = str(study)
    assert "total gauge R&R" in text and "% tolerance" in text
    assert f"Number of distinct categories: {study.ndc}" in text
    html = study._repr_html_()
    assert "<table" in html and "part-to-part" in html


def test_missing_measurements_are_dropped_and_counted(data):
    """As a fit's: a warning counting the rows, a note in the printed study, and the header's
    number of measurements; the study is that of the complete rows."""
    holed = data.rename(columns={"y": "Y"})
    holed.loc[[3, 17], "Y"] = np.nan
    holed.loc[25, "operator"] = None
    with pytest.warns(mm.DataWarning, match=r"^dropped 3 of 90 measurements with a missing "
                                            r"part, operator or response \(rows 3, 17, 25\)$"):
        study = mm.gauge_rr(holed, "part", "operator", "Y")
    assert study.notes[0].startswith("dropped 3 of 90 measurements")
    assert str(study).splitlines()[0].endswith(", 87 measurements")
    complete = mm.gauge_rr(holed.dropna(), "part", "operator", "Y")
    pd.testing.assert_frame_equal(study.table, complete.table)


def test_infinite_measurement_names_the_response(data):
    bad = data.rename(columns={"y": "Y"})
    bad.loc[4, "Y"] = np.inf
    with pytest.raises(mm.DataError, match=r"^response column 'Y' has 1 infinite value\(s\) "
                                           r"\(row 4\)"):
        mm.gauge_rr(bad, "part", "operator", "Y")


def test_errors(data):
    with pytest.raises(mm.DataError, match="'nope'"):
        mm.gauge_rr(data, "nope", "operator", "y")
    with pytest.raises(mm.DataError, match="numeric"):
        mm.gauge_rr(data.assign(label="a"), "part", "operator", "label")
    with pytest.raises(mm.DataError, match="different"):
        mm.gauge_rr(data, "part", "operator", "operator")
    single = data.groupby(["part", "operator"]).head(1)
    with pytest.raises(mm.DataError, match="repeated measurements"):
        mm.gauge_rr(single, "part", "operator", "y")
    with pytest.raises(mm.DataError, match="tolerance"):
        mm.gauge_rr(data, "part", "operator", "y", tolerance=-1)


@pytest.mark.slow
def test_profile_intervals(study):
    ci = study.confint()
    profile = study.fit.confint("profile")
    assert ci.loc["repeatability", "lower"] == pytest.approx(profile.loc["sigma", "lower"] ** 2)
    assert ci.loc["part-to-part", "upper"] == pytest.approx(
        profile.loc["sd_(Intercept)|part", "upper"] ** 2)
    assert ci.loc["operator x part", "lower"] == pytest.approx(
        profile.loc["sd_(Intercept)|part:operator", "lower"] ** 2)
    for name in ("repeatability", "operator", "operator x part", "part-to-part"):
        assert ci.loc[name, "lower"] <= ci.loc[name, "variance"] <= ci.loc[name, "upper"]
    assert ci.loc["total gauge R&R"].iloc[1:].isna().all()
