"""Exceptions and warnings raised for the user's input.

Every error names what was wrong (the column, the formula position or the value) and says what
to do. They derive from ValueError so that ``except ValueError`` keeps working.
"""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["FormulaError", "DataError", "DataWarning", "FitWarning", "warn_user",
           "recorded_warnings"]


class FormulaError(ValueError):
    """The formula cannot be read, or names something the data do not have."""


class DataError(ValueError):
    """The data cannot be fitted as given (wrong type, infinite values, too few levels...)."""


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
