"""Elementwise numeric expressions of columns, evaluated without formulaic.

A formula's ``log(y)``, ``I(age^2)`` or ``sqrt(dose + 1)`` is a function of each row alone:
its value at a row depends on that row's values and on nothing learned from the others. Such an
expression is evaluated here directly with NumPy, on the rows the model uses, where formulaic
would spend 1.5 to 4 ms of a small model's 2 ms fit building and evaluating a model spec for
it. The functions are the very ones formulaic calls (those of the formula's context,
``formula.rfunctions.FORMULA_CONTEXT``, then formulaic's transforms), so on columns of 64-bit
floats the values are formulaic's to the last bit (other columns are read as R reads numbers,
below); evaluating on the complete rows only is the same as evaluating on all the rows and
dropping the incomplete ones afterwards, since each row's value is its own.

An expression qualifies when it is built only from:

* names of numeric columns (written as Python names, dotted as R's (``Days.x``) or
  backquoted; integers or floats, pandas' nullable ones without a missing
  value; a boolean or text column is formulaic's, which knows how to read it), read as
  64-bit floats, R's numbers: integer columns too, whose arithmetic in NumPy's integers
  would wrap around without a word (``I(t^2)`` of timestamps) or fail (``I(x^-1)``), and
  float32 columns, whose arithmetic would round to single precision;
* number literals;
* ``+``, ``-``, ``*``, ``/``, ``**``, ``%``, ``//``, unary ``-`` and ``+``, comparisons,
  and ``&``, ``|`` and ``~`` of them (``I(x * (x > 2))``); an expression whose value is
  logical (``I(x > 2)``) is a factor of levels FALSE and TRUE, as R codes a logical
  (``design.materialize``), or 0 and 1 as a response or an offset;
* calls, with positional arguments, of ``ELEMENTWISE`` functions: ``I``, ``log`` (with or
  without a base), ``exp``, ``sqrt``, ...

Anything else, stateful transforms (``scale``, ``poly``, ``center``, ``ns``) above all, is
evaluated by formulaic, and so is an expression whose values are not one finite float per row
(``log(0)``, ``sqrt(-1)``): formulaic's path raises the error that names the column.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from formulaic.transforms import TRANSFORMS

from ..formula.rcode import R_IN, R_OPERATOR_FUNCTIONS
from ..formula.rfunctions import FORMULA_CONTEXT
from .frame import FrameColumns

__all__ = ["ELEMENTWISE", "NumericExpression", "numeric_expression"]

#: The functions an expression may call, by name, with the numbers of positional arguments
#: each takes: functions of each value alone.
ELEMENTWISE = {
    "I": (1,), "log": (1, 2), "exp": (1,), "exp2": (1,), "exp10": (1,), "log2": (1,),
    "log10": (1,), "log1p": (1,), "expm1": (1,), "sqrt": (1,), "abs": (1,), "sign": (1,),
    "floor": (1,), "ceiling": (1,), "sin": (1,), "cos": (1,), "tan": (1,),
    **{name: (1,) for name in R_OPERATOR_FUNCTIONS - {R_IN}},  # R's operators: ``rcode``
}

_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod, ast.FloorDiv, ast.BitAnd,
              ast.BitOr)
_UNARY = (ast.USub, ast.UAdd, ast.Invert)
_COMPARISONS = (ast.Gt, ast.GtE, ast.Lt, ast.LtE, ast.Eq, ast.NotEq)


@dataclass(frozen=True)
class NumericExpression:
    """An expression of numeric columns (see the module docstring).

    Attributes:
        text: its Python text, as formulaic writes it (``I(age ** 2)``).
        columns: the columns it reads, in order of first use.
        functions: the functions it calls.
    """

    text: str
    columns: tuple[str, ...]
    functions: tuple[str, ...]
    code: object  # the compiled expression

    def __reduce__(self):
        """Pickled as its text (a code object is not picklable): a fit's encoding goes to
        other processes (an executor's refits, a saved fit)."""
        return numeric_expression, (self.text,)

    def values(self, frame: FrameColumns, functions: dict | None = None) -> np.ndarray | None:
        """(n,) floats, or bools for a logical expression (``x > 2``): the expression at each
        row of ``frame``; None where a column is missing or not of numbers (``_numbers``), or
        the evaluation fails or gives other than one number or bool per row. Infinite and NaN
        values are returned as they are (new data's for a prediction); a fit checks them.
        ``functions``: the functions it calls, by name (default: as the formula's evaluation
        finds them, ``_FUNCTIONS``)."""
        namespace = {}
        for position, name in enumerate(self.columns):
            if name not in frame:
                return None
            values = _numbers(frame.array(name))
            if values is None:
                return None
            namespace[f"_column{position}"] = values
        try:
            with np.errstate(all="ignore"):
                result = eval(self.code, {"__builtins__": {}, **(functions or _FUNCTIONS)},
                              namespace)  # noqa: S307 - only what _qualifies admits
        except Exception:  # noqa: BLE001 - e.g. integers to a negative power: formulaic's
            return None
        if not isinstance(result, np.ndarray) or result.shape != (frame.shape[0],) \
                or result.dtype.kind not in "iufb":
            return None
        return result if result.dtype.kind == "b" else result.astype(float, copy=False)


def _numbers(values) -> np.ndarray | None:
    """A column's values as the expression reads them: as 64-bit floats, R's numbers (so
    ``I(t^2)`` of timestamps in milliseconds, 1.7e12, is 2.9e24, not a wrapped-around 64-bit
    integer, and ``I(x^-1)`` of integers is 1/x), from NumPy's integers or floats or pandas'
    nullable ones without a missing value; None for any other column."""
    if isinstance(values, (pd.arrays.IntegerArray, pd.arrays.FloatingArray)):
        if values.isna().any():
            return None
        values = values.to_numpy(dtype=np.float64)
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "iuf":
        return None
    return values.astype(np.float64, copy=False)


@lru_cache(maxsize=512)
def numeric_expression(text: str) -> NumericExpression | None:
    """The ``NumericExpression`` of formulaic's Python text of a factor, or None where the
    text is not one (a plain column name, a stateful transform, a string...). A backquoted
    name (`` `a b` ``) and a dotted one (``Days.x``, which Python reads as an attribute) are
    read as the columns of those names."""
    quoted: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        quoted[f"_quoted{len(quoted)}"] = match.group(1)
        return f"_quoted{len(quoted) - 1}"

    try:
        tree = ast.parse(_BACKQUOTED.sub(placeholder, text.strip()), mode="eval")
    except SyntaxError:
        return None
    called, read = set(), []
    if isinstance(tree.body, (ast.Name, ast.Attribute)) \
            or not _qualifies(tree.body, called, read):
        return None
    read = [quoted.get(name, name) for name in read]
    if not read or called & set(read):  # a constant, or a name both read and called
        return None
    columns = tuple(dict.fromkeys(read))
    tree = ast.fix_missing_locations(_ColumnsByPosition(columns, quoted).visit(tree))
    return NumericExpression(text, columns, tuple(sorted(called)),
                             compile(tree, "<formula>", "eval"))


_BACKQUOTED = re.compile(r"`([^`]*)`")


def _dotted(node) -> str | None:
    """``a.b.c`` for Python's attribute c of the attribute b of the name a; else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


class _ColumnsByPosition(ast.NodeTransformer):
    """The tree with each column it reads (a name, a dotted name, a backquoted one's
    placeholder) as the name ``_column<i>``, i its position in ``columns``."""

    def __init__(self, columns: tuple[str, ...], quoted: dict[str, str]):
        self.columns, self.quoted = columns, quoted

    def _column(self, name: str) -> ast.Name:
        return ast.Name(f"_column{self.columns.index(self.quoted.get(name, name))}", ast.Load())

    def visit_Name(self, node):
        return self._column(node.id)

    def visit_Attribute(self, node):
        return self._column(_dotted(node))

    def visit_Call(self, node):  # the function's name is no column
        node.args = [self.visit(arg) for arg in node.args]
        return node


def _qualifies(node, called: set, read: list) -> bool:
    """Whether ``node`` is built only from what the module docstring lists; the functions
    called and the columns read are collected."""
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted(node)
        if name is not None:
            read.append(name)
        return name is not None
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, _OPERATORS) and _qualifies(node.left, called, read) \
            and _qualifies(node.right, called, read)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, _UNARY) and _qualifies(node.operand, called, read)
    if isinstance(node, ast.Compare):
        return all(isinstance(op, _COMPARISONS) for op in node.ops) \
            and all(_qualifies(side, called, read) for side in [node.left, *node.comparators])
    if isinstance(node, ast.Call):
        function = node.func.id if isinstance(node.func, ast.Name) else None
        if function not in ELEMENTWISE or node.keywords \
                or len(node.args) not in ELEMENTWISE[function]:
            return False
        called.add(function)
        return all(not isinstance(arg, ast.Starred) and _qualifies(arg, called, read)
                   for arg in node.args)
    return False


#: Each function as the formula's evaluation finds it: its context first, then formulaic's
#: transforms.
_FUNCTIONS = {name: FORMULA_CONTEXT.get(name, TRANSFORMS.get(name)) for name in ELEMENTWISE}
