"""A column's levels and each row's code, as R's ``factor``, and those of an interaction of
columns: the grouping factors of random-effects terms and the categorical columns of X.

Levels are sorted as R sorts them (a categorical's categories in their order; otherwise the
distinct values sorted, numbers as numbers); a level's label is its text as R prints it (a
whole float without its ".0"). Rows are numbered by their level; a missing value's code is -1.

Text is sorted by its characters' code points, as R sorts it in the C locale
(``LC_COLLATE=C``, R CMD check's): "Beta" before "alpha". R in another locale sorts by that
locale's collation ("alpha", "Beta" in en_US), which depends on the machine; a categorical
column fixes the order whatever the locale (``pd.Categorical(x, categories=[...])``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..formula.rfunctions import level_label

__all__ = ["factor_codes", "grouping_codes", "interaction_codes", "level_label", "stored_text"]


def grouping_codes(frame: pd.DataFrame, factors: tuple[str, ...]):
    """Codes (n,) and level labels of the interaction of ``factors``, in R's level order
    (each factor's levels sorted; the first factor varies slowest; unused combinations dropped)."""
    return interaction_codes([factor_codes(frame[name]) for name in factors])


#: an interaction of at most this many times as many combinations of levels as rows has its
#: present combinations counted (``np.bincount``), not sorted
COUNTED_COMBINATIONS = 8


def interaction_codes(parts: list[tuple[np.ndarray, np.ndarray]]):
    """``grouping_codes`` of the interaction of factors given by their ``factor_codes``
    (one or more, no missing values)."""
    if len(parts) == 1:
        codes, levels = parts[0]
        present = np.bincount(codes, minlength=len(levels)) > 0
        if present.all():
            return np.asarray(codes, dtype=np.intp), levels
        renumber = np.cumsum(present) - 1
        return renumber[codes].astype(np.intp), levels[present]
    sizes = [len(levels) for _, levels in parts]
    combinations = math.prod(sizes)
    if combinations < 2 ** 62:
        combined = np.zeros(len(parts[0][0]), dtype=np.int64)
        for codes, levels in parts:
            combined = combined * len(levels) + codes
        if combinations <= COUNTED_COMBINATIONS * max(len(combined), 1):
            # few combinations: counted, in a third of ``np.unique``'s time (a sort)
            present = np.bincount(combined, minlength=combinations) > 0
            used = np.flatnonzero(present)
            codes = (np.cumsum(present) - 1)[combined]
        else:
            used, codes = np.unique(combined, return_inverse=True)
        digits = []
        for size in reversed(sizes):  # decode the combinations present, never all of them
            digits.append(used % size)
            used = used // size
        digits = digits[::-1]
    else:  # too many combinations for one integer: sort the rows of codes instead
        stacked = np.column_stack([codes for codes, _ in parts])
        used, codes = np.unique(stacked, axis=0, return_inverse=True)
        digits = [used[:, f] for f in range(len(parts))]
    labels = None
    for (_, levels), digit in zip(parts, digits):
        names = levels[digit]
        labels = names if labels is None else np.char.add(np.char.add(labels, ":"), names)
    return np.asarray(codes).reshape(-1).astype(np.intp), labels


def factor_codes(column, values: np.ndarray | None = None):
    """(codes, level labels) of a column (a Series, or its values as pandas stores them:
    ``design.frame.column_array``): a categorical's used categories in their order, else its
    distinct values sorted (labels as ``level_label``); a missing value's code is -1.
    ``values``: the column's ``to_numpy()``, if it was read already.

    Text without missing values below ``STORED_TEXT_ROWS`` rows is coded by Python's set,
    sort and dict (``_text_codes``). Numbers, and text with missing values, are hashed in
    order of appearance and only the distinct values sorted: the codes of pandas'
    ``factorize(sort=True)`` at about half its cost on a small column (27 against 50 us for 30
    rows, 39 against 58 us for 270). Other values (dates, text mixed with numbers, which
    pandas sorts numbers first) take pandas' way. A long column of pandas' text is hashed as
    pandas stores it (``stored_text``)."""
    array = column.array if isinstance(column, pd.Series) else column
    if isinstance(array.dtype, pd.CategoricalDtype):
        used = array.remove_unused_categories()
        return (np.asarray(used.codes, dtype=np.intp),  # pandas' are int8 below 128 levels
                np.array([level_label(c) for c in used.categories]))  # TRUE, 2, 1e+05
    if stored_text(array):
        codes, uniques = array.factorize()
        return sorted_codes(codes, np.asarray(uniques, dtype=object), text=True)
    if values is None:
        values = array if isinstance(array, np.ndarray) else array.to_numpy()
    if values.dtype.kind == "O":
        labels = values.tolist()
        if set(map(type, labels)) == {str}:  # (a generator's test per label: twice the time)
            return _text_codes(labels)
    if values.dtype.kind in "biufO":
        codes, uniques = pd.factorize(values)
        if isinstance(array.dtype, pd.StringDtype):  # text: its own labels
            return sorted_codes(codes, uniques, text=True)
        if values.dtype.kind != "O" or pd.api.types.infer_dtype(uniques) == "string":
            return sorted_codes(codes, uniques)
    codes, uniques = pd.factorize(pd.Series(array, copy=False), sort=True)
    return codes, np.array([level_label(u) for u in uniques])


#: a column of pandas' text from this many rows is read as pandas stores it (Arrow's dictionary
#: encoding), not as a NumPy array of its values, one Python string per row: a million labels
#: are coded in 0.1 s and 11 MB instead of 0.3 s and 124 MB. The two ways cost the same at
#: about 600 rows; below, NumPy's is quicker (two text factors of 150 rows: 345 against 380
#: us for the whole design).
STORED_TEXT_ROWS = 1_000


def stored_text(column) -> bool:
    """A column (a Series or its array) of pandas' text of at least ``STORED_TEXT_ROWS``
    rows."""
    return isinstance(column.dtype, pd.StringDtype) and len(column) >= STORED_TEXT_ROWS


def _text_codes(labels: list[str]):
    """(codes, level labels) of text without missing values, by Python's set, sort and dict:
    on the columns below ``STORED_TEXT_ROWS`` rows, a fifth of pandas' ``factorize`` and
    ``sorted_codes``' cost at 30 rows (10 against 65 us), two thirds at 1,000."""
    levels = sorted(set(labels))
    number = {label: code for code, label in enumerate(levels)}
    codes = np.fromiter(map(number.__getitem__, labels), dtype=np.intp, count=len(labels))
    return codes, np.array(levels, dtype=str)


def sorted_codes(codes: np.ndarray, uniques: np.ndarray, text: bool = False):
    """(codes, level labels) with the levels sorted, from codes into ``uniques`` (``text``:
    strings, their own labels)."""
    order = np.argsort(uniques, kind="stable")
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    labels = (uniques[order].astype(str) if text
              else np.array([level_label(u) for u in uniques[order].tolist()]))
    out = np.full(len(codes), -1, dtype=np.intp)  # (a column of missing values alone: none)
    present = np.asarray(codes) >= 0
    out[present] = rank[np.asarray(codes)[present]]
    return out, labels
