"""The printed summary of a fit, laid out and rounded as lme4's ``summary(lmer(...))``.

``Summary`` collects the sections once as rows of strings; ``str()`` lays them out as text
and ``_repr_html_()`` as HTML tables for notebooks. Numbers follow R's ``format()``: a column
shares its number of decimals, chosen so that each entry shows ``digits`` significant digits.
"""

from __future__ import annotations

import html
import math
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from ..diagnostics.influence import residuals

if TYPE_CHECKING:
    from ..lmm.fitted import FittedModel as LmmFit

__all__ = ["Summary", "Section", "Table", "DIGITS", "r_format", "format_pval", "zapsmall",
           "coefficient_columns", "statistic_column", "abbreviate", "terminal_width",
           "section_text", "section_html", "model_title", "residual_structure_lines"]

DIGITS = 4  # lme4's print digits: max(3, getOption("digits") - 3)
MAX_CORRELATION_P = 12  # lme4 omits the fixed-effects correlation beyond this many
SINGULAR_NOTE = ("boundary (singular) fit: a variance is estimated as (nearly) zero or a "
                 "correlation as +/-1; see the random effects above")
RESIDUAL_BOUNDARY_NOTE = ("boundary fit: a parameter of the residual structure is on its bound "
                          "(a correlation at +/-1 or at its lower limit, an sd ratio or a range "
                          "at 0); see the residual structure above")
P_EPS = float(np.finfo(float).eps)  # R's .Machine$double.eps: smaller p-values print as "< eps"


def terminal_width() -> int:
    """The width printed tables wrap at, as R's ``getOption("width")``: the ``COLUMNS``
    variable, else the terminal's width, else pandas' ``display.width``."""
    return shutil.get_terminal_size((pd.get_option("display.width"), 24)).columns


# -- R's number formatting -------------------------------------------------------------------
def _significant(x: float, digits: int) -> tuple[int, int]:
    """(exponent, significant digits needed) of x rounded to ``digits`` significant digits."""
    if x == 0:
        return 0, 1
    mantissa, exponent = f"{abs(x):.{digits - 1}e}".split("e")
    return int(exponent), len(mantissa.replace(".", "").rstrip("0")) or 1


def r_format(values: Sequence[float], digits: int = 7) -> list[str]:
    """R's ``format(x, digits)``: common decimals (or scientific), right-justified."""
    xs = [float(v) for v in values]
    finite = [x for x in xs if math.isfinite(x)]
    if not finite:
        return _justify([_special(x) for x in xs])
    info = [_significant(x, digits) for x in finite]
    neg = int(any(x < 0 for x in finite))
    left = max(max(e + 1 for e, _ in info), 1)
    right = max(max(n - e - 1 for e, n in info), 0)
    fixed_width = neg + left + (right + 1 if right else 0)
    mantissa = max(n for _, n in info)
    exp_width = 5 if any(abs(e) >= 100 for e, _ in info) else 4
    sci_width = neg + (mantissa + 1 if mantissa > 1 else mantissa) + exp_width
    if fixed_width <= sci_width:
        return _justify([f"{x:.{right}f}" if math.isfinite(x) else _special(x) for x in xs])
    return _justify([f"{x:.{mantissa - 1}e}" if math.isfinite(x) else _special(x) for x in xs])


def _special(x: float) -> str:
    return "NaN" if math.isnan(x) else ("Inf" if x > 0 else "-Inf")


def _justify(texts: list[str]) -> list[str]:
    width = max((len(t) for t in texts), default=0)
    return [t.rjust(width) for t in texts]


def zapsmall(values: np.ndarray, digits: int) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest finite magnitude
    (NaN and Inf are left as they are)."""
    values = np.asarray(values, dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    largest = float(finite.max()) if len(finite) else 0.0
    if largest <= 0:
        return np.round(values, digits)
    return np.round(values, max(0, digits - math.ceil(math.log10(largest))))


def format_pval(values: Sequence[float], digits: int) -> list[str]:
    """R's ``format.pval(p, digits)`` as ``printCoefmat`` calls it: p-values from 1e-3 up
    formatted together, smaller ones together (usually in scientific notation), those below
    the machine epsilon as ``< 2e-16``; NaN as an empty cell (``na.print = ""``)."""
    ps = [float(v) for v in values]
    out = [""] * len(ps)
    regular = [k for k, p in enumerate(ps) if math.isfinite(p) and p >= P_EPS]
    fixed = [k for k in regular if ps[k] == 0 or math.floor(math.log10(ps[k])) >= -3]
    for group in (fixed, [k for k in regular if k not in fixed]):
        for k, text in zip(group, r_format([ps[k] for k in group], digits)):
            out[k] = text.strip()
    tiny = [k for k, p in enumerate(ps) if math.isfinite(p) and p < P_EPS]
    if tiny:
        out_digits, sep = max(1, digits - 2), " "
        if regular:
            widest = max(len(out[k]) for k in regular)
            if out_digits > 1 and out_digits + 6 > widest:
                out_digits = max(1, widest - 7)
            sep = "" if out_digits == 1 and widest <= 6 else " "
        elif out_digits == 1:
            sep = ""
        for k in tiny:
            out[k] = f"<{sep}{r_format([P_EPS], out_digits)[0]}"
    return _justify(out)


def _fixed2(values: Sequence[float], decimals: int = 2) -> list[str]:
    """R's ``format(round(x, d), nsmall = d)``."""
    return _justify([f"{v:.{decimals}f}" if math.isfinite(v) else _special(v) for v in values])


# -- R's abbreviate() ----------------------------------------------------------------------
def _strip_pass(chars: list[str], minlength: int, removable) -> bool:
    """Drop characters from the right (never the first) where ``removable``; True when short,
    the spaces not counted (R removes them last: ``poly(Days, 2)1`` is ``ply(Dys,2)1``)."""
    for i in range(len(chars) - 1, 0, -1):
        if i < len(chars) and removable(chars, i):
            del chars[i]
        if _unspaced_length(chars) <= minlength:
            return True
    return False


def _unspaced_length(chars: list[str]) -> int:
    return sum(not c.isspace() for c in chars)


def _word_start(chars: list[str], i: int) -> bool:
    return chars[i - 1].isspace()


def _word_end(chars: list[str], i: int) -> bool:
    return not chars[i - 1].isspace() and (i + 1 == len(chars) or chars[i + 1].isspace())


def _abbreviate_one(name: str, minlength: int) -> str:
    chars = list(name.strip())
    vowel = lambda c: c in "aeiou"  # noqa: E731
    passes = [
        lambda s, i: vowel(s[i]) and _word_end(s, i),
        lambda s, i: vowel(s[i]) and not _word_start(s, i),
        lambda s, i: s[i].islower() and _word_end(s, i),
        lambda s, i: s[i].islower() and not _word_start(s, i),
        lambda s, i: not _word_start(s, i) and not s[i].isspace(),
    ]
    if _unspaced_length(chars) > minlength:
        for removable in passes:
            if _strip_pass(chars, minlength, removable):
                break
    text = "".join(chars)
    return text.replace(" ", "") if len(text) > minlength else text


def abbreviate(names: Sequence[str], minlength: int) -> list[str]:
    """R's ``abbreviate(names, minlength)``, lengthening duplicates until they are unique."""
    out = [_abbreviate_one(n, minlength) for n in names]
    longest = max((len(n) for n in names), default=0)
    while len(set(out)) < len(out) and minlength < longest:
        minlength += 1
        seen = {}
        for k, text in enumerate(out):
            seen.setdefault(text, []).append(k)
        for ks in (ks for ks in seen.values() if len(ks) > 1):
            for k in ks:
                out[k] = _abbreviate_one(names[k], minlength)
    return out


# -- the summary's parts ------------------------------------------------------------------------
@dataclass
class Table:
    """A block of strings: header, rows, optional row names, per-column alignment."""

    header: list[str]
    rows: list[list[str]]
    row_names: list[str] | None = None
    align: str = "l"  # "l" or "r", for every value column
    note: str = ""

    def text(self, width: int | None = None) -> str:
        """The table as text; wider than ``width``, its columns are printed in blocks one
        under the other, each with the row names, as R prints a wide matrix."""
        names = self.row_names if self.row_names is not None else [""] * len(self.rows)
        name_width = max([len(n) for n in names], default=0)
        columns = list(zip(self.header, *self.rows))
        widths = [max(len(c) for c in column) for column in columns]
        lines = []
        for block in _column_blocks(widths, name_width, width):
            for name, cells in zip([""] + names, [self.header] + self.rows):
                parts = [self._pad(cells[j], widths[j]) for j in block]
                lines.append(" ".join([name.ljust(name_width)] + parts).rstrip())
        return "\n".join(lines)

    def _pad(self, cell: str, width: int) -> str:
        return cell.rjust(width) if self.align == "r" else cell.ljust(width)

    def html(self) -> str:
        esc = html.escape
        corner = "<th></th>" if self.row_names is not None else ""
        head = corner + "".join(f"<th>{esc(h.strip())}</th>" for h in self.header)
        aligns = [_html_align(column) for column in zip(*self.rows)]
        body = []
        for k, cells in enumerate(self.rows):
            name = (f"<th>{esc(self.row_names[k])}</th>" if self.row_names is not None else "")
            tds = "".join(f'<td style="text-align:{a}">{esc(c.strip())}</td>'
                          for c, a in zip(cells, aligns))
            body.append(f"<tr>{name}{tds}</tr>")
        return (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
                "</table>")


def _column_blocks(widths: list[int], name_width: int, width: int | None) -> list[list[int]]:
    """The column indices of each block of lines at most ``width`` wide (at least one column
    a block; all columns in one block when ``width`` is None)."""
    if width is None:
        return [list(range(len(widths)))]
    blocks: list[list[int]] = []
    used = width
    for j, w in enumerate(widths):
        if not blocks or used + 1 + w > width:
            blocks.append([])
            used = name_width
        blocks[-1].append(j)
        used += 1 + w
    return blocks or [[]]


def _html_align(column: Sequence[str]) -> str:
    """Numbers to the right, text to the left."""
    def numeric(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True
    filled = [c.strip() for c in column if c.strip()]
    return "right" if filled and all(numeric(c) for c in filled) else "left"


@dataclass
class Section:
    """A titled part of the summary: lines of text and/or a table."""

    title: str = ""
    lines: list[str] = field(default_factory=list)
    table: Table | None = None
    after: list[str] = field(default_factory=list)


def named_vector(names: Sequence[str], values: Sequence[str]) -> Table:
    """R's print of a named vector: one common width, right-aligned."""
    width = max(len(s) for s in [*names, *values])
    return Table([n.rjust(width) for n in names], [[v.rjust(width) for v in values]],
                 align="r")


# -- the sections, each from the fit ------------------------------------------------------------
def has_residual_structure(fit: "LmmFit") -> bool:
    """The model has a correlation structure or a variance function (nlme's correlation=,
    weights=)."""
    return fit.model.correlation is not None or fit.model.variance is not None


def model_title(fit: "LmmFit") -> str:
    """"Linear mixed model" or, without random effects (``gls``), "Generalized least
    squares"."""
    return "Linear mixed model" if fit.model.random_effects else "Generalized least squares"


def residual_structure_lines(fit: "LmmFit") -> list[str]:
    """The residual structure and its estimates, as nlme prints them ("Correlation structure
    within Subject: AR(1), Phi = 0.57", "Variance function: ..."); empty without one."""
    parameters = fit.model.structure.parameters
    if parameters.residual is None:
        return []
    return parameters.residual.describe(fit.theta[parameters.residual_slice])


def header_section(fit: "LmmFit") -> Section:
    method = "REML" if fit.reml else "maximum likelihood"
    kind = "" if has_residual_structure(fit) or not fit.model.random_effects else " ['lmerMod']"
    lines = [f"{model_title(fit)} fit by {method}{kind}", f"Formula: {fit.formula}"]
    label = fit.model.design.weights_label
    if label is not None:  # as lme4 prints it
        lines.append(f"Weights: {label}")
    return Section(lines=lines)


def criterion_section(fit: "LmmFit") -> Section:
    """The REML criterion, or lme4's AIC/BIC/logLik/deviance/df.resid table for ML."""
    if fit.reml:
        value = r_format([round(fit.objective, 1)])[0]
        return Section(lines=[f"REML criterion at convergence: {value}"])
    names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    values = [fit.aic, fit.bic, fit.loglik, fit.objective]
    texts = r_format([round(v, 1) for v in values]) + [str(fit.nobs - fit.npar)]  # lme4: 174
    return Section(table=named_vector(names, texts))


def residuals_section(fit: "LmmFit") -> Section:
    """lme4's quartiles of the scaled residuals; for a model of a Dask DataFrame, whose
    residuals are in its partitions (their exact quantiles would take a sort of all of
    them), where to find them."""
    if not fit.model.rows_in_memory:
        return Section(title="Scaled residuals:", lines=[
            "(computed on the Dask DataFrame's partitions by fit.resid(\"pearson\", "
            "scaled=True); their quartiles would need a sort of all of them)"])
    scaled = residuals(fit, "pearson", scaled=True)  # as lme4: sqrt(w) (y - fitted) / sigma
    quartiles = zapsmall(np.quantile(scaled, [0, 0.25, 0.5, 0.75, 1]), DIGITS + 1)
    table = named_vector(["Min", "1Q", "Median", "3Q", "Max"], r_format(quartiles, DIGITS))
    return Section(title="Scaled residuals:", table=table)


def _varcorr_terms(varcorr) -> list[dict]:
    """Per lme4 term: its label, column names, variances, sds and correlation matrix."""
    terms: dict[str, dict] = {}
    for row in varcorr.itertuples(index=False):
        term = terms.setdefault(row.group, {"label": row.group, "names": [], "vcov": [],
                                            "sd": [], "corr": {}})
        if row.group == "Residual" or not isinstance(row.var2, str):
            term["names"].append(row.var1 if isinstance(row.var1, str) else "")
            term["vcov"].append(float(row.vcov))
            term["sd"].append(float(row.sdcor))
        else:
            term["corr"][(row.var1, row.var2)] = float(row.sdcor)
    return list(terms.values())


def _correlation_cells(term: dict, ncols: int) -> list[list[str]]:
    """lme4's Corr columns for one term: the lower triangle, rounded to 2 decimals."""
    p = len(term["names"])
    matrix = np.eye(p)
    for (a, b), r in term["corr"].items():
        i, j = term["names"].index(a), term["names"].index(b)
        matrix[i, j] = matrix[j, i] = r
    texts = np.array(_fixed2(matrix.ravel().tolist()) if p else [], dtype=object)
    texts = texts.reshape(p, p) if p else texts.reshape(0, 0)
    return [[texts[i, j] if j < i else "" for j in range(ncols)] for i in range(p)]


def random_section(fit: "LmmFit") -> Section | None:
    if not fit.model.random_effects:
        return None
    terms = _varcorr_terms(fit.varcorr)
    ncorr = max(len(t["names"]) for t in terms) - 1
    variances = r_format([v for t in terms for v in t["vcov"]], DIGITS)
    sds = r_format([s for t in terms for s in t["sd"]], DIGITS)
    rows, k = [], 0
    for term in terms:
        corr = _correlation_cells(term, ncorr)
        for i, name in enumerate(term["names"]):
            group = term["label"] if i == 0 else ""
            rows.append([group, name, variances[k], sds[k], *corr[i]])
            k += 1
    header = ["Groups", "Name", "Variance", "Std.Dev."] + ["Corr"] + [""] * (ncorr - 1)
    table = Table(header[:4 + ncorr], rows)
    return Section(title="Random effects:", table=table, after=[_groups_line(fit)])


def residual_section(fit: "LmmFit") -> Section | None:
    """The residual structure's lines; for ``gls`` also sigma and the number of observations
    (nlme's "Residual standard error", there being no random-effects table)."""
    lines = residual_structure_lines(fit)
    if fit.model.random_effects:
        return Section(title="Residual structure:", lines=lines) if lines else None
    sigma = r_format([fit.sigma], DIGITS)[0].strip()
    return Section(title="Residual structure:" if lines else "",
                   lines=lines + [f"Residual standard error: {sigma}",
                                  f"Number of obs: {fit.nobs}"])


def _groups_line(fit: "LmmFit") -> str:
    groups = "; ".join(f"{b.group}, {b.nlevels}" for b in fit.model.structure.blocks)
    return f"Number of obs: {fit.nobs}, groups: {groups}"


def coefficient_columns(*columns: np.ndarray) -> list[list[str]]:
    """R's printCoefmat: estimates and standard errors (and lmerTest's df) rounded and
    formatted together."""
    joint = np.concatenate([np.asarray(c, dtype=float) for c in columns])
    sizes = np.abs(joint[np.isfinite(joint) & (joint != 0)])
    smallest = 1 + math.floor(math.log10(sizes.min())) if len(sizes) else 1
    texts = r_format(np.round(joint, max(1, DIGITS - smallest)), DIGITS)
    texts = [_unzero(text, x) for text, x in zip(texts, joint)]
    n = len(columns[0])
    return [texts[k * n:(k + 1) * n] for k in range(len(columns))]


def statistic_column(values: np.ndarray, digits: int) -> list[str]:
    """printCoefmat's test-statistic column: rounded to max(1, min(5, digits - 1)) decimals,
    then formatted with ``digits``."""
    return r_format(np.round(np.asarray(values, dtype=float), max(1, min(5, digits - 1))),
                    digits)


def _unzero(text: str, x: float) -> str:
    """printCoefmat's fix-up: a nonzero value that rounded to zero gets its own digits."""
    if x != 0 and math.isfinite(x) and float(text) == 0:
        return r_format([x], DIGITS - 1)[0].rjust(len(text))
    return text


def fixed_section(fit: "LmmFit") -> Section:
    """The coefficient table, or lme4's line for a model without fixed effects."""
    if not len(fit.x_names):  # y ~ 0 + (1 | g)
        return Section(title="No fixed effect coefficients")
    estimate, stderr = fit.fixef.to_numpy(), fit.stderr.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        tvalue = estimate / stderr
    est, se = coefficient_columns(estimate, stderr)
    tv = statistic_column(tvalue, DIGITS)
    rows = [list(cells) for cells in zip(est, se, tv)]
    table = Table(["Estimate", "Std. Error", "t value"], rows, list(fit.x_names), align="r")
    return Section(title="Fixed effects:", table=table)


def correlation_section(fit: "LmmFit") -> Section | None:
    """The lower triangle of corr(beta-hat), with lme4's abbreviated names."""
    names, p = list(fit.x_names), len(fit.x_names)
    if p < 2:
        return None
    title = "Correlation of Fixed Effects:"
    if p > MAX_CORRELATION_P:
        return Section(title=title, lines=[f"not shown, as p = {p} > {MAX_CORRELATION_P}; "
                                           "see fit.vcov"])
    cov = fit.vcov.to_numpy()
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    rounded = np.round(corr, 3) + 0.0  # -0.0 as 0.0: R prints 0.000, not -0.000
    texts = np.array(_fixed2(rounded.ravel().tolist(), 3)).reshape(p, p)
    rows = [[texts[i, j] if j < i else "" for j in range(p - 1)] for i in range(1, p)]
    return Section(title=title, table=Table(abbreviate(names, 6)[:-1], rows,
                                            abbreviate(names, 11)[1:]))


def notes_section(fit: "LmmFit") -> Section | None:
    """Dropped columns, convergence problems and a singular fit, as lme4 reports them, and
    the variances REML cannot estimate (``LinearMixedModel.within_fixed_span``)."""
    lines = []
    dropped = list(fit.model.design.dropped)
    if dropped:
        lines.append(f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
                     f"column{'s' if len(dropped) > 1 else ''}: {', '.join(dropped)}")
    if not fit.optsummary.stopped_normally:
        lines.append(f"optimizer ({fit.optsummary.optimizer}) convergence code: "
                     f"{fit.optsummary.return_code}")
    for label, columns in fit.model.within_fixed_span:
        lines.append(f"not estimable: the variance of {', '.join(columns)} in {label}, "
                     "whose columns lie in the span of the fixed effects (see fit.warnings)")
    check = fit.check_convergence()
    if not check.converged and not fit.is_singular:
        lines.append(f"Model failed to converge: {check.message}")
    if fit.is_singular:
        parameters = fit.model.structure.parameters
        boundary = fit.model.on_boundary(fit.theta)
        if boundary[:parameters.n_random].any() or not boundary.any():
            lines.append(SINGULAR_NOTE)
        if boundary[parameters.residual_slice].any():
            lines.append(RESIDUAL_BOUNDARY_NOTE)
    return Section(lines=lines) if lines else None


SECTIONS = (header_section, criterion_section, residuals_section, random_section,
            residual_section, fixed_section, correlation_section, notes_section)


# -- the summary object -------------------------------------------------------------------------
class Summary:
    """lme4's ``summary(fit)``: print it, or let a notebook render it as HTML."""

    def __init__(self, fit: "LmmFit"):
        self.fit = fit
        self.sections = [s for s in (make(fit) for make in SECTIONS) if s is not None]

    def __str__(self) -> str:
        width = terminal_width()
        return "\n\n".join(section_text(s, width) for s in self.sections)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        parts = "".join(section_html(s) for s in self.sections)
        return f'<div class="mixedmodels-summary">{parts}</div>'


def section_text(section: Section, width: int | None = None) -> str:
    """A section as text, its table wrapped at ``width``."""
    parts = ([section.title] if section.title else []) + section.lines
    if section.table is not None:
        parts.append(section.table.text(width))
    return "\n".join(parts + section.after)


def section_html(section: Section) -> str:
    """A section as HTML: the title, the lines as paragraphs, the table."""
    esc = html.escape
    out = f"<p><strong>{esc(section.title)}</strong></p>" if section.title else ""
    out += "".join(f"<p>{esc(line)}</p>" for line in section.lines)
    if section.table is not None:
        out += section.table.html()
    return out + "".join(f"<p>{esc(line)}</p>" for line in section.after)
