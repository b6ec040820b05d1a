"""The schema of data split into partitions: what the designs of the partitions agree on.

A data set too large for one process is fitted from its partitions (a Dask DataFrame's): each
partition's rows give their share of the cross-products, and the shares are summed. That sum is
the cross-products of the whole data only if every partition builds its rows' design as the
whole data would: the same fixed-effects columns (a categorical variable's levels are those of
all the rows, not of the partition), the same random-effects levels (numbered as all the rows
number them), and stateful transforms (``scale``, ``center``, ``standardize``, ``poly``) with the
state of all the rows. The ``DataSchema`` records these, from one pass over the partitions:

1. each partition is summarized (``summarize``): its rows, those complete in the columns the
   model uses, the missing values per column, the distinct values of its categorical columns
   and of its grouping factors (and their combinations, for ``g:h`` and ``g/h``), the sums
   from which a stateful transform's state follows (``formula.transforms.STATISTICS_CONTEXT``)
   and a hash of its values;
2. the summaries are added (``PartitionSummary.__add__``, associative: a tree reduction);
3. ``DataSchema.of`` orders the levels as the in-memory design orders them (R's order) and
   turns the sums into the transforms' state.

``build_design(..., schema=schema)`` then builds any partition's design in the whole data's
terms. The hashes make a schema refuse data other than those it was computed from.

Decisions: categorical variables of the fixed part and of random-effects terms must be columns
(text, or pandas categoricals; a number column given to ``C(x)`` is made categorical with the
levels of all the rows); a categorical made by an expression (``factor(x)``, ``C(x > 0)``,
``interaction(a, b)``, ``as.factor(x)``: any call whose values, evaluated on some rows of each
partition, are levels other than logical ones) and the spline bases (``bs``, ``cr``, ``cs``,
``cc``), whose knots are quantiles of all the rows, are refused with a message that says what
to do. A column of text is cast to the levels of all the rows only where it is a factor of a
term itself: a call on it (``as.numeric(x)``) sees the text, as in memory. The columns read
as values are checked on each partition as the in-memory design checks them (dates, text
among numbers: ``columns.check_column``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from formulaic import Formula

from ..errors import DataError, FormulaError
from ..formula.parse import ParsedFormula
from ..formula.rfunctions import FORMULA_CONTEXT
from ..formula.transforms import STATISTICS_CONTEXT, merge_statistics, state_from_statistics
from .build import _unknown_column_message, _used_columns
from .columns import check_column
from .frame import FrameColumns, number_dtype
from .levels import factor_codes, grouping_codes
from .materialize import formula_matrix
from .names import r_spelling

__all__ = ["DataSchema", "PartitionSummary", "check_dtypes", "complete_mask", "model_columns",
           "summarize"]

#: calls whose result depends on all the rows in a way the schema does not record
_REFUSED = {"factor": "a categorical column of the data",
            "ordered": "an ordered categorical column of the data (pandas' ordered=True)",
            "relevel": "a categorical column of the data whose categories start with the "
                       "reference level",
            "bs": "poly(x, d), or spline columns computed beforehand",
            "ns": "poly(x, d), or spline columns computed beforehand",
            "cr": "poly(x, d), or spline columns computed beforehand",
            "cs": "poly(x, d), or spline columns computed beforehand",
            "cc": "poly(x, d), or spline columns computed beforehand",
            "te": "poly(x, d), or spline columns computed beforehand",
            "lag": "a lagged column computed beforehand"}


@dataclass(frozen=True)
class ModelColumns:
    """The columns a formula uses on a data set: all of them (``used``), those read as values
    (``read``), the categorical ones among these (``categorical``: cast to the levels of all
    the rows in every partition), the grouping factors of each random-effects term
    (``groups``), the formula's texts in formulaic syntax (``texts``), the prior weights'
    column (``weights``, or None) and the other columns the model uses as they are
    (``extra``: a residual structure's times, groups and strata; ``build_design``'s
    ``extra_columns``)."""

    used: tuple[str, ...]
    read: tuple[str, ...]
    categorical: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    texts: tuple[str, ...]
    weights: str | None = None
    extra: tuple[str, ...] = ()


def model_columns(formula: ParsedFormula, dtypes: pd.Series, weights: str | None = None,
                  extra_columns: tuple[str, ...] = ()) -> ModelColumns:
    """The columns ``formula`` uses on data of these ``dtypes`` (a DataFrame's ``dtypes``);
    a FormulaError for a call the schema cannot reproduce on partitions (``_REFUSED``)."""
    frame = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})
    used, read, texts = _used_columns(formula, frame)
    coded = _coded_columns(texts, formula.text)
    factors = _factor_columns(texts)
    categorical = [name for name in read
                   if name in coded or (name in factors and not (
                       number_dtype(dtypes[name]) or pd.api.types.is_bool_dtype(dtypes[name])))]
    for name in extra_columns:
        if name not in dtypes.index:
            raise DataError(_unknown_column_message(name, dtypes.index, formula.text).replace(
                f"the formula {formula.text!r} uses", "the residual structure uses"))
    extra = [name for name in (*extra_columns, weights) if name is not None]
    for name in extra:
        if name not in dtypes.index:
            raise DataError(f"the column {name!r} is not in the data")
    used = list(dict.fromkeys(used + extra))
    groups = tuple(dict.fromkeys(tuple(term.factors) for term in formula.random))
    return ModelColumns(tuple(used), tuple(read), tuple(categorical), groups, tuple(texts),
                        weights, tuple(extra_columns))


def _factor_columns(texts) -> set[str]:
    """The columns that are factors of a term themselves (``x`` in ``x + x:z``), not read
    only inside a call: those of text are cast to the levels of all the rows, and a call
    sees the column as the in-memory design does (``as.numeric(x)`` of text reads its
    numbers, of a categorical its codes)."""
    names = set()
    for text in texts:
        for term in Formula(text):
            names.update(str(factor.expr).strip("`") for factor in term.factors)
    return names


def _factor_calls(text: str):
    """(factor expression, call node) for each call by name in each factor of ``text``."""
    for term in Formula(text):
        for factor in term.factors:
            try:
                tree = ast.parse(str(factor.expr), mode="eval")
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    yield str(factor.expr), node


def _coded_columns(texts, formula_text: str) -> set[str]:
    """The columns given to ``C(...)``; a FormulaError for the refused calls, and for ``C`` of
    an expression."""
    coded = set()
    for text in texts:
        for _, node in _factor_calls(text):
            name = node.func.id
            if name in _REFUSED:
                raise FormulaError(
                    f"{name}(...) in the formula {formula_text!r} depends on all the rows at "
                    "once, which a fit over partitions of the data cannot learn from its "
                    f"summaries; use {_REFUSED[name]} instead")
            if name == "C" and node.args:
                if not isinstance(node.args[0], ast.Name):
                    raise FormulaError(
                        f"C({ast.unparse(node.args[0])}, ...) in the formula "
                        f"{formula_text!r}: a fit over partitions of the data needs the levels "
                        "of a column; add the expression to the data as a column and give "
                        "that to C()")
                coded.add(node.args[0].id)
    return coded


@dataclass(frozen=True)
class PartitionSummary:
    """What the schema needs from some rows; summaries of disjoint rows add up (``+``), in the
    partitions' order.

    Attributes:
        rows: the number of rows; ``complete``: those without a missing value in the columns
            the model uses.
        missing: the missing values per column.
        distinct: per categorical column and grouping factor, its distinct values among the
            complete rows (a Series of the column's dtype).
        combinations: per interaction of grouping factors (``g:h``), the distinct
            combinations among the complete rows.
        statistics: per stateful transform (by the text of its call), its sums.
        fingerprints: per partition, (rows, a hash of its values in the columns used).
        zero_weights: the rows of prior weight 0 (not complete either).
    """

    rows: int
    complete: int
    missing: dict
    distinct: dict
    combinations: dict
    statistics: dict
    fingerprints: tuple[tuple[int, int], ...]
    zero_weights: int = 0

    def __add__(self, other: "PartitionSummary") -> "PartitionSummary":
        return PartitionSummary(
            self.rows + other.rows, self.complete + other.complete,
            {name: self.missing[name] + other.missing[name] for name in self.missing},
            {name: _union(self.distinct[name], other.distinct[name]) for name in self.distinct},
            {key: _union(self.combinations[key], other.combinations[key])
             for key in self.combinations},
            {text: merge_statistics(self.statistics[text], other.statistics[text])
             for text in self.statistics},
            self.fingerprints + other.fingerprints, self.zero_weights + other.zero_weights)


def _union(first, second):
    """The distinct values (or rows) of two sets, in order of appearance."""
    if isinstance(first, pd.DataFrame):
        return pd.concat([first, second], ignore_index=True).drop_duplicates(ignore_index=True)
    values = pd.concat([first, second], ignore_index=True)
    return values.drop_duplicates(ignore_index=True)


def dtype_name(dtype) -> str:
    """A dtype as text, pandas' text dtypes as one ("string": with ``pd.NA`` or NaN for a
    missing value, Arrow or Python storage, the design reads them alike)."""
    return "string" if isinstance(dtype, pd.StringDtype) else str(dtype)


def check_dtypes(frame: pd.DataFrame, dtypes: dict, index: int) -> None:
    """A DataError unless partition ``index`` has the columns ``dtypes`` (name ->
    ``dtype_name``) with those dtypes: files of one data set whose column types differ."""
    for name, dtype in dtypes.items():
        found = dtype_name(frame[name].dtype) if name in frame.columns else None
        if found != dtype:
            raise DataError(
                f"partition {index} of the data has column {name!r} "
                f"{'missing' if found is None else f'of dtype {found}'}, where the data's "
                f"first partition (or its schema) has {dtype}: the files differ; give the "
                f"column one type in all of them (e.g. ddf.astype({{{name!r}: ...}}))")


def summarize(frame: pd.DataFrame, formula: ParsedFormula, columns: ModelColumns,
              dtypes: dict | None = None, index: int = 0) -> PartitionSummary:
    """The ``PartitionSummary`` of one partition's rows (a pandas DataFrame); ``dtypes``:
    the dtypes its used columns must have (``check_dtypes``)."""
    if dtypes is not None:
        check_dtypes(frame, dtypes, index)
    view = FrameColumns(frame)
    for name in columns.read:  # dates, text among numbers: as the in-memory design's checks
        check_column(name, view, columns.texts, name == formula.response)
    missing = complete_mask(frame, columns)
    complete = frame.loc[missing.complete] if not missing.complete.all() else frame
    if len(complete):
        _check_level_expressions(complete.head(LEVEL_CHECK_ROWS), columns, formula.text)
    distinct = {}
    for name in dict.fromkeys(columns.categorical + tuple(n for g in columns.groups for n in g)):
        distinct[name] = complete[name].drop_duplicates(ignore_index=True)
    combinations = {group: complete[list(group)].drop_duplicates(ignore_index=True)
                    for group in columns.groups if len(group) > 1}
    statistics = {}
    if len(frame):
        for text in columns.texts:
            statistics.update(_transform_statistics(text, frame))
    used = frame[list(columns.used)]
    fingerprint = int(pd.util.hash_pandas_object(used, index=False).sum()) if len(frame) else 0
    return PartitionSummary(len(frame), int(missing.complete.sum()), missing.per_column,
                            distinct, combinations, statistics, ((len(frame), fingerprint),),
                            missing.zero_weights)


#: the rows of a partition on which the formula's calls are evaluated to see their values' kind
LEVEL_CHECK_ROWS = 50


def _check_level_expressions(rows: pd.DataFrame, columns: ModelColumns,
                             formula_text: str) -> None:
    """A FormulaError for a call whose values are levels (``interaction(a, b)``,
    ``as.factor(x)``, ``as.character(x)``): each partition would code the levels its own rows
    have, where the design of all the rows codes those of all of them. Logical values
    (``I(x > 2)``: levels FALSE and TRUE, known beforehand) and ``C()`` of a column (cast
    to the levels of all the rows) are levels every partition codes alike. The calls are
    evaluated on some of the partition's complete ``rows``, as formulaic evaluates them."""
    for text in columns.texts:
        calls = {}
        for expression, node in _factor_calls(text):
            calls.setdefault(expression, []).append(node)
        for expression, nodes in calls.items():
            outer = nodes[0]  # ast.walk meets the outermost call first
            if outer.func.id == "C" or any(n.func.id in STATISTICS_CONTEXT for n in nodes):
                continue  # C(): checked by _coded_columns; transforms: numbers
            matrix = formula_matrix(f"0 + {expression}", rows)
            for factor, (kind, state) in matrix.model_spec.encoder_state.items():
                levels = set(map(str, state.get("categories", ())))
                if kind.value == "categorical" and not levels <= {"FALSE", "TRUE"}:
                    hint = (" (or write the interaction a:b of the factors)"
                            if outer.func.id == "interaction" else "")
                    raise FormulaError(
                        f"{r_spelling(factor)} in the formula {formula_text!r} makes levels of "
                        "the values "
                        "it is given, which a fit over partitions of the data would learn "
                        "from each partition's rows alone; add its values to the data as a "
                        "column of text (ddf['name'] = ...) and use that column" + hint)


def _transform_statistics(text: str, frame: pd.DataFrame) -> dict:
    """The sums of the stateful transforms in ``text`` over the rows of ``frame``, by the
    text of their call: each factor that calls one is evaluated on its own (the other
    variables, such as text columns, are not read)."""
    out = {}
    for expression in _stateful_factors(text):
        matrix = formula_matrix(f"0 + {expression}", frame,
                                context={**FORMULA_CONTEXT, **STATISTICS_CONTEXT})
        out.update(matrix.model_spec.transform_state)
    return out


def _stateful_factors(text: str) -> list[str]:
    """The factors of ``text`` that call a stateful transform (``scale(x)``, ``poly(x, 2)``)."""
    if "(" not in text:
        return []
    return list(dict.fromkeys(expression for expression, node in _factor_calls(text)
                              if node.func.id in STATISTICS_CONTEXT))


@dataclass(frozen=True)
class Completeness:
    """``complete``: (n,) the rows without a missing value in the columns the model uses;
    ``per_column``: the missing values in each of those columns (among the rows of weight
    other than 0); ``zero_weights``: the rows of prior weight 0."""

    complete: np.ndarray
    per_column: dict
    zero_weights: int = 0


def complete_mask(frame: pd.DataFrame, columns: ModelColumns) -> Completeness:
    """Which rows of ``frame`` the model can use: as the in-memory design, the rows of prior
    weight 0 are left out first, then those with a missing value (R's ``na.omit``)."""
    complete = np.ones(len(frame), dtype=bool)
    if columns.weights is not None:
        complete &= (frame[columns.weights] != 0).to_numpy()
    zero_weights = int(len(frame) - complete.sum())
    per_column = {}
    for name in columns.used:
        missing = frame[name].isna().to_numpy() & complete
        per_column[name] = int(missing.sum())
        complete &= ~missing
    return Completeness(complete, per_column, zero_weights)


@dataclass(frozen=True)
class DataSchema:
    """What every partition's design must agree on (see the module docstring).

    Attributes:
        formula: the formula's text; ``columns``: the columns it uses (``ModelColumns``).
        dtypes: each used column's dtype, as text.
        categories: per categorical column, the dtype every partition casts it to: the levels
            of all the complete rows, in R's order (sorted, or a categorical's own order).
        levels: per grouping factor (the tuple of its columns), its levels' labels in R's
            order, as the design of all the rows labels them.
        transforms: the state of the formula's stateful transforms, learnt from all the rows.
        rows, complete, missing: the counts of ``PartitionSummary``.
        fingerprints: per partition, its number of rows and the hash of its values.
        zero_weights: the rows of prior weight 0, left out.
        residual: what a residual structure learnt from all the complete rows, and which
            partitions hold each of its groups (``partitioned.residual.ResidualShare``), or
            None without one.
    """

    formula: str
    columns: ModelColumns
    dtypes: dict
    categories: dict
    levels: dict
    transforms: dict
    rows: int
    complete: int
    missing: dict
    fingerprints: tuple = field(repr=False)
    zero_weights: int = 0
    residual: object = field(default=None, repr=False)

    @classmethod
    def of(cls, summary: PartitionSummary, formula: ParsedFormula, columns: ModelColumns,
           dtypes: pd.Series, residual=None) -> "DataSchema":
        """The schema of the data whose partitions' summaries add up to ``summary`` (and, with
        a residual structure, their shares ``residual``)."""
        if summary.rows == 0:
            raise DataError("the data have no rows (every partition is empty)")
        if summary.complete == 0:
            raise DataError(f"no rows are left after dropping rows with missing values (all "
                            f"{summary.rows} rows have one in the columns the model uses)")
        categories = {}
        for name in columns.categorical:
            categories[name] = _categories(summary.distinct[name])
        levels = {}
        for group in columns.groups:
            if len(group) == 1:
                frame = summary.distinct[group[0]].to_frame()
            else:
                frame = summary.combinations[group]
            frame = _cast(frame, categories)
            levels[group] = pd.Index(grouping_codes(frame, group)[1])
        transforms = {text: state_from_statistics(s) for text, s in summary.statistics.items()}
        return cls(formula.text, columns, {name: dtype_name(dtypes[name])
                                           for name in columns.used},
                   categories, levels, transforms, summary.rows, summary.complete,
                   summary.missing, summary.fingerprints, summary.zero_weights, residual)

    def cast(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with its categorical columns cast to the levels of all the rows."""
        return _cast(frame, self.categories)

    def check_partitions(self, count: int) -> None:
        """A DataError unless the data have as many partitions as those of the schema."""
        if count != len(self.fingerprints):
            raise DataError(f"the data have {count} partitions and the schema was computed "
                            f"from {len(self.fingerprints)}: compute the schema of these data")

    def check_partition(self, frame: pd.DataFrame, index: int) -> None:
        """A DataError unless ``frame`` is partition ``index`` of the data the schema was
        computed from (its number of rows, dtypes and values' hash)."""
        check_dtypes(frame, self.dtypes, index)
        used = frame[list(self.columns.used)]
        fingerprint = (len(frame), int(pd.util.hash_pandas_object(used, index=False).sum())
                       if len(frame) else 0)
        if fingerprint != tuple(self.fingerprints[index]):
            raise DataError(f"partition {index} is not the data the schema was computed from "
                            f"({fingerprint[0]} rows here, {self.fingerprints[index][0]} then; "
                            "or values changed): compute the schema of these data")


def _categories(values: pd.Series) -> pd.CategoricalDtype:
    """The dtype of a categorical column with these distinct values as levels, in the order
    the design sorts them (``levels.factor_codes``)."""
    codes, _ = factor_codes(values)
    order = np.empty(len(codes), dtype=np.intp)
    order[np.asarray(codes)] = np.arange(len(codes))
    ordered = bool(getattr(values.dtype, "ordered", False))
    return pd.CategoricalDtype(values.to_numpy()[order] if len(order) else [], ordered=ordered)


def _cast(frame: pd.DataFrame, categories: dict) -> pd.DataFrame:
    cast = {name: frame[name].astype(dtype) for name, dtype in categories.items()
            if name in frame.columns and frame[name].dtype != dtype}
    return frame.assign(**cast) if cast else frame

