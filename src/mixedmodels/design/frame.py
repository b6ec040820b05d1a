"""A DataFrame's columns, each read and converted once.

pandas builds a new Series at every column access (20 to 30 us in pandas 3 here, more within
a fit, where its long call chain is out of the processor's caches: 8.6% of a small model's
whole fit, sampled) and converts it again at every ``to_numpy``. Reading the data frame
itself, the design of a small model reads each column it uses three to five times (missing
values, kind, levels, values, grouping codes). Through ``FrameColumns``, which keeps what was
read for the next reader, it reads each once, and as the array pandas stores
(``column_array``), without a Series, unless a reader needs the Series' methods.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .levels import factor_codes, stored_text

__all__ = ["FrameColumns", "column_array", "number_dtype", "text_with_na"]


def column_array(frame: pd.DataFrame, name):
    """The values of column ``name`` as pandas stores them (a NumPy array, read-only, or an
    extension array), as ``frame[name].array`` holds them, without building the Series.

    Through ``DataFrame._get_column_array`` (pandas' own accessor of a block's values, in
    pandas 1.3 to 3) where the name is one column; otherwise, or in a pandas without it,
    through the Series."""
    location = frame.columns.get_loc(name)
    get = getattr(frame, "_get_column_array", None)
    if get is None or not isinstance(location, int):
        values = frame[name].array
        return values.to_numpy() if isinstance(values, pd.arrays.NumpyExtensionArray) \
            else values
    values = get(location)
    if isinstance(values, np.ndarray):  # a view of the frame's block: never to be written
        values = values.view()
        values.flags.writeable = False
    return values


def _to_numpy(values, dtype=None) -> np.ndarray:
    """``Series.to_numpy(dtype)`` of a column's ``column_array``."""
    if isinstance(values, np.ndarray):
        return values if dtype is None or values.dtype == dtype else \
            np.asarray(values, dtype=dtype)
    return values.to_numpy(dtype=dtype)


class FrameColumns(Mapping):
    """The columns of ``frame``: ``columns[name]`` is ``frame[name]``, read once; ``array``
    its values as pandas stores them and ``dtype`` their dtype (no Series built); ``values``,
    ``labels`` and ``numbers`` its values as NumPy has them, as text and as floats, converted
    once. ``name in columns`` and ``columns.shape`` read as the DataFrame's, so that a reader
    takes either."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self._read: dict = {}
        self._arrays: dict = {}
        self._values: dict = {}
        self._labels: dict = {}
        self._numbers: dict = {}
        self._missing: dict = {}
        self._factors: dict = {}
        self._expressions: dict = {}

    def __getitem__(self, name) -> pd.Series:
        column = self._read.get(name)
        if column is None:
            column = self._read[name] = self.frame[name]
        return column

    def array(self, name):
        """The column's values as pandas stores them (``column_array``)."""
        values = self._arrays.get(name)
        if values is None:
            values = self._arrays[name] = column_array(self.frame, name)
        return values

    def dtype(self, name):
        return self.array(name).dtype

    def __contains__(self, name) -> bool:
        return name in self.frame.columns

    def __iter__(self):
        return iter(self.frame.columns)

    def __len__(self) -> int:
        return self.frame.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return self.frame.shape

    def values(self, name) -> np.ndarray:
        """The column's values as NumPy has them (``Series.to_numpy()``)."""
        values = self._values.get(name)
        if values is None:
            values = self._values[name] = _to_numpy(self.array(name))
        return values

    def labels(self, name) -> np.ndarray:
        """The column's values as text (a NumPy string array)."""
        labels = self._labels.get(name)
        if labels is None:
            labels = self._labels[name] = _to_numpy(self.array(name), str)
        return labels

    def missing(self, name) -> np.ndarray:
        """(n,) bool: the column's missing values (``isna`` of the array pandas stores)."""
        missing = self._missing.get(name)
        if missing is None:
            values = self.array(name)
            missing = self._missing[name] = (pd.isna(values) if isinstance(values, np.ndarray)
                                             else np.asarray(values.isna()))
        return missing

    def numbers(self, name) -> np.ndarray:
        """The column's values as floats."""
        numbers = self._numbers.get(name)
        if numbers is None:
            numbers = self._numbers[name] = _to_numpy(self.array(name), float)
        return numbers

    def expression(self, expression) -> np.ndarray | None:
        """An elementwise expression's values on these rows (``NumericExpression.values``, of
        ``design.expressions``), evaluated once."""
        if expression not in self._expressions:
            self._expressions[expression] = expression.values(self)
        return self._expressions[expression]

    def factor(self, name) -> tuple[np.ndarray, np.ndarray]:
        """The column's (codes, level labels) as R's ``factor`` (``levels.factor_codes``)."""
        factor = self._factors.get(name)
        if factor is None:
            column = self.array(name)
            values = None if stored_text(column) else self.values(name)
            factor = self._factors[name] = factor_codes(column, values)
        return factor

    def readable(self, names) -> FrameColumns:
        """These columns, those of ``names`` of text with ``pd.NA`` or of Arrow's dictionary
        type converted as ``text_with_na`` converts them (a new frame only if one is). The
        dtypes are read from the columns, which a design reads anyway: the frame's ``dtypes``
        Series and its lookups cost 30 to 50 us."""
        cast = {name: _readable(self[name]) for name in names
                if _text_with_na(self.dtype(name)) or _arrow_dictionary(self.dtype(name))}
        return FrameColumns(self.frame.assign(**cast)) if cast else self


def text_with_na(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text columns of pandas' "string" dtype (missing value ``pd.NA``:
    ``string[pyarrow]``, ``string[python]``, as Dask and Arrow readers give them) as text
    columns of the default "str" dtype (missing value NaN), which formulaic reads as
    categorical (it reads the others as numbers, and fails); and its columns of Arrow's
    dictionary-encoded text (``read_parquet(..., dtype_backend="pyarrow")`` of a categorical)
    as pandas' categoricals, their levels in the dictionary's order."""
    cast = {name: _readable(frame[name]) for name, dtype in frame.dtypes.items()
            if _text_with_na(dtype) or _arrow_dictionary(dtype)}
    return frame.assign(**cast) if cast else frame


def _readable(column: pd.Series) -> pd.Series:
    """A column of text with ``pd.NA`` as "str", one of Arrow's dictionary type as
    categorical (``text_with_na``)."""
    return column.astype("category" if _arrow_dictionary(column.dtype) else "str")


def _text_with_na(dtype) -> bool:
    return isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA


def _arrow_dictionary(dtype) -> bool:
    return isinstance(dtype, pd.ArrowDtype) \
        and str(dtype.pyarrow_dtype).startswith("dictionary<")


def number_dtype(dtype) -> bool:
    """A dtype of numbers, booleans excepted (pandas' ``is_numeric_dtype`` and not
    ``is_bool_dtype``); a NumPy dtype is told by its kind, without pandas' checks (a
    microsecond or two each), nor pandas' text."""
    if isinstance(dtype, np.dtype):
        return dtype.kind in "iufc"
    if isinstance(dtype, pd.StringDtype):
        return False
    return not pd.api.types.is_bool_dtype(dtype) and pd.api.types.is_numeric_dtype(dtype)
