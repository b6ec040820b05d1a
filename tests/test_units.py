"""What a fit reports does not depend on the units of its covariates or prior weights.

Rescaling a random slope's covariate by c rescales its theta by 1/c; rescaling the weights by
c rescales sigma by sqrt(c) and theta by 1/sqrt(c). The model is the same, and so are whether
the fit is on the boundary, the convergence check and Satterthwaite's df. Each of these was
decided on theta itself with an absolute threshold or step (lme4's isSingular: theta < 1e-4),
and on sleepstudy with Days * 1e5 the fit was called singular, the convergence check reported
a gradient of -7544 at the optimum, and the slope's df were 0.11 against 17.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mixedmodels as mm

SLEEP = mm.datasets.load("sleepstudy")
WEIGHTS = np.tile([1.0, 2.0, 0.5], 60)


def _fit(data, formula="Reaction ~ X + (X | Subject)", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", mm.FitWarning)  # no boundary or convergence warning
        return mm.lmer(formula, data, **kwargs)


@pytest.fixture(scope="module")
def base():
    return _fit(SLEEP.assign(X=SLEEP["Days"]))


@pytest.mark.parametrize("unit", [1e-4, 1e4, 1e5, 1e6])
def test_a_covariate_in_other_units(base, unit):
    fit = _fit(SLEEP.assign(X=SLEEP["Days"] * unit))
    assert not fit.is_singular
    assert fit.check_convergence().converged
    ours = fit.coef_table(ddf="satterthwaite")
    theirs = base.coef_table(ddf="satterthwaite")
    np.testing.assert_allclose(ours["df"], theirs["df"], rtol=1e-6)
    np.testing.assert_allclose(ours.iloc[:, -1], theirs.iloc[:, -1], rtol=1e-5)
    assert fit.objective == pytest.approx(base.objective + 2 * np.log(unit), rel=1e-10)


@pytest.mark.parametrize("scale", [1e-12, 1e12])
def test_weights_in_other_units(scale):
    base = _fit(SLEEP.assign(X=SLEEP["Days"], w=WEIGHTS), weights="w")
    fit = _fit(SLEEP.assign(X=SLEEP["Days"], w=WEIGHTS * scale), weights="w")
    assert not fit.is_singular
    assert fit.check_convergence().converged
    np.testing.assert_allclose(fit.coef_table(ddf="satterthwaite")["df"],
                               base.coef_table(ddf="satterthwaite")["df"], rtol=1e-6)
    assert fit.sigma == pytest.approx(base.sigma * np.sqrt(scale), rel=1e-7)


def test_a_boundary_fit_in_other_units_is_still_one():
    """A slope whose variance is 0 stays on the boundary in any unit."""
    rng = np.random.default_rng(5)
    data = SLEEP.assign(Reaction=250 + 10 * SLEEP["Days"] + rng.normal(size=180) * 30
                        + np.repeat(rng.normal(size=18) * 20, 10))
    for unit in (1.0, 1e-4, 1e5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = mm.lmer("Reaction ~ X + (X | Subject)", data.assign(X=data["Days"] * unit))
        assert fit.is_singular


@pytest.mark.parametrize("unit", [1e-4, 1e4])
@pytest.mark.parametrize("structure", ["cs", "toep"])
def test_a_structured_term_on_a_covariate_in_other_units(structure, unit):
    """cs(x | g) and toep(x | g) with one sd per column are, for two columns, the model of
    (x | g): the same optimum in any unit of x (cs stopped 0.12 above it at Days * 1e4, its
    sds unscaled), not on the boundary."""
    data = SLEEP.assign(X=SLEEP["Days"] * unit)
    base = _fit(data)
    fit = _fit(data, f"Reaction ~ X + {structure}(X | Subject)")
    assert fit.objective == pytest.approx(base.objective, abs=1e-7)
    assert not fit.is_singular
