"""Model matrices for the common formulas, without formulaic's per-call overhead.

formulaic materializes a model matrix in about a millisecond, which dominates the whole fit of
a small model. Most formulas are built only from data columns and functions of each row: numeric
columns, categorical columns, elementwise expressions of numeric columns (``I(age^2)``,
``log(dose)``: ``design.expressions``), and their interactions. For those, the columns are
products of numbers and level indicators, and this module builds them directly with NumPy.
Anything else (stateful transforms such as ``poly`` and ``scale``, codings, an ordered
categorical, coded by polynomial contrasts) returns ``None`` and formulaic does the work.

Coding follows R's rule (``design.term_codes``), as formulaic's matrices do here
(``design.materialize``): a categorical factor in a term is coded by treatment contrasts
(first level as reference) or by one indicator per level. A term of several categorical
factors (``a:b`` in ``a*b``) has one column per combination of their coded levels, the first
factor varying fastest, named as R names them (``a2:b3``).
The ``Encoding`` records the levels seen at fit time, to encode new data the same way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from formulaic import Formula
from formulaic.errors import FormulaicError

from ..errors import DataError
from .expressions import numeric_expression
from .frame import FrameColumns, number_dtype
from .names import r_spelling
from .term_codes import contrast_codes

__all__ = ["Column", "Encoding", "fast_encoding"]


@dataclass(frozen=True)
class Column:
    """One model-matrix column: the product of numeric columns or expressions (by their
    formulaic text) and level indicators."""

    name: str
    numeric: tuple[str, ...]
    indicators: tuple[tuple[str, str], ...]  # (column, level) pairs


@dataclass(frozen=True)
class Encoding:
    """How each model-matrix column is computed from the data."""

    columns: tuple[Column, ...]
    levels: dict
    expressions: dict = field(default_factory=dict)  # NumericExpression by its text

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def matrix(self, frame) -> np.ndarray:
        """The model matrix of ``frame`` (which must have the columns used): a DataFrame, or
        its ``FrameColumns``. Built a column at a time as contiguous rows of its transpose,
        each level's indicator computed once, as floats (an interaction of factors of 6 and 5
        levels has 30 columns and 10 indicators)."""
        columns = frame if isinstance(frame, FrameColumns) else FrameColumns(frame)
        out = np.ones((len(self.columns), columns.shape[0]))
        indicators: dict = {}
        for row, column in zip(out, self.columns):
            for name in column.numeric:
                row *= self._numbers(columns, name)
            for name, level in column.indicators:
                indicator = indicators.get((name, level))
                if indicator is None:
                    indicator = indicators[name, level] = _indicator(columns, name, level)
                row *= indicator
        return np.ascontiguousarray(out.T)


    def _numbers(self, columns: FrameColumns, name: str) -> np.ndarray:
        """(n,) a numeric column's or an expression's values (the data's columns of numbers:
        a prediction checks new data first, ``diagnostics.predict``)."""
        expression = self.expressions.get(name)
        if expression is None:
            return columns.numbers(name)
        values = columns.expression(expression)
        if values is None:
            raise DataError(f"cannot evaluate {r_spelling(expression.text)} on these data: "
                            f"its columns ({', '.join(expression.columns)}) must be numbers")
        return values


def _indicator(columns: FrameColumns, name, level: str) -> np.ndarray:
    """(n,) 1.0 where column ``name`` is at ``level``, else 0.0; pandas' text by its codes
    (``FrameColumns.factor``, shared with the grouping factors), other columns by their text."""
    if not isinstance(columns.dtype(name), pd.StringDtype):
        return (columns.labels(name) == level).astype(float)
    codes, labels = columns.factor(name)
    position = int(np.searchsorted(labels, level))
    if position < len(labels) and labels[position] == level:
        return (codes == position).astype(float)
    return np.zeros(len(codes))


@lru_cache(maxsize=256)
def _terms(text: str):
    """The formula's terms as tuples of factor texts (() for the intercept), and the
    elementwise expressions among those factors by their text; or None."""
    try:
        formula = Formula(text)
    except FormulaicError:
        return None
    terms, expressions = [], {}
    for term in formula:
        factors = []
        for factor in term.factors:
            method = factor.eval_method.value
            if method == "literal" and str(factor) == "1":
                continue
            if method == "python":
                expression = numeric_expression(str(factor))
                if expression is None:
                    return None
                expressions[str(factor)] = expression
            elif method != "lookup":
                return None
            factors.append(str(factor))
        terms.append(tuple(factors))
    return tuple(terms), expressions


def fast_encoding(text: str, frame, keep_levels: bool = False) -> Encoding | None:
    """An ``Encoding`` for ``text`` on ``frame`` (a DataFrame, or its ``FrameColumns``), or
    None when formulaic is needed. ``keep_levels``: a categorical's levels are all its
    categories, used or not (a partition of a larger data set: ``design.schema``)."""
    parsed = _terms(text)
    if parsed is None:
        return None
    terms, expressions = parsed
    frame = frame if isinstance(frame, FrameColumns) else FrameColumns(frame)
    kinds = {}
    for name in _variables(terms):
        if name in expressions:  # numbers, if one finite number per row
            values = frame.expression(expressions[name])
            if values is None or not np.isfinite(values).all():
                return None
            kinds[name] = "expression"
            continue
        if name not in frame:
            return None
        kinds[name] = _kind(frame, name, keep_levels)
        if kinds[name] is None:
            return None
    levels = {name: _levels(frame, name) for name, kind in kinds.items() if kind == "categorical"}
    return Encoding(_columns(terms, tuple(kinds.items()), tuple(levels.items())), levels,
                    expressions)


@lru_cache(maxsize=256)
def _variables(terms: tuple) -> tuple[str, ...]:
    """The distinct variables of the terms, in order."""
    return tuple(dict.fromkeys(f for term in terms for f in term))


@lru_cache(maxsize=256)
def _columns(terms: tuple, kinds: tuple, levels: tuple) -> tuple[Column, ...]:
    """The model-matrix columns of the terms, given each variable's kind and each categorical
    one's levels (a function of them alone: cached, as a small model's design builds the
    same columns at every fit)."""
    kinds, levels = dict(kinds), dict(levels)
    categorical_names = frozenset(f for f, kind in kinds.items() if kind == "categorical")
    columns: list[Column] = []
    for term, codes in zip(terms, contrast_codes(terms, categorical_names)):
        categorical = [f for f in term if kinds[f] == "categorical"]
        numeric = tuple(f for f in term if kinds[f] != "categorical")
        contrasts = [code for code in codes if code is not None]
        coded = [levels[f][1:] if c else levels[f] for f, c in zip(categorical, contrasts)]
        # every combination of the coded levels, the first factor varying fastest (as R)
        for combination in itertools.product(*reversed(coded)):
            chosen = dict(zip(reversed(categorical), combination))
            name = ":".join(f"{f}{chosen[f]}" if f in chosen
                            else r_spelling(f) if kinds[f] == "expression" else f for f in term)
            columns.append(Column(name or "(Intercept)", numeric,
                                  tuple((f, chosen[f]) for f in categorical)))
    return tuple(columns)


def _kind(frame: FrameColumns, name, keep_levels: bool = False) -> str | None:
    """"numeric", "categorical" (text, or an unordered categorical whose every category is
    used, or any unordered one with ``keep_levels``) or None (formulaic's); text is told by
    its first 50 values."""
    dtype = frame.dtype(name)
    if number_dtype(dtype):
        return "numeric"
    if isinstance(dtype, np.dtype):
        if dtype.kind != "O":  # booleans, dates, times
            return None
    elif pd.api.types.is_bool_dtype(dtype):
        return None
    elif isinstance(dtype, pd.CategoricalDtype):
        if dtype.ordered:  # polynomial contrasts: formulaic's (design.materialize)
            return None
        if keep_levels:
            return "categorical"
        codes = np.asarray(frame.array(name).codes)
        used = np.bincount(codes[codes >= 0], minlength=len(dtype.categories)) > 0
        return "categorical" if used.all() else None
    elif isinstance(dtype, pd.StringDtype):
        return None if frame.array(name)[:50].isna().any() else "categorical"
    elif not pd.api.types.is_string_dtype(dtype):
        return None
    return "categorical" if all(isinstance(v, str) for v in frame.values(name)[:50]) else None


def _levels(frame: FrameColumns, name) -> tuple[str, ...]:
    dtype = frame.dtype(name)
    if isinstance(dtype, pd.CategoricalDtype):
        return tuple(str(c) for c in dtype.categories)
    if isinstance(dtype, pd.StringDtype):
        return tuple(frame.factor(name)[1].tolist())
    return tuple(np.unique(frame.labels(name)).tolist())
