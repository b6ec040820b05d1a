"""Exceptions and warnings raised for the user's input.

Every error names what was wrong (the column, the formula position or the value) and says what
to do. They derive from ValueError so that ``except ValueError`` keeps working.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["FormulaError", "DataError", "DataWarning", "FitWarning", "warn_user"]


class FormulaError(ValueError):
    """The formula cannot be read, or names something the data do not have."""


class DataError(ValueError):
    """The data cannot be fitted as given (wrong type, infinite values, too few levels...)."""


class DataWarning(UserWarning):
    """Something was done to the data: rows with missing values dropped, columns aliased."""


class FitWarning(UserWarning):
    """The optimizer's result deserves a second look (convergence, singular fit)."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn_user(message: str, category: type[Warning]) -> None:
    """Warn, attributing the warning to the first caller outside this package."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)
