"""Model matrices for the common formulas, without formulaic's per-call overhead.

formulaic materializes a model matrix in about a millisecond, which dominates the whole fit of
a small model. Most formulas are built only from data columns: numeric columns, categorical
columns, and their interactions. For those, the columns are products of numeric columns and
level indicators, and this module builds them directly with NumPy. Anything else (``I()``,
functions, a term of several categorical factors not all of whose margins are in the model,
an ordered categorical, coded by polynomial contrasts) returns ``None`` and formulaic does the
work.

Coding follows R (and formulaic): a categorical factor in a term is coded by treatment
contrasts (first level as reference) when the term without that factor is also in the model
(the intercept counting as the empty term), and by one indicator per level otherwise. A term
of several categorical factors (``a:b`` in ``a*b``) has one column per combination of their
coded levels, the first factor varying fastest, named as R names them (``a2:b3``).
The ``Encoding`` records the levels seen at fit time, to encode new data the same way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from formulaic import Formula
from formulaic.errors import FormulaicError

__all__ = ["Column", "Encoding", "fast_encoding"]


@dataclass(frozen=True)
class Column:
    """One model-matrix column: the product of numeric columns and level indicators."""

    name: str
    numeric: tuple[str, ...]
    indicators: tuple[tuple[str, str], ...]  # (column, level) pairs


@dataclass(frozen=True)
class Encoding:
    """How each model-matrix column is computed from the data."""

    columns: tuple[Column, ...]
    levels: dict

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The model matrix of ``frame`` (which must have the columns used)."""
        out = np.ones((frame.shape[0], len(self.columns)))
        numeric, labels = {}, {}
        for j, column in enumerate(self.columns):
            for name in column.numeric:
                if name not in numeric:
                    numeric[name] = frame[name].to_numpy(dtype=float)
                out[:, j] *= numeric[name]
            for name, level in column.indicators:
                if name not in labels:
                    labels[name] = _labels(frame[name])
                out[:, j] *= labels[name] == level
        return out


@lru_cache(maxsize=256)
def _terms(text: str):
    """The formula's terms as tuples of factor names (() for the intercept), or None."""
    try:
        formula = Formula(text)
    except FormulaicError:
        return None
    terms = []
    for term in formula:
        factors = []
        for factor in term.factors:
            method = factor.eval_method.value
            if method == "literal" and str(factor) == "1":
                continue
            if method != "lookup":
                return None
            factors.append(str(factor))
        terms.append(tuple(factors))
    return tuple(terms)


def fast_encoding(text: str, frame: pd.DataFrame) -> Encoding | None:
    """An ``Encoding`` for ``text`` on ``frame``, or None when formulaic is needed."""
    terms = _terms(text)
    if terms is None:
        return None
    kinds = {}
    for name in {f for term in terms for f in term}:
        if name not in frame.columns:
            return None
        kinds[name] = _kind(frame[name])
        if kinds[name] is None:
            return None
    levels = {name: _levels(frame[name]) for name, kind in kinds.items() if kind == "categorical"}
    # R's rule, term by term: a factor is coded by contrasts when the term without it is
    # already spanned by the columns before; a factor coded by indicators spans its term
    # without it too (without an intercept, "0 + a + b" codes a by indicators, b by contrasts)
    spanned = {frozenset()} if () in terms else set()
    columns: list[Column] = []
    for term in terms:
        categorical = [f for f in term if kinds[f] == "categorical"]
        numeric = tuple(f for f in term if kinds[f] == "numeric")
        contrasts = [frozenset(term) - {f} in spanned for f in categorical]
        if len(categorical) > 1 and not all(contrasts):
            return None
        full = frozenset(f for f, c in zip(categorical, contrasts) if not c)
        spanned |= {frozenset(term) - set(subset) for k in range(len(full) + 1)
                    for subset in itertools.combinations(full, k)}
        coded = [levels[f][1:] if c else levels[f] for f, c in zip(categorical, contrasts)]
        # every combination of the coded levels, the first factor varying fastest (as R)
        for combination in itertools.product(*reversed(coded)):
            chosen = dict(zip(reversed(categorical), combination))
            name = ":".join(f"{f}{chosen[f]}" if f in chosen else f for f in term)
            columns.append(Column(name or "(Intercept)", numeric,
                                  tuple((f, chosen[f]) for f in categorical)))
    return Encoding(tuple(columns), levels)


def _kind(column: pd.Series) -> str | None:
    if pd.api.types.is_bool_dtype(column):
        return None
    if pd.api.types.is_numeric_dtype(column):
        return "numeric"
    if isinstance(column.dtype, pd.CategoricalDtype):
        if column.dtype.ordered:  # polynomial contrasts: formulaic's (design.materialize)
            return None
        used = column.cat.remove_unused_categories().cat.categories
        return "categorical" if len(used) == len(column.cat.categories) else None
    if pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
        return "categorical" if all(isinstance(v, str) for v in column.iloc[:50]) else None
    return None


def _levels(column: pd.Series) -> tuple[str, ...]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return tuple(str(c) for c in column.cat.categories)
    return tuple(str(v) for v in np.unique(column.to_numpy(dtype=str)))


def _labels(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=str)
