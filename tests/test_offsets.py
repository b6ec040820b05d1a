"""offset(...) terms: the fit of y - offset, with the offset in fitted values, residuals,
predictions and simulations, against lme4 (tests/reference/offsets.json, made by offsets.R)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.formula.parse import parse_formula, without_r_operators

REFERENCE = json.loads((Path(__file__).parent / "reference" / "offsets.json").read_text())
NEW = pd.DataFrame({"Days": [0.0, 4.5, 9.0], "Subject": ["308", "330", "372"]})


def _fit(formula, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, mm.datasets.load("sleepstudy"), reml=reml)


@pytest.mark.parametrize("record", REFERENCE, ids=[r["formula"] for r in REFERENCE])
def test_matches_lme4(record):
    fit = _fit(record["formula"])
    assert fit.objective == pytest.approx(record["reml_criterion"], rel=1e-8)
    assert _fit(record["formula"], reml=False).objective == pytest.approx(
        record["ml_deviance"], rel=1e-8)
    assert list(fit.fixef.index) == list(record["fixef"])
    se = np.array(list(record["se"].values()))
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(record["fixef"].values()),
                               rtol=0, atol=1e-4 * se.min())
    np.testing.assert_allclose(fit.stderr.to_numpy(), se, rtol=1e-4)
    assert fit.sigma == pytest.approx(record["sigma"], rel=1e-5)
    tol = 1e-4 * fit.sigma
    np.testing.assert_allclose(fit.fitted[:12], record["fitted_head"], rtol=0, atol=tol)
    np.testing.assert_allclose(fit.residuals[:12], record["resid_head"], rtol=0, atol=tol)
    np.testing.assert_allclose(fit.predict(NEW), record["predict_new"], rtol=0, atol=tol)
    np.testing.assert_allclose(fit.predict(NEW, include_random=False),
                               record["predict_new_population"], rtol=0, atol=tol)


def test_offset_is_the_fit_of_the_shifted_response():
    data = mm.datasets.load("sleepstudy")
    with_offset = _fit("Reaction ~ Days + offset(3 * Days) + (Days | Subject)")
    shifted = mm.lmer("y ~ Days + (Days | Subject)", data.assign(y=data.Reaction - 3 * data.Days))
    assert with_offset.objective == pytest.approx(shifted.objective, rel=1e-12)
    np.testing.assert_allclose(with_offset.fixef, shifted.fixef, rtol=1e-9)
    offset = 3 * data.Days.to_numpy()
    np.testing.assert_allclose(with_offset.fitted, shifted.fitted + offset, rtol=1e-9)
    np.testing.assert_allclose(with_offset.resid("marginal"), shifted.resid("marginal"),
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(with_offset.fitted_values("marginal"),
                               shifted.fitted_values("marginal") + offset, rtol=1e-9)
    # simulations and the bootstrap simulate around X beta + offset and refit y - offset
    draws = with_offset.simulate(2, seed=4) - offset[:, None]
    np.testing.assert_allclose(draws, shifted.simulate(2, seed=4), rtol=1e-8, atol=1e-8)
    boot = with_offset.bootstrap(3, seed=2, progress=False)
    reference = shifted.bootstrap(3, seed=2, progress=False)
    np.testing.assert_allclose(boot.replicates.to_numpy(), reference.replicates.to_numpy(),
                               rtol=1e-6)


def test_parsing():
    parsed = parse_formula("y ~ x + offset(log(n)) + (1 | g) + offset(z)")
    assert parsed.fixed == "x" and parsed.offsets == ("I(log(n))", "I(z)")
    assert without_r_operators(parse_formula("y ~ offset(x^2) + (1 | g)").offsets[0]) == \
        "I(x**2)"
    assert parse_formula("y ~ offset(z) + (1 | g)").fixed == "1"
    with pytest.raises(mm.FormulaError, match="subtracted"):
        parse_formula("y ~ x - offset(z) + (1 | g)")
    with pytest.raises(mm.FormulaError, match="offset"):
        _fit("Reaction ~ Days + offset(Dayz) + (1 | Subject)")


def test_missing_offset_values_drop_rows():
    data = mm.datasets.load("sleepstudy").assign(o=lambda f: f.Days * 1.0)
    data.loc[[3, 7], "o"] = np.nan
    with pytest.warns(mm.DataWarning, match="2 of 180"):
        fit = mm.lmer("Reaction ~ Days + offset(o) + (1 | Subject)", data)
    assert fit.nobs == 178
    new = NEW.assign(o=[1.0, np.nan, 2.0])
    predicted = fit.predict(new)
    assert np.isfinite(predicted[[0, 2]]).all() and np.isnan(predicted[1])
