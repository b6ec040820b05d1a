"""Shared helpers for the benchmark scripts: timing, Markdown tables, running R and child processes.

Not part of the test suite. Every script here is runnable as ``python benchmarks/NAME.py``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "src" / "mixedmodels" / "datasets" / "data"
REF_DIR = REPO / "tests" / "reference"

# Columns that hold labels even when they look numeric (same rule as mixedmodels.datasets).
LABEL_COLUMNS = ("Rail", "Subject")


# --------------------------------------------------------------------------------------------
# timing


def load_our_kernels() -> None:
    """Make this a warm process, as the benchmarks time ours: the compiled kernels loaded
    before the first timed fit (a new process's small fits run on the NumPy back-ends until
    they have earned the kernels, ``mixedmodels.linalg.compiled``)."""
    from mixedmodels.linalg.compiled import load_kernels

    load_kernels()


def median_time(fn: Callable[[], Any], warmup: int = 3, repeats: int = 30,
                max_seconds: float | None = None) -> tuple[float, int]:
    """Median wall time (seconds, ``time.perf_counter``) of ``fn()`` after ``warmup`` calls.

    Stops early once ``max_seconds`` of timed calls have accumulated (keeping at least 5).
    Returns (median seconds, number of timed calls). Warnings raised by ``fn`` are silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(warmup):
            fn()
        times: list[float] = []
        total = 0.0
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            times.append(dt)
            total += dt
            if max_seconds is not None and total > max_seconds and len(times) >= 5:
                break
    return statistics.median(times), len(times)


def best_time(fn: Callable[[], Any], repeats: int = 2,
              max_seconds: float | None = None) -> tuple[float, Any]:
    """Best (minimum) wall time of ``repeats`` calls of ``fn()``, and the last call's result.

    Stops early once ``max_seconds`` of timed calls have accumulated (keeping at least one).
    """
    best = float("inf")
    total = 0.0
    result = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = fn()
            dt = time.perf_counter() - t0
            best, total = min(best, dt), total + dt
            if max_seconds is not None and total > max_seconds:
                break
    return best, result


# --------------------------------------------------------------------------------------------
# formatting


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; the first column is left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        out = []
        for i, c in enumerate(r):
            out.append(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join((":" + "-" * (w + 1)) if i == 0 else ("-" * (w + 1) + ":")
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def fmt_ms(seconds: float | None, digits: int = 2) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.{digits}f}"


def fmt_s(seconds: float | None, digits: int = 2) -> str:
    return "n/a" if seconds is None else f"{seconds:.{digits}f}"


def fmt_ratio(num: float | None, den: float | None) -> str:
    r = ratio(num, den)
    return "n/a" if r is None else f"{r:.2f}"


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def fmt_diff(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "n/a"
    return f"{abs(a - b):.1e}"


def median_or_none(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def environment_line(extra: Sequence[str] = ()) -> str:
    """Versions of everything compared, for the header of a report; ``extra`` adds parts (the
    versions of packages measured in another interpreter)."""
    parts = [f"Python {platform.python_version()}", f"{os.cpu_count()} CPUs"]
    for mod, name in (("mixedmodels", "mixedmodels"), ("statsmodels", "statsmodels"),
                      ("numpy", "numpy"), ("scipy", "scipy"), ("pandas", "pandas")):
        try:
            parts.append(f"{name} {__import__(mod).__version__}")
        except Exception:  # pragma: no cover - optional
            pass
    try:
        from importlib.metadata import version
        parts.append(f"lme-python {version('lme-python')}")
    except Exception:
        pass
    parts.extend(extra)
    if have_rscript():
        parts.append(f"R/lme4 {r_lme4_version()}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# data


def ref_models() -> list[dict]:
    """The single-model references of tests/reference/*.json (those with "data", "formula" and
    "REML" and whose CSV is bundled), sorted by file name. Other JSON files are skipped."""
    out = []
    for path in sorted(REF_DIR.glob("*.json")):
        with open(path) as fh:
            ref = json.load(fh)
        if (isinstance(ref, dict) and {"data", "formula", "REML"} <= ref.keys()
                and (DATA_DIR / ref["data"]).exists()):
            ref.setdefault("id", path.stem)
            out.append(ref)
    return out


def read_pandas(csv: Path | str, label_columns: Sequence[str] = LABEL_COLUMNS):
    import pandas as pd
    header = pd.read_csv(csv, nrows=0).columns
    return pd.read_csv(csv, dtype={c: str for c in label_columns if c in header})


def read_polars(csv: Path | str, label_columns: Sequence[str] = LABEL_COLUMNS):
    import polars as pl
    header = pl.read_csv(csv, n_rows=0).columns
    return pl.read_csv(csv, schema_overrides={c: pl.String for c in label_columns if c in header})


# --------------------------------------------------------------------------------------------
# R


def have_rscript() -> bool:
    return shutil.which("Rscript") is not None


_R_VERSION: str | None = None


def r_lme4_version() -> str:
    global _R_VERSION
    if _R_VERSION is None:
        try:
            out = subprocess.run(
                ["Rscript", "-e", 'cat(R.version$major, ".", R.version$minor, "/", '
                 'as.character(packageVersion("lme4")), sep="")'],
                capture_output=True, text=True, timeout=60)
            _R_VERSION = out.stdout.strip() or "?"
        except Exception:
            _R_VERSION = "?"
    return _R_VERSION


# R helpers prepended to every generated script. Results are printed as lines
# "RESULT<TAB>key<TAB>field<TAB>value"; anything else on stdout is ignored.
R_PRELUDE = r"""
suppressMessages(library(lme4))
emit <- function(key, field, value) {
  cat("RESULT\t", key, "\t", field, "\t", sprintf("%.17g", value), "\n", sep = "")
}
read_data <- function(path, label_columns) {
  d <- read.csv(path, stringsAsFactors = TRUE)
  for (v in intersect(label_columns, names(d))) d[[v]] <- factor(as.character(d[[v]]))
  d
}
have_mb <- requireNamespace("microbenchmark", quietly = TRUE)
# median seconds of `times` evaluations of fit() after `warmup` evaluations
median_fit_seconds <- function(fit, warmup = 3, times = 30, max_seconds = 10) {
  for (i in seq_len(warmup)) fit()
  if (have_mb) {
    mb <- microbenchmark::microbenchmark(fit(), times = times)
    return(median(mb$time) / 1e9)
  }
  ts <- numeric(0); total <- 0
  for (i in seq_len(times)) {
    t0 <- Sys.time(); fit(); dt <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
    ts <- c(ts, dt); total <- total + dt
    if (total > max_seconds && length(ts) >= 5) break
  }
  median(ts)
}
"""


def run_r(code: str, timeout: float = 600) -> dict[str, dict[str, float]]:
    """Run R code (after R_PRELUDE) with Rscript; return {key: {field: value}} from RESULT lines.

    Raises RuntimeError with R's stderr when Rscript fails.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_PRELUDE + "\n" + code)
        path = fh.name
    try:
        proc = subprocess.run(["Rscript", "--vanilla", path], capture_output=True, text=True,
                              timeout=timeout)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise RuntimeError(f"Rscript failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out: dict[str, dict[str, float]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT\t"):
            _, key, field, value = line.split("\t")
            out.setdefault(key, {})[field] = float(value)
    return out


def r_median_fits_code(jobs: Sequence[tuple[str, str | Path, str, Sequence[str]]],
                       warmup: int, repeats: int, max_seconds: float) -> str:
    """R code for ``run_r``: for each job (key, csv, formula, label columns), one REML lmer() fit
    whose REMLcrit and optimizer evaluations (``feval``) are emitted as "crit" and "evals", then
    the median seconds of lmer() (``median_fit_seconds``: the rule of ``median_time``) as
    "seconds". Reading the CSV is not timed."""
    lines = []
    for key, csv, formula, labels in jobs:
        lines.append(f"""
local({{
  d <- read_data({r_string(str(csv))}, {r_strings(labels)})
  f <- as.formula({r_string(formula)})
  fit <- function() lmer(f, data = d, REML = TRUE)
  m <- suppressWarnings(suppressMessages(fit()))
  emit({r_string(key)}, "crit", REMLcrit(m))
  emit({r_string(key)}, "evals", m@optinfo$feval)
  emit({r_string(key)}, "seconds", suppressWarnings(suppressMessages(
    median_fit_seconds(fit, {warmup}, {repeats}, {max_seconds:g}))))
}})""")
    return "\n".join(lines)


def r_string(s: str) -> str:
    """A Python string as an R string literal."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def r_strings(values: Sequence[str]) -> str:
    """Python strings as an R character vector, ``c("a", "b")``."""
    return f"c({', '.join(r_string(v) for v in values)})"


# --------------------------------------------------------------------------------------------
# child processes


def run_child(args: Sequence[str], timeout: float | None = None,
              mem_limit_bytes: int | None = None, python: str | None = None) -> dict[str, Any]:
    """Run ``python <args>`` in a child process; it must print one JSON object on its last line.
    ``python`` is the interpreter (default: this one's).

    Returns {"ok", "timed_out", "wall", "maxrss_bytes", "result", "stderr"}: ``wall`` is the
    child's whole wall time, ``maxrss_bytes`` its peak resident set size (from ``wait4``),
    ``result`` the parsed JSON (or None). ``mem_limit_bytes`` sets RLIMIT_AS in the child so a
    runaway allocation fails there instead of exhausting the machine.
    """
    def limit():
        if mem_limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (mem_limit_bytes, mem_limit_bytes))

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([python or sys.executable, *args], stdout=out, stderr=err,
                                preexec_fn=limit)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if timer:
            timer.cancel()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result = None
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = None
    # ru_maxrss is in KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return {"ok": proc.returncode == 0 and result is not None, "timed_out": timed_out.is_set(),
            "returncode": proc.returncode, "wall": wall, "maxrss_bytes": usage.ru_maxrss * scale,
            "result": result, "stderr": stderr}


def current_rss_bytes() -> int | None:
    """This process's resident set size now (Linux /proc), or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
