"""Elementwise numeric expressions of columns, evaluated without formulaic.

A formula's ``log(y)``, ``I(age^2)`` or ``sqrt(dose + 1)`` is a function of each row alone:
its value at a row depends on that row's values and on nothing learned from the others. Such an
expression is evaluated here directly with NumPy, on the rows the model uses, where formulaic
would spend 1.5 to 4 ms of a small model's 2 ms fit building and evaluating a model spec for
it. The functions are the very ones formulaic calls (those of the formula's context,
``formula.rfunctions.FORMULA_CONTEXT``, then formulaic's transforms), so the values are the
same to the last bit; evaluating on the complete rows only is the same as evaluating on all
the rows and dropping the incomplete ones afterwards, since each row's value is its own.

An expression qualifies when it is built only from:

* names of numeric columns (integers or floats, pandas' nullable ones without a missing
  value; a boolean or text column is formulaic's, which knows how to read it), integers
  narrower than 64 bits or unsigned read as 64-bit ones, as formulaic reads them
  (``design.materialize.wide_integers``);
* number literals;
* ``+``, ``-``, ``*``, ``/``, ``**`` and unary ``-`` and ``+``;
* calls, with positional arguments, of ``ELEMENTWISE`` functions: ``I``, ``log`` (with or
  without a base), ``exp``, ``sqrt``, ...

Anything else, stateful transforms (``scale``, ``poly``, ``center``, ``ns``) above all, is
evaluated by formulaic, and so is an expression whose values are not one finite float per row
(``log(0)``, a negative integer power of integers): formulaic's path raises the error that
names the column, or evaluates what it can.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from formulaic.transforms import TRANSFORMS

from ..formula.rfunctions import FORMULA_CONTEXT
from .frame import FrameColumns
from .materialize import wide_integers

__all__ = ["ELEMENTWISE", "NumericExpression", "numeric_expression"]

#: The functions an expression may call, by name, with the numbers of positional arguments
#: each takes: functions of each value alone.
ELEMENTWISE = {
    "I": (1,), "log": (1, 2), "exp": (1,), "exp2": (1,), "exp10": (1,), "log2": (1,),
    "log10": (1,), "log1p": (1,), "expm1": (1,), "sqrt": (1,), "abs": (1,), "sign": (1,),
    "floor": (1,), "ceiling": (1,), "sin": (1,), "cos": (1,), "tan": (1,),
}

_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_UNARY = (ast.USub, ast.UAdd)


@dataclass(frozen=True)
class NumericExpression:
    """An expression of numeric columns (see the module docstring).

    Attributes:
        text: its Python text, as formulaic writes it (``I(age ** 2)``).
        columns: the columns it reads, in order of first use.
    """

    text: str
    columns: tuple[str, ...]
    code: object  # the compiled expression

    def values(self, frame: FrameColumns) -> np.ndarray | None:
        """(n,) floats: the expression at each row of ``frame``, as formulaic evaluates it;
        None where a column is missing or not of numbers (``_numbers``), or the evaluation
        fails or gives other than one number per row. Infinite and NaN values are returned as they
        are (new data's for a prediction); a fit checks them."""
        namespace = {}
        for name in self.columns:
            if name not in frame:
                return None
            values = _numbers(frame.array(name))
            if values is None:
                return None
            namespace[name] = values
        try:
            with np.errstate(all="ignore"):
                result = eval(self.code, dict(_FUNCTIONS), namespace)  # noqa: S307 - checked
        except Exception:  # noqa: BLE001 - e.g. integers to a negative power: formulaic's
            return None
        if not isinstance(result, np.ndarray) or result.shape != (frame.shape[0],) \
                or result.dtype.kind not in "iuf":
            return None
        return result.astype(float, copy=False)


def _numbers(values) -> np.ndarray | None:
    """A column's values as the expression reads them: NumPy's integers or floats, integers
    as 64-bit ones (``wide_integers``), pandas' nullable ones without a missing value as
    NumPy's; None for any other column."""
    if isinstance(values, (pd.arrays.IntegerArray, pd.arrays.FloatingArray)):
        if values.isna().any():
            return None
        values = values.to_numpy(dtype=values.dtype.numpy_dtype)
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "iuf":
        return None
    if values.dtype.kind in "iu" and values.dtype != np.int64:  # as formulaic reads them
        values = wide_integers(pd.Series(values, copy=False)).to_numpy()
    return values


@lru_cache(maxsize=512)
def numeric_expression(text: str) -> NumericExpression | None:
    """The ``NumericExpression`` of formulaic's Python text of a factor, or None where the
    text is not one (a plain column name, a stateful transform, a comparison...)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return None
    called, read = set(), []
    if isinstance(tree.body, ast.Name) or not _qualifies(tree.body, called, read):
        return None
    if not read or called & set(read):  # a constant, or a name both read and called
        return None
    return NumericExpression(text, tuple(dict.fromkeys(read)),
                             compile(tree, "<formula>", "eval"))


def _qualifies(node, called: set, read: list) -> bool:
    """Whether ``node`` is built only from what the module docstring lists; the functions
    called and the names read are collected."""
    if isinstance(node, ast.Name):
        read.append(node.id)
        return True
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, _OPERATORS) and _qualifies(node.left, called, read) \
            and _qualifies(node.right, called, read)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, _UNARY) and _qualifies(node.operand, called, read)
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
#: transforms; no builtins.
_FUNCTIONS = {"__builtins__": {},
              **{name: FORMULA_CONTEXT.get(name, TRANSFORMS.get(name)) for name in ELEMENTWISE}}
