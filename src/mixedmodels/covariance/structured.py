"""Structured covariances of random-effects terms (the G side): one sd per column or one shared
sd, and few correlation parameters, as lme4 2.x's ``diag()``, ``cs()``, ``ar1()`` and
``toep()`` terms (and glmmTMB's covariance structures of the same names: its covstruct
vignette, "Covariance structures with glmmTMB").

Each term with k columns has Sigma = D C D (absolute scale; sigma^2 lam lam' with
lam = D_rel chol(C)), D the diagonal of the standard deviations and C a correlation matrix:

===========  =================================  ===============================================
syntax       C                                  parameters (in theta's order)
===========  =================================  ===============================================
``diag``     I                                  sds
``cs``       1 on the diagonal, rho elsewhere   sds, rho in [-1/(k-1), 1]
``ar1``      rho^|i-j|                          sds, rho in [-1, 1]
``toep``     r_|i-j| (r_0 = 1)                  sds, k-1 partial autocorrelations in [-1, 1]
===========  =================================  ===============================================

``hom=True`` gives one shared sd (a homogeneous structure: lme4 2.x's ``hom = TRUE``,
glmmTMB's ``homdiag``, ``homcs``), ``hom=False`` one sd per column (heterogeneous, glmmTMB's
``hetar1``). The sds in theta are relative to the residual sd sigma, as lme4's theta, and
bounded below by 0; the correlation parameters are absolute. Every value inside the bounds
gives a positive (semi-)definite Sigma: for ``toep`` the optimizer's parameters are partial
autocorrelations, turned into the lag correlations r_1 .. r_{k-1} by the Durbin-Levinson
recursion; the lag correlations are what ``sdcor`` and the names report.

Names (``sdcor``'s values, as lme4's ``confint(oldNames = FALSE)``): one sd per column
``sd_<column>|<group>`` (lme4's), or one shared ``sd|<group>``; then ``cor|<group>`` for the rho
of ``cs`` and ``ar1``, ``cor_lag1|<group>``, ``cor_lag2|<group>``, ... for ``toep``'s lag
correlations.

lam from the parameters: closed forms for AR(1) (L[i, 0] = rho^i,
L[i, j] = rho^(i-j) sqrt(1 - rho^2) for 1 <= j <= i) and compound symmetry (column recursion:
s_0 = 0, d_j = sqrt(1 - s_j), b_j = (rho - s_j) / d_j, s_{j+1} = s_j + b_j^2; L[j, j] = d_j,
L[i, j] = b_j for i > j), a numerical Cholesky of the Toeplitz correlation matrix; then the rows
times the relative sds. ``diag`` is linear in its parameters (lam = diag(sds), or sd * I), the
others are not: their entries (lam's lower triangle) are computed at every evaluation of the
objective.

Kenward-Roger needs Sigma linear in some parameterization (``covariance_derivatives``): it is
for ``diag`` (in the variances), homogeneous ``cs`` (the variance and the covariance) and
homogeneous ``toep`` (the variance and one covariance per lag); not for heterogeneous ``cs``
and ``toep`` nor for ``ar1``, for which it returns None.
"""

from __future__ import annotations

import numpy as np

from .correlation import autocorrelations, partial_autocorrelations
from .structures import (
    SINGULAR_TOLERANCE,
    CovarianceStructure,
    LinearPattern,
    _psd_cholesky,
    lower_triangle,
    sd_names,
)

__all__ = ["AutoRegressive", "CompoundSymmetry", "HomogeneousDiagonal", "StructuredCovariance",
           "Toeplitz"]

_SLACK = 1e-12  # a correlation parameter this far outside its bounds is put on them (rounding)


class HomogeneousDiagonal(CovarianceStructure):
    """Uncorrelated columns with one shared sd (``diag(x | g, hom = TRUE)``, glmmTMB's
    ``homdiag``): lam = s I, one parameter s (relative sd, >= 0), named ``sd|<group>``.
    Linear: the pattern puts the one parameter on every diagonal entry. (The heterogeneous
    ``diag(x | g)`` is ``structures.Diagonal``: one sd per column.)"""

    syntax = "diag"
    hom = True

    def __init__(self, k: int):
        self.k = k
        diagonal = np.arange(k, dtype=np.int64)
        self.pattern = LinearPattern(diagonal, diagonal, np.zeros(k, dtype=np.int64), k)

    def __repr__(self) -> str:
        return f"HomogeneousDiagonal({self.k})"

    description = "uncorrelated columns with one shared sd"

    @property
    def n_params(self) -> int:
        return 1

    def start(self) -> np.ndarray:
        return np.ones(1)

    def lower(self) -> np.ndarray:
        return np.zeros(1)

    def upper(self) -> np.ndarray:
        return np.full(1, np.inf)

    def names(self, columns: tuple[str, ...], group: str) -> list[str]:
        return [f"sd|{group}"]

    def lambda_block(self, params: np.ndarray) -> np.ndarray:
        return self.pattern.lam(params)

    def sdcor(self, params: np.ndarray, sigma: float) -> np.ndarray:
        return np.abs(params) * sigma

    def from_sdcor(self, values: np.ndarray, sigma: float) -> np.ndarray:
        return np.asarray(values, dtype=float) / sigma

    def sdcor_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(1), np.full(1, np.inf)

    def covariance_derivatives(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """One variance, on every diagonal entry."""
        return (tuple((a, a) for a in range(self.k)),)


class StructuredCovariance(CovarianceStructure):
    """Sigma = D C(rho) D with C a correlation matrix of few parameters (see the module
    docstring): parameters ``n_sd`` relative sds (1 if ``hom``, else k), then
    ``n_correlation`` correlation parameters. lam = D_rel chol(C) is not linear in them: its
    lower triangle is the structure's entries (``entries``), placed by ``pattern``.

    Subclasses give the correlation parameters' bounds, names and start, and the Cholesky
    factor of C (``correlation_factor``); the reported correlations (``correlations``) are the
    parameters unless a subclass says otherwise.

    Args:
        k: the number of columns (at least 2).
        hom: one shared sd (True) or one per column (False).
    """

    linear = False
    syntax = ""
    description = ""

    def __init__(self, k: int, hom: bool):
        if k < 2:
            raise ValueError(f"a {self.syntax}() term needs at least 2 columns, not {k}")
        self.k, self.hom = k, bool(hom)
        self.n_sd = 1 if self.hom else k
        rows, cols = lower_triangle(k)
        self.pattern = LinearPattern(rows.astype(np.int64), cols.astype(np.int64),
                                     np.arange(len(rows), dtype=np.int64), k)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.k}, hom={self.hom})"

    # -- what subclasses give ----------------------------------------------------------------
    n_correlation: int

    def correlation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of the correlation parameters."""
        return np.full(self.n_correlation, -1.0), np.ones(self.n_correlation)

    def correlation_names(self, group: str) -> list[str]:
        return [f"cor|{group}"]

    def correlation_factor(self, rho: np.ndarray) -> np.ndarray:
        """(k, k) lower-triangular L with L L' = C(rho), for rho inside its bounds."""
        raise NotImplementedError

    def correlations(self, rho: np.ndarray) -> np.ndarray:
        """The reported correlations of the parameters rho (``sdcor``'s)."""
        return rho

    def correlation_parameters(self, correlations: np.ndarray) -> np.ndarray:
        """The inverse of ``correlations``."""
        return correlations

    def correlation_bounds_reported(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of the reported correlations."""
        return self.correlation_bounds()

    # -- CovarianceStructure -----------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return self.n_sd + self.n_correlation

    @property
    def n_entries(self) -> int:
        return len(self.pattern.rows)

    def start(self) -> np.ndarray:
        return np.concatenate([np.ones(self.n_sd), np.zeros(self.n_correlation)])

    def lower(self) -> np.ndarray:
        return np.concatenate([np.zeros(self.n_sd), self.correlation_bounds()[0]])

    def upper(self) -> np.ndarray:
        return np.concatenate([np.full(self.n_sd, np.inf), self.correlation_bounds()[1]])

    def names(self, columns: tuple[str, ...], group: str) -> list[str]:
        sds = [f"sd|{group}"] if self.hom else sd_names(columns, group)
        return sds + self.correlation_names(group)

    def unit_columns(self) -> list[tuple[int, ...]]:
        """The sds: of every column (``hom``) or of their own; the correlations: none."""
        sds = [tuple(range(self.k))] if self.hom else [(c,) for c in range(self.k)]
        return sds + [()] * self.n_correlation

    def _rho(self, params: np.ndarray) -> np.ndarray:
        """The correlation parameters, checked to lie within their bounds (rounding aside).

        Raises:
            numpy.linalg.LinAlgError: a correlation parameter outside its bounds.
        """
        rho = np.asarray(params[self.n_sd:], dtype=float)
        lower, upper = self.correlation_bounds()
        if not np.all((rho >= lower - _SLACK) & (rho <= upper + _SLACK)):
            raise np.linalg.LinAlgError(
                f"{self.syntax}(): correlation parameters {rho.tolist()} outside their bounds")
        return np.clip(rho, lower, upper)

    def correlation_matrix(self, params: np.ndarray) -> np.ndarray:
        """(k, k) C(rho): the structure's correlations, defined (a parameter's value) also
        where an sd is 0 and Sigma = D C D has no correlation of its own there."""
        factor = self.correlation_factor(self._rho(params))
        return factor @ factor.T

    def lambda_block(self, params: np.ndarray) -> np.ndarray:
        factor = self.correlation_factor(self._rho(params))
        sds = params[:self.n_sd]
        return (sds[0] * factor) if self.hom else sds[:, None] * factor

    def entries(self, params: np.ndarray) -> np.ndarray:
        return self.lambda_block(params)[self.pattern.rows, self.pattern.cols]

    def sdcor(self, params: np.ndarray, sigma: float) -> np.ndarray:
        """The sds (absolute) and the correlations: the correlation parameters are reported as
        they are, also where an sd is 0 (they are parameters of the structure)."""
        return np.concatenate([np.abs(params[:self.n_sd]) * sigma,
                               self.correlations(self._rho(params))])

    def from_sdcor(self, values: np.ndarray, sigma: float) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        return np.concatenate([values[:self.n_sd] / sigma,
                               self.correlation_parameters(values[self.n_sd:])])

    def sdcor_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lower, upper = self.correlation_bounds_reported()
        return (np.concatenate([np.zeros(self.n_sd), lower]),
                np.concatenate([np.full(self.n_sd, np.inf), upper]))

    def covariance_derivatives(self) -> tuple[tuple[tuple[int, int], ...], ...] | None:
        """None: Sigma is not linear in any parameterization (heterogeneous sds times a
        correlation; AR(1)'s powers of rho)."""
        return None


class CompoundSymmetry(StructuredCovariance):
    """Compound symmetry (``cs(x | g)``, heterogeneous by default; ``hom = TRUE`` or
    ``homcs`` for one sd): every pair of columns has the same correlation rho, bounded to
    [-1/(k-1), 1] (the range in which C is positive semi-definite). Parameters: the sds, then
    rho (``cor|<group>``). With k = 2 and heterogeneous sds it is the unstructured term."""

    syntax = "cs"
    n_correlation = 1

    @property
    def description(self) -> str:
        return f"compound symmetry, {'one shared sd' if self.hom else 'one sd per column'}"

    def correlation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([-1.0 / (self.k - 1)]), np.ones(1)

    def correlation_factor(self, rho: np.ndarray) -> np.ndarray:
        rho = float(rho[0])
        factor = np.zeros((self.k, self.k))
        s = 0.0
        for j in range(self.k):
            d = np.sqrt(max(1.0 - s, 0.0))
            b = (rho - s) / d if d > 0 else 0.0
            factor[j, j] = d
            factor[j + 1:, j] = b
            s += b * b
        return factor

    def covariance_derivatives(self) -> tuple[tuple[tuple[int, int], ...], ...] | None:
        """Homogeneous: Sigma = v I + c (J - I), linear in the variance v and covariance c."""
        if not self.hom:
            return None
        rows, cols = self.pattern.rows.tolist(), self.pattern.cols.tolist()
        return (tuple((a, a) for a in range(self.k)),
                tuple((a, b) for a, b in zip(rows, cols) if a != b))


class AutoRegressive(StructuredCovariance):
    """First-order autoregressive correlation across the term's columns (``ar1(x | g)``,
    homogeneous by default as in lme4 2.x and glmmTMB; ``hom = FALSE`` or ``hetar1`` for one sd
    per column): corr(i, j) = rho^|i - j|, rho in [-1, 1]. Parameters: the sd(s), then rho
    (``cor|<group>``). The columns are taken in their order in the term (e.g. the levels of
    ``factor(visit)`` in ``ar1(0 + factor(visit) | patient)``), equally spaced."""

    syntax = "ar1"
    n_correlation = 1

    def __init__(self, k: int, hom: bool = True):
        super().__init__(k, hom)
        self._lag = (self.pattern.rows - self.pattern.cols).astype(float)
        self._first = self.pattern.cols == 0

    @property
    def description(self) -> str:
        return f"AR(1), {'one shared sd' if self.hom else 'one sd per column'}"

    def correlation_factor(self, rho: np.ndarray) -> np.ndarray:
        factor = np.zeros((self.k, self.k))
        factor[self.pattern.rows, self.pattern.cols] = self._entries(float(rho[0]))
        return factor

    def _entries(self, rho: float) -> np.ndarray:
        """The lower triangle of chol(C): rho^(i-j), times sqrt(1 - rho^2) after column 0."""
        return rho ** self._lag * np.where(self._first, 1.0, np.sqrt(max(1.0 - rho * rho, 0.0)))

    def entries(self, params: np.ndarray) -> np.ndarray:
        values = self._entries(float(self._rho(params)[0]))
        sds = params[:self.n_sd]
        return values * (sds[0] if self.hom else sds[self.pattern.rows])


class Toeplitz(StructuredCovariance):
    """Toeplitz correlation (``toep(x | g)``, heterogeneous by default as glmmTMB's ``toep``;
    ``hom = TRUE`` or ``homtoep`` for one sd): corr(i, j) = r_|i-j|, one correlation per lag.
    The parameters are the sds, then z_l = atanh(phi_l) of the k - 1 partial
    autocorrelations phi_1 .. phi_{k-1}: unbounded, and every value positive definite (on the
    bounded phi themselves the optimizer could stop at a partial autocorrelation of 1, below
    nested structures' optima). The Durbin-Levinson recursion maps the phi to the lag
    correlations r_1 .. r_{k-1}, which ``sdcor`` reports (``cor_lag1|<group>``, ...) and
    ``from_sdcor`` takes. A partial autocorrelation within the singular tolerance of +/-1 is
    the boundary (C singular)."""

    syntax = "toep"

    @property
    def n_correlation(self) -> int:
        return self.k - 1

    @property
    def description(self) -> str:
        return f"Toeplitz, {'one shared sd' if self.hom else 'one sd per column'}"

    def correlation_names(self, group: str) -> list[str]:
        return [f"cor_lag{lag}|{group}" for lag in range(1, self.k)]

    def correlation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.full(self.n_correlation, -np.inf), np.full(self.n_correlation, np.inf)

    def on_boundary(self, params: np.ndarray, tol: float = SINGULAR_TOLERANCE) -> np.ndarray:
        """An sd at 0, or a partial autocorrelation within ``tol`` of +/-1."""
        out = super().on_boundary(params, tol)
        out[self.n_sd:] = 1.0 - np.abs(np.tanh(params[self.n_sd:])) < tol
        return out

    def correlation_factor(self, rho: np.ndarray) -> np.ndarray:
        r = np.concatenate([[1.0], self.correlations(rho)])
        lags = np.abs(np.subtract.outer(np.arange(self.k), np.arange(self.k)))
        matrix = r[lags]
        try:
            return np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:  # a partial autocorrelation at +/-1: semi-definite
            return _psd_cholesky(matrix)

    def correlations(self, rho: np.ndarray) -> np.ndarray:
        """Partial autocorrelations -> lag correlations (Durbin-Levinson, shared with the
        residual side's ``Toep``)."""
        return autocorrelations(np.tanh(rho))[1:]

    def correlation_parameters(self, correlations: np.ndarray) -> np.ndarray:
        """Lag correlations -> atanh of the partial autocorrelations (Durbin-Levinson); NaN
        for lag correlations that no positive-definite Toeplitz matrix has."""
        partial = partial_autocorrelations(np.asarray(correlations, dtype=float))
        inside = np.abs(partial) <= 1.0
        return np.where(inside, np.arctanh(np.clip(np.where(inside, partial, 0.0),
                                                   -1 + 1e-15, 1 - 1e-15)), np.nan)

    def correlation_bounds_reported(self) -> tuple[np.ndarray, np.ndarray]:
        """Each lag correlation in [-1, 1] (jointly, only values with a positive semi-definite
        Toeplitz matrix are allowed: the others have no parameters)."""
        return np.full(self.k - 1, -1.0), np.ones(self.k - 1)

    def covariance_derivatives(self) -> tuple[tuple[tuple[int, int], ...], ...] | None:
        """Homogeneous: Sigma = v I + sum_l c_l (the entries at lag l), linear in v and the
        covariances c_l."""
        if not self.hom:
            return None
        return (tuple((a, a) for a in range(self.k)),) + tuple(
            tuple((a, a - lag) for a in range(lag, self.k)) for lag in range(1, self.k))
