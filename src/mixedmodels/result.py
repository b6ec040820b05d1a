"""``LmmFit``: the user-facing result, a thin facade over the fitted state.

The numbers live in ``lmm.FittedModel`` (theta, beta, sigma, the factor, the design); the
methods here hand that state to the layers below (inference, diagnostics, output), which never
import this module.

A fit uses the layers up to ``lmm`` only. The layers the methods hand the fit to (inference,
diagnostics, output) are imported on a method's first call (``deferred``), so that ``import
mixedmodels`` loads what a fit needs and no more: those layers are a third of the package's
own import time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .deferred import deferred
from .design.build import aligned_series
from .errors import ArgumentTypeError
from .lmm.fitted import FittedModel
from .lmm.model import GeneralizedLeastSquares as _GlsStages
from .lmm.model import LinearMixedModel as _ModelStages
from .validate import check_choice, check_executor, check_level, check_strings, keyword_hints

__all__ = ["GeneralizedLeastSquares", "LmmFit", "LinearMixedModel"]

_bootstrap = deferred("mixedmodels.inference.bootstrap")
_distributions = deferred("mixedmodels.inference.distributions")
_fixed_tests = deferred("mixedmodels.inference.fixed_tests")
_parameters = deferred("mixedmodels.inference.parameters")
_profile = deferred("mixedmodels.inference.profile")
_ranova = deferred("mixedmodels.inference.ranova")
_simulate = deferred("mixedmodels.inference.simulate")
_influence = deferred("mixedmodels.diagnostics.influence")
_predict = deferred("mixedmodels.diagnostics.predict")
_rows = deferred("mixedmodels.diagnostics.rows")
_display = deferred("mixedmodels.output.display")
_tables = deferred("mixedmodels.output.tables")

CONFINT_METHODS = ("profile", "wald", "bootstrap")
CONFINT_ALIASES = {"boot": "bootstrap"}

#: the options ``confint(method="bootstrap")`` passes on to ``LmmFit.bootstrap``
BOOTSTRAP_OPTIONS = ("n", "seed", "progress", "n_jobs")


@dataclass(frozen=True, eq=False)  # frozen here too: no attribute can be assigned
class LmmFit(FittedModel):
    """A fitted linear mixed model. Build it with ``mm.lmer`` or ``LinearMixedModel.fit``.

    Every quantity of ``FittedModel`` (criteria, fixed effects, variance components,
    conditional modes, the model matrices) plus the methods that test, predict, diagnose and
    display it.
    """

    # -- inference -----------------------------------------------------------------------------
    @keyword_hints
    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """Fixed effects with standard errors, df, t and p; ``ddf`` is one of
        "satterthwaite", "kenward-roger", "residual", "asymptotic" (see ``inference``); it
        prints as lmerTest's."""
        return _tables.RTable.of(_fixed_tests.coef_table(self, ddf), _tables.coefficients)

    @keyword_hints
    def anova(self, ddf: str = "satterthwaite", type: int = 3) -> pd.DataFrame:
        """F tests, one per fixed-effects term, as lmerTest's ``anova(type = 3)`` (or type 1,
        sequential, or 2): columns sum_sq, mean_sq, num_df, den_df, F, p; it prints as
        lmerTest's."""
        return _tables.RTable.of(_fixed_tests.anova_table(self, ddf, type), _tables.f_tests)

    def test(self, L, ddf: str = "satterthwaite", rhs=0.0) -> dict:
        """F test of H0: L beta = rhs for a contrast matrix L (rows over ``x_names``)."""
        return _fixed_tests.contrast_test(self, L, ddf, rhs)

    @keyword_hints
    def profile(self, level: float = 0.99, points: int = 12, executor=None) -> pd.DataFrame:
        """Profile zeta traces (columns parameter, value, zeta) for every parameter, spanning
        each one's profile interval at ``level``; ``executor`` (``concurrent.futures``, e.g. a
        Dask cluster's) profiles the parameters in parallel."""
        return _profile.profile_table(self, level, points, executor)

    def ranova(self, reduce_terms: bool = True) -> pd.DataFrame:
        """Likelihood-ratio tests of the random-effects terms, each reduced or removed in turn
        (lmerTest's ``ranova``, printed as it prints it; see ``ranova.ranova``)."""
        return _tables.RTable.of(_ranova.ranova(self, reduce_terms), _tables.random_terms)

    def confint(self, method: str = "profile", level: float = 0.95, executor=None,
                parameters=None, **bootstrap_options):
        """Confidence intervals, rows named as lme4's ``confint(oldNames = FALSE)``.

        Args:
            method: "profile" (likelihood profile; of the ML deviance, so a REML fit gets its ML
                refit's intervals, as in lme4), "wald" (fixed effects only: estimate
                +/- z se; variance parameters NaN, as lme4) or "bootstrap" (parametric
                bootstrap percentiles; options such as n=, seed= go to ``bootstrap``); in any
                case, and lme4's "boot" is "bootstrap".
            level: confidence level.
            executor: a ``concurrent.futures`` executor (a process pool, a Dask cluster's
                ``Client.get_executor()``) for the profile's parameters or the bootstrap's
                replicates; the intervals do not depend on it.
            parameters: the rows wanted (names as in the result, lme4's ``parm``); all by
                default. Only those are profiled. The rows keep the model's order (as lme4's),
                whatever the order given, and a name given twice is one row.
            bootstrap_options: with method "bootstrap", ``bootstrap``'s other arguments, as
                keywords: ``confint(method="bootstrap", n=500, seed=1)``.
        """
        if isinstance(method, str):  # lme4's spellings: "Wald", "boot"
            method = CONFINT_ALIASES.get(method.lower(), method.lower())
        method = check_choice(method, "method", CONFINT_METHODS)
        level, executor = check_level(level), check_executor(executor)
        for r_name, ours in (("parm", "parameters"), ("oldNames", None)):
            if r_name in bootstrap_options:
                raise ArgumentTypeError(
                    f"confint() has no argument {r_name!r}; " + (
                        f"for lme4's {r_name}=, write {ours}=" if ours else
                        "its rows are named as lme4's with oldNames = FALSE"))
        if bootstrap_options and method != "bootstrap":
            raise ArgumentTypeError(
                f"confint() takes {', '.join(bootstrap_options)} (options of the bootstrap) "
                f"only with method='bootstrap', not with method={method!r}")
        unknown = [name for name in bootstrap_options if name not in BOOTSTRAP_OPTIONS]
        if unknown:
            hint = " (lme4's nsim is n here)" if "nsim" in unknown else ""
            raise ArgumentTypeError(f"confint() got the unknown option {unknown[0]!r}{hint}; "
                                    f"the bootstrap's options are "
                                    f"{', '.join(BOOTSTRAP_OPTIONS)}")
        names = self._parameter_rows(parameters)
        if method == "profile":
            rows = _profile.profile_intervals(self, names, level, executor)
        elif method == "wald":
            z = _distributions.ndtri(0.5 + level / 2)
            half = dict(zip(self.x_names, z * self.stderr.to_numpy()))
            rows = [(self.fixef[name] - half[name], self.fixef[name] + half[name])
                    if name in half else (np.nan, np.nan) for name in names]
        elif method == "bootstrap":
            bootstrap_options.setdefault("n", 500)  # lme4's default nsim for confint
            intervals = self.bootstrap(level=level, executor=executor,
                                       **bootstrap_options).intervals
            return intervals.loc[names]
        return pd.DataFrame(rows, index=pd.Index(names, name="parameter"),
                            columns=["lower", "upper"])

    def _parameter_rows(self, parameters) -> list[str]:
        """The names of ``confint``'s rows: all parameters, or those asked for."""
        names = _parameters.parameter_names(self)
        if parameters is None:
            return names
        wanted = check_strings(parameters, "parameters",
                               "None, a parameter's name or a list of them")
        unknown = [name for name in wanted if name not in names]
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}; the parameters are "
                             f"{', '.join(names)}")
        return [name for name in names if name in wanted]  # the model's order, as lme4's

    # -- per observation: Series labelled as the data's rows (see ``diagnostics.rows``) -----
    def resid(self, kind: str = "response", scaled: bool = False,
              na_action: str = "omit") -> pd.Series:
        """Residuals, as lme4's ``residuals``: "response" (y - X beta - Z u), "pearson"
        (response times sqrt(prior weights)) or "marginal" (y - X beta); ``scaled`` divides
        by sigma (see ``diagnostics.residuals``). A Series indexed by the fitted rows' labels
        (``na_action="omit"``) or by every row of the data, NaN where a row was dropped for
        missing values (``na_action="exclude"``)."""
        return _rows.by_row(self, _influence.residuals(self, kind, scaled), "residual",
                            na_action)

    def fitted_values(self, kind: str = "conditional", na_action: str = "omit") -> pd.Series:
        """Fitted values: "conditional" (X beta + Z u) or "marginal" (X beta), a Series
        indexed as ``resid``'s (``na_action``)."""
        return _rows.by_row(self, _influence.fitted(self, kind), "fitted", na_action)

    def refit(self, y) -> "LmmFit":
        """The same design fitted to a new response (no formula or data processing; only
        the blocks of A that involve y are recomputed): one value per fitted row, in their
        order, or a Series matched to them by the labels of the data's index.

        Raises:
            DataError: a Series whose labels are not the fitted rows'.
        """
        if isinstance(y, pd.Series):
            y = aligned_series(y, self.model.design.rows, "y", "fitted rows'")
        return self.model.with_response(y).fit(self.optsummary.settings)

    @keyword_hints
    def simulate(self, n: int = 1, seed=None, newdata=None, include_random=False,
                 new_levels: str = "error") -> np.ndarray:
        """n responses simulated from the fitted model, as an (nobs, n) array, or for the rows
        of ``newdata``; ``include_random`` holds the random effects of all (True, lme4's
        ``use.u``) or some grouping factors at their conditional modes (see
        ``simulate.simulate``)."""
        return _simulate.simulate(self, n, seed, newdata, include_random, new_levels)

    @keyword_hints
    def bootstrap(self, n: int, seed=None, progress: bool = True, n_jobs: int = 1,
                  level: float = 0.95, executor=None):
        """Parametric bootstrap: n simulate-and-refit replicates and percentile intervals, as
        lme4's ``bootMer`` and ``confint(method = "boot")`` (see ``bootstrap.bootstrap``; local
        processes with ``n_jobs``, or any ``concurrent.futures`` executor, such as a Dask
        cluster's ``Client.get_executor()``)."""
        return _bootstrap.bootstrap(self, n, seed=seed, progress=progress, n_jobs=n_jobs,
                                    level=level, executor=executor)

    @keyword_hints
    def predict(self, newdata=None, include_random=True, new_levels: str = "error",
                interval=None, level: float = 0.95, na_action: str = "omit"):
        """Predictions for the fitted or new data, a Series (a DataFrame with ``interval``)
        indexed like ``newdata``, or for the fitted data as ``resid``'s (``na_action``); see
        ``predict.predict``. ``include_random`` is True, False or a list of grouping factors
        (lme4's ``re.form``)."""
        return _predict.predict(self, newdata, include_random=include_random,
                                new_levels=new_levels, interval=interval, level=level,
                                na_action=na_action)

    def leverage(self, na_action: str = "omit") -> pd.Series:
        """Diagonal of the hat matrix (see ``diagnostics.leverage``), indexed as ``resid``'s."""
        return _rows.by_row(self, _influence.leverage(self), "leverage", na_action)

    def cooks_distance(self, na_action: str = "omit", method: str = "deletion") -> pd.Series:
        """Cook's distance per observation, indexed as ``resid``'s: ``method`` "deletion" (the
        exact deletion of the observation, variance parameters fixed) or "lme4" (lme4's
        ``cooks.distance``, from the hat values); see ``diagnostics.cooks_distance``."""
        return _rows.by_row(self, _influence.cooks_distance(self, method), "cooks_distance",
                            na_action)

    def influence_groups(self, group: str, progress: bool = True,
                         executor=None) -> pd.DataFrame:
        """Refits without each level of ``group``, optionally on a ``concurrent.futures``
        executor such as a Dask cluster's (see ``diagnostics.influence_groups``)."""
        return _influence.influence_groups(self, group, progress=progress, executor=executor)

    # -- display -------------------------------------------------------------------------------
    @property
    def varcorr(self) -> pd.DataFrame:
        """Variances and correlations as lme4's ``as.data.frame(VarCorr(fit))`` (see
        ``FittedModel.varcorr``), printed as R prints it."""
        return _tables.RTable.of(super().varcorr, _tables.variance_components)

    def summary(self):
        """A summary that prints like lme4's and renders as HTML in notebooks."""
        return _display.Summary(self)

    def __repr__(self) -> str:
        kind = "" if self.model.random_effects else " gls"
        residual = " ".join(f"{name}={structure.text!r}" for name, structure in
                            (("correlation", self.model.correlation),
                             ("variance", self.model.variance)) if structure is not None)
        return (f"<{type(self).__name__}{kind} {self.formula!r} "
                f"{'REML' if self.reml else 'ML'} {residual + ' ' if residual else ''}"
                f"objective={self.objective:.4f} nobs={self.nobs}>")

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def to_dict(self) -> dict:
        """A JSON-ready record of the fit."""
        return {
            "model": "lmer" if self.model.random_effects else "gls",
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
            "residual_structure": _display.residual_structure_lines(self),
            "is_singular": self.is_singular, "converged": self.converged,
            "dropped_columns": list(self.model.design.dropped),
            "optimizer": {"name": self.optsummary.optimizer,
                          "return_code": self.optsummary.return_code,
                          "evaluations": self.optsummary.evaluations,
                          "gradient_evaluations": self.optsummary.gradient_evaluations},
        }


class LinearMixedModel(_ModelStages):
    """lme4's stages (see ``lmm.model.LinearMixedModel``) whose ``fit()`` is an ``LmmFit``."""

    result_type = LmmFit


class GeneralizedLeastSquares(_GlsStages):
    """The stages of a model without random effects (``lmm.model.GeneralizedLeastSquares``)
    whose ``fit()`` is an ``LmmFit``."""

    result_type = LmmFit
