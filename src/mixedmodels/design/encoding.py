"""Model matrices for the common formulas, without formulaic's per-call overhead.

formulaic materializes a model matrix in about a millisecond, which dominates the whole fit of
a small model. Most formulas are built only from data columns and functions of each row:
numeric columns, categorical columns (an ordered one coded by R's orthogonal polynomials,
``x.L``, ``x.Q``), R's ``factor()`` of a column of numbers or text (``factor(visit)``: the
column's distinct values as levels, sorted) and ``relevel()`` of one, elementwise expressions
of numeric columns (``I(age^2)``, ``log(dose)``: ``design.expressions``), ``scale``,
``center``, ``standardize`` and ``poly`` of a numeric column (their state learnt from every row
of the data, as formulaic's path learns it: ``formula.transforms``; ``poly(x, 2)``'s columns
``poly(x, 2)1`` and ``poly(x, 2)2``), ``C(x, coding)`` of a text column (the coding's own
matrices and names, ``formula.codings``), and their interactions. For those, the columns are
products of numbers, level indicators and codings' columns, and this module builds them
directly with NumPy. Anything else (other stateful transforms such as ``ns`` and ``bs``,
codings of other variables, ``interaction()``) returns ``None`` and formulaic does the work.

Coding follows R's rule (``design.term_codes``), as formulaic's matrices do here
(``design.materialize``): a categorical factor in a term is coded by treatment contrasts
(first level as reference) or by one indicator per level. A term of several categorical
factors (``a:b`` in ``a*b``) has one column per combination of their coded levels, the first
factor varying fastest, named as R names them (``a2:b3``).
The ``Encoding`` records the levels seen at fit time, to encode new data the same way.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from formulaic import Formula
from formulaic.errors import FormulaicError
from formulaic.transforms import TRANSFORMS

from ..errors import DataError
from ..formula.codings import checked_coding, default_coding
from ..formula.parse import R_DOTTED_FUNCTIONS
from ..formula.rfunctions import FORMULA_CONTEXT, LOGICAL_LEVELS, level_label
from ..formula.transforms import TRANSFORM_CONTEXT
from .expressions import numeric_expression
from .frame import FrameColumns, number_dtype
from .names import r_column_names, r_name, r_spelling
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
    sources: dict = field(default_factory=dict)  # factor(x)'s column x, by its text
    logical: frozenset = frozenset()  # the logical variables: bool columns, x > 2
    #: scale(x), poly(x, 2) and their kind by their text: (function, column, positional
    #: arguments after the column, keywords, learnt state)
    states: dict = field(default_factory=dict)
    #: C(x, coding)'s matrices by its text: {reduced rank: (levels x columns)}
    codings: dict = field(default_factory=dict)

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
                    indicator = indicators[name, level] = self._indicator(columns, name, level)
                row *= indicator
        return np.ascontiguousarray(out.T)


    def _indicator(self, columns: FrameColumns, name: str, level: str) -> np.ndarray:
        """(n,) a level's indicator, as floats; or a matrix's column (``poly(x, 2)``'s
        "2")."""
        if name in self.logical:
            return (self._logical(columns, name) == (level == LOGICAL_LEVELS[1])).astype(float)
        if name in self.states:
            return _transformed(columns, *self.states[name])[:, int(level) - 1]
        if name in self.codings:  # level: (reduced rank, the coding's column)
            weights = self.codings[name][level[0]][:, level[1]]
            return sum(weight * _indicator(columns, self.sources[name], each)
                       for weight, each in zip(weights.tolist(), self.levels[name]) if weight)
        return _indicator(columns, self.sources.get(name, name), level, name in self.sources)

    def _numbers(self, columns: FrameColumns, name: str) -> np.ndarray:
        """(n,) a numeric column's or an expression's values (the data's columns of numbers:
        a prediction checks new data first, ``diagnostics.predict``)."""
        if name in self.states:
            return _transformed(columns, *self.states[name])
        expression = self.expressions.get(name)
        if expression is None:
            return columns.numbers(name)
        values = columns.expression(expression)
        if values is None:
            raise DataError(f"cannot evaluate {r_spelling(expression.text)} on these data: "
                            f"its columns ({', '.join(expression.columns)}) must be numbers")
        return values

    def _logical(self, columns: FrameColumns, name: str) -> np.ndarray:
        """(n,) bools: a logical column's or expression's values."""
        expression = self.expressions.get(name)
        values = _bools(columns.array(name)) if expression is None \
            else columns.expression(expression)
        if values is None or values.dtype.kind != "b":
            what = name if expression is None else r_spelling(expression.text)
            raise DataError(f"{what} was logical (True or False) in the data of the fit, but "
                            "not in these data: give True or False")
        return values


def _transformed(columns: FrameColumns, function: str, column: str, arguments: tuple,
                 keywords: tuple, state: dict) -> np.ndarray:
    """(n,) or (n, k) a stateful transform of a column with its learnt state (``scale(x)``: x
    minus the data's mean, over their sd), as formulaic's path applies it."""
    values = TRANSFORM_CONTEXT[function](columns[column], *arguments, **dict(keywords),
                                         _state=dict(state))
    return np.asarray(values, dtype=float)


def _bools(values) -> np.ndarray | None:
    """A logical column's values as NumPy's bools (pandas' nullable ones without a missing
    value, and Python's bools as objects, too); None for any other column."""
    if isinstance(values, pd.arrays.BooleanArray):
        return None if values.isna().any() else values.to_numpy(dtype=bool)
    if not isinstance(values, np.ndarray):
        return None
    if values.dtype.kind == "O" and len(values) and all(
            isinstance(value, (bool, np.bool_)) for value in values.tolist()):
        return values.astype(bool)
    return values if values.dtype.kind == "b" else None


def _indicator(columns: FrameColumns, name, level: str, coded: bool = False) -> np.ndarray:
    """(n,) 1.0 where column ``name`` is at ``level``, else 0.0; pandas' text and
    categoricals, and any column whose levels are R's ``factor``'s (``coded``), by its codes
    (``FrameColumns.factor``, shared with the grouping factors: a categorical's levels are
    labelled as R's, 2 for 2.0), other columns by their text."""
    if not coded and not isinstance(columns.dtype(name), (pd.StringDtype, pd.CategoricalDtype)):
        return (columns.labels(name) == level).astype(float)
    codes, labels = columns.factor(name)
    position = np.flatnonzero(labels == level)  # labels in R's order, not always the text's
    if len(position):
        return (codes == position[0]).astype(float)
    return np.zeros(len(codes))


@lru_cache(maxsize=256)
def _terms(text: str):
    """The formula's terms as tuples of factor texts (() for the intercept), the elementwise
    expressions among those factors by their text, the column of each ``factor(x)`` and
    ``C(x, coding)`` among them by its text, and the stateful transforms; or None."""
    try:
        formula = Formula(text)
    except FormulaicError:
        return None
    terms, expressions, sources, stateful, references = [], {}, {}, {}, {}
    for term in formula:
        factors = []
        for factor in term.factors:
            method = factor.eval_method.value
            if method == "literal" and str(factor) == "1":
                continue
            if method == "python" and _factor_of_column(str(factor)):
                sources[str(factor)] = _factor_of_column(str(factor))
            elif method == "python" and _relevel_of_column(str(factor)):
                sources[str(factor)], references[str(factor)] = \
                    _relevel_of_column(str(factor))
            elif method == "python" and _stateful_call(str(factor)):
                stateful[str(factor)] = _stateful_call(str(factor))
            elif method == "python" and _coded_column(str(factor)):
                sources[str(factor)] = _coded_column(str(factor))
            elif method == "python":
                expression = numeric_expression(str(factor))
                if expression is None:
                    return None
                expressions[str(factor)] = expression
            elif method != "lookup":
                return None
            factors.append(str(factor))
        terms.append(tuple(factors))
    return tuple(terms), expressions, sources, stateful, references


@lru_cache(maxsize=512)
def _column_call(text: str) -> ast.Call | None:
    """The call ``f(x, ...)`` that ``text`` (formulaic's Python text of a factor) is, f a name
    and x a column's name; else None."""
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return None
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.args \
            and isinstance(call.args[0], ast.Name):
        return call
    return None


@lru_cache(maxsize=256)
def _relevel_of_column(text: str) -> tuple | None:
    """(x, ref) where ``text`` is R's ``relevel(x, ref)`` of a column x, ref a label or a
    position from 1 (positional, or ``ref=``); else None."""
    call = _column_call(text)
    if call is None:
        return None
    if not (call.func.id == "relevel"
            and len(call.args) + len(call.keywords) == 2
            and all(keyword.arg == "ref" for keyword in call.keywords)):
        return None
    ref = call.args[1] if len(call.args) > 1 else call.keywords[0].value
    if not (isinstance(ref, ast.Constant) and type(ref.value) in (str, int)):
        return None
    return call.args[0].id, ref.value


def _releveled(levels: tuple, ref) -> tuple:
    """R's ``relevel``: the level ``ref`` (a label, or a position from 1) first, the others in
    their order; the levels as they are without it (``formula.rfunctions.relevel``)."""
    position = (levels.index(ref) if ref in levels else None) if isinstance(ref, str) \
        else (ref - 1 if 1 <= ref <= len(levels) else None)
    if position is None:
        return levels
    return (levels[position],) + levels[:position] + levels[position + 1:]


@lru_cache(maxsize=256)
def _coded_column(text: str) -> str | None:
    """x, where ``text`` is ``C(x, coding)`` of a column x with a coding (positional, or
    ``contrasts=``) and nothing else; else None."""
    call = _column_call(text)
    if call is None:
        return None
    if call.func.id == "C" and len(call.args) + len(call.keywords) == 2 \
            and all(keyword.arg == "contrasts" for keyword in call.keywords):
        return call.args[0].id
    return None


@lru_cache(maxsize=256)
def _coding_of(text: str, levels: tuple) -> tuple | None:
    """For ``C(x, coding)`` on these levels: ``_coded``'s matrices and names of the coding
    (``formula.codings``); None where the coding is not one (formulaic's path then says what
    is wrong)."""
    call = _column_call(text)
    given = call.args[1] if len(call.args) > 1 else call.keywords[0].value
    try:
        coding = eval(compile(ast.Expression(given), "<coding>", "eval"),  # noqa: S307
                      {"__builtins__": {}}, {**TRANSFORMS, **FORMULA_CONTEXT})
        coding = checked_coding(coding, call.args[0].id)
    except Exception:  # noqa: BLE001 - a coding formulaic's path judges
        return None
    return _coded(coding() if isinstance(coding, type) else coding, text, levels)


@lru_cache(maxsize=256)
def _ordered_coding(name: str, levels: tuple) -> tuple | None:
    """``_coded`` of an ordered factor's levels by R's default coding of it, orthogonal
    polynomials (``formula.codings.default_coding``)."""
    ordered = pd.Categorical(list(levels), categories=list(levels), ordered=True)
    return _coded(default_coding(ordered), name, levels)


def _coded(coding, name: str, levels: tuple) -> tuple | None:
    """(the coding's matrices by reduced rank, its columns' R names by reduced rank) for a
    factor named ``name`` of these levels, as formulaic's path codes and names it; None
    where the coding cannot code them."""
    try:
        matrices, names = {}, {}
        for reduced in (False, True):
            matrices[reduced] = np.asarray(coding.get_coding_matrix(list(levels), reduced),
                                           dtype=float)
            form = coding.get_factor_format(list(levels), reduced_rank=reduced)
            names[reduced] = r_column_names(
                [form.format(name=name, field=field)
                 for field in coding.get_coding_column_names(list(levels), reduced)])
    except Exception:  # noqa: BLE001 - a coding formulaic's path judges
        return None
    if any(matrices[r].shape != (len(levels), len(names[r])) for r in matrices):
        return None
    return matrices, names


#: the stateful transforms of one numeric column built here (``formula.transforms``)
_STATEFUL = ("scale", "center", "standardize", "poly")


@lru_cache(maxsize=256)
def _stateful_call(text: str) -> tuple | None:
    """(function, column, arguments, keywords) where ``text`` is ``scale(x)``, ``center(x)``,
    ``standardize(x)`` or ``poly(x, ...)`` of a column x, with other arguments of constant
    values (``scale = FALSE``, ``poly(x, 2, raw = TRUE)``); else None."""
    call = _column_call(text)
    if call is None:
        return None
    if not (call.func.id in _STATEFUL and call.args[0].id not in _STATEFUL
            and all(isinstance(arg, ast.Constant) and type(arg.value) is int
                    for arg in call.args[1:])):
        return None
    keywords = []
    for keyword in call.keywords:
        value = keyword.value
        if isinstance(value, ast.Name) and value.id in _R_LOGICAL:
            keywords.append((keyword.arg, _R_LOGICAL[value.id]))
        elif isinstance(value, ast.Constant) and isinstance(value.value, (bool, int, float)) \
                and keyword.arg is not None:
            keywords.append((keyword.arg, value.value))
        else:
            return None
    return (call.func.id, call.args[0].id, tuple(arg.value for arg in call.args[1:]),
            tuple(keywords))


_R_LOGICAL = {"TRUE": True, "FALSE": False}


@lru_cache(maxsize=256)
def _factor_of_column(text: str) -> str | None:
    """x, where ``text`` is R's ``factor(x)`` or ``as.factor(x)`` (formulaic's
    ``as_factor(x)``) of a column x, without other arguments; else None."""
    call = _column_call(text)
    if call is None:
        return None
    if call.func.id in ("factor", R_DOTTED_FUNCTIONS["as.factor"]) \
            and not call.keywords and len(call.args) == 1 and call.args[0].id != call.func.id:
        return call.args[0].id
    return None


def fast_encoding(text: str, frame, keep_levels: bool = False, rows=None) -> Encoding | None:
    """An ``Encoding`` for ``text`` on ``frame`` (a DataFrame, or its ``FrameColumns``), or
    None when formulaic is needed. ``keep_levels``: a categorical's levels are all its
    categories, used or not (a partition of a larger data set: ``design.schema``).
    ``rows``: the ``ModelData`` whose rows ``frame`` has, for stateful transforms, which
    learn their state from all its rows (``whole``) and record it in its ``transforms``, or
    apply the state recorded there (a refit, a partition); without it they are
    formulaic's."""
    parsed = _terms(text)
    if parsed is None:
        return None
    terms, expressions, sources, stateful, references = parsed
    frame = frame if isinstance(frame, FrameColumns) else FrameColumns(frame)
    kinds, states, matrices, codings, coded = {}, {}, {}, {}, {}
    for name in _variables(terms):
        if name in stateful:  # numbers, from the state of every row's values
            states[name] = _learnt(name, stateful[name], rows, keep_levels)
            if states[name] is None:
                return None
            values = _transformed(frame, *states[name])
            if values.shape[0] != frame.shape[0] or values.ndim > 2 \
                    or not np.isfinite(values).all():
                return None
            kinds[name] = "expression" if values.ndim == 1 else "matrix"
            if values.ndim == 2:  # its columns, numbered from 1 as R names them
                matrices[name] = tuple(str(k) for k in range(1, values.shape[1] + 1))
            continue
        if name in sources and _coded_column(name):  # C(x, coding) of a column of text
            column = sources[name]
            if column not in frame or _kind(frame, column, keep_levels) != "categorical" \
                    or isinstance(frame.dtype(column), pd.CategoricalDtype):
                return None
            coding = _coding_of(name, tuple(frame.factor(column)[1].tolist()))
            if coding is None:
                return None
            codings[name], coded[name] = coding
            kinds[name] = "coded"
            continue
        if name in sources:  # R's factor of a column of numbers or text
            column = sources[name]
            if column not in frame or isinstance(frame.dtype(column), pd.CategoricalDtype) \
                    or _kind(frame, column, keep_levels) not in ("numeric", "categorical"):
                return None
            kinds[name] = "factor"
            continue
        if name in expressions:  # numbers, if one finite number per row, or bools
            values = frame.expression(expressions[name])
            if values is None or values.dtype.kind != "b" and not np.isfinite(values).all():
                return None
            kinds[name] = "logical expression" if values.dtype.kind == "b" else "expression"
            continue
        if name not in frame:
            return None
        dtype = frame.dtype(name)
        if isinstance(dtype, pd.CategoricalDtype) and dtype.ordered and not keep_levels:
            # polynomial contrasts, R's default coding of an ordered factor (x.L, x.Q, ...)
            coding = _ordered_coding(name, tuple(frame.factor(name)[1].tolist()))
            if coding is None:
                return None
            codings[name], coded[name] = coding
            sources = {**sources, name: name}
            kinds[name] = "coded"
            continue
        kinds[name] = _kind(frame, name, keep_levels)
        if kinds[name] is None:
            return None
    levels = {name: LOGICAL_LEVELS if kind in _LOGICAL
              else _releveled(tuple(frame.factor(sources[name])[1].tolist()), references[name])
              if name in references
              else tuple(frame.factor(sources[name])[1].tolist()) if name in sources
              else _levels(frame, name) for name, kind in kinds.items() if kind in _CODED}
    if states:
        rows.transforms.update({name: state[-1] for name, state in states.items()})
    return Encoding(_columns(terms, tuple(kinds.items()),
                             tuple({**levels, **matrices}.items()),
                             tuple((name, (names[False], names[True]))
                                   for name, names in coded.items())), levels,
                    expressions, sources,
                    frozenset(name for name, kind in kinds.items() if kind in _LOGICAL),
                    states, codings)


def _learnt(text: str, call: tuple, rows, keep_levels: bool) -> tuple | None:
    """(function, column, arguments, keywords, state) of a stateful transform
    (``_stateful_call``): the
    state ``rows`` recorded for its text, or the state learnt from the column's values in
    every row of ``rows.whole`` (not a partition's: ``keep_levels``); None where there are
    no such rows, or the column is not of NumPy's numbers."""
    function, column, arguments, keywords = call
    if rows is None or column not in rows.columns \
            or not isinstance(rows.columns.dtype(column), np.dtype) \
            or rows.columns.dtype(column).kind not in "iuf":
        return None
    state = rows.transforms.get(text)
    if state is None and keep_levels:
        return None
    if state is None:
        state = {}
        try:
            TRANSFORM_CONTEXT[function](rows.whole[column], *arguments, **dict(keywords),
                                        _state=state)
        except Exception:  # noqa: BLE001 - arguments formulaic's path judges
            return None
    return function, column, arguments, keywords, state


@lru_cache(maxsize=256)
def _variables(terms: tuple) -> tuple[str, ...]:
    """The distinct variables of the terms, in order."""
    return tuple(dict.fromkeys(f for term in terms for f in term))


def _expansion(f: str, code, kinds: dict, levels: dict, coded: dict, spelled: dict) -> list:
    """A factor's columns in a term, as (the key of its values, its R name) pairs: a
    categorical's levels (all, or but the first where it is coded by contrasts: ``code``), a
    matrix's columns, a coded one's coding columns ((reduced rank, column), named by the
    coding)."""
    if kinds[f] == "coded":
        return [((bool(code), j), label) for j, label in enumerate(coded[f][bool(code)])]
    return [(level, f"{spelled[f]}{level}") for level in (levels[f][1:] if code else levels[f])]


#: the kinds of variable written as R deparses them
_SPELLED = ("expression", "factor", "logical expression", "matrix")
#: the kinds of variable coded by levels: a logical one's are always FALSE and TRUE (both
#: coded, whatever the rows have, as R's ``contrasts<-`` codes a logical: ``design.materialize``)
_LOGICAL = ("logical", "logical expression")
_CODED = ("categorical", "factor", "coded") + _LOGICAL


@lru_cache(maxsize=256)
def _columns(terms: tuple, kinds: tuple, levels: tuple, coded: tuple = ()) -> tuple[Column, ...]:
    """The model-matrix columns of the terms, given each variable's kind ("numeric",
    "categorical", "expression", "factor": ``factor(x)``, "logical": a bool column,
    "logical expression": ``x > 2``, or "matrix": ``poly(x, 2)``) and each categorical or
    logical one's levels, or a matrix's column numbers, and a coded one's ("coded":
    ``C(x, coding)``) column names by reduced rank (a function of them alone: cached, as a
    small model's design builds the same columns at every fit)."""
    kinds, levels, coded = dict(kinds), dict(levels), dict(coded)
    categorical_names = frozenset(f for f, kind in kinds.items() if kind in _CODED)
    spelled = {f: r_spelling(f) if kind in _SPELLED else r_name(f) for f, kind in kinds.items()}
    columns: list[Column] = []
    for term, codes in zip(terms, contrast_codes(terms, categorical_names)):
        # the factors of several columns: a categorical's coded levels, a matrix's columns
        categorical = [f for f in term if kinds[f] in _CODED or kinds[f] == "matrix"]
        numeric = tuple(f for f in term if f not in categorical)
        options = [_expansion(f, code, kinds, levels, coded, spelled)
                   for f, code in zip(term, codes) if f in categorical]
        # every combination of the coded levels, the first factor varying fastest (as R)
        for combination in itertools.product(*reversed(options)):
            chosen = dict(zip(reversed(categorical), combination))
            name = ":".join(chosen[f][1] if f in chosen else spelled[f] for f in term)
            columns.append(Column(name or "(Intercept)", numeric,
                                  tuple((f, chosen[f][0]) for f in categorical)))
    return tuple(columns)


def _kind(frame: FrameColumns, name, keep_levels: bool = False) -> str | None:
    """"numeric", "categorical" (text, or an unordered categorical whose every category is
    used, or any unordered one with ``keep_levels``), "logical" (NumPy's bools, pandas'
    nullable ones without a missing value) or None (formulaic's); text is told by its first
    50 values."""
    dtype = frame.dtype(name)
    if isinstance(dtype, pd.StringDtype):  # (pandas' text: the commonest factor, told first)
        return None if frame.missing(name)[:50].any() else "categorical"
    if number_dtype(dtype):
        return "numeric"
    if _bools(frame.array(name)) is not None:
        return "logical"
    if isinstance(dtype, np.dtype):
        if dtype.kind != "O":  # dates, times
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
    elif not pd.api.types.is_string_dtype(dtype):
        return None
    return "categorical" if all(isinstance(v, str) for v in frame.values(name)[:50]) else None


def _levels(frame: FrameColumns, name) -> tuple[str, ...]:
    dtype = frame.dtype(name)
    if isinstance(dtype, pd.CategoricalDtype):  # labelled as R's factor: TRUE, 2, 1e+05
        return tuple(level_label(c) for c in dtype.categories)
    if isinstance(dtype, pd.StringDtype):
        return tuple(frame.factor(name)[1].tolist())
    return tuple(np.unique(frame.labels(name)).tolist())
