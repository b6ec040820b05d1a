"""Large crossed design: 1,000,000 rows, y ~ x + (1 | g1) + (1 | g2), g1 50,000 levels, g2 2,000.

Project targets: the whole mm.lmer fit in under 60 s and under 4 GB peak memory, and a peak
increase of resident memory during the fit, above the data and imports, under 0.25 GiB (it
was 1.01 GiB before the blocked factor's rank update was compiled and the grouping labels
were coded as pandas stores them).

The data are generated and the model fitted in a child process (``--child``), so its peak
resident set size (``wait4`` ru_maxrss) covers only this work; the child also reports its RSS
just before the fit (data + imports), so the fit's own increment is visible. Wall time is
``time.perf_counter`` around ``mm.lmer`` (one fit after a tiny warm-up fit).

    python benchmarks/bench_large.py [--timeout 540] [--mem-gb 16] [--with-r]

``--with-r`` also times lme4's lmer() on the same data (CSV via a temp file; takes minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as bc  # noqa: E402

N_ROWS, N_G1, N_G2 = 1_000_000, 50_000, 2_000
SD_G1, SD_G2, SD_E = 0.5, 0.3, 1.0
BETA = (1.0, 0.5)
FORMULA = "y ~ x + (1 | g1) + (1 | g2)"
TARGET_SECONDS, TARGET_BYTES, TARGET_FIT_INCREASE = 60.0, 4 * 10**9, 2**30 // 4
SEED = 12345


def make_data(seed: int = SEED):
    """1M rows; g1 and g2 drawn uniformly (every level present), labels as strings."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, N_G1, N_ROWS)
    g1[rng.permutation(N_ROWS)[:N_G1]] = np.arange(N_G1)
    g2 = rng.integers(0, N_G2, N_ROWS)
    g2[rng.permutation(N_ROWS)[:N_G2]] = np.arange(N_G2)
    x = rng.normal(size=N_ROWS)
    y = (BETA[0] + BETA[1] * x + rng.normal(0, SD_G1, N_G1)[g1] + rng.normal(0, SD_G2, N_G2)[g2]
         + rng.normal(0, SD_E, N_ROWS))
    g1_labels = np.array([f"a{i}" for i in range(N_G1)], dtype=object)
    g2_labels = np.array([f"b{i}" for i in range(N_G2)], dtype=object)
    return pd.DataFrame({"y": y, "x": x,
                         "g1": pd.Series(g1_labels[g1], dtype=str),
                         "g2": pd.Series(g2_labels[g2], dtype=str)})


def child(csv_out: str | None) -> None:
    """Generate, fit, print one JSON line with the figures."""
    t0 = time.perf_counter()
    import numpy as np

    import mixedmodels as mm
    bc.load_our_kernels()

    df = make_data()
    gen_seconds = time.perf_counter() - t0
    if csv_out:
        df.to_csv(csv_out, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mm.lmer("Reaction ~ Days + (1 | Subject)", bc.read_pandas(bc.DATA_DIR / "sleepstudy.csv"))
    rss_before = bc.current_rss_bytes()
    peak_before = bc.peak_rss_bytes()
    out = {"gen_seconds": gen_seconds, "rss_before": rss_before, "peak_before": peak_before}
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t1 = time.perf_counter()
            fit = mm.lmer(FORMULA, df, reml=True)
            out["fit_seconds"] = time.perf_counter() - t1
        out["objective"] = float(fit.objective)
        out["evals"] = int(fit.optsummary.evaluations)
        out["fixef"] = [float(v) for v in np.asarray(fit.fixef, dtype=float).ravel()]
        out["theta"] = [float(v) for v in np.asarray(fit.theta, dtype=float).ravel()]
        out["sigma"] = float(fit.sigma)
    except Exception as exc:  # reported, not hidden
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["warnings"] = sorted({str(w.message)[:160] for w in caught})
    out["peak_after"] = bc.peak_rss_bytes()
    print(json.dumps(out))


R_CODE = """
d <- read_data({csv}, c("g1", "g2"))
t0 <- Sys.time()
m <- lmer(y ~ x + (1 | g1) + (1 | g2), data = d, REML = TRUE)
emit("large", "seconds", as.numeric(difftime(Sys.time(), t0, units = "secs")))
emit("large", "crit", REMLcrit(m))
emit("large", "evals", m@optinfo$feval)
"""


def gib(b):
    return "n/a" if b is None else f"{b / 2**30:.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=540.0)
    ap.add_argument("--mem-gb", type=float, default=16.0, help="address-space cap of the child")
    ap.add_argument("--with-r", action="store_true", help="also time lme4 (needs Rscript)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--csv-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.csv_out)
        return 0

    tmp = tempfile.TemporaryDirectory()
    csv = str(Path(tmp.name) / "large.csv") if args.with_r else None
    cmd = [__file__, "--child"] + (["--csv-out", csv] if csv else [])
    res = bc.run_child(cmd, timeout=args.timeout, mem_limit_bytes=int(args.mem_gb * 2**30))
    r = res["result"] or {}

    print("# Large crossed model: 1,000,000 rows\n")
    print(bc.environment_line() + "\n")
    print(f"`{FORMULA}`, REML; g1 {N_G1:,} levels, g2 {N_G2:,} levels, uniform; true sds "
          f"g1={SD_G1}, g2={SD_G2}, residual={SD_E}; beta={BETA}; seed {SEED}.\n")
    fit_s = r.get("fit_seconds")
    peak = res["maxrss_bytes"]
    increase = None if not peak or r.get("rss_before") is None else peak - r["rss_before"]
    rows = [
        ["mm.lmer wall time (s)", bc.fmt_s(fit_s), f"< {TARGET_SECONDS:.0f}",
         "n/a" if fit_s is None else ("yes" if fit_s < TARGET_SECONDS else "**no**")],
        ["peak RSS of child process (GiB)", gib(peak), f"< {TARGET_BYTES / 2**30:.2f} (4 GB)",
         "n/a" if not peak else ("yes" if peak < TARGET_BYTES else "**no**")],
        ["RSS before the fit: data + imports (GiB)", gib(r.get("rss_before")), "", ""],
        ["peak increase during the fit (GiB)", gib(increase),
         f"< {TARGET_FIT_INCREASE / 2**30:.2f}",
         "n/a" if increase is None else ("yes" if increase < TARGET_FIT_INCREASE else "**no**")],
        ["data generation (s)", bc.fmt_s(r.get("gen_seconds")), "", ""],
        ["child process total wall (s)", bc.fmt_s(res["wall"]), "", ""],
    ]
    print(bc.md_table(["measure", "value", "target", "met"], rows))
    if "sigma" in r:
        print(f"\nREML criterion {r['objective']:.6f}; {r['evals']} objective evaluations; "
              f"fixef {', '.join(f'{v:.5f}' for v in r['fixef'])}; theta "
              f"{', '.join(f'{v:.5f}' for v in r['theta'])}; sigma {r['sigma']:.5f} "
              f"(implied sds g1 {r['theta'][0] * r['sigma']:.4f}, "
              f"g2 {r['theta'][1] * r['sigma']:.4f}).")
    if r.get("warnings"):
        print("\nWarnings from the fit: " + "; ".join(r["warnings"]))
    if r.get("error"):
        print(f"\n**mixedmodels error**: {r['error']}")
    if not res["ok"]:
        if res["timed_out"]:
            print(f"\n**The child did not finish within {args.timeout:.0f} s and was killed.**")
        else:
            tail = "\n".join(res["stderr"].strip().splitlines()[-5:])
            print(f"\n**The child failed (exit {res['returncode']}).** stderr tail:\n\n```\n{tail}\n```")

    if args.with_r:
        if not bc.have_rscript():
            print("\nlme4 not run: Rscript not on PATH.")
        elif not res["ok"] or not Path(csv).exists():
            print("\nlme4 not run: the data CSV was not written.")
        else:
            try:
                rr = bc.run_r(R_CODE.format(csv=bc.r_string(csv)), timeout=1800)["large"]
                print(f"\nlme4 lmer(): {rr['seconds']:.2f} s (lmer call only), REMLcrit "
                      f"{rr['crit']:.6f}, {int(rr['evals'])} evaluations; lme4 / mixedmodels = "
                      f"{bc.fmt_ratio(rr['seconds'], fit_s)}; REMLcrit - mixedmodels = "
                      f"{rr['crit'] - r.get('objective', float('nan')):+.2e}.")
            except Exception as exc:
                print(f"\nlme4 run failed: {exc}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
