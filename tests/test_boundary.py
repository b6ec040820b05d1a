"""Optima on the boundary are reported on it: a parameter that stops just inside its bound is
moved onto the bound when the criterion is no worse (as MixedModels.jl), and the fit is
singular, as lme4's is where it lands on the bound (boundary_fits.R)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference

import mixedmodels as mm
from mixedmodels.core.optimize import OptSettings, minimize_bobyqa, snap_to_bounds

CASES = Path(__file__).parent / "reference" / "cases"
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
