"""ranova: tests of the random-effects terms against lmerTest (tests/reference/ranova.json,
made by ranova_reference.R)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.inference.ranova import _linear_model_loglik

REFERENCE = json.loads((Path(__file__).parent / "reference" / "ranova.json").read_text())
IDS = [f"{c['formula']}-{'REML' if c['reml'] else 'ML'}-"
       f"{'reduce' if c['reduce_terms'] else 'remove'}" for c in REFERENCE]


@pytest.mark.parametrize("case", REFERENCE, ids=IDS)
def test_matches_lmertest(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer(case["formula"], mm.datasets.load(case["data"]), reml=case["reml"])
    table = fit.ranova(reduce_terms=case["reduce_terms"])
    assert list(table.columns) == ["npar", "logLik", "AIC", "LRT", "Df", "p"]
    assert list(table.index) == [row["label"] for row in case["rows"]]
    for row in case["rows"]:
        ours = table.loc[row["label"]]
        assert ours["npar"] == row["npar"]
        assert ours["logLik"] == pytest.approx(row["logLik"], rel=1e-7)
        assert ours["AIC"] == pytest.approx(row["AIC"], rel=1e-7)
        if row["LRT"] is None:
            assert np.isnan(ours["LRT"]) and np.isnan(ours["p"])
            continue
        assert ours["LRT"] == pytest.approx(row["LRT"], rel=1e-5, abs=1e-6)
        assert ours["Df"] == row["Df"]
        assert ours["p"] == pytest.approx(row["p"], rel=1e-4, abs=1e-12)


def test_reduced_formulas_are_recorded():
    fit = mm.lmer("Reaction ~ Days + (Days || Subject)", mm.datasets.load("sleepstudy"))
    formulas = fit.ranova().attrs["formulas"]
    # (0 + Days | Subject) reduced to (1 | Subject), which the model has already: kept once
    assert formulas["Days in (0 + Days | Subject)"] == "Reaction ~ Days + (1 | Subject)"
    assert formulas["(1 | Subject)"] == "Reaction ~ Days + (0 + Days | Subject)"


def test_reduced_formulas_keep_backquoted_names():
    data = mm.datasets.load("sleepstudy")
    data = data.assign(**{"day 1e+0": data.Days, "subject id": data.Subject})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer("Reaction ~ Days + (`day 1e+0` | `subject id`)", data)
        table = fit.ranova()
        reference = mm.lmer("Reaction ~ Days + (Days | Subject)", data).ranova()
    assert table.attrs["formulas"]["day 1e+0 in (`day 1e+0` | `subject id`)"] == \
        "Reaction ~ Days + (1 | `subject id`)"
    np.testing.assert_allclose(table["logLik"].to_numpy(), reference["logLik"].to_numpy(),
                               rtol=1e-7)


def test_linear_model_loglik_by_definition():
    """ML: the normal log-likelihood at the least-squares fit; REML: that of the n - p error
    contrasts, -0.5 [(n - p) log(2 pi s2) + log|X'X| + (n - p)] with s2 = RSS / (n - p)."""
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(40), rng.normal(size=(40, 2))])
    y = X @ [1.0, 2.0, -1.0] + rng.normal(size=40)
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    rss = float(np.sum((y - X @ beta) ** 2))
    n, p = X.shape
    ml = -0.5 * n * (np.log(2 * np.pi * rss / n) + 1)
    assert _linear_model_loglik(X, y, reml=False) == pytest.approx(ml, rel=1e-12)
    s2 = rss / (n - p)
    reml = -0.5 * ((n - p) * np.log(2 * np.pi * s2) + np.linalg.slogdet(X.T @ X)[1] + (n - p))
    assert _linear_model_loglik(X, y, reml=True) == pytest.approx(reml, rel=1e-12)
