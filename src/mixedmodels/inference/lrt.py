"""Likelihood-ratio tests between nested models, as lme4's ``anova(m0, m1, ...)``.

    >>> import mixedmodels as mm
    >>> data = mm.datasets.load("sleepstudy")
    >>> m0 = mm.lmer("Reaction ~ Days + (1 | Subject)", data, reml=False)
    >>> m1 = mm.lmer("Reaction ~ Days + (Days | Subject)", data, reml=False)
    >>> print(mm.anova(m0, m1, names=["m0", "m1"]))
    Models:
    m0: Reaction ~ Days + (1 | Subject)
    m1: Reaction ~ Days + (Days | Subject)
       npar    AIC    BIC  logLik deviance  Chisq Df Pr(>Chisq)
    m0    4 1802.1 1814.9 -897.04   1794.1
    m1    6 1763.9 1783.1 -875.97   1751.9 42.139  2  7.072e-10

``mm.anova`` prints the table as lme4 does (``output.tables``); the DataFrame itself is this
module's ``anova``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.structure import build_structure
from ..design.build import build_design
from ..errors import ArgumentTypeError, DataError, FitWarning, FormulaError, warn_user
from ..lmm.fitted import FittedModel as LmmFit
from ..validate import check_bool, check_strings, type_error, value_error
from .distributions import chdtrc

__all__ = ["anova"]

COLUMNS = ("npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "p")
REFIT_MESSAGE = "refitting model(s) with ML (instead of REML)"
_SPAN_TOLERANCE = 1e-8  # relative residual of a column projected on the larger model's columns


def anova(*fits: LmmFit, refit: bool = True,
          names: Sequence[str] | None = None) -> pd.DataFrame:
    """Likelihood-ratio tests between nested models fitted to the same data (lme4's
    ``anova(m0, m1, ...)``).

    Args:
        *fits: two or more ``LmmFit``, in any order: the rows are sorted by the number of
            parameters.
        refit: as lme4, refit REML fits by maximum likelihood (``model.with_reml(False)``), with
            a ``FitWarning`` saying so; the likelihood-ratio test of models that differ in their
            fixed effects is only valid on the ML likelihood. With ``refit=False``, REML fits
            are compared by their REML criterion, which is only allowed when all models have
            the same fixed effects (and all are REML fits).
        names: row labels, one per fit in argument order. By default the formulas, or
            ``model 1``, ``model 2``, ... (argument order) when two formulas coincide or a
            model has a residual structure; the printed table then lists each label's
            formula and residual structure ("model 1: distance ~ age * Sex,
            correlation=ar1(age | Subject)").

    Returns:
        A DataFrame with one row per model, sorted by ``npar`` and indexed by the labels, with
        columns ``npar, AIC, BIC, logLik, deviance, Chisq, Df, p`` as lme4's printout (``p`` is
        lme4's ``Pr(>Chisq)``). ``deviance`` is -2 logLik; ``Chisq`` is the deviance decrease
        from the row above (0 if the deviance increased, as in lme4), ``Df`` the increase in
        parameters and ``p`` the upper tail of the chi-square distribution; they are NaN in
        the first row. ``df.attrs`` holds ``criterion`` ("ML" or "REML"), ``refitted`` (the
        labels of the models refitted by ML) and ``formulas`` (each label's formula, followed
        by its ``correlation=`` and ``variance=`` if it has them).

    Raises:
        ValueError: fewer than two models; models fitted to different data (different number
            of observations or response values); models that are visibly not nested:
            fixed-effect columns of the smaller model outside the span
            of the larger's, a grouping factor of the smaller model missing from the larger
            (grouping factors are matched by the partition of the observations they define, so
            ``(1 | a:b)`` matches ``(1 | b:a)``), or random-effect columns of the smaller model
            outside the span of the larger's on that factor; REML fits with ``refit=False``
            whose fixed effects differ or that are mixed with ML fits.

    Models with residual structures (``correlation=``, ``variance=``, ``mm.gls``) are compared
    as nlme's ``anova`` compares them: REML fits that differ only in their covariance
    structures (random effects or residual structure) with ``refit=False`` (their fixed
    effects must be the same), ML fits always. Two models with as many parameters (AR(1) and
    compound symmetry residuals; ``(1 | g)`` and ``(0 + x | g)``) are listed with their AIC
    and BIC and no test (Chisq, Df and p NaN: neither is nested in the other; lme4 prints a
    Chisq with Df 0 and no p). That one residual structure is
    a special case of the other (compound symmetry and AR(1) of an unstructured ``symm`` +
    ``ident``) is not checked.

    These checks catch models that are obviously not nested; that the smaller model is
    really a special case of the larger one (the hypothesis tested is that the extra
    parameters are zero or take their boundary values) is, as in lme4, the user's
    responsibility. Note also that a null hypothesis on the boundary (a variance equal to 0)
    makes the chi-square p-value conservative.
    """
    fits = tuple(fits)
    if len(fits) < 2:
        raise ValueError("anova() compares two or more fitted models; got "
                         f"{len(fits)}: for the tests of one model's fixed effects, call "
                         "fit.anova() (lmerTest's table)")
    for i, fit in enumerate(fits):
        if not isinstance(fit, LmmFit):
            raise ArgumentTypeError(f"argument {i + 1} of anova() is {type(fit).__name__!r}, "
                                    "not a fitted model (LmmFit)")
    refit = check_bool(refit, "refit")
    labels = _labels(fits, names)

    _check_same_data(fits, labels)
    # lme4 orders by the number of parameters (a stable sort: ties keep the argument order)
    order = sorted(range(len(fits)), key=lambda i: fits[i].npar)
    for small, large in zip(order, order[1:]):
        _check_nested(fits[small], fits[large], labels[small], labels[large])

    reml = [fit.reml for fit in fits]
    refitted: list[str] = []
    if any(reml):
        if refit:
            warn_user(REFIT_MESSAGE, FitWarning)
            fits = tuple(fit.model.with_reml(False).fit(fit.optsummary.settings)
                         if fit.reml else fit for fit in fits)
            refitted = [labels[i] for i in order if reml[i]]
        else:
            _check_reml_comparable(fits, labels)
    criterion = "REML" if any(fit.reml for fit in fits) else "ML"

    ordered = [fits[i] for i in order]
    npar = np.array([fit.npar for fit in ordered])
    loglik = np.array([fit.loglik for fit in ordered])
    nobs = ordered[0].nobs
    deviance = -2.0 * loglik
    chisq = np.concatenate([[np.nan], 2.0 * np.maximum(0.0, np.diff(loglik))])
    df = np.concatenate([[np.nan], np.diff(npar).astype(float)])
    p = np.full(len(ordered), np.nan)
    p[1:] = chdtrc(df[1:], chisq[1:])  # the chi-square upper tail, scipy.stats.chi2.sf
    untested = np.concatenate([[False], df[1:] == 0])  # as many parameters: no test (nlme)
    chisq[untested] = df[untested] = p[untested] = np.nan
    table = pd.DataFrame({
        "npar": npar, "AIC": deviance + 2.0 * npar, "BIC": deviance + np.log(nobs) * npar,
        "logLik": loglik, "deviance": deviance, "Chisq": chisq, "Df": df, "p": p,
    }, index=pd.Index([labels[i] for i in order]), columns=list(COLUMNS))
    table.attrs["criterion"] = criterion
    table.attrs["refitted"] = refitted
    table.attrs["formulas"] = {labels[i]: _description(fits[i]) for i in order}
    return table


def _labels(fits: tuple[LmmFit, ...], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        allowed = f"a list of {len(fits)} distinct strings, one for each of the {len(fits)} models"
        if isinstance(names, str):
            raise type_error("names", allowed, names)
        labels = check_strings(names, "names", allowed)
        if len(labels) != len(fits) or len(set(labels)) != len(labels):
            raise value_error("names", allowed, labels)
        return labels
    labels = [_description(fit) for fit in fits]
    if len(set(labels)) != len(labels) or labels != [fit.formula for fit in fits]:
        return [f"model {i + 1}" for i in range(len(fits))]
    return labels


def _description(fit: LmmFit) -> str:
    """The fit's formula, and its residual structure as given to ``correlation=`` and
    ``variance=``: "distance ~ age * Sex, correlation=ar1(age | Subject)"."""
    parts = [fit.formula]
    for argument in ("correlation", "variance"):
        structure = getattr(fit.model, argument, None)
        if structure is not None:
            parts.append(f"{argument}={structure.text}")
    return ", ".join(parts)


def _check_same_data(fits: tuple[LmmFit, ...], labels: list[str]) -> None:
    first = fits[0]
    kinds = {fit.model.rows_in_memory for fit in fits}
    if len(kinds) > 1:
        raise ValueError(
            "models fitted to a Dask DataFrame and to a pandas DataFrame cannot be compared: "
            "fit them all to the same kind of data (mm.lmer(formula, ddf) for each, or each "
            "in memory)")
    for fit, label in zip(fits[1:], labels[1:]):
        if fit.nobs != first.nobs:
            raise ValueError(
                f"models were not all fitted to the same data: {labels[0]!r} has "
                f"{first.nobs} observations, {label!r} has {fit.nobs} (check for rows "
                "dropped for missing values in columns only one model uses)")
        in_memory = first.model.rows_in_memory
        if in_memory:
            same = np.array_equal(fit.model.design.y, first.model.design.y)
        else:  # a Dask fit keeps no rows: the response's sum of squares stands for them
            ours, theirs = _response_sum_of_squares(fit), _response_sum_of_squares(first)
            same = ours is None or theirs is None or np.isclose(ours, theirs, rtol=1e-10,
                                                                atol=0.0)
        if not same:
            reordered = in_memory and np.array_equal(np.sort(fit.model.design.y),
                                                     np.sort(first.model.design.y))
            hint = (" (the same values in another order: fit every model to the rows in "
                    "one order)" if reordered else "")
            raise ValueError(
                f"models were not all fitted to the same data: the response values of "
                f"{labels[0]!r} and {label!r} differ{hint}")
        if in_memory and not np.array_equal(fit.model.design.weights,
                                            first.model.design.weights):
            raise ValueError(
                f"models were not all fitted with the same weights: {labels[0]!r} and "
                f"{label!r} differ")


def _response_sum_of_squares(fit) -> float | None:
    """sum w (y - offset)^2, from the rows when the fit has them, else from its
    cross-products (y'y of a Dask fit's A, weighted as its rows); None for a Dask fit whose A
    changes with a residual structure's parameters."""
    model = fit.model
    if model.rows_in_memory:
        design = model.design
        return float(np.sum(design.weights * (design.y - design.offset) ** 2))
    crossproducts = getattr(model.system, "A_xyxy", None)
    return None if crossproducts is None else float(crossproducts[-1, -1])


def _in_span(columns: np.ndarray, basis: np.ndarray) -> bool:
    """Whether every column of ``columns`` is (numerically) a linear combination of ``basis``."""
    if columns.shape[1] == 0:
        return True
    if basis.shape[1] == 0:
        return not np.any(columns)
    coef = np.linalg.lstsq(basis, columns, rcond=None)[0]
    residual = np.linalg.norm(columns - basis @ coef, axis=0)
    scale = np.maximum(np.linalg.norm(columns, axis=0), np.finfo(float).tiny)
    return bool(np.all(residual <= _SPAN_TOLERANCE * scale))


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two level codings group the observations identically."""
    pairs = np.unique(np.column_stack([a, b]), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def _check_nested(small: LmmFit, large: LmmFit, small_label: str, large_label: str) -> None:
    """Refuse pairs that are visibly not nested (the smaller model has fewer parameters);
    models with as many parameters are compared by AIC and BIC, without a test."""
    what = f"{small_label!r} is not nested in {large_label!r}"
    if small.npar == large.npar:
        return
    (small_x, small_blocks), (large_x, large_blocks) = _rows_of(small, large)
    if not _in_span(small_x, large_x):
        extra = [n for n in small.x_names if n not in large.x_names]
        detail = (f"fixed effect(s) {', '.join(extra)} are not in the larger model" if extra
                  else "its fixed-effect columns are not combinations of the larger model's")
        raise ValueError(f"{what}: {detail}")
    if small.model.rows_in_memory and large.model.rows_in_memory:
        # an offset is a coefficient held at 1: the smaller model's means are the larger's
        # when its offset is the larger's plus a combination of the larger's columns
        shift = (small.model.design.offset - large.model.design.offset)[:, None]
        if np.any(shift) and not _in_span(shift, large_x):
            raise ValueError(f"{what}: their offsets differ by more than a combination of the "
                             "larger model's fixed-effect columns (an offset is a coefficient "
                             "held at 1: offset(x) is nested in a model with x, offset(2 * x) "
                             "in no model without x)")
    for block in small_blocks:
        matches = [b for b in large_blocks if b.group == block.group
                   and np.array_equal(b.codes, block.codes)]
        matches = matches or [b for b in large_blocks if _same_partition(b.codes, block.codes)]
        if not matches:
            raise ValueError(f"{what}: the grouping factor {block.group!r} is not in the "
                             "larger model")
        basis = np.column_stack([b.values for b in matches])
        if not _in_span(block.values, basis):
            raise ValueError(
                f"{what}: the random effects ({', '.join(block.columns)} | {block.group}) are "
                f"not combinations of the larger model's on {block.group!r} "
                f"({', '.join(c for b in matches for c in b.columns)})")


def _rows_of(*fits: LmmFit) -> list[tuple[np.ndarray, tuple]]:
    """Each fit's fixed-effects columns and random-effects blocks on the same rows: its own
    rows in memory; for fits of a Dask DataFrame, which keep none, a fit's sample of the rows
    (``PartitionedDesign.sample``, the first that has every fit's columns) coded by each fit's
    own schema. Without such a sample there are no common rows, and nothing to compare on."""
    if all(fit.model.rows_in_memory for fit in fits):
        return [(fit.model.design.X, fit.model.structure.blocks) for fit in fits]
    for sample in (fit.model.design.sample for fit in fits):
        try:
            return [_coded(fit.model.design, sample) for fit in fits]
        except (DataError, FormulaError):  # a column of another model is not in it
            continue
    return [(fit.model.design.X, fit.model.structure.blocks) for fit in fits]


def _coded(design, rows: pd.DataFrame) -> tuple[np.ndarray, tuple]:
    """A Dask fit's fixed-effects columns and random-effects blocks on some of its rows."""
    coded = build_design(design.formula, rows, design.weights_label, schema=design.schema)
    X = coded.X[:, [coded.x_names.index(name) for name in design.x_names]]
    return X, build_structure(coded.terms).blocks


def _check_reml_comparable(fits: tuple[LmmFit, ...], labels: list[str]) -> None:
    """refit=False: REML criteria are comparable only between models with the same fixed
    effects, and never with ML deviances."""
    reml = [fit.reml for fit in fits]
    if not all(reml):
        mixed = ", ".join(repr(label) for label, r in zip(labels, reml) if r)
        raise ValueError(f"some models were fitted by REML ({mixed}), some by ML: their "
                         "criteria are not comparable; use refit=True to refit by ML")
    first = fits[0]
    for fit, label in zip(fits[1:], labels[1:]):
        same = (fit.x_names == first.x_names
                and np.allclose(fit.model.design.X, first.model.design.X, rtol=1e-12, atol=0))
        if not same:
            raise ValueError(
                f"REML criteria of models with different fixed effects are not comparable "
                f"({labels[0]!r} has {', '.join(first.x_names)}; {label!r} has "
                f"{', '.join(fit.x_names)}); use refit=True to compare them by ML")
