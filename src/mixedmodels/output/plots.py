"""Diagnostic plots of a fit (needs matplotlib: ``pip install "mixedmodels[plots]"``).

Every function returns the matplotlib ``Figure`` it drew on. Pass ``ax`` (one Axes, or a
sequence of Axes for the multi-panel plots) to draw into an existing figure; otherwise a new
figure is made with ``matplotlib.pyplot``. matplotlib is imported only when a plot is drawn.

- ``caterpillar``: conditional modes with conditional intervals, sorted, one panel per term;
- ``residuals_vs_fitted`` and ``qq_residuals``: the residuals;
- ``qq_ranef``: normal QQ plot of each random-effects term;
- ``group_panels``: observations and fitted conditional lines, one panel per group level;
- ``profile_zeta``: the profile zeta traces, one panel per parameter.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from ..diagnostics.influence import residuals
from ..inference.distributions import ndtri
from ..inference.profile import profile_table
from ..lmm.fitted import check_fitted
from ..validate import (
    check_integer,
    check_level,
    check_optional_string,
    check_string,
    check_strings,
    type_error,
)

if TYPE_CHECKING:
    from ..lmm.fitted import FittedModel as LmmFit

__all__ = ["caterpillar", "residuals_vs_fitted", "qq_residuals", "qq_ranef", "group_panels",
           "profile_zeta"]

AXES_ALLOWED = "None, a matplotlib Axes or a sequence of them"
PROFILE_COLUMNS = ("parameter", "value", "zeta")
MIN_FONT_SIZE = 6.0  # a title or label with a word too long for its space shrinks to this
TEXT_ROOM = 0.92  # the share of its space (figure or panel) a title or label may fill


# -- helpers -------------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('plots need matplotlib: pip install "mixedmodels[plots]"') from exc
    return plt


def _given_axes(ax) -> list:
    """The Axes of ``ax`` (one, or a sequence or array of them) as a list."""
    axes = list(np.ravel(np.asarray(ax, dtype=object)))
    if not axes or not all(hasattr(axis, "figure") and hasattr(axis, "scatter")
                           for axis in axes):
        raise type_error("ax", AXES_ALLOWED, ax)
    return axes


def _axes_grid(n: int, ax, ncols: int, panel_size=(3.2, 3.0)):
    """(figure, list of n Axes): the given ones, or a new figure with a grid of panels."""
    if ax is not None:
        axes = _given_axes(ax)
        if len(axes) < n:
            raise ValueError(f"ax must hold {n} Axes (one per panel of this plot), not "
                             f"{len(axes)}")
        return axes[0].figure, axes[:n]
    plt = _pyplot()
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, grid = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(panel_size[0] * ncols, panel_size[1] * nrows))
    axes = list(grid.ravel())
    for extra in axes[n:]:
        extra.set_visible(False)
    return fig, axes[:n]


def _text_width(text: str, font) -> float:
    """The width in points of the widest line of ``text`` in ``font``."""
    from matplotlib.textpath import TextToPath

    measure = TextToPath()
    return max(measure.get_text_width_height_descent(line, font, ismath=False)[0]
               for line in text.split("\n"))


def _fit_text(artist, room: float) -> None:
    """Break a title or label at spaces so that no line is wider than ``room`` points; a
    single word still wider shrinks the font (down to ``MIN_FONT_SIZE``)."""
    words = artist.get_text().split()
    if not words:
        return
    font = artist.get_fontproperties()
    lines = [words[0]]
    for word in words[1:]:
        joined = f"{lines[-1]} {word}"
        if _text_width(joined, font) <= room:
            lines[-1] = joined
        else:
            lines.append(word)
    text = "\n".join(lines)
    widest = _text_width(text, font)
    if widest > room:
        artist.set_fontsize(max(MIN_FONT_SIZE, font.get_size_in_points() * room / widest))
    artist.set_text(text)


def _fit_texts(fig, axes, suptitle: str | None = None) -> None:
    """Set the figure's title, then keep every title and axis label within its space: the
    figure title within the figure's width, a panel's title and x label within the panel's
    width, its y label within the panel's height (so none is cut or runs into another)."""
    if suptitle is not None:
        _fit_text(fig.suptitle(suptitle), fig.get_figwidth() * 72 * TEXT_ROOM)
    for axis in axes:
        width, height = axis.get_position().size * fig.get_size_inches() * 72
        _fit_text(axis.title, width * TEXT_ROOM)
        _fit_text(axis.xaxis.label, width * TEXT_ROOM)
        _fit_text(axis.yaxis.label, height * TEXT_ROOM)


def _unquoted(name: str) -> str:
    """A formula's name without the backquotes that let it hold spaces."""
    return name[1:-1] if len(name) > 1 and name[0] == name[-1] == "`" else name


def _single_axes(ax, figsize=(5.5, 4.5)):
    if ax is not None:
        if not (hasattr(ax, "figure") and hasattr(ax, "scatter")):
            raise type_error("ax", "None or a matplotlib Axes", ax)
        return ax.figure, ax
    fig, axis = _pyplot().subplots(figsize=figsize)
    return fig, axis


def _group_name(fit: "LmmFit", group: str | None, plot: str = "this plot") -> str:
    """The grouping factor to draw: ``group``, or the fit's first."""
    group = check_optional_string(group, "group", "the name of a grouping factor")
    groups = list(fit.ranef)
    if not groups:
        raise ValueError(f"{plot} draws per grouping factor of the random effects, and this "
                         "fit (generalized least squares, mm.gls) has none; use "
                         "residuals_vs_fitted or qq_residuals")
    if group is None:
        return groups[0]
    if group not in groups:
        raise ValueError(f"unknown grouping factor: group must be one of "
                         f"{', '.join(map(repr, groups))}, not {group!r}")
    return group


def normal_quantiles(n: int) -> np.ndarray:
    """Theoretical normal quantiles at R's ``ppoints(n)``, as ``qqnorm`` uses."""
    a = 3 / 8 if n <= 10 else 0.5
    return ndtri((np.arange(1, n + 1) - a) / (n + 1 - 2 * a))


def _qq_line(ax, sample: np.ndarray) -> None:
    """R's ``qqline``: the line through the first and third quartiles."""
    q_sample = np.quantile(sample, [0.25, 0.75])
    q_theory = ndtri(np.array([0.25, 0.75]))
    if q_theory[1] == q_theory[0]:
        return
    slope = (q_sample[1] - q_sample[0]) / (q_theory[1] - q_theory[0])
    ax.axline((q_theory[0], q_sample[0]), slope=slope, color="grey", lw=1, ls="--")


# -- random effects --------------------------------------------------------------------------

def _chosen(wanted, available: list[str], argument: str, kind: str,
            where: str = "") -> list[str]:
    """The names asked for in ``argument`` (``wanted``: None for all, one name or a list),
    each one of ``available`` (names of a ``kind``); a ValueError names the unknown ones."""
    chosen = available if wanted is None else check_strings(
        wanted, argument, f"None, a {kind}'s name or a list of them")
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise ValueError(f"unknown {kind}(s) {unknown}{where}; available: {available}")
    return chosen

def caterpillar(fit: "LmmFit", group: str | None = None, term: str | Sequence[str] | None = None,
                level: float = 0.95, ax=None):
    """Conditional modes with intervals condval +/- z condsd, one panel per term.

    Levels are sorted by the conditional mode of the first term shown (as lme4's
    ``dotplot(ranef(fit, condVar = TRUE))``), so rows line up across panels.

    Args:
        fit: the fitted model.
        group: grouping factor (default: the first one, the one with most levels).
        term: a term name or a list of them (default: all terms of ``group``).
        level: coverage of the intervals (normal quantile z = qnorm(0.5 + level / 2)).
        ax: an Axes, or a sequence with one Axes per term.
    """
    fit, level = check_fitted(fit), check_level(level)
    group = _group_name(fit, group, "caterpillar")
    table = fit.ranef_table()
    table = table[table["grpvar"] == group]
    terms = _chosen(term, list(dict.fromkeys(table["term"])), "term", "term",
                    f" for {group!r}")
    z = ndtri(0.5 + level / 2)

    first = table[table["term"] == terms[0]].set_index("grp")
    order = first["condval"].sort_values(kind="stable").index
    n = len(order)
    fig, axes = _axes_grid(len(terms), ax, ncols=len(terms),
                           panel_size=(3.5, max(3.0, 0.18 * n + 1.0)))
    positions = np.arange(n)
    for axis, name in zip(axes, terms):
        rows = table[table["term"] == name].set_index("grp").loc[order]
        axis.axvline(0.0, color="grey", lw=1, ls="--")
        axis.errorbar(rows["condval"].to_numpy(), positions,
                      xerr=z * rows["condsd"].to_numpy(), fmt="o", ms=4, color="C0",
                      ecolor="C0", elinewidth=1.2, capsize=0)
        axis.set_yticks(positions)
        axis.set_yticklabels([str(g) for g in order], fontsize=7)
        axis.set_ylim(-1, n)
        axis.set_title(name)
        axis.set_xlabel(f"Conditional mode ({level:.0%} interval)")
    axes[0].set_ylabel(f"Level of {group}")
    _fit_texts(fig, axes, f"Random effects: {group}")
    if ax is None:
        fig.tight_layout()
    return fig


def qq_ranef(fit: "LmmFit", group: str | None = None, ax=None):
    """Normal QQ plot of the conditional modes of each term of ``group``, one panel per term."""
    group = _group_name(check_fitted(fit), group, "qq_ranef")
    frame = fit.ranef[group]
    fig, axes = _axes_grid(frame.shape[1], ax, ncols=frame.shape[1], panel_size=(4.0, 3.8))
    for axis, name in zip(axes, frame.columns):
        values = np.sort(frame[name].to_numpy())
        axis.scatter(normal_quantiles(len(values)), values, s=14, color="C0")
        _qq_line(axis, values)
        axis.set_title(name)
        axis.set_xlabel("Theoretical quantiles")
        axis.set_ylabel(f"Conditional modes ({group})")
    _fit_texts(fig, axes, f"Normal QQ plot of random effects: {group}")
    if ax is None:
        fig.tight_layout()
    return fig


# -- residuals -------------------------------------------------------------------------------
def _structured(fit: "LmmFit") -> bool:
    """The model has a residual correlation structure or variance function."""
    return fit.model.correlation is not None or fit.model.variance is not None


def _with_rows(fit, plot: str) -> "LmmFit":
    """The fit, checked; a NotImplementedError, naming the plot, for a fit of a Dask
    DataFrame, whose rows stay in its partitions."""
    fit = check_fitted(fit)
    if not fit.model.rows_in_memory:
        raise NotImplementedError(
            f"{plot} draws every row of the data, which stay in the partitions of the Dask "
            "DataFrame the model was fitted to; draw it for a sample fitted in memory, e.g. "
            "mm.lmer(formula, ddf.sample(frac=0.1).compute())")
    return fit


def _residuals(fit: "LmmFit", normalized: bool = False) -> tuple[np.ndarray, str]:
    """(values, axis label) of the residuals a plot shows: with a residual structure, the
    standardized ones, r_i / (sigma s_i), or the ``normalized`` ones (nlme's); with prior
    weights, the Pearson residuals r_i sqrt(w_i), as lme4's ``plot`` (whose spread is then
    constant under the model); else the residuals y - X beta - Z u."""
    if _structured(fit):
        if normalized:
            return residuals(fit, "normalized"), "Normalized residuals"
        return residuals(fit, "pearson", scaled=True), "Standardized residuals"
    if fit.model.design.weighted:
        return residuals(fit, "pearson"), "Pearson residuals"
    return fit.residuals, "Residuals"


def residuals_vs_fitted(fit: "LmmFit", ax=None):
    """Residuals against conditional fitted values, with a reference line at zero. With a
    residual structure (correlation=, variance=) the residuals are the standardized (scaled
    Pearson) ones, r_i / (sigma s_i), as nlme's ``plot.lme``, and with prior weights the
    Pearson ones, as lme4's ``plot``: their spread is then constant under the model.

    Raises:
        NotImplementedError: a fit of a Dask DataFrame (its rows are in its partitions).
    """
    fit = _with_rows(fit, "residuals_vs_fitted")
    fig, axis = _single_axes(ax)
    values, label = _residuals(fit)
    axis.scatter(fit.fitted, values, s=12, alpha=0.8, color="C0")
    axis.axhline(0.0, color="grey", lw=1, ls="--")
    axis.set_xlabel("Fitted values")
    axis.set_ylabel(label)
    axis.set_title("Residuals vs fitted")
    _fit_texts(fig, [axis])
    return fig


def qq_residuals(fit: "LmmFit", ax=None):
    """Normal QQ plot of the residuals, with R's ``qqline``. With a residual structure, of the
    normalized residuals (whitened within each group: independent N(0, 1) under the model,
    nlme's ``type = "normalized"``); with prior weights, of the Pearson residuals.

    Raises:
        NotImplementedError: a fit of a Dask DataFrame (its rows are in its partitions).
    """
    fit = _with_rows(fit, "qq_residuals")
    fig, axis = _single_axes(ax)
    values, label = _residuals(fit, normalized=True)
    values = np.sort(values)
    axis.scatter(normal_quantiles(len(values)), values, s=12, color="C0")
    _qq_line(axis, values)
    axis.set_xlabel("Theoretical quantiles")
    axis.set_ylabel(label)
    axis.set_title("Normal QQ plot of residuals")
    _fit_texts(fig, [axis])
    return fig


# -- data and fit per group ------------------------------------------------------------------
def group_panels(fit: "LmmFit", x: str, group: str | None = None, ncols: int = 6, ax=None):
    """Observed responses and conditional fitted values against ``x``, one panel per level of
    ``group`` (the classic sleepstudy plot: Reaction against Days per Subject).

    Points are the observations; the line joins the fitted values sorted by ``x``; the
    panels are laid out ``ncols`` to a row.

    Raises:
        NotImplementedError: a fit of a Dask DataFrame (its rows are in its partitions).
    """
    design = _with_rows(fit, "group_panels").model.design
    x = check_string(x, "x", "the name of a numeric variable of the model")
    ncols = check_integer(ncols, "ncols")
    group = _group_name(fit, group, "group_panels")
    if design.frame is None or x not in design.frame.columns:
        raise ValueError(f"x must be a numeric variable of the model, not {x!r}: it is not a "
                         "column the model uses (a variable of its formula)")
    term = next(t for t in design.terms if t.group == group)
    xs = design.frame[x].to_numpy()
    if not np.issubdtype(np.asarray(xs).dtype, np.number):
        raise ValueError(f"x must be a numeric variable of the model, not {x!r}: it is not "
                         "numeric")
    xs = np.asarray(xs, dtype=float)
    codes = np.asarray(term.codes)
    y, fitted = fit.y, fit.fitted
    levels = list(term.levels)
    fig, axes = _axes_grid(len(levels), ax, ncols=ncols, panel_size=(2.2, 2.0))
    for k, (axis, name) in enumerate(zip(axes, levels)):
        rows = np.flatnonzero(codes == k)
        order = rows[np.argsort(xs[rows], kind="stable")]
        axis.scatter(xs[order], y[order], s=10, color="C0")
        axis.plot(xs[order], fitted[order], color="C1", lw=1.3)
        axis.set_title(f"{group} {name}", fontsize=8)
        axis.tick_params(labelsize=7)
    share_limits(axes, np.concatenate([y, fitted]))
    response = _unquoted(str(design.formula.response))
    for axis in axes:
        axis.set_xlabel(x, fontsize=8)
        axis.set_ylabel(response, fontsize=8)
    _fit_texts(fig, axes, f"{response} by {x}: observations and fitted lines per {group}")
    if ax is None:
        fig.tight_layout()
    return fig


def share_limits(axes, values: np.ndarray) -> None:
    """Give every panel the same y range (padded 5%)."""
    low, high = float(np.min(values)), float(np.max(values))
    pad = 0.05 * (high - low) or 1.0
    for axis in axes:
        axis.set_ylim(low - pad, high + pad)


# -- profile ---------------------------------------------------------------------------------
def profile_zeta(fit: "LmmFit", parameters: Sequence[str] | None = None, ax=None,
                 profile=None, ncols: int = 3):
    """zeta (the signed square root of the likelihood-ratio statistic) against each
    parameter, from ``fit.profile()``; a straight line means a quadratic log-likelihood.

    Args:
        parameters: names to show (lme4's: ``sd_(Intercept)|g``, ``sigma``, fixed effects).
        profile: a table from ``fit.profile()`` to reuse (computed when omitted).
        ncols: panels per row.
    """
    fit, ncols = check_fitted(fit), check_integer(ncols, "ncols")
    table = profile_table(fit) if profile is None else _profile_given(profile)
    names = _chosen(parameters, list(dict.fromkeys(table["parameter"])), "parameters",
                    "parameter")
    fig, axes = _axes_grid(len(names), ax, ncols=ncols, panel_size=(3.6, 3.2))
    for axis, name in zip(axes, names):
        rows = table[table["parameter"] == name].sort_values("value")
        axis.plot(rows["value"].to_numpy(), rows["zeta"].to_numpy(), "-o", ms=3, color="C0")
        axis.axhline(0.0, color="grey", lw=1, ls="--")
        axis.set_xlabel(name)
        axis.set_ylabel("zeta")
        axis.set_title(name, fontsize=9)
    _fit_texts(fig, axes, "Profile zeta")
    if ax is None:
        fig.tight_layout()
    return fig


def _profile_given(profile) -> pd.DataFrame:
    """A table of ``fit.profile()`` passed to ``profile_zeta``: a DataFrame with columns
    ``PROFILE_COLUMNS``."""
    allowed = "None or a table from fit.profile() (columns parameter, value, zeta)"
    if not isinstance(profile, pd.DataFrame):
        raise type_error("profile", allowed, profile)
    if not set(PROFILE_COLUMNS) <= set(profile.columns):
        raise ValueError(f"profile must be {allowed}, not a table with columns "
                         f"{', '.join(map(str, profile.columns))}")
    return profile
