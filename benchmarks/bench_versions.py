"""Two versions of mixedmodels side by side: whole-fit times of the same models in one run.

Each version is a source tree (its ``src`` folder), imported in its own child processes. The
children alternate (A, B, A, B, ...) so that drifts of this machine's speed hit both versions
alike, and each reports the median of its repeats per model; the table gives the median over
rounds and the ratio candidate / baseline.

Models: the shared reference models of tests/reference/*.json (REML, as bench_shared.py) and
the InstEval-sized crossed design of bench_crossed.py.

    git worktree add /tmp/baseline <commit>
    python benchmarks/bench_versions.py --baseline /tmp/baseline/src [--candidate src]
                                        [--rounds 3] [--repeats 20] [--crossed-repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as bc  # noqa: E402

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time, warnings
sys.path.insert(0, {src!r})
sys.path.insert(0, {bench!r})
import _common as bc
import mixedmodels as mm
try:  # a warm process: the kernels loaded (earlier revisions load them at their first fit)
    from mixedmodels.linalg.compiled import load_kernels
    load_kernels()
except ImportError:
    pass
warnings.simplefilter("ignore")
out = {{}}
for name, formula, csv, repeats in {jobs!r}:
    data = bc.read_pandas(csv)
    fit = lambda: mm.lmer(formula, data)
    fit()  # warm: compiled kernels, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - start)
    out[name] = [sorted(times)[len(times) // 2], float(result.objective)]
print(json.dumps(out))
"""


def _jobs(repeats: int, crossed_repeats: int, crossed_csv: str) -> list:
    jobs = [(m["id"], m["formula"], str(bc.DATA_DIR / m["data"]), repeats)
            for m in bc.ref_models()]
    jobs.append(("crossed (73,421 rows)", "y ~ service + (1 | s) + (1 | d) + (1 | dept)",
                 crossed_csv, crossed_repeats))
    return jobs


def _run(src: str, jobs: list) -> dict:
    code = CHILD.format(src=str(Path(src).resolve()), bench=str(HERE), jobs=jobs)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the src folder of the old version")
    parser.add_argument("--candidate", default=str(HERE.parent / "src"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--crossed-repeats", type=int, default=2)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    from bench_crossed import make_data

    with tempfile.TemporaryDirectory() as tmp:
        crossed_csv = str(Path(tmp) / "crossed.csv")
        make_data().to_csv(crossed_csv, index=False)
        jobs = _jobs(args.repeats, args.crossed_repeats, crossed_csv)
        results: dict[str, list] = {"baseline": [], "candidate": []}
        for _ in range(args.rounds):
            for label in ("baseline", "candidate"):
                results[label].append(_run(getattr(args, label), jobs))

    print(bc.environment_line())
    rows, ratios = [], []
    for name, *_ in jobs:
        old = statistics.median(r[name][0] for r in results["baseline"])
        new = statistics.median(r[name][0] for r in results["candidate"])
        same = abs(results["baseline"][0][name][1] - results["candidate"][0][name][1])
        ratios.append(new / old)
        rows.append([name, bc.fmt_ms(old), bc.fmt_ms(new), f"{new / old:.3f}", f"{same:.1e}"])
    print(bc.md_table(["model", "baseline", "candidate", "candidate / baseline",
                       "|criterion difference|"], rows))
    shared = ratios[:-1]
    print(f"\nshared models: median ratio {statistics.median(shared):.3f}; "
          f"crossed: {ratios[-1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
