"""Per-observation results labelled as the rows of the user's data.

``na_action`` says which rows, as R's ``na.action``: "omit" (the default, R's ``na.omit``)
gives the fitted rows only, labelled as in the data (``design.rows``); "exclude" (R's
``na.exclude``) gives one entry per row of the data the model was built from, in the data's
order, NaN in the rows dropped for missing values (``design.missing_rows``), so that
``data["fitted"] = fit.fitted_values(na_action="exclude")`` lines up with the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from ..validate import check_choice

__all__ = ["NA_ACTIONS", "by_row", "check_na_action"]

NA_ACTIONS = ("omit", "exclude")


def check_na_action(na_action: str) -> str:
    """One of ``NA_ACTIONS``."""
    return check_choice(na_action, "na_action", NA_ACTIONS)


def by_row(fit, values, name: str | None = None, na_action: str = "omit"):
    """``values``, one per fitted row (an array, or a DataFrame of such columns), as a Series
    named ``name`` (or the DataFrame) indexed by the rows ``na_action`` asks for."""
    na_action = check_na_action(na_action)
    rows = fit.model.design.rows
    if isinstance(values, pd.DataFrame):
        labelled = values.set_axis(rows, axis=0)
    else:
        labelled = pd.Series(np.asarray(values), index=rows, name=name)
    if na_action == "omit" or not len(fit.model.design.missing_rows):
        return labelled
    everything = fit.model.data_index
    if not everything.is_unique:
        raise DataError("na_action='exclude' places the values by the labels of the data's "
                        "rows, and the data's index has duplicate labels; give the data a "
                        "unique index (data.reset_index(drop=True)) or use na_action='omit'")
    return labelled.reindex(everything)
