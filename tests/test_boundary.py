"""Optima on the boundary are reported on it: a parameter that stops just inside its bound is
moved onto the bound when the criterion is no worse (as MixedModels.jl), and the fit is
singular, as lme4's is where it lands on the bound (boundary_fits.R)."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import dataset_for, load_reference, reference_ids

import mixedmodels as mm
from mixedmodels.core.optimize import OptSettings, minimize_bobyqa, snap_to_bounds

CASES = Path(__file__).parent / "reference" / "cases"


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)
BOUNDARY = load_reference("boundary_fits")


@pytest.mark.parametrize("case", BOUNDARY, ids=[c["data"] for c in BOUNDARY])
def test_boundary_optimum_is_on_the_boundary(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer(case["formula"], pd.read_csv(CASES / case["data"]))
    # never worse than lme4 (where lme4 stops inside, ours is lower, on the boundary)
    assert fit.objective <= case["reml_criterion"] + 1e-7
    assert fit.objective == pytest.approx(case["reml_criterion"], abs=1e-6)
    assert fit.theta[2] == 0.0 and fit.is_singular
    np.testing.assert_allclose(fit.theta[:2], case["theta"][:2], rtol=2e-4)
    if case["is_singular"]:
        assert fit.is_singular == case["is_singular"]


def _flat_near_zero(x):
    """Minimum on the boundary x1 = 0, flat to 1e-13 there (a derivative-free optimizer
    stops anywhere in that flat region)."""
    return (x[0] - 1.0) ** 2 + 1e-13 * x[1]


def test_snap_moves_a_parameter_just_inside_its_bound():
    summary = minimize_bobyqa(_flat_near_zero, np.array([0.5, 5e-4]), np.array([-np.inf, 0.0]),
                              OptSettings(initial_step=1e-4))
    inside = np.array([1.0, 5e-4])  # where a stop in the flat region may leave it
    summary = dataclasses.replace(summary, final=inside, fmin=_flat_near_zero(inside))
    snapped = snap_to_bounds(_flat_near_zero, summary)
    assert snapped.final[1] == 0.0 and snapped.fmin <= summary.fmin
    assert snapped.evaluations == summary.evaluations + 1


def test_snap_keeps_a_parameter_whose_bound_is_worse():
    def objective(x):
        return (x[0] - 2e-4) ** 2

    summary = minimize_bobyqa(objective, np.array([0.5]), np.array([0.0]))
    assert 0 < summary.final[0] < 1e-3
    assert snap_to_bounds(objective, summary).final[0] == summary.final[0]


def _penicillin_between_sample():
    data = mm.datasets.load("Penicillin")
    data["x"] = np.tile(np.arange(6.0), 24)  # constant within each sample, as f below
    data["f"] = np.array(["a", "b", "c"])[np.arange(144) % 3]
    return data


@pytest.mark.parametrize("formula, term, columns", [
    ("diameter ~ sample + (1 | plate) + (1 | sample)", "(1 | sample)", ("(Intercept)",)),
    ("diameter ~ x * f + (1 | plate) + (x | sample)", "(x | sample)", ("(Intercept)", "x")),
])
def test_random_columns_in_the_span_of_the_fixed_effects(formula, term, columns):
    """A random-effects column that lies, level by level, in X's span (the grouping factor
    also a fixed effect, or fixed effects that tell its levels apart): the REML criterion is
    flat in its variance (checked here along that parameter), so a FitWarning names it, the
    model records it and the summary says it is not estimable. ML fits are not warned: their
    criterion depends on it."""
    data = _penicillin_between_sample()
    with pytest.warns(mm.FitWarning, match=re.escape(term) + ".*lies, level by level"):
        model = mm.LinearMixedModel(formula, data)
    assert model.within_fixed_span == ((term, columns),)
    fit = _quiet(model.fit)
    theta = fit.theta.copy()
    criteria = []
    for scale in (0.0, 0.5, 4.0):  # the sample term's first entry of lam
        theta[1] = scale * fit.theta[1]
        criteria.append(model.objective(theta))
    np.testing.assert_allclose(criteria, fit.objective, rtol=1e-11)
    assert "not estimable" in str(fit.summary())
    with warnings.catch_warnings():
        warnings.simplefilter("error", mm.FitWarning)
        assert mm.LinearMixedModel(formula, data, reml=False).within_fixed_span == ()


def test_combinations_and_partly_zero_columns_in_the_fixed_span():
    """A combination of a term's columns (g + (0 + a | g): aA + aB is g's indicator), and a
    slope on a covariate that is zero outside one level (t only in g0, so 1 level of 10 is
    used, and there it is t itself): flagged, with the REML criterion flat along them."""
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(8)], 12),
                         "a": np.tile(np.repeat(["A", "B"], 6), 8), "y": rng.normal(size=96)})
    with pytest.warns(mm.FitWarning, match=r"the combination aA \+ aB of its columns lies"):
        model = mm.LinearMixedModel("y ~ g + a + (0 + a | g)", data)
    assert model.within_fixed_span == (("(0 + a | g)", ("aA + aB",)),)
    criteria = [model.objective(np.array([s, s, 0.0])) for s in (0.5, 1.0, 2.0)]
    np.testing.assert_allclose(criteria, criteria[0], rtol=1e-11)
    slope = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(10)], 6),
                          "y": rng.normal(size=60)})
    slope["t"] = (slope.g == "g0").astype(float)
    with pytest.warns(mm.FitWarning, match="its column t lies"):
        model = mm.LinearMixedModel("y ~ t + (0 + t | g)", slope)
    criteria = [model.objective(np.array([s])) for s in (0.0, 1.0, 3.0)]
    np.testing.assert_allclose(criteria, criteria[0], rtol=1e-11)


@pytest.mark.parametrize("model_id", reference_ids())
def test_no_reference_model_has_random_columns_in_the_fixed_span(model_id):
    record = load_reference(model_id)
    model = _quiet(mm.LinearMixedModel, record["formula"], dataset_for(record))
    assert model.within_fixed_span == ()
