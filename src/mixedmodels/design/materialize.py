"""formulaic's model matrices made as R's model frame and model matrix make them.

``formula_matrix`` evaluates formula text (the fixed part, a random-effects term's expression,
the response or an offset) on a DataFrame with formulaic, as R does:

* every term is evaluated on all the rows of the data, and the rows with missing values are
  dropped afterwards (R's model frame evaluates the variables, then applies ``na.omit``). So a
  stateful transform (``poly``, ``scale``, ``center``, ``standardize``, ``bs``, ``cr``,
  ``cs``, ``cc``) learns its state from every row, not only from the complete ones, and so
  does any other function of the rows (``lag``). The state of each stateful call is recorded
  by its text (``transforms``), to evaluate the formula again on these data with the same
  basis: refits on some of the rows, hypothesis contrasts, predictions;
* a categorical variable's levels are those that occur in the rows kept (R's
  ``drop.unused.levels``): a level seen only in dropped rows, or in none, is no column;
* a term's categorical factors are coded by contrasts or by one indicator per level as R
  codes them (``design.term_codes``): ``a:b`` alone has every combination of levels, not
  formulaic's ``by``, ``bz``, ``alo:bx``, ... (b's contrasts, then a's within each level of b);
* a factor without a coding has R's default one (``formula.codings.default_coding``):
  polynomial contrasts for an ordered categorical (``x.L``, ``x.Q``...), treatment contrasts
  otherwise; new data are coded as the fit's data were;
* a logical variable (a bool column, or an expression of bools such as ``I(x > 5)``) is a
  factor of levels FALSE and TRUE, as R's model matrix codes it: ``y ~ b`` has the column
  ``bTRUE``, ``y ~ 0 + b`` the columns ``bFALSE`` and ``bTRUE``, and ``x:b`` the columns
  ``x:bFALSE`` and ``x:bTRUE``. The variable stays logical where it is evaluated, so
  ``I(b * 2)`` is a number, as in R. Unlike a categorical's, its levels are always both
  (R's ``contrasts<-`` makes it ``factor(b, levels = c(FALSE, TRUE))``): a level no row kept
  has is a column of zeros, which the fixed effects drop as rank-deficient, as lme4 does.
  Missing values, pandas' nullable ``boolean`` or None among Python bools, are missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from formulaic import ModelSpec
from formulaic.materializers import PandasMaterializer
from formulaic.materializers.types import FactorValues, ScopedFactor, ScopedTerm
from formulaic.parser.types import Factor
from formulaic.transforms import TRANSFORMS, C
from formulaic.transforms.contrasts import TreatmentContrasts
from formulaic.utils.variables import Variable

from ..errors import DataError
from ..formula.codings import default_coding
from ..formula.parse import called_only_names, quoted_columns
from ..formula.rfunctions import FORMULA_CONTEXT, LOGICAL_LEVELS, TREATMENT_CONTEXT, is_logical
from .expressions import numeric_expression
from .frame import FrameColumns
from .term_codes import contrast_codes

__all__ = ["ModelData", "called_functions", "column_text", "formula_matrix"]


class _Materializer(PandasMaterializer):
    """formulaic's pandas materializer with R's levels and default codings (see the module
    docstring). Its parameter ``treatment`` codes every factor by treatment contrasts;
    ``keep_levels`` keeps every category of a categorical (a partition of a larger data set,
    whose categories are the levels of all its rows: ``design.schema``)."""

    REGISTER_NAME = "mixedmodels"
    REGISTER_INPUTS = ()  # chosen by name only, never for formulaic's other users

    @PandasMaterializer.override
    def _encode_evaled_factor(self, factor, spec, drop_rows, reduced_rank=False):
        """formulaic's encoding of an evaluated factor, a categorical one with the levels that
        occur in the rows kept and with R's default coding."""
        values = factor.values
        _check_new_kind(factor, spec)
        if self._codes_logical(values):
            values = FactorValues(_logical_as_factor(values),
                                  metadata=values.__formulaic_metadata__)
        elif factor.expr not in spec.encoder_state and _is_categorical(values) \
                and not self.params.get("keep_levels"):
            values = _levels_kept(values, drop_rows)
        coding = self._coding(factor, spec)
        if coding is not None:  # encoded as C(x, coding) encodes it
            values = C(values.__wrapped__, coding)
        if values is not factor.values:
            factor = factor.replace(values=values)
        return super()._encode_evaled_factor(factor, spec, drop_rows, reduced_rank)

    @PandasMaterializer.override
    def _get_scoped_terms(self, terms, ensure_full_rank: bool = True):
        """Each term with its categorical factors coded by R's rule
        (``design.term_codes``), as one scoped term: formulaic's own rule codes a term whose
        margins are not all in the model by several (``a:b`` alone as b's contrasts and a's
        within each level of b), a matrix of the same span as R's but other columns. Without
        ``ensure_full_rank``, formulaic's (every factor by indicators)."""
        if not ensure_full_rank:
            yield from super()._get_scoped_terms(terms, ensure_full_rank)
            return
        terms = list(terms)
        evaluated = [[self.factor_cache[factor.expr] for factor in term.factors
                      if self.factor_cache[factor.expr].values.__wrapped__ is not None]
                     for term in terms]
        varying = [[f for f in factors if f.metadata.kind is not Factor.Kind.CONSTANT]
                   for factors in evaluated]
        categorical = {f.expr for factors in varying for f in factors
                       if f.metadata.spans_intercept}
        codes = contrast_codes(tuple(tuple(f.expr for f in factors) for factors in varying),
                               frozenset(categorical))
        for term, factors, kept, term_codes in zip(terms, evaluated, varying, codes):
            if not factors:
                yield term, []
                continue
            scale = 1
            for factor in factors:
                if factor.metadata.kind is Factor.Kind.CONSTANT:
                    scale *= factor.values
            yield term, [ScopedTerm((ScopedFactor(factor, reduced=bool(code))
                                     for factor, code in zip(kept, term_codes)), scale=scale)]

    @PandasMaterializer.override
    def _evaluate(self, expr: str, metadata, spec):
        """formulaic's evaluation of a Python factor; but an elementwise expression of numeric
        columns (``design.expressions``: ``I(x^2)``, ``log(y + 1)``) is evaluated as the fast
        encoding evaluates it, its columns read as R's numbers (``I((x + 1)^-1)`` of integers
        is a fraction, not an error, in whatever formula it appears), with the functions of
        this evaluation's context."""
        expression = numeric_expression(expr)
        values = None
        if expression is not None:
            found = {name: self.layered_context.get_with_layer_name(name, default=None)
                     for name in expression.functions}
            if all(function is not None for function, _ in found.values()):
                values = expression.values(self.data_context,
                                           {name: f for name, (f, _) in found.items()})
        if values is None:
            return super()._evaluate(expr, metadata, spec)
        variables = {Variable(name, roles=("value",), source="data")
                     for name in expression.columns}
        variables |= {Variable(name, roles=("callable",), source=layer)
                      for name, (_, layer) in found.items()}
        return pd.Series(values, index=self.data.index), variables

    @PandasMaterializer.override
    def _is_categorical(self, values) -> bool:
        """formulaic's categorical values, and logical ones (see the module docstring)."""
        return self._codes_logical(values) or super()._is_categorical(values)

    def _codes_logical(self, values) -> bool:
        """Logical values coded as a factor (not under ``logical_numbers``)."""
        return not self.params.get("logical_numbers") and is_logical(values)

    @property
    @PandasMaterializer.override
    def data_context(self):
        """The data's columns as formulaic evaluates them: small or unsigned integers as
        64-bit signed ones (``wide_integers``), without those named as a function the formula
        calls and reads nowhere else (``hidden``): ``log(x)`` calls the function log even
        where the data have a column named log, as in R."""
        hidden = self.params.get("hidden")
        return _WithoutNames(self.data, hidden) if hidden else _WideIntegers(self.data)

    def _coding(self, factor, spec):
        """The coding of a factor that ``C(x, coding)`` does not code: the fit's for new data,
        R's default for the fit's; None for treatment contrasts."""
        if factor.metadata.kind is not Factor.Kind.CATEGORICAL or factor.metadata.encoder \
                or self.params.get("treatment"):
            return None
        if factor.expr not in spec.encoder_state:
            return default_coding(factor.values)
        fitted = spec.encoder_state[factor.expr][1]["contrasts"].contrasts
        return None if isinstance(fitted, TreatmentContrasts) else fitted


class _WideIntegers(FrameColumns):
    """A DataFrame's columns by name (each read once), those of small or unsigned integers
    widened (``wide_integers``)."""

    def __getitem__(self, name) -> pd.Series:
        return wide_integers(super().__getitem__(name))

    @property
    def index(self) -> pd.Index:
        """The rows' labels (the pandas materializer labels the matrix's rows by them)."""
        return self.frame.index


class _WithoutNames(_WideIntegers):
    """``_WideIntegers`` without the columns named ``hidden``."""

    def __init__(self, frame: pd.DataFrame, hidden: frozenset):
        super().__init__(frame)
        self.hidden = hidden

    def __getitem__(self, name) -> pd.Series:
        if name in self.hidden:
            raise KeyError(name)
        return super().__getitem__(name)

    def __contains__(self, name) -> bool:
        return name not in self.hidden and super().__contains__(name)


def wide_integers(values):
    """A Series of integers narrower than 64 bits, or unsigned, as 64-bit signed integers
    (pandas' nullable ones as ``Int64``); anything else as it is. R's arithmetic has no such
    integers, and NumPy's wraps around in them without a word: ``I(-x)`` of a uint8 column
    gave 255 for -1, ``I(x^2)`` of an int8 one -124 for 30^2. Unsigned 64-bit integers
    beyond the signed range become floats."""
    if not isinstance(values, pd.Series) or values.dtype.kind not in "iu" or \
            (values.dtype.kind == "i" and values.dtype.itemsize == 8):
        return values
    dtype = values.dtype
    nullable = isinstance(dtype, pd.api.extensions.ExtensionDtype)
    if dtype.kind == "u" and dtype.itemsize == 8 and values.max() > np.iinfo(np.int64).max:
        return values.astype("Float64" if nullable else np.float64)
    return values.astype("Int64" if nullable else np.int64)


def _check_new_kind(factor, spec) -> None:
    """A DataError for new data whose values of a factor that was categorical (text,
    logical, a categorical) at fit time are numbers: formulaic would code them as a number,
    silently (``late:x`` with late given as 1 for True), or fail with a message about its
    encoding."""
    fitted = spec.encoder_state.get(factor.expr)
    if fitted is None or fitted[0] is not Factor.Kind.CATEGORICAL \
            or factor.metadata.kind is Factor.Kind.CATEGORICAL:
        return
    levels = ", ".join(map(str, fitted[1].get("categories", [])[:6]))
    raise DataError(f"{factor.expr!r} was categorical in the data of the fit (levels {levels}), "
                    f"but the new data give numbers ({getattr(factor.values, 'dtype', '?')}): "
                    f"give the same kind of values"
                    + (" (True or False)" if levels == ", ".join(LOGICAL_LEVELS) else ""))


def _is_categorical(values) -> bool:
    return isinstance(getattr(values, "dtype", None), pd.CategoricalDtype)


def _logical_as_factor(values) -> pd.Series:
    """Logical values as a categorical of R's levels FALSE and TRUE (a missing value stays
    missing), with the rows' labels of ``values`` if it has them."""
    array = pd.array(np.asarray(values.__wrapped__ if hasattr(values, "__wrapped__")
                                else values, dtype=object), dtype="boolean")
    codes = np.where(array.isna(), -1, array.to_numpy(dtype=bool, na_value=False))
    index = getattr(values, "index", None)
    return pd.Series(pd.Categorical.from_codes(codes.astype(np.int8), LOGICAL_LEVELS),
                     index=index)


def _levels_kept(values: FactorValues, drop_rows) -> FactorValues:
    """A categorical variable's values without the levels that occur only in the rows at the
    positions ``drop_rows``, or in none."""
    series = pd.Series(values.__wrapped__)
    codes = np.delete(series.cat.codes.to_numpy(), sorted(drop_rows))
    present = np.unique(codes[codes >= 0])
    if len(present) == len(series.cat.categories):
        return values
    kept = series.cat.set_categories(series.cat.categories[present])
    return FactorValues(kept, metadata=values.__formulaic_metadata__)


@lru_cache(maxsize=512)
def called_functions(text: str) -> frozenset[str]:
    """The functions of the formula's context (``FORMULA_CONTEXT``, formulaic's transforms)
    that ``text`` calls and reads nowhere else as a variable (``called_only_names``)."""
    return frozenset(name for name in called_only_names(text)
                     if name in FORMULA_CONTEXT or name in TRANSFORMS)


_PYTHON_CONSTANTS = frozenset({"True", "False", "None"})


def column_text(text: str, columns: pd.Index) -> str:
    """``text`` (formulaic's) with the data's ``columns`` whose names Python reads otherwise
    in backquotes: log(Days.x) reads the column Days.x, as in R (not the attribute x of
    Days), and log(True) the column True (``formula.parse.quoted_columns``)."""
    if "." not in text and not any(name in text for name in _PYTHON_CONSTANTS):
        return text  # (reading the columns' names costs more than the fit's formula)
    quoted = frozenset(name for name in columns.tolist() if isinstance(name, str)
                       and ("." in name or name in _PYTHON_CONSTANTS))
    return quoted_columns(text, quoted) if quoted else text


def formula_matrix(text: str, data: pd.DataFrame, drop=(), transforms: dict | None = None,
                   treatment: bool = False, keep_levels: bool = False, context=None,
                   logical_numbers: bool = False, **options):
    """formulaic's model matrix of ``text`` on the rows of ``data`` but those at the positions
    ``drop``, every term evaluated on all the rows (see the module docstring).

    Args:
        transforms: the state of stateful transforms already evaluated on these data, by the
            text of their call (``matrix.model_spec.transform_state`` records all of them).
        treatment: code every factor by treatment contrasts: codings (``C(x, coding)``) and
            ordered factors' polynomial contrasts ignored, as lmerTest's type III contrasts.
        keep_levels: keep the categories of a categorical that no kept row has.
        context: the names the formula is evaluated with (default: ``FORMULA_CONTEXT``, or
            ``TREATMENT_CONTEXT`` with ``treatment``).
        logical_numbers: logical values are numbers 0 and 1, not a factor (a response or an
            offset, as R's model.response and model.offset read them).
        options: formulaic's ``ModelSpec`` options (``ensure_full_rank``).
    """
    text = column_text(text, data.columns)
    params = {"treatment": treatment, "keep_levels": keep_levels,
              "logical_numbers": logical_numbers, "hidden": called_functions(text)}
    spec = ModelSpec.from_spec(text, na_action="ignore", materializer=_Materializer,
                               materializer_params=params,
                               transform_state=dict(transforms or {}), **options)
    if context is None:
        context = TREATMENT_CONTEXT if treatment else FORMULA_CONTEXT
    return spec.get_model_matrix(data, context=context, drop_rows=set(drop))


@dataclass(frozen=True)
class ModelData:
    """The data a model's formula is evaluated on.

    Attributes:
        frame: the rows the model uses (no missing value in the columns it uses).
        whole: all the rows of the data, in the same columns: the terms are evaluated on
            them (``formula_matrix``).
        drop: the positions in ``whole`` of the rows that are not in ``frame``.
        transforms: the state of the stateful transforms evaluated, by the text of their
            call; given ones are reused, new ones are added as they are evaluated.
        columns: the columns of ``frame``, each read once (``FrameColumns``).
        keep_levels: keep the categories of a categorical that no row of ``frame`` has (see
            ``formula_matrix``).
    """

    frame: pd.DataFrame
    whole: pd.DataFrame
    drop: np.ndarray
    transforms: dict
    columns: FrameColumns = field(default=None, repr=False, compare=False)
    keep_levels: bool = False

    def __post_init__(self):
        if self.columns is None:
            object.__setattr__(self, "columns", FrameColumns(self.frame))

    @classmethod
    def of(cls, frame: pd.DataFrame, transforms: dict | None = None,
           keep_levels: bool = False) -> "ModelData":
        """Every row of ``frame`` used; a copy of ``transforms``, if given."""
        return cls(frame, frame, np.zeros(0, dtype=np.intp), dict(transforms or {}),
                   keep_levels=keep_levels)

    def matrix(self, text: str, **options):
        """``formula_matrix`` of ``text`` on these data, its transforms' state recorded."""
        matrix = formula_matrix(text, self.whole, self.drop, self.transforms,
                                keep_levels=self.keep_levels, **options)
        self.transforms.update(matrix.model_spec.transform_state)
        return matrix
