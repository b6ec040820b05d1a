"""The fitted state of a linear mixed model: frozen, its derived quantities computed once, on
first use.

Notation (lme4's): G = Var(u) = sigma^2 Lambda Lambda', R = Var(e) = sigma^2 Psi (Psi = I
in lme4; a correlation structure, a variance function or prior weights otherwise),
V = Var(y) = Z G Z' + R; u = Lambda v are the conditional modes (BLUPs).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.criterion import residual_dof
from ..core.optimize import ConvergenceCheck, OptSummary
from ..core.pls import sparse_z
from ..covariance.residual import ResidualStructure
from ..covariance.structured import StructuredCovariance
from ..covariance.structures import sd_and_correlation
from ..linalg.condvar import spherical_condvar
from ..linalg.factor import Factor
from ..validate import check_integer, type_error, value_error

if TYPE_CHECKING:
    from .model import LinearMixedModel

__all__ = ["FittedModel", "DENSE_V_LIMIT", "check_fitted"]

DENSE_V_LIMIT = 20_000  # observations: above this, fit.V (n x n) refuses


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only view: the quantities of a fit cannot be changed by accident."""
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


def _frozen_sparse(matrix: sp.csr_array) -> sp.csr_array:
    """The sparse matrix with read-only entries and pattern, in canonical form (so that no
    operation of SciPy's sorts its indices in place)."""
    matrix.sum_duplicates()
    for part in (matrix.data, matrix.indices, matrix.indptr):
        part.flags.writeable = False
    return matrix


class cached_table:
    """A property computed once, whose pandas tables (or dict of tables or arrays) are
    handed out as new objects at every read: shallow copies of tables over read-only
    arrays. Editing what ``fit.ranef`` returned then changes no later read of it, nor
    ``predict`` or ``coef`` (with pandas' copy-on-write the edit copies; without it, it is
    refused), and a dict's entries can be replaced without touching the fit's. (A data
    descriptor, unlike ``functools.cached_property``, whose cached value later reads get
    without it.)"""

    def __init__(self, compute):
        self.compute = compute
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner, name: str):
        self.name, self.key = name, f"_cached_{name}"

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        cache = instance.__dict__
        if self.key not in cache:
            cache[self.key] = self.compute(instance)
        return _handed_out(cache[self.key])

    def __set__(self, instance, value):
        raise AttributeError(f"cannot assign to field {self.name!r}: a fit is frozen")


def _handed_out(value):
    if isinstance(value, (pd.Series, pd.DataFrame)):
        return value.copy(deep=False)
    if isinstance(value, dict):
        return {key: _handed_out(item) for key, item in value.items()}
    return value


@dataclass(frozen=True, eq=False)
class FittedModel:
    """The frozen state of a fitted linear mixed model: the model, theta and what the optimizer
    did; every other quantity is derived from these on first use and cached. Arrays are
    read-only. The layers above (inference, diagnostics, output) are functions of this state;
    the user-facing ``LmmFit`` adds their methods.

    Attributes:
        model: the ``LinearMixedModel`` (design and cross-products).
        theta: (ntheta,) the covariance parameters at the optimum.
        optsummary: what the optimizer was given and did.
        is_singular: a boundary fit (lme4's ``isSingular``).
        warnings: the messages of the warnings raised while reading the data and fitting
            (rows dropped for missing values, aliased columns, a singular fit...).
    """

    model: "LinearMixedModel"
    theta: np.ndarray
    optsummary: OptSummary
    is_singular: bool
    warnings: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "theta", _frozen(np.array(self.theta, dtype=float)))

    def memo(self, key: str, compute):
        """``compute()``, computed once per fit and kept (for the inference layers' costly
        intermediate results: Satterthwaite's derivatives, Kenward-Roger's matrices, the
        profile)."""
        cache = self.__dict__.setdefault("_memo", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    # -- the factorization and the solution at theta -------------------------------------------
    @cached_property
    def _factor(self) -> Factor:
        return self.model.system.factor(self.theta)

    @cached_property
    def _solution(self):
        """(beta, the spherical random effects per block); beta less the model's
        ``response_shift`` b0 when its cross-products are of y - X b0, b0 added back."""
        beta, v = self._factor.response_solution()
        shift = self.model.response_shift
        return _frozen(beta if shift is None else beta + shift), [_frozen(part) for part in v]

    @property
    def reml(self) -> bool:
        return self.model.reml

    @property
    def formula(self) -> str:
        return self.model.formula

    @property
    def nobs(self) -> int:
        return self.model.design.n

    @property
    def converged(self) -> bool:
        """The optimizer stopped on its own tolerances (free: read from the optimizer summary).
        ``check_convergence()`` is the explicit, costlier second look."""
        return self.optsummary.stopped_normally

    def check_convergence(self) -> ConvergenceCheck:
        """Finite-difference gradient and Hessian of the objective at the optimum, over the
        parameters off their bounds: is there a Newton step that would still lower the
        objective noticeably? Costs about 2 k^2 objective evaluations (k parameters), i.e.
        of the order of the fit itself; computed once per fit, on this call."""
        return self.memo("convergence", lambda: self.model.convergence_check(self.theta))

    # -- criteria ------------------------------------------------------------------------------
    @cached_property
    def objective(self) -> float:
        """REML criterion (lme4's ``REMLcrit``) or -2 log-likelihood (``deviance``)."""
        return self.model.system.objective_from(self._factor, self.reml)

    @property
    def npar(self) -> int:
        """Parameters counted by AIC/BIC: fixed effects, theta and sigma."""
        return len(self.beta) + len(self.theta) + 1

    @property
    def loglik(self) -> float:
        """Log-likelihood (the REML log-likelihood for REML fits, as lme4's ``logLik``)."""
        return -0.5 * self.objective

    @property
    def aic(self) -> float:
        return self.objective + 2 * self.npar

    @property
    def bic(self) -> float:
        return self.objective + self.npar * np.log(self.nobs)

    # -- fixed effects -------------------------------------------------------------------------
    @property
    def beta(self) -> np.ndarray:
        return self._solution[0]

    @property
    def x_names(self) -> tuple[str, ...]:
        return self.model.design.x_names

    @cached_property
    def sigma(self) -> float:
        """Residual standard deviation: r^2 / (n - p) under REML, r^2 / n under ML."""
        dof = residual_dof(self.nobs, len(self.beta), self.reml)
        return float(np.sqrt(self.model.system.pwrss(self._factor) / dof))

    @cached_table
    def fixef(self) -> pd.Series:
        return pd.Series(self.beta, index=list(self.x_names), name="fixef", copy=False)

    @cached_table
    def vcov(self) -> pd.DataFrame:
        """sigma^2 (R_X' R_X)^{-1}: the covariance of beta-hat given theta."""
        cov = _frozen(self.sigma ** 2 * self.model.system.unscaled_vcov(self._factor))
        names = list(self.x_names)
        return pd.DataFrame(cov, index=names, columns=names, copy=False)

    @cached_table
    def stderr(self) -> pd.Series:
        return pd.Series(_frozen(np.sqrt(np.diag(self.vcov.to_numpy()))),
                         index=list(self.x_names), name="stderr")

    # -- variance components -------------------------------------------------------------------
    def term_covariance(self, term_index: int) -> np.ndarray:
        """(p, p) sigma^2 lam_t lam_t' for one lme4 term (0, 1, ... in lme4's order)."""
        parameters = self.model.structure.parameters
        count = len(parameters.structures)
        if not count:
            raise ValueError("term_covariance gives a random-effects term's covariance, and "
                             "this model (generalized least squares, mm.gls) has none; its "
                             "covariance is fit.R")
        allowed = f"a term's position, 0 to {count - 1}"
        if check_integer(term_index, "term_index", minimum=0, allowed=allowed) >= count:
            raise value_error("term_index", allowed, term_index)
        params = self.theta[parameters.slices[term_index]]
        return parameters.structures[term_index].covariance(params, self.sigma)

    @cached_table
    def varcorr(self) -> pd.DataFrame:
        """Variances and correlations as lme4's ``as.data.frame(VarCorr(fit))``:
        columns group, var1, var2, vcov, sdcor; sds first, then correlations, then Residual.
        A structured term's correlations are its parameters' (C(rho)), also where an sd is 0;
        an unstructured term's there are NaN, as lme4's."""
        rows = []
        parameters = self.model.structure.parameters
        for t, term in enumerate(self.model.structure.terms):
            cov = self.term_covariance(t)
            sd, corr = sd_and_correlation(cov)
            structure = parameters.structures[t]
            if isinstance(structure, StructuredCovariance):  # a correlation with an sd of 0
                corr = structure.correlation_matrix(self.theta[parameters.slices[t]])
            for i, name in enumerate(term.columns):
                rows.append((term.label, name, None, cov[i, i], sd[i]))
            for i in range(term.p):
                for j in range(i + 1, term.p):
                    rows.append((term.label, term.columns[i], term.columns[j], cov[i, j],
                                 corr[i, j]))
        rows.append(("Residual", None, None, self.sigma ** 2, self.sigma))
        group, var1, var2, vcov, sdcor = zip(*rows)
        return pd.DataFrame({"group": pd.Series(group, dtype=object),
                             "var1": pd.Series(var1, dtype=object),
                             "var2": pd.Series(var2, dtype=object),
                             "vcov": _frozen(np.array(vcov)), "sdcor": _frozen(np.array(sdcor))})

    # -- random effects ------------------------------------------------------------------------
    @cached_property
    def _u_blocks(self) -> list[np.ndarray]:
        """u per block as (levels, p): u = Lambda v."""
        blocks = self.model.structure.blocks
        return [v.reshape(b.nlevels, b.p) @ b.lam(self.theta).T
                for b, v in zip(blocks, self._solution[1])]

    @cached_property
    def u(self) -> np.ndarray:
        """The BLUPs (conditional modes), aligned with the columns of Z."""
        return _frozen(np.concatenate([u.reshape(-1) for u in self._u_blocks] + [np.zeros(0)]))

    @cached_table
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes per grouping factor: levels as rows, terms as columns."""
        return {b.group: pd.DataFrame(_frozen(u), index=pd.Index(b.levels, name=b.group),
                                      columns=list(b.columns), copy=False)
                for b, u in zip(self.model.structure.blocks, self._u_blocks)}

    @property
    def coef(self) -> dict[str, pd.DataFrame]:
        """Per grouping factor, each level's coefficients, as lme4's ``coef``: the fixed
        effects plus the level's conditional modes for the columns the two share. A random
        column without a fixed effect enters as a fixed effect of 0, in front (as lme4)."""
        fixef = self.fixef
        extra = [c for b in self.model.structure.blocks for c in b.columns
                 if c not in fixef.index]
        base = pd.concat([pd.Series(0.0, index=list(dict.fromkeys(extra))), fixef])
        out = {}
        for group, modes in self.ranef.items():
            table = pd.DataFrame(np.tile(base.to_numpy(), (len(modes), 1)), index=modes.index,
                                 columns=base.index)
            table[modes.columns] += modes.to_numpy()
            out[group] = table
        return out

    @cached_table
    def condvar(self) -> dict[str, np.ndarray]:
        """Var(u_level | y, beta) per grouping factor, as (levels, p, p) arrays."""
        blocks = self.model.structure.blocks
        if not blocks:  # gls: no random effects
            return {}
        spherical = spherical_condvar(self._factor.L, [b.p for b in blocks])
        out = {}
        for b, c in zip(blocks, spherical):
            lam = b.lam(self.theta)
            out[b.group] = _frozen(self.sigma ** 2 * (lam @ c @ lam.T))
        return out

    def ranef_table(self) -> pd.DataFrame:
        """Long form, as lme4's ``as.data.frame(ranef(fit, condVar = TRUE))``:
        columns grpvar, term, grp, condval, condsd."""
        if not self.model.structure.blocks:  # gls: no random effects, no rows
            return pd.DataFrame({"grpvar": [], "term": [], "grp": [], "condval": [],
                                 "condsd": []})
        frames = []
        for b in self.model.structure.blocks:
            values = self.ranef[b.group].to_numpy()
            sds = np.sqrt(np.diagonal(self.condvar[b.group], axis1=1, axis2=2))
            for c, column in enumerate(b.columns):
                frames.append(pd.DataFrame({
                    "grpvar": b.group, "term": column, "grp": b.levels,
                    "condval": values[:, c], "condsd": sds[:, c]}))
        return pd.concat(frames, ignore_index=True)

    # -- fitted values and residuals -----------------------------------------------------------
    def _rows(self, what: str) -> None:
        """A ValueError if the rows are not in this process (a model of a Dask DataFrame)."""
        if not self.model.rows_in_memory:
            raise ValueError(
                f"{what} needs the rows of the data, which stay in the partitions of the Dask "
                "DataFrame the model was fitted to: use fit.fitted_values(), fit.resid() and "
                "fit.predict(), which return Dask series computed on the partitions")

    @cached_property
    def fitted(self) -> np.ndarray:
        """Conditional fitted values X beta + Z u (+ the offset, if the formula has one)."""
        return _frozen(self.X @ self.beta + self.Z @ self.u + self.model.design.offset)

    @cached_property
    def residuals(self) -> np.ndarray:
        """Response residuals y - X beta - Z u."""
        return _frozen(self.y - self.fitted)

    # -- the model in matrix form --------------------------------------------------------------
    @property
    def X(self) -> np.ndarray:
        """(n, p) the fixed-effects model matrix (read-only)."""
        self._rows("fit.X")
        return _frozen(self.model.design.X)

    @property
    def y(self) -> np.ndarray:
        """(n,) the response (read-only)."""
        self._rows("fit.y")
        return _frozen(self.model.design.y)

    @cached_property
    def Z(self) -> sp.csr_array:
        """Random-effects model matrix (n x q, sparse), columns level-major within each factor."""
        self._rows("fit.Z")
        return _frozen_sparse(sparse_z(self.model.structure, self.nobs))

    @cached_property
    def Lambda(self) -> sp.csr_array:
        """Relative covariance factor: G = sigma^2 Lambda Lambda'."""
        blocks = self.model.structure.blocks
        if not blocks:
            return _frozen_sparse(sp.csr_array((0, 0)))
        return _frozen_sparse(sp.csr_array(sp.block_diag(
            [sp.kron(sp.eye(b.nlevels), b.lam(self.theta)) for b in blocks], format="csr")))

    @cached_property
    def G(self) -> sp.csr_array:
        """Var(u) = sigma^2 Lambda Lambda' (q x q, sparse)."""
        return _frozen_sparse(sp.csr_array(self.sigma ** 2 * (self.Lambda @ self.Lambda.T)))

    @cached_table
    def residual_parameters(self) -> pd.Series:
        """The residual structure's estimates on their own scale, as nlme's
        ``coef(fit$modelStruct, unconstrained = FALSE)``: the correlation structure's (Phi,
        Rho, the correlations of ``symm``, the lag correlations of ``toep``, the range of
        ``exp``) then the variance function's (sd ratios to the reference stratum, powers),
        named as in ``confint``; empty without a residual structure."""
        parameters = self.model.structure.parameters
        if parameters.residual is None:
            return pd.Series([], dtype=float, name="residual_parameters")
        values = parameters.residual.values(self.theta[parameters.residual_slice])
        return pd.Series(_frozen(values), index=parameters.residual.names(),
                         name="residual_parameters")

    @cached_property
    def residual(self) -> ResidualStructure:
        """Psi = R / sigma^2 at the estimates (a correlation structure's, a variance
        function's, prior weights' W^-1, or I)."""
        return self.model.residual_at(self.theta)

    @cached_property
    def R(self) -> sp.csr_array:
        """Var(e) = sigma^2 Psi (n x n, sparse): block-diagonal by group under a correlation
        structure, diagonal otherwise (Psi = W^-1 for prior weights W, or I)."""
        self._rows("fit.R")
        return _frozen_sparse(sp.csr_array(self.residual.covariance(self.sigma)))

    @cached_property
    def V(self) -> sp.csr_array:
        """Var(y) = Z G Z' + R (n x n, sparse), for data of at most ``DENSE_V_LIMIT`` rows.

        Raises:
            ValueError: for larger data, where V can need gigabytes; every quantity the
                package reports is computed without it.
        """
        self._rows("fit.V")
        if self.nobs > DENSE_V_LIMIT:
            raise ValueError(
                f"fit.V is an n x n matrix and the fit has {self.nobs} observations (the limit "
                f"is {DENSE_V_LIMIT}); use fit.Z, fit.G and fit.R (V = Z G Z' + R) or the "
                "V-free methods: fit.leverage(), fit.cooks_distance(), fit.predict(..., "
                "interval=...), fit.resid(\"marginal\")")
        return _frozen_sparse(sp.csr_array(self.Z @ self.G @ self.Z.T + self.R))


def check_fitted(value, name: str = "fit") -> FittedModel:
    """A fitted model (an ``LmmFit``, from ``mm.lmer``), as given."""
    if not isinstance(value, FittedModel):
        raise type_error(name, "a fitted model (an LmmFit, from mm.lmer)", value)
    return value
