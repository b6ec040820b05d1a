"""The structured covariances of random-effects terms (covariance.structured) against their
definitions: Sigma = D C D with C written out from the structure's formula, the entries and
pattern that the objective uses, the sd/correlation view, bounds, names, the boundary rule, the
Kenward-Roger derivatives, and the parameter map's entries vector."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from mixedmodels.covariance.parameters import ParameterMap
from mixedmodels.covariance.structured import (
    AutoRegressive,
    CompoundSymmetry,
    HomogeneousDiagonal,
    Toeplitz,
)
from mixedmodels.covariance.structures import Diagonal, Scalar, Unstructured

COLUMNS = ("a", "b", "c", "d", "e")

STRUCTURES = [HomogeneousDiagonal(3), CompoundSymmetry(2, False), CompoundSymmetry(3, False),
              CompoundSymmetry(4, True), AutoRegressive(4, True), AutoRegressive(3, False),
              AutoRegressive(2, True), Toeplitz(2, False), Toeplitz(4, False),
              Toeplitz(5, True)]


def _sds(structure, params, sigma):
    """The k absolute sds of the columns."""
    n_sd = 1 if structure.hom else structure.k
    return np.resize(params[:n_sd] * sigma, structure.k)


def _correlation(structure, params):
    """C written out from the structure's definition (toep: from its reported lag
    correlations, which ``test_toeplitz_parameters_are_partial_autocorrelations`` checks)."""
    k = structure.k
    lags = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
    if isinstance(structure, HomogeneousDiagonal):
        return np.eye(k)
    rho = params[-structure.n_correlation:]
    if isinstance(structure, CompoundSymmetry):
        return np.where(lags == 0, 1.0, rho[0])
    if isinstance(structure, AutoRegressive):
        return rho[0] ** lags
    r = np.concatenate([[1.0], structure.sdcor(params, 1.0)[-(k - 1):]])
    return r[lags]


def _random_params(structure, rng):
    """sds in [0.3, 2], correlation parameters well inside their bounds."""
    lower, upper = structure.lower(), structure.upper()
    bounded = np.isfinite(upper)
    low = np.where(bounded, lower, 0.3)
    high = np.where(bounded, upper, 2.0)
    margin = np.where(bounded, 0.05 * (high - low), 0.0)
    return rng.uniform(low + margin, high - margin)


@pytest.mark.parametrize("structure", STRUCTURES, ids=repr)
@pytest.mark.parametrize("sigma", [0.6, 2.5])
def test_covariance_is_the_definition(structure, sigma):
    rng = np.random.default_rng(0)
    for _ in range(5):
        params = _random_params(structure, rng)
        sds = _sds(structure, params, sigma)
        expected = np.outer(sds, sds) * _correlation(structure, params)
        np.testing.assert_allclose(structure.covariance(params, sigma), expected,
                                   rtol=1e-12, atol=1e-14)
        lam = structure.lambda_block(params)
        np.testing.assert_array_equal(lam, np.tril(lam))


@pytest.mark.parametrize("structure", STRUCTURES, ids=repr)
def test_lambda_is_the_pattern_of_the_entries(structure):
    """The objective fills lam from ``pattern`` and ``entries``: the same lam."""
    params = _random_params(structure, np.random.default_rng(1))
    entries = structure.entries(params)
    assert entries.shape == (structure.n_entries,)
    assert structure.pattern.size == structure.k
    np.testing.assert_allclose(structure.pattern.lam(entries), structure.lambda_block(params),
                               rtol=1e-15, atol=1e-15)
    assert structure.linear == isinstance(structure, HomogeneousDiagonal)


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("rho", [-0.9, -0.2, 0.0, 0.45, 0.99])
def test_closed_forms_are_choleskys_factor(k, rho):
    """AR(1)'s and compound symmetry's closed-form factors equal the numerical Cholesky
    factor of C (cs only where C is positive definite)."""
    lags = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
    ar1 = AutoRegressive(k, True).correlation_factor(np.array([rho]))
    np.testing.assert_allclose(ar1, np.linalg.cholesky(rho ** lags), atol=1e-13)
    if rho > -1.0 / (k - 1):
        cs = CompoundSymmetry(k, True).correlation_factor(np.array([rho]))
        np.testing.assert_allclose(cs, np.linalg.cholesky(np.where(lags == 0, 1.0, rho)),
                                   atol=1e-13)


@pytest.mark.parametrize("k", [3, 4])
def test_semidefinite_at_the_bounds(k):
    """At a correlation bound C is singular and lam lam' is still C: cs at -1/(k-1) and 1,
    ar1 at +/-1, toep with a partial autocorrelation at +/-1."""
    lags = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
    for rho in (-1.0 / (k - 1), 1.0):
        factor = CompoundSymmetry(k, True).correlation_factor(np.array([rho]))
        np.testing.assert_allclose(factor @ factor.T, np.where(lags == 0, 1.0, rho), atol=1e-12)
    for rho in (-1.0, 1.0):
        factor = AutoRegressive(k, True).correlation_factor(np.array([rho]))
        np.testing.assert_allclose(factor @ factor.T, rho ** lags, atol=1e-12)
    toep = Toeplitz(k, True)  # its parameters are atanh of the partial autocorrelations
    z = np.zeros(k - 1)
    z[0] = np.inf
    factor = toep.correlation_factor(z)
    np.testing.assert_allclose(factor @ factor.T, np.ones((k, k)), atol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_toeplitz_parameters_are_partial_autocorrelations(k):
    """tanh of each parameter, phi_m, is the last coefficient of the order-m Yule-Walker
    solution of the reported lag correlations (the definition of the partial
    autocorrelation), and every parameter vector gives a positive definite C."""
    structure = Toeplitz(k, False)
    rng = np.random.default_rng(2)
    for _ in range(20):
        pacf = rng.uniform(-0.98, 0.98, k - 1)
        params = np.concatenate([np.ones(k), np.arctanh(pacf)])
        r = np.concatenate([[1.0], structure.sdcor(params, 1.0)[k:]])
        for m in range(1, k):
            coefficients = np.linalg.solve(scipy.linalg.toeplitz(r[:m]), r[1:m + 1])
            assert coefficients[-1] == pytest.approx(pacf[m - 1], abs=1e-10)
        assert np.all(np.linalg.eigvalsh(scipy.linalg.toeplitz(r)) > 0)
        np.testing.assert_allclose(np.tanh(structure.correlation_parameters(r[1:])), pacf,
                                   atol=1e-10)


@pytest.mark.parametrize("structure", STRUCTURES, ids=repr)
def test_from_sdcor_inverts_sdcor(structure):
    rng = np.random.default_rng(3)
    for _ in range(5):
        params = _random_params(structure, rng)
        np.testing.assert_allclose(structure.from_sdcor(structure.sdcor(params, 1.7), 1.7),
                                   params, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("structure", STRUCTURES, ids=repr)
def test_start_bounds_and_names(structure):
    k = structure.k
    np.testing.assert_allclose(structure.lambda_block(structure.start()), np.eye(k),
                               atol=1e-15)
    n_sd = 1 if structure.hom else k
    lower, upper = structure.lower(), structure.upper()
    np.testing.assert_array_equal(lower[:n_sd], 0.0)
    np.testing.assert_array_equal(upper[:n_sd], np.inf)
    names = structure.names(COLUMNS[:k], "g")
    assert len(names) == structure.n_params == len(lower) == len(upper)
    assert names[:n_sd] == (["sd|g"] if structure.hom else [f"sd_{c}|g" for c in COLUMNS[:k]])
    sd_lower, sd_upper = structure.sdcor_bounds()
    np.testing.assert_array_equal(sd_lower[:n_sd], 0.0)
    if isinstance(structure, CompoundSymmetry):
        assert names[n_sd:] == ["cor|g"]
        assert (lower[-1], upper[-1]) == (-1.0 / (k - 1), 1.0)
    elif isinstance(structure, AutoRegressive):
        assert names[n_sd:] == ["cor|g"]
        assert (lower[-1], upper[-1]) == (-1.0, 1.0)
    elif isinstance(structure, Toeplitz):
        assert names[n_sd:] == [f"cor_lag{lag}|g" for lag in range(1, k)]
        np.testing.assert_array_equal(lower[n_sd:], -np.inf)  # atanh of the partials
        np.testing.assert_array_equal(sd_upper[n_sd:], 1.0)


def test_one_column_is_refused():
    for cls in (CompoundSymmetry, AutoRegressive, Toeplitz):
        with pytest.raises(ValueError, match="at least 2 columns"):
            cls(1, True)


def test_boundary_rule():
    """An sd at 0 or a correlation parameter at either of its bounds is on the boundary."""
    cs = CompoundSymmetry(3, False)
    assert not cs.is_singular(np.array([1.0, 0.5, 0.7, 0.3]))
    assert cs.is_singular(np.array([1.0, 0.5, 0.7, -0.5 + 1e-6]))
    assert cs.is_singular(np.array([1.0, 0.5, 0.7, 1.0]))
    assert cs.is_singular(np.array([1.0, 0.0, 0.7, 0.3]))
    np.testing.assert_array_equal(cs.on_boundary(np.array([1.0, 0.5, 0.7, 0.99999])),
                                  [False, False, False, True])
    ar1 = AutoRegressive(4, True)
    assert ar1.is_singular(np.array([1.0, -1.0]))
    assert not ar1.is_singular(np.array([1.0, -0.999]))
    toep = Toeplitz(3, True)
    np.testing.assert_array_equal(toep.on_boundary(np.array([1.0, 0.2, -np.arctanh(1 - 1e-6)])),
                                  [False, False, True])
    assert not HomogeneousDiagonal(3).is_singular(np.array([0.2]))
    assert HomogeneousDiagonal(3).is_singular(np.array([0.0]))


def test_outside_the_domain_is_an_error():
    """lam is undefined beyond a correlation's bound: a LinAlgError (the objective's inf)."""
    for structure, params in [(AutoRegressive(3, True), [1.0, 1.2]),
                              (CompoundSymmetry(3, True), [1.0, -0.6])]:
        with pytest.raises(np.linalg.LinAlgError):
            structure.entries(np.array(params))


@pytest.mark.parametrize("structure", STRUCTURES + [Diagonal(3), Unstructured(3), Scalar()],
                         ids=repr)
def test_covariance_derivatives(structure):
    """Where Sigma is linear in variance parameters gamma_i (each shared by the entries
    listed), Sigma = sum_i gamma_i E_i; None otherwise (heterogeneous cs and toep, ar1)."""
    derivatives = structure.covariance_derivatives()
    linear_kind = isinstance(structure, (HomogeneousDiagonal, Diagonal, Unstructured)) or (
        isinstance(structure, (CompoundSymmetry, Toeplitz)) and structure.hom)
    assert (derivatives is not None) == linear_kind
    if derivatives is None:
        return
    params = _random_params(structure, np.random.default_rng(4))
    covariance = structure.covariance(params, 1.3)
    rebuilt = np.zeros_like(covariance)
    for entries in derivatives:
        gamma = covariance[entries[0]]
        assert len({a == b for a, b in entries}) == 1  # all on the diagonal or all below
        unit = np.zeros_like(covariance)
        for a, b in entries:
            assert a >= b
            assert covariance[a, b] == pytest.approx(gamma, rel=1e-12)
            unit[a, b] = unit[b, a] = 1.0
        rebuilt += gamma * unit
    np.testing.assert_allclose(rebuilt, covariance, rtol=1e-12)


def _map(structures, groups):
    return ParameterMap(structures, [COLUMNS[:s.k] for s in structures], groups)


def test_entries_are_theta_itself_for_linear_structures():
    """The hot path: no copy, no work, when every structure is linear."""
    m = _map([Unstructured(2), HomogeneousDiagonal(3), Scalar()], ["g", "h", "g"])
    assert m.linear
    theta = np.linspace(0.5, 1.5, m.n_params)
    assert m.entries(theta) is theta
    longer = np.append(theta, [7.0, 8.0])  # other parameters after the terms'
    assert m.entries(longer) is longer
    for lam, lam_longer in zip(m.lambdas(theta), m.lambdas(longer)):
        np.testing.assert_array_equal(lam, lam_longer)
    np.testing.assert_array_equal(m.lambdas(theta)[1], theta[3] * np.eye(3))


def test_entries_of_structured_terms_joined():
    """With a structured term the entries are the terms' entries joined; each block's factor
    is the block-diagonal of its terms' lam, whatever follows the terms' part of theta."""
    structures = [AutoRegressive(3, False), Scalar(), CompoundSymmetry(2, True), Diagonal(2)]
    m = _map(structures, ["g", "h", "g", "h"])
    assert not m.linear
    theta = np.array([1.1, 0.7, 0.4, 0.5, 0.6, 0.9, -0.3, 0.8, 1.2])
    parts = m.split(theta)
    expected = np.concatenate([s.entries(p) for s, p in zip(structures, parts)])
    np.testing.assert_array_equal(m.entries(theta), expected)
    np.testing.assert_array_equal(m.entries(np.append(theta, [3.0, 4.0])), expected)
    lambdas = m.lambdas(np.append(theta, 5.0))
    np.testing.assert_allclose(lambdas[0], scipy.linalg.block_diag(
        structures[0].lambda_block(parts[0]), structures[2].lambda_block(parts[2])))
    np.testing.assert_allclose(lambdas[1], scipy.linalg.block_diag(
        [[parts[1][0]]], structures[3].lambda_block(parts[3])))
    assert m.names() == ["sd_a|g", "sd_b|g", "sd_c|g", "cor|g", "sd_a|h", "sd|g", "cor|g",
                         "sd_a|h", "sd_b|h"]


def test_unbounded_maps_the_correlations_only():
    m = _map([AutoRegressive(3, False), Unstructured(2), CompoundSymmetry(3, True)],
             ["g", "h", "k"])
    theta = np.array([1.1, 0.7, 0.4, -0.5, 0.6, -0.4, 0.9, 1.3, 0.2])
    z = m.unbounded(theta)
    changed = np.flatnonzero(z != theta)
    np.testing.assert_array_equal(changed, [3, 8])
    assert z[3] == pytest.approx(np.arctanh(-0.5))
    np.testing.assert_allclose(m.bounded(z), theta, rtol=1e-14)
    longer = np.append(theta, 2.0)
    np.testing.assert_allclose(m.bounded(m.unbounded(longer)), longer, rtol=1e-14)


def test_bounded_derivative_equals_finite_differences():
    """d bounded / dz (Satterthwaite's chain rule on the real line), elementwise."""
    m = _map([AutoRegressive(3, False), Unstructured(2), CompoundSymmetry(3, True)],
             ["g", "h", "k"])
    z = m.unbounded(np.array([1.1, 0.7, 0.4, -0.5, 0.6, -0.4, 0.9, 1.3, 0.2, 2.0]))
    h = 1e-6
    expected = [(m.bounded(z + h * e)[i] - m.bounded(z - h * e)[i]) / (2 * h)
                for i, e in enumerate(np.eye(len(z)))]
    np.testing.assert_allclose(m.bounded_derivative(z), expected, rtol=1e-8)
    assert m.bounded_derivative(z)[3] != 1.0 and m.bounded_derivative(z)[0] == 1.0
