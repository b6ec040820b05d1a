"""The user's entry points: ``lmer``, ``gls`` and ``anova`` (likelihood-ratio tests).

A pandas DataFrame is fitted in memory (``result.LinearMixedModel``); a Dask DataFrame from the
cross-products summed over its partitions (``partitioned_result``, loaded when one is given).
"""

from __future__ import annotations

import pandas as pd

from .core.optimize import OptSettings
from .deferred import deferred
from .lmm.model import check_settings
from .result import GeneralizedLeastSquares, LinearMixedModel, LmmFit
from .validate import check_bool, is_dask_frame, keyword_hints

__all__ = ["anova", "gls", "lmer"]

_partitioned = deferred("mixedmodels.partitioned_result")
_lrt = deferred("mixedmodels.inference.lrt")
_tables = deferred("mixedmodels.output.tables")


@keyword_hints
def lmer(formula: str, data: pd.DataFrame, reml: bool = True, *, weights=None,
         correlation=None, variance=None, settings: OptSettings = OptSettings(),
         nobs_checks: str = "error", progress: bool = False) -> LmmFit:
    """Fit a linear mixed model from an lme4-style formula, by REML (default) or ML.

    Args:
        formula: e.g. ``"Reaction ~ Days + (Days | Subject)"``; random-effects terms may have
            a structured covariance: ``ar1(0 + factor(visit) | patient)``, ``cs(...)``,
            ``diag(...)``, ``toep(...)``, ``us(...)``.
        data: a pandas DataFrame, or a Dask DataFrame (partitions read from Parquet or CSV
            files, or on a cluster): the same fit, from the cross-products summed over its
            partitions on the active Dask scheduler (``partitioned.model``).
        weights: prior weights (a column name or one value per row), as lme4's:
            Var(e_i) = sigma^2 / w_i.
        correlation: the residuals' correlation within groups (nlme's ``correlation=``):
            ``"ar1(visit | patient)"``, ``"car1(time | patient)"``, ``"cs(1 | patient)"``,
            ``"symm(visit | patient)"``, ``"toep(visit | patient)"``,
            ``"arma(visit | patient, p = 1, q = 1)"`` (nlme's corARMA), the spatial
            ``"exp(x + y | site)"``, ``"gaus(...)"``, ``"spher(...)"``, ``"lin(...)"`` and
            ``"ratio(...)"``, or an object of ``mm.cov``. Its groups must lie within
            the levels of each random-effects grouping factor.
        variance: the residuals' variance function (nlme's ``weights=``): ``"ident(centre)"``
            (an sd per level), ``"power(x)"``, ``"exp(x)"``, or an object of ``mm.cov``.
        settings: optimizer settings.
        nobs_checks: "error", "warning" or "ignore": what a model with too few observations
            for its random effects is, as lme4's ``check.nobs.vs.nRE``.
        progress: a progress bar for each pass over a Dask DataFrame.

    Example:
        >>> import mixedmodels as mm
        >>> fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
        >>> print(fit.summary())
    """
    settings, progress = check_settings(settings), check_bool(progress, "progress")
    if is_dask_frame(data):
        return _partitioned.PartitionedModel(formula, data, reml=reml, weights=weights,
                                nobs_checks=nobs_checks, progress=progress,
                                correlation=correlation, variance=variance).fit(settings)
    return LinearMixedModel(formula, data, reml=reml, weights=weights, nobs_checks=nobs_checks,
                            correlation=correlation, variance=variance).fit(settings)


@keyword_hints
def gls(formula: str, data: pd.DataFrame, reml: bool = True, *, correlation=None,
        variance=None, weights=None, settings: OptSettings = OptSettings(),
        progress: bool = False) -> LmmFit:
    """Fit a linear model with correlated or heteroscedastic residuals by generalized least
    squares, REML (default) or ML, as nlme's ``gls`` and PROC MIXED with only a REPEATED
    statement: y = X beta + e, e ~ N(0, sigma^2 Psi).

    Args:
        formula: without random-effects terms, e.g. ``"distance ~ age * Sex"``.
        data: a pandas DataFrame, or a Dask DataFrame (as ``lmer``'s; a correlation
            structure's groups must each lie in one partition: ``partitioned.residual``).
        correlation, variance, weights: as ``lmer``'s (``correlation`` groups need not nest
            in anything).
        progress: a progress bar for each pass over a Dask DataFrame.

    Example:
        >>> fit = mm.gls("y ~ arm * visit", mm.datasets.load("trial"),
        ...              correlation="symm(visit | patient)", variance="ident(visit)")
        >>> fit.residual_parameters      # the correlations and sd ratios
    """
    settings, progress = check_settings(settings), check_bool(progress, "progress")
    if is_dask_frame(data):
        return _partitioned.PartitionedGls(formula, data, reml=reml, weights=weights,
                              correlation=correlation, variance=variance,
                              progress=progress).fit(settings)
    return GeneralizedLeastSquares(formula, data, reml=reml, weights=weights,
                                   correlation=correlation, variance=variance).fit(settings)


@keyword_hints
def anova(*fits: LmmFit, refit: bool = True, names=None) -> pd.DataFrame:
    """Likelihood-ratio tests between nested models, as lme4's ``anova(m0, m1, ...)``: the
    table of ``inference.lrt.anova`` (see there for the arguments and the checks), printed as
    lme4 prints it."""
    return _tables.RTable.of(_lrt.anova(*fits, refit=refit, names=names),
                             _tables.likelihood_ratio)
