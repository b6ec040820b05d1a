"""Model matrices for the common formulas, without formulaic's per-call overhead.

formulaic materializes a model matrix in about a millisecond, which dominates the whole fit of
a small model. Most formulas are built only from data columns: numeric columns, categorical
columns, and their interactions. For those, the columns are products of numeric columns and
level indicators, and this module builds them directly with NumPy. Anything else (``I()``,
functions, two categorical factors in one term) returns ``None`` and formulaic does the work.

Coding follows R (and formulaic): a categorical factor in a term is coded by treatment
contrasts (first level as reference) when the term without that factor is also in the model
(the intercept counting as the empty term), and by one indicator per level otherwise.
The ``Encoding`` records the levels seen at fit time, to encode new data the same way.
"""

from __future__ import annotations

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
    indicator: tuple[str, str] | None  # (column, level)


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
        numeric = {}
        for j, column in enumerate(self.columns):
            for name in column.numeric:
                if name not in numeric:
                    numeric[name] = frame[name].to_numpy(dtype=float)
                out[:, j] *= numeric[name]
            if column.indicator is not None:
                name, level = column.indicator
                out[:, j] *= _labels(frame[name]) == level
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
    present = {frozenset(term) for term in terms}
    columns: list[Column] = []
    for term in terms:
        categorical = [f for f in term if kinds[f] == "categorical"]
        if len(categorical) > 1:
            return None
        numeric = tuple(f for f in term if kinds[f] == "numeric")
        if not categorical:
            columns.append(Column(":".join(term) if term else "(Intercept)", numeric, None))
            continue
        factor = categorical[0]
        contrasts = frozenset(term) - {factor} in present
        for level in levels[factor][1:] if contrasts else levels[factor]:
            name = ":".join(f"{f}{level}" if f == factor else f for f in term)
            columns.append(Column(name, numeric, (factor, level)))
    return Encoding(tuple(columns), levels)


def _kind(column: pd.Series) -> str | None:
    if pd.api.types.is_bool_dtype(column):
        return None
    if pd.api.types.is_numeric_dtype(column):
        return "numeric"
    if isinstance(column.dtype, pd.CategoricalDtype):
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
