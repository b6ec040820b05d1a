"""Variance functions of the residuals (nlme's ``varFunc`` classes).

Var(e_i) = sigma^2 s_i^2, with the relative standard deviation s_i a function of the row's
stratum or covariate and of the function's parameters:

==========================  ===========================  ================================
function                    s_i                          parameters (bounds)
==========================  ===========================  ================================
``VarIdent("centre")``      ratio of the row's stratum   one ratio per stratum but the
                                                         first (> 0); the first is 1
``VarPower("x")``           |x_i|^delta                  delta, free
``VarExp("x")``             exp(delta x_i)               delta, free
==========================  ===========================  ================================

The optimizer works on nlme's unconstrained scale: log ratios for ``VarIdent``.
The first stratum of ``VarIdent`` (the first level in sorted order, or the first category of
a categorical column) is the reference: sigma is its standard deviation. Sources: Pinheiro &
Bates (2000), "Mixed-Effects Models in S and S-PLUS", section 5.2.1; nlme's ``varIdent``,
``varPower`` and ``varExp``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..formula.rfunctions import level_label
from ..validate import type_error
from .correlation import check_column, learnt, with_learnt

__all__ = ["Variance", "VarExp", "VarIdent", "VarPower"]


class Variance(ABC):
    """A variance function: the relative standard deviations of the rows as a function of its
    parameters.

    Attributes:
        column: the stratum or covariate column.
    """

    column: str
    #: the column is read as numbers (a covariate), not as a factor
    numeric: bool = True
    #: its name in ``variance=``'s string form ("ident", "power", "exp")
    syntax: str = ""

    @property
    def text(self) -> str:
        """Its string form for ``variance=``: "ident(centre)", "power(x)"."""
        return f"{self.syntax}({self.column})"

    def __post_init__(self):
        check_column(self.column, f"{type(self).__name__}'s column")

    def bind(self, values: np.ndarray) -> "Variance":
        """The function for a column of these values (codes of strata, or numbers)."""
        return self

    def learning_rows(self, values: np.ndarray) -> np.ndarray:
        """The rows of ``values`` that ``bind`` (and, for strata, their coding) learns from
        (indices): binding to any rows that include them gives the same function, so that
        what it learns from data in partitions adds up (``Learning``)."""
        return np.zeros(0, dtype=np.int64)

    _learnt = with_learnt

    @property
    @abstractmethod
    def n_params(self) -> int:
        """The number of parameters."""

    def start(self) -> np.ndarray:
        """(n_params,) equal variances."""
        return np.zeros(self.n_params)

    def values(self, params: np.ndarray) -> np.ndarray:
        """(n_params,) the reported values (ratios, powers) of the parameters."""
        return np.asarray(params, dtype=float).copy()

    def from_values(self, values: np.ndarray) -> np.ndarray:
        """The parameters of reported ``values``."""
        return np.asarray(values, dtype=float).copy()

    def value_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each (n_params,), of the reported values."""
        return np.full(self.n_params, -np.inf), np.full(self.n_params, np.inf)

    def boundary_values(self, params: np.ndarray) -> np.ndarray:
        """The values whose distance from ``boundary_bounds`` decides a boundary fit: the
        reported values, unless the function measures its boundary otherwise."""
        return self.values(params)

    def boundary_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of ``boundary_values``."""
        return self.value_bounds()

    @abstractmethod
    def names(self) -> list[str]:
        """The parameters' names (without the column)."""

    @abstractmethod
    def sds(self, params: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The relative standard deviations s of rows with these ``values`` (codes for a
        stratum, numbers for a covariate), any shape."""

    @abstractmethod
    def describe(self, params: np.ndarray) -> str:
        """One line for the summary, as nlme prints it."""


@dataclass(frozen=True)
class VarIdent(Variance):
    """A residual standard deviation per stratum (nlme's ``varIdent(form = ~ 1 | column)``).

    Attributes:
        levels: the strata, in order (set by ``bind``; the first is the reference).
    """

    column: str
    levels: tuple | None = field(default=None, compare=False)
    numeric = False
    syntax = "ident"

    def __post_init__(self):
        super().__post_init__()
        if self.levels is not None:
            if isinstance(self.levels, str) or not hasattr(self.levels, "__iter__"):
                raise type_error("VarIdent's levels", "a sequence of the column's strata",
                                 self.levels)
            object.__setattr__(self, "levels", tuple(self.levels))

    def learning_rows(self, values: np.ndarray) -> np.ndarray:
        """The first two rows of each stratum (its levels, and whether it has more than one
        row: ``residual_model.check_strata``), in order."""
        first = np.unique(values, return_index=True)[1]
        rest = np.delete(np.arange(len(values)), first)
        second = rest[np.unique(values[rest], return_index=True)[1]]
        return np.sort(np.concatenate([first, second]))

    def with_levels(self, levels) -> "VarIdent":
        """The function for a column of these strata (codes 0.. follow their order), the
        user's order of them if one was given (its first is the reference)."""
        return self._learnt(levels=tuple(levels))

    @property
    def n_params(self) -> int:
        return max(len(self.levels or ()) - 1, 0)

    def values(self, params: np.ndarray) -> np.ndarray:
        return np.exp(np.asarray(params, dtype=float))

    def from_values(self, values: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(values, 1e-300))

    def value_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(self.n_params), np.full(self.n_params, np.inf)

    def boundary_values(self, params: np.ndarray) -> np.ndarray:
        """ratio / (1 + ratio), in [0, 1]: a stratum's sd at 0 against the reference's
        (near 0) or the reference's at 0 against the stratum's (near 1), so that the fit is
        on the boundary or not whichever stratum is the reference."""
        ratio = self.values(params)
        return ratio / (1.0 + ratio)

    def boundary_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(self.n_params), np.ones(self.n_params)

    def names(self) -> list[str]:
        return [f"ratio_{level_label(level)}" for level in self.levels[1:]]

    def sds(self, params: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.concatenate([[1.0], self.values(params)])[values.astype(np.int64)]

    def describe(self, params: np.ndarray) -> str:
        ratios = ", ".join(f"{level_label(level)}: {value:.4g}" for level, value
                           in zip(self.levels, np.concatenate([[1.0], self.values(params)])))
        return f"Different standard deviations per {self.column} (ratios {ratios})"


class _OneCovariate(Variance):
    """A function with one parameter delta of a covariate x, optimized as delta times the
    covariate's ``spread`` (so that the unit of x does not change the fit)."""

    scale: float = 1.0

    def extents(self, values: np.ndarray) -> np.ndarray:
        """Each value's extent on the scale delta multiplies; the covariate's spread is the
        largest."""
        raise NotImplementedError

    def bind(self, values: np.ndarray) -> "_OneCovariate":
        spread = float(np.max(self.extents(values))) if len(values) else 0.0
        return self._learnt(scale=spread if spread > 0 else 1.0)

    def learning_rows(self, values: np.ndarray) -> np.ndarray:
        """The row of the largest extent."""
        if not len(values):
            return np.zeros(0, dtype=np.int64)
        return np.array([np.argmax(self.extents(values))])

    @property
    def n_params(self) -> int:
        return 1

    def values(self, params: np.ndarray) -> np.ndarray:
        return np.asarray(params, dtype=float) / self.scale

    def from_values(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=float) * self.scale


@dataclass(frozen=True)
class VarPower(_OneCovariate):
    """sd proportional to |x|^delta (nlme's ``varPower(form = ~ x)``); x must not be 0. The
    optimizer works on delta times the largest |log|x||, whatever the unit of x."""

    column: str
    syntax = "power"
    scale: float = learnt(1.0)

    def extents(self, values: np.ndarray) -> np.ndarray:
        return np.abs(np.log(np.abs(values)))

    def names(self) -> list[str]:
        return ["power"]

    def sds(self, params: np.ndarray, values: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.abs(values) ** float(self.values(params)[0])

    def describe(self, params: np.ndarray) -> str:
        power = self.values(params)[0]
        return f"Power of {self.column}: sd proportional to |{self.column}|^{power:.4g}"


@dataclass(frozen=True)
class VarExp(_OneCovariate):
    """sd proportional to exp(delta x) (nlme's ``varExp(form = ~ x)``). The optimizer works on
    delta times the largest |x|, whatever the unit of x."""

    column: str
    syntax = "exp"
    scale: float = learnt(1.0)

    def extents(self, values: np.ndarray) -> np.ndarray:
        return np.abs(values)

    def names(self) -> list[str]:
        return ["expon"]

    def sds(self, params: np.ndarray, values: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.exp(float(self.values(params)[0]) * values)

    def describe(self, params: np.ndarray) -> str:
        return (f"Exponential of {self.column}: sd proportional to "
                f"exp({self.values(params)[0]:.4g} {self.column})")
