"""Checks of the columns a formula reads as values (predictors, the response, offsets, the
weights) before the design is built. Each check's error names the column and says what to do.

* Text among numbers: a column of text (object or string dtype) more than half of whose
  distinct values are numbers (``datasets.text_among_numbers``) is a column of numbers with
  some stray text ("n/a", ".", "?"); as text it would become a factor with one level per value.
  The error names the rows (index labels) and the values, and says to make them missing
  (``pd.to_numeric(..., errors="coerce")``) or, if the column is categorical, to write
  ``factor(x)``. A column of Python numbers in object dtype (what is left after the text was
  replaced by NaN cell by cell) would become such a factor too: the error says to convert it
  with ``pd.to_numeric``. Text that reads as numbers throughout ("308", "309") is a column of
  labels, as R's ``read.csv`` would not have it otherwise, and stays one.
* Dates and times: datetime64 (with a time zone or not), timedelta64, periods, and Python
  ``date``, ``datetime``, ``time`` or pandas ``Timestamp``/``Timedelta`` objects are not numbers.
  R would count days or seconds since 1970-01-01, but the origin and the unit are the
  analysis's choice (and decide what the intercept means), so the error says how to convert
  them: days since the first date, for instance.

A column read only as the variable of ``factor(x)``, ``ordered(x)`` or ``C(x, ...)`` is read as
levels and is not checked, nor is a grouping factor: a date is a level like any other. Nor is a
column read only through its attributes and methods (``I(t.dt.dayofyear)``): that code converts
it. The checks cost nothing for numeric and categorical columns.
"""

from __future__ import annotations

import ast
from functools import lru_cache

import pandas as pd
from formulaic import Formula
from formulaic.parser.types import Factor
from formulaic.utils.code import sanitize_variable_names

from ..datasets import describe_cells, text_among_numbers
from ..errors import DataError
from ..formula.parse import formula_name
from .frame import FrameColumns

__all__ = ["check_cells", "check_column"]

#: the functions whose variable is read as levels
LEVEL_FUNCTIONS = ("factor", "ordered", "C")

#: what a column of dates or times holds, and how to convert it (``{c}`` is the column)
_TIMES = {
    "dates": "(data[{c}] - data[{c}].min()).dt.days (days since the first date)",
    "date objects": "pd.to_datetime(data[{c}]), then (t - t.min()).dt.days for days since "
                    "the first date",
    "time spans": "data[{c}].dt.total_seconds() / 86400 (days)",
    "time span objects": "pd.to_timedelta(data[{c}]).dt.total_seconds() / 86400 (days)",
    "periods": "data[{c}].dt.to_timestamp(), then (t - t.min()).dt.days for days since the "
               "first period",
    "times of day": "[t.hour + t.minute / 60 + t.second / 3600 for t in data[{c}]] (hours "
                    "after midnight)",
}
#: pandas' ``infer_dtype`` of an object column of numbers (Python's or numpy's)
_PYTHON_NUMBERS = ("integer", "floating", "mixed-integer-float", "decimal", "complex")
_INFERRED = {"date": "date objects", "datetime": "date objects", "datetime64": "date objects",
             "timedelta": "time span objects", "timedelta64": "time span objects",
             "period": "periods", "time": "times of day"}


def check_column(name, columns: FrameColumns, texts, response: bool = False) -> None:
    """Raise a DataError if the column ``name`` of ``columns`` (one the formula reads as
    values; ``response``: as the response) holds dates or times, or numbers with text among
    them, unless the formula's ``texts`` (formulaic syntax) read it only as levels or through
    its attributes (see the module docstring). Read as the array pandas stores; as a Series
    only for the message."""
    column = columns.array(name)
    if column.dtype.kind in "biufc" or isinstance(column.dtype, pd.CategoricalDtype):
        return
    inferred = (pd.api.types.infer_dtype(column, skipna=True)
                if pd.api.types.is_object_dtype(column) else None)
    problem = (_time_problem(name, column, inferred, response)
               or _object_problem(name, inferred, response)
               or _text_problem(name, columns, response))
    if problem and name not in _unchecked(tuple(texts)):
        raise DataError(problem)


def check_cells(name, values) -> None:
    """A DataError naming the column if a value of an object column (``values``, its NumPy
    array) is neither a number nor a level: a list, a dict, an array (pandas' hashing of the
    levels fails on them with "unhashable type")."""
    if values.dtype.kind != "O":
        return
    try:
        set(values.tolist())
    except TypeError:
        cell = next(v for v in values.tolist() if not _hashable(v))
        raise DataError(f"column {name!r} holds values of type {type(cell).__name__} (e.g. "
                        f"{_short(cell)}), which are neither numbers nor levels: a model's "
                        "columns hold one number, text or category per row; unpack the "
                        "values into columns of their own, or convert them to text") from None


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _time_kind(column: pd.Series, inferred: str | None) -> str | None:
    """What a column of dates or times holds (a key of ``_TIMES``), or None; ``inferred`` is
    pandas' ``infer_dtype`` of an object column."""
    kind = column.dtype.kind
    if kind in "mM":
        return "dates" if kind == "M" else "time spans"
    if isinstance(column.dtype, pd.PeriodDtype):
        return "periods"
    return _INFERRED.get(inferred)


def _time_problem(name, column, inferred: str | None, response: bool = False) -> str:
    kind = _time_kind(column, inferred)
    if kind is None:
        return ""
    conversion = _TIMES[kind].format(c=repr(name))
    return (f"column {name!r} holds {kind} ({column.dtype}), which are not numbers: convert "
            f"it to a number, e.g. {conversion}" + ("" if response else
            f"; as a grouping factor, or in factor({formula_name(str(name))}), each value is "
            "a level as it is"))


def _object_problem(name, inferred: str | None, response: bool = False) -> str:
    if inferred not in _PYTHON_NUMBERS:
        return ""
    if response:
        return (f"the response {name!r} holds numbers stored as Python objects (dtype "
                f"object): convert it with data[{name!r}] = pd.to_numeric(data[{name!r}])")
    return (f"column {name!r} holds numbers stored as Python objects (dtype object), which "
            f"would be read as a factor with one level per value: convert it with "
            f"data[{name!r}] = pd.to_numeric(data[{name!r}]), or write "
            f"factor({formula_name(str(name))}) in the formula if the column is categorical")


def _text_problem(name, columns: FrameColumns, response: bool = False) -> str:
    stored = columns.array(name)
    # pandas' text: its distinct values are its factor's levels, which the design reads
    # anyway (a NumPy array of one Python string per row costs more than their test)
    text = text_among_numbers(columns.factor(name)[1] if isinstance(stored.dtype, pd.StringDtype)
                              else stored)
    if not text:
        return ""
    column = columns[name]
    missing = (f"Make those values missing (NA or an empty cell in a CSV file; in pandas, "
               f"data[{name!r}] = pd.to_numeric(data[{name!r}], errors='coerce')): their rows "
               "are then dropped")
    if response:
        return (f"the response {name!r} holds numbers and text: "
                f"{describe_cells(column, text)}. {missing}")
    return (f"column {name!r} holds numbers and text: {describe_cells(column, text)}; as text "
            f"it would be a factor with one level per value. {missing}. Or write "
            f"factor({formula_name(str(name))}) in the formula if the column is categorical")


def _unchecked(texts: tuple[str, ...]) -> set[str]:
    """The names that ``texts`` read only as the variable of ``factor(x)``, ``ordered(x)`` or
    ``C(x, ...)``, or through their attributes and methods (``t.dt.dayofyear``)."""
    levels, values, code = set(), set(), set()
    for text in texts:
        for found, uses in zip((levels, values, code), _uses(text)):
            found |= uses
    return (levels | code) - values


@lru_cache(maxsize=256)
def _uses(text: str) -> tuple[frozenset, frozenset, frozenset]:
    """The names ``text`` reads (as levels, as values, as Python objects whose attributes it
    reads)."""
    uses: tuple[set, set, set] = (set(), set(), set())
    for term in Formula(text):
        for factor in term.factors:
            if factor.eval_method is Factor.EvalMethod.LOOKUP:
                uses[1].add(str(factor.expr))
            elif factor.eval_method is Factor.EvalMethod.PYTHON:
                _expression_uses(str(factor.expr), *uses)
    return tuple(frozenset(found) for found in uses)


def _expression_uses(expression: str, levels: set, values: set, code: set) -> None:
    """Add the names a Python expression reads to ``levels`` (a level function's variable),
    ``code`` (an attribute's object: ``t`` in ``t.dt.days``) or ``values`` (otherwise); the
    names it calls are none of them."""
    aliases: dict[str, str] = {}
    tree = ast.parse(sanitize_variable_names(expression, {}, aliases), mode="eval")
    nodes = list(ast.walk(tree))
    calls = [node for node in nodes if isinstance(node, ast.Call)]
    called = {id(call.func) for call in calls}
    wrapped = {id(call.args[0]) for call in calls if call.args
               and isinstance(call.func, ast.Name) and call.func.id in LEVEL_FUNCTIONS}
    objects = {id(node.value) for node in nodes if isinstance(node, ast.Attribute)}
    for node in nodes:
        if isinstance(node, ast.Name) and id(node) not in called:
            found = levels if id(node) in wrapped else code if id(node) in objects else values
            found.add(aliases.get(node.id, node.id))
