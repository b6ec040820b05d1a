"""Correlation structures of the residuals within a group (nlme's ``corStruct`` classes).

R = sigma^2 Psi with Psi block-diagonal by group; within group g, Psi_g = S_g C_g S_g, where
S_g holds the variance function's relative standard deviations (``covariance.variance``) and
C_g is the correlation matrix that one of these structures gives for the positions of the
group's rows (a time, a slot, coordinates):

==========================  ===============================  ============================
structure                   corr(e_i, e_j)                   parameters (bounds)
==========================  ===============================  ============================
``AR1("visit", group)``     phi^|t_i - t_j|, integer t       phi in [-1, 1]
``CAR1("time", group)``     phi^|t_i - t_j|, real t          phi in [0, 1]
``CS(group)``               rho                              rho in [-1/(m-1), 1]
``Symm("visit", group)``    C[slot_i, slot_j], any C          M (M - 1) / 2 partial
                                                             correlations in [-1, 1]
``Toep("visit", group)``    rho_lag, lag = how many distinct  partial autocorrelations
                            times apart t_i and t_j are
``ARMA("visit", group,``    ARMA(p, q) autocorrelation at    p + q: the partial
``p, q)``                   lag |t_i - t_j|, integer t       autocorrelations of the AR
                                                             and MA parts, in [-1, 1]
``Exp(["x", "y"], group)``  exp(-d_ij / range), Euclidean d  range >= 0
``Gaus``, ``Spher``,        f(d_ij / range): Gaussian,       range >= 0
``Lin``, ``Ratio``          spherical, linear, rational
                            quadratic (nlme's ``corGaus``...)
==========================  ===============================  ============================

(m: the largest group; M: the number of distinct slots.) The optimizer works on nlme's
unconstrained scale, on which every value is inside the bounds: 2 atanh(phi) for AR1,
logit(phi) for CAR1, log((rho + 1/(m-1)) / (1 - rho)) for CS, 2 atanh of the partial
(auto)correlations for Toep, Symm and ARMA, log(range) for the spatial ones; a correlation that
tends to a bound is reported as singular. Gaps count: under AR1 two visits two apart have
correlation phi^2, as nlme's ``corARMA(p = 1)`` and ``corCAR1`` have it (nlme's ``corAR1``
uses the order of the rows instead).

``Symm`` is parameterized by C's canonical partial correlations (the partial correlation of
slots i and j given slots 1..j-1, for j < i; Lewandowski, Kurowicka & Joe 2009), so that
every parameter vector gives a positive-definite C, and C is singular where one of them is
+/-1, whatever the correlations. (The rows of a unit lower-triangular matrix normalized to
length 1, Pinheiro & Bates 1996, also give every C, but reach a singular one only as the
parameters grow without bound at unequal rates: BOBYQA stopped at its 100,000 evaluations
on the way to one, 6.7 above the optimum, on 12 groups of 3 visits whose 3rd was nearly the
1st minus the 2nd.) ``Toep`` maps partial autocorrelations in [-1, 1] to the
autocorrelations by the Durbin-Levinson recursion, so that every value inside
the bounds is positive definite. Reported values are the correlations themselves.

A structure is a frozen specification (the columns it reads); ``bind`` fixes what it learns
from the data (the largest group, the slots) and returns the structure the fit uses.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..deferred import deferred
from ..errors import DataError, FormulaError
from ..validate import type_error

#: loaded where an ARMA structure is first evaluated: not at ``import mixedmodels``
_signal = deferred("scipy.signal")

__all__ = ["AR1", "ARMA", "CAR1", "CS", "Correlation", "Exp", "Gaus", "Lin", "Ratio", "Spatial",
           "Spher", "Symm", "Toep", "arma_autocorrelations", "autocorrelations"]


#: the least eigenvalue of ``Symm.moment_start``'s correlation matrix
MOMENT_FLOOR = 0.05


def learnt(default):
    """A field the structure learns from the data in ``bind`` (not an argument)."""
    return field(default=default, init=False, repr=False, compare=False)


def with_learnt(structure, **values):
    """A copy of a frozen structure with these values learnt from the data."""
    out = copy.copy(structure)
    for name, value in values.items():
        object.__setattr__(out, name, value)
    return out


def check_column(value, what: str) -> str:
    """A column name (a string), or an ``ArgumentTypeError`` that says so."""
    if not isinstance(value, str) or not value:
        raise type_error(what, "a column name (a string)", value)
    return value


class Correlation(ABC):
    """The within-group correlation of the residuals as a function of its parameters.

    Attributes:
        positions: the columns that place a row within its group (a time, a slot,
            coordinates); empty for ``CS``.
        group: the column whose levels are the groups (None: all rows are one group).
    """

    positions: tuple[str, ...]
    group: str | None
    #: the name nlme and SAS print ("AR(1)", "Compound symmetry", ...)
    title: str = ""
    #: its name in ``correlation=``'s string form ("ar1", "cs", ...)
    syntax: str = ""
    #: the correlation depends on the positions through their differences only
    stationary: bool = True
    #: positions must be whole numbers (visits, slots)
    integer: bool = False
    #: every point of the reported values' box (``value_bounds``) is a model (not ARMA's
    #: coefficients: the profile moves in its partial autocorrelations instead)
    box_values: bool = True

    def __post_init__(self):
        for name in self.positions:
            check_column(name, f"{type(self).__name__}'s position column")
        if self.group is not None:
            check_column(self.group, f"{type(self).__name__}'s group")

    @property
    def text(self) -> str:
        """Its string form for ``correlation=``: "ar1(visit | patient)", "cs(1 | patient)"."""
        left = " + ".join(self.positions) or "1"
        return f"{self.syntax}({left}{f' | {self.group}' if self.group else ''})"

    def bind(self, positions: np.ndarray, sizes: np.ndarray) -> "Correlation":
        """The structure for these data: ``positions`` (n, d) of every row, ``sizes`` the
        number of rows of each group."""
        return self

    def learning_rows(self, positions: np.ndarray) -> np.ndarray:
        """The rows of ``positions`` (n, d) that ``bind`` learns from (indices): binding to
        any rows that include them (and to the largest group's size) gives the same
        structure, so that what it learns from data in partitions adds up (``Learning``).
        None here: the structure learns from the positions nothing, or the groups' sizes."""
        return np.zeros(0, dtype=np.int64)

    def _learnt(self, **values) -> "Correlation":
        return with_learnt(self, **values)

    @property
    @abstractmethod
    def n_params(self) -> int:
        """The number of parameters."""

    def start(self) -> np.ndarray:
        """(n_params,) the optimizer's start: independence where that is possible."""
        return self.from_values(self.independence())

    def independence(self) -> np.ndarray:
        """(n_params,) the reported values of independence."""
        return np.zeros(self.n_params)

    def scan(self, value: float) -> np.ndarray:
        """Values of the (one-parameter) structure at which a fit whose value is ``value``
        compares its criterion, to leave a local optimum (``ParameterMap.restrictions``):
        none but for a compact spatial shape (``Spher``, ``Lin``), whose criterion is not
        smooth."""
        return np.zeros(0)

    @abstractmethod
    def value_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each (n_params,), of the reported values."""

    @abstractmethod
    def names(self) -> list[str]:
        """The names of ``values``' entries (without the group)."""

    @abstractmethod
    def correlations(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """(K, m, m) the correlation matrices of K groups of m rows at ``positions``
        (K, m, d), for reported ``values``."""

    def matrices(self, params: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """``correlations`` at the (unconstrained) parameters."""
        return self.correlations(self.values(params), positions)

    @abstractmethod
    def values(self, params: np.ndarray) -> np.ndarray:
        """(n_params,) the reported values (correlations, a range) of the parameters."""

    @abstractmethod
    def from_values(self, values: np.ndarray) -> np.ndarray:
        """The parameters of reported ``values`` (the inverse of ``values``)."""

    def boundary_values(self, params: np.ndarray) -> np.ndarray:
        """The values whose distance from ``boundary_bounds`` decides a boundary fit: the
        reported values, unless their unit makes them near a bound at every fit or C can
        be singular with them away from their bounds."""
        return self.values(params)

    def boundary_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of ``boundary_values``: those of the reported values, unless the
        structure measures its boundary otherwise."""
        return self.value_bounds()

    def normalizing_rotation(self, params: np.ndarray, m: int) -> np.ndarray | None:
        """(m, m) the orthogonal Q such that nlme's normalized residuals of a group of m rows
        are Q L^-1 r, L the lower Cholesky factor of the group's Psi; None where they are
        L^-1 r itself (nlme whitens with the inverse Cholesky factor but for ``CS``)."""
        return None

    def describe(self, params: np.ndarray) -> str:
        """One line for the summary, as nlme prints it: "AR(1), Phi = 0.57"."""
        shown = ", ".join(f"{name} = {value:.4g}"
                          for name, value in zip(self.names(), self.values(params)))
        return f"{self.title}{', ' if shown else ''}{shown}"


def _half_tanh(params: np.ndarray) -> np.ndarray:
    """tanh(params / 2): a correlation in (-1, 1) of its parameter on the real line."""
    return np.tanh(np.asarray(params, dtype=float) / 2)


def _logistic(params: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-params)): a correlation in (0, 1) of its parameter on the real line."""
    return 1 / (1 + np.exp(-np.asarray(params, dtype=float)))


def _differences(positions: np.ndarray) -> np.ndarray:
    """(K, m, m) |t_i - t_j| of one-dimensional positions (K, m, 1)."""
    t = positions[..., 0]
    return np.abs(t[:, :, None] - t[:, None, :])


@dataclass(frozen=True)
class AR1(Correlation):
    """AR(1) in an integer time: corr = phi^|t_i - t_j| (SAS TYPE=AR(1) with gaps kept;
    nlme ``corARMA(form = ~ time | group, p = 1)``).

    The optimizer works on r = phi^s, the correlation one step s apart, s the greatest
    common divisor of the gaps between distinct times (``bind``; 1 for visits numbered
    1, 2, ...): on days 0, 30, 60, ... the correlations are r^k, and on phi itself the
    criterion was flat at the start phi = 0 (phi^30), where the fit stopped (1368.7 against
    1079.3 on the bundled trial's visits in days). For even s only r >= 0 is a model (phi^s
    >= 0): a negative r gives the correlations of |r|, and phi is reported as |r|^(1/s)."""

    time: str
    group: str | None = None
    step: int = learnt(1)
    title = "AR(1)"
    syntax = "ar1"
    integer = True

    @property
    def positions(self) -> tuple[str, ...]:
        return (self.time,)

    def bind(self, positions: np.ndarray, sizes: np.ndarray) -> "AR1":
        gaps = np.diff(np.unique(positions[:, 0])).astype(np.int64)
        return self._learnt(step=max(int(np.gcd.reduce(gaps)), 1) if len(gaps) else 1)

    def learning_rows(self, positions: np.ndarray) -> np.ndarray:
        """The first row of each distinct time."""
        return np.unique(positions[:, 0], return_index=True)[1]

    @property
    def n_params(self) -> int:
        return 1

    def value_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([-1.0]), np.array([1.0])

    def values(self, params: np.ndarray) -> np.ndarray:
        r = _half_tanh(params)
        phi = np.abs(r) ** (1.0 / self.step)
        return phi if self.step % 2 == 0 else np.sign(r) * phi

    def from_values(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        r = np.sign(values) * np.abs(values) ** self.step if self.step % 2 else \
            np.abs(values) ** self.step
        return 2 * np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15))

    def boundary_values(self, params: np.ndarray) -> np.ndarray:
        """r, the correlation one step apart (phi is near 1 whenever the step is small)."""
        return _half_tanh(params)

    def names(self) -> list[str]:
        return ["Phi"]

    def correlations(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return float(values[0]) ** _differences(positions)


@dataclass(frozen=True)
class CAR1(AR1):
    """Continuous-time AR(1): corr = phi^|t_i - t_j| for real times, phi in [0, 1] (nlme's
    ``corCAR1``; SAS TYPE=SP(POW))."""

    gap: float = learnt(1.0)
    title = "Continuous AR(1)"
    syntax = "car1"
    integer = False

    def bind(self, positions: np.ndarray, sizes: np.ndarray) -> "CAR1":
        """The typical gap between a group's times: the times' extent over the largest
        group's size less 1. The optimizer works on the correlation at that gap, whatever
        the time unit, and starts at 0.2 there. (The median gap between distinct times, used
        before, is tiny where times are jittered: on the bundled trial with visits jittered
        by +/-0.2, the start was independence, where the criterion is flat, and the fit
        stayed there, 1368.7 against nlme's 1087.4.)"""
        times = positions[:, 0]
        extent = float(times.max() - times.min()) if len(times) else 0.0
        gap = extent / max(int(sizes.max()) - 1, 1) if len(sizes) else extent
        return self._learnt(gap=gap if gap > 0 else 1.0)

    def value_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([0.0]), np.array([1.0])

    def start(self) -> np.ndarray:
        return np.array([np.log(0.2 / 0.8)])  # 0.2 at a typical gap (phi may underflow)

    def matrices(self, params: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """r^(|t_i - t_j| / gap), r the correlation at the typical gap: phi = r^(1 / gap)
        itself underflows where the time unit is large against the gaps (times in
        thousandths: phi = 0.845^909)."""
        r = float(_logistic(params)[0])
        return r ** (_differences(positions) / self.gap)

    def values(self, params: np.ndarray) -> np.ndarray:
        return _logistic(params) ** (1 / self.gap)

    def from_values(self, values: np.ndarray) -> np.ndarray:
        values = np.clip(np.asarray(values, dtype=float) ** self.gap, 1e-15, 1 - 1e-15)
        return np.log(values / (1 - values))

    def boundary_values(self, params: np.ndarray) -> np.ndarray:
        """The correlation at a typical gap (phi per unit of time is near 1 whenever the
        unit is small)."""
        return _logistic(params)


@dataclass(frozen=True)
class CS(Correlation):
    """Compound symmetry: one correlation rho between any two rows of a group, bounded below
    by -1/(m - 1) for the largest group m (nlme's ``corCompSymm``; SAS TYPE=CS with the
    covariance on the residual side, where rho may be negative)."""

    group: str | None = None
    largest: int = learnt(2)
    title = "Compound symmetry"
    syntax = "cs"

    @property
    def positions(self) -> tuple[str, ...]:
        return ()

    def bind(self, positions: np.ndarray, sizes: np.ndarray) -> "CS":
        return self._learnt(largest=max(int(sizes.max()), 2))

    @property
    def n_params(self) -> int:
        return 1

    def value_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([-1.0 / (self.largest - 1)]), np.array([1.0])

    def values(self, params: np.ndarray) -> np.ndarray:
        low = 1.0 / (self.largest - 1)
        e = np.exp(np.asarray(params, dtype=float))
        return (e - low) / (1 + e)

    def from_values(self, values: np.ndarray) -> np.ndarray:
        low = 1.0 / (self.largest - 1)
        values = np.clip(values, -low + 1e-15, 1 - 1e-15)
        return np.log((values + low) / (1 - values))

    def names(self) -> list[str]:
        return ["Rho"]

    def correlations(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        count, m = positions.shape[:2]
        rho = float(values[0])
        return np.broadcast_to((1.0 - rho) * np.eye(m) + rho, (count, m, m)).copy()

    def normalizing_rotation(self, params: np.ndarray, m: int) -> np.ndarray:
        """nlme whitens a compound-symmetric group of m rows with the Helmert-type F of its
        ``corCompSymm`` factor (F C F' = I): row 0 the group's mean direction,
        1 / sqrt(m (1 + (m - 1) rho)) throughout; row i >= 1 the i-th Helmert contrast,
        -1 / sqrt((1 - rho) i (i + 1)) on the rows before i and i / sqrt((1 - rho) i (i + 1))
        on row i. Q = F L_C (C = L_C L_C'), so that Q L^-1 r is F applied to the rows divided
        by their sds, as nlme applies it."""
        rho = float(self.values(params)[0])
        F = np.zeros((m, m))
        F[0] = 1.0 / np.sqrt(m * (1.0 + (m - 1) * rho))
        for i in range(1, m):
            scale = 1.0 / np.sqrt((1.0 - rho) * i * (i + 1))
            F[i, :i], F[i, i] = -scale, i * scale
        return F @ np.linalg.cholesky((1.0 - rho) * np.eye(m) + rho)


@dataclass(frozen=True)
class Symm(Correlation):
    """A general correlation matrix over the distinct values (slots) of an integer column
    (nlme's ``corSymm``; with ``VarIdent`` on the same column, SAS TYPE=UN)."""

    time: str
    group: str | None = None
    slots: tuple = learnt(())
    title = "General correlation"
    syntax = "symm"
    stationary = False
    integer = True

    @property
    def positions(self) -> tuple[str, ...]:
        return (self.time,)

    def bind(self, positions: np.ndarray, sizes: np.ndarray) -> "Symm":
        return self._learnt(slots=tuple(np.unique(positions[:, 0]).tolist()))

    def learning_rows(self, positions: np.ndarray) -> np.ndarray:
        """The first row of each distinct slot."""
        return np.unique(positions[:, 0], return_index=True)[1]

    @property
    def size(self) -> int:
        return len(self.slots)

    @property
    def n_params(self) -> int:
        return self.size * (self.size - 1) // 2

    def value_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.full(self.n_params, -1.0), np.full(self.n_params, 1.0)

    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The (row, column) slots of each parameter: the strict lower triangle, by rows."""
        return np.tril_indices(self.size, -1)

    def names(self) -> list[str]:
        rows, cols = self._pairs()
        return [f"cor_{_label(self.slots[c])}.{_label(self.slots[r])}"
                for r, c in zip(rows, cols)]

    def factor(self, params: np.ndarray) -> np.ndarray:
        """(M, M) L, lower triangular with rows of length 1, C = L L': from the canonical
        partial correlations z = tanh(params / 2), L_ij = z_ij prod_{k<j} sqrt(1 - z_ik^2)
        and L_ii = prod_{k<i} sqrt(1 - z_ik^2) (Lewandowski, Kurowicka & Joe 2009)."""
        z = np.zeros((self.size, self.size))
        z[self._pairs()] = _half_tanh(params)
        remaining = np.cumprod(np.sqrt(1.0 - z ** 2), axis=1)  # prod over k <= j
        before = np.hstack([np.ones((self.size, 1)), remaining[:, :-1]])  # over k < j
        return np.tril(z * before, -1) + np.diag(np.diagonal(before))

    def full(self, params: np.ndarray) -> np.ndarray:
        """(M, M) the correlation matrix over all slots."""
        factor = self.factor(params)
        return factor @ factor.T

    def values(self, params: np.ndarray) -> np.ndarray:
        return self.full(params)[self._pairs()]

    def boundary_values(self, params: np.ndarray) -> np.ndarray:
        """The canonical partial correlations z: C is singular where one is +/-1, whatever
        the correlations (corr(1, 2) = 0 and corr(1, 3) = -corr(2, 3) = 0.71 make a singular
        C: slot 3 is slot 1 minus slot 2)."""
        return _half_tanh(params)

    def from_values(self, values: np.ndarray) -> np.ndarray:
        """The parameters of correlations ``values``; NaN where they make no positive-definite
        matrix (outside the model, for the profile)."""
        correlation = np.eye(self.size)
        correlation[self._pairs()] = values
        correlation = np.tril(correlation) + np.tril(correlation, -1).T
        try:
            factor = np.linalg.cholesky(correlation)
        except np.linalg.LinAlgError:
            return np.full(self.n_params, np.nan)
        # z_ij = L_ij / sqrt(1 - sum_{k<j} L_ik^2)
        before = 1.0 - np.hstack([np.zeros((self.size, 1)),
                                  np.cumsum(factor ** 2, axis=1)[:, :-1]])
        z = (factor / np.sqrt(np.maximum(before, 1e-300)))[self._pairs()]
        return 2 * np.arctanh(np.clip(z, -1 + 1e-15, 1 - 1e-15))

    def pair_sums(self, residuals: np.ndarray, group_codes: np.ndarray,
                  positions: np.ndarray) -> np.ndarray:
        """(4, size, size) the sums over groups that have both slots a and b of: 1, e_a,
        e_a^2 and e_a e_b, for ``residuals`` e (n,) of the rows (``group_codes`` (n,),
        ``positions`` (n, 1)). They add up over sets of rows that keep each group whole (a
        Dask DataFrame's partitions) into those of all the rows (``moment_start``)."""
        slots = np.searchsorted(np.asarray(self.slots, dtype=float), positions[:, 0])
        present = np.zeros((int(group_codes.max()) + 1 if len(group_codes) else 0, self.size))
        values = np.zeros_like(present)
        present[group_codes, slots] = 1.0
        values[group_codes, slots] = residuals
        return np.stack([present.T @ present, values.T @ present, (values ** 2).T @ present,
                         values.T @ values])

    def moment_start(self, sums: np.ndarray) -> np.ndarray:
        """The parameters of the correlations between slots of the residuals of the fixed
        effects' least-squares fit (Pearson's, each pair's over the groups that have both
        slots, from their ``pair_sums``); a pair seen in fewer than 3 groups at 0, and the
        matrix made positive definite (eigenvalues at least ``MOMENT_FLOOR``, then rescaled
        to a correlation matrix). The optimizer's start: from independence BOBYQA stopped at
        a local optimum 17.6 above the optimum on 15 groups of up to 5 visits; from here it
        reaches the optimum."""
        count, first, square, product = sums
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_a, mean_b = first / count, first.T / count
            covariance = product - count * mean_a * mean_b
            spread = (square - count * mean_a ** 2) * (square.T - count * mean_b ** 2)
            corr = covariance / np.sqrt(spread)
        corr = np.where((count >= 3) & np.isfinite(corr), np.clip(corr, -1.0, 1.0), 0.0)
        np.fill_diagonal(corr, 1.0)
        values, vectors = np.linalg.eigh(corr)
        corr = (vectors * np.maximum(values, MOMENT_FLOOR)) @ vectors.T
        scale = np.sqrt(np.diagonal(corr))
        return self.from_values((corr / np.outer(scale, scale))[self._pairs()])

    def matrices(self, params: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return self._select(self.full(params), positions)

    def correlations(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return self.matrices(self.from_values(values), positions)

    def _select(self, full: np.ndarray, positions: np.ndarray) -> np.ndarray:
        slots = np.searchsorted(np.asarray(self.slots, dtype=float), positions[..., 0])
        return full[slots[:, :, None], slots[:, None, :]]

    def describe(self, params: np.ndarray) -> str:
        shown = ", ".join(f"{name} = {value:.4g}"
                          for name, value in zip(self.names(), self.values(params)))
        return f"{self.title} over {self.size} values of {self.time}: {shown}"


@dataclass(frozen=True)
class Toep(Correlation):
    """Toeplitz in an integer time: one correlation per lag |t_i - t_j| (SAS TYPE=TOEP),
    parameterized by partial autocorrelations in [-1, 1]."""

    time: str
    group: str | None = None
    slots: tuple = learnt((0.0, 1.0))
    title = "Toeplitz"
    syntax = "toep"
    integer = True
    stationary = False  # lags count distinct values, which need not be evenly spaced

    @property
    def positions(self) -> tuple[str, ...]:
        return (self.time,)

    def bind(self, positions: np.ndarray, sizes: np.ndarray) -> "Toep":
        """The distinct times, in order: the lag of two rows is how many apart their times
        are among them (SAS's TOEP over the levels of the REPEATED effect), so that visits
        numbered 1, 2, 4 are one lag apart when no row has visit 3."""
        slots = tuple(np.unique(positions[:, 0]).tolist())
        return self._learnt(slots=slots if len(slots) > 1 else slots + (slots[0] + 1,))

    def learning_rows(self, positions: np.ndarray) -> np.ndarray:
        """The first row of each distinct time."""
        return np.unique(positions[:, 0], return_index=True)[1]

    @property
    def lags(self) -> int:
        return len(self.slots) - 1

    @property
    def n_params(self) -> int:
        return self.lags

    def value_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.full(self.lags, -1.0), np.full(self.lags, 1.0)

    def names(self) -> list[str]:
        return [f"cor_lag{k}" for k in range(1, self.lags + 1)]

    def values(self, params: np.ndarray) -> np.ndarray:
        return autocorrelations(_half_tanh(params))[1:]

    def boundary_values(self, params: np.ndarray) -> np.ndarray:
        """The partial autocorrelations: C is singular where one is +/-1, whatever the lag
        correlations (3 groups of 5 times: the criterion fell without bound as the 4th
        went to -1, its lag correlations far from +/-1, and the fit was not singular)."""
        return _half_tanh(params)

    def from_values(self, values: np.ndarray) -> np.ndarray:
        """The parameters of autocorrelations ``values``; NaN for values that are no
        stationary process's (a correlation matrix that is not positive semi-definite),
        which the profile then finds outside the model."""
        partial = partial_autocorrelations(np.asarray(values, dtype=float))
        if np.any(np.abs(partial) > 1 + 1e-10):
            return np.full(len(partial), np.nan)
        return 2 * np.arctanh(np.clip(partial, -1 + 1e-15, 1 - 1e-15))

    def correlations(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        rank = np.searchsorted(np.asarray(self.slots, dtype=float), positions[..., 0])
        lags = np.abs(rank[:, :, None] - rank[:, None, :])
        return np.concatenate([[1.0], values])[np.minimum(lags, self.lags)]


@dataclass(frozen=True)
class ARMA(Correlation):
    """ARMA(p, q) in an integer time: corr = the autocorrelation at lag |t_i - t_j| / s of
    the process x_t = phi_1 x_{t-1} + ... + phi_p x_{t-p} + e_t + theta_1 e_{t-1} + ... +
    theta_q e_{t-q} (nlme's ``corARMA(form = ~ time | group, p, q)``, whose signs these are,
    as R's ``arima``'s; SAS TYPE=ARMA(1,1) is p = q = 1), s the times' step: the greatest
    common divisor of the gaps between distinct times (``bind``; 1 for visits 1, 2, ...).
    Gaps count, as under ``AR1``. Where s > 1 (days 0, 7, 14), nlme's lags are the
    differences themselves: its unit-time process is then seen only every s steps, an
    MA(1) at s = 2 is independence, and its fits stayed at the start (phi = 0, at times 100
    apart 290 above the AR(1) fit); here the process runs at the data's own step, and its
    coefficients are those of one step s. For q > p >= 1, nlme's ``corMatrix`` differs from
    the process's autocorrelations (R's ``ARMAacf``; phi 0.5, theta (0.4, 0.2): lag 2 0.5407
    against 0.4565), and so do its fits; these are ``ARMAacf``'s.

    Parameters, nlme's: 2 atanh of the partial autocorrelations a_k of the autoregressive
    part, whose coefficients are then those of a stationary process (the Durbin-Levinson
    recursion, Barndorff-Nielsen and Schou 1973), and 2 atanh of the b_k that give the
    moving-average coefficients theta = -DL(-b), those of an invertible process (Jones
    1980; Pinheiro and Bates 2000, section 6.3.1). A fit on the boundary has an a_k or b_k
    at +/-1. The autocorrelations are computed exactly from the coefficients (Brockwell and
    Davis 1991, section 3.3: max(p, q) + 1 linear equations, then the AR recursion)."""

    time: str
    group: str | None = None
    p: int = 0
    q: int = 0
    step: int = learnt(1)
    syntax = "arma"
    integer = True
    box_values = False

    def __post_init__(self):
        super().__post_init__()
        for name in ("p", "q"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise type_error(f"ARMA's {name}", "a whole number >= 0", value)
            object.__setattr__(self, name, int(value))
        if self.p + self.q == 0:
            raise FormulaError("ARMA needs its orders, p >= 1 or q >= 1 (e.g. ARMA('visit', "
                               "'patient', p=1, q=1)); with p = q = 0 the rows are independent")

    @property
    def title(self) -> str:
        return f"ARMA({self.p},{self.q})"

    @property
    def text(self) -> str:
        group = f" | {self.group}" if self.group else ""
        return f"arma({self.time}{group}, p = {self.p}, q = {self.q})"

    @property
    def positions(self) -> tuple[str, ...]:
        return (self.time,)

    def bind(self, positions: np.ndarray, sizes: np.ndarray) -> "ARMA":
        """The times' step; a ``DataError`` where the times span fewer steps than the
        structure has parameters (its correlations are at no more lags than that: nlme
        aborted R on p = 10 with 6 visits)."""
        times = np.unique(positions[:, 0])
        gaps = np.diff(times).astype(np.int64)
        step = max(int(np.gcd.reduce(gaps)), 1) if len(gaps) else 1
        lags = int(round((times[-1] - times[0]) / step)) if len(times) else 0
        self.check_lags(lags, f"the times {self.time!r} span {lags}", step)
        return self._learnt(step=step)

    def check_lags(self, lags: int, span: str, step: int | None = None) -> None:
        """A ``DataError`` where ``lags``, the most steps the times span (``span`` says
        where, "the times 'visit' span 5"), are fewer than the structure's parameters."""
        if self.n_params <= lags:
            return
        raise DataError(
            f"correlation={self.text}: {span} step{'s' if lags != 1 else ''} of "
            f"{self.step if step is None else step}, so the residuals' correlations are at "
            f"{lags} lag{'s' if lags != 1 else ''} at most, fewer than the {self.n_params} "
            f"parameters of ARMA({self.p},{self.q}); use lower orders (p + q <= {lags})")

    def learning_rows(self, positions: np.ndarray) -> np.ndarray:
        """The first row of each distinct time."""
        return np.unique(positions[:, 0], return_index=True)[1]

    @property
    def n_params(self) -> int:
        return self.p + self.q

    def value_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """|phi_j| <= C(p, j) and |theta_j| <= C(q, j): the coefficients' range over the
        stationary (invertible) region."""
        bound = np.array([math.comb(self.p, j) for j in range(1, self.p + 1)]
                         + [math.comb(self.q, j) for j in range(1, self.q + 1)], dtype=float)
        return -bound, bound

    def names(self) -> list[str]:
        return ([f"Phi{j}" for j in range(1, self.p + 1)]
                + [f"Theta{j}" for j in range(1, self.q + 1)])

    def values(self, params: np.ndarray) -> np.ndarray:
        """(phi_1..phi_p, theta_1..theta_q)."""
        partial = _half_tanh(params)
        return np.concatenate([_coefficients(partial[:self.p]),
                               -_coefficients(-partial[self.p:])])

    def from_values(self, values: np.ndarray) -> np.ndarray:
        """The parameters of coefficients ``values``; NaN for a process that is not
        stationary (or not invertible)."""
        values = np.asarray(values, dtype=float)
        partial = np.concatenate([_partials(values[:self.p]), -_partials(-values[self.p:])])
        if np.any(np.abs(partial) > 1 + 1e-10):
            return np.full(len(partial), np.nan)
        return 2 * np.arctanh(np.clip(partial, -1 + 1e-15, 1 - 1e-15))

    def boundary_values(self, params: np.ndarray) -> np.ndarray:
        """a and b: the process is at the edge of stationarity (invertibility) where one is
        +/-1, whatever the coefficients."""
        return _half_tanh(params)

    def boundary_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.full(self.n_params, -1.0), np.full(self.n_params, 1.0)

    def correlations(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        lags = np.rint(_differences(positions) / self.step).astype(np.int64)
        rho = arma_autocorrelations(values[:self.p], values[self.p:],
                                    int(lags.max()) if lags.size else 0)
        return rho[lags]


def _coefficients(partial: np.ndarray) -> np.ndarray:
    """(k,) the autoregressive coefficients of partial autocorrelations ``partial`` (k,), by
    the Durbin-Levinson recursion phi_j <- phi_j - a_k phi_{k-j}, phi_k = a_k."""
    phi = np.zeros(0)
    for a in np.asarray(partial, dtype=float):
        phi = np.append(phi - a * phi[::-1], a)
    return phi


def _partials(phi: np.ndarray) -> np.ndarray:
    """(k,) the partial autocorrelations of autoregressive coefficients ``phi`` (k,) (the
    inverse of ``_coefficients``, stepping down from order k); inf where a step's is +/-1."""
    phi = np.asarray(phi, dtype=float)
    out = np.zeros(len(phi))
    for k in range(len(phi), 0, -1):
        a = phi[-1]
        out[k - 1] = a
        if abs(a) >= 1.0:
            out[:k - 1] = np.inf
            break
        phi = (phi[:-1] + a * phi[-2::-1]) / (1.0 - a * a)
    return out


def arma_autocorrelations(phi: np.ndarray, theta: np.ndarray, lags: int) -> np.ndarray:
    """(lags + 1,) the autocorrelations rho_0 = 1, ..., rho_lags of the causal ARMA process
    with coefficients ``phi`` (p,) and ``theta`` (q,) (R's ``ARMAacf``): psi_0..psi_q of its
    MA(infinity) form, then gamma_0..gamma_{K-1} from the K = max(p, q) + 1 equations
    gamma_k - sum_i phi_i gamma_|k-i| = sum_{j>=k} theta_j psi_{j-k}, then the recursion
    gamma_k = sum_i phi_i gamma_{k-i} (Brockwell and Davis 1991, eq. 3.3.8-3.3.9)."""
    phi, theta = np.asarray(phi, dtype=float), np.asarray(theta, dtype=float)
    p, q = len(phi), len(theta)
    ma = np.concatenate([[1.0], theta])
    psi = np.zeros(q + 1)
    for j in range(q + 1):
        psi[j] = ma[j] + sum(phi[i - 1] * psi[j - i] for i in range(1, min(j, p) + 1))
    size = max(p, q) + 1
    system = np.eye(size)
    for k in range(size):
        for i in range(1, p + 1):
            system[k, abs(k - i)] -= phi[i - 1]
    right = np.array([ma[k:] @ psi[:q + 1 - k] if k <= q else 0.0 for k in range(size)])
    first = np.linalg.solve(system, right)
    gamma = np.zeros(max(size, lags + 1))
    gamma[:size] = first
    if lags >= size and p:  # the recursion, as a filter of zeros from the last p values
        state = _signal.lfiltic([1.0], np.concatenate([[1.0], -phi]), first[::-1][:p])
        gamma[size:] = _signal.lfilter([1.0], np.concatenate([[1.0], -phi]),
                                       np.zeros(lags + 1 - size), zi=state)[0]
    return gamma[:lags + 1] / gamma[0]


@dataclass(frozen=True)
class Spatial(Correlation):
    """A spatial correlation: corr = f(d_ij / range), d the Euclidean distance between the
    rows' coordinates and f a decreasing shape with f(0) = 1 (nlme's ``corSpatial``
    classes without a nugget; SAS TYPE=SP(...)). One parameter, the range, in the
    coordinates' unit; the subclasses give f (``shape``)."""

    coordinates: tuple[str, ...]
    group: str | None = None
    scale: float = learnt(1.0)

    def __post_init__(self):
        if isinstance(self.coordinates, str):
            object.__setattr__(self, "coordinates", (self.coordinates,))
        if not isinstance(self.coordinates, (tuple, list)) or not self.coordinates:
            raise type_error(f"{type(self).__name__}'s coordinates", "column names (strings)",
                             self.coordinates)
        object.__setattr__(self, "coordinates", tuple(self.coordinates))
        super().__post_init__()

    @property
    def positions(self) -> tuple[str, ...]:
        return self.coordinates

    def bind(self, positions: np.ndarray, sizes: np.ndarray) -> "Spatial":
        spread = float(np.max(np.ptp(positions, axis=0))) if len(positions) else 1.0
        return self._learnt(scale=spread / 4 if spread > 0 else 1.0)

    def learning_rows(self, positions: np.ndarray) -> np.ndarray:
        """The rows of each coordinate's least and largest value."""
        if not len(positions):
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([positions.argmin(axis=0), positions.argmax(axis=0)]))

    @property
    def n_params(self) -> int:
        return 1

    def independence(self) -> np.ndarray:
        return np.array([self.scale])  # the start: a quarter of the data's extent

    def value_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([0.0]), np.array([np.inf])

    def values(self, params: np.ndarray) -> np.ndarray:
        return np.exp(np.asarray(params, dtype=float))

    def from_values(self, values: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(values, 1e-300))

    def names(self) -> list[str]:
        return ["range"]

    def boundary_values(self, params: np.ndarray) -> np.ndarray:
        """range / (range + s), s a quarter of the data's extent (``scale``): in [0, 1]
        whatever the coordinates' unit. Near 0 the rows are independent (the range at its
        bound 0, below 1e-4 s); near 1 every correlation of a group is near 1 (the range
        above 1e4 s), and C tends to the singular matrix of ones. A range in the
        coordinates' own unit, compared with 1e-4, was on the boundary at any fit in
        coordinates of size 1e-4, and never at the singular end."""
        ratio = np.exp(np.asarray(params, dtype=float)) / self.scale
        return ratio / (1.0 + ratio)

    def boundary_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(1), np.ones(1)

    def correlations(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        difference = positions[:, :, None, :] - positions[:, None, :, :]
        distance = np.sqrt(np.einsum("kijd,kijd->kij", difference, difference))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            scaled = distance / float(values[0])
        return self.shape(np.where(distance == 0, 0.0, scaled))

    @staticmethod
    @abstractmethod
    def shape(scaled: np.ndarray) -> np.ndarray:
        """f(d / range) of distances over the range (0 on the diagonal, inf at range 0)."""



#: the scans of a compact spatial correlation's range (``Spatial.scan``), in octaves: around
#: a quarter of the data's extent, and around the fit's range
SCAN_STEPS = np.arange(-24, 25) / 8.0
FINE_SCAN_STEPS = np.arange(-8, 9) / 64.0


class _Compact(Spatial):
    """A spatial shape that is 0 beyond the range: its criterion is not smooth in the range
    (``Spatial.scan``)."""

    def scan(self, value: float) -> np.ndarray:
        """The ranges at which a fit whose range is ``value`` compares its criterion, to
        leave a local optimum. The criterion of a compact shape has a kink wherever the
        range crosses a distance between two rows, and can have a local optimum between
        any two: 49 ranges an eighth of an octave apart around a quarter of the data's
        extent (from an eighth of it to eight times it), and 16 a 64th of an octave apart
        within an eighth of an octave of ``value`` (on the spatial reference data, the
        linear ML fit stopped at 598.7547, at range 3.107, between two kinks, and from
        3.175 of the fine scan reaches 598.7405, the least of 4,000 ranges from 0.05 to
        40)."""
        fine = value * 2.0 ** FINE_SCAN_STEPS[FINE_SCAN_STEPS != 0]
        return np.concatenate([self.scale * 2.0 ** SCAN_STEPS, fine]) if value > 0 else \
            self.scale * 2.0 ** SCAN_STEPS


@dataclass(frozen=True)
class Exp(Spatial):
    """Spatial exponential: corr = exp(-d_ij / range) (nlme's ``corExp``; SAS
    TYPE=SP(EXP)). Positive definite in any dimension."""

    title = "Exponential spatial correlation"
    syntax = "exp"

    @staticmethod
    def shape(scaled: np.ndarray) -> np.ndarray:
        return np.exp(-scaled)


@dataclass(frozen=True)
class Gaus(Spatial):
    """Spatial Gaussian: corr = exp(-(d_ij / range)^2) (nlme's ``corGaus``; SAS
    TYPE=SP(GAU)). Positive definite in any dimension, but nearly singular where points lie
    close within the range: such a fit is better with a nugget (a random intercept)."""

    title = "Gaussian spatial correlation"
    syntax = "gaus"

    @staticmethod
    def shape(scaled: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.exp(-scaled * scaled)


@dataclass(frozen=True)
class Spher(_Compact):
    """Spatial spherical: corr = 1 - 1.5 s + 0.5 s^3 for s = d_ij / range < 1, else 0
    (nlme's ``corSpher``; SAS TYPE=SP(SPH)). Positive definite in up to three dimensions;
    rows farther apart than the range are uncorrelated."""

    title = "Spherical spatial correlation"
    syntax = "spher"

    @staticmethod
    def shape(scaled: np.ndarray) -> np.ndarray:
        inside = np.minimum(scaled, 1.0)
        return 1.0 - 1.5 * inside + 0.5 * inside ** 3


@dataclass(frozen=True)
class Lin(_Compact):
    """Spatial linear: corr = 1 - d_ij / range for d_ij < range, else 0 (nlme's
    ``corLin``). Positive definite in one dimension only: in two or more, a range where C is
    not positive definite is outside the parameter space (the criterion is infinite
    there)."""

    title = "Linear spatial correlation"
    syntax = "lin"

    @staticmethod
    def shape(scaled: np.ndarray) -> np.ndarray:
        return 1.0 - np.minimum(scaled, 1.0)


@dataclass(frozen=True)
class Ratio(Spatial):
    """Spatial rational quadratic: corr = 1 / (1 + (d_ij / range)^2) (nlme's ``corRatio``).
    Positive definite in any dimension."""

    title = "Rational quadratic spatial correlation"
    syntax = "ratio"

    @staticmethod
    def shape(scaled: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + scaled * scaled)


def autocorrelations(partial: np.ndarray) -> np.ndarray:
    """(k + 1,) the autocorrelations rho_0 = 1, rho_1..rho_k of the stationary process with
    partial autocorrelations ``partial`` (k,), by the Durbin-Levinson recursion: positive
    definite for every value in (-1, 1)."""
    partial = np.asarray(partial, dtype=float)
    rho = np.ones(len(partial) + 1)
    phi = np.zeros(0)
    for k, a in enumerate(partial, start=1):
        rho[k] = phi @ rho[k - 1:0:-1] + a * (1.0 - phi @ rho[1:k]) if k > 1 else a
        phi = np.append(phi - a * phi[::-1], a)
    return rho


def partial_autocorrelations(rho: np.ndarray) -> np.ndarray:
    """(k,) the partial autocorrelations of autocorrelations rho_1..rho_k (the inverse of
    ``autocorrelations``)."""
    full = np.concatenate([[1.0], rho])
    out = np.zeros(len(rho))
    phi = np.zeros(0)
    for k in range(1, len(rho) + 1):
        variance = 1.0 - phi @ full[1:k]
        residual = full[k] - phi @ full[k - 1:0:-1]
        if variance > 1e-14:
            a = residual / variance
        else:  # a singular process: only the continuation (residual 0) is positive semi-definite
            a = 0.0 if abs(residual) < 1e-10 else np.inf
        if not np.isfinite(a):
            out[k - 1:] = np.inf
            break
        out[k - 1] = a
        phi = np.append(phi - a * phi[::-1], a)
    return out


def _label(value) -> str:
    """A slot's value as a name: 3 rather than 3.0."""
    return str(int(value)) if float(value).is_integer() else str(value)
