"""Type III contrasts against lmerTest's get_contrasts_type3 and anova(type = 3).

The reference (tests/reference/type3_contrasts.json) is written by type3_contrasts.R. R names
interaction columns and terms in the order the variables first appear in the formula
(``Aa2:x``), formulaic in the order of the term (``x:Aa2``): names are matched as sets of
``:``-separated parts.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.inference.contrasts import _zapsmall, type3_contrasts

REFERENCE = json.loads((Path(__file__).parent / "reference" / "type3_contrasts.json").read_text())
MODELS = sorted(REFERENCE["models"])


def _key(name: str) -> frozenset:
    return frozenset(name.split(":"))


def _data(name: str) -> pd.DataFrame:
    if name == "orthodont":
        return mm.datasets.load("orthodont")
    return pd.DataFrame(REFERENCE["data"][name])


_FITS = {}


def _fit(model_id):
    if model_id not in _FITS:
        ref = REFERENCE["models"][model_id]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[model_id] = mm.lmer(ref["formula"], _data(ref["data"]))
    return _FITS[model_id]


def _ours(model_id):
    design = _fit(model_id).model.design
    return type3_contrasts(design.formula.fixed, design.frame, design.x_names)


def _theirs(model_id, x_names):
    """lmerTest's contrasts with columns in our X's order, keyed by the term's variable set."""
    ref = REFERENCE["models"][model_id]
    order = {_key(name): j for j, name in enumerate(x_names)}
    out = {}
    for term, entry in ref["contrasts"].items():
        values = np.array(entry["values"], dtype=float).reshape(-1, len(entry["columns"]))
        L = np.zeros((values.shape[0], len(x_names)))
        L[:, [order[_key(c)] for c in entry["columns"]]] = values
        out[_key(term)] = L
    return out


def _projection(L):
    return L.T @ np.linalg.pinv(L @ L.T) @ L if L.size else np.zeros((L.shape[1],) * 2)


@pytest.mark.parametrize("model_id", MODELS)
def test_x_columns_match_r(model_id):
    ours = _fit(model_id).model.design.x_names
    assert sorted(map(_key, ours), key=sorted) == sorted(
        map(_key, REFERENCE["models"][model_id]["x_names"]), key=sorted)


@pytest.mark.parametrize("model_id", MODELS)
def test_contrasts_match_lmertest(model_id):
    x_names = _fit(model_id).model.design.x_names
    ours = {_key(term): L for term, L in _ours(model_id).items()}
    theirs = _theirs(model_id, x_names)
    assert set(ours) == set(theirs)
    type1 = len(theirs) <= 1
    for term, L in theirs.items():
        assert ours[term].shape == L.shape, term
        np.testing.assert_allclose(_projection(ours[term]), _projection(L), atol=1e-8)
        if not type1:  # the same algorithm gives the same matrices, rounding included
            np.testing.assert_allclose(ours[term], L, atol=1e-8)


def _wald_f(L, b, V):
    Lb = L @ b
    return Lb @ np.linalg.solve(L @ V @ L.T, Lb) / np.linalg.matrix_rank(L)


@pytest.mark.parametrize("model_id", MODELS)
@pytest.mark.parametrize("estimates", ["lme4", "ours"])
def test_wald_f_matches_lmertest(model_id, estimates):
    """F = (Lb)'(L V L')^{-1}(Lb) / rank(L) is lmerTest's F whatever the ddf method. With
    lme4's b and V it checks the contrasts alone; with our fit's, the fit as well (orthodont's
    REML optimum is flat: V agrees with lme4's to 4e-6 only)."""
    ref = REFERENCE["models"][model_id]
    expected = dict(zip(map(_key, np.atleast_1d(ref["anova"]["term"])),
                        np.atleast_1d(ref["anova"]["F"])))
    fit = _fit(model_id)
    if estimates == "lme4":  # in R's column order
        order = [[_key(c) for c in ref["x_names"]].index(_key(c)) for c in fit.model.design.x_names]
        b, V = np.array(ref["fixef"])[order], np.array(ref["vcov"])[np.ix_(order, order)]
        rtol = 1e-9
    else:
        b, V, rtol = fit.fixef.to_numpy(), np.asarray(fit.vcov, dtype=float), 1e-5
    for term, L in _ours(model_id).items():
        np.testing.assert_allclose(_wald_f(L, b, V), expected[_key(term)], rtol=rtol,
                                   atol=1e-8, err_msg=term)


def test_orthodont_contrasts():
    C = _ours("orthodont")
    np.testing.assert_array_equal(C["age"], [[0, 1, 0, 0.5]])
    np.testing.assert_array_equal(C["Sex"], [[0, 0, 1, 0]])
    np.testing.assert_array_equal(C["age:Sex"], [[0, 0, 0, 1]])


def test_single_term_and_intercept_only():
    frame = pd.DataFrame({"A": list("abcabc"), "x": np.arange(6.0)})
    C = type3_contrasts("A", frame, ("(Intercept)", "Ab", "Ac"))
    # lmerTest's type I rows (its Doolittle factor of X'X), not only their span: the
    # Satterthwaite df of a multi-df test depends on the rows
    np.testing.assert_allclose(C["A"], [[0, 1, -0.5], [0, 0, 1]], rtol=0, atol=1e-15)
    assert type3_contrasts("1", frame, ("(Intercept)",)) == {}
    np.testing.assert_array_equal(type3_contrasts("0 + x", frame, ("x",))["x"], [[1.0]])


def test_dropped_term_has_no_rows():
    frame = pd.DataFrame({"x": np.arange(6.0), "A": list("abcabc")})
    frame["w"] = 2 * frame["x"]
    C = type3_contrasts("x + w + A", frame, ("(Intercept)", "x", "Ab", "Ac"))
    assert C["w"].shape == (0, 4)
    np.testing.assert_array_equal(C["x"], [[0, 1, 0, 0]])


def test_unknown_column_is_an_error():
    frame = pd.DataFrame({"x": np.arange(6.0), "A": list("abcabc")})
    with pytest.raises(ValueError, match="xx"):
        type3_contrasts("x + A", frame, ("(Intercept)", "xx", "Ab", "Ac"))


def test_zapsmall_as_r():
    # R 4.2: round(x, 7 - log10(max|x|)), the digits rounded to an integer
    np.testing.assert_array_equal(_zapsmall(np.array([1 / 3, 1e-17])), [0.3333333, 0])
    np.testing.assert_array_equal(_zapsmall(np.array([2.0, 1 / 3])), [2.0, 0.3333333])
    np.testing.assert_array_equal(_zapsmall(np.array([4.0, 1 / 3])), [4.0, 0.333333])
    np.testing.assert_array_equal(_zapsmall(np.zeros(2)), [0, 0])
