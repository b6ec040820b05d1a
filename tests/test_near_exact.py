"""A response fitted almost exactly by the fixed and random effects (residual sd 1e-5 to 1e-6
of the groups'): the cross-products' r^2 and REML's log|R_X|^2 keep too little precision
there, and are formed from the rows (``core.pls.PLSSystem.row_residuals``). The criterion is
checked against the dense-V formula evaluated with 50 significant digits (mpmath)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.core.optimize import OptSettings

mpmath = pytest.importorskip("mpmath")


def _data(noise: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 5)
    x = np.tile(np.arange(5.0), 6)
    u, e = rng.normal(0, 3, 6), rng.normal(0, 1, 30)
    return pd.DataFrame({"g": g.astype(str), "x": x, "y": 2 + 0.5 * x + u[g] + noise * e})


def _exact_reml(data: pd.DataFrame, theta: float) -> float:
    """lme4's profiled REML criterion of y ~ x + (1 | g) at theta, from H = I + theta^2 Z Z'
    (V = sigma^2 H): log|H| + log|X'H^-1 X| + (n - p)(1 + log(2 pi r^2 / (n - p))), with
    r^2 = (y - X b)'H^-1 (y - X b), in 50-digit arithmetic. H is block diagonal, one block
    I + theta^2 11' per group of m rows: its inverse is I - theta^2 / (1 + m theta^2) 11' and
    its determinant 1 + m theta^2."""
    with mpmath.workdps(50):
        t2 = mpmath.mpf(theta) ** 2
        rows = [(mpmath.mpf(1), mpmath.mpf(float(x)), mpmath.mpf(float(y)))
                for x, y in zip(data["x"], data["y"])]
        groups = data.groupby("g", sort=False).indices.values()
        gram = mpmath.matrix(3, 3)  # [X y]' H^-1 [X y]
        logdet_h = mpmath.mpf(0)
        for members in groups:
            m = len(members)
            shrink = t2 / (1 + m * t2)
            logdet_h += mpmath.log(1 + m * t2)
            sums = [sum(rows[i][a] for i in members) for a in range(3)]
            for a in range(3):
                for c in range(3):
                    gram[a, c] += (sum(rows[i][a] * rows[i][c] for i in members)
                                   - shrink * sums[a] * sums[c])
        xtx = gram[:2, :2]
        b = xtx ** -1 * gram[:2, 2]
        r2 = gram[2, 2] - (gram[2, :2] * b)[0]
        dof = len(rows) - 2
        return float(logdet_h + mpmath.log(mpmath.det(xtx))
                     + dof * (1 + mpmath.log(2 * mpmath.pi * r2 / dof)))


@pytest.mark.parametrize("noise", [1e-5, 1e-6])
def test_criterion_is_the_exact_one_near_an_exact_fit(noise):
    data = _data(noise)
    model = mm.LinearMixedModel("y ~ x + (1 | g)", data)
    scale = 3.0 / noise  # theta near the groups' sd over the residuals'
    for theta in (0.5 * scale, scale, 2.0 * scale):
        assert model.objective(np.array([theta])) == pytest.approx(
            _exact_reml(data, theta), abs=1e-8)
    # smooth: a relative step of 1e-8 in theta changes it by rounding only (it jumped by
    # 5e-3 when A's r^2 and log|R_X|^2 were used)
    step = model.objective(np.array([scale * (1 + 1e-8)])) - model.objective(np.array([scale]))
    assert abs(step) < 1e-7


@pytest.mark.parametrize("method", ["auto", "lbfgs"])
@pytest.mark.parametrize("noise, within", [(1e-5, 1e-6), (1e-6, 1e-6), (1e-7, 0.02)])
def test_optimum_near_an_exact_fit(noise, within, method):
    """Both optimizers reach the exact criterion's minimum (found here by golden-section
    search over log theta on the 50-digit criterion). At noise 1e-5 BOBYQA stopped 3.5
    above it; lme4 1.1-31 stops 2e-7 above at 1e-5, 0.12 at 1e-6 and 7.6 at 1e-7. At 1e-7
    (theta 1.5e7, a factor of condition 1e15) the refined criterion is exact to 1e-9 up to
    theta 1.4e7, 5 off at 2e7, and the fit ends within 0.02."""
    data = _data(noise)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = mm.lmer("y ~ x + (1 | g)", data, settings=OptSettings(method=method))
    # sds over 3e5 times sigma (theta 1.6e6 and 1.6e7 here) are warned of: there the
    # criterion's precision depends on the design (7e-3 off on a crossed one at 1.2e6)
    warned = any("fitted almost exactly" in str(w.message) for w in caught)
    assert warned == (noise < 1e-5)
    best = _exact_minimum(noise)
    assert fit.objective == pytest.approx(best, abs=within)
    assert fit.objective >= best - 1e-6  # (the golden-section search ends within 1e-7)
    assert fit.sigma == pytest.approx(noise, rel=0.3)


@functools.lru_cache
def _exact_minimum(noise: float) -> float:
    data = _data(noise)
    return _golden_minimum(lambda t: _exact_reml(data, float(np.exp(t))),
                           np.log(3.0 / noise) - 1.5, np.log(3.0 / noise) + 1.5)


def _golden_minimum(function, low: float, high: float, steps: int = 32) -> float:
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = function(c), function(d)
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = function(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = function(d)
    return min(fc, fd)


def test_ordinary_fits_use_the_cross_products():
    """The rows are read only near an exact fit: sleepstudy's r^2 is 0.1 of y'y."""
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
    system = fit.model.system
    assert not system.refines(system.factor(fit.theta).pwrss())
