"""Covariance structures of the random-effects terms: one term's relative covariance factor,
its parameters and what they mean.

A term with k columns has u_l ~ N(0, Sigma) for each level l of its grouping factor, with

    Sigma = sigma^2 lam lam',    lam = lam(params) a k x k lower-triangular matrix

(Bates et al. 2015, section 2.2: lam is the term's block of Lambda). A structure owns the
term's parameter vector: its start, bounds and names, the map to lam, the standard deviations
and correlations the parameters imply (and back), the boundary (singular) rule, and the entries
of Sigma that Kenward-Roger treats as variance parameters.

lam is filled from a vector of *entries* through a ``LinearPattern``: for the structures here
(lme4's), linear in their parameters, the entries are the parameters themselves; a structure
whose lam is not linear in its parameters (``covariance.structured``: compound symmetry, AR(1),
Toeplitz) computes its entries (the lower triangle of lam) from them.

This module is the one place that spells out lme4's layout of theta (its ``mkParsTemplate``):
an unstructured term has one parameter per entry of the lower triangle of lam, in column-major
order, diagonal entries bounded below by 0, and is named ``sd_<column>|<group>`` for a diagonal
entry and ``cor_<row column>.<column column>|<group>`` for one below it. The structured terms
use its names (``sd_names``) and its lower triangle (``lower_triangle``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SINGULAR_TOLERANCE",
    "CovarianceStructure",
    "Diagonal",
    "LinearPattern",
    "LinearStructure",
    "Scalar",
    "Unstructured",
    "BoundaryRule",
    "boundary_rule",
    "lower_triangle",
    "sd_and_correlation",
    "sd_names",
]

SINGULAR_TOLERANCE = 1e-4  # lme4's isSingular: a bounded parameter below this is on the boundary


@dataclass(frozen=True, eq=False)
class LinearPattern:
    """A relative covariance factor linear in its parameters:
    lam[rows[i], cols[i]] = params[index[i]], every other entry 0.

    Attributes:
        rows, cols, index: (m,) int64 arrays.
        size: lam is size x size.
    """

    rows: np.ndarray
    cols: np.ndarray
    index: np.ndarray
    size: int

    def lam(self, params: np.ndarray) -> np.ndarray:
        """The (size, size) factor for this parameter vector."""
        lam = np.zeros((self.size, self.size))
        lam[self.rows, self.cols] = params[self.index]
        return lam


class CovarianceStructure(ABC):
    """The covariance of one random-effects term with ``k`` columns, as a function of its
    parameters (the term's part of lme4's theta).

    What the package asks of a structure: ``n_params``, ``start``, ``lower``, ``upper``,
    ``names``, ``lambda_block``, ``sdcor``, ``from_sdcor``, ``sdcor_bounds`` and
    ``covariance_derivatives``; and, for the objective, ``pattern`` (a ``LinearPattern`` over
    the structure's *entries*), ``n_entries`` and ``entries(params)``: lam =
    ``pattern.lam(entries(params))``. ``ParameterMap`` reads every structure's pattern once per
    model; the fast objective fills Lambda from the patterns without calling the structures.
    A ``linear`` structure's entries are its parameters (``entries`` returns them unchanged, and
    the objective never calls it); a structure that is not linear (compound symmetry, AR(1),
    Toeplitz: ``covariance.structured``) computes them at every evaluation of the objective.

    Bounds: a parameter with a finite bound is on the boundary (the fit is singular) within
    ``SINGULAR_TOLERANCE`` of it: an sd at 0 (lme4's rule), a correlation at its bound.
    """

    #: lam is linear in the parameters and ``entries(params)`` is ``params``
    linear: bool = True
    pattern: LinearPattern
    #: the structure in words, for messages
    description: str = "unstructured"
    #: one sd shared by the columns (a homogeneous structure)
    hom: bool = False
    k: int

    @property
    @abstractmethod
    def n_params(self) -> int:
        """The number of parameters."""

    @abstractmethod
    def start(self) -> np.ndarray:
        """(n_params,) the optimizer's start; lme4's: lam = I."""

    @abstractmethod
    def lower(self) -> np.ndarray:
        """(n_params,) lower bounds (-inf for a free parameter)."""

    @abstractmethod
    def upper(self) -> np.ndarray:
        """(n_params,) upper bounds (inf for a free parameter)."""

    @abstractmethod
    def names(self, columns: tuple[str, ...], group: str) -> list[str]:
        """The n_params names of ``sdcor``'s values, as lme4's ``confint(oldNames = FALSE)``."""

    @abstractmethod
    def lambda_block(self, params: np.ndarray) -> np.ndarray:
        """(k, k) lower-triangular lam: Sigma = sigma^2 lam lam'."""

    @abstractmethod
    def sdcor(self, params: np.ndarray, sigma: float) -> np.ndarray:
        """(n_params,) the standard deviations and correlations the parameters stand for, in
        parameter order (lme4's ``Cv_to_Sv``); a correlation with a zero sd is NaN."""

    @abstractmethod
    def from_sdcor(self, values: np.ndarray, sigma: float) -> np.ndarray:
        """(n_params,) the parameters of the given ``sdcor`` values (lme4's ``Sv_to_Cv``): the
        inverse of ``sdcor``, defined also where an sd is 0 or a correlation +/-1 (Sigma
        semi-definite; the profile moves through such points). Values that are no covariance
        matrix (correlations whose matrix is indefinite) raise ``numpy.linalg.LinAlgError``."""

    @abstractmethod
    def sdcor_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each (n_params,): sd in [0, inf), correlation in [-1, 1]."""

    @abstractmethod
    def covariance_derivatives(self) -> tuple[tuple[tuple[int, int], ...], ...] | None:
        """Sigma (absolute scale) as sum_i gamma_i E_i over variance and covariance parameters
        gamma_i, if it is linear in some parameterization (else None: Kenward-Roger refuses).
        For each gamma_i, the entries (a, b), a >= b, of Sigma that equal it, all on the
        diagonal or all below it: E_i = dSigma/dgamma_i = sum over them of
        e_a e_b' + e_b e_a' (a != b) or e_a e_a' (Kenward & Roger 1997's G_i per level)."""

    def unit_columns(self) -> list[tuple[int, ...]]:
        """Per parameter, the columns whose scale it carries (its natural unit is the inverse
        of their spread, ``core.start.theta_units``): the rows of lam a linear structure's
        parameter fills; none for a dimensionless one (a correlation)."""
        rows, index = self.pattern.rows, self.pattern.index
        return [tuple(sorted(set(rows[index == i].tolist()))) for i in range(self.n_params)]

    @property
    def n_entries(self) -> int:
        """The length of ``entries(params)``: what ``pattern.index`` indexes."""
        return self.n_params

    def entries(self, params: np.ndarray) -> np.ndarray:
        """(n_entries,) the values ``pattern`` places in lam: the parameters themselves for a
        linear structure.

        Raises:
            numpy.linalg.LinAlgError: parameters outside the structure's domain (a correlation
                outside its bounds), where lam is not defined.
        """
        return params

    #: the step of ``entries_jacobian``'s central differences, relative to max(1, |param|)
    JACOBIAN_STEP = 1e-6

    def entries_jacobian(self, params: np.ndarray) -> np.ndarray:
        """(n_entries, n_params) d entries / d params, for the chain rule of the criterion's
        gradient: the identity for a linear structure; else central differences of
        ``entries`` (closed forms of a few parameters: a step of ``JACOBIAN_STEP``, kept
        inside the bounds, is accurate to about 1e-10)."""
        if self.linear:
            return np.eye(self.n_params)
        params = np.asarray(params, dtype=float)
        lower, upper = self.lower(), self.upper()
        out = np.empty((self.n_entries, self.n_params))
        for i in range(self.n_params):
            step = self.JACOBIAN_STEP * max(1.0, abs(params[i]))
            step = min(step, 0.5 * (params[i] - lower[i]), 0.5 * (upper[i] - params[i]))
            plus, minus = params.copy(), params.copy()
            if step > 0:  # central
                plus[i] += step
                minus[i] -= step
            else:  # on a bound: one-sided, inward
                step = 0.5 * self.JACOBIAN_STEP * (1.0 if params[i] <= lower[i] else -1.0)
                plus[i] += 2.0 * step
            out[:, i] = (self.entries(plus) - self.entries(minus)) / (2.0 * step)
        return out

    def covariance(self, params: np.ndarray, sigma: float) -> np.ndarray:
        """(k, k) Sigma = sigma^2 lam lam'."""
        lam = self.lambda_block(params)
        return sigma ** 2 * lam @ lam.T

    def on_boundary(self, params: np.ndarray, tol: float = SINGULAR_TOLERANCE) -> np.ndarray:
        """(n_params,) bool: a parameter bounded below by 0 and within ``tol`` of it (an sd, or
        a diagonal entry of an unstructured lam), or a parameter within ``tol`` of another
        finite bound (a structured term's correlation at its bound)."""
        return boundary_rule(params, self.lower(), self.upper(), tol)

    def is_singular(self, params: np.ndarray, tol: float = SINGULAR_TOLERANCE) -> bool:
        """lme4's ``isSingular`` for this term: a parameter on the boundary."""
        return bool(np.any(self.on_boundary(params, tol)))


class LinearStructure(CovarianceStructure):
    """lme4's Cholesky parameterization restricted to some entries of lam: parameter i is
    lam[rows[i], cols[i]]. A diagonal entry is a relative standard deviation (>= 0) and is
    reported as that column's sd; an entry below the diagonal is free and is reported as the
    correlation of its row and column. Every column has its diagonal entry.

    Args:
        k: the number of columns.
        rows, cols: the entries of lam, in parameter order.
    """

    def __init__(self, k: int, rows: np.ndarray, cols: np.ndarray):
        self.k = k
        self.pattern = LinearPattern(rows.astype(np.int64), cols.astype(np.int64),
                                     np.arange(len(rows), dtype=np.int64), k)
        self._diagonal = rows == cols

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.k})"

    @property
    def n_params(self) -> int:
        return len(self._diagonal)

    def start(self) -> np.ndarray:
        return np.where(self._diagonal, 1.0, 0.0)

    def lower(self) -> np.ndarray:
        return np.where(self._diagonal, 0.0, -np.inf)

    def upper(self) -> np.ndarray:
        return np.full(self.n_params, np.inf)

    def names(self, columns: tuple[str, ...], group: str) -> list[str]:
        return [sd_names(columns[a:a + 1], group)[0] if a == b
                else f"cor_{columns[a]}.{columns[b]}|{group}"
                for a, b in zip(self.pattern.rows, self.pattern.cols)]

    def lambda_block(self, params: np.ndarray) -> np.ndarray:
        return self.pattern.lam(params)

    def sdcor(self, params: np.ndarray, sigma: float) -> np.ndarray:
        sd, correlation = sd_and_correlation(self.covariance(params, sigma))
        rows, cols = self.pattern.rows, self.pattern.cols
        return np.where(self._diagonal, sd[rows], correlation[rows, cols])

    def from_sdcor(self, values: np.ndarray, sigma: float) -> np.ndarray:
        rows, cols = self.pattern.rows, self.pattern.cols
        off = ~self._diagonal
        sds = np.zeros(self.k)
        sds[rows[self._diagonal]] = values[self._diagonal]
        correlation = np.eye(self.k)
        correlation[rows[off], cols[off]] = correlation[cols[off], rows[off]] = values[off]
        relative = correlation * np.outer(sds, sds) / sigma ** 2
        # an indefinite correlation matrix (possible from k = 3 columns on) is no covariance
        return semidefinite_cholesky(relative)[rows, cols]

    def sdcor_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.where(self._diagonal, 0.0, -1.0), np.where(self._diagonal, np.inf, 1.0))

    def covariance_derivatives(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """The entries of lam: for these structures, the free entries of Sigma, one each."""
        return tuple(((a, b),) for a, b in zip(self.pattern.rows.tolist(),
                                               self.pattern.cols.tolist()))


class Unstructured(LinearStructure):
    """Any k x k covariance (lme4's default, ``(x | g)``): the k (k + 1) / 2 entries of lam's
    lower triangle, column-major."""

    def __init__(self, k: int):
        super().__init__(k, *lower_triangle(k))


class Diagonal(LinearStructure):
    """Uncorrelated columns, one sd each: lam = diag(params). Its parameters, bounds and names
    are those of k one-column terms on the same grouping factor, which is how lme4 expands
    ``(x || g)``."""

    description = "uncorrelated columns, one sd each"

    def __init__(self, k: int):
        super().__init__(k, np.arange(k), np.arange(k))


class Scalar(Diagonal):
    """One column, one relative sd (``(1 | g)``, each term of ``(x || g)``)."""

    def __init__(self):
        super().__init__(1)

    def __repr__(self) -> str:
        return "Scalar()"


def boundary_rule(params: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                  tol: float = SINGULAR_TOLERANCE) -> np.ndarray:
    """(n,) bool: the rule of ``CovarianceStructure.on_boundary`` for parameters with these
    bounds: bounded below by 0 and within ``tol`` of it, or within ``tol`` of another finite
    bound (for one structure, or for the parameters of several at once)."""
    at_zero = (lower == 0) & (params < tol)
    with np.errstate(invalid="ignore"):
        at_other = (np.isfinite(lower) & (lower != 0) & (params - lower < tol)) | (
            np.isfinite(upper) & (upper - params < tol))
    return at_zero | at_other


class BoundaryRule:
    """``boundary_rule`` for fixed bounds, with what depends only on them found once: where
    every bound is 0 or infinite (lme4's terms), the rule is 2 array operations instead of 12
    (15 us on 2 parameters; a fit asks 2 or 3 times)."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray):
        self.lower, self.upper = lower, upper
        self._at_zero = lower == 0
        self._zero_only = not ((np.isfinite(lower) & ~self._at_zero) | np.isfinite(upper)).any()

    def __call__(self, params: np.ndarray, tol: float = SINGULAR_TOLERANCE) -> np.ndarray:
        if self._zero_only:
            return self._at_zero & (params < tol)
        return boundary_rule(params, self.lower, self.upper, tol)


def lower_triangle(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the k (k + 1) / 2 entries of a k x k lower triangle, column-major
    (lme4's order of an unstructured term's theta)."""
    rows, cols = np.tril_indices(k)
    order = np.lexsort((rows, cols))
    return rows[order], cols[order]


def sd_names(columns: tuple[str, ...], group: str) -> list[str]:
    """The names of the columns' standard deviations: ``sd_<column>|<group>`` (lme4's)."""
    return [f"sd_{column}|{group}" for column in columns]


def sd_and_correlation(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k,) standard deviations and (k, k) correlations of a covariance matrix; a correlation
    with a zero sd is NaN (as lme4's ``Cv_to_Sv``)."""
    sd = np.sqrt(np.diag(covariance))
    scale = np.outer(sd, sd)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.where(scale > 0, covariance / scale, np.nan)
    return sd, correlation


def semidefinite_cholesky(matrix: np.ndarray) -> np.ndarray:
    """``_psd_cholesky`` of a positive semi-definite matrix.

    Raises:
        numpy.linalg.LinAlgError: the matrix is indefinite (a pivot skipped as zero was not:
            its factor would be another matrix's).
    """
    factor = _psd_cholesky(matrix)
    if np.abs(factor @ factor.T - matrix).max() > 1e-10 * max(np.abs(matrix).max(), 1e-300):
        raise np.linalg.LinAlgError("the matrix is indefinite: no covariance (correlations "
                                    "that no covariance matrix has)")
    return factor


def _psd_cholesky(matrix: np.ndarray) -> np.ndarray:
    """Lower factor L with L L' = matrix, allowing zero pivots (semi-definite matrices)."""
    p = matrix.shape[0]
    factor = np.zeros_like(matrix)
    for j in range(p):
        pivot = matrix[j, j] - factor[j, :j] @ factor[j, :j]
        if pivot <= 1e-14 * max(matrix[j, j], 1e-300):
            continue
        factor[j, j] = np.sqrt(pivot)
        factor[j + 1:, j] = (matrix[j + 1:, j] - factor[j + 1:, :j] @ factor[j, :j]) / factor[j, j]
    return factor
