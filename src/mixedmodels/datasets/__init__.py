"""Classic mixed-model data sets, bundled as CSV.

``load(name)`` returns a DataFrame (names are case-insensitive); ``describe(name)`` says what
the data are and the model usually fitted; ``names()`` lists them. ``read_csv`` is the one CSV
reader of the package (the bundled files and the command line's). ``text_among_numbers`` finds
the cells of a column of numbers that are text (a missing-value code such as "n/a", "." or
"?"), for the command line's reader and the design's checks alike.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from ..validate import check_string, value_error

__all__ = ["CSV_MISSING_VALUES", "load", "describe", "describe_cells", "listed_rows", "names",
           "is_number", "read_csv", "text_among_numbers"]

#: The cells read as missing in CSV files: empty cells and R's ``NA`` (with "NaN" and "N/A").
#: pandas' longer default list is not used: it also turns words such as "None", "NULL" or
#: "nan" into missing values, so that a factor level named "None" would be silently dropped.
CSV_MISSING_VALUES = ("", "NA", "NaN", "N/A")

_DATASETS = {
    "sleepstudy": ("sleepstudy.csv", "Reaction times (ms) of 18 subjects over 10 days of sleep "
                   "deprivation (Belenky et al. 2003). Reaction ~ Days + (Days | Subject)."),
    "dyestuff": ("Dyestuff.csv", "Yield of dyestuff (g) from 5 samples of each of 6 batches of "
                 "an intermediate product. Yield ~ 1 + (1 | Batch)."),
    "dyestuff2": ("Dyestuff2.csv", "Simulated data shaped like Dyestuff, with no batch-to-batch "
                  "variation: the REML fit is singular. Yield ~ 1 + (1 | Batch)."),
    "penicillin": ("Penicillin.csv", "Diameter (mm) of growth-inhibition zones: 6 penicillin "
                   "samples on each of 24 plates, a fully crossed design. "
                   "diameter ~ 1 + (1 | plate) + (1 | sample)."),
    "pastes": ("Pastes.csv", "Strength of a chemical paste: 10 batches, 3 casks per batch "
               "(nested), 2 assays per cask. strength ~ 1 + (1 | batch/cask)."),
    "rail": ("Rail.csv", "Travel time of ultrasonic waves (ns, less 36,100): 3 measurements on "
             "each of 6 railway rails. travel ~ 1 + (1 | Rail)."),
    "ergostool": ("ergoStool.csv", "Effort (Borg scale) of 9 subjects to rise from each of 4 "
                  "stool types. effort ~ Type + (1 | Subject)."),
    "orthodont": ("Orthodont.csv", "Distance (mm) from the pituitary to the pterygomaxillary "
                  "fissure in 27 children at ages 8-14. distance ~ age * Sex + (age | Subject)."),
    "trial": ("trial.csv", "A simulated two-arm repeated-measures trial (R, seed 20240611; "
              "tests/reference/nlme_structures.R): 60 patients (30 control, 30 treated), "
              "visits 1-6, 62 of the 360 visits missing at random (298 rows); "
              "y = 20 + 0.8 visit - 0.5 visit (if treated) + b + e with a random intercept b "
              "(sd 2) and AR(1) errors e within patient (phi 0.6, sd 1.5). Columns y, visit, "
              "patient, arm. y ~ arm * visit with correlation='ar1(visit | patient)' (mm.gls), "
              "or + (1 | patient) (mm.lmer)."),
}


def names() -> list[str]:
    """The bundled data sets."""
    return sorted(_DATASETS)


def _entry(name: str):
    """The file and description of a data set named in any case; a TypeError for a name that
    is not a string, a ValueError for an unknown one."""
    allowed = f"the name of a bundled data set ({', '.join(names())})"
    key = check_string(name, "name", allowed).lower()
    if key not in _DATASETS:
        raise value_error("name", allowed, name)
    return _DATASETS[key]


def read_csv(source, sep: str = ",", missing_values=CSV_MISSING_VALUES,
             dtype=None) -> pd.DataFrame:
    """A CSV file (a path or an open text file) in which exactly the cells ``missing_values``
    are missing; ``sep`` separates the fields."""
    return pd.read_csv(source, sep=sep, dtype=dtype, keep_default_na=False,
                       na_values=list(missing_values))


def text_among_numbers(column) -> list:
    """The distinct values of a column (a Series or an array) of numbers that are not numbers.

    A column of text (object or string dtype) is a column of numbers when more than half of
    its distinct filled values read as numbers (as ``float`` reads them; "nan" is text): "n/a",
    "." or "?" among numbers are then stray text. A column of labels (at most half of its
    distinct values numbers) or of numbers only has none: the result is empty. The distinct
    values are read until the answer is known, so that a column of labels costs little.
    """
    try:
        distinct = [value for value in set(np.asarray(column, dtype=object).tolist())
                    if not pd.isna(value)]
    except TypeError:  # unhashable values (lists...): no column of numbers
        return []
    text = []
    for value in distinct:
        if not is_number(value):
            text.append(value)
            if 2 * len(text) >= len(distinct):  # at most half can be numbers: labels
                return []
    return text


def is_number(value) -> bool:
    """A number, or text that reads as one (not "nan")."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return False
        return number == number
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def describe_cells(column: pd.Series, values, label=repr, listed: int = 5) -> str:
    """"'?' (rows 4, 17), 'missing' (row 31)": the ``values`` of ``column`` in order of
    appearance and the rows they are in (``listed_rows``), at most ``listed`` values."""
    cells = column[column.isin(values)]
    groups = list(cells.groupby(cells.astype(str), sort=False).groups.items())[:listed]
    return ", ".join(f"{value!r} ({listed_rows(rows, label, listed)})" for value, rows in groups)


def listed_rows(rows, label=repr, listed: int = 5) -> str:
    """"rows 4, 17, ...": the first ``listed`` of the index labels ``rows``, named by
    ``label``."""
    more = ", ..." if len(rows) > listed else ""
    shown = [row.item() if isinstance(row, np.generic) else row for row in list(rows)[:listed]]
    return f"row{'s' if len(rows) > 1 else ''} {', '.join(label(row) for row in shown)}{more}"


def load(name: str) -> pd.DataFrame:
    """The data set as a DataFrame; grouping columns stay strings (categorical in models)."""
    filename, _ = _entry(name)
    with resources.files(__package__).joinpath("data", filename).open("r") as handle:
        return read_csv(handle, dtype=_string_columns(filename))


def describe(name: str) -> str:
    """A short description of the data set and its usual model."""
    return _entry(name)[1]


def _string_columns(filename: str) -> dict[str, str]:
    """Columns that are labels even when they look numeric (Rail, Subject)."""
    return {"Rail": str, "Subject": str}
