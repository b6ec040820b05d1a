"""Predictions from a fitted model, for the fitted data or for new data.

New data are encoded exactly as the data at fit time: the fixed part with the fit's own
encoding (``design.fixed_spec``: the fast ``Encoding`` or formulaic's model spec, so ``I()``
terms, functions and factor codings are reproduced, with the fit-time levels), aliased columns
dropped at fit time are ignored, and each random-effects term's columns are rebuilt with its
own spec. The random part of a row is the sum over terms of the term's values times the
conditional mode (BLUP) of the row's level of the term's grouping factor.

Policies:
* a level of a categorical fixed-effect variable not seen at fit time is a ``ValueError``
  naming the column and the level (there is no coefficient for it);
* a level of a grouping factor not seen at fit time (``new_levels``): ``"error"`` (the default,
  as MixedModels.jl), ``"population"`` (that term's random part is 0: the population prediction,
  as lme4's ``allow.new.levels = TRUE``) or ``"nan"``;
* a row with a missing value in a variable the prediction needs gives NaN.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.stats
from formulaic import Formula

from .design import _factor_codes, r_column_names
from .encoding import Encoding

__all__ = ["predict"]

NEW_LEVELS = ("error", "population", "nan")


def predict(fit, newdata: pd.DataFrame | None = None, include_random: bool = True,
            new_levels: str = "error", interval: str | None = None, level: float = 0.95):
    """Predicted responses.

    Args:
        fit: an ``LmmFit``.
        newdata: a DataFrame with the columns the formula uses (the response is not needed);
            None predicts for the data of the fit (then equal to ``fit.fitted``).
        include_random: add the random part Z u (conditional prediction); False gives the
            population prediction X beta.
        new_levels: what to do with a level of a grouping factor not seen at fit time:
            "error", "population" (random part 0 for that term) or "nan".
        interval: None, or "confidence" for a confidence interval that accounts for the
            uncertainty of the fixed effects only: prediction +/- z se with
            se = sqrt(diag(X V_beta X')), V_beta = ``fit.vcov`` (the conditional modes and the
            variance parameters are treated as known).
        level: confidence level of the interval.

    Returns:
        a numpy array of predictions (NaN for rows with missing values), or with
        ``interval="confidence"`` a DataFrame with columns fit, lower, upper indexed like
        ``newdata`` (the fitted rows' labels when ``newdata`` is None).
    """
    if new_levels not in NEW_LEVELS:
        raise ValueError(f"new_levels must be one of {', '.join(map(repr, NEW_LEVELS))}, "
                         f"not {new_levels!r}")
    if interval not in (None, "confidence"):
        raise ValueError(f"interval must be None or 'confidence', not {interval!r}")
    design = fit.model.design
    if newdata is None:
        X = design.X
        prediction = fit.fitted.copy() if include_random else X @ fit.beta
        index = design.rows
    else:
        if not isinstance(newdata, pd.DataFrame):
            newdata = pd.DataFrame(newdata)
        index = newdata.index
        X, complete = fixed_matrix(fit, newdata, include_random)
        prediction = np.full(len(newdata), np.nan)
        rows = np.flatnonzero(complete)
        prediction[rows] = X[rows] @ fit.beta
        if include_random and len(rows):
            prediction[rows] += random_part(fit, newdata.iloc[rows], new_levels)
    if interval is None:
        return prediction
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level!r}")
    cov = fit.vcov.to_numpy()
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, cov, X))
    z = scipy.stats.norm.ppf(0.5 + level / 2)
    return pd.DataFrame({"fit": prediction, "lower": prediction - z * se,
                         "upper": prediction + z * se}, index=index)


# -- the fixed part ------------------------------------------------------------------------------
def _variables(text: str) -> set[str]:
    if text.strip() in ("1", "0", "-1", ""):
        return set()
    return set(Formula(text).required_variables)


def _missing(frame: pd.DataFrame, names) -> np.ndarray:
    missing = np.zeros(len(frame), dtype=bool)
    for name in names:
        if name not in frame.columns:
            raise ValueError(f"newdata has no column {name!r}, which the model uses")
        missing |= pd.isna(frame[name]).to_numpy()
    return missing


def _labels(column: pd.Series) -> np.ndarray:
    """Labels as the fit-time design labels its levels (categories or values as strings)."""
    codes, levels = _factor_codes(column)
    return levels[np.asarray(codes)]


def _check_fixed_levels(fit, frame: pd.DataFrame, names) -> None:
    """Every value of a categorical variable of the fixed part must be a fit-time level."""
    design = fit.model.design
    spec = design.fixed_spec
    training = design.frame
    for name in sorted(names):
        if isinstance(spec, Encoding) and name in spec.levels:
            known = set(spec.levels[name])
            new = frame[name].to_numpy(dtype=str)
        elif training is not None and name in training.columns and not (
                pd.api.types.is_numeric_dtype(training[name])
                and not isinstance(training[name].dtype, pd.CategoricalDtype)):
            known = set(_labels(training[name]))
            new = _labels(frame[name])
        else:
            continue
        unseen = [v for v in dict.fromkeys(new) if v not in known]
        if unseen:
            raise ValueError(f"newdata column {name!r} has the level {unseen[0]!r}, which was "
                             f"not in the data of the fit (levels: {', '.join(sorted(known))}); "
                             "the fixed effects have no coefficient for it")


def fixed_matrix(fit, newdata: pd.DataFrame, include_random: bool = True):
    """X of ``newdata`` (columns ``fit.x_names``; rows with missing values are NaN) and the mask
    of complete rows (no missing value in the variables of the fixed part, nor, when
    ``include_random``, of the random part)."""
    design = fit.model.design
    fixed_vars = _variables(design.formula.fixed)
    needed = set(fixed_vars)
    if include_random:
        for term in design.terms:
            needed |= _variables(term.term.expr) | set(term.term.factors)
    complete = ~_missing(newdata, sorted(needed))
    X = np.full((len(newdata), len(fit.x_names)), np.nan)
    rows = np.flatnonzero(complete)
    if not len(rows):
        return X, complete
    frame = newdata.iloc[rows]
    _check_fixed_levels(fit, frame, fixed_vars)
    values, names = _encode(design.fixed_spec, frame, "the fixed part")
    position = {name: j for j, name in enumerate(names)}
    X[rows] = values[:, [position[name] for name in fit.x_names]]
    return X, complete


def _encode(spec, frame: pd.DataFrame, what: str):
    """Model-matrix values and R-style column names of ``frame`` under a fit-time spec."""
    if spec is None:
        return np.ones((len(frame), 1)), ("(Intercept)",)
    if isinstance(spec, Encoding):
        return spec.matrix(frame), spec.names
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        matrix = spec.get_model_matrix(frame, na_action="ignore")
    for warning in caught:
        if type(warning.category).__name__ == "type" and \
                warning.category.__name__ == "DataMismatchWarning":
            raise ValueError(f"newdata has a level not seen at fit time in {what}: "
                             f"{warning.message}")
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)
    return np.asarray(matrix, dtype=float), r_column_names(matrix.columns)


# -- the random part -----------------------------------------------------------------------------
def group_labels(frame: pd.DataFrame, factors) -> np.ndarray:
    """Each row's level label of the interaction of ``factors``, as ``grouping_codes`` labels
    levels (each factor's label, joined by ':' in factor order)."""
    labels = None
    for name in factors:
        part = _labels(frame[name]).astype(object)
        labels = part if labels is None else labels + ":" + part
    return np.asarray(labels, dtype=object)


def random_part(fit, frame: pd.DataFrame, new_levels: str = "error") -> np.ndarray:
    """Z u for the rows of ``frame`` (which have no missing value), term by term."""
    design = fit.model.design
    structure = fit.model.structure
    total = np.zeros(len(frame))
    for term_design, term in zip(design.terms, structure.terms):
        block = structure.blocks[term.block]
        values, names = _encode(term_design.spec, frame,
                                f"the random-effects term ({term_design.term.expr} | "
                                f"{term_design.group})")
        position = {name: j for j, name in enumerate(names)}
        values = values[:, [position[name] for name in term_design.columns]]
        u = fit.ranef[block.group].to_numpy()[:, term.offset:term.offset + term.p]
        lookup = pd.Index([str(level) for level in block.levels])
        labels = group_labels(frame, term_design.term.factors)
        index = lookup.get_indexer(labels)
        unseen = index < 0
        if unseen.any():
            if new_levels == "error":
                first = labels[np.argmax(unseen)]
                raise ValueError(f"newdata has the level {first!r} of the grouping factor "
                                 f"{term_design.group!r}, which was not in the data of the fit; "
                                 "use new_levels='population' to predict it with a random "
                                 "part of 0, or new_levels='nan'")
        contribution = np.einsum("ij,ij->i", values, u[np.where(unseen, 0, index)])
        contribution[unseen] = np.nan if new_levels == "nan" else 0.0
        total += contribution
    return total
