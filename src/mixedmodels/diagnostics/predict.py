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
* a row with a missing value in a variable the prediction needs gives NaN;
* the formula's ``offset(...)`` terms are evaluated on the new data and added;
* stateful transforms (``poly``, ``scale``, ``bs``...) apply the state learnt at fit time (from
  all the rows of the fit's data), in the fixed part, the random-effects terms and offsets.

Intervals (theta and sigma held at their estimates, as in the fit's other standard errors):
* ``"confidence"``: the uncertainty of the prediction as an estimate of the row's mean: of
  X b alone, se^2 = x0' V_beta x0, or with random effects included of X b + Z u, se^2 =
  sigma^2 w' K^-1 w (below) over the included factors' known levels, plus the full variance
  sigma^2 |Lambda_b' z0_b|^2 of an included factor whose level is new (Henderson's
  prediction error variance of the conditional mean);
* ``"prediction"``: for a new observation y0 = x0'beta + z0'u + e0 of the row,
  Var(y0 - y0_hat) = sigma^2 (w' K^-1 w + 1), where K = [[T'T + I, T'X], [X'T, X'X]]
  (T = Z Lambda) is the matrix of the mixed-model equations, whose inverse times sigma^2 is the
  covariance of the errors (v_hat - v, beta_hat - beta) of the spherical random effects and the
  fixed effects, and w = (Lambda' z0, x0). A grouping factor whose level is new to the fit (or
  every factor, with ``include_random=False``) contributes no conditional mode; its random
  effect is unknown and adds its full variance sigma^2 |Lambda_b' z0_b|^2 instead. The new
  observation's residual variance is sigma^2 s0^2 / w0: s0 from the variance function, if the
  model has one, evaluated on the row's value of its column (``ident``: the stratum's sd
  ratio; ``power``, ``exp``: of the covariate), 1 otherwise (a correlation structure has unit
  variances); w0 the row's prior weight when the model's weights are a column of the data and
  the row has it (the fitted rows: their weights), 1 otherwise (as lme4's predictions).
  The prediction itself is X beta + Z u: like nlme's ``predict``, it does not add the
  conditional mean of e0 given the residuals already observed in the row's correlation group.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from formulaic.errors import FormulaicError

from ..datasets import listed_rows
from ..design.build import offset_values, required_variables
from ..design.encoding import Encoding
from ..design.frame import number_dtype, text_with_na
from ..design.levels import factor_codes
from ..design.materialize import ModelData
from ..design.names import r_column_names
from ..errors import DataError, DataWarning, warn_user
from ..formula.parse import formulaic_message
from ..formula.rfunctions import FORMULA_CONTEXT, FORMULA_NAMES, LOGICAL_LEVELS, is_logical
from ..inference.distributions import ndtri
from ..validate import check_choice, check_frame, check_level, check_strings
from .rows import by_row, check_na_action

__all__ = ["predict"]

NEW_LEVELS = ("error", "population", "nan")
INTERVALS = (None, "confidence", "prediction")
CHUNK_ENTRIES = 4_000_000  # (q + p) x rows of dense right-hand sides solved at a time


def predict(fit, newdata: pd.DataFrame | None = None, include_random: bool = True,
            new_levels: str = "error", interval: str | None = None, level: float = 0.95,
            na_action: str = "omit"):
    """Predicted responses.

    Args:
        fit: an ``LmmFit``.
        newdata: a DataFrame (or a dict of columns) with the columns the formula uses (the
            response is not needed); None predicts for the data of the fit (then equal to
            ``fit.fitted``).
        include_random: add the random part Z u (conditional prediction); False gives the
            population prediction X beta; a list of grouping factors (``["Subject"]``,
            ``["cask:batch"]``) adds the random effects of those only, as lme4's ``re.form``.
        new_levels: what to do with a level of a grouping factor not seen at fit time:
            "error", "population" (random part 0 for that term) or "nan".
        interval: None; "confidence" for a confidence interval of the row's mean as the
            prediction estimates it: prediction +/- z se, with se of X b alone
            (se = sqrt(diag(X V_beta X')), V_beta = ``fit.vcov``) when no random effect is
            included, and otherwise Henderson's prediction error variance of X b + Z u over
            the included factors (the variance parameters treated as known; see the module
            docstring); or "prediction" for an interval that
            covers a new observation of the row: the uncertainty of the fixed effects and of
            the conditional modes, and the residual variance (see the module docstring).
        level: confidence level of the interval.
        na_action: for the data of the fit (``newdata`` None), "omit" (the fitted rows) or
            "exclude" (every row of the data, NaN in the rows dropped for missing values; see
            ``rows.by_row``). Predictions for ``newdata`` always have one entry per row of it.

    Returns:
        a Series of predictions named "prediction", or with an ``interval`` a DataFrame with
        columns fit, se, lower, upper; indexed like ``newdata`` (NaN for its rows with missing
        values), or for the data of the fit as ``na_action`` says.
    """
    new_levels = check_choice(new_levels, "new_levels", NEW_LEVELS)
    interval = check_choice(interval, "interval", INTERVALS)
    level, na_action = check_level(level), check_na_action(na_action)
    included = included_blocks(fit, include_random)
    if newdata is None:
        table = _predict_fitted(fit, included, interval, level)
        return by_row(fit, table, "prediction", na_action)
    newdata = new_frame(newdata)
    table = _predict_new(fit, newdata, included, new_levels, interval, level)
    if interval is None:
        return pd.Series(table, index=newdata.index, name="prediction")
    return table.set_axis(newdata.index, axis=0)


def new_frame(newdata) -> pd.DataFrame:
    """newdata as a DataFrame (a dict of columns is converted)."""
    return text_with_na(check_frame(newdata, "newdata"))


def _predict_fitted(fit, included: np.ndarray, interval: str | None, level: float):
    """The predictions (an array) or the interval table for the fitted rows."""
    design = fit.model.design
    X, rows = design.X, np.arange(design.n)
    if included.all():
        by_block = random_rows(fit, design.frame) if interval is not None else None
        prediction = fit.fitted.copy()
    else:
        # each row's levels and random-effects values, encoded once for the prediction and se
        by_block = (random_rows(fit, design.frame)
                    if included.any() or interval == "prediction" else None)
        prediction = X @ fit.beta + design.offset
        if included.any():
            prediction += random_part(fit, by_block, "error", included, design.rows)
    if interval is None:
        return prediction
    return _interval_table(fit, prediction, X, rows, by_block, included, interval, level,
                           design.frame)


def _predict_new(fit, newdata: pd.DataFrame, included: np.ndarray, new_levels: str,
                 interval: str | None, level: float):
    """The predictions (an array) or the interval table for the rows of ``newdata``."""
    design = fit.model.design
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # (see the end)
        X, complete = fixed_matrix(fit, newdata, included.any() or interval == "prediction")
        rows = np.flatnonzero(complete)
        frame = newdata.iloc[rows]
        by_block = (random_rows(fit, frame, included)
                    if len(rows) and (included.any() or interval == "prediction") else None)
        prediction = np.full(len(newdata), np.nan)
        if len(rows):
            model_data = ModelData.of(frame, design.transforms)
            offsets = offset_values(model_data, design.formula.offsets, finite=False)
            prediction[rows] = X[rows] @ fit.beta + offsets
            if included.any():
                prediction[rows] += random_part(fit, by_block, new_levels, included, frame.index)
            unusable = ~(np.isfinite(X[rows]).all(axis=1) & np.isfinite(offsets))
            for b, (_, _, values) in enumerate(by_block or ()):
                if included[b]:
                    unusable |= ~np.isfinite(values).all(axis=1)
            _unusable_rows(prediction, rows[unusable], newdata.index)
        if interval is None:
            return prediction
        return _interval_table(fit, prediction, X, rows, by_block, included, interval, level,
                               frame, newdata=True)


def _unusable_rows(prediction: np.ndarray, unusable: np.ndarray, index: pd.Index) -> None:
    """Rows whose terms are not finite (log(0) of new data, as R's "NaNs produced"), at the
    positions ``unusable``: their predictions NaN, and a DataWarning that counts and names
    them."""
    if not len(unusable):
        return
    prediction[unusable] = np.nan
    warn_user(f"{len(unusable)} row(s) of newdata ({listed_rows(index[unusable])}) give "
              "values the model's terms cannot use (infinite or NaN: a log of 0 or of a "
              "negative number, a division by 0, an overflow...): their predictions are NaN",
              DataWarning)


def new_observation_variances(fit, frame: pd.DataFrame, newdata: bool = True) -> np.ndarray:
    """Var(e0) / sigma^2 of a new observation of each row of ``frame`` (see the module
    docstring): s0^2 / w0."""
    parameters = fit.model.structure.parameters
    if parameters.residual is not None:
        variances = parameters.residual.new_variances(frame,
                                                      fit.theta[parameters.residual_slice])
    else:
        variances = np.full(len(frame), fit.residual.new_observation_variance())
    design = fit.model.design
    if not design.weighted:
        return variances
    if not newdata:
        return variances / design.weights
    label = design.weights_label
    if label in frame.columns:
        weights = pd.to_numeric(frame[label], errors="coerce").to_numpy(dtype=float)
        return variances / np.where(weights > 0, weights, np.nan)
    return variances


def _interval_table(fit, prediction: np.ndarray, X: np.ndarray, rows: np.ndarray, by_block,
                    included: np.ndarray, interval: str, level: float, frame: pd.DataFrame,
                    newdata: bool = False) -> pd.DataFrame:
    """Columns fit, se, lower, upper (see ``predict``); ``rows`` are those with a
    prediction, ``by_block`` their encoded random-effects values, ``frame`` their data."""
    if interval == "confidence" and not included.any():  # X b's alone
        se = np.sqrt(np.einsum("ij,jk,ik->i", X, fit.vcov.to_numpy(), X))
    else:
        se = np.full(len(X), np.nan)
        if len(rows):
            prediction_interval = interval == "prediction"
            variance = _error_variance(fit, X[rows], by_block, included, prediction_interval)
            if prediction_interval:
                variance += new_observation_variances(fit, frame, newdata)
            se[rows] = fit.sigma * np.sqrt(variance)
    se[np.isnan(prediction)] = np.nan  # a row without a prediction (missing, unusable values)
    z = ndtri(0.5 + level / 2)
    return pd.DataFrame({"fit": prediction, "se": se, "lower": prediction - z * se,
                         "upper": prediction + z * se})


def included_blocks(fit, include_random) -> np.ndarray:
    """Per grouping factor (block), whether its conditional modes enter the prediction."""
    blocks = fit.model.structure.blocks
    if isinstance(include_random, (bool, np.bool_)):
        return np.full(len(blocks), bool(include_random))
    wanted = check_strings(include_random, "include_random",
                           "True, False or a list of grouping factors", empty=True)
    groups = [block.group for block in blocks]
    unknown = [name for name in wanted if name not in groups]
    if unknown and not groups:
        raise ValueError(f"include_random lists {unknown[0]!r}, but the model (generalized "
                         "least squares, mm.gls) has no random effects; use "
                         "include_random=False or leave it out")
    if unknown:
        raise ValueError(f"include_random must list grouping factors of the model, not "
                         f"{unknown[0]!r}; they are {', '.join(map(repr, groups))}")
    return np.array([group in wanted for group in groups])


def _error_variance(fit, X0: np.ndarray, blocks, included: np.ndarray,
                    excluded: bool = True) -> np.ndarray:
    """Var(x0'(beta_hat - beta) + z0'(u_hat - u)) / sigma^2 per row (see the module
    docstring): w' K^-1 w over the ``included`` grouping factors' known levels, plus
    |Lambda_b' z0_b|^2 for each included factor whose level is unknown, and for each factor
    that is not included where ``excluded`` (a new observation has that random effect too; an
    estimate of the mean without it does not)."""
    structure = fit.model.structure
    theta = fit.theta
    starts = np.cumsum([0] + [b.q for b in structure.blocks])
    n0 = len(X0)
    unknown = np.zeros(n0)
    entries, columns, row_ids = [], [], []
    for b, (_, index, values) in enumerate(blocks):
        block = structure.blocks[b]
        scaled = values @ block.lam(theta)  # z0_b' Lambda_b, per row
        known = (index >= 0) & included[b]
        unseen = ~known if excluded else (index < 0) & included[b]
        unknown[unseen] += np.einsum("ij,ij->i", scaled[unseen], scaled[unseen])
        rows = np.flatnonzero(known)
        entries.append(scaled[rows].ravel())
        columns.append((starts[b] + index[rows, None] * block.p
                        + np.arange(block.p)).ravel())
        row_ids.append(np.repeat(rows, block.p))
    q, p = int(starts[-1]), X0.shape[1]
    empty = [np.zeros(0, dtype=np.int64)]
    W = sp.csc_array((np.concatenate(entries + [np.zeros(0)]),
                      (np.concatenate(columns + empty), np.concatenate(row_ids + empty))),
                     shape=(q, n0))
    factor = fit._factor  # K = L_K L_K', so w' K^-1 w = |L_K^-1 w|^2
    quadratic = np.empty(n0)
    chunk = max(1, CHUNK_ENTRIES // (q + p))
    for start in range(0, n0, chunk):
        stop = min(n0, start + chunk)
        w = np.vstack([W[:, start:stop].toarray(), X0[start:stop].T])
        quadratic[start:stop] = np.sum(factor.forward(w) ** 2, axis=0)
    return quadratic + unknown


# -- the fixed part ------------------------------------------------------------------------------
def _variables(text: str) -> set[str]:
    if text.strip() in ("1", "0", "-1", ""):
        return set()
    return set(required_variables(text)) - set(FORMULA_NAMES)


def _missing(frame: pd.DataFrame, names) -> np.ndarray:
    missing = np.zeros(len(frame), dtype=bool)
    for name in names:
        if name not in frame.columns:
            raise DataError(f"newdata has no column {name!r}, which the model uses; give "
                            f"newdata every column the formula reads")
        missing |= pd.isna(frame[name]).to_numpy()
    return missing


def _labels(column: pd.Series) -> np.ndarray:
    """Labels as the fit-time design labels its levels (categories or values as Python
    strings); None for a missing value."""
    codes, levels = factor_codes(column)
    codes = np.asarray(codes)
    labels = np.full(len(codes), None, dtype=object)  # (every value missing: no levels)
    labels[codes >= 0] = levels.astype(object)[codes[codes >= 0]]
    return labels


def _check_fixed_levels(fit, frame: pd.DataFrame, names) -> None:
    """Every value of a categorical variable of the fixed part must be a fit-time level."""
    design = fit.model.design
    spec = design.fixed_spec
    training = design.frame
    coded = {} if not isinstance(spec, Encoding) else \
        {spec.sources.get(key, key): levels for key, levels in spec.levels.items()}
    for name in sorted(names):
        if name in coded and name in spec.logical and not is_logical(frame[name]):
            raise DataError(f"{name!r} was categorical in the data of the fit (levels "
                            f"{', '.join(LOGICAL_LEVELS)}), but the new data give "
                            f"{frame[name].dtype}: give the same kind of values (True or False)")
        if name in coded:  # a categorical column, or factor() of one
            known = set(coded[name])
            new = _labels(frame[name])
        elif training is not None and name in training.columns and not (
                pd.api.types.is_numeric_dtype(training[name])
                and not isinstance(training[name].dtype, pd.CategoricalDtype)):
            known = set(_labels(training[name]))
            new = _labels(frame[name])
        else:
            continue
        unseen = [v for v in dict.fromkeys(new) if v not in known]
        if unseen:
            raise DataError(f"newdata column {name!r} has the level {unseen[0]!r}, which was "
                            f"not in the data of the fit (levels: {', '.join(sorted(known))}); "
                            "the fixed effects have no coefficient for it")


def _check_numeric(fit, frame: pd.DataFrame, names) -> None:
    """Every variable that was numeric in the data of the fit must be numeric in ``frame``, as
    R's predict checks the new data's classes (``.checkMFClasses``): text, or True and False,
    where the fit had numbers is a DataError naming the column. A fit of a Dask DataFrame
    has no rows here: its sample of complete rows has the columns' dtypes."""
    design = fit.model.design
    training = design.frame if design.frame is not None else getattr(design, "sample", None)
    for name in names:
        if training is None or name not in training.columns or name not in frame.columns \
                or not number_dtype(training[name].dtype) \
                or isinstance(training[name].dtype, pd.CategoricalDtype) \
                or number_dtype(frame[name].dtype):
            continue
        example = frame[name].iloc[0]
        example = example.item() if hasattr(example, "item") else example
        raise DataError(f"newdata column {name!r} was numeric in the data of the fit, but "
                        f"its dtype is {frame[name].dtype} (e.g. {example!r}): give numbers "
                        "(pd.to_numeric converts text)")


def fixed_matrix(fit, newdata: pd.DataFrame, include_random: bool = True):
    """X of ``newdata`` (columns ``fit.x_names``; rows with missing values are NaN) and the mask
    of complete rows (no missing value in the variables of the fixed part, nor, when
    ``include_random``, in the random-effects terms' variables). A missing grouping factor is
    not incomplete: its level is unknown, as a new level's is (see ``new_levels``)."""
    design = fit.model.design
    fixed_vars = _variables(design.formula.fixed)
    needed = set(fixed_vars).union(*(_variables(text) for text in design.formula.offsets))
    if include_random:
        for term in design.terms:
            needed |= _variables(term.term.expr)
    complete = ~_missing(newdata, sorted(needed))
    X = np.full((len(newdata), len(fit.x_names)), np.nan)
    rows = np.flatnonzero(complete)
    if not len(rows):
        return X, complete
    frame = newdata.iloc[rows]
    _check_numeric(fit, frame, sorted(needed))
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
        try:
            matrix = spec.get_model_matrix(frame, na_action="ignore", context=FORMULA_CONTEXT)
        except FormulaicError as exc:  # a formula function refusing these rows
            cause = exc.__cause__
            reason = str(cause) if isinstance(cause, ValueError) else formulaic_message(exc)[0]
            raise DataError(f"cannot encode newdata in {what}: {reason}") from None
    for warning in caught:
        if type(warning.category).__name__ == "type" and \
                warning.category.__name__ == "DataMismatchWarning":
            raise DataError(f"newdata has a level not seen at fit time in {what}: "
                            f"{warning.message}")
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)
    return np.asarray(matrix, dtype=float), r_column_names(matrix.columns)


# -- the random part -----------------------------------------------------------------------------
def group_labels(frame: pd.DataFrame, factors) -> np.ndarray:
    """Each row's level label of the interaction of ``factors``, as ``grouping_codes`` labels
    levels (each factor's label, joined by ':' in factor order); None where one is missing."""
    parts = [_labels(frame[name]) for name in factors]
    return np.array([None if None in row else ":".join(row) for row in zip(*parts)],
                    dtype=object)


def random_rows(fit, frame: pd.DataFrame, included: np.ndarray | None = None):
    """Per grouping factor (block): each row's level label, its level index (-1 for a level not
    seen at fit time) and its values of the block's columns (rows x p, zero outside the
    block's terms). A grouping factor that ``included`` (per block; default all) leaves out
    may be absent from ``frame``: its levels are then unknown (label None, index -1), as a
    new level's, for the prediction interval's variance (lme4's ``re.form = ~ (1 | g)``
    needs no column of the other factors)."""
    design = fit.model.design
    structure = fit.model.structure
    absent = [name for t_design, term in zip(design.terms, structure.terms)
              for name in t_design.term.factors if name not in frame.columns
              and (included is None or included[term.block])]
    if absent:
        raise DataError(f"newdata has no column {absent[0]!r}, a grouping factor of the model; "
                        "add it, or predict without random effects (include_random=False), or "
                        "with only those whose columns it has (include_random=[...])")
    out = [None] * len(structure.blocks)
    for term_design, term in zip(design.terms, structure.terms):
        block = structure.blocks[term.block]
        values, names = _encode(term_design.spec, frame,
                                f"the random-effects term {term_design.term.label}")
        position = {name: j for j, name in enumerate(names)}
        if out[term.block] is None:
            lookup = pd.Index([str(level) for level in block.levels])
            factors = term_design.term.factors
            labels = (group_labels(frame, factors) if all(f in frame.columns for f in factors)
                      else np.full(len(frame), None, dtype=object))
            out[term.block] = (labels, lookup.get_indexer(labels),
                               np.zeros((len(frame), block.p)))
        out[term.block][2][:, term.offset:term.offset + term.p] = \
            values[:, [position[name] for name in term_design.columns]]
    return out


PREDICT_REMEDY = ("use new_levels='population' to predict these rows with a random part of 0 "
                  "for that factor, or new_levels='nan'")


def unseen_level_error(group: str, labels: np.ndarray, unseen: np.ndarray, row_labels,
                       remedy: str = PREDICT_REMEDY):
    """The DataError for rows whose level of ``group`` the fit has no conditional mode for,
    ending with ``remedy``."""
    missing = unseen & np.array([label is None for label in labels])
    rows = row_labels[missing if missing.any() else unseen][:5]
    shown = (("row " if len(rows) == 1 else "rows ") + ", ".join(map(repr, rows.tolist()))
             + (" ..." if len(rows) == 5 else ""))
    if missing.any():
        problem = f"a missing value of the grouping factor {group!r} ({shown})"
    else:
        first = labels[np.argmax(unseen)]
        problem = (f"the level {first!r} of the grouping factor {group!r} ({shown}), "
                   "which was not in the data of the fit")
    raise DataError(f"newdata has {problem}; {remedy}")


def random_part(fit, by_block, new_levels: str = "error",
                included: np.ndarray | None = None, row_labels=None,
                remedy: str = PREDICT_REMEDY) -> np.ndarray:
    """Z u for rows encoded by ``random_rows``, grouping factor by factor (only the
    ``included`` ones, if given); ``row_labels`` (newdata's index of those rows) name them in
    errors. A level the fit has not seen (or a missing one) is an error (ending with
    ``remedy``), 0 or NaN, as ``new_levels`` says."""
    structure = fit.model.structure
    total = np.zeros(len(by_block[0][1]))
    for b, (block, (labels, index, values)) in enumerate(zip(structure.blocks, by_block)):
        if included is not None and not included[b]:
            continue
        unseen = index < 0
        if unseen.any() and new_levels == "error":
            unseen_level_error(block.group, labels, unseen, row_labels, remedy)
        u = fit.ranef[block.group].to_numpy()
        contribution = np.einsum("ij,ij->i", values, u[np.where(unseen, 0, index)])
        contribution[unseen] = np.nan if new_levels == "nan" else 0.0
        total += contribution
    return total
