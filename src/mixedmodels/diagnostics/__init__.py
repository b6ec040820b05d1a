"""Functions of a fitted state: residuals, fitted values, influence, prediction."""

from .influence import cooks_distance, fitted, influence_groups, leverage, residuals

__all__ = ["cooks_distance", "fitted", "influence_groups", "leverage", "residuals"]
