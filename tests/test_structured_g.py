"""Random-effects terms with structured covariances (lme4 2.x's ``diag()``, ``cs()``,
``ar1()``, ``toep()`` and glmmTMB's hom/het names), end to end: fits against glmmTMB's
(tests/reference/glmmtmb_structures.R), the objective against the criterion computed by brute
force from the dense V, the structures' equivalences with lme4's terms, the parser's errors,
and the inference that works with them (or refuses, saying why)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE_DIR

import mixedmodels as mm
from mixedmodels.core.pls import SMALL_SYSTEM
from mixedmodels.covariance.structured import (
    AutoRegressive,
    CompoundSymmetry,
    HomogeneousDiagonal,
)
from mixedmodels.covariance.structures import Diagonal, Scalar, Unstructured, sd_and_correlation
from mixedmodels.errors import FormulaError
from mixedmodels.formula.parse import parse_formula

with open(REFERENCE_DIR / "glmmtmb_structures.json", encoding="utf-8") as _handle:
    REFERENCE = json.load(_handle)
MODELS = {record["id"]: record for record in REFERENCE["models"]}
VISITS = pd.read_csv(REFERENCE_DIR / "cases" / "structured_visits.csv")
AR1 = "y ~ x + factor(visit) + ar1(0 + factor(visit) | id)"


def _data(name: str) -> pd.DataFrame:
    return VISITS if name.startswith("cases/") else mm.datasets.load(name)


def _fit(formula, data, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, data, reml=reml)


@pytest.fixture(scope="module")
def reference_fits():
    cache = {}

    def get(model_id, method):
        if (model_id, method) not in cache:
            record = MODELS[model_id]
            cache[model_id, method] = _fit(record["formula"], _data(record["data"]),
                                           method == "REML")
        return cache[model_id, method]

    return get


# -- against glmmTMB ---------------------------------------------------------------------------
def test_reference_engines_agree_with_lme4():
    """glmmTMB's REML -2 logLik is lme4's REMLcrit (unstructured model), and the dense-V code
    that fits hetar1 (which glmmTMB 1.1.5 does not have) reproduces glmmTMB's ar1 fit."""
    us = MODELS["us"]
    for method in ("REML", "ML"):
        assert us[method]["criterion"] == pytest.approx(us[method]["lme4_criterion"], rel=1e-8)
        check, tmb = MODELS["ar1"][method]["dense_check"], MODELS["ar1"][method]
        assert check["criterion"] == pytest.approx(tmb["criterion"], rel=1e-10)
        assert check["rho"] == pytest.approx(tmb["terms"][0]["cor"][0][1], abs=1e-4)
    assert MODELS["hetar1"]["REML"]["engine"] == "dense-V nlminb"


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("model_id", list(MODELS))
def test_matches_glmmtmb(model_id, method, reference_fits):
    """Criterion no worse than glmmTMB's (1e-6 relative); fixed effects within 2e-3 SE; SEs
    within 5e-3 relative; every sd (relative) and correlation (absolute) within 2e-3; sigma.

    SEs are compared with lme4's definition, sqrt(diag((X'V^-1X)^-1)) at the estimates,
    which the R script computes from glmmTMB's estimates (``se_given_theta``) for the
    one-term models: glmmTMB's own ``vcov`` inverts the Hessian of all its parameters, so it
    also carries the covariance parameters' uncertainty (6.6e-3 relative off on the
    unstructured model). The other models compare with glmmTMB's ``vcov`` (within 2e-4).
    Every reference fit converged with a positive definite Hessian (``pdHess``); a fit
    without one would be compared by its criterion only (none here).
    """
    ref = MODELS[model_id][method]
    fit = reference_fits(model_id, method)
    criterion = ref["criterion"]
    assert fit.objective <= criterion + 1e-6 * abs(criterion)
    if not (ref["pdHess"] and ref["convergence"] == 0):
        return  # glmmTMB did not reach a proper optimum: the criterion only
    se = fit.stderr
    for name, value in ref["fixef"].items():
        assert abs(fit.fixef[name] - value) <= 2e-3 * se[name], name
    for name, value in (ref["se_given_theta"] or ref["se"]).items():
        assert se[name] == pytest.approx(value, rel=5e-3), name
        assert se[name] == pytest.approx(ref["se"][name], rel=1e-2), name  # glmmTMB's vcov
    assert len(ref["terms"]) == len(fit.model.structure.terms)
    for t, term in enumerate(ref["terms"]):
        assert fit.model.structure.terms[t].group == term["group"]
        sd, correlation = sd_and_correlation(fit.term_covariance(t))
        np.testing.assert_allclose(sd, term["sd"], rtol=2e-3)
        np.testing.assert_allclose(correlation, np.atleast_2d(term["cor"]), atol=2e-3)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=2e-3)


@pytest.mark.parametrize("model_id", list(MODELS))
def test_every_backend_equals_blocked(model_id, reference_fits):
    """The objective's back-ends (here through the structured terms' entries) give the
    blocked factor's criterion at the start, the optimum and a point away from both."""
    fit = reference_fits(model_id, "REML")
    system = fit.model.system
    parameters = fit.model.structure.parameters
    backends = system.backends(small_limit=1500)
    away = np.clip(fit.theta * 0.8 + 0.05, parameters.lower(), parameters.upper())
    for theta in (parameters.start(), fit.theta, away):
        blocked = system.criterion(system.blocked_pieces(theta), True)
        for name, backend in backends.items():
            assert system.criterion(backend(theta), True) == pytest.approx(blocked, rel=1e-10), \
                name
    size = sum(b.q for b in system.blocks) + system.p + 1
    assert system.backend == ("compiled single factor" if len(system.blocks) == 1 else
                              "compiled dense" if size <= SMALL_SYSTEM else "blocked")


# -- the objective against the dense V ---------------------------------------------------------
def brute_force_criterion(y, X, Z, G, reml):
    """REML criterion or -2 log L, profiled over sigma, from the definitions: with
    Var(y) = sigma^2 H, H = Z G Z' + I (G relative to sigma^2),

        -2 log L(beta, sigma)   = n log(2 pi) + log|sigma^2 H| + r' (sigma^2 H)^-1 r,
        -2 log L_R(sigma)       = (n - p) log(2 pi) + log|sigma^2 H| + log|X' (sigma^2 H)^-1 X|
                                  + r' (sigma^2 H)^-1 r,

    r = y - X beta-hat with the generalized least-squares beta-hat = (X'H^-1X)^-1 X'H^-1 y,
    minimized over sigma: at sigma^2 = r'H^-1r / d (d = n, or n - p for REML); checked to be the
    minimum."""
    n, p = X.shape
    H = Z @ G @ Z.T + np.eye(n)
    H_inverse = np.linalg.inv(H)
    beta = np.linalg.solve(X.T @ H_inverse @ X, X.T @ H_inverse @ y)
    r = y - X @ beta
    r2 = r @ H_inverse @ r

    def deviance(sigma2):
        V = sigma2 * H
        value = (n - p if reml else n) * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + \
            r @ np.linalg.solve(V, r)
        if reml:
            value += np.linalg.slogdet(X.T @ np.linalg.solve(V, X))[1]
        return value

    sigma2 = r2 / (n - p if reml else n)
    best = deviance(sigma2)
    assert best < min(deviance(sigma2 * 1.01), deviance(sigma2 / 1.01))
    return best


def _sigma_of(structure, params):
    """The term's relative covariance written out from the definitions (toep from the lag
    correlations it reports, checked in test_structured_covariances.py)."""
    k = structure.k
    lags = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
    n_sd = 1 if structure.hom else k
    sds = np.resize(params[:n_sd], k)
    if isinstance(structure, HomogeneousDiagonal):
        correlation = np.eye(k)
    elif isinstance(structure, Diagonal):
        sds, correlation = params, np.eye(k)
    elif isinstance(structure, CompoundSymmetry):
        correlation = np.where(lags == 0, 1.0, params[-1])
    elif isinstance(structure, AutoRegressive):
        correlation = params[-1] ** lags
    else:
        correlation = np.concatenate([[1.0], structure.sdcor(params, 1.0)[n_sd:]])[lags]
    return np.outer(sds, sds) * correlation


CASES = [(name, hom) for name in ("diag", "cs", "ar1", "toep") for hom in (True, False)]


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("name, hom", CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_objective_is_the_dense_criterion(name, hom, seed, reml):
    """model.objective(theta) at random parameters of random small designs (a structured term
    on numeric columns, sometimes a second grouping factor) equals the brute-force criterion
    to 1e-8 relative."""
    rng = np.random.default_rng([seed, len(name), hom])
    k = int(rng.integers(2, 5))
    groups, per_group = int(rng.integers(4, 7)), int(rng.integers(5, 9))
    n = groups * per_group
    frame = pd.DataFrame(rng.normal(size=(n, k)), columns=[f"c{j}" for j in range(k)])
    frame["g"] = np.repeat([f"g{i}" for i in range(groups)], per_group)
    frame["h"] = rng.choice(["a", "b", "c"], n)
    frame["x"] = rng.normal(size=n)
    frame["y"] = rng.normal(size=n) + frame["c0"] * rng.normal()
    columns = " + ".join(frame.columns[:k])
    second = seed == 2
    formula = (f"y ~ x + {name}(0 + {columns} | g, hom = {'TRUE' if hom else 'FALSE'})"
               + (" + (1 | h)" if second else ""))
    model = mm.LinearMixedModel(formula, frame, reml=reml)
    parameters = model.structure.parameters
    structure = parameters.structures[0]
    lower, upper = parameters.lower(), parameters.upper()
    bounded = np.isfinite(upper)
    low, high = np.where(bounded, lower, 0.2), np.where(bounded, upper, 2.0)
    theta = rng.uniform(np.where(bounded, 0.9 * low + 0.1 * high, low),
                        np.where(bounded, 0.1 * low + 0.9 * high, high))
    # Z and G from the data and the definitions
    Z_term = np.zeros((n, groups * k))
    codes = frame["g"].str[1:].astype(int).to_numpy()
    for j in range(k):
        Z_term[np.arange(n), codes * k + j] = frame[f"c{j}"]
    blocks = [np.kron(np.eye(groups), _sigma_of(structure, theta[parameters.slices[0]]))]
    Z = Z_term
    if second:
        levels = sorted(frame["h"].unique())
        Z_h = (frame["h"].to_numpy()[:, None] == np.array(levels)[None, :]).astype(float)
        Z = np.hstack([Z_term, Z_h])
        blocks.append(theta[parameters.slices[1]][0] ** 2 * np.eye(len(levels)))
    G = np.zeros((Z.shape[1], Z.shape[1]))
    start = 0
    for block in blocks:
        G[start:start + len(block), start:start + len(block)] = block
        start += len(block)
    X = np.column_stack([np.ones(n), frame["x"]])
    expected = brute_force_criterion(frame["y"].to_numpy(), X, Z, G, reml)
    assert model.objective(theta) == pytest.approx(expected, rel=1e-8)


# -- equivalences with lme4's terms ------------------------------------------------------------
def test_us_is_lme4s_term():
    sleep = mm.datasets.load("sleepstudy")
    plain = _fit("Reaction ~ Days + (Days | Subject)", sleep)
    us = _fit("Reaction ~ Days + us(Days | Subject)", sleep)
    assert isinstance(us.model.structure.parameters.structures[0], Unstructured)
    np.testing.assert_array_equal(us.theta, plain.theta)
    assert us.objective == plain.objective
    np.testing.assert_array_equal(us.fixef, plain.fixef)


def test_diag_is_the_double_bar_expansion():
    """diag(x | g) is one term with the criterion of lme4's (x || g) (one-column terms)."""
    sleep = mm.datasets.load("sleepstudy")
    joined = _fit("Reaction ~ Days + diag(Days | Subject)", sleep)
    split = _fit("Reaction ~ Days + (Days || Subject)", sleep)
    assert len(joined.model.structure.terms) == 1 and len(split.model.structure.terms) == 2
    assert isinstance(joined.model.structure.parameters.structures[0], Diagonal)
    assert joined.objective == pytest.approx(split.objective, rel=1e-10)
    np.testing.assert_allclose(joined.theta, split.theta, rtol=1e-4)
    # a diag term's correlation rows are 0, one row per pair, as lme4 lists them
    rows = joined.varcorr
    correlations = rows[rows["var2"].notna()]
    assert len(correlations) == 1 and correlations["sdcor"].iloc[0] == 0.0


@pytest.mark.parametrize("hom", [True, False])
def test_ar1_at_rho_zero_is_diag(hom):
    """ar1 with rho = 0 is diag with the same sd(s) (hom: one shared)."""
    spec = f"0 + factor(visit) | id, hom = {hom}"
    ar1 = mm.LinearMixedModel(f"y ~ x + ar1({spec})", VISITS)
    diag = mm.LinearMixedModel(f"y ~ x + diag({spec})", VISITS)
    assert isinstance(diag.structure.parameters.structures[0],
                      HomogeneousDiagonal if hom else Diagonal)
    sds = np.array([0.8]) if hom else np.array([0.8, 1.3, 1.1, 0.6])
    assert ar1.objective(np.append(sds, 0.0)) == pytest.approx(diag.objective(sds), rel=1e-13)


def test_homogeneous_structures_are_lme4_models():
    """diag(hom) of the visits is (1 | id:visit); homcs with rho >= 0 is
    (1 | id) + (1 | id:visit): the same optimum."""
    homdiag = _fit("y ~ x + homdiag(0 + factor(visit) | id)", VISITS)
    nested = _fit("y ~ x + (1 | id:visit)", VISITS)
    assert homdiag.objective == pytest.approx(nested.objective, rel=1e-10)
    homcs = _fit("y ~ x + cs(0 + factor(visit) | id, hom = TRUE)", VISITS)
    both = _fit("y ~ x + (1 | id) + (1 | id:visit)", VISITS)
    assert homcs.objective == pytest.approx(both.objective, rel=1e-10)
    variance = homcs.term_covariance(0)
    assert variance[0, 0] == pytest.approx(both.varcorr["vcov"][:2].sum(), rel=1e-4)


def test_cs_of_two_columns_is_unstructured():
    sleep = mm.datasets.load("sleepstudy")
    cs = _fit("Reaction ~ Days + cs(Days | Subject)", sleep)
    us = _fit("Reaction ~ Days + (Days | Subject)", sleep)
    assert cs.objective == pytest.approx(us.objective, rel=1e-10)
    np.testing.assert_allclose(cs.term_covariance(0), us.term_covariance(0), rtol=1e-4)
    names = cs.model.structure.parameters.names()
    assert names == ["sd_(Intercept)|Subject", "sd_Days|Subject", "cor|Subject"]


# -- the formula -------------------------------------------------------------------------------
def test_parser_reads_the_structured_terms():
    parsed = parse_formula("y ~ log(x) + diag(x | g) + ar1(0 + factor(v) | g/h, hom = FALSE) "
                           "+ (homcs(z | k)) + us(1 | m) + toep(x | g, hom=True)")
    assert parsed.fixed == "log(x)"
    assert [(t.structure, t.hom, t.group) for t in parsed.random] == [
        ("diag", False, "g"), ("ar1", False, "h:g"), ("ar1", False, "g"), ("cs", True, "k"),
        ("us", False, "m"), ("toep", True, "g")]
    assert [t.text for t in parsed.random] == [
        "diag(x | g)", "ar1(0 + factor(v) | h:g, hom = FALSE)", "ar1(0 + factor(v) | g, "
        "hom = FALSE)", "cs(z | k, hom = TRUE)", "(1 | m)", "toep(x | g, hom = TRUE)"]
    defaults = parse_formula("y ~ diag(x | g) + cs(x | g) + ar1(x | g) + toep(x | g)").random
    assert [t.hom for t in defaults] == [False, False, True, False]
    glmmtmb = parse_formula("y ~ homdiag(x | g) + hetcs(x | g) + hetar1(x | g) + "
                            "homtoep(x | g) + hetdiag(x | g) + homar1(x | g)").random
    assert [(t.structure, t.hom) for t in glmmtmb] == [
        ("diag", True), ("cs", False), ("ar1", False), ("toep", True), ("diag", False),
        ("ar1", True)]
    # the term design carries them; the structure is chosen from them
    model = mm.LinearMixedModel("y ~ x + hetar1(0 + factor(visit) | id) + (1 | site)", VISITS)
    assert [(t.structure, t.hom) for t in model.design.terms] == [("ar1", False), ("us", False)]
    assert [type(s) for s in model.structure.parameters.structures] == [AutoRegressive, Scalar]


@pytest.mark.parametrize("formula, position, message", [
    ("y ~ x + ar1(x | g, hom = maybe)", 26, "hom must be TRUE or FALSE"),
    ("y ~ x + foo(x | g)", 9, "foo() is not a covariance structure"),
    ("y ~ x + ar1(x | g, hum = TRUE)", 20, "takes one argument after the term, hom = TRUE"),
    ("y ~ x + ar1(x || g)", 16, "takes one bar"),
    ("y ~ x + homcs(x | g, hom = FALSE)", 9, "write cs(x | g, hom = FALSE)"),
    ("y ~ x + us(x | g, hom = TRUE)", 19, "us() has no arguments"),
    ("y ~ x - ar1(x | g)", 9, "cannot be subtracted"),
])
def test_bad_structured_terms(formula, position, message):
    with pytest.raises(FormulaError) as error:
        parse_formula(formula)
    text = str(error.value)
    assert message in text
    assert f"(at position {position})" in text
    assert "us(x | g), diag(x | g), cs(x | g), ar1(x | g), toep(x | g)" in text or \
        "foo" not in formula


@pytest.mark.parametrize("name", ["cs", "ar1", "toep"])
def test_one_column_needs_an_unstructured_term(name):
    """cs, ar1 and toep correlate two columns or more: one column is a clear error."""
    with pytest.raises(FormulaError, match=rf"{name}\(\) correlates two or more columns: "
                                           r"write \(1 \| id\) for one"):
        mm.LinearMixedModel(f"y ~ x + {name}(1 | id)", VISITS)
    model = mm.LinearMixedModel("y ~ x + diag(1 | id, hom = TRUE)", VISITS)  # one sd: fine
    assert isinstance(model.structure.parameters.structures[0], Scalar)


# -- inference ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ar1_fit():
    return _fit(AR1, VISITS[VISITS["id"] <= "p20"])


def test_summary_and_varcorr(ar1_fit):
    text = str(ar1_fit.summary())
    assert "Formula: y ~ x + factor(visit) + ar1(0 + factor(visit) | id)" in text
    rows = ar1_fit.varcorr
    term = rows[rows["grp"] == "id"] if "grp" in rows else rows[rows["group"] == "id"]
    assert len(term) == 4 + 6  # every sd and every correlation, one row each
    sds = term[term["var2"].isna()]["sdcor"].to_numpy()
    np.testing.assert_allclose(sds, sds[0])  # one shared sd
    rho = ar1_fit.theta[1]
    correlations = term[term["var2"].notna()]["sdcor"].to_numpy()
    np.testing.assert_allclose(correlations, rho ** np.array([1, 2, 3, 1, 2, 1]), rtol=1e-12)
    assert f"{rho ** 2:.2f}" in text


def test_satterthwaite_works_and_does_not_depend_on_the_parameterization():
    """Satterthwaite's df of cs(Days | Subject) (sds and a correlation, the correlation on
    the real line for the derivatives) equal those of the same model written (Days | Subject)
    (lme4's Cholesky parameters)."""
    sleep = mm.datasets.load("sleepstudy")
    cs = _fit("Reaction ~ Days + cs(Days | Subject)", sleep).coef_table()
    us = _fit("Reaction ~ Days + (Days | Subject)", sleep).coef_table()
    np.testing.assert_allclose(cs["df"], us["df"], rtol=1e-4)
    np.testing.assert_allclose(cs["p"], us["p"], rtol=1e-4)


def test_satterthwaite_and_anova_on_ar1(ar1_fit):
    table = ar1_fit.coef_table()
    assert np.all(np.isfinite(table["df"])) and np.all(table["df"] > 1)
    f_tests = ar1_fit.anova()
    assert list(f_tests.index) == ["x", "factor(visit)"]
    assert np.all(np.isfinite(f_tests["den_df"]))


def test_boundary_fit_is_singular_and_satterthwaite_holds_the_correlation():
    """Subjects' effects equal at every visit: rho on its bound 1, reported singular;
    Satterthwaite differentiates the other parameters."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(30):
        u = rng.normal()
        rows += [(f"g{i}", v, u + rng.normal() * 0.8) for v in range(4) for _ in range(3)]
    data = pd.DataFrame(rows, columns=["id", "visit", "y"])
    with pytest.warns(mm.FitWarning, match="boundary"):
        fit = mm.lmer("y ~ 1 + ar1(0 + factor(visit) | id)", data)
    assert fit.is_singular and fit.theta[1] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_array_equal(fit.model.structure.parameters.on_boundary(fit.theta),
                                  [False, True])
    df = fit.coef_table()["df"].iloc[0]
    assert 20 < df < 40  # 30 subjects: the intercept's df are about 29


def test_cs_at_its_lower_bound_is_singular():
    """Effects that sum to zero over the visits: correlation -1/(k-1), cs's lower bound."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        u = rng.normal(size=3) * 1.5
        u -= u.mean()
        rows += [(f"g{i}", v, u[v] + rng.normal() * 0.3) for v in range(3) for _ in range(4)]
    data = pd.DataFrame(rows, columns=["id", "visit", "y"])
    fit = _fit("y ~ 1 + homcs(0 + factor(visit) | id)", data)
    assert fit.theta[1] == -0.5 and fit.is_singular  # snapped onto the lower bound


def test_kenward_roger_of_homogeneous_cs_is_that_of_lme4s_model():
    """homcs (Sigma linear in its variance and covariance) gets Kenward-Roger, equal to that
    of the same model written (1 | id) + (1 | id:visit)."""
    data = VISITS[VISITS["id"] <= "p15"]
    homcs = _fit("y ~ x + factor(visit) + homcs(0 + factor(visit) | id)", data)
    both = _fit("y ~ x + factor(visit) + (1 | id) + (1 | id:visit)", data)
    assert homcs.objective == pytest.approx(both.objective, rel=1e-9)
    a, b = homcs.coef_table(ddf="kenward-roger"), both.coef_table(ddf="kenward-roger")
    np.testing.assert_allclose(a["df"], b["df"], rtol=1e-4)
    np.testing.assert_allclose(a["std_error"], b["std_error"], rtol=1e-5)


def test_kenward_roger_of_diag_is_that_of_the_double_bar():
    sleep = mm.datasets.load("sleepstudy")
    a = _fit("Reaction ~ Days + diag(Days | Subject)", sleep).coef_table(ddf="kr")
    b = _fit("Reaction ~ Days + (Days || Subject)", sleep).coef_table(ddf="kr")
    np.testing.assert_allclose(a["df"], b["df"], rtol=1e-5)


@pytest.mark.parametrize("term, description", [
    ("ar1(0 + factor(visit) | id)", "AR(1), one shared sd"),
    ("cs(0 + factor(visit) | id)", "compound symmetry, one sd per column"),
    ("toep(0 + factor(visit) | id)", "Toeplitz, one sd per column"),
])
def test_kenward_roger_refuses_nonlinear_covariances(term, description):
    fit = _fit(f"y ~ x + {term}", VISITS[VISITS["id"] <= "p15"])
    message = (f"the term {term} ({description}) is not: use Satterthwaite's df "
               "(ddf='satterthwaite')")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("|", r"\|").replace("+", r"\+")):
        fit.coef_table(ddf="kenward-roger")
    with pytest.raises(ValueError, match="Kenward-Roger needs every random-effects covariance"):
        fit.anova(ddf="kenward-roger")


def test_profile_intervals(ar1_fit):
    """Profile intervals of the shared sd, rho, sigma and a fixed effect bracket the ML
    estimates, rho's inside [-1, 1]."""
    names = ["sd|id", "cor|id", "sigma", "x"]
    intervals = ar1_fit.confint(parameters=names)
    ml = ar1_fit.model.with_reml(False).fit()
    estimates = dict(zip(names, [ml.sigma * ml.theta[0], ml.theta[1], ml.sigma,
                                 ml.fixef["x"]]))
    for name in names:
        lower, upper = intervals.loc[name]
        assert lower < estimates[name] < upper, name
    assert -1 <= intervals.loc["cor|id", "lower"] and intervals.loc["cor|id", "upper"] <= 1


def test_profile_does_not_depend_on_the_parameterization():
    """The profile interval of the intercept's sd is the same for cs(Days | Subject) and
    (Days | Subject)."""
    sleep = mm.datasets.load("sleepstudy")
    name = "sd_(Intercept)|Subject"
    cs = _fit("Reaction ~ Days + cs(Days | Subject)", sleep).confint(parameters=[name])
    us = _fit("Reaction ~ Days + (Days | Subject)", sleep).confint(parameters=[name])
    np.testing.assert_allclose(cs.to_numpy(), us.to_numpy(), rtol=1e-4)


@pytest.mark.slow
def test_toeplitz_profile_of_a_lag_correlation():
    fit = _fit("y ~ x + toep(0 + factor(visit) | id)", VISITS[VISITS["id"] <= "p30"])
    lower, upper = fit.confint(parameters=["cor_lag1|id"]).loc["cor_lag1|id"]
    ml = fit.model.with_reml(False).fit()
    lag1 = ml.model.structure.parameters.sdcor(ml.theta, ml.sigma)[4]
    assert -1 <= lower < lag1 < upper <= 1


def test_bootstrap(ar1_fit):
    result = ar1_fit.bootstrap(n=4, seed=3, progress=False)
    assert list(result.replicates.columns[:4]) == ["replicate", "sd|id", "cor|id", "sigma"]
    assert result.replicates["cor|id"].between(-1, 1).all()
    assert np.isfinite(result.replicates.to_numpy()).all()


def test_likelihood_ratio_test_of_the_correlation():
    """ar1 against diag(hom) (rho = 0): one parameter, the ML deviance difference."""
    small = _fit("y ~ x + homdiag(0 + factor(visit) | id)", VISITS, reml=False)
    large = _fit("y ~ x + ar1(0 + factor(visit) | id)", VISITS, reml=False)
    table = mm.anova(small, large)
    assert table["Df"].iloc[1] == 1
    assert table["Chisq"].iloc[1] == pytest.approx(small.objective - large.objective, rel=1e-12)


def test_ranova_removes_a_structured_term_whole():
    fit = _fit("y ~ x + ar1(0 + factor(visit) | id) + (1 + x | site)", VISITS)
    table = fit.ranova()
    assert list(table.index) == ["<none>", "ar1(0 + factor(visit) | id)", "x in (1 + x | site)"]
    assert list(table["Df"].iloc[1:]) == [2, 2]
    assert table.attrs["formulas"]["x in (1 + x | site)"] == \
        "y ~ x + ar1(0 + factor(visit) | id) + (1 | site)"
    reduced = _fit("y ~ x + (1 + x | site)", VISITS)
    assert table["logLik"].iloc[1] == pytest.approx(reduced.loglik, rel=1e-10)


def test_predict_and_simulate(ar1_fit):
    new = VISITS[VISITS["id"] <= "p02"]
    prediction = ar1_fit.predict(new)
    u = ar1_fit.ranef["id"]
    x = ar1_fit.fixef
    first = new.iloc[0]
    expected = (x["(Intercept)"] + x["x"] * first["x"]
                + (x.get(f"factor(visit){first['visit']}", 0.0))
                + u.loc[first["id"], f"factor(visit){first['visit']}"])
    assert prediction.iloc[0] == pytest.approx(expected, rel=1e-10)
    assert ar1_fit.simulate(2, seed=1).shape == (ar1_fit.nobs, 2)


def test_objective_outside_the_domain_is_infinite():
    """A correlation beyond its bound has no covariance: the objective is inf, on the compiled
    path (one grouping factor) and the blocked one (two)."""
    one = mm.LinearMixedModel("y ~ x + ar1(0 + factor(visit) | id)", VISITS)
    two = mm.LinearMixedModel("y ~ x + ar1(0 + factor(visit) | id) + (1 | site)", VISITS)
    assert one.system.backend == "compiled single factor" and two.system.backend == "blocked"
    assert one.objective([1.0, 1.5]) == np.inf and two.objective([1.0, -1.2, 1.0]) == np.inf
    assert np.isfinite(one.objective([1.0, 1.0])) and np.isfinite(one.objective([0.5, -1.0]))


def test_convergence_check(ar1_fit):
    check = ar1_fit.check_convergence()
    assert check.converged and len(check.free) == 2


def test_toeplitz_is_at_least_as_good_as_the_structures_nested_in_it():
    """ML on the trial, one row per (patient, visit): toep contains hetar1 and homtoep, so its
    optimum is at least theirs (on the bounded partial autocorrelations the optimizer had
    stopped at a partial autocorrelation of 1, logLik -542.98, below both)."""
    trial = mm.datasets.load("trial")

    def loglik(term):
        return mm.lmer(f"y ~ arm * visit + {term}", trial, reml=False,
                       nobs_checks="ignore").loglik

    toep = loglik("toep(0 + factor(visit) | patient)")
    assert toep >= loglik("hetar1(0 + factor(visit) | patient)") - 1e-6
    assert toep >= loglik("toep(0 + factor(visit) | patient, hom = TRUE)") - 1e-6


# -- an intercept term and a structured term on the same grouping factor -------------------------
def test_random_intercept_with_ar1_on_the_visits_is_identified():
    """Diggle's model, a random intercept, an AR(1) process and a nugget per subject: the
    intercept column is the sum of the AR(1) term's visit indicators, but the AR(1)
    covariances decay with the lag and the intercept's do not, so nothing is aliased (it was
    warned as collinear, with advice to remove a column, and reported singular). nlme fits it
    as a random intercept with corExp(nugget = TRUE) (tests/reference/diggle_model.R)."""
    reference = json.loads((REFERENCE_DIR / "diggle_model.json").read_text())
    data = pd.read_csv(REFERENCE_DIR / "data" / "diggle.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = mm.lmer(reference["formula"], data)
    assert not fit.is_singular
    # ours is as high or higher (nlme's optim stops 2.5e-6 below)
    assert fit.loglik == pytest.approx(reference["reml_loglik"], abs=1e-5)
    assert fit.loglik >= reference["reml_loglik"] - 1e-9
    varcorr = fit.varcorr
    assert varcorr.vcov.iloc[0] == pytest.approx(reference["intercept_variance"], rel=2e-3)
    assert varcorr.vcov.iloc[1] == pytest.approx(reference["ar1_variance"], rel=2e-3)
    assert varcorr.sdcor.iloc[6] == pytest.approx(reference["ar1_rho"], rel=2e-3)
    assert fit.sigma ** 2 == pytest.approx(reference["residual_variance"], rel=2e-3)
    np.testing.assert_allclose(fit.beta, list(reference["fixef"].values()), rtol=2e-3)


@pytest.mark.parametrize("term, aliased", [
    ("(0 + factor(visit) | id)", True),  # unstructured: absorbs the intercept's variance
    ("cs(0 + factor(visit) | id, hom = TRUE)", True),  # a constant added to cs is cs
    ("toep(0 + factor(visit) | id, hom = TRUE)", True),  # ... and to Toeplitz, Toeplitz
    ("diag(0 + factor(visit) | id)", False),
    ("ar1(0 + factor(visit) | id)", False),
    ("cs(0 + factor(visit) | id)", False),  # heterogeneous sds: not of its form once added
])
def test_which_structures_absorb_an_intercept_term(term, aliased):
    data = pd.read_csv(REFERENCE_DIR / "data" / "diggle.csv").iloc[:300]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = mm.LinearMixedModel("y ~ visit + (1 | id) + " + term, data,
                                    nobs_checks="ignore")
    warned = any("linear combinations of the columns before them" in str(w.message)
                 for w in caught)
    assert warned == aliased
    assert any(t.aliased for t in model.design.terms) == aliased


def test_a_structured_correlation_is_reported_where_its_sds_are_zero():
    """An AR(1) term whose sds are 0: varcorr gives its correlation parameter (as sdcor and
    the profile's names do), where it gave NaN; an unstructured term keeps lme4's NaN."""
    rng = np.random.default_rng(2)
    data = pd.DataFrame({"grp": np.repeat([f"g{g}" for g in range(12)], 12),
                         "x": np.tile(np.arange(4.0), 36)})
    data["y"] = rng.normal(size=len(data))
    with pytest.warns(mm.FitWarning, match="singular"):
        fit = mm.lmer("y ~ x + ar1(1 + x | grp)", data)
    varcorr = fit.varcorr
    assert np.all(varcorr.sdcor.iloc[:2] == 0)
    rho = fit.model.structure.parameters.sdcor(fit.theta, fit.sigma)[-1]
    assert varcorr.sdcor.iloc[2] == rho and np.isfinite(rho)
    with pytest.warns(mm.FitWarning, match="singular"):
        unstructured = mm.lmer("y ~ x + (1 + x | grp)", data)
    assert unstructured.varcorr.sdcor.iloc[0] == 0
    assert np.isnan(unstructured.varcorr.sdcor.iloc[2])
