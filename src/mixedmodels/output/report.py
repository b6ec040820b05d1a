"""A self-contained HTML report of a fit: the summary, the tables, what happened to the data
and the fit (rows dropped for missing values, warnings) and the diagnostic plots.

The file has no external references: the style is inline CSS and the plots are PNG images
embedded as base64 ``data:`` URIs, so it opens offline and can be mailed as one file. The
plots need matplotlib (``pip install "mixedmodels[plots]"``); they are drawn with the Agg
renderer straight into memory, so no display and no pyplot window is involved.
"""

from __future__ import annotations

import base64
import html
import io
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..inference.fixed_tests import DDF_DESCRIPTIONS, check_ddf, coef_table
from ..inference.profile import profile_table
from ..lmm.fitted import check_fitted
from ..validate import (
    check_bool,
    check_integer,
    check_optional_string,
    type_error,
    value_error,
)
from . import plots
from .display import Summary, model_title, residual_structure_lines

if TYPE_CHECKING:
    from ..lmm.fitted import FittedModel as LmmFit

__all__ = ["write_report", "report_html"]

MAX_ROWS_LISTED = 30  # dropped rows named in the report; more are counted
MIN_DPI = 10  # the images' resolution: at least this many dots per inch

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ccc; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.8em; color: #333; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; }
.mixedmodels-summary p { margin: .3em 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
.meta { color: #666; font-size: .85em; }
.warnings li { color: #8a4b00; }
"""


def _png_base64(fig, dpi: int) -> str:
    """The figure as base64 PNG, rendered with Agg whatever the current backend is."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attach an Agg canvas: print_png needs no GUI
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figures(fit: "LmmFit", profile: bool) -> list[tuple[str, object]]:
    """(caption, figure) pairs, drawn without pyplot so nothing is left open."""
    from matplotlib.figure import Figure

    def axes(n: int, ncols: int, size: tuple[float, float]):
        ncols = max(1, min(ncols, n))
        nrows = -(-n // ncols)
        fig = Figure(figsize=(size[0] * ncols, size[1] * nrows))
        grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for extra in grid[n:]:
            extra.set_visible(False)
        return fig, list(grid[:n])

    out = []
    rows = fit.model.rows_in_memory  # a Dask fit's rows are in its partitions: no row plots
    if rows:
        fig, (ax,) = axes(1, 1, (6.0, 4.5))
        out.append(("Residuals against fitted values", plots.residuals_vs_fitted(fit, ax=ax)))
        fig, (ax,) = axes(1, 1, (6.0, 4.5))
        out.append(("Normal QQ plot of the residuals", plots.qq_residuals(fit, ax=ax)))
    for group, frame in fit.ranef.items():
        p, n = frame.shape[1], frame.shape[0]
        fig, grid = axes(p, p, (4.0, max(3.0, 0.18 * n + 1.2)))
        out.append((f"Conditional modes of the random effects for {group}, with 95% "
                    "conditional intervals", plots.caterpillar(fit, group=group, ax=grid)))
        fig, grid = axes(p, p, (4.0, 3.8))
        out.append((f"Normal QQ plot of the random effects for {group}",
                    plots.qq_ranef(fit, group=group, ax=grid)))
    x = _panel_covariate(fit) if rows else None
    if x is not None and fit.ranef:
        group = next(iter(fit.ranef))
        nlevels = len(fit.ranef[group])
        if nlevels <= 60:
            ncols = 6
            fig, grid = axes(nlevels, ncols, (2.2, 2.0))
            out.append((f"Observations and fitted values against {x} per {group}",
                        plots.group_panels(fit, x, group=group, ncols=ncols, ax=grid)))
    if profile:
        table = profile_table(fit)
        names = list(dict.fromkeys(table["parameter"]))
        fig, grid = axes(len(names), 3, (3.6, 3.2))
        out.append(("Profile zeta traces", plots.profile_zeta(fit, ax=grid, profile=table)))
    for _, figure in out:
        figure.tight_layout()
    return out


def _panel_covariate(fit: "LmmFit") -> str | None:
    """The single numeric fixed-effect covariate, if the model has exactly one."""
    frame = fit.model.design.frame
    names = [n for n in fit.x_names if n != "(Intercept)"]
    if frame is None or len(names) != 1 or names[0] not in frame.columns:
        return None
    return names[0] if np.issubdtype(frame[names[0]].dtype, np.number) else None


def _data_and_warnings(fit: "LmmFit") -> str:
    """The rows dropped for missing values and the warnings raised while fitting, as HTML."""
    esc = html.escape
    missing = [str(label) for label in fit.model.design.missing_rows]
    if missing:
        named = ", ".join(missing[:MAX_ROWS_LISTED])
        more = f" and {len(missing) - MAX_ROWS_LISTED} more" if len(missing) > MAX_ROWS_LISTED \
            else ""
        rows = (f"Rows dropped for missing values: {len(missing)} of "
                f"{fit.nobs + len(missing)} (index {esc(named)}{more}).")
    else:
        rows = "Rows dropped for missing values: none."
    if not fit.warnings:
        return f"<p>{rows}</p>\n<p>Warnings raised while fitting: none.</p>"
    items = "".join(f"<li>{esc(message)}</li>" for message in fit.warnings)
    return (f"<p>{rows}</p>\n<p>Warnings raised while fitting:</p>\n"
            f'<ul class="warnings">{items}</ul>')


def report_html(fit: "LmmFit", title: str | None = None, profile: bool = False,
                dpi: int = 100, ddf: str = "satterthwaite") -> str:
    """The report as one HTML string (see ``write_report``)."""
    esc = html.escape
    fit, title = check_fitted(fit), check_optional_string(title, "title")
    profile, ddf = check_bool(profile, "profile"), check_ddf(ddf)
    dpi = check_integer(dpi, "dpi", minimum=MIN_DPI)
    varcorr = fit.varcorr.copy()
    for column in ("var1", "var2"):  # None (no second variable) shows as an empty cell
        varcorr[column] = varcorr[column].fillna("")
    title = title or f"{model_title(fit)}: {fit.formula}"
    tests = f"t tests with {DDF_DESCRIPTIONS[ddf]}"
    sections = [
        ("Summary", Summary(fit)._repr_html_()),
        ("Data and warnings", _data_and_warnings(fit)),
        ("Fixed effects", f'<p class="ddf">{esc(tests)} (ddf = "{ddf}").</p>\n'
                          + coef_table(fit, ddf).to_html(classes="coef-table", border=1,
                                                         float_format=lambda v: f"{v:.6g}")),
        ("Variance components", varcorr.to_html(classes="varcorr-table", border=1,
                                                index=False, na_rep="",
                                                float_format=lambda v: f"{v:.6g}")),
    ]
    structure = residual_structure_lines(fit)
    if structure:
        sections.append(("Residual structure", '<ul class="residual-structure">'
                         + "".join(f"<li>{esc(line)}</li>" for line in structure) + "</ul>"))
    body = [f"<h1>{esc(title)}</h1>",
            f'<p class="meta">Formula: <code>{esc(fit.formula)}</code>; fitted by '
            f'{"REML" if fit.reml else "maximum likelihood"}; {fit.nobs} observations; '
            f"fixed effects: {esc(tests)}. "
            f"Report written {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}.</p>"]
    for heading, content in sections:
        body.append(f"<section><h2>{esc(heading)}</h2>\n{content}\n</section>")
    figures = []
    for caption, fig in _figures(fit, profile):
        figures.append(f'<figure><img alt="{esc(caption)}" '
                       f'src="data:image/png;base64,{_png_base64(fig, dpi)}">'
                       f"<figcaption>{esc(caption)}</figcaption></figure>")
    if not fit.model.rows_in_memory:
        figures.insert(0, "<p>The plots of the residuals and of the observations are left out: "
                          "they draw every row of the data, which stay in the partitions of the "
                          "Dask DataFrame the model was fitted to.</p>")
    body.append("<section><h2>Diagnostic plots</h2>\n" + "\n".join(figures) + "\n</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def write_report(fit: "LmmFit", path, title: str | None = None, profile: bool = False,
                 dpi: int = 100, ddf: str = "satterthwaite") -> Path:
    """Write one self-contained HTML file: the summary (as ``fit.summary()``), the rows
    dropped for missing values and the warnings raised while fitting, the fixed effects
    (``coef_table(ddf)``, naming the degrees-of-freedom method), the variance components
    (``varcorr``) and the diagnostic plots as embedded PNG images (for a fit of a Dask
    DataFrame, those of the random effects and the profile only: the rows stay in its
    partitions).

    Args:
        fit: the fitted model.
        path: where to write the file.
        title: the page title (default: the formula).
        profile: also compute and plot the profile zeta traces (slower).
        dpi: resolution of the images, an integer of at least ``MIN_DPI``.
        ddf: the denominator degrees of freedom of the t tests: "satterthwaite" (default),
            "kenward-roger", "residual" or "asymptotic".

    Returns:
        The path written.
    """
    path = _report_path(path)
    path.write_text(report_html(fit, title=title, profile=profile, dpi=dpi, ddf=ddf),
                    encoding="utf-8")
    return path


def _report_path(path) -> Path:
    """The report's path, checked before the report is computed: a file name (a string or a
    ``PathLike``) in an existing directory."""
    allowed = "a file name (a string or a pathlib.Path) in an existing directory"
    if not isinstance(path, (str, os.PathLike)):
        raise type_error("path", allowed, path)
    checked = Path(path)
    if checked.is_dir() or not checked.parent.is_dir():
        raise value_error("path", allowed, str(path))
    return checked
