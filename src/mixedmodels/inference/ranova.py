"""Likelihood-ratio tests of the random-effects terms, as lmerTest's ``ranova``.

Each random-effects term (after lme4's expansion of ``g/h`` and ``||``) is in turn reduced or
removed, the model is refitted to the same rows by the same criterion (REML or ML), and the
reduction is tested by the likelihood ratio against the full model:

* a term whose left side has terms that no other term of it contains (``Days`` in
  ``(Days | Subject)``) is reduced by each of them in turn: ``(Days | Subject)`` becomes
  ``(1 | Subject)``, row ``Days in (Days | Subject)``; a left side of one term becomes ``1``
  (so ``(0 + Days | Subject)`` becomes ``(1 | Subject)``, as in lmerTest);
* a term with no such left-side term (``(1 | Subject)``) is removed, row ``(1 | Subject)``;
  without random effects left the reduced model is the linear model, whose (REML)
  log-likelihood is R's ``logLik.lm``;
* with ``reduce_terms=False`` every term is removed whole;
* a term with a structured covariance (``diag``, ``cs``, ``ar1``, ``toep``: lme4 2.x's syntax)
  is removed whole: its reductions would change its structure's meaning (an AR(1) of other
  columns) or leave it with one column, which ``cs``, ``ar1`` and ``toep`` do not take.

A reduction that repeats a term already in the model leaves it once (R's formulas are sets of
terms). A residual structure (``correlation=``, ``variance=``) is kept in every reduced model:
without random effects left, the reduced model is the ``gls`` fit with that structure. The
p-value is the upper chi-square tail with the difference in parameters as degrees of freedom,
which is conservative for variances on the boundary of their space.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import scipy.linalg
from formulaic import Formula

from ..core.criterion import Pieces, criterion
from ..errors import FitWarning
from ..formula.parse import r_factor_order, r_written
from ..validate import check_bool
from .distributions import chdtrc

__all__ = ["ranova"]


def ranova(fit, reduce_terms: bool = True) -> pd.DataFrame:
    """Single-term reductions of the random effects (lmerTest's ``ranova``).

    Returns:
        a DataFrame indexed by ``<none>`` (the fitted model) and one label per reduction, with
        columns ``npar, logLik, AIC, LRT, Df, p`` (``p`` is lmerTest's ``Pr(>Chisq)``; LRT,
        Df and p are NaN on the first row). ``df.attrs["formulas"]`` maps each label to the
        reduced model's formula, ``df.attrs["formula"]`` is the fitted model's.
    """
    reduce_terms = check_bool(reduce_terms, "reduce_terms")
    if not fit.model.random_effects:
        raise ValueError("ranova tests the random-effects terms, and this fit (generalized "
                         "least squares, mm.gls) has none; compare residual structures with "
                         "mm.anova(fit1, fit2, refit=False)")
    formula = fit.model.design.formula
    terms = list(formula.random)
    reductions = {}
    for k, term in enumerate(terms):
        others = terms[:k] + terms[k + 1:]
        droppable = _droppable(term.expr) if reduce_terms and term.structure == "us" else []
        label = term.label
        if not droppable:
            reductions[label] = others
            continue
        for dropped, reduced in droppable:
            reductions[f"{dropped} in {label}"] = \
                terms[:k] + [replace(term, expr=reduced)] + terms[k + 1:]
    rows = {"<none>": (fit.npar, fit.loglik)}
    formulas = {}
    for label, random in reductions.items():
        text = _formula_text(formula, random)
        formulas[label] = text
        rows[label] = _reduced_loglik(fit, text, bool(random))
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["npar", "logLik"])
    table["npar"] = table["npar"].astype(int)
    table["AIC"] = -2 * table["logLik"] + 2 * table["npar"]
    lrt = 2 * (table["logLik"].iloc[0] - table["logLik"])
    df = table["npar"].iloc[0] - table["npar"]
    table["LRT"] = lrt.where(table.index != "<none>")
    table["Df"] = df.astype(float).where(table.index != "<none>")
    table["p"] = [np.nan if label == "<none>" or d <= 0 else float(chdtrc(d, max(x, 0.0)))
                  for label, x, d in zip(table.index, lrt, df)]
    table.attrs["formulas"] = formulas
    table.attrs["formula"] = fit.formula
    return table


def _droppable(expr: str) -> list[tuple[str, str]]:
    """(label, reduced left side) for each left-side term that no other term contains; an
    interaction's factors in R's order, as lmerTest labels it (``c:a in (c + a:c | g)``)."""
    parsed = Formula(r_factor_order(expr))
    labels, intercept = [], False
    for term in parsed:
        factors = frozenset(str(f) for f in term.factors if str(f) != "1")
        if not factors:
            intercept = True
        else:
            labels.append((r_written(str(term)), factors))
    out = []
    for label, factors in labels:
        if any(factors < other for _, other in labels):
            continue
        rest = [other_label for other_label, other in labels if other != factors]
        reduced = "1" if not rest else ("" if intercept else "0 + ") + " + ".join(rest)
        out.append((label, reduced))
    return out


def _formula_text(formula, random) -> str:
    """The formula with these random terms (each once), the same response, fixed part and
    offsets."""
    parts = [formula.fixed] + [f"offset({offset})" for offset in formula.offsets]
    parts += [term.text for term in dict.fromkeys(random)]
    return f"{formula.response} ~ " + " + ".join(parts)


def _reduced_loglik(fit, text: str, has_random: bool) -> tuple[int, float]:
    """(npar, log-likelihood) of the reduced model on the rows of the fit, by its criterion."""
    design = fit.model.design
    if has_random or fit.model.structure.parameters.residual is not None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="boundary \\(singular\\) fit",
                                    category=FitWarning)
            reduced = fit.model.rebuild(formula=text).fit()
        if reduced.nobs != fit.nobs:
            raise ValueError(f"the reduced model {text!r} uses {reduced.nobs} rows, the model "
                             f"{fit.nobs}")
        return reduced.npar, reduced.loglik
    residual = fit.residual
    return len(fit.beta) + 1, _linear_model_loglik(
        residual.whiten(design.X), residual.whiten(design.y - design.offset), fit.reml,
        residual.log_det())


def _linear_model_loglik(X: np.ndarray, y: np.ndarray, reml: bool,
                         log_det_psi: float = 0.0) -> float:
    """The linear model's (REML) log-likelihood, R's ``logLik.lm``: the mixed model's criterion
    without random effects, log|L_Z| = 0, log|R_X|^2 = 2 sum log |diag R| of X = QR, r^2 the
    residual sum of squares; ``log_det_psi`` that of the residual structure (the rows are
    whitened already)."""
    n, p = X.shape
    q, r = scipy.linalg.qr(X, mode="economic")
    residual = y - q @ (q.T @ y)
    pieces = Pieces(0.0, 2.0 * float(np.sum(np.log(np.abs(np.diag(r))))), residual @ residual)
    return -0.5 * criterion(pieces, n, p, reml, log_det_psi)
