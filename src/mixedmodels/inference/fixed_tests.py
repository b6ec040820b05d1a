"""t and F tests of the fixed effects with a choice of denominator degrees of freedom.

``ddf`` is one of:

* ``"satterthwaite"`` (default, as lmerTest);
* ``"kenward-roger"`` (as pbkrtest; also uses the bias-adjusted covariance of beta-hat);
* ``"residual"``: n - p, the df of ordinary least squares (anti-conservative for cluster-level
  effects);
* ``"asymptotic"``: infinite df, i.e. z and chi-square/q tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import FitWarning, warn_user
from ..validate import type_error, value_error
from . import contrasts
from .distributions import chdtrc, fdtrc, stdtr
from .kenward_roger import KenwardRoger
from .satterthwaite import combine_f_ddf, satterthwaite_df, varpar_derivatives

__all__ = ["DDF_METHODS", "DDF_ALIASES", "DDF_ALLOWED", "DDF_DESCRIPTIONS", "ANOVA_TYPES",
           "check_anova_type", "check_ddf", "coef_table", "contrast_test", "anova_table"]

DDF_METHODS = ("satterthwaite", "kenward-roger", "residual", "asymptotic")
#: each method in words, for reports
DDF_DESCRIPTIONS = {
    "satterthwaite": "Satterthwaite's denominator degrees of freedom",
    "kenward-roger": "Kenward-Roger's denominator degrees of freedom and adjusted standard "
                     "errors",
    "residual": "the residual degrees of freedom (observations minus fixed effects)",
    "asymptotic": "infinite degrees of freedom (asymptotic z tests)",
}


def _kenward_roger(fit) -> KenwardRoger:
    """The fit's Kenward-Roger matrices, computed once per fit."""
    return fit.memo("kenward_roger", lambda: KenwardRoger.from_fit(fit))


def _varpar_derivatives(fit):
    """The fit's Satterthwaite derivatives, computed once per fit."""
    return fit.memo("varpar_derivatives", lambda: varpar_derivatives(fit))


#: other spellings of the methods (any case; "_" or " " for "-")
DDF_ALIASES = {"kr": "kenward-roger", "kenwardroger": "kenward-roger", "satt": "satterthwaite",
               "lme4": "asymptotic", "wald": "asymptotic", "z": "asymptotic"}
#: the methods and aliases, for messages
DDF_ALLOWED = (f"one of {', '.join(map(repr, DDF_METHODS))} (or an alias: "
                f"{', '.join(map(repr, DDF_ALIASES))})")
#: ``anova``'s types and their spellings
ANOVA_TYPES = {"1": 1, "I": 1, "2": 2, "II": 2, "3": 3, "III": 3}


def check_ddf(ddf: str) -> str:
    """The method's name in DDF_METHODS (aliases such as "kr" accepted); a TypeError for a
    value that is not a string, a ValueError for an unknown method."""
    if not isinstance(ddf, str):
        raise type_error("ddf", DDF_ALLOWED, ddf)
    key = ddf.lower().replace("_", "-").replace(" ", "-")
    key = DDF_ALIASES.get(key, key)
    if key not in DDF_METHODS:
        raise value_error("unknown ddf method: ddf", DDF_ALLOWED, ddf)
    return key


def check_anova_type(type) -> int:
    """lmerTest's type of an ANOVA table, 1, 2 or 3 (or "I", "II", "III"), as 1, 2 or 3."""
    allowed = "1, 2 or 3 (or 'I', 'II', 'III')"
    if isinstance(type, (bool, np.bool_)) or not isinstance(type, (str, int, np.integer)):
        raise type_error("type", allowed, type)
    key = ANOVA_TYPES.get(str(type).upper())
    if key is None:
        raise value_error("type", allowed, type)
    return key


def _vcov(fit, ddf: str) -> np.ndarray:
    if ddf == "kenward-roger":
        return _kenward_roger(fit).adjusted_vcov
    return fit.vcov.to_numpy()


def coef_table(fit, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Estimates, standard errors, df, t and two-sided p per fixed-effect coefficient."""
    ddf = check_ddf(ddf)
    vcov = _vcov(fit, ddf)
    beta = fit.beta
    se = np.sqrt(np.diag(vcov))
    eye = np.eye(len(beta))
    df = np.array([_single_df(fit, eye[j], vcov, ddf) for j in range(len(beta))])
    t = beta / se
    p = 2 * stdtr(df, -np.abs(t))
    return pd.DataFrame({"estimate": beta, "std_error": se, "df": df, "t": t, "p": p},
                        index=pd.Index(fit.x_names, name="term"))


def _single_df(fit, contrast: np.ndarray, vcov: np.ndarray, ddf: str) -> float:
    if ddf == "satterthwaite":
        return satterthwaite_df(contrast, vcov, _varpar_derivatives(fit))
    if ddf == "kenward-roger":
        return _kenward_roger(fit).test(contrast[None, :], fit.beta)["den_df"]
    if ddf == "residual":
        return float(fit.nobs - len(fit.beta))
    return np.inf


def contrast_test(fit, L, ddf: str = "satterthwaite", rhs=0.0) -> dict:
    """F test of H0: L beta = rhs. Returns a dict with F, num_df, den_df and p."""
    ddf = check_ddf(ddf)
    L = _contrast_matrix(L, fit.x_names)
    rhs = _right_hand_side(rhs, L.shape[0])
    estimate = L @ fit.beta - rhs
    vcov = fit.vcov.to_numpy()
    values, vectors = np.linalg.eigh(L @ vcov @ L.T)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    q = int(np.sum(values > max(np.sqrt(np.finfo(float).eps) * values[0], 0)))
    if q == 0:
        raise ValueError("the contrast matrix L has no estimable row (every row is zero, or "
                         "in the null space of the fixed effects' covariance): nothing to test")
    if q < L.shape[0]:  # lmerTest's contest warns so too
        _check_consistent(rhs, vectors[:, q:], L @ fit.beta)
        warn_user(f"the contrast matrix L has rank {q}, less than its {L.shape[0]} rows: the "
                  f"F test has {q} numerator df (rows that are combinations of others are "
                  "tested once)", FitWarning)
    rotated = vectors[:, :q].T @ L  # q independent rows spanning L's: the same hypothesis
    if ddf == "kenward-roger":
        return _kenward_roger(fit).test(rotated, fit.beta, vectors[:, :q].T @ rhs)
    f_value = float(np.sum((vectors[:, :q].T @ estimate) ** 2 / values[:q]) / q)
    if ddf == "satterthwaite":
        nu = [satterthwaite_df(row, vcov, _varpar_derivatives(fit)) for row in rotated]
        den_df = combine_f_ddf(np.array(nu))
    else:
        den_df = _single_df(fit, rotated[0], vcov, ddf)
    p = float(fdtrc(q, den_df, f_value)) if np.isfinite(den_df) else float(
        chdtrc(q, f_value * q))
    return {"F": f_value, "num_df": q, "den_df": den_df, "p": p}


def _check_consistent(rhs: np.ndarray, null: np.ndarray, scale: np.ndarray) -> None:
    """A ValueError naming rhs when L beta = rhs asks the impossible: rows of L that are
    combinations of others with right-hand sides that are not the same combinations (rhs
    outside the span of L's columns, whose complement ``null`` spans)."""
    off = np.abs(null.T @ rhs).max(initial=0.0)
    if off > 1e-8 * max(np.abs(rhs).max(), np.abs(scale).max(), 1.0):
        raise ValueError("rhs does not fit L: some rows of L are combinations of others, and "
                         "their right-hand sides are not the same combinations, so no beta has "
                         "L beta = rhs; give the combined rows the combined rhs, or drop them")


def _contrast_matrix(L, x_names) -> np.ndarray:
    """L as a finite 2-d float array with one column per fixed effect (a vector is one row)."""
    allowed = (f"a contrast matrix of finite numbers with {len(x_names)} columns, one per fixed "
               f"effect ({', '.join(x_names)})")
    try:
        matrix = np.atleast_2d(np.asarray(L, dtype=float))
    except (TypeError, ValueError):
        raise type_error("L", allowed, L) from None
    if matrix.ndim != 2 or matrix.shape[1] != len(x_names) or not matrix.shape[0]:
        raise ValueError(f"L must be {allowed}, not an array of shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"L must be {allowed}; it has missing or infinite values")
    return matrix


def _right_hand_side(rhs, rows: int) -> np.ndarray:
    """rhs as (rows,) finite floats: a number (the same for every row) or one per row of L."""
    allowed = ("a finite number" if rows == 1 else
               f"a finite number or {rows} of them (one per row of L)")
    try:
        values = np.asarray(rhs, dtype=float)
    except (TypeError, ValueError):
        raise type_error("rhs", allowed, rhs) from None
    if values.ndim > 1 or values.size not in (1, rows) or not np.all(np.isfinite(values)):
        raise value_error("rhs", allowed, rhs)
    return np.broadcast_to(values, (rows,))


def anova_table(fit, ddf: str = "satterthwaite", type: int = 3) -> pd.DataFrame:
    """One F test per fixed-effects term with lmerTest's type I, II or III contrasts, in
    lmerTest's columns: sum_sq and mean_sq (Sum Sq and Mean Sq: F sigma^2 num_df and
    F sigma^2), num_df, den_df, F and p."""
    builders = {1: contrasts.type1_contrasts, 2: contrasts.type2_contrasts,
                3: contrasts.type3_contrasts}
    key = check_anova_type(type)
    ddf = check_ddf(ddf)
    design = fit.model.design
    if key != 3 and not fit.model.rows_in_memory:
        raise ValueError("type I and II tests need X'X of the rows, which stay in the "
                         "partitions of the Dask DataFrame the model was fitted to; use "
                         "type=3 (whose contrasts depend on the coding only)")
    terms = builders[key](design.formula.fixed, design.contrast_frame, design.x_names,
                          design.transforms)
    rows = {term: contrast_test(fit, L, ddf) for term, L in terms.items() if L.shape[0]}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["F", "num_df", "den_df", "p"])
    # lmerTest's sums of squares: the F statistic in units of sigma^2, per df and in all
    table["mean_sq"] = table["F"] * fit.sigma ** 2
    table["sum_sq"] = table["mean_sq"] * table["num_df"]
    table = table[["sum_sq", "mean_sq", "num_df", "den_df", "F", "p"]]  # lmerTest's order
    table.index.name = "term"
    method = _METHOD_NAMES.get(ddf, f"{ddf} degrees of freedom")
    table.attrs["heading"] = f"Type {'I' * key} Analysis of Variance Table with {method}"
    return table


#: lmerTest's words for its methods, in an ANOVA table's heading
_METHOD_NAMES = {"satterthwaite": "Satterthwaite's method",
                 "kenward-roger": "Kenward-Roger's method"}
