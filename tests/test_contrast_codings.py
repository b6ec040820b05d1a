"""Type I, II and III ANOVA tables and their contrasts against lmerTest, with and without an
intercept (tests/reference/contrast_codings.json, made by contrast_codings.R; the models whose
factors are treatment-coded).

lmerTest's contrast rows are matched exactly, not only their span: the Satterthwaite df of a
multi-df test depends on the rows (its F does not).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.inference import contrasts

HERE = Path(__file__).parent / "reference"
REFERENCE = json.loads((HERE / "contrast_codings.json").read_text())
MODELS = {model["id"]: model for model in REFERENCE["models"] if "C(" not in model["formula"]}
DATA = {"split_plot": lambda: pd.read_csv(HERE / "cases" / "split_plot_noint.csv"),
        "sleepstudy_period": lambda: pd.read_csv(HERE / "cases" / "sleepstudy_period.csv"),
        "sim": lambda: pd.DataFrame(REFERENCE["data"]["sim"])}
DDF = {"Satterthwaite": "satterthwaite", "Kenward-Roger": "kenward-roger"}
TABLES = [(model_id, key) for model_id, model in MODELS.items() for key in model["tables"]]
BUILDERS = {"type1": contrasts.type1_contrasts, "type2": contrasts.type2_contrasts,
            "type3": contrasts.type3_contrasts}

_FITS: dict = {}


def _fit(formula: str, data: str, reml: bool):
    key = (formula, data, reml)
    if key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = mm.lmer(formula, DATA[data](), reml=reml)
    return _FITS[key]


def _reference_fit(model_id: str):
    model = MODELS[model_id]
    return _fit(model["formula"], model["data"], model["REML"])


def _assert_table(fit, key: str, rows: list[dict], rename=lambda term: term):
    kind, ddf = key.split("_")
    table = fit.anova(DDF[ddf], type=int(kind[-1]))
    assert list(table.index) == [rename(row["term"]) for row in rows]
    for row in rows:
        ours = table.loc[rename(row["term"])]
        assert ours["num_df"] == row["numdf"]
        assert ours["F"] == pytest.approx(row["F"], rel=1e-4)
        assert ours["den_df"] == pytest.approx(row["dendf"], rel=1e-3)
        assert ours["p"] == pytest.approx(row["p"], rel=2e-3, abs=1e-10)


@pytest.mark.parametrize("model_id", MODELS)
def test_fixed_effects_named_as_lme4(model_id):
    fit = _reference_fit(model_id)
    assert list(fit.x_names) == MODELS[model_id]["x_names"]
    np.testing.assert_allclose(fit.beta, MODELS[model_id]["fixef"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("model_id, key", TABLES, ids=[f"{m}-{k}" for m, k in TABLES])
def test_anova_matches_lmertest(model_id, key):
    _assert_table(_reference_fit(model_id), key, MODELS[model_id]["tables"][key])


@pytest.mark.parametrize("model_id", MODELS)
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_contrast_rows_are_lmertests(model_id, kind):
    """The rows themselves (lmerTest's Doolittle rows for types I and II, and for type III
    with one term), to rounding."""
    design = _reference_fit(model_id).model.design
    ours = BUILDERS[kind](design.formula.fixed, design.frame, design.x_names)
    theirs = MODELS[model_id]["contrasts"][kind]
    assert list(ours) == list(theirs)
    for term, rows in theirs.items():
        np.testing.assert_allclose(ours[term], np.array(rows, dtype=float), rtol=0, atol=1e-8,
                                   err_msg=f"{kind} {term}")


def test_split_plot_without_intercept_type2_dendf():
    """The Satterthwaite df of a multi-df type II test depends on the rows' scaling."""
    table = _reference_fit("split_plot_noint_ml").anova(type=2)
    assert table.loc["a", "den_df"] == pytest.approx(6.1062, abs=1e-4)
    assert table.loc["a", "F"] == pytest.approx(131.701, rel=1e-5)
    assert table.loc["a", "p"] == pytest.approx(6.183e-06, rel=1e-3)
