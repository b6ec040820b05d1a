"""Checks of the arguments of the public functions, worded one way (the rule: ``errors``).

Each check returns the value in its plain form (a Python bool, int, float or str) or raises an
``ArgumentTypeError`` (a ``TypeError``) for a value of the wrong type and a ``ValueError`` for a
value of the right type outside what is allowed. Every message reads "<argument> must be <what
is allowed>, not <value>", e.g. ``level must be a number between 0 and 1 (exclusive), such as
0.95, not 95``; the value of a wrong type is followed by its type's name.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import numbers
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import ArgumentTypeError, DataError

__all__ = ["keyword_hints", "check_bool", "check_choice", "check_executor", "check_frame",
           "check_integer",
           "check_level", "check_n_jobs", "check_number", "check_optional_string", "check_seed",
           "check_string", "check_strings", "is_dask_frame", "shown", "type_error",
           "type_name", "value_error"]

SHOWN_LENGTH = 60  # characters of a value shown in a message; longer ones are cut


def shown(value, with_type: bool = False) -> str:
    """The value as messages show it: its repr (numpy scalars as Python's), cut to
    ``SHOWN_LENGTH`` characters, optionally followed by its type's name; an object whose repr
    spans lines or is an address (a DataFrame, a model) by its type alone."""
    plain = value.item() if isinstance(value, np.generic) else value
    text = repr(plain)
    if "\n" in text or text.startswith("<"):
        return f"a {type_name(value)}"
    if len(text) > SHOWN_LENGTH:
        text = text[:SHOWN_LENGTH - 3] + "..."
    return f"{text} ({type_name(value)})" if with_type else text


def type_name(value) -> str:
    """The type's name, with its package's where that is not Python's own, NumPy's or
    pandas' (a Dask "DataFrame" is not pandas' one: ``dask DataFrame``)."""
    package = type(value).__module__.split(".")[0]
    name = type(value).__name__
    return name if package in ("builtins", "numpy", "pandas") else f"{package} {name}"


def type_error(name: str, allowed: str, value) -> ArgumentTypeError:
    """The error for an argument of the wrong type."""
    return ArgumentTypeError(f"{name} must be {allowed}, not {shown(value, with_type=True)}")


def value_error(name: str, allowed: str, value,
                error: type[ValueError] = ValueError) -> ValueError:
    """The error for an argument of the right type and a value that is not allowed."""
    return error(f"{name} must be {allowed}, not {shown(value)}")


def is_dask_frame(data) -> bool:
    """Whether ``data`` is a Dask DataFrame (without importing Dask when it is not loaded)."""
    module = type(data).__module__
    return module.startswith("dask.") or module.startswith("dask_expr")


#: keyword arguments of lme4's and nlme's functions, with what to write here instead
R_KEYWORDS = {
    "REML": "reml=True or reml=False",
    "control": "settings=mm.OptSettings(...)",
    "subset": "the rows selected in the data frame before the call",
    "na_action": "nothing: rows with a missing value in a column the model uses are dropped, "
                 "and counted in a warning",
    "method": "reml=False for ML (method = \"ML\") or reml=True (\"REML\")",
    "start": "settings=mm.OptSettings(...) (the start is lme4's, theta = identity)",
    "verbose": "progress=True (Dask data) or the fit's optsummary",
    "offset": "offset(x) in the formula",
    "contrasts": "C(f, contr.sum) in the formula (or a categorical column's own coding)",
    "re_form": "include_random=False for re.form = NA, True for NULL, or a list of grouping "
               "factors",
    "allow_new_levels": "new_levels=\"population\"",
    "use_u": "include_random=True",
    "nsim": "n=",
}


def keyword_hints(function):
    """``function`` with its unknown keyword arguments refused by name, saying what to write
    instead: lme4's ``REML=FALSE`` is ``reml=False`` here (``R_KEYWORDS``), and a misspelt
    name gets its nearest (``wieghts=`` -> ``weights=``). Python's own TypeError says only
    "unexpected keyword argument"."""
    parameters = inspect.signature(function).parameters
    named = [name for name, p in parameters.items()
             if p.kind is not p.VAR_POSITIONAL and name != "self"]

    @functools.wraps(function)
    def checked(*args, **kwargs):
        for key in kwargs:
            if key not in parameters:
                raise ArgumentTypeError(_unknown_keyword(function.__name__, key, named))
        return function(*args, **kwargs)

    return checked


def _unknown_keyword(function: str, key: str, named: list[str]) -> str:
    text = f"{function}() has no argument {key!r}"
    if key in R_KEYWORDS:
        return f"{text}; for R's {key}=, write {R_KEYWORDS[key]}"
    near = difflib.get_close_matches(key.lower(), named, n=1, cutoff=0.6)
    if near:
        return f"{text}; did you mean {near[0]}=?"
    return f"{text}; its arguments are {', '.join(named)}"


def check_frame(value, name: str = "data") -> pd.DataFrame:
    """A pandas DataFrame, as given, or one made of a dict (any mapping) of columns; a dict
    of single values is one row (R's ``data.frame(Days = 1, Subject = "308")``).

    Raises:
        ArgumentTypeError: anything else (a list, an array, a Series...): pandas would make a
            frame of columns 0, 1, ... of it, whose names no formula uses.
        DataError: a mapping pandas cannot make a frame of (columns of different lengths);
            a frame whose columns have names of several levels (a MultiIndex, as after
            ``groupby().agg``), which no formula names.
    """
    if isinstance(value, pd.DataFrame):
        if isinstance(value.columns, pd.MultiIndex):
            first = value.columns[0]
            raise DataError(f"{name}: the columns have names of {value.columns.nlevels} levels "
                            f"(a MultiIndex, e.g. {first!r}), which a formula cannot name; "
                            f"flatten them first, e.g. {name}.columns = ['_'.join(map(str, c)) "
                            f"for c in {name}.columns]")
        return value
    if is_dask_frame(value):
        raise ArgumentTypeError(
            f"{name} must be a pandas DataFrame or a dict of columns, not a Dask DataFrame: "
            f"compute it first ({name}.compute()), or fit the model to the Dask DataFrame, "
            "whose results are computed on its partitions")
    if not isinstance(value, Mapping):
        raise type_error(name, "a pandas DataFrame or a dict of columns", value)
    if value and all(np.ndim(column) == 0 for column in value.values()):
        value = {key: [column] for key, column in value.items()}
    lengths = {key: len(column) for key, column in value.items() if np.ndim(column) > 0}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{key}: {length}" for key, length in lengths.items())
        raise DataError(f"{name}: the columns of this dict have different lengths ({listed}); "
                        "give every column one value per row")
    try:
        return pd.DataFrame(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: cannot make a data frame of this dict of columns: "
                        f"{exc}") from None


def check_bool(value, name: str) -> bool:
    """True or False (numpy booleans too); not strings, numbers or None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise type_error(name, "True or False", value)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_integer(value, name: str, minimum: int = 1, allowed: str | None = None) -> int:
    """An integer (numpy integers too, not bools or floats) of at least ``minimum``;
    ``allowed`` words what is allowed (default: a positive integer, or "an integer >= m")."""
    if allowed is None:
        allowed = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}")
    if not _is_integer(value):
        raise type_error(name, allowed, value)
    if value < minimum:
        raise value_error(name, allowed, value)
    return int(value)


def check_number(value, name: str, minimum: float | None = None, *,
                 exclusive: bool = False, allowed: str | None = None,
                 error: type[ValueError] = ValueError) -> float:
    """A finite real number (numpy numbers too, not bools or strings), at least ``minimum``
    (above it when ``exclusive``); ``error`` is the class raised for a value out of range
    (a ``ValueError`` subclass, such as ``DataError`` for a description of the data)."""
    if allowed is None:
        allowed = ("a finite number" if minimum is None else
                   "a positive number" if minimum == 0 and exclusive else
                   "a non-negative number" if minimum == 0 else
                   f"a number {'>' if exclusive else '>='} {minimum:g}")
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise type_error(name, allowed, value)
    number = float(value)
    below = minimum is not None and (number <= minimum if exclusive else number < minimum)
    if not math.isfinite(number) or below:
        raise value_error(name, allowed, value, error)
    return number


def check_level(value, name: str = "level") -> float:
    """A confidence level: a number strictly between 0 and 1."""
    allowed = "a number between 0 and 1 (exclusive), such as 0.95"
    level = check_number(value, name, allowed=allowed)
    if not 0 < level < 1:
        raise value_error(name, allowed, value)
    return level


def check_choice(value, name: str, choices: Iterable):
    """One of ``choices`` (strings, and None when it is one of them); a value of another type
    is a TypeError, an unknown string a ValueError."""
    choices = tuple(choices)
    allowed = "one of " + ", ".join(map(repr, choices))
    if value is None and None in choices:
        return None
    if not isinstance(value, str):
        raise type_error(name, allowed, value)
    if value not in choices:
        raise value_error(name, allowed, value)
    return value


def check_string(value, name: str, allowed: str = "a string") -> str:
    """A non-empty string."""
    if not isinstance(value, str):
        raise type_error(name, allowed, value)
    if not value.strip():
        raise value_error(name, allowed, value)
    return value


def check_optional_string(value, name: str, allowed: str = "a string") -> str | None:
    """None or a non-empty string."""
    return None if value is None else check_string(value, name, f"None or {allowed}")


def check_strings(value, name: str, allowed: str = "a string or a list of strings",
                  empty: bool = False) -> list:
    """A string or a list (tuple, ...) of strings, as a list; an empty list only when
    ``empty``."""
    if isinstance(value, str):
        return [check_string(value, name, allowed)]
    if not isinstance(value, Iterable) or isinstance(value, (bytes, dict)):
        raise type_error(name, allowed, value)
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise type_error(name, allowed, value)
    if not items and not empty:
        raise value_error(name, allowed, items)
    return items


def check_seed(value, name: str = "seed", generators: bool = False):
    """None, a non-negative integer or a ``numpy.random.SeedSequence`` (and, with
    ``generators``, a ``numpy.random.Generator`` or ``BitGenerator``), as it was given."""
    kinds = (np.random.SeedSequence,) + (
        (np.random.Generator, np.random.BitGenerator) if generators else ())
    allowed = ("None, a non-negative integer or a numpy SeedSequence" if not generators else
               "None, a non-negative integer, or a numpy SeedSequence or Generator")
    if value is None or isinstance(value, kinds):
        return value
    check_integer(value, name, minimum=0, allowed=allowed)
    return value


def check_n_jobs(value, name: str = "n_jobs") -> int:
    """A number of processes: a positive integer, or -1 for all CPUs."""
    allowed = "a positive integer or -1 (all CPUs)"
    n_jobs = check_integer(value, name, minimum=-1, allowed=allowed)
    if n_jobs == 0:
        raise value_error(name, allowed, value)
    return n_jobs


def check_executor(value, name: str = "executor"):
    """None or a ``concurrent.futures.Executor`` (anything with a ``submit`` method, such as a
    Dask cluster's ``Client.get_executor()``)."""
    if value is None or callable(getattr(value, "submit", None)):
        return value
    raise type_error(name, "None or a concurrent.futures executor (with a submit method)",
                      value)
