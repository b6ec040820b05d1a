"""Functions that formulas may call under R's names, as lme4 users write them.

formulaic already provides C, I, log, exp, center, scale, poly and more, and numpy is available
as ``np`` (``np.log1p(x)``). This adds R's names for the common ones: ``factor(x)`` (x as a
categorical variable with sorted levels, as R's ``factor``; columns are named ``factor(x)5`` as
in R; ``factor(x, levels = c(3, 1, 2))`` in the order given, ``labels = c(...)`` renaming
them), ``ordered(x)`` (the same,
ordered: coded by polynomial contrasts, ``ordered(x).L``), ``relevel(x, ref = "b")``,
``as.factor``, ``as.numeric`` (a factor's codes 1 to k, as R), ``as.integer``,
``as.character``, ``interaction(a, b)``, ``c(...)``, ``ifelse``, ``pmin``, ``pmax``,
``ns(x, df)`` (R's natural splines: ``formula.splines``),
``log(x, base)`` (R's: formulaic's ``log`` is NumPy's), and ``sqrt``, ``log1p``, ``log2``,
``log10``, ``expm1``, ``abs``, ``sign``, ``floor``, ``ceiling``, ``sin``, ``cos``, ``tan``; and
R's constants ``TRUE``, ``FALSE``, ``pi`` and ``NA``
(``poly(x, 3, raw = TRUE)``). New data for predictions are encoded with the levels of the fit's
data, like any categorical variable. ``C(x, coding)`` takes formulaic's codings and R's
(``contr.sum``...), with R's column names (``formula.codings``). ``scale``, ``center``,
``standardize`` and ``poly`` treat missing values as R does (``formula.transforms``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import FormulaError
from .codings import CODING_CONTEXT, treatment_coded
from .parse import R_DOTTED_FUNCTIONS
from .rcode import R_GROUP, R_IN, R_LOGICAL, R_NOT, R_NUMBER, R_PAREN
from .splines import ns
from .transforms import TRANSFORM_CONTEXT

__all__ = ["FORMULA_CONSTANTS", "FORMULA_CONTEXT", "FORMULA_FUNCTIONS", "FORMULA_NAMES",
           "LOGICAL_LEVELS", "TREATMENT_CONTEXT", "factor", "is_logical",
           "level_label", "log", "ordered", "r_number", "relevel"]

#: The labels of a logical variable's levels, as R names them (``bTRUE``), in R's order.
LOGICAL_LEVELS = ("FALSE", "TRUE")


def factor(values, levels=None, labels=None) -> pd.Series:
    """The values as a categorical variable, as R's ``factor``: the levels are the sorted
    distinct values (logical values, ``is_logical``, are labelled FALSE and TRUE), or a
    categorical's own levels that occur, in its order (an ordered one stays ordered), or
    ``levels`` in their order (``factor(dose, levels = c(10, 5, 1))``). ``labels``, as R's,
    renames the levels in their order (``factor(late, labels = c("early", "late"))``); a
    label given twice merges its levels, as in R.

    Raises:
        FormulaError: a value is not among ``levels`` (R would make it missing and drop its
            row; here the levels must name every value), ``levels`` repeats one, or
            ``labels`` are not one per level (new data for a prediction that lack a level:
            give ``levels`` too).
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if labels is not None:
        return _labelled(factor(series, levels), np.atleast_1d(labels).tolist(), levels)
    if levels is not None:
        return _with_levels(series, np.atleast_1d(levels).tolist())
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


def _labelled(series: pd.Series, labels: list, levels) -> pd.Series:
    """``factor(x, labels = ...)``: the categorical ``series`` with its levels renamed, in
    order; levels of the same label merged."""
    categories = [level_label(c) for c in series.cat.categories]
    if len(labels) != len(categories):
        how = "" if levels is not None else (
            "; where the data (new data for a prediction) may lack a level, name the levels "
            "too: factor(x, levels = c(...), labels = c(...))")
        raise FormulaError(f"factor(..., labels = ...) gives {len(labels)} labels "
                           f"({', '.join(map(level_label, labels))}) for the "
                           f"{len(categories)} levels {', '.join(categories)}{how}")
    texts = [level_label(label) for label in labels]
    unique = list(dict.fromkeys(texts))
    recode = np.array([unique.index(text) for text in texts] + [-1])  # -1: a missing value
    codes = recode[series.cat.codes.to_numpy()]
    return pd.Series(pd.Categorical.from_codes(codes, unique,
                                               ordered=series.cat.ordered),
                     index=series.index)


def _with_levels(series: pd.Series, levels: list) -> pd.Series:
    """``factor(x, levels)``: the categorical of these levels, labelled as R prints them."""
    if len(set(levels)) != len(levels):
        raise FormulaError("factor(..., levels = ...) repeats a level: "
                           + ", ".join(level_label(v) for v in levels))
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    codes = pd.Index(levels).get_indexer(series)
    outside = (codes < 0) & series.notna().to_numpy()
    if outside.any():
        labels = ", ".join(level_label(v) for v in levels)
        raise FormulaError(f"factor(..., levels = ...): the value "
                           f"{level_label(series[outside].iloc[0])} is not among the levels "
                           f"({labels}); name every value's level, or drop those rows from "
                           "the data")
    return pd.Series(pd.Categorical.from_codes(codes, [level_label(v) for v in levels]),
                     index=series.index)


def relevel(values, ref) -> pd.Series:
    """R's ``relevel(f, ref)``: ``factor(f)`` with the level ``ref`` (a label as R prints it,
    ``"3"`` of a column of numbers, or a position from 1) first, the reference of treatment
    contrasts; the others in their order.

    A label that none of the values has, or a position past their levels, leaves the levels
    as they are: new data for a prediction may lack the reference, and are coded with the
    fit's levels; the fit's data are checked before (``design.build``: a ``FormulaError``
    names the levels)."""
    series = factor(values)
    labels = list(series.cat.categories)
    if isinstance(ref, str):  # a label as R prints it: "3" of factor(Days), whose levels are 0..9
        texts = [level_label(label) for label in labels]
        if ref not in texts:
            return series
        position = texts.index(ref)
    elif isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        if not 1 <= ref <= len(labels):
            return series
        position = int(ref) - 1
    else:
        raise FormulaError(f"relevel(..., ref = {ref!r}): ref is a level's label or its "
                           "position, from 1")
    return series.cat.reorder_categories([labels[position]] + labels[:position]
                                         + labels[position + 1:])


def interaction(*factors, sep: str = ".", drop: bool = False) -> pd.Series:
    """R's ``interaction(a, b, ...)``: the factor of the combinations of the factors' levels,
    labelled ``a.b`` (``sep``), the first factor's level varying fastest, as R orders them;
    ``drop`` keeps only the combinations that occur (a model's rows keep only those anyway, as
    R's model frame drops unused levels). A combination with a missing value is missing."""
    if not factors:
        raise FormulaError("interaction() needs one factor or more")
    parts = [factor(f) for f in factors]
    index = parts[0].index
    codes = np.zeros(len(index), dtype=np.int64)
    labels = [""]
    for k, part in enumerate(parts):
        part_codes = part.cat.codes.to_numpy().astype(np.int64)  # int8 below 128 levels
        codes = np.where((codes < 0) | (part_codes < 0), -1, codes + part_codes * len(labels))
        labels = [f"{low}{sep}{level}" if k else str(level)
                  for level in part.cat.categories for low in labels]
    combined = pd.Series(pd.Categorical.from_codes(codes, labels), index=index)
    return combined.cat.remove_unused_categories() if drop else combined


def as_numeric(values) -> pd.Series:
    """R's ``as.numeric``: numbers as they are, logical values as 0 and 1, text that spells
    numbers as those numbers, and a categorical's codes, 1 to k, as R gives a factor's (not
    the numbers its labels spell).

    Raises:
        FormulaError: text that is not numbers (R makes it missing).
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        return pd.Series(np.where(codes < 0, np.nan, codes + 1.0), index=series.index)
    try:
        return pd.to_numeric(series.astype(object) if is_logical(series) else series,
                             errors="raise").astype(float)
    except (TypeError, ValueError):
        name = series.name or "x"
        raise FormulaError(f"as.numeric({name}): text that is not a number, which R makes "
                           "missing; give the data a column of numbers (the codes of its "
                           f"levels: data[{name!r}].astype('category').cat.codes + 1; a code "
                           "computed in the formula would be recomputed from new data's "
                           "own levels)") from None


def as_integer(values) -> pd.Series:
    """R's ``as.integer``: ``as.numeric`` truncated towards 0."""
    return np.trunc(as_numeric(values))


def as_character(values) -> pd.Series:
    """R's ``as.character``: the values as text (a factor of them sorts as text: "10"
    before "9")."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    text = series.astype(object).map(level_label)
    return text.where(series.notna(), None)


def ifelse(test, yes, no) -> pd.Series:
    """R's ``ifelse(test, yes, no)`` of numbers: ``yes`` where ``test`` holds, ``no`` where
    it does not, missing where it is missing (``ifelse(dose > 0, log(dose), 0)``).

    Raises:
        FormulaError: ``yes`` or ``no`` is text (a factor from a condition is
            ``factor(test, labels = c("no", "yes"))``).
    """
    series = test if isinstance(test, pd.Series) else pd.Series(np.atleast_1d(test))
    if _is_text(series):
        raise FormulaError("ifelse(test, yes, no) takes a logical test (or numbers), not text "
                           "or a factor; compare the text first (f == \"a\")")
    missing = series.isna().to_numpy()
    try:
        chosen = np.where(series.fillna(False).to_numpy(dtype=bool),
                          np.asarray(yes, dtype=float), np.asarray(no, dtype=float))
    except (TypeError, ValueError):
        raise FormulaError("ifelse(test, yes, no) takes numbers for yes and no; for levels, "
                           'write factor(test, labels = c("no", "yes"))') from None
    values = np.where(missing, np.nan, chosen)
    if len(series) == 1:  # R's result has the test's length: one value, yes's or no's first
        return float(np.ravel(values)[0])
    return pd.Series(values, index=series.index)


def pmin(*values) -> np.ndarray:
    """R's ``pmin(x, y, ...)``: the elementwise minimum, missing where any value is."""
    return np.minimum.reduce(_parallel(values))


def pmax(*values) -> np.ndarray:
    """R's ``pmax(x, y, ...)``: the elementwise maximum, missing where any value is."""
    return np.maximum.reduce(_parallel(values))


def _parallel(values) -> list[np.ndarray]:
    """The arguments of ``pmin`` and ``pmax`` as floats of one shape."""
    return np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values))


def r_number_of(values):
    """R's arithmetic operand: a logical's values as 0 and 1 (a missing one NaN); anything
    else as it is (``formula.rcode``)."""
    if isinstance(values, (bool, np.bool_)):
        return float(values)
    if isinstance(values, np.ndarray):  # (a comparison's, on the numeric fast path)
        return values.astype(float) if values.dtype.kind == "b" else values
    if is_logical(values):
        return as_numeric(values)
    if _is_text(values):
        raise FormulaError("arithmetic (+ - * / ^ %% %/%, unary -) takes numbers or logical "
                           "values, not text or a factor, as in R; as.numeric(x) gives a "
                           "factor's codes")
    return values


def r_logical_of(values):
    """An operand of R's ``&`` and ``|``: a logical as it is, a number as whether it is not
    0 (``formula.rcode``)."""
    if isinstance(values, (bool, np.bool_)) or is_logical(values):
        return values
    if _is_text(values):
        raise FormulaError("&, | and ! take logical values or numbers, not text or a factor, "
                           "as in R; compare the text first (f == \"a\")")
    series = values if isinstance(values, pd.Series) else None
    logical = np.asarray(values) != 0
    return pd.Series(logical, index=series.index) if series is not None else logical


def _is_text(values) -> bool:
    """Text or a categorical (pandas' string, object or category dtype; NumPy's text)."""
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        return isinstance(values, str)
    if isinstance(dtype, (pd.CategoricalDtype, pd.StringDtype)):
        return True
    return getattr(dtype, "kind", "") in "OUS"


def r_not(values):
    """R's ``!``: the negation of a logical, and of a number whether it is 0."""
    logical = r_logical_of(values)
    if isinstance(logical, (bool, np.bool_)):  # (Python's ~True is -2)
        return not logical
    return ~logical


def _identity(values):
    """The values (``rcode``'s grouping and the user's parentheses)."""
    return values


def r_in(values, table) -> pd.Series:
    """R's ``x %in% table``: whether each value is among the table's (a missing value is
    among them only where the table has one)."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.atleast_1d(values))
    return pd.Series(series.isin(np.atleast_1d(table).tolist()).to_numpy(), index=series.index)


def r_c(*values) -> list:
    """R's ``c(...)``: the values, and those of lists among them, as one list."""
    out: list = []
    for value in values:
        out.extend(value if isinstance(value, (list, tuple, np.ndarray, pd.Series))
                   else [value])
    return out


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
    """A level's label as R prints it (``as.character``): a float with up to 15 significant
    digits, in fixed notation unless the scientific one is shorter (``r_number``: factor(x)
    of a double column has levels "1", "2.5", "1e+05", "1e-05"), a logical value as FALSE or
    TRUE, anything else as ``str`` (an integer column's 100000 stays "100000", as R's)."""
    if isinstance(value, float):
        return r_number(value)
    if isinstance(value, (bool, np.bool_)):
        return LOGICAL_LEVELS[int(value)]
    return str(value)


def r_number(value: float) -> str:
    """A number as R prints it in an expression (``format`` with 15 significant digits): in
    fixed notation unless the scientific one is shorter (100000 as 1e+05, 0.0001 as 1e-04,
    1000 as 1000, 2.0 as 2)."""
    value = float(value)
    if not np.isfinite(value):
        return "Inf" if value > 0 else "-Inf" if value < 0 else "NaN"
    rounded = float(f"{value:.15g}")
    digits = next(d for d in range(1, 16) if float(f"{value:.{d}g}") == rounded)
    scientific = f"{rounded:.{digits - 1}e}"
    fixed = np.format_float_positional(rounded, precision=digits, unique=False,
                                       fractional=False, trim="-")
    return fixed if len(fixed) <= len(scientific) else scientific


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
    values = as_double(values)
    if base is None:
        return np.log(values)
    return np.log(values) / np.log(base)


def as_double(values):
    """Numbers as R's doubles: logical values and integers as 64-bit floats (NumPy's square
    root of a bool is a 16-bit float, 0.09998 for R's sqrt(TRUE) * 0.1, and an integer to a
    negative power is an error), the rest as it is."""
    if isinstance(values, (bool, np.bool_, int, np.integer)):
        return float(values)
    dtype = getattr(values, "dtype", None)
    if dtype is not None and (getattr(dtype, "kind", "") in "biu"
                              or pd.api.types.is_bool_dtype(dtype)
                              or pd.api.types.is_integer_dtype(dtype)):
        return values.astype(float)
    return values


def _elementwise(ufunc):
    """R's math function of NumPy's ``ufunc``: of R's doubles (``as_double``)."""
    def function(values):
        return ufunc(as_double(values))
    function.__name__ = function.__qualname__ = ufunc.__name__
    function.__doc__ = f"NumPy's {ufunc.__name__} of the values as R's doubles."
    return function


def ordered(values) -> pd.Series:
    """The values as an ordered categorical variable, as R's ``ordered``: ``factor``'s levels,
    in order (coded by polynomial contrasts, as every ordered factor)."""
    return factor(values).cat.as_ordered()


FORMULA_FUNCTIONS = {
    "factor": factor,
    "ordered": ordered,
    "relevel": relevel,
    "interaction": interaction,
    "ns": ns,
    "c": r_c,
    "ifelse": ifelse,
    "pmin": pmin,
    "pmax": pmax,
    # R's names with a dot, under the names formulaic reads (``R_DOTTED_FUNCTIONS``)
    **{R_DOTTED_FUNCTIONS[name]: function for name, function in {
        "as.factor": factor, "as.numeric": as_numeric, "as.integer": as_integer,
        "as.character": as_character}.items()},
    "log": log,
    # R's math of R's doubles (formulaic's exp is NumPy's)
    **{name: _elementwise(ufunc) for name, ufunc in {
        "exp": np.exp, "sqrt": np.sqrt, "log1p": np.log1p, "log2": np.log2,
        "log10": np.log10, "expm1": np.expm1, "abs": np.abs, "sign": np.sign,
        "floor": np.floor, "ceiling": np.ceil, "sin": np.sin, "cos": np.cos,
        "tan": np.tan}.items()},
}

#: R's constants: its logical values, pi (sin(2 * pi * Time)) and NA (a value computed as
#: missing is an error that names its rows: ``design.build``)
FORMULA_CONSTANTS = {"TRUE": True, "FALSE": False, "pi": np.pi, "NA": np.nan}

#: R's operators on R's values (``formula.rcode``), under names no formula writes
R_OPERATOR_CONTEXT = {R_NUMBER: r_number_of, R_LOGICAL: r_logical_of, R_NOT: r_not,
                      R_IN: r_in, R_GROUP: _identity, R_PAREN: _identity}
#: The names a formula can use besides the data's columns and formulaic's own transforms
#: (a column of the data with one of these names takes precedence).
FORMULA_NAMES = {**FORMULA_FUNCTIONS, **FORMULA_CONSTANTS, **R_OPERATOR_CONTEXT}
FORMULA_CONTEXT = {"np": np, **FORMULA_NAMES, **CODING_CONTEXT, **TRANSFORM_CONTEXT}

#: The same, with the coding of every ``C(x, coding)`` replaced by treatment contrasts.
TREATMENT_CONTEXT = {**FORMULA_CONTEXT, "C": treatment_coded}
