"""Ill-conditioned fixed effects: nearly collinear columns of X give the fit of a
well-conditioned basis of the same column space, mapped back.

Under X -> X B (B invertible) the fitted values, the variance components and the ML criterion
are unchanged, beta -> B^-1 beta, Var(beta) -> B^-1 Var(beta) B^-T, and the REML criterion
changes by 2 log|det B| (log|X'V^-1X| does). Forming X'X of nearly collinear columns loses
their small directions to rounding, so the fit works with orthonormal columns instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

CASES = Path(__file__).parent / "reference" / "cases"


def _fit(formula, data, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, data, reml=reml)


def test_near_collinear_matches_the_well_conditioned_fit():
    """lme4's fit of y ~ x1 + x2 + (1 + x1 | group) on the basis [1, x1, 1e6 (x2 - x1)],
    mapped back (the values of the case's README, given to the digits shown)."""
    data = pd.read_csv(CASES / "near_collinear.csv")
    fit = _fit("y ~ x1 + x2 + (1 + x1 | group)", data)
    assert fit.objective == pytest.approx(28698.76678, abs=5e-6)
    vcov = fit.varcorr.vcov.to_numpy()
    np.testing.assert_allclose(vcov, [1.25095, 0.21032, 0.04807, 0.987087], atol=1.5e-5)
    assert fit.stderr["(Intercept)"] == pytest.approx(0.158488, abs=1.5e-6)
    assert fit.converged


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("gap", [1e-4, 1e-5])
def test_basis_change_of_a_nearly_collinear_design(reml, gap):
    """[1, Days, Days + gap z] against [1, Days, z]: B = [[1,0,0],[0,1,1],[0,0,gap]]."""
    z = np.random.default_rng(4).normal(size=180)
    data = mm.datasets.load("sleepstudy").assign(z=z, near=lambda f: f.Days + gap * z)
    good = _fit("Reaction ~ Days + z + (Days | Subject)", data, reml)
    bad = _fit("Reaction ~ Days + near + (Days | Subject)", data, reml)
    B = np.array([[1, 0, 0], [0, 1, 1], [0, 0, gap]], dtype=float)
    shift = 2 * np.log(abs(np.linalg.det(B))) if reml else 0.0
    assert bad.objective == pytest.approx(good.objective + shift, rel=1e-9)
    np.testing.assert_allclose(bad.varcorr.sdcor, good.varcorr.sdcor, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bad.beta, np.linalg.solve(B, good.beta), rtol=1e-5)
    expected = np.linalg.solve(B, np.linalg.solve(B, good.vcov.to_numpy()).T)
    np.testing.assert_allclose(bad.vcov.to_numpy(), expected, rtol=1e-4)
    np.testing.assert_allclose(bad.fitted, good.fitted, rtol=1e-6)


def test_polynomial_far_from_zero():
    """t and t^2 for t near 100 (columns nearly collinear) against the centred polynomial:
    the same column space, so the same ML fit."""
    data = mm.datasets.load("sleepstudy").assign(t=lambda f: 100 + f.Days / 10,
                                                 c=lambda f: f.Days / 10)
    raw = _fit("Reaction ~ t + I(t^2) + (1 | Subject)", data, reml=False)
    centred = _fit("Reaction ~ c + I(c^2) + (1 | Subject)", data, reml=False)
    assert raw.objective == pytest.approx(centred.objective, rel=1e-10)
    np.testing.assert_allclose(raw.varcorr.sdcor, centred.varcorr.sdcor, rtol=1e-6)
    np.testing.assert_allclose(raw.fitted, centred.fitted, rtol=1e-6)
