"""Covariance structures and the parameter map against dense algebra and lme4's layout."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from mixedmodels.covariance.parameters import ParameterMap
from mixedmodels.covariance.structures import (
    BoundaryRule,
    Diagonal,
    Scalar,
    Unstructured,
    boundary_rule,
)

COLUMNS = ("(Intercept)", "x", "z")


def _entries(structure):
    """The (row, column) of lam each parameter sits at, written out by hand: lme4's
    column-major lower triangle, or the diagonal."""
    k = structure.k
    if isinstance(structure, Diagonal):
        return [(a, a) for a in range(k)]
    return [(a, b) for b in range(k) for a in range(b, k)]


def _random_params(structure, rng):
    """Parameters away from the boundary: diagonal entries in [0.3, 2], others in [-1, 1]."""
    return np.array([rng.uniform(0.3, 2.0) if a == b else rng.uniform(-1.0, 1.0)
                     for a, b in _entries(structure)])


def _dense_covariance(structure, values, sigma):
    """sigma^2 lam lam' rebuilt from ``sdcor``'s values: D R D."""
    k = structure.k
    sds, correlation = np.zeros(k), np.eye(k)
    for (a, b), value in zip(_entries(structure), values):
        if a == b:
            sds[a] = value
        else:
            correlation[a, b] = correlation[b, a] = value
    return np.diag(sds) @ correlation @ np.diag(sds)


STRUCTURES = [Scalar(), Diagonal(2), Diagonal(3), Unstructured(2), Unstructured(3)]


@pytest.mark.parametrize("k, names", [
    (1, ["sd_(Intercept)|g"]),
    (2, ["sd_(Intercept)|g", "cor_x.(Intercept)|g", "sd_x|g"]),
    (3, ["sd_(Intercept)|g", "cor_x.(Intercept)|g", "cor_z.(Intercept)|g", "sd_x|g",
         "cor_z.x|g", "sd_z|g"]),
])
def test_unstructured_layout_is_lme4s(k, names):
    structure = Unstructured(k)
    diagonal = np.array([name.startswith("sd") for name in names])
    assert structure.n_params == k * (k + 1) // 2 == len(names)
    assert structure.names(COLUMNS[:k], "g") == names
    np.testing.assert_array_equal(structure.start(), np.where(diagonal, 1.0, 0.0))
    np.testing.assert_array_equal(structure.lower(), np.where(diagonal, 0.0, -np.inf))
    np.testing.assert_array_equal(structure.upper(), np.full(len(names), np.inf))
    lower, upper = structure.sdcor_bounds()
    np.testing.assert_array_equal(lower, np.where(diagonal, 0.0, -1.0))
    np.testing.assert_array_equal(upper, np.where(diagonal, np.inf, 1.0))
    np.testing.assert_array_equal(structure.lambda_block(structure.start()), np.eye(k))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_diagonal_layout_is_that_of_k_scalar_terms(k):
    structure = Diagonal(k)
    assert structure.n_params == k
    assert structure.names(COLUMNS[:k], "g") == [f"sd_{c}|g" for c in COLUMNS[:k]]
    np.testing.assert_array_equal(structure.start(), np.ones(k))
    np.testing.assert_array_equal(structure.lower(), np.zeros(k))
    np.testing.assert_array_equal(structure.sdcor_bounds()[0], np.zeros(k))
    np.testing.assert_array_equal(structure.sdcor_bounds()[1], np.full(k, np.inf))

    joined = ParameterMap([structure], [COLUMNS[:k]], ["g"])
    split = ParameterMap([Scalar()] * k, [(c,) for c in COLUMNS[:k]], ["g"] * k)
    theta = np.linspace(0.5, 1.5, k)
    for method in ("start", "lower", "upper", "names"):
        assert np.array_equal(getattr(joined, method)(), getattr(split, method)())
    np.testing.assert_array_equal(joined.lambdas(theta)[0], split.lambdas(theta)[0])
    np.testing.assert_array_equal(joined.sdcor(theta, 2.0), split.sdcor(theta, 2.0))


def test_scalar_is_one_column():
    structure = Scalar()
    assert (structure.k, structure.n_params) == (1, 1)
    assert structure.names(("(Intercept)",), "Batch") == ["sd_(Intercept)|Batch"]
    np.testing.assert_array_equal(structure.lambda_block(np.array([0.7])), [[0.7]])
    np.testing.assert_allclose(structure.sdcor(np.array([0.7]), 3.0), [2.1], rtol=1e-15)


@pytest.mark.parametrize("structure", STRUCTURES, ids=repr)
def test_lambda_block_places_each_parameter(structure):
    params = _random_params(structure, np.random.default_rng(0))
    expected = np.zeros((structure.k, structure.k))
    for (a, b), value in zip(_entries(structure), params):
        expected[a, b] = value
    np.testing.assert_array_equal(structure.lambda_block(params), expected)


@pytest.mark.parametrize("structure", STRUCTURES, ids=repr)
@pytest.mark.parametrize("sigma", [0.5, 3.0])
def test_sdcor_describes_the_covariance(structure, sigma):
    rng = np.random.default_rng(1)
    for _ in range(5):
        params = _random_params(structure, rng)
        lam = structure.lambda_block(params)
        values = structure.sdcor(params, sigma)
        np.testing.assert_allclose(_dense_covariance(structure, values, sigma),
                                   sigma ** 2 * lam @ lam.T, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(structure.covariance(params, sigma), sigma ** 2 * lam @ lam.T,
                                   rtol=1e-14)
        lower, upper = structure.sdcor_bounds()
        assert np.all((lower <= values) & (values <= upper))


@pytest.mark.parametrize("structure", STRUCTURES, ids=repr)
def test_from_sdcor_inverts_sdcor(structure):
    rng = np.random.default_rng(2)
    for _ in range(5):
        params = _random_params(structure, rng)
        np.testing.assert_allclose(structure.from_sdcor(structure.sdcor(params, 1.7), 1.7),
                                   params, rtol=1e-12, atol=1e-14)


def test_from_sdcor_allows_semidefinite_covariances():
    structure = Unstructured(2)
    # correlation 1: the second pivot is 0
    params = structure.from_sdcor(np.array([1.0, 1.0, 2.0]), 1.0)
    lam = structure.lambda_block(params)
    np.testing.assert_allclose(lam @ lam.T, [[1.0, 2.0], [2.0, 4.0]], atol=1e-12)
    assert params[2] == 0.0
    # a zero sd: its correlation is undefined (NaN from sdcor), any value gives the same factor
    zero = np.array([0.0, 0.3, 2.0])
    np.testing.assert_allclose(structure.from_sdcor(zero, 2.0), [0.0, 0.0, 1.0], atol=1e-15)
    assert np.isnan(structure.sdcor(np.array([0.0, 0.0, 1.0]), 2.0)[1])


@pytest.mark.parametrize("structure", STRUCTURES, ids=repr)
def test_covariance_derivatives_span_the_covariance(structure):
    """Sigma = sum_i gamma_i E_i with gamma_i the entry of Sigma that E_i marks (one entry
    each, for lme4's structures)."""
    params = _random_params(structure, np.random.default_rng(3))
    covariance = structure.covariance(params, 1.3)
    rebuilt = np.zeros_like(covariance)
    for entries in structure.covariance_derivatives():
        assert len(entries) == 1
        (a, b), = entries
        unit = np.zeros_like(covariance)
        unit[a, b] = unit[b, a] = 1.0
        rebuilt += covariance[a, b] * unit
    np.testing.assert_allclose(rebuilt, covariance, rtol=1e-15)
    assert len(structure.covariance_derivatives()) == structure.n_params


def test_singular_at_the_boundary():
    structure = Unstructured(2)
    assert structure.is_singular(np.array([1.0, 0.5, 0.0]))
    assert structure.is_singular(np.array([5e-5, 0.5, 1.0]))
    assert not structure.is_singular(np.array([1.0, 0.5, 1e-3]))
    assert not structure.is_singular(np.array([1.0, 0.0, 1.0]))  # a zero covariance is not
    assert structure.is_singular(np.array([1.0, 0.5, 1e-3]), tol=1e-2)
    np.testing.assert_array_equal(structure.on_boundary(np.array([0.0, 0.0, 1.0])),
                                  [True, False, False])
    assert Scalar().is_singular(np.array([0.0]))
    assert not Diagonal(2).is_singular(np.array([0.2, 0.3]))


@pytest.fixture
def parameter_map():
    """(x | g) + (1 | h) + (1 | g): the third term is stacked after the first one's columns."""
    return ParameterMap([Unstructured(2), Scalar(), Scalar()],
                        [("(Intercept)", "x"), ("(Intercept)",), ("z",)], ["g", "h", "g"])


def test_parameter_map_joins_terms_in_lme4_order(parameter_map):
    m = parameter_map
    assert m.n_params == 5
    assert m.slices == (slice(0, 3), slice(3, 4), slice(4, 5))
    assert m.names() == ["sd_(Intercept)|g", "cor_x.(Intercept)|g", "sd_x|g",
                         "sd_(Intercept)|h", "sd_z|g"]
    np.testing.assert_array_equal(m.start(), [1, 0, 1, 1, 1])
    np.testing.assert_array_equal(m.lower(), [0, -np.inf, 0, 0, 0])
    np.testing.assert_array_equal(m.upper(), np.full(5, np.inf))
    assert m.blocks == ((0, 2), (1,))
    assert (m.block_of, m.offsets) == ((0, 1, 0), (0, 0, 2))

    theta = np.array([1.1, -0.4, 0.8, 0.6, 0.3])
    parts = m.split(theta)
    np.testing.assert_array_equal(np.concatenate(parts), theta)
    lambdas = m.lambdas(theta)
    first = scipy.linalg.block_diag(Unstructured(2).lambda_block(parts[0]), [[0.3]])
    np.testing.assert_array_equal(lambdas[0], first)
    np.testing.assert_array_equal(lambdas[1], [[0.6]])
    np.testing.assert_array_equal(m.patterns[0].lam(theta), first)

    sdcor = m.sdcor(theta, 2.0)
    np.testing.assert_allclose(m.from_sdcor(sdcor, 2.0), theta, rtol=1e-12)
    lower, upper = m.sdcor_bounds()
    np.testing.assert_array_equal(lower, [0, -1, 0, 0, 0])
    np.testing.assert_array_equal(upper, [np.inf, 1, np.inf, np.inf, np.inf])


@pytest.mark.parametrize("seed", range(5))
def test_boundary_rule_of_fixed_bounds_equals_the_rule(seed):
    """``BoundaryRule``'s shortcut (bounds 0 or infinite) and its general case both give
    ``boundary_rule``'s answer, also at parameters within the tolerance of a bound."""
    rng = np.random.default_rng(seed)
    lower = rng.choice([0.0, -np.inf, -1.0, 0.5], size=12)
    upper = np.where(rng.random(12) < 0.3, lower + 2.0, np.inf)
    for low, up in [(lower, upper), (np.where(np.isfinite(lower), 0.0, -np.inf),
                                     np.full(12, np.inf))]:
        start = np.where(np.isfinite(low), low, -3.0)
        params = start + rng.choice([0.0, 1e-6, 1e-3, 0.7], size=12)
        params = np.where(np.isfinite(up) & (rng.random(12) < 0.5), up - 1e-7, params)
        expected = boundary_rule(params, low, up)
        np.testing.assert_array_equal(BoundaryRule(low, up)(params), expected)
        assert expected.any()


def test_parameter_map_singular_rule(parameter_map):
    theta = np.array([1.1, -0.4, 0.8, 0.6, 0.3])
    assert not parameter_map.is_singular(theta)
    theta[4] = 1e-6
    assert parameter_map.is_singular(theta)
    np.testing.assert_array_equal(parameter_map.on_boundary(theta),
                                  [False, False, False, False, True])
