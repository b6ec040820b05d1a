"""A response far from its residual (a large constant added, say) fits as the response itself
does: the cross-products are formed from y - X b0 (``core.response_shift``), b0 added back to
the fixed effects. References: lme4's fit of the unshifted data (tests/reference), and the
invariance of the criterion, theta and sigma under y -> y + X c."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import load_reference

import mixedmodels as mm
from mixedmodels.core.response_shift import SHIFT_RATIO, response_shift
from mixedmodels.design.build import response_qr

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleepstudy():
    return mm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def unshifted(sleepstudy):
    return mm.lmer(FORMULA, sleepstudy)


def test_lme4s_criterion_at_any_shift(sleepstudy, unshifted):
    """Before, + 1e6 stopped 2.5e-4 above lme4's criterion, + 1e7 0.024 above, + 1e8 25 above
    with theta's last entry 0.87 for 0.23."""
    reference = load_reference("sleepstudy_corr")
    assert unshifted.model.response_shift is None  # ordinary data: lme4's arithmetic
    assert unshifted.objective == pytest.approx(reference["REML"]["criterion"], rel=1e-9)
    for shift in (1e5, 1e6, 1e7, 1e8, -3e8):
        fit = mm.lmer(FORMULA, sleepstudy.assign(Reaction=sleepstudy.Reaction + shift))
        assert fit.model.response_shift is not None
        assert fit.objective == pytest.approx(reference["REML"]["criterion"], rel=1e-9), shift
        np.testing.assert_allclose(fit.theta, unshifted.theta, rtol=2e-5, atol=2e-6)
        assert fit.sigma == pytest.approx(unshifted.sigma, rel=1e-6)
        np.testing.assert_allclose(fit.beta - [shift, 0.0], unshifted.beta, rtol=1e-7,
                                   atol=1e-8 * abs(shift))
        np.testing.assert_allclose(fit.stderr, unshifted.stderr, rtol=1e-5)
        np.testing.assert_allclose(fit.fitted_values() - shift, unshifted.fitted_values(),
                                   atol=1e-8 * abs(shift))
        np.testing.assert_allclose(fit.ranef["Subject"], unshifted.ranef["Subject"],
                                   rtol=1e-4, atol=1e-4)


def test_a_shift_along_a_covariate_and_ml(sleepstudy, unshifted):
    """y + X c for any c in X's column space (a large slope too), by ML as by REML."""
    ml = mm.lmer(FORMULA, sleepstudy, reml=False)
    data = sleepstudy.assign(Reaction=sleepstudy.Reaction + 3e7 - 2e6 * sleepstudy.Days)
    for reml, reference in ((True, unshifted), (False, ml)):
        fit = mm.lmer(FORMULA, data, reml=reml)
        assert fit.objective == pytest.approx(reference.objective, rel=1e-10)
        np.testing.assert_allclose(fit.beta - [3e7, -2e6], reference.beta, atol=1e-4)


def test_the_shift_is_what_least_squares_leaves():
    """b0 is the least-squares fit, and only where |y| > SHIFT_RATIO |y - X b0|."""
    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(40), rng.normal(size=40)])
    noise = rng.normal(size=40)
    far = X @ [5e6, 3.0] + noise
    b0 = response_shift(response_qr(X, far))
    np.testing.assert_allclose(b0, np.linalg.lstsq(X, far, rcond=None)[0], rtol=1e-12,
                               atol=1e-8)  # (to the rounding of values of 5e6)
    near = X @ [0.1 * SHIFT_RATIO, 0.0] + noise * 1.2  # |y| / |r| about 9
    assert response_shift(response_qr(X, near)) is None
    assert response_shift(response_qr(X[:, :0], far)) is None


def test_profile_and_wald_intervals_move_with_the_intercept(sleepstudy, unshifted):
    shift = 1e7
    fit = mm.lmer(FORMULA, sleepstudy.assign(Reaction=sleepstudy.Reaction + shift))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = fit.confint(parameters=["(Intercept)", "Days", "sigma"])
        theirs = unshifted.confint(parameters=["(Intercept)", "Days", "sigma"])
    theirs.loc["(Intercept)"] += shift
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-6, atol=2e-3)
    wald = fit.confint(method="wald").loc["(Intercept)"] - shift
    np.testing.assert_allclose(wald, unshifted.confint(method="wald").loc["(Intercept)"],
                               atol=1e-5)


def test_a_new_response_is_shifted_on_its_own(sleepstudy, unshifted):
    """``with_response`` (refits, the parametric bootstrap) decides for its own response."""
    y = sleepstudy.Reaction.to_numpy() + 1e7
    refit = unshifted.model.with_response(y).fit()
    assert refit.model.response_shift is not None
    assert unshifted.model.response_shift is None
    assert refit.objective == pytest.approx(unshifted.objective, rel=1e-9)
    back = refit.model.with_response(sleepstudy.Reaction.to_numpy()).fit()
    assert back.model.response_shift is None
    assert back.objective == pytest.approx(unshifted.objective, rel=1e-12)


def test_residual_structures_too():
    """gls with AR(1) residuals and lmer with a variance function, far from 0."""
    data = mm.datasets.load("orthodont")
    far = data.assign(distance=data.distance + 1e8)
    gls = "distance ~ age * Sex"
    for fit in (lambda d: mm.gls(gls, d, correlation="ar1(age | Subject)"),
                lambda d: mm.lmer("distance ~ age + (1 | Subject)", d, variance="ident(Sex)")):
        near, shifted = fit(data), fit(far)
        assert shifted.objective == pytest.approx(near.objective, rel=1e-9)
        np.testing.assert_allclose(shifted.theta, near.theta, rtol=1e-4, atol=1e-5)


def test_partitions_shift_as_memory_does(sleepstudy):
    dd = pytest.importorskip("dask.dataframe")
    data = sleepstudy.assign(Reaction=sleepstudy.Reaction + 1e7)
    memory = mm.lmer(FORMULA, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        partitioned = mm.lmer(FORMULA, dd.from_pandas(data, npartitions=3))
    assert partitioned.model.response_shift is not None
    assert partitioned.objective == pytest.approx(memory.objective, rel=1e-10)
    np.testing.assert_allclose(partitioned.theta, memory.theta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(partitioned.beta, memory.beta, rtol=1e-9)
