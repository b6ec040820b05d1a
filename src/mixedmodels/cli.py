"""The ``mixedmodels`` command: fit a model from the shell.

    mixedmodels fit "Reaction ~ Days + (Days | Subject)" --data sleepstudy [--ml] [--json]
        [--ddf {satterthwaite,kenward-roger,residual,asymptotic}] [--anova] [--sep SEP]
        [--correlation "ar1(visit | patient)"] [--variance "ident(centre)"]
    mixedmodels fit "y ~ arm * visit" --data trial --correlation "ar1(visit | patient)"
    mixedmodels fit "y ~ x + (1 | g)" --data 'visits/*.parquet' --dask [ADDRESS]
    mixedmodels gauge-rr DATA --part P --operator O --response Y [--tolerance T] [--json]

``--data`` takes a bundled data set's name, a CSV file, a Parquet file, a directory of Parquet
files or a pattern of files (``'visits/*.parquet'``, ``'visits/*.csv'``, quoted). With
``--dask`` the files are read as a Dask DataFrame and fitted from their partitions
(``partitioned.model``): on a local cluster of worker processes started for the fit, or on
the Dask scheduler at ADDRESS (``tcp://host:8786``); a progress bar per pass goes to stderr.

``--correlation`` and ``--variance`` take the residual structures of ``mm.lmer`` and
``mm.gls`` (nlme's ``correlation=`` and ``weights=``; SAS's REPEATED statement). A formula
without random-effects terms is fitted by generalized least squares (``mm.gls``: with
``--correlation``/``--variance`` a marginal model for repeated measures, without them the
linear model), with a note saying so; a formula with them by ``mm.lmer``.

Mistakes in the input end with one line on stderr, ``mixedmodels: error: ...``, and exit
status 2; warnings are reported as ``mixedmodels: warning: ...`` lines and remarks on how the
data were read as ``mixedmodels: note: ...`` lines.

CSV files are read by ``datasets.read_csv``, with the usual missing-value codes (``NA``,
``.``, ``n/a``, an empty cell; also ``NaN`` and ``N/A``) read as missing and counted in a note.
Without ``--sep``, a file whose header line has no comma but has semicolons (or tabs, or
vertical bars) is read with that separator, with a note. Rows are numbered from 1 after the
header in every message. A column of numbers that still holds some text is read as text: an
error naming the column, the rows and the values where the model reads it as numbers, a
column of labels where it is a grouping factor. A formula the shell split
into several arguments, or cut short at an unquoted ``|`` or ``(``, is reported with a hint to
quote it.
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import logging
import math
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import pandas as pd

from . import datasets
from .api import gls, lmer
from .diagnostics.predict import random_rows
from .errors import DataError, FormulaError
from .formula.parse import parse_formula
from .gauge import gauge_rr
from .inference.fixed_tests import (
    DDF_ALIASES,
    DDF_ALLOWED,
    DDF_METHODS,
    check_anova_type,
    check_ddf,
)
from .linalg.compiled import prefer_numpy
from .output.report import write_report

__all__ = ["main"]

PROG = "mixedmodels"
USAGE_ERROR = 2
#: the cells read as missing on the command line: the package's CSV codes and "." and "n/a"
MISSING_VALUES = (*datasets.CSV_MISSING_VALUES, ".", "n/a")
OTHER_SEPARATORS = (";", "\t", "|")  # tried, in this order, on a header without commas
FORMULA_OPERATORS = "~+-*/:^|("  # a formula ending in one was cut short
FORMULA_SIGNS = set("~+*:^|()")  # an argument holding one is a piece of a formula
PARQUET_SUFFIXES = (".parquet", ".pq")
LOCAL_CLUSTER = "local"  # --dask without an address: a local cluster
SEP_HELP = ("the CSV files' field separator, one character (default ','; a header without "
            "commas but with ';', tabs or '|' is read with that one)")


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str):
        raise UsageError(f"{message} (see '{PROG} --help')")


def separator(text: str) -> str:
    """``--sep``: one character; ``\\t`` or ``tab`` for a tab."""
    sep = "\t" if text in ("\\t", "tab") else text
    if len(sep) != 1 or sep in "\"\n\r":
        raise argparse.ArgumentTypeError(
            f"must be one character such as ';' or '\\t' (a tab), not {text!r}")
    return sep


def ddf_method(text: str) -> str:
    """``--ddf``: a method of ``DDF_METHODS`` or one of its aliases (``kr``...)."""
    try:
        return check_ddf(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {DDF_ALLOWED}, not {text!r}") from None


def anova_type_number(text: str) -> int:
    """``--anova-type``: 1, 2 or 3 (or I, II, III)."""
    try:
        return check_anova_type(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 1, 2 or 3 (or I, II, III), not {text!r}") from None


def positive_number(text: str) -> float:
    """``--tolerance``: a positive finite number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


def existing_file(text: str) -> Path:
    """``--predict``: a file that exists."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"{'is a directory, not a file' if path.is_dir() else 'no such file'}: {text}")
    return path


def output_file(text: str) -> str:
    """``--out``, ``--report``: a file to write, in a directory that exists (checked before
    the fit, so that a mistyped path does not cost one)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"is a directory, not a file: {text}")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {path.parent}")
    return text


def build_parser(require_data: bool = True) -> argparse.ArgumentParser:
    """The command line; ``require_data=False`` reads a ``fit`` without ``--data`` (to look at
    its formula when another mistake stops the parse)."""
    parser = _Parser(prog=PROG, description="Linear mixed-effects models with lme4 formulas.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    fit = commands.add_parser("fit", help="fit a linear mixed model and print its summary",
                              description="Fit a linear mixed model by REML (default) or ML.")
    fit.add_argument("formula", help="lme4-style formula, e.g. 'y ~ x + (x | g)'")
    fit.add_argument("--data", required=require_data, metavar="NAME_OR_FILES",
                     help=f"a bundled data set ({', '.join(datasets.names())}), a CSV or "
                          "Parquet file, a directory of Parquet files, or a quoted pattern "
                          "of files ('visits/*.parquet')")
    fit.add_argument("--dask", nargs="?", const=LOCAL_CLUSTER, default=None,
                     metavar="ADDRESS",
                     help="fit the files' partitions with Dask: on a local cluster, or on "
                          "the scheduler at ADDRESS (e.g. tcp://10.0.0.5:8786)")
    fit.add_argument("--sep", type=separator, metavar="SEP", help=SEP_HELP)
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--weights", metavar="COLUMN",
                     help="prior weights from this column (Var(e_i) = sigma^2 / w_i), as lme4")
    fit.add_argument("--correlation", metavar="STRUCTURE",
                     help="correlation of the residuals within groups, as nlme's "
                          "correlation=: 'ar1(visit | patient)', 'car1(time | patient)', "
                          "'cs(1 | patient)', 'symm(visit | patient)', "
                          "'toep(visit | patient)', 'arma(visit | patient, p = 1, q = 1)', "
                          "and the spatial 'exp(x + y | site)', "
                          "'gaus(...)', 'spher(...)', 'lin(x | site)', 'ratio(...)'")
    fit.add_argument("--variance", metavar="FUNCTION",
                     help="variance function of the residuals, as nlme's weights=: "
                          "'ident(centre)', 'power(x)', 'exp(x)'")
    fit.add_argument("--json", action="store_true", help="print the fit as JSON")
    fit.add_argument("--ddf", type=ddf_method, default=None,
                     metavar="{" + ",".join(DDF_METHODS) + "}",
                     help="print the fixed-effects table with t tests using these "
                          "denominator degrees of freedom (aliases: "
                          f"{', '.join(DDF_ALIASES)})")
    fit.add_argument("--anova", action="store_true",
                     help="print the type III F tests (with --ddf, default satterthwaite)")
    fit.add_argument("--anova-type", type=anova_type_number, default=None, metavar="{1,2,3}",
                     help="with --anova: lmerTest's type I (sequential), II or III (default; "
                          "also written I, II, III)")
    fit.add_argument("--predict", type=existing_file, metavar="NEW_CSV",
                     help="predict for the rows of this CSV file (unseen groups get the "
                          "population prediction); needs --out")
    fit.add_argument("--out", type=output_file, metavar="CSV",
                     help="where --predict writes its predictions")
    fit.add_argument("--interval", choices=["confidence", "prediction"],
                     help="with --predict: add se, lower and upper columns (95%%): "
                          "'confidence' for the row's mean as predicted (X b + Z u, the "
                          "random effects of the levels the fit has seen; X b alone for a "
                          "new level), 'prediction' for a new observation")
    fit.add_argument("--report", type=output_file, metavar="HTML",
                     help="also write a self-contained HTML report (summary, tables, plots; "
                          "its t tests use --ddf, default satterthwaite)")
    gauge = commands.add_parser("gauge-rr", help="crossed gauge R&R study (REML)",
                                description="Gauge repeatability and reproducibility of a "
                                            "crossed parts x operators study.")
    gauge.add_argument("data", metavar="DATA",
                       help="a bundled data set or a CSV file, one row per measurement")
    gauge.add_argument("--part", required=True, help="column naming the part")
    gauge.add_argument("--operator", required=True, help="column naming the operator")
    gauge.add_argument("--response", required=True, help="column of the measurements")
    gauge.add_argument("--tolerance", type=positive_number, default=None,
                       help="specification range (USL - LSL): adds %% tolerance")
    gauge.add_argument("--json", action="store_true", help="print the result as JSON")
    gauge.add_argument("--sep", type=separator, metavar="SEP", help=SEP_HELP)
    return parser


def load_data(source: str, sep: str | None = None, option: str = "--data") -> pd.DataFrame:
    """A bundled data set by name (any case), else a CSV file (see ``read_csv``), Parquet
    file(s) or a pattern of files; ``option`` names the argument in messages. Its rows are
    numbered from 1 (``numbered``)."""
    return numbered(_load_data(source, sep, option))


def numbered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its rows numbered 1, 2, ...: every message that names rows names them
    as they are counted in the file (from 1 after the header; files read one after the
    other)."""
    return frame.set_axis(pd.RangeIndex(1, len(frame) + 1), axis=0)


def _load_data(source: str, sep: str | None, option: str) -> pd.DataFrame:
    path = Path(source)
    if source.lower() in datasets.names() and not path.is_file():
        return datasets.load(source)
    if _is_pattern(source) or _is_parquet(path):
        files = data_files(source, option)
        if all(_is_parquet(file) for file in files):
            return _read_parquet(files)
        return pd.concat([read_csv(file, sep) for file in files], ignore_index=True)
    if path.is_file():
        return read_csv(path, sep)
    if path.is_dir():
        raise UsageError(f"{source} is a directory without Parquet files ({option})")
    if path.suffix or len(path.parts) > 1:
        raise UsageError(f"no such file: {source} ({option})")
    raise UsageError(f"unknown data set {source!r} ({option}); use one of "
                     f"{', '.join(datasets.names())} or the path of a CSV file")


def _is_pattern(source: str) -> bool:
    return any(sign in source for sign in "*?[")


def _is_parquet(path: Path) -> bool:
    """A Parquet file, or a directory holding some."""
    if path.is_dir():
        return any(_is_parquet(file) for file in path.iterdir())
    return path.suffix.lower() in PARQUET_SUFFIXES


def data_files(source: str, option: str = "--data") -> list[Path]:
    """The files a pattern, a directory of Parquet files or a file names (sorted); a
    UsageError when there are none, or when they mix CSV and Parquet."""
    path = Path(source)
    if _is_pattern(source):
        files = sorted(Path(name) for name in glob.glob(source))
    elif path.is_dir():
        files = sorted(file for file in path.iterdir() if _is_parquet(file))
    else:
        files = [path]
    files = [file for file in files if file.is_file()]
    if not files:
        if path.is_dir():
            raise UsageError(f"{source} is a directory without Parquet files ({option})")
        if _is_pattern(source):
            raise UsageError(f"no file matches the pattern {source} ({option})")
        if source.lower() in datasets.names():
            raise UsageError(f"{source} is a bundled data set, and --dask reads files (CSV or "
                             f"Parquet) ({option}): leave out --dask, or write the data set "
                             "to a file first")
        raise UsageError(f"no such file: {source} ({option})")
    kinds = {_is_parquet(file) for file in files}
    if len(kinds) > 1:
        raise UsageError(f"{source} matches both Parquet and CSV files ({option}); "
                         "give a pattern that matches one kind")
    return files


def _read_parquet(files: list[Path]) -> pd.DataFrame:
    """Parquet files, one after the other (pyarrow)."""
    try:
        return pd.concat([pd.read_parquet(file) for file in files], ignore_index=True)
    except ImportError as error:
        raise UsageError("reading Parquet needs pyarrow: pip install 'mixedmodels[dask]'") \
            from error
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read the Parquet files: {_one_line(error)}") from error


def read_csv(path: Path, sep: str | None = None) -> pd.DataFrame:
    """A CSV file read with ``MISSING_VALUES`` as missing: separated by ``sep``, or by the
    separator its header line shows (see ``_header_separator``); a note counts the missing
    cells. A column of numbers with some text in it is read as text: it is an error where the
    model reads it as numbers (``design.columns``, naming the values and their rows), not
    where it is a grouping factor or not used (R's ``read.csv`` reads it as text too)."""
    if sep is None:
        sep = _header_separator(path)
    try:
        frame = datasets.read_csv(path, sep=sep, missing_values=MISSING_VALUES)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path} as CSV: {_one_line(error)}") from error
    if frame.empty:
        raise UsageError(f"{path} has no data rows")
    _note_one_column(path, frame, sep)
    if sep != ",":
        frame = _decimal_commas(path, frame)
    _note_missing(path, frame)
    return frame


def _cells(path: Path, sep: str | None) -> pd.DataFrame:
    """The rows of a CSV file as its text, numbered as ``numbered`` numbers them: written
    back beside their predictions as they were read (a column of whole numbers with a
    missing cell is read as floats, and would be written as 17.0)."""
    sep = _header_separator(path, quiet=True) if sep is None else sep
    return numbered(datasets.read_csv(path, sep=sep, missing_values=(), dtype=str))


def _header_separator(path: Path, quiet: bool = False) -> str:
    """',' unless the header line has no comma but has ';' (or a tab, or '|'): a file read
    with ',' would then come out as one column whose name holds the separators."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        return ","  # the reader says what is wrong
    found = [sep for sep in OTHER_SEPARATORS if sep in header]
    if "," in header or not found:
        return ","
    if not quiet:
        _report("note", f"{path}: the header has no ',' but has {found[0]!r}: read with "
                        f"{found[0]!r} as the separator (--sep chooses another)")
    return found[0]


_DECIMAL_COMMA = r"[+-]?(?:\d+(?:,\d*)?|,\d+)(?:[eE][+-]?\d+)?"


def _decimal_commas(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of a file not separated by commas whose every filled cell is a number, with a
    decimal comma ("249,56", as spreadsheets write them where ';' separates the fields) in
    some and none in others (whole numbers: "250"), read as numbers, with a note naming
    them."""
    converted = {}
    for name in frame.columns:
        column = frame[name]
        if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
            continue
        filled = column.dropna().astype(str)
        if len(filled) and filled.str.fullmatch(_DECIMAL_COMMA).all() \
                and filled.str.contains(",", regex=False).any():
            converted[name] = pd.to_numeric(column.str.replace(",", ".", regex=False))
    if not converted:
        return frame
    _report("note", f"{path}: read ',' as the decimal mark in "
                    f"{', '.join(map(repr, map(str, converted)))}")
    return frame.assign(**converted)


def _note_one_column(path: Path, frame: pd.DataFrame, sep: str) -> None:
    """A note when the file came out as one column whose name holds another separator (a
    wrong ``--sep``): the model's columns will be missing from it."""
    if len(frame.columns) != 1:
        return
    found = [other for other in (",",) + OTHER_SEPARATORS
             if other != sep and other in str(frame.columns[0])]
    if found:
        _report("note", f"{path}: read as one column, whose name {str(frame.columns[0])!r} "
                        f"holds {found[0]!r}: is that the separator (--sep {found[0]!r})?")


def _note_missing(path: Path, frame: pd.DataFrame) -> None:
    """A note counting the cells read as missing, per column."""
    counts = frame.isna().sum()
    counts = counts[counts > 0]
    if counts.empty:
        return
    per_column = ", ".join(f"{name} {int(k)}" for name, k in counts.items())
    codes = ", ".join(repr(code) if code else "empty" for code in MISSING_VALUES)
    _report("note", f"{path}: {int(counts.sum())} cells read as missing ({codes}): "
                    f"{per_column}")


def run_fit(args: argparse.Namespace) -> str:
    """Fit, write the requested files, and return the text to print."""
    if args.predict and not args.out:
        raise UsageError("--predict needs --out PATH for the predictions")
    if args.out and not args.predict:
        raise UsageError("--out goes with --predict NEW_CSV")
    if args.interval and not args.predict:
        raise UsageError("--interval goes with --predict NEW_CSV")
    if args.anova_type and not args.anova:
        raise UsageError("--anova-type goes with --anova")
    new_data = numbered(read_csv(args.predict, args.sep)) if args.predict else None
    cells = _cells(args.predict, args.sep) if args.predict else None
    if new_data is not None:
        _check_prediction_columns(args, new_data)
    if args.dask is not None:
        if args.report:
            raise UsageError("--report needs the rows in memory; it does not go with --dask")
        if args.anova_type in (1, 2):
            raise UsageError("--anova-type 1 and 2 need X'X of the rows in memory; with "
                             "--dask, use --anova-type 3")
        fitter = _fitter(args)
        with _dask_client(args.dask):
            return _summarize_fit(args, new_data, cells, _fit_with_dask(args, fitter))
    fitter = _fitter(args)
    data = load_data(args.data, args.sep)
    fit = fitter(args.formula, data, reml=not args.ml, weights=args.weights,
                 correlation=args.correlation, variance=args.variance)
    return _summarize_fit(args, new_data, cells, fit)


#: the columns ``--out`` adds to the rows of ``--predict``: without, and with ``--interval``
PREDICTION_COLUMNS = ("prediction",)
INTERVAL_COLUMNS = ("prediction", "se", "lower", "upper")


def _check_prediction_columns(args: argparse.Namespace, new_data: pd.DataFrame) -> None:
    """The rows to predict must not have the columns the predictions are written in (the
    output would have two columns of one name)."""
    added = INTERVAL_COLUMNS if args.interval else PREDICTION_COLUMNS
    clash = [name for name in added if name in new_data.columns]
    if clash:
        raise UsageError(f"{args.predict} has the column(s) {', '.join(map(repr, clash))}, "
                         f"which --out adds ({', '.join(added)}): rename them in "
                         f"{args.predict}")


def _fitter(args: argparse.Namespace):
    """``lmer``, or ``gls`` (with a note) for a formula without random-effects terms."""
    if parse_formula(args.formula).random:
        return lmer
    structures = [f"--{name} {value}" for name, value in
                  (("correlation", args.correlation), ("variance", args.variance)) if value]
    _report("note", "the formula has no random-effects terms: fitted by generalized least "
                    "squares (mm.gls)" + (f" with {' and '.join(structures)}" if structures
                                          else ", i.e. the linear model"))
    return gls


def _fit_with_dask(args: argparse.Namespace, fitter):
    """The fit (``fitter``: ``lmer`` or ``gls``) of the files of ``--data`` read as a Dask
    DataFrame."""
    import dask.dataframe as dd

    files = [str(file) for file in data_files(args.data)]
    if _is_parquet(Path(files[0])):
        data = dd.read_parquet(files)
    else:
        data = dd.read_csv(files, sep=args.sep or _header_separator(Path(files[0])),
                           keep_default_na=False, na_values=list(MISSING_VALUES))
    return fitter(args.formula, data, reml=not args.ml, weights=args.weights,
                  correlation=args.correlation, variance=args.variance, progress=True)


@contextmanager
def _dask_client(address: str):
    """A Dask client for the fit: of the scheduler at ``address``, or of a local cluster of
    worker processes started for it (``LOCAL_CLUSTER``) and closed after."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:
        raise UsageError("--dask needs Dask: pip install 'mixedmodels[dask]'") from error
    if address != LOCAL_CLUSTER:
        try:
            client = Client(address, timeout="10s")
        except OSError as error:
            raise UsageError(f"cannot reach the Dask scheduler at {address}: "
                             f"{_one_line(error)}") from error
        with client:
            yield client
        return
    with LocalCluster(processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        yield client


def _summarize_fit(args: argparse.Namespace, new_data, cells, fit) -> str:
    """Write the requested files and return the text to print. ``new_data``: the rows of
    ``--predict``, and ``cells`` the same rows as the file's text (``_cells``), which the
    predictions are written beside: IDs stay 17, not 17.0 where a cell is missing."""
    ddf = args.ddf or "satterthwaite"
    anova_type = args.anova_type or 3
    if new_data is not None:
        predicted = fit.predict(new_data, new_levels="population", interval=args.interval)
        _note_prediction_rows(args, fit, new_data)
        if args.interval:
            predictions = pd.concat(
                [cells, predicted.rename(columns={"fit": "prediction"})], axis=1)
        else:
            predictions = cells.assign(prediction=predicted)
        _write_file(args.out, lambda path: predictions.to_csv(path, index=False))
    if args.report:
        _write_file(args.report, lambda path: write_report(fit, path, ddf=ddf))
    if args.json:
        record = fit.to_dict()
        if args.ddf:
            record["coef_table"] = _records(fit.coef_table(ddf), ddf)
        if args.anova:
            record["anova"] = _records(fit.anova(ddf, type=anova_type), ddf)
        return json.dumps(record, indent=2, default=_json_default, allow_nan=True)
    parts = [str(fit.summary())]
    if args.ddf:
        parts.append(f"Fixed effects, {ddf} degrees of freedom:\n{fit.coef_table(ddf)}")
    if args.anova:  # under lmerTest's heading
        parts.append(str(fit.anova(ddf, type=anova_type)))
    return "\n\n".join(parts)


def _note_prediction_rows(args: argparse.Namespace, fit, new_data: pd.DataFrame) -> None:
    """Notes on rows of ``--predict`` predicted otherwise than the fitted ones: a level of a
    grouping factor the fit has not seen, or none (the population prediction for that
    factor), and a prediction interval's prior weight of 1 where the weights' column is
    absent."""
    blocks = fit.model.structure.blocks
    for block, (labels, index, _) in zip(blocks, random_rows(fit, new_data) if blocks else []):
        unseen = index < 0
        if not unseen.any():
            continue
        count = int(unseen.sum())
        missing = sum(label is None for label in labels[unseen])
        kinds = ([f"{count - missing} with a level not in the fit's data"]
                 if count > missing else []) + ([f"{missing} without a value"] if missing
                                                else [])
        _report("note", f"{args.predict}: {count} of its {len(new_data)} rows predicted without "
                        f"the random effects of {block.group!r} (its population prediction): "
                        f"{', '.join(kinds)}")
    if args.interval == "prediction" and args.weights and args.weights not in new_data.columns:
        _report("note", f"{args.predict} has no column {args.weights!r} (--weights): its "
                        "prediction intervals take a prior weight of 1 for every row")


def _write_file(path: str, writer) -> None:
    """Run writer(path); a path that cannot be written is a one-line error."""
    try:
        writer(path)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from error


def _records(table: pd.DataFrame, ddf: str) -> dict:
    """A coefficient or anova table as {"ddf": ..., "rows": {term: {column: value}}}."""
    rows = {str(term): {str(k): (None if isinstance(v, float) and math.isnan(v) else
                                 (v.item() if hasattr(v, "item") else v))
                        for k, v in row.items()}
            for term, row in table.iterrows()}
    return {"ddf": ddf, "rows": rows}


def run_gauge_rr(args: argparse.Namespace) -> str:
    """Gauge R&R study; the text (or JSON) to print."""
    result = gauge_rr(load_data(args.data, args.sep, "DATA"), part=args.part,
                      operator=args.operator, response=args.response, tolerance=args.tolerance)
    if args.json:
        return json.dumps(result.to_dict(), indent=2, allow_nan=False)
    return str(result)


def _json_default(value):
    """numpy scalars and arrays that slip into the record."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _one_line(error: BaseException) -> str:
    """The first line of an error message, without a trailing colon."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text.rstrip(":").strip()


def _report(kind: str, message: str) -> None:
    print(f"{PROG}: {kind}: {message}", file=sys.stderr)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments; a formula the shell split or cut short is reported before any other
    mistake (the rest of the command line may have gone with it)."""
    try:
        args, extra = build_parser().parse_known_args(argv)
    except UsageError:
        _check_formula_quoted(_fit_positionals(argv))
        raise
    if args.command == "fit":
        _check_formula_quoted([args.formula, *extra])
    if extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see '{PROG} --help')")
    return args


def _fit_positionals(argv: Sequence[str] | None) -> list[str]:
    """The formula and any other positional arguments of ``fit``, read without requiring
    --data; empty when that fails too."""
    try:
        args, extra = build_parser(require_data=False).parse_known_args(argv)
    except UsageError:
        return []
    return [args.formula, *extra] if args.command == "fit" else []


def _check_formula_quoted(arguments: list[str]) -> None:
    """Raise a hint to quote the formula when the shell split it (more positional arguments
    that look like formula pieces; an unquoted ``~`` arrives as the home directory) or cut it
    short at an unquoted ``|`` or ``(`` (it ends in an operator)."""
    home = os.path.expanduser("~")
    pieces = ["~" if a == home else a for a in arguments if a == "-" or not a.startswith("--")]
    if not pieces:
        return
    quote = f"quote the whole formula, e.g. {PROG} fit '{' '.join(pieces)}' --data ..."
    if any(FORMULA_SIGNS & set(piece) or piece in ("-", "/") for piece in pieces[1:]):
        raise UsageError(f"the formula came as {len(pieces)} arguments "
                         f"({', '.join(map(repr, pieces))}): the shell splits an unquoted "
                         f"formula at its spaces; {quote}")
    formula = pieces[0].strip()
    if formula and formula[-1] in FORMULA_OPERATORS:
        raise UsageError(f"the formula {formula!r} ends in {formula[-1]!r}: the shell may have "
                         f"cut it at an unquoted '|' or '('; {quote}")


def _dispatch(argv: Sequence[str] | None) -> str:
    args = _parse(argv)
    if args.command == "fit":
        return run_fit(args)
    if args.command == "gauge-rr":
        return run_gauge_rr(args)
    raise UsageError(f"choose a command: fit or gauge-rr (see '{PROG} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            output = _dispatch(argv)
        except SystemExit as done:  # --help
            return done.code if isinstance(done.code, int) else 0
        except (UsageError, FormulaError, DataError, ValueError, OSError) as error:
            _flush_warnings(caught)
            _report("error", _one_line(error))
            return USAGE_ERROR
    _flush_warnings(caught)
    return _write(output)


def run() -> int:
    """The ``mixedmodels`` command's entry point: ``main`` on the process's arguments, on the
    NumPy back-ends (one fit per process: loading the compiled kernels would cost more than
    the fit; see ``linalg.compiled``). The objects loaded by then (modules, classes, functions)
    live as long as the process, so the collector leaves them out of its passes (``gc.freeze``):
    its full passes during the fit and the one at exit would otherwise go over all of them."""
    prefer_numpy()
    gc.freeze()
    return main()


def _write(text: str) -> int:
    """Print to stdout; a reader that closes the pipe early (``| head``) is not an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def _flush_warnings(caught: list[warnings.WarningMessage]) -> None:
    for record in caught:
        _report("warning", " ".join(str(record.message).split()))
    caught.clear()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
