"""Property tests on random small designs (hypothesis).

* the profiled objective at any theta equals the REML criterion / -2 log-likelihood computed
  by brute force from the dense V = Z Lambda Lambda' Z' + I, with Z and the theta layout built
  here independently, following lme4's conventions;
* every kernel of the blocked Cholesky equals plain dense algebra, and an unsupported pair of
  block types is a TypeError naming both;
* permuting rows or relabelling levels changes nothing;
* at the optimum, fitted values are X beta + Z u, and beta and u solve the mixed-model
  equations (GLS and BLUP with the dense V).
"""

from __future__ import annotations

import itertools
import os
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.linalg import blocks
from mixedmodels.linalg.blocks import BlockDiagonal, BlockSparse

# The hypothesis profile (tests/conftest.py) decides whether the examples are the same on every
# run (CI set, or HYPOTHESIS_PROFILE=ci) or new each run (the default elsewhere).
# MM_PROPERTY_SCALE=k runs k times as many: a wider search is, for instance,
#   HYPOTHESIS_PROFILE=dev MM_PROPERTY_SCALE=10 python -m pytest tests/test_properties.py
SCALE = int(os.environ.get("MM_PROPERTY_SCALE", "1"))
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- random designs ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Term:
    """One lme4 term: columns ("1" or "z") within levels of ``factor`` ("g", "h" or "g:h")."""

    columns: tuple[str, ...]
    factor: str


@dataclass(frozen=True)
class Case:
    data: pd.DataFrame
    formula: str
    fixed: tuple[str, ...]  # "1", "x", "w"
    terms: tuple[Term, ...]  # in formula order


RANDOM_PARTS = {
    # name: (formula text, terms, needs h, nested)
    "int": ("(1 | g)", (Term(("1",), "g"),)),
    "slope": ("(z | g)", (Term(("1", "z"), "g"),)),
    "slope_only": ("(0 + z | g)", (Term(("z",), "g"),)),
    "uncorr": ("(z || g)", (Term(("1",), "g"), Term(("z",), "g"))),
    "crossed": ("(1 | g) + (1 | h)", (Term(("1",), "g"), Term(("1",), "h"))),
    "crossed_slope": ("(z | g) + (1 | h)", (Term(("1", "z"), "g"), Term(("1",), "h"))),
    "crossed_slopes": ("(1 | h) + (z | g) + (0 + z | h)",
                       (Term(("1",), "h"), Term(("1", "z"), "g"), Term(("z",), "h"))),
    "nested": ("(1 | g/h)", (Term(("1",), "g:h"), Term(("1",), "g"))),
    "nested_slope": ("(z | g) + (1 | g:h)", (Term(("1", "z"), "g"), Term(("1",), "g:h"))),
}
FIXED = {"1": ("1",), "x": ("1", "x"), "x + w": ("1", "x", "w")}


def _codes(rng, levels: int, n: int) -> np.ndarray:
    """Every level at least once, the rest at random, shuffled."""
    codes = np.concatenate([np.arange(levels), rng.integers(0, levels, n - levels)])
    return rng.permutation(codes)


@st.composite
def cases(draw, parts=tuple(RANDOM_PARTS)):
    n = draw(st.integers(20, 60))
    part = draw(st.sampled_from(parts))
    fixed = draw(st.sampled_from(sorted(FIXED)))
    g_levels = draw(st.integers(2, 8))
    h_levels = draw(st.integers(2, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    text, terms = RANDOM_PARTS[part]
    g = _codes(rng, g_levels, n)
    if part.startswith("nested"):
        # h within g ("g:h" is the nested factor), with about 4 observations per g:h cell:
        # with fewer, g:h and (z | g) can absorb nearly all the variation, the residual sd goes
        # to 0 and theta to infinity, where the objective has no minimum to compare
        g_levels = min(g_levels, max(2, n // 8))
        g = _codes(rng, g_levels, n)
        h_levels = min(h_levels, 3, max(2, n // (4 * g_levels)))
        h = rng.integers(0, h_levels, n)
    else:
        h = _codes(rng, h_levels, n)
    data = pd.DataFrame({
        "x": rng.normal(size=n),
        "w": rng.uniform(0, 5, size=n),
        "z": rng.normal(1.0, 1.0, size=n),
        "g": [f"g{k}" for k in g],
        "h": [f"h{k}" for k in h],
    })
    effects = rng.normal(0, 2, size=g_levels)[g] + rng.normal(0, 1, size=8)[h]
    slopes = rng.normal(0, 1, size=g_levels)[g] * data["z"].to_numpy()
    data["y"] = 10 + 2 * data["x"] + effects + slopes + rng.normal(0, 1.5, size=n)
    return Case(data, f"y ~ {fixed} + {text}", FIXED[fixed], terms)


def _theta_strategy(case: Case):
    sizes = [len(t.columns) for t in case.terms]

    def entries(p):
        diagonal = st.one_of(st.just(0.0), st.floats(0.05, 3.0))
        off = st.floats(-2.0, 2.0)
        return st.tuples(*[diagonal if c == r else off
                           for c in range(p) for r in range(c, p)])

    return st.tuples(*[entries(p) for p in sizes]).map(
        lambda parts: np.array([v for part in parts for v in part], dtype=float))


# --- brute force -------------------------------------------------------------------------------

def _factor_labels(data: pd.DataFrame, factor: str) -> np.ndarray:
    return data[factor.split(":")].astype(str).agg(":".join, axis=1).to_numpy()


def dense_z_lambda(case: Case, theta: np.ndarray):
    """Z (level-major per term) and Lambda, with terms in lme4's order (decreasing number of
    levels, ties in formula order) and theta the column-major lower triangles term by term."""
    data = case.data
    labelled = [(t, _factor_labels(data, t.factor)) for t in case.terms]
    order = sorted(range(len(labelled)), key=lambda i: -len(np.unique(labelled[i][1])))
    z_parts, lambda_parts, start = [], [], 0
    for i in order:
        term, labels = labelled[i]
        levels, codes = np.unique(labels, return_inverse=True)
        p = len(term.columns)
        values = np.column_stack([np.ones(len(data)) if c == "1" else data[c].to_numpy()
                                  for c in term.columns])
        z = np.zeros((len(data), len(levels) * p))
        for j in range(p):
            z[np.arange(len(data)), codes * p + j] = values[:, j]
        lower = np.zeros((p, p))
        for c in range(p):  # column-major lower triangle
            for r in range(c, p):
                lower[r, c] = theta[start]
                start += 1
        z_parts.append(z)
        lambda_parts.append(np.kron(np.eye(len(levels)), lower))
    assert start == len(theta)
    return np.hstack(z_parts), _block_diag(lambda_parts)


def _block_diag(parts):
    size = sum(p.shape[0] for p in parts)
    out = np.zeros((size, size))
    at = 0
    for p in parts:
        out[at:at + p.shape[0], at:at + p.shape[0]] = p
        at += p.shape[0]
    return out


def dense_objective(case: Case, theta: np.ndarray, reml: bool) -> float:
    data = case.data
    n = len(data)
    y = data["y"].to_numpy()
    X = np.column_stack([np.ones(n) if c == "1" else data[c].to_numpy() for c in case.fixed])
    p = X.shape[1]
    Z, lam = dense_z_lambda(case, theta)
    ZL = Z @ lam
    V = ZL @ ZL.T + np.eye(n)
    _, logdet_v = np.linalg.slogdet(V)
    Vinv_X = np.linalg.solve(V, X)
    XtVX = X.T @ Vinv_X
    beta = np.linalg.solve(XtVX, Vinv_X.T @ y)
    r = y - X @ beta
    quad = r @ np.linalg.solve(V, r)
    if reml:
        _, logdet_x = np.linalg.slogdet(XtVX)
        dof = n - p
        return logdet_v + logdet_x + dof * (1 + np.log(2 * np.pi * quad / dof))
    return logdet_v + n * (1 + np.log(2 * np.pi * quad / n))


def quiet_model(case: Case, reml: bool) -> mm.LinearMixedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.LinearMixedModel(case.formula, case.data, reml=reml)


def quiet_fit(formula: str, data: pd.DataFrame, reml: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, data, reml=reml)


# --- (a) objective = brute force -----------------------------------------------------------------

@settings(max_examples=60 * SCALE, **SETTINGS)
@given(st.data())
def test_objective_equals_dense_brute_force(data):
    case = data.draw(cases())
    theta = data.draw(_theta_strategy(case))
    reml = data.draw(st.booleans())
    model = quiet_model(case, reml)
    ours = model.objective(theta)
    expected = dense_objective(case, theta, reml)
    assert np.isfinite(ours)
    assert ours == pytest.approx(expected, rel=1e-8, abs=1e-8 * len(case.data)), (
        case.formula, theta, reml)


def test_brute_force_matches_lme4_on_sleepstudy():
    """The brute force itself is right: lme4's REML criterion at lme4's theta."""
    from conftest import load_reference

    record = load_reference("sleepstudy_corr")
    data = mm.datasets.load("sleepstudy").rename(columns={"Reaction": "y", "Days": "x",
                                                          "Subject": "g"})
    data["z"] = data["x"]
    case = Case(data, "y ~ x + (z | g)", ("1", "x"), (Term(("1", "z"), "g"),))
    for method in ("REML", "ML"):
        ref = record[method]
        value = dense_objective(case, np.array(ref["theta"]), method == "REML")
        assert value == pytest.approx(ref["criterion"], rel=1e-9)


# --- (b) block kernels = dense algebra -----------------------------------------------------------

def dense(block) -> np.ndarray:
    return block if isinstance(block, np.ndarray) else block.toarray()


def _lower(rng, p: int) -> np.ndarray:
    """A well-conditioned lower-triangular p x p matrix."""
    lower = np.tril(rng.normal(size=(p, p)), -1) * 0.5
    lower[np.diag_indices(p)] = rng.uniform(0.5, 2.0, size=p)
    return lower


def _block_sparse(rng, block_rows: int, block_cols: int, pr: int, pc: int) -> BlockSparse:
    pattern = rng.random((block_rows, block_cols)) < 0.4
    pattern[rng.integers(0, block_rows), rng.integers(0, block_cols)] = True
    dense_values = np.kron(pattern, np.ones((pr, pc))) * rng.normal(size=(block_rows * pr,
                                                                          block_cols * pc))
    return BlockSparse.from_scipy(sp.csr_array(dense_values), (pr, pc))


@st.composite
def operands(draw):
    """Blocks of each type with compatible shapes: L levels of p columns."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    levels, p = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    rows_levels, pr = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    q = levels * p
    return dict(
        rng=rng, levels=levels, p=p, q=q,
        blockdiag_lower=BlockDiagonal(np.stack([_lower(rng, p) for _ in range(levels)])),
        dense_lower=_lower(rng, q),
        sparse=_block_sparse(rng, rows_levels, levels, pr, p),
        dense=rng.normal(size=(draw(st.integers(1, 7)), q)),
    )


def test_toarray_block_diagonal_and_sparse():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(4, 3, 3))
    expected = np.zeros((12, 12))
    for k in range(4):
        expected[3 * k:3 * k + 3, 3 * k:3 * k + 3] = data[k]
    np.testing.assert_array_equal(BlockDiagonal(data).toarray(), expected)
    for pr, pc in [(1, 1), (2, 3), (3, 1)]:
        block_data = rng.normal(size=(3, pr, pc))
        indices, indptr = np.array([0, 2, 1]), np.array([0, 2, 2, 3])
        matrix = BlockSparse(block_data, indices, indptr, (3 * pr, 3 * pc))
        expected = np.zeros((3 * pr, 3 * pc))
        for row in range(3):
            for k in range(indptr[row], indptr[row + 1]):
                col = indices[k]
                expected[row * pr:(row + 1) * pr, col * pc:(col + 1) * pc] = block_data[k]
        np.testing.assert_array_equal(matrix.toarray(), expected)
        roundtrip = BlockSparse.from_scipy(sp.csr_array(expected), (pr, pc))
        np.testing.assert_array_equal(roundtrip.toarray(), expected)


@settings(max_examples=40 * SCALE, **SETTINGS)
@given(operands())
def test_cholesky_kernels(ops):
    rng, levels, p = ops["rng"], ops["levels"], ops["p"]
    lowers = np.stack([_lower(rng, p) for _ in range(levels)])
    spd = BlockDiagonal(lowers @ np.swapaxes(lowers, 1, 2))
    factor = blocks.cholesky(spd)
    assert isinstance(factor, BlockDiagonal)
    np.testing.assert_allclose(factor.toarray(), np.linalg.cholesky(spd.toarray()),
                               rtol=1e-10, atol=1e-12)
    lower = ops["dense_lower"]
    matrix = lower @ lower.T
    factor = blocks.cholesky(matrix)
    assert isinstance(factor, np.ndarray)
    np.testing.assert_allclose(factor, np.linalg.cholesky(matrix), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(2 * blocks.log_diagonal_sum(factor),
                               np.linalg.slogdet(matrix)[1], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(2 * blocks.log_diagonal_sum(blocks.cholesky(spd)),
                               np.linalg.slogdet(spd.toarray())[1], rtol=1e-10, atol=1e-10)
    with pytest.raises(TypeError, match="BlockSparse"):
        blocks.cholesky(ops["sparse"])
    with pytest.raises(np.linalg.LinAlgError):
        blocks.cholesky(-np.eye(3))


RDIV_SUPPORTED = {("BlockSparse", "BlockDiagonal"), ("ndarray", "BlockDiagonal"),
                  ("ndarray", "ndarray")}


@settings(max_examples=40 * SCALE, **SETTINGS)
@given(operands())
def test_rdiv_kernels(ops):
    """rdiv(T, L) = T L^{-T} for every supported pair, the target's type kept; other pairs
    are a TypeError naming both types."""
    targets = {"BlockSparse": ops["sparse"], "ndarray": ops["dense"],
               "BlockDiagonal": ops["blockdiag_lower"]}
    factors = {"BlockDiagonal": ops["blockdiag_lower"], "ndarray": ops["dense_lower"],
               "BlockSparse": ops["sparse"]}
    for (tname, target), (fname, factor) in itertools.product(targets.items(), factors.items()):
        if (tname, fname) not in RDIV_SUPPORTED:
            with pytest.raises(TypeError) as info:
                blocks.rdiv(target, factor)
            assert tname in str(info.value) and fname in str(info.value)
            continue
        result = blocks.rdiv(target, factor)
        assert type(result).__name__ == tname, (tname, fname)
        expected = np.linalg.solve(dense(factor), dense(target).T).T
        np.testing.assert_allclose(dense(result), expected, rtol=1e-10, atol=1e-10)
        if isinstance(result, BlockSparse):  # the pattern is kept: nothing made dense
            np.testing.assert_array_equal(result.indices, target.indices)


RANK_UPDATE_SUPPORTED = {("BlockSparse", "BlockSparse"), ("ndarray", "BlockSparse"),
                         ("ndarray", "ndarray")}


@settings(max_examples=40 * SCALE, **SETTINGS)
@given(operands())
def test_rank_update_kernels(ops):
    """rank_update(C, A, B) = C - A B' for every supported pair (including the symmetric
    A = B); other pairs, or a non-dense target, are a TypeError naming the types."""
    rng = ops["rng"]
    sparse = ops["sparse"]
    other_sparse = _block_sparse(rng, 3, ops["levels"], 2, ops["p"])
    kinds = {"BlockSparse": [sparse, other_sparse], "ndarray": [ops["dense"]],
             "BlockDiagonal": [ops["blockdiag_lower"]]}
    for aname, bname in itertools.product(kinds, kinds):
        for a, b in itertools.product(kinds[aname], kinds[bname]):
            target = rng.normal(size=(dense(a).shape[0], dense(b).shape[0]))
            if (aname, bname) not in RANK_UPDATE_SUPPORTED:
                with pytest.raises(TypeError) as info:
                    blocks.rank_update(target, a, b)
                assert aname in str(info.value) and bname in str(info.value)
                continue
            result = blocks.rank_update(target, a, b)
            assert isinstance(result, np.ndarray)
            np.testing.assert_allclose(result, target - dense(a) @ dense(b).T,
                                       rtol=1e-10, atol=1e-10)
    square = rng.normal(size=(sparse.shape[0], sparse.shape[0]))
    np.testing.assert_allclose(blocks.rank_update(square, sparse, sparse),
                               square - sparse.toarray() @ sparse.toarray().T,
                               rtol=1e-10, atol=1e-10)
    with pytest.raises(TypeError, match="BlockDiagonal"):
        blocks.rank_update(ops["blockdiag_lower"], ops["dense"], ops["dense"])


@settings(max_examples=25 * SCALE, **SETTINGS)
@given(operands())
def test_rank_update_same_pattern_different_values(ops):
    """Two blocks with one sparsity pattern (``with_data``) but different values: A B' is
    not symmetric and must not be computed as if it were."""
    sparse = ops["sparse"]
    other = sparse.with_data(ops["rng"].normal(size=sparse.data.shape))
    target = np.zeros((sparse.shape[0], sparse.shape[0]))
    np.testing.assert_allclose(blocks.rank_update(target, sparse, other),
                               -sparse.toarray() @ other.toarray().T, rtol=1e-10, atol=1e-10)


@settings(max_examples=25 * SCALE, **SETTINGS)
@given(operands())
def test_rank_update_by_columns_is_the_pair_plans(ops):
    """The compiled rank update of two block-sparse blocks (column by column, some rows of
    the product at a time) adds the same products in the same order as the pair plan: the
    same result to the last bit, whether the rows are taken one or all at a time."""
    rng, sparse = ops["rng"], ops["sparse"]
    other = _block_sparse(rng, 4, ops["levels"], 2, ops["p"])
    same_pattern = sparse.with_data(rng.normal(size=sparse.data.shape))
    for a, b in [(sparse, sparse), (sparse, other), (other, sparse), (sparse, same_pattern)]:
        target = rng.normal(size=(a.shape[0], b.shape[0]))
        plan = a.product_plan(b, symmetric=a is b)
        expected = target - plan.product(a.data.reshape(-1), b.data.reshape(-1))
        for tile_bytes in (8 * b.shape[0], blocks.TILE_BYTES):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(blocks, "TILE_BYTES", tile_bytes)
                np.testing.assert_array_equal(blocks.rank_update(target, a, b), expected)


# --- (c) invariance under row order and level labels ---------------------------------------------

def _same_fit(a, b, rel=1e-6):
    """The same optimum: the objective to 1e-6 relative. The parameters agree as closely as
    BOBYQA pins them down, which, on these small data sets with flat or boundary optima
    (2 levels, a variance near 0), is only to about 1e-5 in sigma, 1e-4 standard errors in
    beta and 1e-3 in a small theta (the objective differs by 1e-9 there)."""
    scale = max(1.0, abs(a.objective))
    assert abs(a.objective - b.objective) <= rel * scale, (a.objective, b.objective)
    assert list(a.fixef.index) == list(b.fixef.index)
    tol = 1e-6 * np.abs(a.fixef.to_numpy()) + 1e-3 * a.stderr.to_numpy()
    assert np.all(np.abs(a.fixef.to_numpy() - b.fixef.to_numpy()) <= tol)
    assert b.sigma == pytest.approx(a.sigma, rel=5e-5)
    va, vb = a.varcorr, b.varcorr
    assert list(va.group) == list(vb.group)
    assert [str(v) for v in va.var1] == [str(v) for v in vb.var1]
    assert [str(v) for v in va.var2] == [str(v) for v in vb.var2]
    sds = va.var2.isna().to_numpy()
    np.testing.assert_allclose(vb.sdcor[sds].to_numpy(), va.sdcor[sds].to_numpy(),
                               rtol=1e-4, atol=3e-3 * a.sigma)
    # a correlation is only defined (and only determined) when both its sds are clearly
    # positive; at a boundary it may come out as NaN (sd exactly 0) or +/-1 (sd tiny)
    sd_of = {(g, v): sd for g, v, w, sd in zip(va.group, va.var1, va.var2, va.sdcor)
             if not isinstance(w, str)}
    for row_a, row_b in zip(va[~sds].itertuples(), vb[~sds].itertuples()):
        if min(sd_of[row_a.group, row_a.var1], sd_of[row_a.group, row_a.var2]) > 0.05 * a.sigma:
            assert abs(row_a.sdcor - row_b.sdcor) <= 2e-3, (row_a, row_b)


@settings(max_examples=15 * SCALE, **SETTINGS)
@given(cases(), st.integers(0, 2**32 - 1), st.booleans())
def test_row_order_and_labels_do_not_matter(case, seed, reml):
    rng = np.random.default_rng(seed)
    base = quiet_fit(case.formula, case.data, reml)
    # A residual sd below a thousandth of the random effects' (|theta| > 1e3) is a likelihood
    # nearly flat along a ridge towards sigma = 0: every optimizer (lme4's too, with warnings)
    # stops somewhere along it, and where depends on the rounding of the arithmetic. In one
    # such 20-row case, 8 row orders stopped within 1.2e-5 of each other, all 2e-4 above a
    # point further along the ridge, where lme4's bobyqa and Nelder-Mead stopped 8e-3 and 6.0
    # above ours.
    assume(np.abs(base.theta).max() < 1e3)

    permuted = case.data.iloc[rng.permutation(len(case.data))]
    _same_fit(base, quiet_fit(case.formula, permuted, reml))

    relabelled = case.data.copy()
    mapping = {}
    for column in ("g", "h"):
        old = sorted(relabelled[column].unique())
        new = [f"{column}_{k:02d}" for k in rng.permutation(len(old))]  # another order
        mapping[column] = dict(zip(old, new))
        relabelled[column] = relabelled[column].map(mapping[column])
    other = quiet_fit(case.formula, relabelled, reml)
    _same_fit(base, other)
    for group, frame in base.ranef.items():
        if ":" in group:
            continue
        renamed = frame.rename(index=mapping[group])
        theirs = other.ranef[group].loc[renamed.index]
        scale = base.sigma * 1e-3 + 1e-3 * np.abs(frame.to_numpy())
        assert np.all(np.abs(theirs.to_numpy() - renamed.to_numpy()) <= scale)


# --- (d) fitted values and the mixed-model equations ---------------------------------------------

@settings(max_examples=25 * SCALE, **SETTINGS)
@given(cases(), st.booleans())
def test_fit_solves_the_mixed_model_equations(case, reml):
    fit = quiet_fit(case.formula, case.data, reml)
    X, Z, y = fit.X, fit.Z.toarray(), fit.y
    G, R, V = fit.G.toarray(), fit.R.toarray(), fit.V.toarray()
    n, p = X.shape
    np.testing.assert_allclose(R, fit.sigma ** 2 * np.eye(n), rtol=1e-12)
    np.testing.assert_allclose(V, Z @ G @ Z.T + R, rtol=1e-10, atol=1e-10 * np.abs(V).max())
    np.testing.assert_allclose(fit.fitted, X @ fit.beta + Z @ fit.u, rtol=1e-10,
                               atol=1e-10 * np.abs(y).max())
    np.testing.assert_allclose(fit.residuals, y - fit.fitted, rtol=1e-12,
                               atol=1e-12 * np.abs(y).max())

    # the dense solves below lose cond(V) times the rounding: a fit whose sigma went to 0
    # (3e-4 against y's 10, theta 1e4, cond(V) 4e8) is no check of the fit's own numbers
    assume(np.linalg.cond(V) < 1e7)
    Vinv_X = np.linalg.solve(V, X)
    XtVX = X.T @ Vinv_X
    beta = np.linalg.solve(XtVX, Vinv_X.T @ y)
    scale = np.sqrt(np.diag(np.linalg.inv(XtVX)))
    assert np.all(np.abs(fit.beta - beta) <= 1e-8 * (np.abs(beta) + scale))
    np.testing.assert_allclose(fit.vcov.to_numpy(), np.linalg.inv(XtVX), rtol=1e-7,
                               atol=1e-9 * scale.max() ** 2)

    r = y - X @ beta
    u = G @ Z.T @ np.linalg.solve(V, r)
    assert np.all(np.abs(fit.u - u) <= 1e-8 * (np.abs(u).max() + fit.sigma))
    # sigma is the profiled estimate: r' V^-1 r = n - p (REML) or n (ML)
    assert r @ np.linalg.solve(V, r) == pytest.approx(n - p if reml else n, rel=1e-8)

    # varcorr is what G holds: the first level's block of the first grouping factor
    structure = fit.model.structure
    first = structure.blocks[0]
    block = G[:first.p, :first.p]
    for t, term in enumerate(structure.terms):
        if term.block != 0:
            continue
        cols = slice(term.offset, term.offset + term.p)
        np.testing.assert_allclose(fit.term_covariance(t), block[cols, cols], rtol=1e-10,
                                   atol=1e-12 * fit.sigma ** 2)
        rows = fit.varcorr[fit.varcorr.group == term.label]
        sds = rows[rows.var2.isna()].sdcor.to_numpy()
        np.testing.assert_allclose(sds ** 2, np.diag(block[cols, cols]), rtol=1e-10,
                                   atol=1e-12 * fit.sigma ** 2)
    lower = structure.parameters.lower()
    assert fit.is_singular == bool(np.any((lower == 0) & (fit.theta < 1e-4)))


def _two_level_data(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n, levels = 20, 2
    g = rng.permutation(np.concatenate([np.arange(levels), rng.integers(0, levels, n - levels)]))
    data = pd.DataFrame({"z": rng.normal(1, 1, n), "g": [f"g{k}" for k in g]})
    data["y"] = (10 + rng.normal(0, 2, levels)[g] + rng.normal(0, 1, levels)[g] * data.z
                 + rng.normal(0, 1.5, n))
    return data


@pytest.mark.parametrize("seed, formula", [(469, "y ~ 1 + (1 | g)"),
                                           (168, "y ~ 1 + (0 + z | g)")])
def test_boundary_fit_on_two_levels_does_not_raise(seed, formula):
    """A REML fit whose optimum is on the boundary (sd 0): BOBYQA stops 'roundoff-limited'
    at the optimum; that is a result (singular), not an error to pass to the user."""
    data = _two_level_data(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer(formula, data, reml=True)
    assert fit.is_singular
    model = mm.LinearMixedModel(formula, data, reml=True)
    assert fit.objective <= model.objective(np.zeros(1)) + 1e-8


def _crossed_slopes_data(seed: int, n: int = 40, g_levels: int = 5, h_levels: int = 5):
    rng = np.random.default_rng(seed)
    g = _codes(rng, g_levels, n)
    h = _codes(rng, h_levels, n)
    data = pd.DataFrame({"z": rng.normal(1, 1, n), "g": [f"g{k}" for k in g],
                         "h": [f"h{k}" for k in h]})
    data["y"] = (10 + rng.normal(0, 2, g_levels)[g] + rng.normal(0, 1, h_levels)[h]
                 + rng.normal(0, 1, g_levels)[g] * data.z + rng.normal(0, 1.5, n))
    return data


def test_row_order_does_not_change_a_boundary_optimum():
    formula = "y ~ 1 + (1 | h) + (z | g) + (0 + z | h)"
    data = _crossed_slopes_data(6)
    forward = quiet_fit(formula, data, reml=False)
    backward = quiet_fit(formula, data.iloc[::-1], reml=False)
    best = min(forward.objective, backward.objective)
    assert forward.objective <= best + 1e-6 * best
    assert backward.objective <= best + 1e-6 * best
