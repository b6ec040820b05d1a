"""Hypothesis contrasts for the fixed-effects terms, as lmerTest computes them: type I and II
(``type1_contrasts``, ``type2_contrasts``, see their docstrings) and type III, below.

The contrasts are those of lmerTest's ``anova(model, type = 3)`` (``get_contrasts_type3``
and ``extract_contrasts_type3``), for treatment-coded designs:

1. X: the full-rank, treatment-coded model matrix (p columns, aliased columns dropped).
2. rdX: the "complete", rank-deficient design: an intercept column (when the model has one),
   then for each term the columns of ``~ 0 + term``, where every categorical factor has one
   indicator per level and numeric variables enter as they are.
3. L = zapsmall(t(ginv(X) rdX)): one row per rdX column, one column per X column.
4. Each term owns its X columns. Term a is *contained* in term b when a's variables are a
   proper subset of b's and both have the same numeric variables. As in lmerTest, a term's
   variables are those R's ``terms()`` codes 1 in its "factors" table: a variable of an
   interaction counts only when the term without it is in the model (``A`` is therefore not
   contained in ``A:B`` of ``A + A:B``).
5. For the terms in decreasing order of degree (stable), when a term is contained in others,
   its columns of L are replaced by the residuals of their least-squares regression (no
   intercept, R's ``lm.fit`` with its rank tolerance 1e-7) on the columns of all terms that
   contain it, then zapsmall'ed.
6. Only the rows of L named as a column of X are kept, in X's order: a p x p matrix.
7. A term's contrast matrix is the transpose of its columns, without rows whose absolute
   values sum to at most 1e-8.

With at most one term, or at most one column in X, lmerTest uses type I contrasts; for those
designs each term's contrast is the rows of the identity at its columns, which span the same
space as lmerTest's (Doolittle) rows and give the same F test.

``zapsmall`` is R 4.2's: round to ``7 - log10(max |x|)`` digits (rounded to an integer).
X and rdX are built with formulaic (treatment coding, then one indicator per level), named as
R names them, and X is reduced to the columns ``x_names`` the fit kept. The cost is that of a
QR decomposition of X and of Q' rdX: O(n p q) for q complete columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from formulaic import model_matrix
from formulaic.parser.types import Factor

from ..design.build import _independent_columns, r_column_names
from ..formula.rfunctions import FORMULA_CONTEXT

__all__ = ["type1_contrasts", "type2_contrasts", "type3_contrasts"]

ZERO_ROW = 1e-8


@dataclass(frozen=True)
class _Layout:
    """The fixed-effects terms of a fitted model and the columns of X each one owns."""

    terms: list  # formulaic's terms, the intercept left out
    labels: list[str]
    X: np.ndarray  # the model matrix, reduced to x_names
    columns: list[np.ndarray]  # per term, its column indices in X
    contains: object  # contains(a, b): term a is contained in term b (lmerTest's containment)


def _layout(fixed_formula: str, frame: pd.DataFrame, x_names: tuple[str, ...]) -> _Layout:
    full = model_matrix(fixed_formula, frame, na_action="ignore", context=FORMULA_CONTEXT)
    spec = full.model_spec
    terms = [t for t in spec.term_slices if _variables(t)]  # the intercept is no term
    labels = [str(t).replace(" ** ", "^") for t in terms]
    names = r_column_names(full.columns)
    position = {name: j for j, name in reversed(list(enumerate(names)))}
    missing = [name for name in x_names if name not in position]
    if missing:
        raise ValueError(f"columns {missing} of X are not columns of the model matrix of "
                         f"{fixed_formula!r}")
    index = [position[name] for name in x_names]
    owner = np.full(len(names), -1)
    for k, term in enumerate(terms):
        owner[spec.term_slices[term]] = k
    columns = [np.flatnonzero(owner[index] == k) for k in range(len(terms))]
    variables = _coded_variables(terms)
    numeric = [{v for v in vs if _is_numeric(spec, v)} for vs in variables]

    def contains(a: int, b: int) -> bool:
        return variables[a] < variables[b] and numeric[a] == numeric[b]

    return _Layout(terms, labels, np.asarray(full, dtype=float)[:, index], columns,
                   contains)


def type1_contrasts(fixed_formula: str, frame: pd.DataFrame,
                    x_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """lmerTest's type I (sequential) contrasts: each term's rows of the upper Cholesky factor
    of X'X (lmerTest takes those of its unit-triangular Doolittle factor; the rows differ by
    positive factors only, and the F tests are the same)."""
    layout = _layout(fixed_formula, frame, x_names)
    p = len(x_names)
    upper = np.linalg.cholesky(layout.X.T @ layout.X).T if p else np.zeros((0, 0))
    return {label: upper[cols] for label, cols in zip(layout.labels, layout.columns)}


def type2_contrasts(fixed_formula: str, frame: pd.DataFrame,
                    x_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """lmerTest's type II contrasts: a term contained in no other is tested by its own
    coefficients; any other term by its rows of the upper Cholesky factor of X'X with the
    columns reordered so that the term and the terms containing it come last (in their
    order): its effect adjusted for every term that does not contain it."""
    layout = _layout(fixed_formula, frame, x_names)
    p = len(x_names)
    if p <= 1 or len(layout.labels) <= 1:
        return type1_contrasts(fixed_formula, frame, x_names)
    out = {}
    for k, (label, cols) in enumerate(zip(layout.labels, layout.columns)):
        outer = [j for j in range(len(layout.labels)) if layout.contains(k, j)]
        if not outer:
            out[label] = np.eye(p)[cols]
            continue
        last = np.sort(np.concatenate([cols] + [layout.columns[j] for j in outer]))
        order = np.concatenate([np.setdiff1d(np.arange(p), last), last])
        Xo = layout.X[:, order]
        upper = np.linalg.cholesky(Xo.T @ Xo).T
        rows = upper[np.isin(order, cols)]
        L = np.zeros((len(cols), p))
        L[:, order] = rows
        out[label] = L
    return out


def type3_contrasts(fixed_formula: str, frame: pd.DataFrame,
                    x_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """lmerTest's type III contrasts, one (rows, p) matrix per term of ``fixed_formula``.

    Args:
        fixed_formula: the fixed part in formulaic syntax (``design.formula.fixed``).
        frame: the data rows the model was fitted on (``design.frame``).
        x_names: the names of the columns of X, after aliased columns were dropped.

    Returns:
        term label (``"age:Sex"``, ``"I(x^2)"``) -> contrast matrix whose columns follow
        ``x_names``; a term whose columns were all dropped has a (0, p) matrix.
    """
    layout = _layout(fixed_formula, frame, x_names)
    terms, labels, X, columns = layout.terms, layout.labels, layout.X, layout.columns
    contains = layout.contains

    p = len(x_names)
    if p <= 1 or len(terms) <= 1:  # lmerTest's type I contrasts
        return {label: np.eye(p)[cols] for label, cols in zip(labels, columns)}

    complete = model_matrix(fixed_formula, frame, na_action="ignore", ensure_full_rank=False,
                            context=FORMULA_CONTEXT)
    rd_names = r_column_names(complete.columns)
    Q, R = np.linalg.qr(X)  # X has full column rank: ginv(X) = R^{-1} Q'
    L = _zapsmall(np.linalg.solve(R, Q.T @ np.asarray(complete, dtype=float)).T)

    for k in sorted(range(len(terms)), key=lambda k: -len(_variables(terms[k]))):
        outer = [j for j in range(len(terms)) if contains(k, j)]
        if not outer or not len(columns[k]):
            continue
        B = L[:, np.concatenate([columns[j] for j in outer])]
        Q = np.linalg.qr(B[:, _independent_columns(B)])[0]
        Y = L[:, columns[k]]
        L[:, columns[k]] = _zapsmall(Y - Q @ (Q.T @ Y))

    rd_position = {name: i for i, name in reversed(list(enumerate(rd_names)))}
    missing = [name for name in x_names if name not in rd_position]
    if missing:
        raise ValueError(f"columns {missing} of X have no counterpart in the complete design")
    L = L[[rd_position[name] for name in x_names]]
    out = {}
    for label, cols in zip(labels, columns):
        C = L[:, cols].T
        out[label] = C[np.abs(C).sum(axis=1) > ZERO_ROW] + 0.0  # no -0.0
    return out


def _variables(term) -> frozenset[str]:
    """The term's variables (the intercept's literal 1 is none)."""
    return frozenset(str(f) for f in term.factors
                     if not (f.eval_method == Factor.EvalMethod.LITERAL and str(f) == "1"))


def _coded_variables(terms) -> list[frozenset[str]]:
    """Each term's variables that R's ``terms()`` codes 1 (lmerTest's ``term_contain``): all
    of a main effect's, and of an interaction those whose removal leaves a term listed before."""
    seen: list[frozenset[str]] = []
    out = []
    for term in terms:
        vs = _variables(term)
        out.append(vs if len(vs) == 1 else frozenset(v for v in vs if vs - {v} in seen))
        seen.append(vs)
    return out


def _is_numeric(spec, variable: str) -> bool:
    state = spec.encoder_state.get(variable)
    return state is not None and state[0].value == "numerical"


def _zapsmall(a: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest |value|."""
    mx = np.max(np.abs(a)) if a.size else 0.0
    if not mx > 0:
        return a
    return np.round(a, max(0, int(np.floor(digits - np.log10(mx) + 0.5))))
