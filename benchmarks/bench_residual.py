"""Structured residuals at scale: a 20,000-patient x 6-visit trial (120,000 rows less missing
visits), fitted with AR(1) + a random intercept and with UN (symm + ident(visit)), against
nlme when Rscript is present; and the nlme reference models (tests/reference/
nlme_structures.json), each fitted 20 times by us and by nlme in one run.

    python benchmarks/bench_residual.py [--patients 20000] [--nlme-timeout 600] [--no-nlme]

Prints one line per model: our seconds, nlme's (or that it did not finish in the timeout),
the ratio, and our criterion against nlme's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import mixedmodels as mm
from mixedmodels.linalg.compiled import load_kernels

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "ar1 + random intercept": dict(function="lmer", formula="y ~ arm * factor(visit) + (1 | patient)",
                                   correlation="ar1(visit | patient)", variance=None,
                                   nlme="lme(y ~ arm * factor(visit), data = d, random = ~ 1 | patient, "
                                        "correlation = corARMA(p = 1, form = ~ visit | patient))"),
    "UN (symm + ident(visit))": dict(function="gls", formula="y ~ arm * factor(visit)",
                                     correlation="symm(visit | patient)", variance="ident(visit)",
                                     nlme="gls(y ~ arm * factor(visit), data = d, correlation = "
                                          "corSymm(form = ~ visit | patient), weights = "
                                          "varIdent(form = ~ 1 | visit))"),
}


def trial(patients: int, visits: int = 6, missing: float = 0.15, seed: int = 1) -> pd.DataFrame:
    """A two-arm trial: patient intercepts (sd 1), AR(1) residuals (phi 0.6, sd 1), visits
    missing at random with probability ``missing`` (each patient keeps at least one)."""
    rng = np.random.default_rng(seed)
    phi = 0.6
    e = np.empty((patients, visits))
    e[:, 0] = rng.normal(size=patients)
    for t in range(1, visits):
        e[:, t] = phi * e[:, t - 1] + np.sqrt(1 - phi ** 2) * rng.normal(size=patients)
    arm = rng.integers(0, 2, patients)
    y = (10 + 0.5 * arm[:, None] * np.arange(visits) + rng.normal(size=(patients, 1)) + e)
    keep = rng.uniform(size=(patients, visits)) > missing
    keep[:, 0] |= ~keep.any(axis=1)
    p, v = np.nonzero(keep)
    return pd.DataFrame({"patient": [f"P{i:05d}" for i in p], "visit": v + 1,
                         "arm": np.where(arm[p] == 1, "treated", "control"), "y": y[p, v]})


def ours(spec: dict, data: pd.DataFrame) -> tuple[float, float, int]:
    fitter = mm.lmer if spec["function"] == "lmer" else mm.gls
    start = time.perf_counter()
    fit = fitter(spec["formula"], data, correlation=spec["correlation"],
                 variance=spec["variance"])
    return time.perf_counter() - start, fit.objective, fit.optsummary.evaluations


def nlme(spec: dict, path: Path, timeout: float) -> tuple[float | None, float | None]:
    script = (f"suppressMessages(library(nlme)); d <- read.csv('{path}'); "
              "d$visit <- as.integer(d$visit); "
              f"t <- system.time(f <- {spec['nlme']}); "
              "cat(t[['elapsed']], sprintf('%.10f', -2 * logLik(f)))")
    try:
        out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, None
    seconds, criterion = out.stdout.split()[-2:]
    return float(seconds), float(criterion)


REPEATS = 20  # fits per reference model, each side: the mean time of these


def nlme_reference_times(entries: list, run_nlme: bool) -> list[float]:
    """nlme's mean time per fit of each reference model, measured now (the same R calls as
    tests/reference/nlme_structures.R); its recorded median where Rscript is absent."""
    if not run_nlme:
        return [entry["time_s"] for entry in entries]
    lines = ["suppressMessages(library(nlme))"]
    for entry in entries:
        path = ROOT / "tests/reference" / entry["data"]
        lines.append(f"dat <- read.csv('{path}', stringsAsFactors = FALSE); "
                     f"t <- system.time(for (i in 1:{REPEATS}) suppressWarnings("
                     f"{entry['nlme_call']}))[['elapsed']]; cat(t / {REPEATS}, '\\n')")
    out = subprocess.run(["Rscript", "-e", "\n".join(lines)], capture_output=True, text=True,
                         check=True)
    return [float(value) for value in out.stdout.split()]


def reference_models(run_nlme: bool) -> None:
    """Our fit time on each nlme reference model against nlme's, both the mean of
    ``REPEATS`` fits in a warm process."""
    entries = json.loads((ROOT / "tests/reference/nlme_structures.json").read_text())["models"]
    theirs = nlme_reference_times(entries, run_nlme)
    ratios = []
    for entry, nlme_s in zip(entries, theirs):
        spec = entry["ours"]
        data = pd.read_csv(ROOT / "tests/reference" / entry["data"])
        fitter = mm.lmer if spec["function"] == "lmer" else mm.gls

        def fit():
            return fitter(spec["formula"], data, reml=spec["reml"],
                          correlation=spec["correlation"], variance=spec["variance"])

        fit()
        start = time.perf_counter()
        for _ in range(REPEATS):
            fit()
        ours_s = (time.perf_counter() - start) / REPEATS
        ratios.append(nlme_s / ours_s)
        print(f"{entry['name']:34s} ours {ours_s * 1e3:7.1f} ms  nlme {nlme_s * 1e3:7.1f} ms"
              f"  nlme/ours {nlme_s / ours_s:6.1f}")
    print(f"median nlme/ours over {len(ratios)} reference fits: {np.median(ratios):.1f}")


def main() -> None:
    load_kernels()  # a warm process
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--nlme-timeout", type=float, default=600.0)
    parser.add_argument("--no-nlme", action="store_true")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    run_nlme = not args.no_nlme and shutil.which("Rscript") is not None
    if not args.no_reference:
        reference_models(run_nlme)
    data = trial(args.patients)
    print(f"trial: {data.patient.nunique()} patients, {len(data)} rows")
    for spec in MODELS.values():  # warm: nlme's time is that of a loaded R session
        ours(spec, trial(200))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trial.csv"
        data.to_csv(path, index=False)
        for name, spec in MODELS.items():
            seconds, criterion, evaluations = ours(spec, data)
            line = f"{name:26s} ours {seconds:7.2f} s ({evaluations} evaluations)"
            if run_nlme:
                theirs, their_criterion = nlme(spec, path, args.nlme_timeout)
                if theirs is None:
                    line += f"  nlme did not finish in {args.nlme_timeout:.0f} s"
                    line += f" (> {args.nlme_timeout / seconds:.0f}x ours)"
                else:
                    line += (f"  nlme {theirs:8.2f} s  nlme/ours {theirs / seconds:6.1f}"
                             f"  criterion ours - nlme {criterion - their_criterion:+.2e}")
            print(line, flush=True)


if __name__ == "__main__":
    main()
