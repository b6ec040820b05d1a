"""From a parsed formula and a DataFrame to the response, X and the random-effects terms.

Decisions, following R:
* factors use treatment contrasts with the first level (sorted order, or a pandas Categorical's
  own order) as reference, unless ``C(x, coding)`` asks for another (``formula.codings``), and
  columns are named as R names them (``SexMale``, ``(Intercept)``, ``C(g, contr.sum)1``);
* a grouping factor is categorical whatever its dtype; integer codes sort numerically;
* every term is evaluated on all the rows of the data, then the rows with a missing value in
  any column the model uses are dropped, with a warning that gives the count, as R's model
  frame evaluates the variables before ``na.omit``: a stateful transform (``poly``, ``scale``,
  ``bs``...) learns its state from all the rows (``design.materialize``), and predictions and
  refits keep that state; infinite values are an error;
* an ordered categorical is coded by polynomial contrasts (``x.L``, ``x.Q``...), as R codes an
  ordered factor;
* a column read as values that holds dates or times, or numbers with text among them, is an
  error that says what to do (``design.columns``);
* aliased fixed-effects columns are dropped, later columns first, as R's ``lm`` and lme4 do.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd
from formulaic import Formula
from formulaic.errors import FormulaicError
from formulaic.parser.types import Factor
from formulaic.transforms import TRANSFORMS
from formulaic.utils.variables import get_required_variables

from ..datasets import is_number, listed_rows
from ..errors import DataError, DataWarning, FormulaError, warn_user
from ..formula.codings import ALLOWED_CODINGS, coding_names
from ..formula.parse import (
    ParsedFormula,
    RandomTerm,
    backquoted_names,
    called_names,
    formulaic_expression,
    formulaic_message,
    r_factor_order,
    r_written,
)
from ..formula.rfunctions import (
    FORMULA_CONTEXT,
    FORMULA_FUNCTIONS,
    FORMULA_NAMES,
    is_logical,
    level_label,
)
from ..formula.rfunctions import factor as r_factor
from ..threads import householder_qr
from ..validate import check_frame, type_error
from .columns import check_cells, check_column
from .encoding import Encoding, fast_encoding
from .expressions import numeric_expression
from .frame import FrameColumns, number_dtype
from .levels import interaction_codes
from .materialize import ModelData, called_functions, column_text
from .names import R_NAMES, r_column_names, r_spelling

__all__ = ["Design", "TermDesign", "build_design", "check_enough_rows", "check_identifiable",
           "drop_aliased", "r_column_names", "r_spelling",
           "required_variables", "warn_missing_rows"]

ALIAS_TOLERANCE = 1e-7


@dataclass(frozen=True)
class TermDesign:
    """One random-effects term evaluated on the data.

    Attributes:
        term: the parsed term.
        columns: names of its columns (``(Intercept)``, ``Days``).
        values: (n, p) values of those columns per observation.
        codes: (n,) index of each observation's level.
        levels: the grouping factor's levels, as strings, in R's order.
        spec: formulaic spec to rebuild ``values`` for new data (None for a pure intercept).
        aliased: columns that are linear combinations of the columns before them (in this term
            or in earlier terms on the same grouping factor): their variances cannot be told
            apart, and the fit is singular.
    """

    term: RandomTerm
    columns: tuple[str, ...]
    values: np.ndarray
    codes: np.ndarray
    levels: np.ndarray
    spec: object | None
    aliased: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.term.group

    @property
    def structure(self) -> str:
        """The term's covariance structure: ``"us"`` (lme4's ``(x | g)``), ``"diag"``,
        ``"cs"``, ``"ar1"`` or ``"toep"``."""
        return self.term.structure

    @property
    def hom(self) -> bool:
        """One sd shared by the term's columns (True) or one per column (False)."""
        return self.term.hom


@dataclass(frozen=True)
class Design:
    """Everything the fit needs from the data, plus the record to encode new data the same way.

    Attributes:
        y: (n,) response.
        X: (n, p) fixed-effects model matrix, full column rank.
        x_names: its column names.
        dropped: names of aliased columns that were dropped.
        terms: random-effects terms in lme4's order (decreasing number of levels, stable).
        fixed_spec: formulaic model spec of the fixed part.
        rows: index labels of the rows used.
        source: the rows used of the caller's data (a reference to it when no row was dropped,
            so that building the design copies nothing); ``frame`` is its model columns.
        columns: the columns the model uses (the formula's variables, grouping factors and
            offsets, and the weights column).
        offset: (n,) the sum of the formula's ``offset(...)`` terms (zeros without any): part
            of the linear predictor with coefficient 1, so the fit is that of y - offset.
        weights: (n,) prior weights (ones without any): Var(e_i) = sigma^2 / w_i.
        weights_label: the weights' column name ("(weights)" for values), None without them.
        missing_rows: index labels of the rows dropped for missing values.
        transforms: the state of the formula's stateful transforms (``poly``, ``scale``...),
            by the text of their call, learnt from all the rows of the data: refits of these
            data (``build_design``'s ``transforms``) and hypothesis contrasts reuse it.
        response_r: ((p + 1) x (p + 1)) the R of a QR decomposition of [X, y - offset] in its
            upper triangle (LAPACK's compact form: the lower triangle holds reflectors),
            from the check that the fixed effects leave a residual; ``core.response_shift``
            decides from it whether the cross-products are formed from y - X b0. None where
            X has no columns or no fewer columns than rows, and for a partition.
    """

    formula: ParsedFormula
    y: np.ndarray
    X: np.ndarray
    x_names: tuple[str, ...]
    dropped: tuple[str, ...]
    terms: tuple[TermDesign, ...]
    fixed_spec: object
    rows: pd.Index
    source: pd.DataFrame | None = field(default=None, repr=False)
    columns: tuple[str, ...] = ()
    offset: np.ndarray | None = field(default=None, repr=False)
    weights: np.ndarray | None = field(default=None, repr=False)
    weights_label: str | None = None
    missing_rows: pd.Index = field(default_factory=lambda: pd.Index([]), repr=False)
    transforms: dict = field(default_factory=dict, repr=False)
    response_r: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        # without them, read-only views of one value: no memory per row
        if self.offset is None:
            object.__setattr__(self, "offset", _constant(0.0, self.y.shape[0]))
        if self.weights is None:
            object.__setattr__(self, "weights", _constant(1.0, self.y.shape[0]))

    @cached_property
    def frame(self) -> pd.DataFrame | None:
        """The data the model uses: the rows used and only the model's ``columns``. Kept for
        refits of other rows or formulas, the variables' types (hypothesis contrasts,
        prediction's level checks) and plots against a variable; selected on first use (a
        copy costs about 0.1 ms, which a fit need not pay)."""
        source = self.source
        if source is None or len(self.columns) in (0, source.shape[1]):
            return source
        return source[list(self.columns)]

    @property
    def contrast_frame(self) -> pd.DataFrame | None:
        """Rows on which the fixed part's coding is evaluated for hypothesis contrasts: the
        model's rows (``frame``)."""
        return self.frame

    def __getstate__(self) -> dict:
        """Pickled with the model's columns only: the design sent to an executor's tasks does
        not grow with the columns of the data the model ignores."""
        state = dict(self.__dict__)
        state["source"] = self.frame
        state.pop("frame", None)
        return state

    @cached_property
    def weighted(self) -> bool:
        """Prior weights other than all 1 (none without a weights column)."""
        return self.weights_label is not None and bool(np.any(self.weights != 1.0))

    @property
    def n(self) -> int:
        return self.y.shape[0]


@lru_cache(maxsize=32)  # a design per fit: np.broadcast_to costs 5 us a call
def _constant(value: float, n: int) -> np.ndarray:
    """(n,) a read-only view of one value."""
    return np.broadcast_to(value, (n,))


WEIGHTS_COLUMN = "(weights)"


NOBS_CHECKS = ("error", "warning", "ignore")


def build_design(formula: ParsedFormula, data: pd.DataFrame, weights=None,
                 nobs_checks: str = "error", transforms: dict | None = None,
                 extra_columns: tuple[str, ...] = (), random: bool = True,
                 schema=None) -> Design:
    """Evaluate the formula on the data; raise a clear error for anything that cannot be fitted.

    As R's model frame, every term is evaluated on all the rows of ``data`` before the rows
    with a missing value in a column the model uses are dropped (with a warning): a stateful
    transform (``poly``, ``scale``, ``center``, ``standardize``, ``bs``, ``cr``, ``cs``, ``cc``)
    learns its state from all the rows, rows with a missing response among them, and
    predictions on new data apply that state. A missing value of the transformed variable
    itself drops its row too; ``scale`` and the others leave it out of their state, as R's
    ``scale`` and ``bs`` do; ``poly`` refuses it, as R's does, with a ``DataError`` naming
    the rows.

    ``weights``: None, the name of a column of ``data``, or one value per row of ``data``
    (prior weights, as lme4's ``weights``; rows with a missing weight are dropped with the
    other rows with missing values). ``nobs_checks``: what an unidentifiable model is (see
    ``check_identifiable``): "error" (lme4's default), "warning" or "ignore". ``transforms``:
    the state of the stateful transforms to apply instead of learning it (a ``Design``'s
    ``transforms``, for a refit of some of its rows or of another formula on them).
    ``extra_columns``: other columns the model uses as they are (a residual structure's
    times, groups and strata): rows missing them are dropped too, and the design's frame
    keeps them. ``random``: the formula must have random-effects terms (True, lmer) or must
    have none (False, gls).

    ``schema``: the ``design.schema.DataSchema`` of a larger data set of which ``data`` is a
    partition. The design is then that of these rows within the whole data: categorical
    columns have the levels of all the rows (unused ones kept), grouping factors their levels
    and numbering, stateful transforms their state, the extra columns those of the schema's
    ``columns``; the columns of X are all kept (aliasing
    is decided from the whole data's cross-products), and the checks that concern the whole
    data (identifiability, a constant response, a single level, enough rows) are left to it,
    as are the warnings about its rows."""
    if nobs_checks not in NOBS_CHECKS:
        raise ValueError(f"nobs_checks must be one of {', '.join(map(repr, NOBS_CHECKS))}, "
                         f"not {nobs_checks!r}")
    if schema is None:  # (a partition's model was checked with the whole data's schema)
        check_random_terms(formula, random)
    data = _as_frame(data)
    if schema is not None:
        data, transforms = schema.cast(data), schema.transforms
        extra_columns = schema.columns.extra
    used, read, texts = _used_columns(formula, data)
    formula_columns = used
    for name in extra_columns:
        if name not in data.columns:
            raise DataError(_unknown_column_message(name, data.columns, formula.text)
                            .replace(f"the formula {formula.text!r} uses",
                                     "the residual structure uses"))
    used = list(dict.fromkeys(used + list(extra_columns)))
    data, weights_column = _attach_weights(data, weights)
    if weights_column is not None:
        data = _drop_zero_weights(data, weights_column, quiet=schema is not None)
        read = read + [weights_column]
        used = used if weights_column in used else used + [weights_column]
    columns = FrameColumns(data).readable(formula_columns)
    whole = columns.frame  # a reference: the design's frame selects the model's columns
    partition = schema is not None
    frame, drop = _drop_missing(columns, used, read, texts, partition, formula.response)
    rows = ModelData(frame, whole, drop, dict(transforms or {}),
                     columns if frame is whole else None, keep_levels=partition)
    y = _response(rows, formula.response)
    levels = schema.levels if partition else None
    terms = [_term_design(term, rows, levels) for term in formula.random]
    if not partition:
        for term in terms:
            _check_factor_levels(term.spec, f"the random-effects term {term.term.label}")
        terms = _check_random_collinearity(terms)
        check_identifiable(terms, frame.shape[0], nobs_checks)
    X, names, spec = _fixed_matrix(formula.fixed, rows, partition)
    dropped = ()
    offset = offset_values(rows, formula.offsets)
    response_r = None
    if not partition:
        _check_factor_levels(spec, "the fixed effects")
        # one QR of [X y] serves the aliasing of X's columns, the response's variation and
        # its shift (``core.response_shift``), and the fit's test of collinearity
        # (``core.pls.fixed_basis``); it is taken again only after a column is dropped
        without_offset = y - offset
        response_r = response_qr(X, without_offset)
        X, names, dropped = drop_aliased(X, names, r=response_r)
        check_enough_rows(X.shape[0], X.shape[1])
        if dropped:
            response_r = response_qr(X, without_offset)
        _check_response_variation(without_offset, response_r, formula.response)
    order = sorted(range(len(terms)), key=lambda i: -len(terms[i].levels))
    weight_values = None if weights_column is None else _weights(frame[weights_column],
                                                                   weights_column)
    return Design(formula, y, X, names, dropped, tuple(terms[i] for i in order), spec, frame.index,
                  frame, tuple(used), offset, weight_values, weights_column,
                  whole.index[drop] if len(drop) else whole.index[:0], rows.transforms,
                  response_r)


def check_random_terms(formula: ParsedFormula, random: bool) -> None:
    """A FormulaError unless the formula has random-effects terms (``random``: lmer) or has
    none (gls), with what to use instead."""
    if random and not formula.random:
        raise FormulaError("the formula has no random-effects term such as (1 | group); "
                           "for a model without random effects use mm.gls")
    if not random and formula.random:
        raise FormulaError(f"mm.gls fits models without random effects, and the formula has "
                           f"{formula.random[0].label}; use "
                           "mm.lmer, whose correlation= and variance= take the same structures")


def check_enough_rows(n: int, p: int) -> None:
    """A DataError unless there are more observations than fixed effects."""
    if n <= p:
        raise DataError(f"{n} observations for {p} fixed effects: a linear model needs more "
                        "observations than fixed effects (the residual variance has no degrees "
                        "of freedom); use more rows or fewer terms")


def _attach_weights(data: pd.DataFrame, weights):
    """(data, the name of the weights column or None); weights given as values are attached
    to a copy of the data as the column "(weights)"."""
    if weights is None:
        return data, None
    if isinstance(weights, str):
        if weights not in data.columns:
            close = difflib.get_close_matches(weights, [str(c) for c in data.columns], n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise DataError(f"the weights column {weights!r} is not in the data.{hint}")
        return data, weights
    if isinstance(weights, pd.Series):
        weights = aligned_series(weights, data.index, "weights", "data's")
    if not isinstance(weights, (pd.Series, pd.Index, np.ndarray, list, tuple)):
        raise type_error("weights", "a column name, or one value per row of the data (an "
                         "array, list or Series)", weights)
    values = np.asarray(weights)
    if values.ndim != 1 or values.shape[0] != data.shape[0]:
        raise DataError(f"weights must be a column name or one value per row of the data "
                        f"({data.shape[0]} rows), not an array of shape {values.shape}")
    return data.assign(**{WEIGHTS_COLUMN: values}), WEIGHTS_COLUMN


def aligned_series(values: pd.Series, index: pd.Index, what: str, whose: str) -> pd.Series:
    """Per-row values given as a Series (``what``: "weights", "y"), in the order of the rows
    of ``index`` by its labels: a Series is read by its labels, as pandas aligns it, not by
    position. ``whose``: the rows' owner in messages ("data's", "fitted rows'").

    Raises:
        DataError: its labels are not those of the rows, each once.
    """
    if values.index.equals(index):
        return values
    if len(values) == len(index) and index.is_unique and values.index.is_unique and \
            values.index.isin(index).all():
        return values.reindex(index)
    unknown = values.index[~values.index.isin(index)][:3].tolist()
    detail = (f"labels not in the {whose} index: {', '.join(map(repr, unknown))}" if unknown
              else "repeated labels, or not every row's label")
    raise DataError(f"{what} given as a Series are matched to the rows by their index labels, "
                    f"and these are not the {whose} ({detail}); give the Series the {whose} "
                    f"index, or pass its values ({what}.to_numpy()) in the rows' order")


def _drop_zero_weights(data: pd.DataFrame, name: str, quiet: bool = False) -> pd.DataFrame:
    """The data without its rows of weight 0, with a warning that counts them (none when
    ``quiet``). A row of weight 0 carries no information (Var(e_i) infinite); lme4 keeps it
    and reports an infinite criterion, R's ``lm`` leaves it out of the fit: it is left out
    here."""
    column = data[name]
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return data  # reported by _weights
    zero = (column == 0).to_numpy()
    if not zero.any():
        return data
    if quiet:
        return data.loc[~zero]
    if zero.all():
        raise DataError(f"every weight in {name!r} is 0: no observation is left to fit")
    shown = ", ".join(map(repr, data.index[zero][:5].tolist())) + (" ..." if zero.sum() > 5
                                                                   else "")
    warn_user(f"dropped {int(zero.sum())} of {len(data)} rows whose weight {name!r} is 0 "
              f"(rows {shown}): they carry no information", DataWarning)
    return data.loc[~zero]


def _weights(column: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        raise DataError(f"the weights {name!r} must be numeric, not {column.dtype}")
    values = column.to_numpy(dtype=float)
    bad = ~(values > 0)
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(f"the weights {name!r} must be positive; {int(bad.sum())} are not "
                        f"(first {values[first]:g} at {listed_rows(column.index[[first]])})")
    return values


def offset_values(rows: ModelData, offsets: tuple[str, ...], finite: bool = True) -> np.ndarray:
    """The sum of the offset expressions on the rows of ``rows.frame`` (zeros without any);
    ``finite``: a DataError for a value that is not (new data's are left as they are)."""
    total = np.zeros(rows.frame.shape[0])
    for expression in offsets:  # each I(...) of offset(...)
        total += _numeric_expression(rows, expression, "the offset",
                                     r_spelling(expression[2:-1]), finite)
    return total


def _as_frame(data) -> pd.DataFrame:
    data = check_frame(data)
    if data.shape[0] == 0:
        raise DataError("the data frame has no rows")
    return data


def _finite(values: np.ndarray, names, what: str, index: pd.Index) -> None:
    """Computed columns (``log(x)``, ``1/x``...) must be finite; ``index``: the rows'
    labels, the first of those that are not named in the DataError."""
    finite = np.isfinite(values)
    if finite.all():
        return
    column = int(np.argmin(finite.all(axis=0)))
    bad = np.flatnonzero(~finite[:, column])
    raise DataError(f"{what} column {names[column]!r} has {len(bad)} non-finite value(s) "
                    f"(infinite or NaN: a log of 0 or of a negative number, a division by 0, "
                    f"an overflow...) in {listed_rows(index[bad])}; drop those rows, or "
                    "transform the data so that every value is finite")


def _used_columns(formula: ParsedFormula, data: pd.DataFrame):
    """(every data column the model reads, those of them it reads as values: all but the
    grouping factors, the formula's texts in formulaic syntax); an unknown name is an error
    with suggestions."""
    texts = [formula.fixed] + [t.expr for t in formula.random] + list(formula.offsets)
    read: list[str] = []
    if formula.response in data.columns:
        read.append(formula.response)
    else:  # an expression such as log(y)
        texts.insert(0, formulaic_expression(formula.response))
    for text in texts:
        functions = called_functions(text)  # called, and columns of that name are not read
        _check_function_or_column(text, functions, data.columns)
        _check_relevel(text, data)
        try:
            read.extend(name for name in required_variables(column_text(text, data.columns))
                        if name not in functions
                        and (name in data.columns or name not in FORMULA_NAMES))
        except FormulaicError as exc:
            raise FormulaError(f"cannot read '{text}' in the formula {formula.text!r}: "
                               f"{formulaic_message(exc)[0]}") from None
    _check_response_not_predictor(formula, data)
    needed = read + [name for term in formula.random for name in term.factors]
    for name in needed:
        if name not in data.columns:
            raise FormulaError(_unknown_coding_message(name, texts)
                               or _unknown_column_message(name, data.columns, formula.text))
    needed = list(dict.fromkeys(needed))
    if not data.columns.is_unique:
        duplicated = [name for name in needed if int((data.columns == name).sum()) > 1]
        if duplicated:
            raise DataError(f"the data have more than one column named {duplicated[0]!r}; "
                            "rename them so that each name is unique")
    return needed, list(dict.fromkeys(read)), tuple(texts)


#: The names a formula's variables are analysed with: formulaic asks a stateful transform
#: for its variables by evaluating its arguments, which fails on a column's name (x in
#: poly(x, 2)); only Q("x"), which names its variable as text, is asked, and the others'
#: arguments are read as any function's.
_ANALYSIS_CONTEXT = {"Q": TRANSFORMS["Q"]}


def _check_response_not_predictor(formula: ParsedFormula, data: pd.DataFrame) -> None:
    """A FormulaError when the response, a column, is also read by the predictors (the
    fixed part, a random-effects term, its grouping factor or an offset): it would explain
    itself (a slope on the response fitted the sleepstudy data with a criterion of -2,619).
    A response computed from columns may share them with the predictors, as R allows:
    ``I(y - baseline) ~ baseline``, a change adjusted for its baseline."""
    if formula.response not in data.columns:
        return
    response = {formula.response}
    places = [(formula.fixed, "the fixed effects")]
    places += [(term.expr, f"the random-effects term {term.label}")
               for term in formula.random]
    places += [(text, "an offset") for text in formula.offsets]
    for text, where in places:
        both = response.intersection(required_variables(text))
        if both:
            raise FormulaError(f"the response {formula.response!r} is also a predictor, in "
                               f"{where} of the formula {formula.text!r}: a variable cannot "
                               "explain itself; remove it from the right of '~'")
    for term in formula.random:
        both = response.intersection(term.factors)
        if both:
            raise FormulaError(f"the response {formula.response!r} is also the grouping "
                               f"factor of {term.label} in the formula "
                               f"{formula.text!r}; group by another column")


@lru_cache(maxsize=256)
def required_variables(text: str) -> tuple[str, ...]:
    """The variables that ``text`` (formulaic syntax) reads, those of stateful transforms
    (``x`` in ``poly(x, 2)``) included. A term that is a name is that whole name, dots
    included (``Reaction.Time``, as in R), and so is a backquoted name inside an expression;
    elsewhere in an expression, as formulaic has it, a dotted name is Python's attribute
    access on the name before the first dot (``x`` in ``x.fillna(0)``)."""
    names = set()
    for term in Formula(text):
        for factor in term.factors:
            if factor.eval_method is Factor.EvalMethod.LOOKUP:
                names.add(str(factor.expr))
            elif factor.eval_method is Factor.EvalMethod.PYTHON:
                try:
                    variables = get_required_variables(factor.expr, _ANALYSIS_CONTEXT)
                except Exception:  # noqa: BLE001 - formulaic's rule: code it cannot analyse
                    continue  # names no variables
                quoted = backquoted_names(factor.expr)
                names.update(str(v) if v in quoted else str(v.root) for v in variables
                             if v.root not in TRANSFORMS)
    return tuple(sorted(names))


def _check_function_or_column(text: str, functions: frozenset[str], columns) -> None:
    """A FormulaError for a name that ``text`` both calls as one of the formula's functions
    and reads as a column (``log + log(x)`` with a column named log): R tells them apart, by
    looking a called name up among functions only; Python's evaluation looks both up by the
    one name."""
    for name in sorted(called_names(text) - functions):
        if name not in columns:
            continue
        if name in FORMULA_CONTEXT or name in TRANSFORMS:
            raise FormulaError(f"'{r_spelling(text)}' both reads the column {name!r} and "
                               f"calls the function {name}(): rename the column (for example "
                               f"data.rename(columns={{{name!r}: {name + '_'!r}}}))")
        raise FormulaError(f"'{r_spelling(text)}' calls {name}(...), but {name!r} is a column "
                           f"of the data, not a function; the functions are "
                           f"{_FUNCTIONS_KNOWN}")


def _check_relevel(text: str, data: pd.DataFrame) -> None:
    """A FormulaError for ``relevel(x, ref = "b")`` of a column x that has no level b, or
    ``ref = 5`` past its levels (``relevel`` itself cannot tell the fit's data from new data
    lacking the level)."""
    if "relevel" not in called_names(text) or data.shape[0] == 0:  # (a schema's columns)
        return
    for node in ast.walk(ast.parse(text.replace("`", ""), mode="eval")):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "relevel"):
            continue
        column = node.args[0] if node.args else None
        ref = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "ref"), None)
        if isinstance(column, ast.Call) and getattr(column.func, "id", None) in (
                "factor", "as_factor") and len(column.args) == 1 and not column.keywords:
            column = column.args[0]
        if not (isinstance(column, ast.Name) and column.id in data.columns
                and isinstance(ref, ast.Constant) and isinstance(ref.value, (str, int))):
            continue
        labels = [level_label(c) for c in r_factor(data[column.id]).cat.categories.tolist()]
        if not (ref.value in labels if isinstance(ref.value, str)
                else type(ref.value) is int and 1 <= ref.value <= len(labels)):
            raise FormulaError(f"relevel({column.id}, ref = {ref.value!r}): {column.id!r} has "
                               f"no level {ref.value!r}; its levels are "
                               f"{', '.join(map(repr, labels[:20]))}"
                               + (f" (a position is 1 to {len(labels)})"
                                  if type(ref.value) is int else ""))


def _unknown_coding_message(name: str, texts: list[str]) -> str | None:
    """The message for a name given as the coding of a ``C(...)`` call, or None."""
    for text in texts:
        for term in Formula(text):
            for factor in term.factors:
                if name in coding_names(str(factor.expr)):
                    return f"in {factor}: unknown coding {name!r}; use {ALLOWED_CODINGS}"
    return None


def _unknown_column_message(name: str, columns, formula_text: str) -> str:
    named = [c for c in columns if not isinstance(c, str) and str(c) == name]
    if named:  # a frame made of arrays: columns 0, 1, ...
        return (f"the formula {formula_text!r} uses the column {name!r}, but the data's column "
                f"of that name is named by the {type(named[0]).__name__} {named[0]!r}, not by "
                "text; give the columns names of text, e.g. data.columns = "
                "data.columns.astype(str)")
    columns = [str(c) for c in columns]
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.5)
    lowered = [c for c in columns if c.lower() == name.lower() and c not in close]
    hint = close or lowered
    suggestion = f" Did you mean {', '.join(repr(c) for c in hint)}?" if hint else ""
    if name in called_names(formula_text):
        return (f"the formula {formula_text!r} calls {name}(...), but {name!r} is neither a "
                f"known function nor a column of the data.{suggestion} Available functions "
                f"are {_FUNCTIONS_KNOWN}")
    return (f"the formula {formula_text!r} uses the column {name!r}, which the data do not have."
            f"{suggestion} The columns are: {', '.join(columns[:20])}"
            f"{' ...' if len(columns) > 20 else ''}")


def _drop_missing(columns: FrameColumns, used: list[str], read: list[str],
                  texts, partition: bool = False,
                  response: str | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of the data (``columns``) without a missing value in the columns ``used``, and
    the positions of the others. The columns ``read`` as values that are not numbers are
    checked on the way (``columns.check_column``: dates, or text among numbers, are errors;
    ``response``: the response's name, whose messages say so), and every column of Python
    objects for values that are no numbers nor levels (``columns.check_cells``).
    A ``partition`` of a larger data set keeps its categoricals' unused levels, and leaves the
    count of dropped rows to the whole data's schema."""
    data = columns.frame
    missing = np.zeros(data.shape[0], dtype=bool)
    categorical = []
    for name in used:
        dtype = columns.dtype(name)
        if isinstance(dtype, pd.CategoricalDtype):
            categorical.append(name)
        if isinstance(dtype, pd.StringDtype):  # pandas' text: its own missing mask
            if name in read:
                check_column(name, columns, texts, name == response)
            missing |= columns.missing(name)
            continue
        values = columns.values(name)
        if values.dtype.kind == "c":
            raise DataError(f"column {name!r} has complex numbers; a model's columns hold real "
                            "numbers or levels: use the real part, the modulus or the angle")
        if values.dtype.kind == "f":
            if np.isfinite(values).all():  # the common case, in one pass
                continue
            infinite = np.isinf(values)
            if infinite.any():
                raise DataError(f"column {name!r} has {int(infinite.sum())} infinite value(s) "
                                f"(first at {listed_rows(data.index[[np.argmax(infinite)]])}); "
                                "replace or remove them before fitting")
            missing |= np.isnan(values)
        elif values.dtype.kind not in "iub":
            check_cells(name, values)
            if name in read:
                check_column(name, columns, texts, name == response)
            missing |= pd.isna(values)
    if partition:
        return (data.loc[~missing, used], np.flatnonzero(missing)) if missing.any() \
            else (data, _NO_ROWS)
    if not missing.any():
        return _drop_unused_levels(data, categorical), _NO_ROWS
    count = int(missing.sum())
    per_column = data[used].isna().sum().to_dict()
    warn_missing_rows(count, len(data), per_column)
    frame = data.loc[~missing, used]
    if frame.shape[0] == 0:
        empty = [name for name, k in per_column.items() if k == len(data)]
        detail = (f"column {empty[0]!r} has no values (all {len(data)} missing)" if empty else
                  "every row misses a value in one of the columns the model uses (missing "
                  "per column: " + ", ".join(f"{name}: {int(k)}" for name, k
                                             in per_column.items() if k) + ")")
        raise DataError(f"no rows are left after dropping rows with missing values: {detail}")
    return _drop_unused_levels(frame, categorical), np.flatnonzero(missing)


def warn_missing_rows(count: int, total: int, per_column: dict) -> None:
    """The DataWarning that counts the rows dropped for missing values (``per_column``: the
    missing values in each column the model uses)."""
    detail = ", ".join(f"{name}: {int(k)}" for name, k in per_column.items() if k)
    warn_user(f"dropped {count} of {total} rows with missing values in the "
              f"columns the model uses (missing per column: {detail})", DataWarning)


_NO_ROWS = np.zeros(0, dtype=np.intp)
_NO_ROWS.flags.writeable = False


def _drop_unused_levels(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """As R's model.frame (drop.unused.levels): a category without observations, or seen only
    in dropped rows, is no level at all (not an all-zero column of X, nor an empty group).
    ``categorical``: the model's columns of categorical dtype."""
    for name in categorical:
        column = frame[name]
        present = column.cat.remove_unused_categories()
        if len(present.cat.categories) < len(column.cat.categories):
            frame = frame.assign(**{name: present})
    return frame


def _response(rows: ModelData, name: str) -> np.ndarray:
    return _numeric_expression(rows, name, "the response")


def _expression_values(rows: ModelData, text: str, what: str, label: str) -> np.ndarray:
    """(n,) an expression's values on the rows of ``rows.frame``: an elementwise one's
    directly (``design.expressions``), others', and those the direct way leaves, by formulaic;
    a DataError where it is more than one column (``label``: the expression in messages)."""
    expression = numeric_expression(formulaic_expression(text))
    values = None if expression is None else rows.columns.expression(expression)
    if values is not None:  # a logical one as 0 and 1, as R's model.response reads it
        return values.astype(float, copy=False)
    matrix = _matrix(rows, "0 + " + formulaic_expression(text), f"{what} {label!r}",
                     "evaluate", logical_numbers=True)
    if matrix.shape[1] != 1:
        raise DataError(f"{what} {label!r} must be one numeric column, but it gives "
                        f"{matrix.shape[1]} columns (a factor's levels, or a matrix's columns)")
    return np.asarray(matrix, dtype=float)[:, 0]


def _numeric_expression(rows: ModelData, name: str, what: str,
                        label: str | None = None, finite: bool = True) -> np.ndarray:
    """A numeric column, or an expression of columns such as log(y), as floats on the rows
    of ``rows.frame``, finite (``finite``) or a DataError; ``label``: its name in messages
    (default ``name``)."""
    label = name if label is None else label
    if name not in rows.columns:  # an expression of columns, e.g. log(y)
        values = _expression_values(rows, name, what, label)
    elif number_dtype(rows.columns.dtype(name)):
        values = rows.columns.numbers(name)
    elif is_logical(rows.columns[name]):  # 0 and 1, as R's model.response reads a logical
        values = np.asarray(rows.columns[name], dtype=float)
    else:
        cells = [v.item() if hasattr(v, "item") else v for v in rows.columns[name].tolist()]
        example = next((v for v in cells if not is_number(v)), cells[0])  # one that is text
        raise DataError(f"{what} {label!r} must be numeric, but its dtype is "
                        f"{rows.columns.dtype(name)} (e.g. {example!r}); convert it with "
                        "pd.to_numeric (in a CSV file: numbers only, missing values as NA or "
                        "an empty cell) or choose a numeric column")
    if finite:
        _finite(values[:, None], (label,), what, rows.frame.index)
    return values


def _matrix(rows: ModelData, text: str, what: str, failure: str = "build", **options):
    """``rows.matrix(text, **options)``. formulaic's failures, and those of the data in the
    formula's functions, are FormulaErrors that say what could not be built or evaluated
    (``what``: "the fixed-effects part 'x'"); a transform's refusal of the data is its
    DataError."""
    try:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return rows.matrix(text, **options)  # (log(0): ``_finite`` names the column)
    except FormulaicError as exc:
        if isinstance(exc.__cause__, DataError):  # poly refusing missing values
            raise exc.__cause__ from None
        text_column = _text_read_as_numbers(exc, rows)
        if text_column is not None:
            raise DataError(f"cannot {failure} {what}: {text_column}") from None
        raise FormulaError(f"cannot {failure} {what}: {formulaic_message(exc)[0]}"
                           f"{_python_hint(exc.__cause__)}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. a function of the data that fails
        raise FormulaError(f"cannot evaluate {what}: {_failure(exc)}{_python_hint(exc)}") \
            from None


_FAILED_FACTOR = re.compile(r"Unable to evaluate factor `(.*)`\. \[")


def _text_read_as_numbers(exc: FormulaicError, rows: ModelData) -> str | None:
    """What is wrong where formulaic failed on an elementwise expression (``log(g)``) that
    reads a column of text, categories or bools as numbers; None otherwise."""
    failed = _FAILED_FACTOR.search(str(exc))
    expression = None if failed is None else numeric_expression(failed.group(1))
    for name in () if expression is None else expression.columns:
        if name in rows.columns and not number_dtype(rows.columns.dtype(name)):
            example = next(iter(rows.columns.values(name)[:1]), None)
            example = example.item() if hasattr(example, "item") else example
            return (f"{r_spelling(expression.text)} reads the column {name!r} as numbers, but "
                    f"it holds {rows.columns.dtype(name)} values (e.g. {example!r}); a "
                    "function of numbers needs a numeric column (pd.to_numeric converts text "
                    "that spells numbers)")
    return None


#: Python's failures of R's ways of writing an expression, and what to write instead
_PYTHON_HINTS = (
    ("Integers to negative integer powers", "; R's ^ gives fractions of integers, Python's "
     "** does not: write a float power (x^-1.0) or a quotient (1/x)"),
    ("truth value of a Series is ambiguous", "; in a formula, as in Python, & and | bind "
     "tighter than comparisons: write I((x > 2) & (x < 6))"),
    ("poly() got multiple values for argument 'degree'", "; poly() of several variables "
     "(R's poly(x, z, degree = 2)) is not supported: write poly(x, 2) + poly(z, 2) + x:z"),
)


def _python_hint(exc: BaseException | None) -> str:
    """What to write instead, for a failure of Python's that R's spelling causes."""
    text = str(exc) if exc is not None else ""
    return next((hint for words, hint in _PYTHON_HINTS if words in text), "")


def _failure(exc: Exception) -> str:
    """What failed on the data: our own FormulaError's message (a custom coding's), or the
    exception's type and message."""
    return str(exc) if isinstance(exc, FormulaError) else f"{type(exc).__name__}: {exc}"


def _check_response_variation(y: np.ndarray, r: np.ndarray | None, name: str) -> None:
    """A response that the fixed effects fit exactly leaves no variance to estimate. ``r``:
    the R of a QR decomposition of [X y] (``response_qr``), or None where X has no columns,
    or as many as rows."""
    if y.max() == y.min():
        raise DataError(f"the response {name!r} is constant (every value is {y[0]:g}); "
                        "there is no variation to model")
    if r is None:
        return
    # |R_yy| of a QR decomposition of [X y] is the norm of y's least-squares residual, and
    # |y| that of R's last column
    p = r.shape[1] - 1
    column = r[:p + 1, p]
    if abs(r[p, p]) <= 1e-10 * np.sqrt(column @ column):
        raise DataError(f"the fixed effects fit the response {name!r} exactly (all residuals "
                        "are zero): no variation is left for the random effects or the "
                        "residual; check that the response is not also a predictor")


def response_qr(X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """((p + 1) x (p + 1)) the R of a QR decomposition of [X y] in its upper triangle
    (LAPACK's compact form: the lower triangle holds reflectors), or None where X has no
    columns or no fewer columns than rows (``Design.response_r``)."""
    p = X.shape[1]
    if p == 0 or p >= len(y):
        return None
    return householder_qr(np.column_stack([X, y]))[:p + 1]


def _fixed_matrix(fixed: str, rows: ModelData, keep_levels: bool = False):
    """X, its R-style column names, and the record to rebuild it for new data;
    ``keep_levels``: as ``fast_encoding``'s."""
    encoding = fast_encoding(fixed, rows.columns, keep_levels, rows)
    if encoding is not None:  # data columns only: finite, as _drop_missing checked
        return encoding.matrix(rows.columns), encoding.names, encoding
    matrix = _matrix(rows, fixed, f"the fixed-effects part '{r_written(fixed)}'")
    names = r_column_names(matrix.columns)
    values = np.asarray(matrix, dtype=float)
    _finite(values, names, "the fixed-effects", rows.frame.index)
    return values, names, matrix.model_spec


#: the functions a formula can call, as a message lists them (R's names)
_FUNCTIONS_KNOWN = ("formulaic's (C, I, log, exp, scale, poly, ...), numpy as np, and "
                    + ", ".join(sorted({R_NAMES.get(name, name) for name in FORMULA_FUNCTIONS})))


def drop_aliased(X: np.ndarray, names: tuple[str, ...], geometry: np.ndarray | None = None,
                 r: np.ndarray | None = None):
    """Drop columns that lie in the span of the columns before them (R's rule, as in ``lm``).

    Column j is aliased when its distance from the span of the kept columns 0..j-1 is at most
    1e-7 ||x_j|| (the |R_jj| of a QR decomposition that pivots aliased columns to the end).
    A column of zeros is aliased too. ``geometry``: a matrix whose columns have the lengths
    and angles of X's, to decide from (the R of X = QR, when X's rows are elsewhere). ``r``:
    the compact QR of X, or of X with more columns after its own (``response_qr``), when
    it was taken already (``_independent_columns``).
    """
    keep = _independent_columns(X if geometry is None else geometry, r)
    if keep.all():
        return X, names, ()
    dropped = tuple(n for n, k in zip(names, keep) if not k)
    warn_user(f"fixed-effects model matrix is rank deficient: dropping aliased column(s) "
                  f"{', '.join(dropped)}", DataWarning)
    return X[:, keep], tuple(n for n, k in zip(names, keep) if k), dropped


def _independent_columns(X: np.ndarray, r: np.ndarray | None = None) -> np.ndarray:
    """Mask of the columns that are not in the span of the (kept) columns before them.

    The common case in one Householder QR: when every |R_jj| (column j's distance from the
    span of all the columns before it) is clearly above the tolerance, no column is aliased.
    Otherwise the columns are taken one at a time, against the kept ones only. ``r``: that
    QR in LAPACK's compact form (R in the upper triangle), of X or of X followed by other
    columns (whose R_jj are X's own), when it is known."""
    k = X.shape[1]
    norms = np.sqrt(np.add.reduce(X * X, axis=0))  # np.linalg.norm's sums, at half its cost
    if r is not None or 0 < k <= X.shape[0]:
        distances = np.abs((householder_qr(X) if r is None else r).diagonal()[:k])
        if np.all(distances > 2 * ALIAS_TOLERANCE * norms):
            return np.ones(k, dtype=bool)
    keep = np.zeros(X.shape[1], dtype=bool)
    basis = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        residual = X[:, j]
        for _ in range(2):  # Gram-Schmidt twice is orthogonal to working precision
            residual = residual - basis @ (basis.T @ residual)
        distance = np.linalg.norm(residual)
        if norms[j] > 0 and distance > ALIAS_TOLERANCE * norms[j]:
            keep[j] = True
            basis = np.column_stack([basis, residual / distance])
    return keep


def _absorbs_earlier_terms(term: TermDesign) -> bool:
    """Whether the term's covariance family, added to the covariance that earlier terms on its
    grouping factor give the same span of columns, stays in the family, so that the two cannot
    be told apart: unstructured (lme4's), and compound symmetry and Toeplitz with one shared
    sd (a constant added to one is another). A heterogeneous cs or Toeplitz, a diagonal or an
    AR(1) term is not of its form once a constant is added: an intercept term with one of them
    on the indicators of visits (Diggle's random intercept, AR(1) and nugget) is identified."""
    return term.structure == "us" or (term.structure in ("cs", "toep") and term.hom)


def _check_random_collinearity(terms: list[TermDesign]) -> list[TermDesign]:
    """Warn about random-effects columns that repeat (linear combinations of) the columns
    before them on the same grouping factor (within their own term only, for a term that
    does not absorb the earlier terms, ``_absorbs_earlier_terms``), and record them on their
    term."""
    out = list(terms)
    for group in dict.fromkeys(t.group for t in terms):
        members = [i for i, t in enumerate(terms) if t.group == group]
        if len(members) == 1 and terms[members[0]].values.shape[1] == 1:
            if np.any(terms[members[0]].values):
                continue
        keep = _independent_columns(np.column_stack([terms[i].values for i in members]))
        start = 0
        for i in members:
            p = terms[i].values.shape[1]
            own = (keep[start:start + p] if _absorbs_earlier_terms(terms[i])
                   else _independent_columns(terms[i].values))
            aliased = tuple(c for c, k in zip(terms[i].columns, own) if not k)
            start += p
            if aliased:
                out[i] = replace(terms[i], aliased=aliased)
                warn_user(f"in the random-effects term {terms[i].term.label}, the "
                          f"column(s) {', '.join(aliased)} are linear combinations of the "
                          f"columns before them on {group!r}: their variances cannot be told "
                          "apart (an over-parameterized, singular model); remove them from "
                          "the term", DataWarning)
    return out


def check_identifiable(terms, n: int, action: str) -> None:
    """lme4's checks of the number of observations (``check.nobs.vs.nlev`` and
    ``check.nobs.vs.nRE``, both "stop" by default): a grouping factor needs fewer levels than
    observations, and each term fewer random effects (levels x columns) than observations;
    otherwise its variances and the residual variance cannot be told apart (not so for an
    ``ar1`` term, whose few parameters the lagged covariances identify). ``action`` is
    "error" (a ``DataError``), "warning" (a ``DataWarning``) or "ignore"."""
    if action == "ignore":
        return
    for term in terms:
        levels, p = len(term.levels), term.values.shape[1]
        label = term.term.label
        if levels >= n:
            problem = (f"the grouping factor {term.group!r} has {levels} levels for {n} "
                       "observations; each level needs repeated observations (with one "
                       "value per row, the term is confounded with the residual)")
        elif levels * p >= n and term.structure != "ar1":
            # (an AR(1) term has two or k + 1 parameters whatever its columns: its sds,
            # correlation and the residual variance are told apart by the lagged covariances)
            problem = (f"the term {label} has {levels * p} random effects ({levels} levels x "
                       f"{p} columns) for {n} observations: its variances and the residual "
                       "variance cannot be told apart; simplify the term (fewer columns, or "
                       "(x || g)) or collect more observations per level"
                       + _numbers_as_levels(term.spec))
        else:
            continue
        hint = " (nobs_checks='warning' or 'ignore' fits it anyway)"
        if action == "error":
            raise DataError(problem + hint)
        warn_user(problem, DataWarning)


def _numbers_as_levels(spec) -> str:
    """A hint for a term whose columns are many because a column of numbers stored as text
    ("0", "1", ... "9") is read as a factor, one column per level; "" otherwise, and for a
    factor the formula makes on purpose (``factor(visit)``)."""
    if not isinstance(spec, Encoding):
        return ""
    for name, levels in spec.levels.items():
        called = "(" in name and name.endswith(")")
        if not called and len(levels) > 2 and all(is_number(level) for level in levels):
            return (f" (the column {name!r} is text, each of its {len(levels)} values a level "
                    f"with a column of its own: if it holds numbers, convert it with "
                    f"data[{name!r}] = pd.to_numeric(data[{name!r}]))")
    return ""


def _term_design(term: RandomTerm, rows: ModelData,
                 schema_levels: dict | None = None) -> TermDesign:
    """The term's columns and grouping (each grouping column's levels computed once for the
    terms that share it, by ``rows.columns``: nesting g/h). ``schema_levels``: the
    levels of a larger data set of which these rows are a partition, by grouping factor
    (``DataSchema.levels``): the codes are then those of its levels."""
    columns = rows.columns
    codes, levels = interaction_codes([columns.factor(name) for name in term.factors])
    n = columns.shape[0]
    if schema_levels is not None:
        codes, levels = _schema_codes(term, codes, levels, schema_levels[tuple(term.factors)])
    elif len(levels) < 2:
        raise DataError(f"the grouping factor {term.group!r} has a single level "
                        f"({str(levels[0])!r}); a random effect needs at least two groups")
    if term.expr.strip() == "1":
        return TermDesign(term, ("(Intercept)",), np.ones((n, 1)), codes, levels, None)
    text = r_factor_order(term.expr)  # R's order of an interaction's factors, for its names
    encoding = fast_encoding(text, columns, rows.keep_levels, rows)
    if encoding is not None:
        if not encoding.columns:
            raise FormulaError(f"the random-effects term {term.label} has no "
                               "columns; write (1 | g) for intercepts or (0 + x | g) for slopes")
        return TermDesign(term, encoding.names, encoding.matrix(columns), codes, levels,
                          encoding)
    matrix = _matrix(rows, text, f"the random-effects term {term.label}")
    values = np.asarray(matrix, dtype=float)
    if values.shape[1] == 0:
        raise FormulaError(f"the random-effects term {term.label} has no columns")
    names = r_column_names(matrix.columns)
    _finite(values, names, f"the random-effects term {term.label}", rows.frame.index)
    return TermDesign(term, names, values, codes, levels, matrix.model_spec)


def _check_factor_levels(spec, what: str) -> None:
    """A DataError for a factor of a single level in the rows the model uses (as R's
    ``contrasts can be applied only to factors with 2 or more levels``): its one indicator
    would be the intercept's column, dropped without a word. ``spec``: an ``Encoding``
    (``levels`` by column), a formulaic ``ModelSpec`` (its categorical factors' categories),
    or None."""
    if isinstance(spec, Encoding):
        levels = spec.levels.items()
    elif spec is not None:
        levels = [(name, state.get("categories", ()))
                  for name, (kind, state) in spec.encoder_state.items()
                  if kind is Factor.Kind.CATEGORICAL]
    else:
        return
    for name, found in levels:
        if len(found) < 2:
            level = f" ({str(found[0])!r})" if len(found) else ""
            raise DataError(f"the factor {name!r} of {what} has a single level{level} in the "
                            "rows the model uses; a factor needs at least two levels to have "
                            "an effect (R: contrasts can be applied only to factors with 2 or "
                            "more levels): remove it from the formula")


def _schema_codes(term: RandomTerm, codes: np.ndarray, levels: np.ndarray, known: pd.Index):
    """A partition's codes of a grouping factor as numbers of the whole data's ``known``
    levels, and those levels."""
    position = known.get_indexer(levels)
    if (position < 0).any():
        unseen = levels[np.argmax(position < 0)]
        raise DataError(f"the level {unseen!r} of the grouping factor {term.group!r} is not "
                        "among the levels of the data's schema: the data changed since it "
                        "was computed; compute the schema of these data")
    return position[codes].astype(np.intp), np.asarray(known)
