"""Exceptions and warnings raised for the user's input.

Every error names what was wrong (the column, the formula position or the value) and says what
to do. They derive from ValueError so that ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = ["FormulaError", "DataError", "DataWarning", "FitWarning"]


class FormulaError(ValueError):
    """The formula cannot be read, or names something the data do not have."""


class DataError(ValueError):
    """The data cannot be fitted as given (wrong type, infinite values, too few levels...)."""


class DataWarning(UserWarning):
    """Something was done to the data: rows with missing values dropped, columns aliased."""


class FitWarning(UserWarning):
    """The optimizer's result deserves a second look (convergence, singular fit)."""
