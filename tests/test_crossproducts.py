"""Cross-products as a value: A of all rows is the sum of the A's of any partition of the rows,
and a fit from summed cross-products is the in-memory fit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mixedmodels as mm
from mixedmodels.core.crossproducts import CrossProducts
from mixedmodels.core.optimize import minimize_bobyqa
from mixedmodels.core.pls import PLSSystem


def _crossed_simulation() -> pd.DataFrame:
    """Three crossed grouping factors with unbalanced, incomplete cells."""
    rng = np.random.default_rng(7)
    n = 2000
    frame = pd.DataFrame({"a": rng.integers(0, 30, n), "b": rng.integers(0, 20, n),
                          "c": rng.integers(0, 10, n), "x": rng.normal(size=n)})
    effects = [rng.normal(0, s, k) for s, k in ((1.0, 30), (0.7, 20), (0.4, 10))]
    frame["y"] = (2 + 0.5 * frame.x + effects[0][frame.a] + effects[1][frame.b]
                  + effects[2][frame.c] + rng.normal(size=n))
    return frame.astype({"a": str, "b": str, "c": str})


CASES = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"), None),
    "penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", mm.datasets.load("penicillin"),
                   None),
    "crossed3": ("y ~ x + (1 | a) + (1 | b) + (1 | c)", _crossed_simulation(), None),
    "weighted": ("Reaction ~ Days + (Days | Subject)",
                 mm.datasets.load("sleepstudy").assign(w=lambda f: 1 + f.Days / 4), "w"),
}


def _model(case: str, reml: bool = True):
    formula, data, weights = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.LinearMixedModel(formula, data, reml=reml, weights=weights)


def _inputs(model):
    """The blocks, [Q y] and the residual structure the model's cross-products are built from
    (Q = X R^-1, the system's orthonormal fixed-effects columns)."""
    design = model.design
    Q = np.linalg.solve(model.system.fixed_basis.T, design.X.T).T
    xy = np.column_stack([Q, design.y - design.offset])
    return model.structure.blocks, xy, model.residual


def _dense(block) -> np.ndarray:
    return block.toarray() if sp.issparse(block) else np.asarray(block)


def _assert_equal_crossproducts(a: CrossProducts, b: CrossProducts, rtol: float) -> None:
    pairs = (list(zip(a.diag, b.diag)) + list(zip(a.xy_z, b.xy_z)) + [(a.xy, b.xy)]
             + [(_dense(a.off[key]), _dense(b.off[key])) for key in a.off])
    for left, right in pairs:
        scale = max(np.abs(right).max(), 1e-300)
        assert np.abs(left - right).max() <= rtol * scale
    assert a.n == b.n
    assert a.log_det_psi == pytest.approx(b.log_det_psi, rel=rtol, abs=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sum_over_seven_random_partitions(case):
    model = _model(case)
    blocks, xy, residual = _inputs(model)
    whole = CrossProducts.from_rows(blocks, xy, residual)
    rng = np.random.default_rng(3)
    order = rng.permutation(xy.shape[0])
    cuts = np.sort(rng.choice(np.arange(1, xy.shape[0]), 6, replace=False))
    parts = [CrossProducts.from_rows(blocks, xy, residual, rows)
             for rows in np.split(order, cuts)]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    _assert_equal_crossproducts(total, whole, 1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_multi_chunk_accumulation_equals_one_chunk(case):
    """The chunked path of the in-memory fit (a small chunk size makes several chunks)."""
    model = _model(case)
    blocks, xy, residual = _inputs(model)
    whole = CrossProducts.from_rows(blocks, xy, residual)
    chunked = CrossProducts.accumulate(blocks, xy, residual, chunk_rows=37)
    _assert_equal_crossproducts(chunked, whole, 1e-12)
    system = PLSSystem(model.structure, model.design.X, model.design.y - model.design.offset,
                       model.residual, chunk_rows=37)
    theta = model.structure.parameters.start() * 0.7
    assert system.objective(theta, True) == pytest.approx(model.objective(theta), rel=1e-12)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("case", ["sleepstudy", "penicillin", "crossed3", "weighted"])
def test_fit_from_summed_crossproducts(case, reml):
    model = _model(case, reml)
    blocks, xy, residual = _inputs(model)
    halves = np.array_split(np.random.default_rng(5).permutation(xy.shape[0]), 3)
    total = sum((CrossProducts.from_rows(blocks, xy, residual, rows) for rows in halves[1:]),
                CrossProducts.from_rows(blocks, xy, residual, halves[0]))
    system = PLSSystem.from_crossproducts(model.structure, total, model.system.fixed_basis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit()
    summed = minimize_bobyqa(lambda theta: system.objective(theta, reml),
                             model.structure.parameters.start(), model.structure.parameters.lower(),
                             fit.optsummary.settings)
    assert system.objective(fit.theta, reml) == pytest.approx(fit.objective, rel=1e-12)
    assert summed.fmin == pytest.approx(fit.objective, rel=1e-10)


def test_reweighting_the_rows_is_a_weighted_fit():
    """New weights on the same design (a new residual structure) give the weighted model."""
    plain, weighted = _model("sleepstudy"), _model("weighted")
    blocks, xy, _ = _inputs(plain)
    reweighted = CrossProducts.accumulate(blocks, xy, weighted.residual)
    system = PLSSystem.from_crossproducts(plain.structure, reweighted, plain.system.fixed_basis)
    theta = np.array([0.8, 0.05, 0.25])
    assert system.objective(theta, True) == pytest.approx(weighted.objective(theta), rel=1e-12)


def test_adding_other_models_crossproducts_is_an_error():
    a = CrossProducts.from_rows(*_inputs(_model("sleepstudy")))
    b = CrossProducts.from_rows(*_inputs(_model("penicillin")))
    with pytest.raises(ValueError, match="different models"):
        a + b
