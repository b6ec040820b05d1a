"""Whole-fit timings on the reference models of tests/reference/*.json (REML).

For every model: median wall time of a whole fit (formula + data frame in, fitted object out) in a
warm process, for mixedmodels (``mm.lmer``), lme-python (``lme_python.lmer``), statsmodels
``MixedLM`` (where expressible) and R's lme4 (``lmer()``, via one generated Rscript run), plus a
check that the REML criteria agree.

    python benchmarks/bench_shared.py [--repeats 30] [--warmup 3] [--no-r]

Inputs: mixedmodels and statsmodels get a pandas DataFrame, lme-python a polars DataFrame (its
native input; passing pandas needs pyarrow), R a data.frame from read.csv — all read from the same
CSV with label columns (Subject, Rail) as strings/factors. Data reading is not timed.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as bc  # noqa: E402

# --------------------------------------------------------------------------------------------
# statsmodels translation of lme4 formulas


def statsmodels_spec(formula: str, columns) -> tuple[dict | None, str]:
    """kwargs for ``smf.mixedlm`` equivalent to an lme4 formula, or (None, reason).

    Handles: one (expr | g) term; (expr || g) with numeric slopes (slopes as variance components
    within g); (1 | a/b) (b as a variance component within a); several (1 | g_i) crossed terms
    (one all-ones group with a variance component per factor — dense, small data only).
    """
    lhs, rhs = formula.split("~", 1)
    bars = re.findall(r"\(([^()|]*)(\|\|?)([^()]*)\)", rhs)
    fixed = re.sub(r"\+?\s*\([^()]*\|[^()]*\)", "", rhs).strip().strip("+").strip() or "1"
    fixed_formula = f"{lhs.strip()} ~ {fixed}"
    if not bars:
        return None, "no random effects"
    if len(bars) == 1:
        expr, bar, group = (s.strip() for s in bars[0])
        if "/" in group:
            outer, inner = (g.strip() for g in group.split("/", 1))
            if expr != "1" or "/" in inner:
                return None, "nested term with slopes"
            return dict(formula=fixed_formula, groups=outer, re_formula="1",
                        vc_formula={inner: f"0 + C({inner})"}), f"{inner} as vc within {outer}"
        if ":" in group:
            return None, "interaction grouping factor"
        if bar == "|":
            re_formula = "1" if expr == "1" else f"~{expr}"
            return dict(formula=fixed_formula, groups=group, re_formula=re_formula), ""
        # (expr || g): independent intercept and slopes
        variables = [v.strip() for v in expr.split("+") if v.strip() not in ("1", "")]
        intercept = not any(v.strip() in ("0", "-1") for v in expr.split("+"))
        variables = [v for v in variables if v not in ("0", "-1")]
        return dict(formula=fixed_formula, groups=group, re_formula="1" if intercept else "0",
                    vc_formula={v: f"0 + {v}" for v in variables}), "slopes as vc (||)"
    # several terms: crossed intercepts only
    groups = []
    for expr, bar, group in bars:
        if expr.strip() != "1" or "/" in group or ":" in group:
            return None, "several terms beyond crossed intercepts"
        groups.append(group.strip())
    return dict(formula=fixed_formula, groups="_one_", re_formula="0",
                vc_formula={g: f"0 + C({g})" for g in groups}), "crossed: vc in one group"


def statsmodels_fit(spec: dict, df):
    import statsmodels.formula.api as smf
    kw = dict(spec)
    formula = kw.pop("formula")
    return smf.mixedlm(formula, df, **kw).fit(reml=True)


# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=8.0,
                    help="stop repeating a (package, model) pair after this much timed work")
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args(argv)

    import mixedmodels as mm
    bc.load_our_kernels()
    try:
        import lme_python as lp
    except ImportError:
        lp = None
    try:
        import statsmodels  # noqa: F401
        have_sm = True
    except ImportError:
        have_sm = False

    models = bc.ref_models()
    print("# Shared reference models: whole-fit time (REML)\n")
    print(bc.environment_line() + "\n")
    print(f"Median of up to {args.repeats} timed fits after {args.warmup} warm-up fits "
          f"(fewer when a model exceeds {args.max_seconds:g} s of timed work); times in ms.\n")

    rows_r: dict = {}
    r_note = ""
    if not args.no_r and bc.have_rscript():
        try:
            jobs = [(m["id"], bc.DATA_DIR / m["data"], m["formula"], bc.LABEL_COLUMNS)
                    for m in models]
            rows_r = bc.run_r(bc.r_median_fits_code(jobs, args.warmup, args.repeats,
                                                    args.max_seconds), timeout=1800)
        except Exception as exc:  # report and carry on without R
            r_note = f"lme4 run failed: {exc}"
    else:
        r_note = "lme4 not run (Rscript not on PATH or --no-r)."

    res = []
    for m in models:
        csv = bc.DATA_DIR / m["data"]
        formula = m["formula"]
        row = {"id": m["id"], "n": m["nobs"], "ref": m["REML"]["criterion"], "notes": []}

        df = bc.read_pandas(csv)
        row["mm_t"] = row["mm_crit"] = row["mm_evals"] = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = mm.lmer(formula, df, reml=True)
            row["mm_crit"] = float(fit.objective)
            row["mm_evals"] = fit.optsummary.evaluations
            row["mm_t"], _ = bc.median_time(lambda: mm.lmer(formula, df, reml=True), args.warmup,
                                            args.repeats, args.max_seconds)
        except Exception as exc:
            row["notes"].append(f"**mixedmodels error**: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:200]}")

        row["lp_t"] = row["lp_crit"] = None
        if lp is not None:
            pdf = bc.read_polars(csv)
            try:
                lfit = lp.lmer(formula, pdf, reml=True)
                crit = lfit.reml_criterion
                row["lp_crit"] = float(crit() if callable(crit) else crit)
                row["lp_t"], _ = bc.median_time(lambda: lp.lmer(formula, pdf, reml=True),
                                               args.warmup, args.repeats, args.max_seconds)
            except Exception as exc:
                row["notes"].append(f"lme-python error: {type(exc).__name__}: {exc}")

        row["sm_t"] = row["sm_crit"] = None
        row["sm_how"] = "not installed"
        if have_sm:
            spec, how = statsmodels_spec(formula, df.columns)
            row["sm_how"] = how
            if spec is None:
                row["sm_how"] = f"n/a ({how})"
            else:
                sdf = df.copy()
                sdf["_one_"] = 1
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        sfit = statsmodels_fit(spec, sdf)
                    row["sm_crit"] = -2.0 * float(sfit.llf)
                    if not sfit.converged:
                        row["sm_how"] = (how + "; " if how else "") + "NOT converged"
                    row["sm_t"], _ = bc.median_time(lambda: statsmodels_fit(spec, sdf),
                                                   args.warmup, args.repeats, args.max_seconds)
                except Exception as exc:
                    row["sm_how"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:60]}"

        r = rows_r.get(m["id"], {})
        row["r_t"], row["r_crit"], row["r_evals"] = r.get("seconds"), r.get("crit"), r.get("evals")
        res.append(row)

    # ---- timing table
    headers = ["model", "n", "mixedmodels", "lme-python", "statsmodels", "lme4",
               "lme4/mm", "mm/lme-python", "sm/mm", "evals mm", "evals lme4"]
    rows = []
    for r in res:
        rows.append([r["id"], r["n"], bc.fmt_ms(r["mm_t"]), bc.fmt_ms(r["lp_t"]),
                     bc.fmt_ms(r["sm_t"]), bc.fmt_ms(r["r_t"]),
                     bc.fmt_ratio(r["r_t"], r["mm_t"]), bc.fmt_ratio(r["mm_t"], r["lp_t"]),
                     bc.fmt_ratio(r["sm_t"], r["mm_t"]), "n/a" if r["mm_evals"] is None else r["mm_evals"],
                     "n/a" if r["r_evals"] is None else int(r["r_evals"])])
    med = lambda key_num, key_den: bc.median_or_none(  # noqa: E731
        [bc.ratio(r[key_num], r[key_den]) for r in res])
    rows.append(["**median over models**", "", bc.fmt_ms(bc.median_or_none([r["mm_t"] for r in res])),
                 bc.fmt_ms(bc.median_or_none([r["lp_t"] for r in res])),
                 bc.fmt_ms(bc.median_or_none([r["sm_t"] for r in res])),
                 bc.fmt_ms(bc.median_or_none([r["r_t"] for r in res])),
                 bc.fmt_ratio(med("r_t", "mm_t"), 1.0), bc.fmt_ratio(med("mm_t", "lp_t"), 1.0),
                 bc.fmt_ratio(med("sm_t", "mm_t"), 1.0), "", ""])
    print("## Whole-fit median time (ms)\n")
    print(bc.md_table(headers, rows))
    print("\nlme4/mm > 1: mixedmodels faster than lme4; mm/lme-python > 1: mixedmodels slower "
          "than lme-python; sm/mm > 1: statsmodels slower than mixedmodels. The median row's "
          "ratios are medians of the per-model ratios.")
    if r_note:
        print("\n" + r_note)

    # ---- objective table
    print("\n## REML criterion agreement\n")
    headers = ["model", "mm REML crit", "|mm - ref|", "|mm - lme4|", "|mm - lme-python|",
               "|mm - statsmodels|", "statsmodels spec"]
    rows = []
    for r in res:
        rows.append([r["id"], "error" if r["mm_crit"] is None else f"{r['mm_crit']:.6f}", bc.fmt_diff(r["mm_crit"], r["ref"]),
                     bc.fmt_diff(r["mm_crit"], r["r_crit"]), bc.fmt_diff(r["mm_crit"], r["lp_crit"]),
                     bc.fmt_diff(r["mm_crit"], r["sm_crit"]), r["sm_how"] or "direct"])
    print(bc.md_table(headers, rows))
    print("\nref = tests/reference criterion (best of lme4 default and tight-tolerance fits); "
          "lme4 = REMLcrit of the default lmer() fit timed here; statsmodels criterion = "
          "-2 * REML llf. A positive mm - ref above ~1e-6 would mean mixedmodels stopped short.")
    worse = [r for r in res if r["mm_crit"] is not None and r["mm_crit"] - r["ref"] > 1e-6]
    if worse:
        print("\n**mixedmodels above the reference optimum:** "
              + ", ".join(f"{r['id']} (+{r['mm_crit'] - r['ref']:.2e})" for r in worse))
    for r in res:
        for note in r["notes"]:
            print(f"\n- {r['id']}: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
