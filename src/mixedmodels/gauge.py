"""Gauge repeatability and reproducibility (gauge R&R) for a crossed parts x operators study.

    >>> rr = mm.gauge_rr(data, part="part", operator="operator", response="y", tolerance=12)
    >>> print(rr)            # the AIAG table
    >>> rr.table             # DataFrame, one row per component
    >>> rr.confint()         # profile-likelihood intervals on the variance scale (slow)

The variance components are REML estimates from

    y ~ 1 + (1 | part) + (1 | operator) + (1 | part:operator)

and are never negative. For balanced data (every part measured the same number r >= 2 of
times by every operator) the classical ANOVA-method estimates (expected mean squares of the
two-way crossed ANOVA with interaction) are reported alongside, in the column
``variance (ANOVA)`` and in ``anova_components``:

    sigma2_repeat = MS_E
    sigma2_PO     = (MS_PO - MS_E) / r
    sigma2_O      = (MS_O - MS_PO) / (p r)
    sigma2_P      = (MS_P - MS_PO) / (o r)

A negative ANOVA estimate is reported as computed (not truncated to zero) and flagged in
``anova_components["negative"]`` and in ``notes``; the sums (reproducibility, gauge R&R, total)
are formed from the raw estimates. For unbalanced data the ANOVA estimates are NaN, with a note.

Column names with spaces or other characters a formula cannot hold are renamed internally.
Rows with a missing part, operator or response are dropped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import cached_property, partial

import numpy as np
import pandas as pd

from .api import lmer
from .datasets import listed_rows
from .errors import DataError, DataWarning, warn_user
from .output.tables import RTable, data_frame
from .validate import check_frame, check_level, check_number, type_error

__all__ = ["gauge_rr", "GaugeRR", "COMPONENTS"]

COMPONENTS = ("repeatability", "operator", "operator x part", "reproducibility",
              "total gauge R&R", "part-to-part", "total variation")

#: the basic (estimated) components and their lme4 names in the internal fit
_PART, _OPERATOR, _RESPONSE = "part", "operator", "y"
_FORMULA = "y ~ 1 + (1|part) + (1|operator) + (1|part:operator)"
PRINT_DIGITS = 4  # the printed table: R's print(table, digits = 4)
_CONFINT_ROWS = {
    "repeatability": "sigma",
    "operator": "sd_(Intercept)|operator",
    "operator x part": "sd_(Intercept)|part:operator",
    "part-to-part": "sd_(Intercept)|part",
}


def _derived(repeat: float, operator: float, interaction: float, part: float) -> dict:
    """All seven components from the four estimated variances."""
    reproducibility = operator + interaction
    gauge = repeat + reproducibility
    return {"repeatability": repeat, "operator": operator, "operator x part": interaction,
            "reproducibility": reproducibility, "total gauge R&R": gauge,
            "part-to-part": part, "total variation": gauge + part}


@dataclass(frozen=True, eq=False)
class GaugeRR:
    """Result of :func:`gauge_rr`.

    Attributes:
        table: the AIAG table, rows ``COMPONENTS``; columns variance, % contribution, sd,
            study variation (6 sd), % study variation, % tolerance (only with a tolerance),
            variance (ANOVA).
        ndc: number of distinct categories, floor(1.41 sd_part / sd_gauge) (None when the
            gauge sd is 0).
        anova_components: ANOVA-method variances (columns variance, negative), NaN when the
            data are unbalanced.
        mean_squares: the two-way ANOVA table (source, df, SS, MS), None when unbalanced.
        balanced: whether the ANOVA method applies.
        fit: the REML ``LmmFit``.
        notes: remarks (unbalanced data, negative ANOVA estimates, singular fit...).
    """

    table: pd.DataFrame
    ndc: int | None
    anova_components: pd.DataFrame
    mean_squares: pd.DataFrame | None
    balanced: bool
    fit: object = field(repr=False)
    part: str = "part"
    operator: str = "operator"
    response: str = "y"
    tolerance: float | None = None
    level: float = 0.95
    n_parts: int = 0
    n_operators: int = 0
    replicates: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def variances(self) -> pd.Series:
        """REML variance of each component."""
        return self.table["variance"]

    @cached_property
    def _intervals(self) -> pd.DataFrame:
        profile = self.fit.confint("profile", level=self.level)
        rows = {}
        for name in COMPONENTS:
            if name in _CONFINT_ROWS:
                lower, upper = profile.loc[_CONFINT_ROWS[name]]
                rows[name] = (self.table.loc[name, "variance"], lower ** 2, upper ** 2)
            else:
                rows[name] = (self.table.loc[name, "variance"], np.nan, np.nan)
        return pd.DataFrame.from_dict(rows, orient="index",
                                      columns=["variance", "lower", "upper"])

    def confint(self) -> pd.DataFrame:
        """Profile-likelihood intervals at ``level`` for the estimated components
        (repeatability, operator, operator x part, part-to-part): the fit's
        ``confint("profile")`` intervals on the sds, squared (profiles of the ML deviance, as
        lme4's, so they are centred on the ML estimates, a little below REML's). The sums
        (reproducibility, gauge R&R, total) have no profile interval: NaN. Computed once, on
        first call."""
        return self._intervals.copy()

    def to_dict(self) -> dict:
        """JSON-ready record (NaN written as None)."""
        def clean(value):
            if value is None:
                return None
            value = float(value)
            return None if math.isnan(value) else value

        table = {name: {column: clean(value) for column, value in row.items()}
                 for name, row in self.table.iterrows()}
        anova = {name: clean(row["variance"]) for name, row in self.anova_components.iterrows()}
        return {"part": self.part, "operator": self.operator, "response": self.response,
                "tolerance": self.tolerance, "n_parts": self.n_parts,
                "n_operators": self.n_operators, "replicates": self.replicates,
                "balanced": self.balanced, "ndc": self.ndc, "table": table,
                "anova_variances": anova, "notes": list(self.notes)}

    def __str__(self) -> str:
        head = (f"Gauge R&R (REML): {self.response} ~ parts {self.part!r} ({self.n_parts}) x "
                f"operators {self.operator!r} ({self.n_operators}), {self.fit.nobs} "
                "measurements")
        if self.tolerance is not None:
            head += f", tolerance {self.tolerance:g}"
        body = str(RTable.of(self.table, partial(data_frame, digits=PRINT_DIGITS)))
        lines = [head, "", body, "", f"Number of distinct categories: {self.ndc}"]
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        notes = "".join(f"<p>Note: {html.escape(n)}</p>" for n in self.notes)
        return (f"<p><b>Gauge R&amp;R (REML)</b>: {html.escape(self.response)}, parts "
                f"{html.escape(self.part)} ({self.n_parts}), operators "
                f"{html.escape(self.operator)} ({self.n_operators})</p>"
                + self.table.to_html(float_format=lambda v: f"{v:.4g}")
                + f"<p>Number of distinct categories: {self.ndc}</p>" + notes)


def _anova_method(frame: pd.DataFrame):
    """Mean squares and ANOVA-method components, or None when the design is unbalanced."""
    counts = frame.groupby([_PART, _OPERATOR], observed=False).size()
    p = frame[_PART].nunique()
    o = frame[_OPERATOR].nunique()
    if len(counts) != p * o or counts.nunique() != 1 or counts.iloc[0] < 2:
        return None
    r = int(counts.iloc[0])
    y = frame[_RESPONSE].to_numpy(float)
    m = y.mean()
    part_mean = frame.groupby(_PART, observed=True)[_RESPONSE].transform("mean").to_numpy()
    oper_mean = frame.groupby(_OPERATOR, observed=True)[_RESPONSE].transform("mean").to_numpy()
    cell_mean = frame.groupby([_PART, _OPERATOR], observed=True)[_RESPONSE] \
        .transform("mean").to_numpy()
    # sums over observations: each part mean is repeated o r times, etc.
    ss = {"part": np.sum((part_mean - m) ** 2),
          "operator": np.sum((oper_mean - m) ** 2),
          "operator x part": np.sum((cell_mean - part_mean - oper_mean + m) ** 2),
          "repeatability": np.sum((y - cell_mean) ** 2)}
    df = {"part": p - 1, "operator": o - 1, "operator x part": (p - 1) * (o - 1),
          "repeatability": p * o * (r - 1)}
    ms = {k: ss[k] / df[k] for k in ss}
    table = pd.DataFrame({"df": df, "SS": ss, "MS": ms})
    table.index.name = "source"
    components = _derived(
        repeat=ms["repeatability"],
        operator=(ms["operator"] - ms["operator x part"]) / (p * r),
        interaction=(ms["operator x part"] - ms["repeatability"]) / r,
        part=(ms["part"] - ms["operator x part"]) / (o * r))
    return r, table, components


def gauge_rr(data: pd.DataFrame, part: str, operator: str, response: str,
             tolerance: float | None = None, level: float = 0.95) -> GaugeRR:
    """Crossed gauge R&R study by REML (with the ANOVA method alongside for balanced data).

    Args:
        data: one row per measurement.
        part, operator: the columns naming the part and the operator (any type).
        response: the numeric measurement column.
        tolerance: the specification range (USL - LSL), a positive number; adds the
            % tolerance column.
        level: confidence level of ``GaugeRR.confint()``.
    """
    data = check_frame(data)
    names = {"part": part, "operator": operator, "response": response}
    for role, column in names.items():
        if column is None or not isinstance(column, Hashable):
            raise type_error(role, "the name of a column of the data", column)
        if column not in data.columns:
            raise DataError(f"{role} column {column!r} is not in the data; columns are "
                            f"{', '.join(map(str, data.columns))}")
    if len({part, operator, response}) != 3:
        raise DataError("part, operator and response must be three different columns")
    if tolerance is not None:
        tolerance = check_number(tolerance, "tolerance", minimum=0, exclusive=True,
                                 error=DataError)
    level = check_level(level)
    frame = pd.DataFrame({_PART: data[part].to_numpy(), _OPERATOR: data[operator].to_numpy(),
                          _RESPONSE: data[response].to_numpy()}, index=data.index)
    if not pd.api.types.is_numeric_dtype(frame[_RESPONSE]) \
            or pd.api.types.is_bool_dtype(frame[_RESPONSE]):
        raise DataError(f"response column {response!r} must be numeric")
    infinite = np.isinf(frame[_RESPONSE].to_numpy(dtype=float))
    if infinite.any():
        raise DataError(f"response column {response!r} has {int(infinite.sum())} infinite "
                        f"value(s) ({listed_rows(frame.index[infinite])}); make them missing "
                        "or correct them")
    complete = frame.notna().all(axis=1).to_numpy()
    if not complete.all():
        dropped = (f"dropped {int((~complete).sum())} of {len(frame)} measurements with a "
                   f"missing part, operator or response ({listed_rows(frame.index[~complete])})")
        warn_user(dropped, DataWarning)
    frame = frame[complete].reset_index(drop=True)
    frame[_PART] = frame[_PART].astype(str)
    frame[_OPERATOR] = frame[_OPERATOR].astype(str)
    n_parts, n_operators = frame[_PART].nunique(), frame[_OPERATOR].nunique()
    if n_parts < 2 or n_operators < 2:
        raise DataError(f"a gauge R&R study needs at least 2 parts and 2 operators; found "
                        f"{n_parts} part(s) and {n_operators} operator(s)")
    cells = frame.groupby([_PART, _OPERATOR]).ngroups
    if cells >= len(frame):
        raise DataError("a gauge R&R study needs repeated measurements: every part x operator "
                        "combination is measured only once, so the operator x part "
                        "interaction cannot be told from repeatability")

    fit = lmer(_FORMULA, frame)
    vc = fit.varcorr.set_index("group")["vcov"]
    reml = _derived(repeat=float(vc["Residual"]), operator=float(vc[_OPERATOR]),
                    interaction=float(vc[f"{_PART}:{_OPERATOR}"]), part=float(vc[_PART]))

    notes = [] if complete.all() else [dropped]
    anova = _anova_method(frame)
    if anova is None:
        replicates, mean_squares = None, None
        anova_var = {name: np.nan for name in COMPONENTS}
        notes.append("unbalanced data (or fewer than 2 replicates per part and operator): "
                     "no ANOVA-method estimates")
    else:
        replicates, mean_squares, anova_var = anova
        negative = [name for name in ("operator", "operator x part", "part-to-part")
                    if anova_var[name] < 0]
        if negative:
            notes.append("negative ANOVA-method estimate(s) for " + ", ".join(negative)
                         + ", reported as computed; the REML estimates are not negative")
    if fit.is_singular:
        notes.append("singular REML fit: a variance component is estimated as 0")

    total_var = reml["total variation"]
    sd = {k: math.sqrt(max(v, 0.0)) for k, v in reml.items()}
    total_sd = sd["total variation"]
    table = pd.DataFrame(index=pd.Index(COMPONENTS, name="source"))
    table["variance"] = [reml[k] for k in COMPONENTS]
    table["% contribution"] = 100 * table["variance"] / total_var
    table["sd"] = [sd[k] for k in COMPONENTS]
    table["study variation"] = 6 * table["sd"]
    table["% study variation"] = 100 * table["sd"] / total_sd
    if tolerance is not None:
        table["% tolerance"] = 100 * table["study variation"] / tolerance
    table["variance (ANOVA)"] = [anova_var[k] for k in COMPONENTS]

    anova_components = pd.DataFrame(
        {"variance": [anova_var[k] for k in COMPONENTS],
         "negative": [bool(anova_var[k] < 0) for k in COMPONENTS]},
        index=pd.Index(COMPONENTS, name="source"))

    gauge_sd = sd["total gauge R&R"]
    ndc = int(math.floor(1.41 * sd["part-to-part"] / gauge_sd)) if gauge_sd > 0 else None

    return GaugeRR(table=table, ndc=ndc, anova_components=anova_components,
                   mean_squares=mean_squares, balanced=anova is not None, fit=fit,
                   part=str(part), operator=str(operator), response=str(response),
                   tolerance=tolerance, level=level, n_parts=n_parts,
                   n_operators=n_operators, replicates=replicates, notes=tuple(notes))
