"""Exceptions and warnings raised for the user's input.

Every error names what was wrong (the column, the formula position or the value) and says what
to do. They derive from ValueError so that ``except ValueError`` keeps working.

Which error for which mistake:

* the formula (its text, or a name it uses that the data lack): ``FormulaError``;
* the data (a data frame that cannot be read or fitted, a column of the wrong kind, new data
  for a prediction, the weights' values, a gauge study's tolerance, which describes the
  measurements): ``DataError``;
* any other argument of a public function, method or command-line option: an
  ``ArgumentTypeError`` (a ``TypeError``) when its type is wrong (a string for a boolean, a
  float for a count; 95 for a level is of the right type, out of range) and a plain
  ``ValueError`` when its value is outside what is allowed. The checks are those of
  ``validate``; their messages read "<argument> must be <what is allowed>, not <value>", so
  that the message names the argument, the value and what is allowed. Booleans are True or
  False (numpy booleans too), counts integers (numpy integers too), levels numbers strictly
  between 0 and 1, choices one of their strings (aliases, such as ddf "kr", included).

Every one of these is a ``ValueError``, so that ``except ValueError`` catches any mistake in
the input (``ArgumentTypeError`` is both, as numpy's ``AxisError`` is a ValueError and an
IndexError).
"""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["ArgumentTypeError", "FormulaError", "DataError", "DataWarning", "FitWarning",
           "warn_user", "recorded_warnings"]


class FormulaError(ValueError):
    """The formula cannot be read, or names something the data do not have."""


class DataError(ValueError):
    """The data cannot be fitted as given (wrong type, infinite values, too few levels...)."""


class ArgumentTypeError(TypeError, ValueError):
    """An argument of a public function has the wrong type (a string for a boolean...)."""


class DataWarning(UserWarning):
    """Something was done to the data: rows with missing values dropped, columns aliased."""


class FitWarning(UserWarning):
    """The optimizer's result deserves a second look (convergence, singular fit)."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_RECORDS: ContextVar[tuple[list[str], ...]] = ContextVar("mixedmodels_records", default=())


@contextmanager
def recorded_warnings():
    """Collect the message of every ``warn_user`` call made in the block into the list it
    yields (the warnings are issued as usual too, whatever the warnings filters are)."""
    messages: list[str] = []
    token = _RECORDS.set(_RECORDS.get() + (messages,))
    try:
        yield messages
    finally:
        _RECORDS.reset(token)


def warn_user(message: str, category: type[Warning]) -> None:
    """Warn, attributing the warning to the first caller outside this package; recorded by
    every enclosing ``recorded_warnings`` block."""
    for messages in _RECORDS.get():
        messages.append(message)
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)
