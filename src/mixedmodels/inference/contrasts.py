"""Hypothesis contrasts for the fixed-effects terms, as lmerTest computes them: type I and II
(``type1_contrasts``, ``type2_contrasts``, see their docstrings) and type III, below.

The rows are lmerTest's, not only their span: an F statistic depends on the span alone, but
the Satterthwaite df of a multi-df test depends on the rows themselves.

The type III contrasts are those of lmerTest's ``anova(model, type = 3)``
(``get_contrasts_type3`` and ``extract_contrasts_type3``). They are computed for the
treatment-coded design, then mapped to the coding of the fit:

1. X: the full-rank, treatment-coded model matrix (p columns): the fit's X when every factor is
   treatment-coded, otherwise the formula's model matrix with every ``C(x, coding)`` coded by
   treatment contrasts, aliased columns dropped (lmerTest's ``ensure_full_rank``).
2. rdX: the "complete", rank-deficient design: an intercept column (when the model has one),
   then for each term the columns of ``~ 0 + term``, where every categorical factor has one
   indicator per level and numeric variables enter as they are.
3. L = zapsmall(t(ginv(X) rdX)): one row per rdX column, one column per X column.
4. Each term owns its X columns. Term a is *contained* in term b when a's variables are a
   proper subset of b's and both have the same numeric variables. As in lmerTest, a term's
   variables are those R's ``terms()`` codes 1 in its "factors" table: a variable of an
   interaction counts only when the term without it is contained in a term before it
   (``A`` is therefore not contained in ``A:B`` of ``A + A:B``, and of ``x:z + a:x``, ``x:z``,
   whose variables are none, is contained in ``x:a``, whose variable is a).
5. For the terms in decreasing order of degree (stable), when a term is contained in others,
   its columns of L are replaced by the residuals of their least-squares regression (no
   intercept, R's ``lm.fit`` with its rank tolerance 1e-7) on the columns of all terms that
   contain it, then zapsmall'ed.
6. Only the rows of L named as a column of X are kept, in X's order: a p x p matrix.
7. A term's contrast matrix is the transpose of its columns, without rows whose absolute
   values sum to at most 1e-8.
8. Mapped to the fit's coding: times zapsmall(ginv(X) X_fit), the identity when X is X_fit
   (sum, Helmert, polynomial, custom codings: X_fit = X ginv(X) X_fit, both spanning the
   same columns).

With at most one term, or at most one column in X, lmerTest uses the type I contrasts.

``zapsmall`` is R 4.2's: round to ``7 - log10(max |x|)`` digits (rounded to an integer).
X and rdX are built with formulaic (treatment coding, then one indicator per level), named as
R names them, with the fit's stateful transforms (``transforms``: the state learnt from all the
rows of the fit's data, so that ``poly(x, 2)`` has the fit's basis). The cost is that of a QR
decomposition of X and of Q' rdX: O(n p q) for q complete columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from formulaic.parser.types import Factor

from ..design.build import _independent_columns
from ..design.materialize import ModelData
from ..design.names import r_column_names, r_spelling
from ..design.term_codes import factor_table

__all__ = ["type1_contrasts", "type2_contrasts", "type3_contrasts"]

ZERO_ROW = 1e-8
DOOLITTLE_EPS = 1e-6


@dataclass(frozen=True)
class _Layout:
    """The fixed-effects terms of a fitted model and the columns of X each one owns."""

    terms: list  # formulaic's terms, the intercept left out
    labels: list[str]
    names: tuple[str, ...]  # the names of the columns of X
    X: np.ndarray  # the model matrix, reduced to those columns
    columns: list[np.ndarray]  # per term, its column indices in X
    contains: object  # contains(a, b): term a is contained in term b (lmerTest's containment)


def _layout(full, x_names: tuple[str, ...]) -> _Layout:
    """The terms of formulaic's model matrix ``full`` and their columns among ``x_names``."""
    spec = full.model_spec
    terms = [t for t in spec.term_slices if _variables(t)]  # the intercept is no term
    labels = [r_spelling(str(t)) for t in terms]
    names = r_column_names(full.columns)
    position = {name: j for j, name in reversed(list(enumerate(names)))}
    missing = [name for name in x_names if name not in position]
    if missing:
        raise ValueError(f"columns {missing} of X are not columns of the model matrix of "
                         f"{spec.formula!s}")
    index = [position[name] for name in x_names]
    owner = np.full(len(names), -1)
    for k, term in enumerate(terms):
        owner[spec.term_slices[term]] = k
    columns = [np.flatnonzero(owner[index] == k) for k in range(len(terms))]
    variables = _coded_variables(terms)
    numeric = [{v for v in vs if _is_numeric(spec, v)} for vs in variables]

    def contains(a: int, b: int) -> bool:
        return variables[a] < variables[b] and numeric[a] == numeric[b]

    return _Layout(terms, labels, tuple(x_names), np.asarray(full, dtype=float)[:, index],
                   columns, contains)


def _fit_layout(fixed_formula: str, rows: ModelData, x_names: tuple[str, ...]) -> _Layout:
    """The layout of the fit's X, in the fit's coding."""
    return _layout(rows.matrix(fixed_formula), x_names)


def _treatment_layout(fixed_formula: str, rows: ModelData,
                      x_names: tuple[str, ...]) -> _Layout:
    """The layout of the treatment-coded X: the fit's columns when they are all
    treatment-coded, otherwise the treatment-coded matrix without its aliased columns (as
    lmerTest's ``get_model_matrix(contrasts = "contr.treatment")`` and ``ensure_full_rank``)."""
    full = rows.matrix(fixed_formula, treatment=True)
    names = r_column_names(full.columns)
    if not set(x_names) <= set(names):
        keep = _independent_columns(np.asarray(full, dtype=float))
        x_names = tuple(name for name, k in zip(names, keep) if k)
    return _layout(full, x_names)


def type1_contrasts(fixed_formula: str, frame: pd.DataFrame, x_names: tuple[str, ...],
                    transforms: dict | None = None) -> dict[str, np.ndarray]:
    """lmerTest's type I (sequential) contrasts (``get_contrasts_type1``): each term's rows of
    the unit upper-triangular Doolittle factor of X'X (``_doolittle_rows``).

    Args:
        fixed_formula: the fixed part in formulaic syntax (``design.formula.fixed``).
        frame: the data rows the model was fitted on (``design.frame``).
        x_names: the names of the p columns of X, after aliased columns were dropped.
        transforms: the fit's stateful transforms (``design.transforms``); None learns them
            from ``frame``.

    Returns:
        term label -> (columns of the term in X, p) matrix, columns following ``x_names``.
    """
    return _type1(_fit_layout(fixed_formula, ModelData.of(frame, transforms), x_names))


def _type1(layout: _Layout) -> dict[str, np.ndarray]:
    rows = _doolittle_rows(layout.X.T @ layout.X)
    return {label: rows[cols] for label, cols in zip(layout.labels, layout.columns)}


def type2_contrasts(fixed_formula: str, frame: pd.DataFrame, x_names: tuple[str, ...],
                    transforms: dict | None = None) -> dict[str, np.ndarray]:
    """lmerTest's type II contrasts (``get_contrasts_type2_unfolded``): a term contained in no
    other is tested by its own coefficients (``get_contrasts_marginal``); any other term by
    its rows of the Doolittle factor of X'X with the columns reordered as [the other columns,
    the term's, those of the terms containing it] (``get_contrasts_type2``): its effect
    adjusted for every term that does not contain it. With at most one term or one column,
    the type I contrasts. Arguments and result as ``type1_contrasts``.
    """
    layout = _fit_layout(fixed_formula, ModelData.of(frame, transforms), x_names)
    if len(x_names) <= 1 or len(layout.labels) <= 1:
        return _type1(layout)
    return {label: _type2_rows(layout, k) for k, label in enumerate(layout.labels)}


def _type2_rows(layout: _Layout, k: int) -> np.ndarray:
    """Term k's type II contrast rows (as lmerTest's ``get_contrasts_type2``), (rows, p)."""
    p = layout.X.shape[1]
    cols = layout.columns[k]
    outer = [j for j in range(len(layout.labels)) if layout.contains(k, j)]
    if not outer:
        return np.eye(p)[cols]
    last = np.concatenate([cols] + [layout.columns[j] for j in outer])
    order = np.concatenate([np.setdiff1d(np.arange(p), last), last])
    Xo = layout.X[:, order]
    rows = np.zeros((len(cols), p))
    rows[:, order] = _doolittle_rows(Xo.T @ Xo)[len(order) - len(last):][:len(cols)]
    return rows


def type3_contrasts(fixed_formula: str, frame: pd.DataFrame, x_names: tuple[str, ...],
                    transforms: dict | None = None) -> dict[str, np.ndarray]:
    """lmerTest's type III contrasts (``get_contrasts_type3``), for any coding of the factors
    (see the module's docstring). Arguments as ``type1_contrasts``.

    Returns:
        term label (``"age:Sex"``, ``"I(x^2)"``) -> contrast matrix whose columns follow
        ``x_names``; a term whose columns were all dropped has a (0, p) matrix.
    """
    rows = ModelData.of(frame, transforms, keep_levels=True)  # a sample may lack some
    layout = _fit_layout(fixed_formula, rows, x_names)
    if len(x_names) <= 1 or len(layout.terms) <= 1:
        return _type1(layout)
    treatment = _treatment_layout(fixed_formula, rows, x_names)
    coding_map = _zapsmall(np.linalg.lstsq(treatment.X, layout.X, rcond=None)[0])
    return {label: C @ coding_map + 0.0  # no -0.0
            for label, C in _treatment_type3(treatment, fixed_formula, rows).items()}


def _treatment_type3(layout: _Layout, fixed_formula: str,
                     rows: ModelData) -> dict[str, np.ndarray]:
    """Steps 2 to 7 of the module's docstring (lmerTest's ``extract_contrasts_type3``) on the
    treatment-coded ``layout``: term label -> (rows, p) contrast matrix."""
    terms, X, columns, contains = layout.terms, layout.X, layout.columns, layout.contains
    complete = rows.matrix(fixed_formula, treatment=True, ensure_full_rank=False)
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

    rd_names = r_column_names(complete.columns)
    rd_position = {name: i for i, name in reversed(list(enumerate(rd_names)))}
    missing = [name for name in layout.names if name not in rd_position]
    if missing:
        raise ValueError(f"columns {missing} of X have no counterpart in the complete design")
    L = L[[rd_position[name] for name in layout.names]]
    out = {}
    for label, cols in zip(layout.labels, columns):
        C = L[:, cols].T
        out[label] = C[np.abs(C).sum(axis=1) > ZERO_ROW]
    return out


def _variables(term) -> frozenset[str]:
    """The term's variables (the intercept's literal 1 is none)."""
    return frozenset(str(f) for f in term.factors
                     if not (f.eval_method == Factor.EvalMethod.LITERAL and str(f) == "1"))


def _coded_variables(terms) -> list[frozenset[str]]:
    """Each term's variables that R's ``terms()`` codes 1 (lmerTest's ``term_contain``;
    ``design.term_codes.factor_table``): all of a main effect's, and of an interaction those
    whose removal leaves a term contained in one listed before."""
    variables = [tuple(_variables(term)) for term in terms]
    return [frozenset(v for v, one in zip(vs, row) if one)
            for vs, row in zip(variables, factor_table(variables))]


#: R's functions whose value is a matrix: R's model frame classes it "nmatrix.k" (scale's too,
#: of one column), and lmerTest's containment counts only "numeric" variables as numbers, so
#: these count as factors there (a is contained in poly(z, 2):a of poly(z, 2) * a)
_MATRIX_FUNCTIONS = re.compile(r"(?:poly|ns|bs|scale)\(")


def _is_numeric(spec, variable: str) -> bool:
    """A numeric variable of one column, as R's model frame classes it ("numeric")."""
    state = spec.encoder_state.get(variable)
    return (state is not None and state[0].value == "numerical"
            and not _MATRIX_FUNCTIONS.match(variable))


def _doolittle_rows(crossprod: np.ndarray) -> np.ndarray:
    """t(L) of lmerTest's ``doolittle(crossprod)`` (crossprod = L D L'): a (p, p) unit
    upper-triangular matrix whose rows are the type I contrasts. As ``doolittle``, a column of
    L whose pivot is below 1e-6 is left zero, and entries below 1e-6 are zeroed at the end.
    The rows are those of the upper Cholesky factor divided by its diagonal; multi-df
    Satterthwaite df depend on that scaling (F tests do not)."""
    p = crossprod.shape[0]
    lower, upper = np.eye(p), np.zeros((p, p))
    for i in range(p):
        upper[i] = crossprod[i] - lower[i, :i] @ upper[:i]
        if abs(upper[i, i]) >= DOOLITTLE_EPS:
            lower[i + 1:, i] = ((crossprod[i + 1:, i] - lower[i + 1:, :i] @ upper[:i, i])
                                / upper[i, i])
    lower[np.abs(lower) < DOOLITTLE_EPS] = 0.0
    return lower.T


def _zapsmall(a: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest |value|."""
    mx = np.max(np.abs(a)) if a.size else 0.0
    if not mx > 0:
        return a
    return np.round(a, max(0, int(np.floor(digits - np.log10(mx) + 0.5))))
