"""Residual structures: the objective against a brute-force computation from the definitions.

For random small designs, with every correlation structure and variance function, the
criterion equals the REML criterion or -2 log-likelihood computed from the dense
V = Z G Z' + sigma^2 Psi (Psi built entry by entry from the structure's definition), profiled
over sigma; and the special cases reduce as they must.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
from conftest import symm_local_optimum_data

import mixedmodels as mm
from mixedmodels.core.pls import sparse_z
from mixedmodels.covariance.residual_model import correlation_of, variance_of
from mixedmodels.lmm.model import GeneralizedLeastSquares, LinearMixedModel


def _design(seed: int, groups: int = 8, visits: int = 5) -> pd.DataFrame:
    """Patients with up to ``visits`` visits (some missing), two arms, a covariate."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(groups):
        kept = np.sort(rng.choice(np.arange(1, visits + 1), rng.integers(2, visits + 1),
                                  replace=False))
        for v in kept:
            rows.append({"patient": f"p{g}", "visit": int(v), "time": v + rng.uniform(0, 0.4),
                         "arm": "ab"[g % 2], "x": rng.uniform(0.5, 2.0),
                         "site_x": rng.uniform(0, 3), "site_y": rng.uniform(0, 3),
                         "centre": "uvw"[rng.integers(0, 3)]})
    frame = pd.DataFrame(rows)
    frame["y"] = rng.normal(size=len(frame)) + frame["visit"] * 0.3
    return frame


def _correlation(name: str, values: np.ndarray, a: pd.Series, b: pd.Series, slots) -> float:
    """corr(e_a, e_b) of two rows of one group, from the structure's definition."""
    if name == "ar1":
        return values[0] ** abs(a.visit - b.visit)
    if name == "car1":
        return values[0] ** abs(a.time - b.time)
    if name == "cs":
        return values[0]
    if name == "toep":
        return values[abs(a.visit - b.visit) - 1]
    if name == "exp":
        d = np.hypot(a.site_x - b.site_x, a.site_y - b.site_y)
        return np.exp(-d / values[0])
    if name == "arma":  # sum_j psi_j psi_{j+k} / sum_j psi_j^2 of the MA(infinity) form
        phi, theta = values[:2], values[2:]
        psi = np.zeros(400)
        for j in range(400):
            psi[j] = (1.0 if j == 0 else 0.0) + (theta[j - 1] if 1 <= j <= 1 else 0.0) + sum(
                phi[i - 1] * psi[j - i] for i in (1, 2) if j >= i)
        k = int(abs(a.visit - b.visit))
        return psi[:400 - k] @ psi[k:] / (psi @ psi)
    if name == "symm":
        i, j = sorted((slots.index(a.visit), slots.index(b.visit)))
        pairs = [(r, c) for r in range(len(slots)) for c in range(r)]
        return values[pairs.index((j, i))]
    raise AssertionError(name)


def _sd(name: str | None, values: np.ndarray, row: pd.Series, levels) -> float:
    if name is None:
        return 1.0
    if name == "ident":
        return np.concatenate([[1.0], values])[levels.index(row.centre)]
    if name == "power":
        return abs(row.x) ** values[0]
    return np.exp(values[0] * row.x)


CORRELATIONS = {"ar1": "ar1(visit | patient)", "car1": "car1(time | patient)",
                "cs": "cs(1 | patient)", "symm": "symm(visit | patient)",
                "toep": "toep(visit | patient)", "exp": "exp(site_x + site_y | patient)",
                "arma": "arma(visit | patient, p = 2, q = 1)"}
VARIANCES = {None: None, "ident": "ident(centre)", "power": "power(x)", "exp": "exp(x)"}


def brute_force(model, theta: np.ndarray, frame: pd.DataFrame, correlation, variance) -> float:
    """The profiled criterion from the dense V / sigma^2 = Z Lambda Lambda' Z' + Psi."""
    parameters = model.structure.parameters
    residual = parameters.residual
    delta = theta[parameters.residual_slice]
    values = residual.values(delta)
    k = residual.correlation.n_params if residual.correlation is not None else 0
    cor_values, var_values = values[:k], values[k:]
    slots = sorted(frame.visit.unique().tolist())
    levels = sorted(frame.centre.unique().tolist())
    n = len(frame)
    sds = np.array([_sd(variance, var_values, frame.iloc[i], levels) for i in range(n)])
    psi = np.diag(sds ** 2)
    if correlation is not None:
        for i in range(n):
            for j in range(i):
                a, b = frame.iloc[i], frame.iloc[j]
                if a.patient == b.patient:
                    psi[i, j] = psi[j, i] = sds[i] * sds[j] * _correlation(
                        correlation, cor_values, a, b, slots)
    V = psi.copy()
    if model.structure.blocks:
        fit_like = model.system.factor(theta)
        Z = sparse_z(model.structure, n).toarray()
        lam = np.kron(np.eye(model.structure.blocks[0].nlevels), fit_like.lambdas[0])
        V = V + Z @ lam @ lam.T @ Z.T
    return profiled_criterion(V, model.design.X, model.design.y, model.reml)


def profiled_criterion(V: np.ndarray, X: np.ndarray, y: np.ndarray, reml: bool) -> float:
    """The REML criterion or -2 log L, profiled over sigma, of y ~ N(X beta, sigma^2 V),
    from the definitions: log|V|, generalized least squares, REML's log|X'V^-1 X|."""
    n, p = X.shape
    Vi = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
    r = y - X @ beta
    r2 = r @ Vi @ r
    logdet_v = np.linalg.slogdet(V)[1]
    if reml:
        d = n - p
        return logdet_v + np.linalg.slogdet(X.T @ Vi @ X)[1] + d * (1 + np.log(2 * np.pi * r2 / d))
    return logdet_v + n * (1 + np.log(2 * np.pi * r2 / n))


CASES = [(c, v) for c in CORRELATIONS for v in (None, "ident")] + [
    (None, "ident"), (None, "power"), (None, "exp"), ("ar1", "power"), ("cs", "exp")]


@pytest.mark.parametrize("random", [False, True], ids=["gls", "lmer"])
@pytest.mark.parametrize("reml", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["REML", "ML"])
@pytest.mark.parametrize("correlation, variance", CASES)
def test_objective_equals_dense_computation(correlation, variance, reml, random):
    for seed in range(3):
        frame = _design(seed)
        rng = np.random.default_rng(100 + seed)
        if random:
            model = LinearMixedModel("y ~ arm * visit + (1 | patient)", frame, reml=reml,
                                     correlation=CORRELATIONS.get(correlation),
                                     variance=VARIANCES[variance])
        else:
            model = GeneralizedLeastSquares("y ~ arm * visit", frame, reml=reml,
                                            correlation=CORRELATIONS.get(correlation),
                                            variance=VARIANCES[variance])
        theta = model.structure.parameters.start() + rng.normal(
            scale=0.5, size=model.structure.parameters.n_params)
        theta[: model.structure.parameters.n_random] = np.abs(
            theta[: model.structure.parameters.n_random])
        expected = brute_force(model, theta, frame, correlation, variance)
        assert model.objective(theta) == pytest.approx(expected, rel=1e-8)


def test_symm_with_two_time_points_is_cs():
    frame = _design(5, groups=30, visits=2)
    symm = mm.gls("y ~ arm", frame, correlation="symm(visit | patient)")
    cs = mm.gls("y ~ arm", frame, correlation="cs(1 | patient)")
    assert symm.objective == pytest.approx(cs.objective, rel=1e-10)
    parameters = symm.model.structure.parameters
    assert parameters.sdcor(symm.theta, symm.sigma)[-1] == pytest.approx(
        cs.model.structure.parameters.sdcor(cs.theta, cs.sigma)[-1], abs=1e-5)


def _partial_correlation(matrix: np.ndarray, i: int, j: int, given: list[int]) -> float:
    """The partial correlation of i and j given ``given``, from the inverse of their block."""
    index = [i, j] + given
    precision = np.linalg.inv(matrix[np.ix_(index, index)])
    return -precision[0, 1] / np.sqrt(precision[0, 0] * precision[1, 1])


def test_symm_boundary_values_are_the_canonical_partial_correlations():
    symm = mm.cov.Symm("visit").bind(np.arange(1.0, 6.0)[:, None], np.array([5]))
    rows, cols = np.tril_indices(5, -1)
    for seed in range(3):
        params = np.random.default_rng(seed).normal(scale=2.0, size=symm.n_params)
        full = symm.full(params)
        expected = [_partial_correlation(full, i, j, list(range(j))) for i, j in zip(rows, cols)]
        np.testing.assert_allclose(symm.boundary_values(params), expected, atol=1e-12)


def _singular_symm_data(noise: float) -> pd.DataFrame:
    """12 groups of 3 visits whose 3rd is the 1st minus the 2nd, plus ``noise``: corr(1, 2)
    about 0, corr(1, 3) about -corr(2, 3), all far from +/-1."""
    rng = np.random.default_rng(7)
    rows = []
    for g in range(12):
        a, b = rng.normal(size=2)
        for t, e in enumerate([a, b, a - b + noise * rng.normal()], start=1):
            rows.append({"g": g, "t": t, "y": 1.0 + 0.5 * t + e})
    return pd.DataFrame(rows)


def test_a_singular_symm_correlation_is_a_boundary_fit():
    """C is singular with every correlation away from +/-1: its canonical partial
    correlation of visits 3 and 2 given 1 is at -1, and the fit says so. In the partial
    correlations' coordinates the fit reaches the optimum in about 2,000 evaluations
    (Nelder-Mead's 4,000 from its end find at most 1e-7 lower: along the singular direction
    the criterion is flat to that; how close BOBYQA stops depends on the machine's rounding);
    in Pinheiro & Bates's coordinates, 41,439, and stopped 2e-3 above it (100,000 and 6.7
    above with noise 1e-3)."""
    with pytest.warns(mm.FitWarning, match="residual structure is on its bound"):
        fit = mm.gls("y ~ factor(t)", _singular_symm_data(1e-2),
                     correlation="symm(t | g)", variance="ident(t)")
    parameters = fit.model.structure.parameters
    delta = np.asarray(fit.theta)[parameters.residual_slice]
    assert np.all(np.abs(parameters.residual.values(delta)[:3]) < 0.8)
    assert np.linalg.eigvalsh(parameters.residual.correlation.full(delta[:3]))[0] < 1e-4
    assert fit.is_singular
    assert fit.optsummary.evaluations < 5000
    again = scipy.optimize.minimize(fit.model.objective, fit.theta, method="Nelder-Mead",
                                    options={"maxfev": 4000, "xatol": 1e-10, "fatol": 1e-13,
                                             "adaptive": True})
    assert fit.objective < again.fun + 1e-6
    regular = mm.gls("y ~ factor(t)", _singular_symm_data(0.5),
                     correlation="symm(t | g)", variance="ident(t)")
    assert not regular.is_singular


def _exp_data(seed: int, shift_sd: float, noise: float) -> pd.DataFrame:
    """15 groups of 6 points on [0, 10] with exponential correlation of range 2 (scaled by
    ``noise``), plus a shift per group of sd ``shift_sd``."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(15):
        x = np.sort(rng.uniform(0, 10, 6))
        errors = np.linalg.cholesky(np.exp(-np.abs(x[:, None] - x[None, :]) / 2.0)) @ \
            rng.normal(size=6)
        shift = shift_sd * rng.normal()
        for xi, e in zip(x, errors):
            rows.append({"g": g, "x": xi, "y": 1 + 0.3 * xi + shift + noise * e})
    return pd.DataFrame(rows)


def test_exp_boundary_does_not_depend_on_the_coordinates_unit():
    """The range scales with the coordinates and the fit is on the boundary or not
    whatever their unit (a range compared with 1e-4 in the coordinates' unit was at its
    bound in coordinates of size 1e-5)."""
    data = _exp_data(3, 0.0, 1.0)
    base = mm.gls("y ~ x", data, correlation="exp(x | g)")
    assert not base.is_singular
    for unit in (1e-5, 1e5):
        fit = mm.gls("y ~ x", data.assign(x=data["x"] * unit), correlation="exp(x | g)")
        assert not fit.is_singular
        assert fit.theta[-1] == pytest.approx(base.theta[-1] + np.log(unit), abs=1e-5)


def test_an_exp_range_without_bound_is_a_boundary_fit():
    """A shift per group and little else: every correlation within a group tends to 1 (the
    range beyond 1e4 times a quarter of the extent), a singular C, and the fit says so."""
    with pytest.warns(mm.FitWarning, match="residual structure is on its bound"):
        fit = mm.gls("y ~ x", _exp_data(4, 3.0, 0.01), correlation="exp(x | g)")
    assert fit.is_singular
    assert np.exp(fit.theta[-1]) > 1e4 * 10 / 4


@pytest.mark.parametrize("structure", ["ar1(visit | patient)", "car1(time | patient)",
                                       "toep(visit | patient)", "cs(1 | patient)"])
def test_zero_correlation_is_independence(structure):
    frame = _design(7)
    for reml in (True, False):
        model = GeneralizedLeastSquares("y ~ arm * visit", frame, reml=reml,
                                        correlation=structure)
        independent = GeneralizedLeastSquares("y ~ arm * visit", frame, reml=reml)
        residual = model.structure.parameters.residual
        zero = residual.from_values(np.zeros(residual.n_params))  # car1: phi = 1e-15
        assert model.objective(zero) == pytest.approx(independent.fit().objective, rel=1e-10)


def test_positive_compound_symmetry_is_the_random_intercept():
    frame = _design(3, groups=40)
    cs = mm.gls("y ~ arm * visit", frame, correlation="cs(1 | patient)")
    rho = cs.model.structure.parameters.sdcor(cs.theta, cs.sigma)[-1]
    ri = mm.lmer("y ~ arm * visit + (1 | patient)", frame)
    if rho > 0:
        assert cs.objective == pytest.approx(ri.objective, rel=1e-8)
        np.testing.assert_allclose(cs.fixef, ri.fixef, rtol=1e-5, atol=1e-7)
    else:  # the random intercept is then singular, and cs fits better
        assert ri.is_singular and cs.objective < ri.objective


def test_string_and_object_forms_are_the_same():
    frame = _design(2, groups=20)
    a = mm.gls("y ~ arm", frame, correlation="ar1(visit | patient)", variance="ident(centre)")
    b = mm.gls("y ~ arm", frame, correlation=mm.cov.AR1("visit", group="patient"),
               variance=mm.cov.VarIdent("centre"))
    assert a.objective == b.objective
    np.testing.assert_array_equal(a.theta, b.theta)


@pytest.mark.parametrize("correlation", list(CORRELATIONS))
@pytest.mark.parametrize("variance", [None, "ident"])
def test_precomputed_pieces_equal_whitening(correlation, variance):
    """Without random effects, A(delta) is combined from pieces formed once; it equals A of
    the rows whitened at delta to 1e-10, at several deltas."""
    frame = _design(11, groups=25)
    model = GeneralizedLeastSquares("y ~ arm * visit", frame, correlation=CORRELATIONS[correlation],
                                    variance=VARIANCES[variance])
    system = model.system
    assert system._marginal is not None and "pieces" in system.backend
    whitening = copy.copy(system)
    whitening._marginal, whitening._dense = None, None
    whitening._systems = type(system._systems)()
    rng = np.random.default_rng(0)
    for _ in range(4):
        theta = model.structure.parameters.start() + rng.normal(
            scale=0.7, size=model.structure.parameters.n_params)
        for reml in (True, False):
            assert system.objective(theta, reml) == pytest.approx(
                whitening.objective(theta, reml), rel=1e-10)


MARGINAL_CASES = [(c, v, random) for c, v in CASES for random in (False, True)
                  if random or c is not None]  # gls of independent rows: no pieces


@pytest.mark.parametrize("correlation, variance, random", MARGINAL_CASES)
def test_marginal_pieces_compiled_equal_numpy(correlation, variance, random):
    """The marginal pieces' two computations, the compiled loop (the suite has loaded the
    kernels) and NumPy (a process's fits until ``load_kernels``), agree to 1e-10."""
    frame = _design(12, groups=25)
    options = dict(correlation=CORRELATIONS.get(correlation), variance=VARIANCES[variance])
    model = (LinearMixedModel("y ~ arm * visit + (1 + x | patient)", frame, **options)
             if random else GeneralizedLeastSquares("y ~ arm * visit", frame, **options))
    compiled = model.system._marginal
    assert compiled is not None and compiled._kernel is not None
    numpy = copy.copy(compiled)
    numpy._kernel = None
    parameters = model.structure.parameters
    rng = np.random.default_rng(3)
    for _ in range(4):
        theta = parameters.start() + rng.normal(scale=0.5, size=parameters.n_params)
        theta[: parameters.n_random] = np.abs(theta[: parameters.n_random])
        np.testing.assert_allclose(numpy.pieces(theta), compiled.pieces(theta), rtol=1e-10,
                                   atol=1e-9)


def test_a_variance_ratio_at_zero_is_a_singular_fit():
    """A stratum without residual variance: its sd ratio goes to 0, on the boundary."""
    frame = _design(4, groups=30)
    exact = frame.centre == "w"  # not the reference stratum (u), whose sd is sigma
    frame.loc[exact, "y"] = 1.0 + 0.5 * frame.loc[exact, "visit"]
    with pytest.warns(mm.FitWarning, match="singular"):
        fit = mm.gls("y ~ visit * centre", frame, variance="ident(centre)")
    assert fit.is_singular
    assert fit.model.structure.parameters.on_boundary(fit.theta).any()


def test_structured_terms_and_residual_structures_together():
    """A structured G (cs over two columns) with AR(1) residuals: the objective equals the
    dense computation."""
    frame = _design(9, groups=12)
    frame["t"] = frame["visit"] / 5.0
    model = LinearMixedModel("y ~ visit + cs(1 + t | patient)", frame,
                             correlation="ar1(visit | patient)")
    theta = np.array([0.8, 0.5, 0.3, 0.4])
    parameters = model.structure.parameters
    lam = parameters.lambdas(theta)[0]
    n = len(frame)
    Z = sparse_z(model.structure, n).toarray()
    phi = parameters.residual.values(theta[parameters.residual_slice])[0]
    same = frame.patient.to_numpy()[:, None] == frame.patient.to_numpy()[None, :]
    lags = np.abs(frame.visit.to_numpy()[:, None] - frame.visit.to_numpy()[None, :])
    V = np.where(same, phi ** lags, 0.0) + Z @ np.kron(np.eye(12), lam @ lam.T) @ Z.T
    expected = profiled_criterion(V, model.design.X, model.design.y, reml=True)
    assert model.objective(theta) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(correlation="ar2(visit | patient)"), mm.FormulaError, "not a correlation structure"),
    (dict(correlation="cs(visit | patient)"), mm.FormulaError, "cs\\(1 \\| group\\)"),
    (dict(correlation="ar1(visit + time | patient)"), mm.FormulaError, "one column"),
    (dict(correlation="ar1(vist | patient)"), mm.DataError, "Did you mean 'visit'"),
    (dict(correlation="ar1(arm | patient)"), mm.DataError, "must be numeric"),
    (dict(correlation="ar1(time | patient)"), mm.DataError, "whole numbers"),
    (dict(correlation="arma(time | patient, q = 1)"), mm.DataError, "whole numbers"),
    (dict(correlation="ar1(visit)"), mm.DataError, "same position"),
    (dict(variance="power(arm)"), mm.DataError, "must be numeric"),
    (dict(variance="ident(centr)"), mm.DataError, "Did you mean 'centre'"),
    (dict(variance="foo(x)"), mm.FormulaError, "not a variance function"),
    (dict(correlation=3), mm.FormulaError, "must be a string"),
])
def test_bad_residual_structures_are_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        mm.gls("y ~ arm", _design(1), **kwargs)


def test_correlation_groups_must_nest_in_the_grouping_factor():
    frame = _design(1, groups=12)
    with pytest.raises(mm.DataError, match="must lie within the levels"):
        mm.lmer("y ~ arm + (1 | centre)", frame, correlation="ar1(visit | patient)")


def test_a_group_too_large_for_a_dense_block_is_refused():
    frame = pd.DataFrame({"t": np.arange(6000), "y": np.random.default_rng(0).normal(size=6000)})
    with pytest.raises(mm.DataError, match="6000 rows"):
        mm.gls("y ~ 1", frame, correlation="car1(t)")


BODYWEIGHT = Path(__file__).parent / "reference" / "data" / "bodyweight.csv"


@pytest.mark.parametrize("kwargs, rescaled", [
    (dict(variance="exp(Time)"), dict(variance="exp(T)")),
    (dict(variance="power(Time)"), dict(variance="power(T)")),
    (dict(correlation="car1(Time | Rat)"), dict(correlation="car1(T | Rat)")),
])
def test_the_unit_of_a_covariate_or_time_does_not_change_the_fit(kwargs, rescaled):
    """The optimizer works on unit-free parameters (delta times the covariate's spread, the
    correlation at a typical gap): minutes instead of days give the same optimum. nlme's
    values for days: exp(Time) with (Time | Rat), REML: logLik -575.8046."""
    data = pd.read_csv(BODYWEIGHT)
    data["T"] = data["Time"] * 1440.0
    days = mm.lmer("weight ~ Time * Diet + (1 | Rat)", data, **kwargs)
    minutes = mm.lmer("weight ~ Time * Diet + (1 | Rat)", data, **rescaled)
    assert minutes.loglik == pytest.approx(days.loglik, rel=1e-8)
    assert not minutes.is_singular


def test_exp_variance_reaches_nlme_optimum_with_a_wide_covariate():
    data = pd.read_csv(BODYWEIGHT)
    fit = mm.lmer("weight ~ Time * Diet + (Time | Rat)", data, variance="exp(Time)")
    assert fit.loglik == pytest.approx(-575.8046, abs=1e-3)  # nlme 3.1-162
    fit = mm.lmer("weight ~ Time * Diet + (1 | Rat)", data, correlation="car1(Time | Rat)",
                  variance="exp(Time)")
    assert fit.loglik == pytest.approx(-575.3083, abs=1e-3)


def test_var_ident_reference_stratum_can_be_chosen():
    frame = _design(3, groups=30)
    default = mm.gls("y ~ arm", frame, variance="ident(centre)")
    chosen = mm.gls("y ~ arm", frame, variance=mm.cov.VarIdent("centre", levels=["w", "u", "v"]))
    assert chosen.objective == pytest.approx(default.objective, rel=1e-9)
    ratios = dict(zip(default.model.structure.parameters.names(),
                      default.model.structure.parameters.sdcor(default.theta, default.sigma)))
    assert chosen.sigma == pytest.approx(default.sigma * ratios["ratio_w|centre"], rel=1e-4)
    with pytest.raises(mm.DataError, match="does not list the stratum 'v'"):
        mm.gls("y ~ arm", frame, variance=mm.cov.VarIdent("centre", levels=["w", "u"]))


@pytest.mark.parametrize("make", [
    lambda: mm.cov.AR1(None, group="patient"), lambda: mm.cov.AR1(1),
    lambda: mm.cov.AR1("visit", group=["patient"]), lambda: mm.cov.Symm(["visit"]),
    lambda: mm.cov.VarIdent(3), lambda: mm.cov.VarPower(["x"]),
    lambda: mm.cov.Exp(["x", 1]), lambda: mm.cov.VarIdent("centre", levels="uvw"),
    lambda: mm.cov.ARMA("visit", "patient", p=1.5), lambda: mm.cov.ARMA("visit", q=-1),
    lambda: mm.cov.ARMA("visit", p=True),
])
def test_structure_objects_check_their_arguments(make):
    with pytest.raises(mm.ArgumentTypeError, match="must be"):
        make()


def test_what_is_learnt_from_the_data_is_not_an_argument():
    with pytest.raises(TypeError):
        mm.cov.Toep("visit", group="patient", lags=2)
    with pytest.raises(TypeError):
        mm.cov.CS(group="patient", largest=4)


def test_toeplitz_lags_count_distinct_times():
    """Visits 10, 20, 40 (no 30 anywhere) are lags 1 and 2 apart, as SAS's TOEP over the
    levels of the REPEATED effect; rescaling the visit numbers changes nothing."""
    frame = _design(6, groups=30, visits=4)
    frame["v"] = frame["visit"].map({1: 10, 2: 20, 3: 40, 4: 70})
    by_number = mm.gls("y ~ arm", frame, correlation="toep(visit | patient)")
    by_level = mm.gls("y ~ arm", frame, correlation="toep(v | patient)")
    assert by_level.objective == pytest.approx(by_number.objective, rel=1e-10)
    assert len(by_level.theta) == 3


def test_an_ar1_term_with_one_row_per_column_is_identified():
    """One observation per (patient, visit): lme4's count of random effects against rows does
    not apply to ar1's two parameters; glmmTMB 1.1.5 gives logLik -537.4295 (REML) here."""
    trial = mm.datasets.load("trial")
    fit = mm.lmer("y ~ arm * visit + ar1(0 + factor(visit) | patient)", trial)
    assert fit.loglik == pytest.approx(-537.4295, abs=1e-3)
    with pytest.raises(mm.DataError, match="cannot be told apart"):
        mm.lmer("y ~ arm * visit + cs(0 + factor(visit) | patient)", trial)


def test_as_many_fixed_effects_as_rows_is_a_clear_error():
    trial = mm.datasets.load("trial")
    with pytest.raises(mm.DataError, match="2 observations for 2 fixed effects"):
        mm.gls("y ~ visit", trial.iloc[:2])


def test_residual_parameters_on_their_own_scale():
    """nlme's coef(modelStruct, unconstrained = FALSE): trial, gls AR(1), REML: Phi 0.8516."""
    fit = mm.gls("y ~ arm * visit", mm.datasets.load("trial"), correlation="ar1(visit | patient)")
    assert list(fit.residual_parameters.index) == ["Phi|patient"]
    assert fit.residual_parameters["Phi|patient"] == pytest.approx(0.8516, abs=1e-4)
    assert mm.lmer("y ~ visit + (1 | patient)", mm.datasets.load("trial")).residual_parameters.empty


def test_random_intercept_with_cs_residuals_on_the_same_groups_warns():
    with pytest.warns(mm.DataWarning, match="cannot be told apart"):
        fit = mm.lmer("y ~ arm + (1 | patient)", mm.datasets.load("trial"),
                      correlation="cs(1 | patient)")
    assert any("cannot be told apart" in message for message in fit.warnings)


@pytest.mark.parametrize("correlation, variance, confounded", [
    ("toep(visit | Subject)", None, True),
    ("symm(visit | Subject)", None, True),
    ("symm(visit | Subject)", "ident(visit)", True),  # SAS's UN
    ("ar1(visit | Subject)", None, False),
    ("toep(visit | Subject)", "power(age)", False),
])
def test_random_intercept_with_residuals_that_absorb_a_constant_warns(correlation, variance,
                                                                      confounded):
    """A constant added to a Toeplitz or general covariance leaves it Toeplitz or general: the
    fit is a ridge of equivalent optima (the gls without the intercept reaches the same
    likelihood). An AR(1) or a variance function of another column is not of its form after
    the constant: no warning."""
    data = mm.datasets.load("orthodont").assign(visit=lambda d: (d["age"] - 6) // 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = mm.lmer("distance ~ age * Sex + (1 | Subject)", data, correlation=correlation,
                      variance=variance)
    warned = [str(w.message) for w in caught if "are one covariance" in str(w.message)]
    assert bool(warned) == confounded
    if confounded:
        assert f"correlation={correlation}" in warned[0]
        alone = mm.gls("distance ~ age * Sex", data, correlation=correlation,
                       variance=variance)
        assert fit.loglik == pytest.approx(alone.loglik, abs=2e-3)


@pytest.mark.parametrize("correlation, match", [
    ("ar1(1 | patient)", "needs a time or position column"),
    ("ar1(visit | patient/arm)", "make one column of it first"),
    ("ar1(visit)", "no '\\| group' was given"),
    ("exp(visit | patient, nugget = TRUE)", "takes no options after its group .'nugget = "
                                            "TRUE'.; nlme's nugget = TRUE.*write "
                                            "exp.visit . patient.$"),
    ("ar1(visit | arm)", "is the unit measured repeatedly .the subject, not a factor"),
    ("corAR1(form = ~ visit | patient)", "nlme's corAR1 is written ar1.time . group. here"),
    ("car1(~ visit | patient)", "without nlme's '~': car1.visit . patient.$"),
    ("corARMA(form = ~ visit | patient, p = 1)", "written arma.time . group, p = 1, q = 1."),
    ("arma(visit | patient)", "give arma's orders, p = and q ="),
    ("arma(visit | patient, p = 1, d = 1)", "takes the orders p = and q = .*not 'd = 1'"),
    ("arma(visit | patient, p = 1, p = 2)", "each once"),
    ("arma(visit, p = 1 | patient)", "orders go after its group: arma.visit . patient, p = 1.$"),
    ("arma(p = 1, visit | patient)", "orders go after its group: arma.visit . patient, p = 1.$"),
    ("arma(visit | patient, p = 4, q = 2)", "span 5 steps of 1.*at 5 lags at most, fewer than "
                                            "the 6 parameters of ARMA.4,2.; use lower orders"),
])
def test_messages_say_what_to_do(correlation, match):
    with pytest.raises((mm.FormulaError, mm.DataError), match=match):
        mm.gls("y ~ arm", mm.datasets.load("trial"), correlation=correlation)


@pytest.mark.parametrize("levels", [(8, 6), (70, 40)], ids=["dense path", "blocked path"])
def test_crossed_factors_with_a_variance_function(levels):
    """Two crossed grouping factors and ident(g) with prior weights (the whitened rows' paths):
    the objective equals the dense computation with Psi = diag(ratio_g^2 / w)."""
    rng = np.random.default_rng(5)
    n = 400
    frame = pd.DataFrame({"s": rng.integers(0, levels[0], n).astype(str),
                          "i": rng.integers(0, levels[1], n).astype(str),
                          "g": rng.choice(list("abc"), n), "x": rng.uniform(1, 3, n),
                          "w": rng.uniform(0.5, 2, n)})
    frame["y"] = rng.normal(size=n) + frame["x"]
    model = LinearMixedModel("y ~ x + (1 | s) + (1 | i)", frame, variance="ident(g)",
                             weights="w")
    parameters = model.structure.parameters
    theta = np.array([0.7, 1.3, np.log(1.5), np.log(0.6)])
    ratios = dict(zip("abc", [1.0, 1.5, 0.6]))
    psi = np.diag(frame["g"].map(ratios).to_numpy() ** 2 / frame["w"].to_numpy())
    Z = sparse_z(model.structure, n).toarray()
    lam = np.diag(np.concatenate([np.repeat(lam[0, 0], block.nlevels) for lam, block
                                  in zip(parameters.lambdas(theta), model.structure.blocks)]))
    V = psi + Z @ lam @ lam.T @ Z.T
    expected = profiled_criterion(V, model.design.X, model.design.y, reml=True)
    assert model.objective(theta) == pytest.approx(expected, rel=1e-9)


def test_ident_of_strata_of_one_row_is_an_error():
    """ident on a continuous column (a stratum per row) has an unbounded likelihood: refused
    with what to use instead; strata of two rows or more fit."""
    trial = mm.datasets.load("trial")
    noisy = trial.assign(x1=np.random.default_rng(1).normal(size=len(trial)))
    with pytest.raises(mm.DataError, match=r"298 of its 298 strata have a single row.*power"):
        mm.gls("y ~ visit", noisy, variance="ident(x1)")
    assert np.isfinite(mm.gls("y ~ arm * visit", trial, variance="ident(arm)").objective)


@pytest.mark.parametrize("text", ["ar1(visit | patient)", "car1(time | patient)",
                                  "cs(1 | patient)", "symm(visit | patient)",
                                  "toep(visit | patient)", "exp(x + y | site)", "ar1(visit)",
                                  "cs(1)", "arma(visit | patient, p = 1, q = 1)",
                                  "arma(visit, p = 0, q = 2)"])
def test_a_correlation_structure_prints_its_string_form(text):
    structure = correlation_of(text)
    assert structure.text == text
    assert correlation_of(structure.text) == structure


@pytest.mark.parametrize("text", ["ident(centre)", "power(x)", "exp(x)"])
def test_a_variance_function_prints_its_string_form(text):
    function = variance_of(text)
    assert function.text == text
    assert variance_of(function.text) == function


def test_ar1_in_days_is_ar1_in_visits():
    """Visits 1..5 as days 0, 30, ...: AR(1) per day is AR(1) per visit with phi^30 for phi
    (the optimizer works on the correlation one step apart, the gaps' common divisor). On
    phi itself the criterion was flat at the start, phi = 0, and the fit stayed there
    (1368.7 against 1079.3)."""
    trial = mm.datasets.load("trial")
    base = mm.gls("y ~ arm * visit", trial, correlation="ar1(visit | patient)")
    phi = base.model.structure.parameters.residual.values(np.asarray(base.theta)[-1:])[0]
    for days in (7, 30, 100):
        fit = mm.gls("y ~ arm * visit", trial.assign(day=trial["visit"] * days),
                     correlation="ar1(day | patient)")
        assert fit.objective == pytest.approx(base.objective, rel=1e-10)
        ours = fit.model.structure.parameters.residual.values(np.asarray(fit.theta)[-1:])[0]
        assert ours ** days == pytest.approx(phi, rel=1e-7)


def test_car1_on_jittered_times_in_any_unit():
    """Visits jittered by up to 0.2: the median gap between distinct times was tiny, the
    start (0.2 at that gap) was independence, and the fit stayed there (1368.7); the gap is
    now the times' extent over the largest group's size less 1. Nelder-Mead finds nothing
    lower, and the fit is the same in thousandths of the unit (where phi itself
    underflows: 0.845^909) and in thousands."""
    trial = mm.datasets.load("trial")
    rng = np.random.default_rng(0)
    trial["time"] = trial["visit"] + rng.uniform(-0.2, 0.2, len(trial))
    base = mm.gls("y ~ arm * visit", trial, correlation="car1(time | patient)")
    assert base.objective < 1100
    again = scipy.optimize.minimize(base.model.objective, [0.0], method="Nelder-Mead",
                                    options={"xatol": 1e-10, "fatol": 1e-12})
    assert base.objective < again.fun + 1e-8
    for unit in (1e-3, 1e3):
        fit = mm.gls("y ~ arm * visit", trial.assign(time=trial["time"] * unit),
                     correlation="car1(time | patient)")
        assert fit.objective == pytest.approx(base.objective, rel=1e-10)
        assert not fit.is_singular


def test_an_ident_ratio_is_on_the_boundary_whichever_stratum_is_the_reference():
    """Stratum a's sd is 1e-6 of b's: with b as reference the ratio is at 0 and the fit
    singular; with a as reference the ratio grew without bound (1e6) and the fit was not."""
    rng = np.random.default_rng(1)
    stratum = np.where(np.arange(60) % 2 == 0, "a", "b")
    data = pd.DataFrame({"y": np.where(stratum == "a", 1e-6, 1.0) * rng.normal(size=60),
                         "s": stratum, "x": rng.normal(size=60)})
    for levels in (["a", "b"], ["b", "a"]):
        with pytest.warns(mm.FitWarning, match="residual structure is on its bound"):
            fit = mm.gls("y ~ x", data, variance=mm.cov.VarIdent("s", levels=levels))
        assert fit.is_singular


def test_duplicated_positions_with_a_duplicated_index_name_both_rows():
    trial = mm.datasets.load("trial")
    twice = pd.concat([trial.iloc[:5], trial.iloc[:5]])  # labels 0..4 twice
    with pytest.raises(mm.DataError, match=r"positions 0 and 5 \(both labelled 0\)"):
        mm.gls("y ~ 1", twice, correlation="ar1(visit | patient)")


def test_symm_starts_at_the_residuals_correlations():
    """15 groups of up to 5 visits: from independence BOBYQA stopped at a local optimum,
    291.240, reported as converged; from the least-squares residuals' correlations it
    reaches 273.638, the least of Nelder-Mead's runs from 5 starts."""
    data = symm_local_optimum_data()
    fit = mm.gls("y ~ visit", data, correlation="symm(visit | g)")
    assert fit.objective == pytest.approx(273.638077106, abs=1e-6)
    for seed in (0, 1):
        start = np.zeros(10) if seed == 0 else np.random.default_rng(seed).normal(size=10)
        other = scipy.optimize.minimize(fit.model.objective, start, method="Nelder-Mead",
                                        options={"maxfev": 20000, "maxiter": 20000,
                                                 "xatol": 1e-9, "fatol": 1e-11,
                                                 "adaptive": True})
        assert fit.objective < other.fun + 1e-7


@pytest.mark.parametrize("partitions", [None, 3])
def test_symm_that_the_data_cannot_estimate_is_refused(partitions):
    """In memory, and over a Dask DataFrame's partitions (from sums over them: no group of 3
    in one partition, no pair together in any one partition)."""
    def data(frame, group):
        if partitions is None:
            return frame
        dd = pytest.importorskip("dask.dataframe")
        return dd.from_pandas(frame.sort_values(group), npartitions=partitions, sort=False)

    rng = np.random.default_rng(0)
    few = pd.DataFrame({"g": np.repeat([1, 2, 3], 3), "t": np.tile([1, 2, 3], 3),
                        "y": rng.normal(size=9)})
    with pytest.raises(mm.DataError, match="only 3 groups have two rows or more"):
        mm.gls("y ~ 1", data(few, "g"), correlation="symm(t | g)")
    apart = pd.DataFrame([(p, t, rng.normal()) for p in range(60)
                          for t in range(p % 3 * 6 + 1, p % 3 * 6 + 7)],
                         columns=["p", "t", "y"])
    with pytest.raises(mm.DataError, match=r"no group has rows at both 't' = 1 and 7, .*"
                                           r"\(108 pairs in all\)"):
        mm.gls("y ~ 1", data(apart, "p"), correlation="symm(t | p)")


def test_symm_moment_start_is_the_pairwise_pearson_correlation():
    """``Symm.pair_sums`` and ``moment_start``: each pair's Pearson correlation over the
    groups that have both slots (pandas' pairwise-complete ``corr``), fewer than 3 groups
    at 0; sums of disjoint sets of groups add up."""
    rng = np.random.default_rng(7)
    groups, times = np.repeat(np.arange(12), 4), np.tile([1.0, 2.0, 3.0, 4.0], 12)
    keep = rng.random(len(groups)) > 0.25
    keep[groups >= 10] &= times[groups >= 10] <= 2  # a pair (3, 4) in few groups
    groups, times = groups[keep], times[keep]
    residuals = rng.normal(size=len(groups)) + 0.8 * rng.normal(size=12)[groups]
    symm = mm.cov.Symm("t", "g").bind(times[:, None], np.array([4]))
    table = pd.DataFrame({"g": groups, "t": times, "e": residuals}).pivot(
        index="g", columns="t", values="e")
    expected = np.nan_to_num(table.corr(min_periods=3).to_numpy())
    np.fill_diagonal(expected, 1.0)
    sums = symm.pair_sums(residuals, groups, times[:, None])
    first = groups < 6
    parts = (symm.pair_sums(residuals[first], groups[first], times[first, None])
             + symm.pair_sums(residuals[~first], groups[~first] - 6, times[~first, None]))
    np.testing.assert_allclose(parts, sums, rtol=1e-12, atol=1e-12)
    start = symm.moment_start(sums)
    values, vectors = np.linalg.eigh(expected)
    floored = (vectors * np.maximum(values, 0.05)) @ vectors.T
    scale = np.sqrt(np.diagonal(floored))
    np.testing.assert_allclose(symm.values(start),
                               (floored / np.outer(scale, scale))[symm._pairs()], atol=1e-10)


@pytest.mark.slow  # 40-50 s: the optimizer runs 100,000+ evaluations up the ridge
def test_a_likelihood_without_a_maximum_says_so():
    """An unstructured residual covariance (symm + ident) on 12 subjects with missing visits:
    the REML likelihood rises without bound as a partial correlation goes to -1 (nlme stops
    with "false convergence"). The fit warns that its estimates mean nothing."""
    rng = np.random.default_rng(0)
    visits = 4
    groups = int(rng.integers(7, 14))
    loadings = rng.normal(size=(visits, visits))
    root = np.linalg.cholesky(loadings @ loadings.T + 0.3 * np.eye(visits))
    rows = []
    for i in range(groups):
        e = root @ rng.normal(size=visits)
        for t in range(visits):
            if rng.uniform() < 0.2:
                continue
            rows.append({"id": f"g{i}", "visit": t + 1, "trt": "ab"[i % 2],
                         "y": 1 + 0.3 * t + e[t]})
    with pytest.warns(mm.FitWarning, match="the likelihood has no maximum"):
        mm.gls("y ~ trt + visit", pd.DataFrame(rows), correlation="symm(visit | id)",
               variance="ident(visit)")


@pytest.mark.parametrize("noise", [0.3, 1e-2, 1e-3])
@pytest.mark.parametrize("correlation", ["ar1(Days | Subject)", "cs(1 | Subject)"])
def test_never_worse_than_independent_residuals(noise, correlation):
    """A residual correlation contains independence (every correlation 0), so its fit is never
    worse than the model without it: AR(1) with correlated random intercepts and slopes
    stopped at phi = 1, 16 above (noise 1e-2 of the groups' sd; nlme's lme stops at
    240.0527, phi = -0.108, as this fit now does)."""
    rng = np.random.default_rng(1)
    rows = []
    for s in range(12):
        u0, u1 = rng.normal(0, 25), rng.normal(0, 6)
        for d in range(8):
            rows.append({"Subject": f"S{s:02d}", "Days": d, "w": rng.uniform(0.5, 2),
                         "y": 250 + 10 * d + u0 + u1 * d + rng.normal(0, 25 * noise)})
    data = pd.DataFrame(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = mm.lmer("y ~ Days + (Days | Subject)", data)
        fit = mm.lmer("y ~ Days + (Days | Subject)", data, correlation=correlation)
    assert fit.objective <= plain.objective + 1e-7 * abs(plain.objective)


def test_arma_autocorrelations_are_those_of_the_process():
    """R's ARMAacf values (ar = 0.5, ma = 0.3; ar = c(0.5, -0.2); ma = c(0.5, -0.2)), and
    the closed forms of AR(1) and MA(1)."""
    from mixedmodels.covariance.correlation import arma_autocorrelations

    np.testing.assert_allclose(arma_autocorrelations([0.5], [0.3], 4),
                               [1, 0.66187050, 0.33093525, 0.16546763, 0.08273381], atol=1e-8)
    np.testing.assert_allclose(arma_autocorrelations([0.5, -0.2], [], 4),
                               [1, 0.416666667, 0.008333333, -0.079166667, -0.04125], atol=1e-9)
    np.testing.assert_allclose(arma_autocorrelations([], [0.5, -0.2], 4),
                               [1, 0.3100775, -0.1550388, 0, 0], atol=1e-7)
    np.testing.assert_allclose(arma_autocorrelations([0.5], [0.4, 0.2], 4),  # nlme: 0.5407
                               [1, 0.7443820, 0.4564607, 0.2282303, 0.1141152], atol=1e-7)
    np.testing.assert_allclose(arma_autocorrelations([0.5, -0.2, 0.1], [0.3], 8),
                               [1, 0.577028616, 0.146217170, 0.057702862, 0.057310858,
                                0.031736574, 0.010176401, 0.004471972, 0.003374363], atol=1e-9)
    np.testing.assert_allclose(arma_autocorrelations([-0.7], [], 5), (-0.7) ** np.arange(6))
    np.testing.assert_allclose(arma_autocorrelations([], [0.4], 3), [1, 0.4 / 1.16, 0, 0])


@pytest.mark.parametrize("p, q", [(1, 0), (2, 0), (0, 1), (0, 3), (2, 2), (3, 1)])
def test_arma_parameters_are_nlme_unconstrained_ones(p, q):
    """Any parameters give a stationary and invertible process (the AR and MA polynomials'
    roots outside the unit circle), and ``from_values`` inverts ``values``; nlme's
    unconstrained coefficients of corARMA(c(0.5, -0.2)) are those below."""
    structure = mm.cov.ARMA("visit", "patient", p=p, q=q)
    rng = np.random.default_rng(p * 10 + q)
    for _ in range(20):
        params = rng.normal(scale=2.0, size=p + q)
        values = structure.values(params)
        phi, theta = values[:p], values[p:]
        for polynomial in (np.concatenate([[1.0], -phi]), np.concatenate([[1.0], theta])):
            if len(polynomial) > 1:
                assert np.all(np.abs(np.roots(polynomial[::-1])) > 1.0)
        np.testing.assert_allclose(structure.from_values(values), params, atol=1e-8)
    two = mm.cov.ARMA("t", p=2), mm.cov.ARMA("t", q=2), mm.cov.ARMA("t", p=1, q=1)
    expected = ([0.8873032, -0.4054651], [1.4663371, -0.4054651], [1.0986123, -0.4054651])
    for structure, values in zip(two, expected):
        np.testing.assert_allclose(structure.from_values(np.array([0.5, -0.2])), values,
                                   atol=1e-7)


def test_arma_of_order_one_is_ar1():
    trial = mm.datasets.load("trial")
    ar1 = mm.gls("y ~ arm * visit", trial, correlation="ar1(visit | patient)")
    arma = mm.gls("y ~ arm * visit", trial, correlation="arma(visit | patient, p = 1)")
    assert arma.objective == pytest.approx(ar1.objective, rel=1e-10)
    assert arma.residual_parameters.iloc[0] == pytest.approx(ar1.residual_parameters.iloc[0],
                                                             rel=1e-6)
    assert "ARMA(1,0), Phi1 = " in str(arma.summary())
    with pytest.raises(mm.FormulaError, match="needs its orders"):
        mm.cov.ARMA("visit", "patient")


@pytest.mark.parametrize("step", [2, 7, 100, 365])
def test_arma_runs_at_the_times_own_step(step):
    """Times ``step`` apart: the process runs at that step (nlme's lags are the differences,
    at which its fits stayed at phi = 0, 290 above AR(1)'s at step 100), and ARMA(1, 0) is
    AR(1) (whose phi is per unit time: its step-th power is ARMA's Phi1)."""
    trial = mm.datasets.load("trial")
    trial["t"] = (trial["visit"] - 1) * step
    ar1 = mm.gls("y ~ arm * visit", trial, correlation="ar1(t | patient)")
    arma = mm.gls("y ~ arm * visit", trial, correlation="arma(t | patient, p = 1)")
    assert arma.objective == pytest.approx(ar1.objective, rel=1e-10)
    assert arma.residual_parameters.iloc[0] == pytest.approx(
        ar1.residual_parameters.iloc[0] ** step, rel=1e-5)
    by_visit = mm.gls("y ~ arm * visit", trial,
                      correlation="arma(visit | patient, p = 1, q = 1)")
    by_time = mm.gls("y ~ arm * visit", trial, correlation="arma(t | patient, p = 1, q = 1)")
    assert by_time.objective == pytest.approx(by_visit.objective, rel=1e-10)


def test_whole_times_computed_in_floating_point_are_whole():
    """3 * 0.1 * 10 is 3.0000000000000004: visit 3 (nlme reads it so); 1.001 is not."""
    trial = mm.datasets.load("trial")
    trial["v"] = trial["visit"] * 0.1 * 10
    assert (trial["v"] != trial["visit"]).any()
    for correlation in ("ar1({} | patient)", "arma({} | patient, p = 1, q = 1)"):
        noisy = mm.gls("y ~ arm * visit", trial, correlation=correlation.format("v"))
        exact = mm.gls("y ~ arm * visit", trial, correlation=correlation.format("visit"))
        assert noisy.objective == exact.objective
    for shift, shown in ((0.001, "1.001"), (1e9 + 0.4, "1000000001.4"), (2e-9, "1.000000002")):
        trial["v"] = trial["visit"] + shift
        with pytest.raises(mm.DataError, match=f"whole numbers in 'v'.*has {shown}"):
            mm.gls("y ~ arm * visit", trial, correlation="arma(v | patient, p = 1)")


def test_arma_orders_beyond_the_lags_within_groups_are_refused():
    """Visits 1-3 in half the patients and 11-13 in the other half span 12 steps in all,
    but 2 within any patient: ARMA(3, 0)'s third coefficient is in no likelihood term."""
    trial = mm.datasets.load("trial")
    trial = trial[trial["visit"] <= 3].copy()
    trial["t"] = trial["visit"] + 10 * (trial["patient"].rank(method="dense") % 2)
    assert np.isfinite(mm.gls("y ~ arm", trial, correlation="arma(t | patient, p = 2)").objective)
    with pytest.raises(mm.DataError, match="within each group of 'patient' the times 't' span "
                                           "at most 2 steps of 1.*use lower orders"):
        mm.gls("y ~ arm", trial, correlation="arma(t | patient, p = 3)")


@pytest.mark.slow
def test_arma_profile_moves_in_partial_autocorrelations():
    """ARMA(2, 1) on the trial, near the edge of stationarity (its first partial
    autocorrelation 0.9992): most of the coefficients' box is no process, and in it the
    inner fits stalled (zeta 12.4 at Phi2 = -0.4566, not monotone). In the partial
    autocorrelations they reach a brute-force minimum over the other parameters (Phi2 is the
    last partial itself; Nelder-Mead from three starts), Phi1's zeta rises monotonically to
    its lower limit, and beyond the fit's edge its upper limit follows the ridge Phi1 + Phi2
    < 1 (it stopped at 1.5946, where a brute-force profile puts it at 1.757)."""
    from mixedmodels.inference.profile import profiler_of

    trial = mm.datasets.load("trial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.gls("y ~ arm * visit", trial, correlation="arma(visit | patient, p = 2, q = 1)")
    profiler = profiler_of(fit)
    zeta, _ = profiler.zeta_function("Phi2|patient")
    for value in (-0.4566, -0.29):
        def deviance(x, a2=value):
            delta = 2 * np.arctanh(np.clip([np.tanh(x[0]), a2, np.tanh(x[1])], -1 + 1e-15,
                                           1 - 1e-15))
            return profiler._deviance(delta, np.exp(x[2]))
        brute = min(scipy.optimize.minimize(deviance, start, method="Nelder-Mead",
                                            options={"xatol": 1e-9, "fatol": 1e-10,
                                                     "maxfev": 4000}).fun
                    for start in ([3.0, -1.5, 0.9], [1.5, -1.0, 0.8], [4.0, -2.5, 0.9]))
        assert zeta(value) == pytest.approx(np.sqrt(brute - profiler.dev_hat), abs=2e-3)
    zeta, center = profiler.zeta_function("Phi1|patient")
    values = [zeta(v) for v in (0.9, 1.1, 1.3, 1.5)]
    assert np.all(np.diff(values) > 0) and values[0] < -1.5 and values[-1] < 0
    # beyond the fit's first partial autocorrelation of 1 (Phi1 = 1.5946 with its Phi2), the
    # profile follows the ridge Phi1 + Phi2 < 1: Phi1 = 1.75 needs Phi2 < -0.75
    def deviance(x, phi1=1.75):
        a2 = -1.0 + (1.0 - phi1 + 1.0) / (1.0 + np.exp(-x[0]))  # in (-1, 1 - phi1)
        a1 = phi1 / (1.0 - a2)
        delta = 2 * np.arctanh(np.clip([a1, a2, np.tanh(x[1])], -1 + 1e-15, 1 - 1e-15))
        return profiler._deviance(delta, np.exp(x[2]))
    brute = min(scipy.optimize.minimize(deviance, start, method="Nelder-Mead",
                                        options={"xatol": 1e-9, "fatol": 1e-10,
                                                 "maxfev": 4000}).fun
                for start in ([1.0, -3.0, 0.9], [3.0, -2.0, 0.8], [0.0, -4.0, 0.9]))
    # (on this ridge the inner fits stop up to 0.015 above Nelder-Mead's deviance: 4e-3 in
    # zeta, 2e-3 in the interval's limit)
    assert zeta(1.75) == pytest.approx(np.sqrt(brute - profiler.dev_hat), abs=5e-3)
