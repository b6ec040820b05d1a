"""Functions that formulas may call under R's names, as lme4 users write them.

formulaic already provides C, I, log, exp, center, scale, poly and more, and numpy is available
as ``np`` (``np.log1p(x)``). This adds R's names for the common ones: ``factor(x)`` (x as a
categorical variable with sorted levels, as R's ``factor``; columns are named ``factor(x)5`` as
in R), ``ordered(x)`` (the same, ordered: coded by polynomial contrasts, ``ordered(x).L``),
``log(x, base)`` (R's: formulaic's ``log`` is NumPy's), and ``sqrt``, ``log1p``, ``log2``,
``log10``, ``expm1``, ``abs``, ``sign``, ``floor``, ``ceiling``, ``sin``, ``cos``, ``tan``; and
R's logical constants ``TRUE`` and ``FALSE``
(``poly(x, 3, raw = TRUE)``). New data for predictions are encoded with the levels of the fit's
data, like any categorical variable. ``C(x, coding)`` takes formulaic's codings and R's
(``contr.sum``...), with R's column names (``formula.codings``). ``scale``, ``center``,
``standardize`` and ``poly`` treat missing values as R does (``formula.transforms``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .codings import CODING_CONTEXT, treatment_coded
from .transforms import TRANSFORM_CONTEXT

__all__ = ["FORMULA_CONSTANTS", "FORMULA_CONTEXT", "FORMULA_FUNCTIONS", "FORMULA_NAMES",
           "LOGICAL_LEVELS", "TREATMENT_CONTEXT", "factor", "is_logical", "level_label", "log",
           "ordered"]

#: The labels of a logical variable's levels, as R names them (``bTRUE``), in R's order.
LOGICAL_LEVELS = ("FALSE", "TRUE")


def factor(values) -> pd.Series:
    """The values as a categorical variable, as R's ``factor``: the levels are the sorted
    distinct values (logical values, ``is_logical``, are labelled FALSE and TRUE), or a
    categorical's own levels that occur, in its order (an ordered one stays ordered)."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if is_logical(series):
        series = series.astype(object).map(dict(zip((False, True), LOGICAL_LEVELS)))
    elif isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.remove_unused_categories()
    levels = _sorted(series.dropna().unique())
    if pd.api.types.is_float_dtype(series):  # labelled as R prints numbers: 1, not 1.0
        codes = np.searchsorted(np.asarray(levels, dtype=float), series.to_numpy(dtype=float))
        codes = np.where(series.isna().to_numpy(), -1, codes)
        return pd.Series(pd.Categorical.from_codes(codes, [level_label(v) for v in levels]),
                         index=series.index)
    return pd.Series(pd.Categorical(series, categories=levels), index=series.index)


def is_logical(values) -> bool:
    """Values R would read as logical: of NumPy's or pandas' bool dtype (pandas' nullable
    ``boolean`` included), Python objects that are all bools but missing ones, or a
    categorical of bools (a column cast to the levels of all the partitions of the data)."""
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        return False
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories
        return len(categories) > 0 and pd.api.types.infer_dtype(categories) == "boolean"
    if dtype == object:  # the first value that is not missing decides, unless a bool
        for value in np.asarray(values, dtype=object):
            if value is None or value is pd.NA or (isinstance(value, float) and value != value):
                continue
            if not isinstance(value, (bool, np.bool_)):
                return False  # text, most often: no pass over the column
            break
        return pd.api.types.infer_dtype(values, skipna=True) == "boolean"
    return pd.api.types.is_bool_dtype(dtype)


def level_label(value) -> str:
    """A level's label as R prints it: a whole float without its ".0" (factor(x) of a
    double column has levels "1", "2"), a logical value as FALSE or TRUE, anything else as
    ``str``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return LOGICAL_LEVELS[int(value)]
    return str(value)


def _sorted(values) -> list:
    """The values sorted; numbers before text when there are both (a column of numbers with
    some text, made categorical)."""
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=lambda value: (isinstance(value, str), str(value)
                                                 if isinstance(value, str) else value))


def log(values, base=None):
    """The natural logarithm, or the logarithm to ``base``, as R's ``log(x, base)``
    (formulaic's own ``log`` is NumPy's, whose second argument is its output array)."""
    if base is None:
        return np.log(values)
    return np.log(values) / np.log(base)


def ordered(values) -> pd.Series:
    """The values as an ordered categorical variable, as R's ``ordered``: ``factor``'s levels,
    in order (coded by polynomial contrasts, as every ordered factor)."""
    return factor(values).cat.as_ordered()


FORMULA_FUNCTIONS = {
    "factor": factor,
    "ordered": ordered,
    "log": log,
    "sqrt": np.sqrt,
    "log1p": np.log1p,
    "log2": np.log2,
    "log10": np.log10,
    "expm1": np.expm1,
    "abs": np.abs,
    "sign": np.sign,
    "floor": np.floor,
    "ceiling": np.ceil,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
}

FORMULA_CONSTANTS = {"TRUE": True, "FALSE": False}

#: The names a formula can use besides the data's columns and formulaic's own transforms
#: (a column of the data with one of these names takes precedence).
FORMULA_NAMES = {**FORMULA_FUNCTIONS, **FORMULA_CONSTANTS}
FORMULA_CONTEXT = {"np": np, **FORMULA_NAMES, **CODING_CONTEXT, **TRANSFORM_CONTEXT}

#: The same, with the coding of every ``C(x, coding)`` replaced by treatment contrasts.
TREATMENT_CONTEXT = {**FORMULA_CONTEXT, "C": treatment_coded}
