"""The blocked factor's solves of the mixed-model equations against dense algebra.

K = [[T'T + I, T'X], [X'T, X'X]] with T = W^1/2 Z Lambda and X scaled by W^1/2 (prior weights
W), built densely from the fit's matrices.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

MODELS = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", None),
    ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", None),
    ("pastes", "strength ~ 1 + (1 | batch/cask)", None),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "w"),
    ("orthodont", "distance ~ age + Sex + (age | Subject)", None),
]


def _fit(name, formula, weights):
    data = mm.datasets.load(name)
    if weights:
        data = data.assign(w=np.linspace(0.5, 2.0, len(data)))
    return mm.lmer(formula, data, weights=weights)


def _dense_k(fit):
    root = np.sqrt(fit.model.design.weights)
    T = (fit.Z.toarray() * root[:, None]) @ fit.Lambda.toarray()
    X = fit.X * root[:, None]
    q = T.shape[1]
    top = np.hstack([T.T @ T + np.eye(q), T.T @ X])
    bottom = np.hstack([X.T @ T, X.T @ X])
    return np.vstack([top, bottom]), q


@pytest.mark.parametrize("name,formula,weights", MODELS)
def test_solve_equals_dense(name, formula, weights):
    fit = _fit(name, formula, weights)
    K, q = _dense_k(fit)
    rng = np.random.default_rng(1)
    rhs = rng.standard_normal((K.shape[0], 3))
    factor = fit._factor
    np.testing.assert_allclose(factor.solve(rhs), np.linalg.solve(K, rhs), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(factor.solve(rhs[:, 0]), np.linalg.solve(K, rhs[:, 0]),
                               rtol=1e-9, atol=1e-10)
    M = K[:q, :q]
    np.testing.assert_allclose(factor.solve(rhs[:q], fixed=False), np.linalg.solve(M, rhs[:q]),
                               rtol=1e-9, atol=1e-10)
    # |L^-1 w|^2 = w' K^-1 w
    w = rhs[:, 0]
    assert np.sum(factor.forward(w) ** 2) == pytest.approx(w @ np.linalg.solve(K, w), rel=1e-10)


@pytest.mark.parametrize("name,formula,weights", MODELS)
def test_response_solution_is_the_mixed_model_equations(name, formula, weights):
    """[v; beta] solves K [v; beta] = [T'y; X'y] (Henderson's equations, spherical form)."""
    fit = _fit(name, formula, weights)
    K, q = _dense_k(fit)
    root = np.sqrt(fit.model.design.weights)
    y = (fit.y - fit.model.design.offset) * root
    T = (fit.Z.toarray() * root[:, None]) @ fit.Lambda.toarray()
    rhs = np.concatenate([T.T @ y, (fit.X * root[:, None]).T @ y])
    beta, v = fit._factor.response_solution()
    expected = np.linalg.solve(K, rhs)
    np.testing.assert_allclose(np.concatenate(v + [beta]), expected, rtol=1e-8, atol=1e-8)


def test_categorical_of_floats_is_labelled_as_r_factor():
    """A categorical of floats has R's factor() labels (cf2 for 2.0, as factor(x) of the
    floats: the same fit and names), new data are coded by value whatever their categories,
    and an unused category is dropped."""
    rng = np.random.default_rng(1)
    x = np.tile([1.0, 2.0, 2.5], 20)
    data = pd.DataFrame({"y": rng.normal(size=60), "x": x, "g": np.repeat(np.arange(10), 6),
                         "cf": pd.Categorical(x, categories=[1.0, 2.0, 2.5, 3.0])})
    fit = mm.lmer("y ~ cf + (1 | g)", data)
    same = mm.lmer("y ~ factor(x) + (1 | g)", data)
    assert list(fit.fixef.index) == ["(Intercept)", "cf2", "cf2.5"]
    np.testing.assert_allclose(fit.fixef.to_numpy(), same.fixef.to_numpy(), rtol=1e-10)
    new = pd.DataFrame({"cf": pd.Categorical([2.5, 2.0], categories=[2.5, 2.0]), "g": [0, 1]})
    np.testing.assert_allclose(fit.predict(new), fit.fitted[[2, 7]], rtol=1e-12)
