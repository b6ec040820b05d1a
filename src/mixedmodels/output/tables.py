"""Tables that print as R prints them: every column, under R's column names, with R's number
formatting, wrapped to the terminal's width (R's ``getOption("width")``) instead of cut.

``RTable`` is a pandas DataFrame whose ``print()`` and notebook HTML follow a layout; its
columns, index and values are the package's (``table["p"]``, ``table.loc["Days"]``), and
anything derived from it (a selection, ``copy()``, ``round()``) is a plain DataFrame. The
layouts, each a function of the DataFrame:

* ``coefficients``: lmerTest's ``summary()`` table (R's ``printCoefmat``, 4 digits):
  Estimate, Std. Error and df formatted together, t value, Pr(>|t|);
* ``f_tests``: lmerTest's ``anova()`` (R's ``print.anova``, 5 digits): Sum Sq, Mean Sq,
  NumDF, DenDF, F value, Pr(>F);
* ``likelihood_ratio``: lme4's ``anova(m0, m1, ...)``; the models are listed above the table
  when their labels are not their formulas;
* ``random_terms``: lmerTest's ``ranova()``, with its heading;
* ``variance_components``: ``as.data.frame(VarCorr(fit))`` as R prints a data frame;
* ``data_frame``: R's ``print.data.frame(x, digits)``.

Missing values print as empty cells, as R's ``print.anova`` prints them. Significance stars
are not printed (R's ``options(show.signif.stars = FALSE)``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .display import (
    DIGITS,
    Section,
    Table,
    coefficient_columns,
    format_pval,
    r_format,
    section_html,
    section_text,
    statistic_column,
    terminal_width,
    zapsmall,
)

__all__ = ["RTable", "coefficients", "f_tests", "likelihood_ratio", "random_terms",
           "variance_components", "data_frame"]

ANOVA_DIGITS = 5  # stats' print.anova: max(getOption("digits") - 2, 3)
DATA_FRAME_DIGITS = 7  # R's getOption("digits")

Layout = Callable[[pd.DataFrame], Section]


class RTable(pd.DataFrame):
    """A DataFrame that prints (and renders in notebooks) with one of this module's layouts."""

    _metadata = ["layout"]

    @property
    def _constructor(self):
        return pd.DataFrame  # a table derived from this one has other columns: print it plainly

    @classmethod
    def of(cls, frame: pd.DataFrame, layout: Layout) -> "RTable":
        """The frame (same columns, index and ``attrs``), printed with ``layout``."""
        table = cls(frame)
        table.attrs = dict(frame.attrs)
        table.layout = layout
        return table

    def __repr__(self) -> str:
        return section_text(self.layout(self), terminal_width())

    def _repr_html_(self) -> str:
        return section_html(self.layout(self))


def _blank_missing(texts: list[str], values: np.ndarray) -> list[str]:
    """R's ``na.print = ""``: a missing value is an empty cell (and takes no width)."""
    cells = ["" if np.isnan(v) else text.strip() for text, v in zip(texts, values)]
    width = max(map(len, cells), default=0)
    return [cell.rjust(width) if cell else "" for cell in cells]


def _anova_table(frame: pd.DataFrame, columns: dict[str, tuple[str, str]]) -> Table:
    """R's ``print.anova`` of the given columns, {column: (R's name, kind)}: kind "test" (a
    test statistic), "p" (a p-value), "zap" (zapsmall, then formatted) or "df"."""
    formatted = []
    for column, (_, kind) in columns.items():
        values = frame[column].to_numpy(dtype=float)
        if kind == "test":
            texts = statistic_column(values, ANOVA_DIGITS)
        elif kind == "p":
            texts = format_pval(values, ANOVA_DIGITS - 1)
        else:
            texts = r_format(zapsmall(values, ANOVA_DIGITS) if kind == "zap" else values,
                             ANOVA_DIGITS)
        formatted.append(_blank_missing(texts, values))
    rows = [list(cells) for cells in zip(*formatted)]
    return Table([name for name, _ in columns.values()], rows, [str(i) for i in frame.index],
                 align="r")


def coefficients(frame: pd.DataFrame) -> Section:
    """lmerTest's coefficient table (columns estimate, std_error, df, t, p)."""
    columns = coefficient_columns(*(frame[c].to_numpy(dtype=float)
                                    for c in ("estimate", "std_error", "df")))
    columns.append(statistic_column(frame["t"].to_numpy(dtype=float), DIGITS))
    columns.append(format_pval(frame["p"].to_numpy(dtype=float), DIGITS - 1))
    rows = [list(cells) for cells in zip(*columns)]
    header = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    return Section(table=Table(header, rows, [str(i) for i in frame.index], align="r"))


def f_tests(frame: pd.DataFrame) -> Section:
    """lmerTest's F tests (columns sum_sq, mean_sq, num_df, den_df, F, p) under the heading
    ``attrs["heading"]``, if any ("Type III Analysis of Variance Table with Satterthwaite's
    method")."""
    heading = frame.attrs.get("heading")
    return Section(lines=[heading] if heading else [], table=_anova_table(frame, {
        "sum_sq": ("Sum Sq", "zap"), "mean_sq": ("Mean Sq", "zap"), "num_df": ("NumDF", "zap"),
        "den_df": ("DenDF", "zap"), "F": ("F value", "test"), "p": ("Pr(>F)", "p")}))


def likelihood_ratio(frame: pd.DataFrame) -> Section:
    """lme4's likelihood-ratio table (columns npar, AIC, BIC, logLik, deviance, Chisq, Df, p);
    ``attrs["formulas"]`` (label: formula) lists the models whose label is not the formula."""
    formulas = frame.attrs.get("formulas", {})
    renamed = {label: formula for label, formula in formulas.items() if label != formula}
    lines = ["Models:", *(f"{label}: {formula}" for label, formula in renamed.items())]
    table = _anova_table(frame, {
        **{c: (c, "zap") for c in ("npar", "AIC", "BIC", "logLik", "deviance")},
        "Chisq": ("Chisq", "test"), "Df": ("Df", "df"), "p": ("Pr(>Chisq)", "p")})
    return Section(lines=lines if renamed else [], table=table)


def random_terms(frame: pd.DataFrame) -> Section:
    """lmerTest's ``ranova`` table (columns npar, logLik, AIC, LRT, Df, p) under its heading,
    with the model's formula from ``attrs["formula"]``."""
    lines = ["ANOVA-like table for random-effects: Single term deletions"]
    if "formula" in frame.attrs:
        lines += ["", "Model:", frame.attrs["formula"]]
    table = _anova_table(frame, {
        **{c: (c, "zap") for c in ("npar", "logLik", "AIC", "LRT")},
        "Df": ("Df", "df"), "p": ("Pr(>Chisq)", "p")})
    return Section(lines=lines, table=table)


def data_frame(frame: pd.DataFrame, digits: int = DATA_FRAME_DIGITS,
               names: dict[str, str] | None = None) -> Section:
    """R's ``print.data.frame(frame, digits)``: each numeric column formatted on its own, text
    right-aligned, a missing text as ``<NA>``; ``names`` renames columns for print."""
    names = names or {}
    columns = []
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            columns.append(r_format(values.to_numpy(dtype=float), digits))
        else:
            columns.append(["<NA>" if pd.isna(v) else str(v) for v in values])
    rows = [list(cells) for cells in zip(*columns)]
    header = [names.get(str(c), str(c)) for c in frame.columns]
    return Section(table=Table(header, rows, [str(i) for i in frame.index], align="r"))


def variance_components(frame: pd.DataFrame) -> Section:
    """``fit.varcorr`` as R prints ``as.data.frame(VarCorr(fit))``, under the table's own
    column names (lme4's grp is the column group: the header is what indexes it)."""
    return data_frame(frame)
