"""Partial correlations of a C-vine: every point of the box a correlation matrix, and the profile
of singular unstructured terms of 3 or more columns, whose inner fits move in them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.optimize

import mixedmodels as mm
from mixedmodels.covariance.structures import Unstructured
from mixedmodels.inference.partial_correlations import Vine


def _vine(k, order):
    rows, cols = np.tril_indices(k, -1)
    return Vine(k, rows, cols, tuple(order))


def _matrix(vine, correlations):
    matrix = np.eye(vine.k)
    matrix[vine.rows, vine.cols] = matrix[vine.cols, vine.rows] = correlations
    return matrix


@pytest.mark.parametrize("k", [3, 4, 6])
def test_every_point_of_the_box_is_a_correlation_matrix(k):
    rng = np.random.default_rng(k)
    for order in (range(k), rng.permutation(k)):
        vine = _vine(k, order)
        for partials in rng.uniform(-1, 1, (20, k * (k - 1) // 2)):
            correlations = vine.correlations(partials)
            assert np.linalg.eigvalsh(_matrix(vine, correlations)).min() > -1e-12
            np.testing.assert_allclose(vine.partials(correlations), partials, atol=1e-9)
        # a correlation with the root is a partial correlation given nothing
        a, _ = vine._positions()
        np.testing.assert_array_equal(correlations[a == 0], partials[a == 0])


def test_singular_matrices_and_the_box_edge():
    """A correlation matrix of rank 2 has partial correlations at +/-1 (and undetermined ones
    at 0); the matrix is recovered. Indefinite correlations and partials beyond 1 raise."""
    rng = np.random.default_rng(1)
    vine = _vine(4, [2, 0, 3, 1])
    loadings = rng.normal(size=(4, 2))
    covariance = loadings @ loadings.T
    sd = np.sqrt(np.diag(covariance))
    correlations = (covariance / np.outer(sd, sd))[vine.rows, vine.cols]
    partials = vine.partials(correlations)
    assert np.all(np.abs(partials) <= 1.0)
    np.testing.assert_allclose(vine.correlations(partials), correlations, atol=1e-9)
    with pytest.raises(np.linalg.LinAlgError):
        _vine(3, range(3)).partials(np.array([0.9, 0.9, -0.9]))
    with pytest.raises(np.linalg.LinAlgError):
        _vine(3, range(3)).correlations(np.array([0.5, 1.2, 0.0]))


def test_indefinite_sds_and_correlations_are_no_parameters():
    """An unstructured term's sds and correlations whose matrix is indefinite raise; before,
    the factor silently skipped the negative pivot, another model's parameters."""
    structure = Unstructured(3)
    names = structure.names(("a", "b", "c"), "g")
    values = {name: 1.0 for name in names if name.startswith("sd_")}
    values.update({"cor_b.a|g": 0.9, "cor_c.a|g": 0.9, "cor_c.b|g": -0.9})
    with pytest.raises(np.linalg.LinAlgError, match="indefinite"):
        structure.from_sdcor(np.array([values[name] for name in names]), 1.0)
    values["cor_c.b|g"] = 0.62  # = 0.9 * 0.9 - sqrt(0.19 * 0.19): on the edge, semi-definite
    theta = structure.from_sdcor(np.array([values[name] for name in names]), 1.0)
    np.testing.assert_allclose(structure.sdcor(theta, 1.0),
                               [values[name] for name in names], atol=1e-7)


def _rank_two_data():
    """20 subjects, 3 conditions whose subject effects have rank 2 (a, 0.7 a + 0.7 b, b)."""
    rng = np.random.default_rng(3)
    rows = []
    for s in range(20):
        a, b = rng.normal(0, 1.2, 2)
        for cond, u in zip("abc", (a, 0.7 * a + 0.7 * b, b)):
            for _ in range(4):
                rows.append({"subj": f"s{s}", "cond": cond, "y": 10 + u + rng.normal(0, 1.5)})
    return pd.DataFrame(rows)


@pytest.mark.slow  # 5 s: two profiled parameters, and their limits found again by brute force
def test_profile_of_a_singular_three_column_term():
    """The limits are where the ML deviance, minimized over every other parameter by SLSQP
    from several starts with the parameter held, rises by the chi-square quantile. Before the
    inner fits moved in partial correlations, the correlation's interval reached -1 (deviance
    31 above the minimum there) and the sd's lower limit was 0.248 (34.7 above)."""
    with pytest.warns(mm.FitWarning, match="singular"):
        fit = mm.lmer("y ~ cond + (0 + cond | subj)", _rank_two_data(), reml=False)
    wanted = ["cor_condc.conda|subj", "sd_condc|subj"]
    intervals = fit.confint(parameters=wanted)
    system, parameters = fit.model.system, fit.model.structure.parameters
    names = parameters.names()

    def deviance(x):
        with np.errstate(over="ignore", invalid="ignore"):  # the searches' wild steps
            return system.deviance(x[:-1], np.exp(x[-1]), False)

    def psi(x):
        with np.errstate(over="ignore", invalid="ignore"):
            return parameters.sdcor(x[:-1], np.exp(x[-1]))

    start = np.append(fit.theta, np.log(fit.sigma))
    rng = np.random.default_rng(1)
    for name in wanted:
        j = names.index(name)
        for limit in intervals.loc[name]:
            held = {"type": "eq", "fun": lambda x: np.nan_to_num(psi(x)[j]) - limit}
            best = min(scipy.optimize.minimize(deviance, start + rng.normal(0, 0.3, len(start)),
                                               constraints=[held], method="SLSQP",
                                               options={"maxiter": 1000, "ftol": 1e-13}).fun
                       for _ in range(8))
            assert best - fit.objective == pytest.approx(3.8414588, abs=2e-3), (name, limit)
    assert -0.6 < intervals.loc["cor_condc.conda|subj", "lower"] < -0.5
    assert intervals.loc["sd_condc|subj", "lower"] > 0.9
