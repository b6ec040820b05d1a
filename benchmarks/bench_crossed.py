"""Crossed random effects at InstEval scale: y ~ service + (1 | s) + (1 | d) + (1 | dept), REML.

Synthetic data shaped like lme4's InstEval: 73,421 rows, students s (2,972 levels) crossed with
lecturers d (1,128 levels, nested in 14 departments), both sampled with skewed (gamma-weighted)
frequencies; every level occurs at least once. y = 3 - 0.1 * service + b_s + b_d + b_dept + e with
sds (0.3, 0.5, 0.1) and residual sd 1.2. Fixed seed.

Times the whole fit (best of --repeats) for mixedmodels (in process), lme-python and statsmodels
(each in a child process with a timeout and a memory cap: lme-python needs many minutes on this
design, statsmodels' crossed-effects trick is dense) and lme4 (the lmer() call only, timed inside
R after reading the CSV). Defaults keep the whole script under ~10 minutes.

    python benchmarks/bench_crossed.py [--repeats 2] [--lp-timeout 150] [--sm-timeout 240]
                                       [--mem-gb 10] [--no-lp] [--no-sm] [--no-r]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as bc  # noqa: E402

N_ROWS, N_S, N_D, N_DEPT = 73_421, 2_972, 1_128, 14
SD_S, SD_D, SD_DEPT, SD_E = 0.3, 0.5, 0.1, 1.2
FORMULA = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"
LABELS = ("s", "d", "dept")
SEED = 20240521


def make_data(seed: int = SEED):
    """The synthetic InstEval-like data as a pandas DataFrame (labels as strings)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    # skewed frequencies: gamma weights (shape < 1 gives a long right tail, like InstEval)
    w_s = rng.gamma(0.8, size=N_S)
    w_d = rng.gamma(0.4, size=N_D)
    s = np.concatenate([np.arange(N_S), rng.choice(N_S, N_ROWS - N_S, p=w_s / w_s.sum())])
    rng.shuffle(s)
    d = rng.choice(N_D, N_ROWS, p=w_d / w_d.sum())
    d[rng.permutation(N_ROWS)[:N_D]] = np.arange(N_D)  # every lecturer at least once
    # lecturers nested in departments of uneven size
    w_dept = rng.gamma(2.0, size=N_DEPT)
    dept_of_d = rng.choice(N_DEPT, N_D, p=w_dept / w_dept.sum())
    dept_of_d[rng.permutation(N_D)[:N_DEPT]] = np.arange(N_DEPT)
    dept = dept_of_d[d]
    service = (rng.random(N_ROWS) < 0.42).astype(np.int64)
    y = (3.0 - 0.1 * service + rng.normal(0, SD_S, N_S)[s] + rng.normal(0, SD_D, N_D)[d]
         + rng.normal(0, SD_DEPT, N_DEPT)[dept] + rng.normal(0, SD_E, N_ROWS))
    return pd.DataFrame({
        "y": y, "service": service,
        "s": pd.Series([f"s{i}" for i in s], dtype=str),
        "d": pd.Series([f"d{i}" for i in d], dtype=str),
        "dept": pd.Series([f"dept{i}" for i in dept], dtype=str),
    })


# --------------------------------------------------------------------------------------------
# child processes (lme-python and statsmodels can take very long here: run them under a timeout)


def lme_python_child(csv: str, repeats: int) -> None:
    import lme_python as lp
    lp.lmer("Reaction ~ Days + (1 | Subject)", bc.read_polars(bc.DATA_DIR / "sleepstudy.csv"))
    pdf = bc.read_polars(csv, LABELS)
    t, fit = bc.best_time(lambda: lp.lmer(FORMULA, pdf, reml=True), repeats)
    crit = fit.reml_criterion
    it = fit.iterations
    print(json.dumps({"seconds": t, "crit": float(crit() if callable(crit) else crit),
                      "evals": it() if callable(it) else it, "sds": _lp_sds(fit),
                      "converged": bool(fit.converged() if callable(fit.converged)
                                        else fit.converged)}))


def statsmodels_child(csv: str, repeats: int) -> None:
    import statsmodels.formula.api as smf
    df = bc.read_pandas(csv, LABELS)
    df["one"] = 1

    def fit():
        return smf.mixedlm("y ~ service", df, groups="one", re_formula="0",
                           vc_formula={v: f"0 + C({v})" for v in LABELS}).fit(reml=True)

    t, res = bc.best_time(fit, repeats)
    print(json.dumps({"seconds": t, "crit": -2.0 * float(res.llf), "evals": None, "sds": None,
                      "converged": bool(res.converged)}))


CHILDREN = {"lme-python": lme_python_child, "statsmodels": statsmodels_child}


def run_in_child(name: str, csv: str, repeats: int, timeout: float, mem_gb: float, rows, notes,
                 why_slow: str = "") -> None:
    child = bc.run_child([__file__, "--child", name, csv, str(repeats)], timeout=timeout,
                         mem_limit_bytes=int(mem_gb * 2**30))
    if child["ok"]:
        r = child["result"]
        rows[name] = dict(t=r["seconds"], crit=r["crit"], evals=r["evals"],
                          sds=tuple(r["sds"]) if r["sds"] else None)
        if not r["converged"]:
            notes.append(f"{name} reported non-convergence.")
        return
    rows[name] = dict(t=None, crit=None, evals=None, sds=None,
                      t_min=timeout if child["timed_out"] else None)
    if child["timed_out"]:
        why = f"did not finish within {timeout:.0f} s (killed)"
    else:
        last = (child["stderr"].strip().splitlines() or ["?"])[-1]
        why = f"failed (exit {child['returncode']}): {last[:200]}"
    notes.append(f"{name} {why}; peak RSS {child['maxrss_bytes'] / 2**30:.2f} GiB "
                 f"(cap {mem_gb:g} GiB). {why_slow}")


R_CODE = """
d <- read_data({csv}, c("s", "d", "dept"))
best <- Inf
for (i in seq_len({repeats})) {{
  t0 <- Sys.time()
  m <- lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept), data = d, REML = TRUE)
  best <- min(best, as.numeric(difftime(Sys.time(), t0, units = "secs")))
}}
emit("crossed", "seconds", best)
emit("crossed", "crit", REMLcrit(m))
emit("crossed", "evals", m@optinfo$feval)
emit("crossed", "sd_s", attr(VarCorr(m)$s, "stddev"))
emit("crossed", "sd_d", attr(VarCorr(m)$d, "stddev"))
emit("crossed", "sd_dept", attr(VarCorr(m)$dept, "stddev"))
emit("crossed", "sigma", sigma(m))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="best of this many fits")
    ap.add_argument("--sm-timeout", type=float, default=240.0)
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--no-sm", action="store_true")
    ap.add_argument("--lp-timeout", type=float, default=150.0)
    ap.add_argument("--mem-gb", type=float, default=10.0, help="address-space cap of children")
    ap.add_argument("--no-lp", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("NAME", "CSV", "REPEATS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        name, csv, repeats = args.child
        CHILDREN[name](csv, int(repeats))
        return 0

    import mixedmodels as mm
    bc.load_our_kernels()

    df = make_data()
    tmp = tempfile.TemporaryDirectory()
    csv = str(Path(tmp.name) / "insteval_like.csv")
    df.to_csv(csv, index=False)

    print("# Crossed random effects, InstEval-sized (REML)\n")
    print(bc.environment_line() + "\n")
    print(f"`{FORMULA}`: {len(df):,} rows; levels s={df.s.nunique():,}, d={df.d.nunique():,}, "
          f"dept={df.dept.nunique()}; true sds s={SD_S}, d={SD_D}, dept={SD_DEPT}, "
          f"residual={SD_E}; seed {SEED}. Times: best of {args.repeats} whole fits "
          f"(statsmodels: one fit); lme-python and statsmodels run in child processes with "
          f"timeouts ({args.lp_timeout:.0f} s, {args.sm_timeout:.0f} s).\n")

    rows = {}
    notes = []

    # warm the in-process packages on a small model so imports/first-call costs are excluded
    small = bc.read_pandas(bc.DATA_DIR / "sleepstudy.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mm.lmer("Reaction ~ Days + (1 | Subject)", small)

    # ---- mixedmodels
    try:
        t, fit = bc.best_time(lambda: mm.lmer(FORMULA, df, reml=True), args.repeats)
        sds = _mm_sds(fit)
        rows["mixedmodels"] = dict(t=t, crit=float(fit.objective),
                                   evals=fit.optsummary.evaluations, sds=sds)
    except Exception as exc:
        rows["mixedmodels"] = dict(t=None, crit=None, evals=None, sds=None)
        notes.append(f"**mixedmodels error**: {type(exc).__name__}: {exc}")

    # ---- lme-python and statsmodels: child processes under a timeout and a memory cap
    if not args.no_lp:
        run_in_child("lme-python", csv, args.repeats, args.lp_timeout, args.mem_gb, rows, notes)
    if not args.no_sm:
        run_in_child("statsmodels", csv, 1, args.sm_timeout, args.mem_gb, rows, notes,
                     "MixedLM fits crossed factors only as variance components of one all-ones "
                     "group with a dense design (no sparse crossed-effects path): a known "
                     "limitation.")

    # ---- lme4
    if not args.no_r and bc.have_rscript():
        try:
            r = bc.run_r(R_CODE.format(csv=bc.r_string(csv), repeats=args.repeats),
                         timeout=1200)["crossed"]
            rows["lme4"] = dict(t=r["seconds"], crit=r["crit"], evals=int(r["evals"]),
                                sds=(r["sd_s"], r["sd_d"], r["sd_dept"], r["sigma"]))
        except Exception as exc:
            rows["lme4"] = dict(t=None, crit=None, evals=None, sds=None)
            notes.append(f"lme4 run failed: {exc}")
    else:
        notes.append("lme4 not run (Rscript not on PATH or --no-r).")

    ours = rows["mixedmodels"]
    headers = ["package", "fit time (s)", "time / mixedmodels", "REML criterion",
               "crit - mixedmodels", "evaluations", "sd s, d, dept, residual"]
    table = []
    for name, r in rows.items():
        table.append([
            name, f"> {r['t_min']:.0f} (timeout)" if r.get("t_min") else bc.fmt_s(r["t"], 3),
            f"> {r['t_min'] / ours['t']:.0f}" if r.get("t_min") and ours["t"]
            else bc.fmt_ratio(r["t"], ours["t"]),
            "n/a" if r["crit"] is None else f"{r['crit']:.6f}",
            "n/a" if r["crit"] is None or ours["crit"] is None else f"{r['crit'] - ours['crit']:+.2e}",
            "n/a" if r["evals"] is None else r["evals"],
            "" if not r["sds"] else ", ".join(f"{v:.4f}" for v in r["sds"])])
    print(bc.md_table(headers, table))
    if "lme4" in rows and rows["lme4"]["t"] and ours["t"]:
        print(f"\nlme4 / mixedmodels = {rows['lme4']['t'] / ours['t']:.2f}", end="")
    if "lme-python" in rows and rows["lme-python"]["t"] and ours["t"]:
        print(f"; mixedmodels / lme-python = {ours['t'] / rows['lme-python']['t']:.3f}", end="")
    print()
    for n in notes:
        print(f"\n- {n}")
    tmp.cleanup()
    return 0


def _mm_sds(fit):
    """(sd_s, sd_d, sd_dept, sigma) from an LmmFit's varcorr table, if it has the expected shape."""
    try:
        vc = fit.varcorr
        col = "group" if "group" in vc.columns else "grp"
        out = {}
        for grp, sd in zip(vc[col], vc["sdcor"]):
            out.setdefault(grp, float(sd))
        return (out["s"], out["d"], out["dept"], out["Residual"])
    except Exception:
        return None


def _lp_sds(fit):
    """(sd_s, sd_d, sd_dept, sigma) from lme-python's var_corr tuples (grp, var1, var2, var, sd)."""
    try:
        out = {}
        for grp, v1, v2, _var, sd in fit.var_corr:
            if v1 == v2:
                out.setdefault(grp, float(sd))
        return (out["s"], out["d"], out["dept"], out["Residual"])
    except Exception:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
