"""The fitted model: a frozen result whose derived quantities are computed once, on first use.

Notation (lme4's): G = Var(u) = sigma^2 Lambda Lambda', R = Var(e) = sigma^2 I,
V = Var(y) = Z G Z' + R; u = Lambda v are the conditional modes (BLUPs).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.stats

from .condvar import spherical_condvar
from .errors import FitWarning, warn_user
from .optimize import ConvergenceCheck, OptSummary
from .pls import Factor, sparse_z

if TYPE_CHECKING:
    from .model import LinearMixedModel

__all__ = ["LmmFit"]


@dataclass(frozen=True, eq=False)
class LmmFit:
    """A fitted linear mixed model. Build it with ``mm.lmer`` or ``LinearMixedModel.fit``."""

    model: "LinearMixedModel"
    theta: np.ndarray
    optsummary: OptSummary
    is_singular: bool

    # -- the factorization and the solution at theta -------------------------------------------
    @cached_property
    def _factor(self) -> Factor:
        return self.model.system.factor(self.theta)

    @cached_property
    def _solution(self):
        return self.model.system.solve(self._factor)

    @property
    def reml(self) -> bool:
        return self.model.reml

    @property
    def formula(self) -> str:
        return self.model.formula

    @property
    def nobs(self) -> int:
        return self.model.design.n

    @cached_property
    def convergence(self) -> ConvergenceCheck:
        """Finite-difference gradient and Hessian at the optimum (computed on first use)."""
        check = self.model.convergence_check(self.theta)
        if not check.converged and not self.is_singular:
            warn_user(f"possible convergence problem: {check.message}", FitWarning)
        return check

    @property
    def converged(self) -> bool:
        """The optimizer stopped on its tolerances and no Newton step could still lower the
        objective noticeably (boundary fits: the free parameters only)."""
        return self.optsummary.stopped_normally and (
            self.is_singular or self.convergence.converged)

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
        dof = self.nobs - len(self.beta) if self.reml else self.nobs
        return float(np.sqrt(self._factor.pwrss() / dof))

    @cached_property
    def fixef(self) -> pd.Series:
        return pd.Series(self.beta, index=list(self.x_names), name="fixef")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """sigma^2 (R_X' R_X)^{-1}: the covariance of beta-hat given theta."""
        cov = self.sigma ** 2 * self.model.system.unscaled_vcov(self._factor)
        names = list(self.x_names)
        return pd.DataFrame(cov, index=names, columns=names)

    @cached_property
    def stderr(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=list(self.x_names),
                         name="stderr")

    # -- variance components -------------------------------------------------------------------
    def term_covariance(self, term_index: int) -> np.ndarray:
        """sigma^2 lam_t lam_t' for one lme4 term (its rows and columns of the block's lam)."""
        term = self.model.structure.terms[term_index]
        lam = self.model.structure.blocks[term.block].lam(self.theta)
        cols = slice(term.offset, term.offset + term.p)
        part = lam[cols, cols]
        return self.sigma ** 2 * part @ part.T

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variances and correlations as lme4's ``as.data.frame(VarCorr(fit))``:
        columns group, var1, var2, vcov, sdcor; sds first, then correlations, then Residual."""
        rows = []
        for t, term in enumerate(self.model.structure.terms):
            cov = self.term_covariance(t)
            sd = np.sqrt(np.diag(cov))
            for i, name in enumerate(term.columns):
                rows.append((term.label, name, None, cov[i, i], sd[i]))
            for i in range(term.p):
                for j in range(i + 1, term.p):
                    denominator = sd[i] * sd[j]
                    corr = cov[i, j] / denominator if denominator > 0 else np.nan
                    rows.append((term.label, term.columns[i], term.columns[j], cov[i, j], corr))
        rows.append(("Residual", None, None, self.sigma ** 2, self.sigma))
        group, var1, var2, vcov, sdcor = zip(*rows)
        return pd.DataFrame({"group": pd.Series(group, dtype=object),
                             "var1": pd.Series(var1, dtype=object),
                             "var2": pd.Series(var2, dtype=object),
                             "vcov": np.array(vcov), "sdcor": np.array(sdcor)})

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
        return np.concatenate([u.reshape(-1) for u in self._u_blocks])

    @cached_property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes per grouping factor: levels as rows, terms as columns."""
        return {b.group: pd.DataFrame(u, index=pd.Index(b.levels, name=b.group),
                                      columns=list(b.columns))
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

    @cached_property
    def condvar(self) -> dict[str, np.ndarray]:
        """Var(u_level | y, beta) per grouping factor, as (levels, p, p) arrays."""
        blocks = self.model.structure.blocks
        spherical = spherical_condvar(self._factor.L, [b.p for b in blocks])
        out = {}
        for b, c in zip(blocks, spherical):
            lam = b.lam(self.theta)
            out[b.group] = self.sigma ** 2 * (lam @ c @ lam.T)
        return out

    def ranef_table(self) -> pd.DataFrame:
        """Long form, as lme4's ``as.data.frame(ranef(fit, condVar = TRUE))``:
        columns grpvar, term, grp, condval, condsd."""
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
    @cached_property
    def fitted(self) -> np.ndarray:
        """Conditional fitted values X beta + Z u (+ the offset, if the formula has one)."""
        return self.X @ self.beta + self.Z @ self.u + self.model.design.offset

    @cached_property
    def residuals(self) -> np.ndarray:
        """Response residuals y - X beta - Z u."""
        return self.model.design.y - self.fitted

    # -- the model in matrix form --------------------------------------------------------------
    @property
    def X(self) -> np.ndarray:
        return self.model.design.X

    @property
    def y(self) -> np.ndarray:
        return self.model.design.y

    @cached_property
    def Z(self) -> sp.csr_array:
        """Random-effects model matrix (n x q, sparse), columns level-major within each factor."""
        return sparse_z(self.model.structure)

    @cached_property
    def Lambda(self) -> sp.csr_array:
        """Relative covariance factor: G = sigma^2 Lambda Lambda'."""
        blocks = self.model.structure.blocks
        return sp.csr_array(sp.block_diag(
            [sp.kron(sp.eye(b.nlevels), b.lam(self.theta)) for b in blocks], format="csr"))

    @cached_property
    def G(self) -> sp.csr_array:
        """Var(u) = sigma^2 Lambda Lambda' (q x q, sparse)."""
        return sp.csr_array(self.sigma ** 2 * (self.Lambda @ self.Lambda.T))

    @cached_property
    def R(self) -> sp.csr_array:
        """Var(e) = sigma^2 W^-1 (n x n, sparse; W the prior weights, I without them)."""
        return sp.csr_array(sp.diags_array(self.sigma ** 2 / self.model.design.weights,
                                           format="csr"))

    @cached_property
    def _whitened(self) -> tuple[np.ndarray, sp.csr_array]:
        """(W^1/2 X, W^1/2 Z): the model matrices of the rows scaled by the square roots of
        the prior weights, in which Var(e) = sigma^2 I (X and Z themselves without weights)."""
        if not self.model.design.weighted:
            return self.X, self.Z
        root = np.sqrt(self.model.design.weights)
        return self.X * root[:, None], sp.csr_array(sp.diags_array(root) @ self.Z)

    @cached_property
    def V(self) -> sp.csr_array:
        """Var(y) = Z G Z' + R (n x n, sparse)."""
        return sp.csr_array(self.Z @ self.G @ self.Z.T + self.R)

    # -- inference -----------------------------------------------------------------------------
    @cached_property
    def _varpar_derivatives(self):
        from .satterthwaite import varpar_derivatives

        return varpar_derivatives(self)

    @cached_property
    def _kenward_roger(self):
        from .kenward_roger import KenwardRoger

        return KenwardRoger.from_fit(self)

    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """Fixed effects with standard errors, df, t and p; ``ddf`` is one of
        "satterthwaite", "kenward-roger", "residual", "asymptotic" (see ``inference``)."""
        from .inference import coef_table

        return coef_table(self, ddf)

    def anova(self, ddf: str = "satterthwaite", type: int = 3) -> pd.DataFrame:
        """F tests, one per fixed-effects term, as lmerTest's ``anova(type = 3)`` (or type 1,
        sequential, or 2): columns F, num_df, den_df, p."""
        from .inference import anova_table

        return anova_table(self, ddf, type)

    def test(self, L, ddf: str = "satterthwaite", rhs=0.0) -> dict:
        """F test of H0: L beta = rhs for a contrast matrix L (rows over ``x_names``)."""
        from .inference import contrast_test

        return contrast_test(self, L, ddf, rhs)

    @cached_property
    def _profiler(self):
        from .profile import Profiler

        return Profiler(self)

    def profile(self, level: float = 0.99, points: int = 12, executor=None) -> pd.DataFrame:
        """Profile zeta traces (columns parameter, value, zeta) for every parameter, spanning
        each one's profile interval at ``level``; ``executor`` (``concurrent.futures``, e.g. a
        Dask cluster's) profiles the parameters in parallel."""
        from .profile import parameter_names, profile_traces

        traces = profile_traces(self, parameter_names(self), level, points, executor)
        return pd.concat(traces, ignore_index=True)

    def ranova(self, reduce_terms: bool = True) -> pd.DataFrame:
        """Likelihood-ratio tests of the random-effects terms, each reduced or removed in turn
        (lmerTest's ``ranova``; see ``ranova.ranova``)."""
        from .ranova import ranova

        return ranova(self, reduce_terms)

    def confint(self, method: str = "profile", level: float = 0.95, executor=None,
                parameters=None, **bootstrap_options):
        """Confidence intervals, rows named as lme4's ``confint(oldNames = FALSE)``.

        Args:
            method: "profile" (likelihood profile; of the ML deviance, so a REML fit gets its ML
                refit's intervals, as in lme4), "wald" (fixed effects only: estimate
                +/- z se; variance parameters NaN, as lme4) or "bootstrap" (parametric
                bootstrap percentiles; options such as n=, seed= go to ``bootstrap``).
            level: confidence level.
            executor: a ``concurrent.futures`` executor (a process pool, a Dask cluster's
                ``Client.get_executor()``) for the profile's parameters or the bootstrap's
                replicates; the intervals do not depend on it.
            parameters: the rows wanted (names as in the result, lme4's ``parm``); all by
                default. Only those are profiled.
        """
        from .profile import parameter_names, profile_intervals

        names = parameter_names(self)
        if parameters is not None:
            wanted = [parameters] if isinstance(parameters, str) else list(parameters)
            unknown = [name for name in wanted if name not in names]
            if unknown:
                raise ValueError(f"unknown parameter {unknown[0]!r}; the parameters are "
                                 f"{', '.join(names)}")
            names = wanted
        if method == "profile":
            rows = profile_intervals(self, names, level, executor)
        elif method == "wald":
            z = scipy.stats.norm.ppf(0.5 + level / 2)
            half = dict(zip(self.x_names, z * self.stderr.to_numpy()))
            rows = [(self.fixef[name] - half[name], self.fixef[name] + half[name])
                    if name in half else (np.nan, np.nan) for name in names]
        elif method == "bootstrap":
            bootstrap_options.setdefault("n", 500)  # lme4's default nsim for confint
            intervals = self.bootstrap(level=level, executor=executor,
                                       **bootstrap_options).intervals
            return intervals.loc[names]
        else:
            raise ValueError(f"unknown method {method!r}; choose 'profile', 'wald' or "
                             "'bootstrap'")
        return pd.DataFrame(rows, index=pd.Index(names, name="parameter"),
                            columns=["lower", "upper"])

    def resid(self, kind: str = "response", scaled: bool = False) -> np.ndarray:
        """Residuals, as lme4's ``residuals``: "response" (y - X beta - Z u), "pearson"
        (response times sqrt(prior weights)) or "marginal" (y - X beta); ``scaled`` divides
        by sigma; see ``diagnostics.residuals``."""
        from .diagnostics import residuals

        return residuals(self, kind, scaled)

    def fitted_values(self, kind: str = "conditional") -> np.ndarray:
        """Fitted values: "conditional" (X beta + Z u) or "marginal" (X beta)."""
        from .diagnostics import fitted

        return fitted(self, kind)

    def refit(self, y) -> "LmmFit":
        """The same design fitted to a new response (no formula or data processing; only
        the blocks of A that involve y are recomputed)."""
        return self.model.with_response(y).fit(self.optsummary.settings)

    def simulate(self, n: int = 1, seed=None) -> np.ndarray:
        """n responses simulated from the fitted model, as an (nobs, n) array (``simulate``)."""
        from .simulate import simulate

        return simulate(self, n, seed)

    def bootstrap(self, n: int, seed=None, progress: bool = True, n_jobs: int = 1,
                  level: float = 0.95, executor=None):
        """Parametric bootstrap: n simulate-and-refit replicates and percentile intervals, as
        lme4's ``bootMer`` and ``confint(method = "boot")`` (see ``bootstrap.bootstrap``; local
        processes with ``n_jobs``, or any ``concurrent.futures`` executor, such as a Dask
        cluster's ``Client.get_executor()``)."""
        from .bootstrap import bootstrap

        return bootstrap(self, n, seed=seed, progress=progress, n_jobs=n_jobs, level=level,
                         executor=executor)

    def predict(self, newdata=None, include_random=True, new_levels: str = "error",
                interval=None, level: float = 0.95):
        """Predictions for the fitted or new data (see ``predict.predict``); ``include_random``
        is True, False or a list of grouping factors (lme4's ``re.form``)."""
        from .predict import predict

        return predict(self, newdata, include_random=include_random, new_levels=new_levels,
                       interval=interval, level=level)

    def leverage(self) -> np.ndarray:
        """Diagonal of the hat matrix (see ``diagnostics.leverage``)."""
        from .diagnostics import leverage

        return leverage(self)

    def cooks_distance(self) -> np.ndarray:
        """Cook's distance per observation (see ``diagnostics.cooks_distance``)."""
        from .diagnostics import cooks_distance

        return cooks_distance(self)

    def influence_groups(self, group: str, progress: bool = True,
                         executor=None) -> pd.DataFrame:
        """Refits without each level of ``group``, optionally on a ``concurrent.futures``
        executor such as a Dask cluster's (see ``diagnostics.influence_groups``)."""
        from .diagnostics import influence_groups

        return influence_groups(self, group, progress=progress, executor=executor)

    # -- display -------------------------------------------------------------------------------
    def summary(self):
        """A summary that prints like lme4's and renders as HTML in notebooks."""
        from .display import Summary

        return Summary(self)

    def __repr__(self) -> str:
        return (f"<LmmFit {self.formula!r} {'REML' if self.reml else 'ML'} "
                f"objective={self.objective:.4f} nobs={self.nobs}>")

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def to_dict(self) -> dict:
        """A JSON-ready record of the fit."""
        return {
            "formula": self.formula, "method": "REML" if self.reml else "ML",
            "nobs": self.nobs, "objective": self.objective, "loglik": self.loglik,
            "aic": self.aic, "bic": self.bic, "sigma": self.sigma,
            "theta": self.theta.tolist(),
            "fixef": self.fixef.to_dict(), "stderr": self.stderr.to_dict(),
            "vcov": self.vcov.to_numpy().tolist(),
            "varcorr": [{k: (None if isinstance(v, float) and np.isnan(v) else v)
                         for k, v in row.items()}
                        for row in self.varcorr.astype(object).where(
                            self.varcorr.notna(), None).to_dict(orient="records")],
            "is_singular": self.is_singular, "converged": self.converged,
            "dropped_columns": list(self.model.design.dropped),
            "optimizer": {"name": self.optsummary.optimizer,
                          "return_code": self.optsummary.return_code,
                          "evaluations": self.optsummary.evaluations},
        }
