"""Terms on covariates far from 0 (``core.centring``): the fit of x + c is the fit of x for
shifts c of 100 to 10,000 sds, by REML and ML, with weights and beside a crossed factor. The
reference is the fit of the unshifted data: shifting x only moves the intercept of a (1 + x | g)
term, so the REML criterion and the likelihood are the same, the slope's fixed effect and every
sd except the intercept's are the same, and the intercept's fixed effect moves by -c times the
slope's. Before, sleepstudy's Days + 1000 stopped 40 units of REML criterion above the
optimum, reported as converged."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

import mixedmodels as mm
from mixedmodels.core.centring import CentredCoordinates
from mixedmodels.inference.profile import profiler_of
from mixedmodels.lmm.model import LinearMixedModel

SLEEP = mm.datasets.load("sleepstudy")


def _fit(formula, data, reml=True, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, data, reml=reml, **kwargs)


def _crossed(seed: int = 3) -> pd.DataFrame:
    """40 groups g with a random slope on x, crossed with 6 levels of h."""
    rng = np.random.default_rng(seed)
    n = 480
    g, h = rng.integers(0, 40, n), rng.integers(0, 6, n)
    x = rng.normal(size=n)
    slope, intercept = rng.normal(size=40) * 0.5, rng.normal(size=40)
    y = 1 + 2 * x + intercept[g] + slope[g] * x + rng.normal(size=6)[h] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g],
                         "h": [f"h{i}" for i in h]})


CASES = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", SLEEP, "Days", {}),
    "weighted": ("Reaction ~ Days + (Days | Subject)",
                 SLEEP.assign(w=np.tile([1.0, 2.0, 0.5], 60)), "Days", {"weights": "w"}),
    "crossed": ("y ~ x + (1 + x | g) + (1 | h)", _crossed(), "x", {}),
}


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("shift", [300.0, 1e3, -1e3, 1e4])
@pytest.mark.parametrize("case", list(CASES))
def test_a_shifted_covariate_has_the_same_fit(case, shift, reml):
    formula, data, column, kwargs = CASES[case]
    base = _fit(formula, data, reml, **kwargs)
    shifted = _fit(formula, data.assign(**{column: data[column] + shift}), reml, **kwargs)
    assert "(centred)" in shifted.optsummary.optimizer
    # the criterion of x + c is rounded at about 1e-15 (c / sd(x))^2 relative: its rounding
    # at the base fit's optimum mapped to x + c (exact in exact arithmetic) is the tolerance
    rounding = abs(shifted.model.objective(_mapped(base, shift)) - base.objective)
    assert rounding < 1e-14 * (shift / data[column].std()) ** 2 * base.objective
    assert abs(shifted.objective - base.objective) <= max(30 * rounding,
                                                          2e-10 * base.objective)
    # the parameters, where the criterion is flat: to the square root of its rounding
    rel = max(1e-5, 100 * np.sqrt(rounding / base.objective))
    slope, intercept = base.fixef[column], base.fixef["(Intercept)"]
    assert shifted.fixef[column] == pytest.approx(slope, rel=rel)
    assert shifted.fixef["(Intercept)"] == pytest.approx(intercept - shift * slope, rel=rel)
    assert shifted.sigma == pytest.approx(base.sigma, rel=rel)
    ours, theirs = shifted.varcorr, base.varcorr
    rows = (ours["var1"] == column) & ours["var2"].isna()
    assert ours.loc[rows, "sdcor"].to_numpy() == pytest.approx(
        theirs.loc[rows, "sdcor"].to_numpy(), rel=rel)


def _mapped(fit, shift: float) -> np.ndarray:
    """The fit's theta for the data with its (1 + x | g) term's x + shift: lam lam' =
    M lam lam' M', M = [[1, -shift], [0, 1]]; the other terms' parameters as they are."""
    parameters = fit.model.structure.parameters
    theta = np.array(fit.theta, dtype=float)
    part = parameters.slices[0]
    structure = parameters.structures[0]
    lam = structure.lambda_block(theta[part])
    shift_matrix = np.array([[1.0, -shift], [0.0, 1.0]])
    # a lower-triangular square root of M lam lam' M' (semi-definite where the fit is
    # singular, where Cholesky fails): from its eigendecomposition
    values, vectors = np.linalg.eigh(shift_matrix @ lam @ lam.T @ shift_matrix.T)
    root = np.linalg.qr((vectors * np.sqrt(np.clip(values, 0.0, None))).T, mode="r").T
    factor = root * np.where(np.diagonal(root) < 0.0, -1.0, 1.0)
    theta[part] = factor[structure.pattern.rows, structure.pattern.cols]
    return theta


def test_centred_data_and_other_terms_keep_their_coordinates():
    """Where the means are near 0, and for terms whose covariance is not closed under the
    shift ((x || g): uncorrelated at x = 0 is correlated at x = c), theta is searched."""
    far = SLEEP.assign(Days=SLEEP["Days"] + 1e3)
    for formula, data in (("Reaction ~ Days + (Days | Subject)", SLEEP),
                          ("Reaction ~ Days + (Days || Subject)", far),
                          ("Reaction ~ Days + (0 + Days | Subject)", far),
                          ("Reaction ~ Days + diag(Days | Subject)", far)):
        assert LinearMixedModel(formula, data).centred_coordinates() is None


def test_lbfgs_as_asked_searches_theta():
    far = SLEEP.assign(Days=SLEEP["Days"] + 1e3)
    fit = _fit("Reaction ~ Days + (Days | Subject)", far,
               settings=mm.OptSettings(method="lbfgs"))
    assert fit.optsummary.optimizer.startswith("LD_LBFGS")


@pytest.mark.parametrize("seed", range(5))
def test_theta_of_the_centred_coordinates(seed):
    """lam lam' = M lam_c lam_c' M' with lam lower triangular, its diagonal non-negative, also
    where lam_c is singular (a zero on its diagonal: Cholesky would fail there)."""
    rng = np.random.default_rng(seed)
    model = LinearMixedModel("y ~ x + z + (1 + x + z | g)", pd.DataFrame({
        "y": rng.normal(size=300), "x": rng.normal(size=300) + 500,
        "z": rng.normal(size=300) - 80, "g": np.repeat(np.arange(30), 10)}))
    centred = model.centred_coordinates()
    assert isinstance(centred, CentredCoordinates)
    _, pattern, shift, _ = centred.shifts[0]
    theta_c = rng.normal(size=6)
    theta_c[[0, 3, 5]] = np.abs(theta_c[[0, 3, 5]])
    if seed % 2:
        theta_c[3] = 0.0
    lam_c = pattern.lam(theta_c)
    lam = pattern.lam(centred.theta(theta_c))
    np.testing.assert_allclose(lam @ lam.T, shift @ lam_c @ lam_c.T @ shift.T,
                               rtol=1e-12, atol=1e-9 * np.abs(shift).max() ** 2)
    assert np.all(np.diagonal(lam) >= 0.0) and np.allclose(lam, np.tril(lam))
    np.testing.assert_allclose(shift[0], [1.0, -500.0, 80.0], rtol=0.02)


def test_a_fit_over_partitions_is_centred_too():
    dd = pytest.importorskip("dask.dataframe")
    far = SLEEP.assign(Days=SLEEP["Days"] + 1e3)
    in_memory = _fit("Reaction ~ Days + (Days | Subject)", far)
    partitioned = _fit("Reaction ~ Days + (Days | Subject)", dd.from_pandas(far, npartitions=3))
    assert "(centred)" in partitioned.optsummary.optimizer
    assert partitioned.objective == pytest.approx(in_memory.objective, rel=1e-10)
    np.testing.assert_allclose(partitioned.fixef, in_memory.fixef, rtol=1e-6)


@pytest.mark.parametrize("shift", [1e3, 1e4])
def test_with_a_residual_correlation(shift):
    """sleepstudy with AR(1) residuals over Days: 11.8 above the optimum at Days + 1000
    before (BOBYQA in theta)."""
    kwargs = {"correlation": "ar1(Days | Subject)"}
    base = _fit("Reaction ~ Days + (Days | Subject)", SLEEP, **kwargs)
    shifted = _fit("Reaction ~ Days + (Days | Subject)",
                   SLEEP.assign(Days=SLEEP["Days"] + shift), **kwargs)
    assert "(centred)" in shifted.optsummary.optimizer
    rounding = abs(shifted.model.objective(_mapped(base, shift)) - base.objective)
    assert abs(shifted.objective - base.objective) <= max(30 * rounding,
                                                          2e-10 * base.objective)
    np.testing.assert_allclose(shifted.residual_parameters, base.residual_parameters,
                               rtol=1e-4)


def test_two_covariates_far_from_0():
    """(1 + x + z | g) with x 500 and z -2000 sds from 0: both columns centred at once."""
    rng = np.random.default_rng(1)
    g, x, z = rng.integers(0, 40, 600), rng.normal(size=600), rng.normal(size=600)
    effects = rng.normal(size=(40, 3)) * [1.0, 0.5, 0.3]
    y = 1 + x + z + effects[g, 0] + effects[g, 1] * x + effects[g, 2] * z + rng.normal(
        size=600)
    data = pd.DataFrame({"y": y, "x": x, "z": z, "g": g.astype(str)})
    formula = "y ~ x + z + (1 + x + z | g)"
    base = _fit(formula, data)
    shifted = _fit(formula, data.assign(x=x + 500, z=z - 2000))
    assert "(centred)" in shifted.optsummary.optimizer
    assert shifted.objective == pytest.approx(base.objective, rel=1e-9)
    assert shifted.fixef["x"] == pytest.approx(base.fixef["x"], rel=1e-5)


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days || Subject)",
                                     pytest.param("Reaction ~ Days + diag(Days | Subject)",
                                                  marks=pytest.mark.slow),
                                     "Reaction ~ Days + diag(Days | Subject, hom = TRUE)"])
@pytest.mark.parametrize("shift", [1e3, 1e4])
def test_uncorrelated_slopes_on_a_covariate_far_from_0(formula, shift):
    """(x || g) is another model after the shift (uncorrelated at x = 0), searched in theta
    in the slope's units: its root mean square, not its sd (with the sd's, 0.075 above the
    optimum at Days + 1000). The reference: Nelder-Mead from the fit and from the intercept's
    sd at its bound 0, where the optimum is."""
    model = LinearMixedModel(formula, SLEEP.assign(Days=SLEEP["Days"] + shift))
    summary = model.optimize()
    lower, upper = model.structure.parameters.lower(), model.structure.parameters.upper()
    best = np.inf
    starts = [summary.final, np.append(0.0, summary.final[1:])]
    for start in starts:
        result = minimize(lambda t: model.objective(np.clip(t, lower, upper)), start,
                          method="Nelder-Mead",
                          options={"xatol": 1e-12, "fatol": 1e-12, "maxfev": 20_000})
        best = min(best, result.fun)
    # (at 1e4 the criterion is rounded at about 1e-10: Nelder-Mead finds 1.8e-7 lower)
    assert summary.fmin <= best + 1e-9 * best


@pytest.mark.parametrize("structure", ["cs", "ar1", "toep"])
def test_a_structured_term_on_a_covariate_far_from_0_is_warned_about(structure):
    """cs(Days | Subject) with Days + 1000 (for two columns the model of (Days | Subject))
    stopped 42 above that model's optimum: not centred (another model after the shift), but
    said, with what to do; nothing is said of the same term on Days itself."""
    formula = f"Reaction ~ Days + {structure}(Days | Subject)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mm.lmer(formula, SLEEP.assign(Days=SLEEP["Days"] + 1e3))
    said = [str(w.message) for w in caught if issubclass(w.category, mm.FitWarning)]
    assert any("'Days', whose mean is 350 sds from 0" in m and "Centre" in m for m in said)
    with warnings.catch_warnings():
        warnings.simplefilter("error", mm.FitWarning)
        LinearMixedModel(formula, SLEEP)


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("shift", [1e3, -5e3])
def test_satterthwaite_and_the_convergence_check_in_centred_coordinates(shift, reml):
    """The slope's Satterthwaite df is the unshifted fit's (it was -13 at Days + 1000: the
    Hessian of the deviance differenced in theta), and the convergence check finds the fit
    converged (it said a Newton step would lower the criterion by 0.0057, 0.25 at -5000)."""
    base = _fit("Reaction ~ Days + (Days | Subject)", SLEEP, reml)
    shifted = _fit("Reaction ~ Days + (Days | Subject)",
                   SLEEP.assign(Days=SLEEP["Days"] + shift), reml)
    ours, theirs = shifted.coef_table(), base.coef_table()
    # the fit at -5000 (1,700 sds) is known to about 1e-5 (the criterion's rounding); at
    # +1000 the criterion is rounded at about 1e-11 relative, which moves the df's second
    # derivatives by 1e-7 to 2e-6 relative, with the optimizer and the differences' scaling
    assert ours.loc["Days", "df"] == pytest.approx(theirs.loc["Days", "df"],
                                                   rel=5e-6 if shift > 0 else 2e-4)
    assert ours.loc["Days", "p"] == pytest.approx(theirs.loc["Days", "p"], rel=2e-3)
    check = shifted.check_convergence()
    assert check.message == "" and check.newton_decrement < 1e-6


@pytest.mark.parametrize("kwargs", [{}, {"correlation": "ar1(Days | Subject)"}],
                         ids=["sparse", "clusters"])
def test_kenward_roger_in_centred_coordinates(kwargs):
    """Kenward-Roger's variance parameters are the centred columns' covariances: the slope's
    adjusted SE and df are the unshifted fit's (the SE was 2% off at Days + 1000, 6% with
    AR(1) residuals, whose clusters take the other path). With AR(1) residuals the two fits'
    criteria differ by up to 2e-7 (1e-10 relative, the Newton steps' allowance for rounding:
    how far they go depends on the machine's rounding), which moves the SE by up to 5e-5."""
    base = _fit("Reaction ~ Days + (Days | Subject)", SLEEP, **kwargs)
    far = _fit("Reaction ~ Days + (Days | Subject)", SLEEP.assign(Days=SLEEP["Days"] + 1e3),
               **kwargs)
    ours, theirs = far.coef_table("kenward-roger"), base.coef_table("kenward-roger")
    assert far.objective == pytest.approx(base.objective, rel=2e-10)
    assert ours.loc["Days", "std_error"] == pytest.approx(theirs.loc["Days", "std_error"],
                                                          rel=1e-4 if kwargs else 1e-5)
    assert ours.loc["Days", "df"] == pytest.approx(theirs.loc["Days", "df"], rel=1e-6)


@pytest.mark.slow
def test_the_profile_runs_in_centred_coordinates():
    """The inner fits of the slope sd's, sigma's and the fixed effects' profiles run in the
    centred coordinates: their intervals are the unshifted fit's. In theta, at Days - 2000
    (700 sds from 0), the slope sd's upper limit was 8.122 against 8.753, and its profile
    took 25 times as long."""
    names = ["sd_Days|Subject", "sigma", "Days"]
    base = profiler_of(_fit("Reaction ~ Days + (Days | Subject)", SLEEP))
    far = profiler_of(_fit("Reaction ~ Days + (Days | Subject)",
                           SLEEP.assign(Days=SLEEP["Days"] - 2e3)))
    assert far.centred is not None
    for name in names:
        np.testing.assert_allclose(far.interval(name), base.interval(name), rtol=1e-6)


def test_six_parameters_in_centred_coordinates_reach_the_optimum():
    """A singular (1 + x + z | g) fit of 5 groups, z 70 sds from 0: BOBYQA in the centred
    coordinates stopped 1.83 above the optimum of the unshifted fit; L-BFGS there (chosen as
    in theta, with the map's Jacobian) reaches it."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(5), 8)
    rng.shuffle(g)
    g = g[rng.uniform(size=40) < 0.8]
    n = g.size
    x, z, h = rng.normal(size=n), rng.uniform(size=n), rng.integers(0, 3, n)
    effects = rng.normal(size=(5, 3)) * [1, 0.5, 0.5]
    y = (1 + x + z + effects[g, 0] + effects[g, 1] * x + effects[g, 2] * z
         + rng.normal(size=n) + 0.3 * rng.normal(size=3)[h])
    data = pd.DataFrame({"y": y, "x": x, "z": z, "g": g.astype(str)})
    base = _fit("y ~ x + z + (x + z | g)", data)
    for shift in (20.0, -300.0):
        far = _fit("y ~ x + z + (x + z | g)", data.assign(z=data["z"] + shift))
        assert "(centred)" in far.optsummary.optimizer
        assert far.objective == pytest.approx(base.objective, abs=1e-6)
