"""The small models' whole fits of this work tree against another revision, in one process.

This machine's speed drifts by 20 to 40% over minutes, so two runs of the same code, minutes
apart, differ by more than most changes do. Here the other revision's package (``git archive``
of its ``src/mixedmodels``, imported under another name: the package imports itself only
relatively) and this work tree's are loaded side by side, and their fits of each model
alternate, so that both see the same machine. Per model: the median of ``--repeats`` fits of
each, after 3 warm-up fits; last, the median of the per-model ratios.

    python benchmarks/bench_ab.py REVISION [--repeats 20] [--only dyestuff,oats] [--functions]

e.g. ``python benchmarks/bench_ab.py HEAD~3``. Ratios below 1: this work tree is faster.
"""

from __future__ import annotations

import argparse
import importlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as bc  # noqa: E402
import bench_speed as bs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BASE_NAME = "mixedmodels_base"


def import_revision(revision: str, folder: Path):
    """The package of ``revision`` (its ``src/mixedmodels``), imported as ``BASE_NAME``."""
    archive = subprocess.run(["git", "archive", revision, "src/mixedmodels"], cwd=ROOT,
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "src" / "mixedmodels").rename(folder / BASE_NAME)
    sys.path.insert(0, str(folder))
    return importlib.import_module(BASE_NAME)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("revision", help="the git revision to compare with (e.g. HEAD~3)")
    ap.add_argument("--repeats", type=int, default=20, help="timed fits per model and package")
    ap.add_argument("--only", help="comma-separated model ids (default: the 17 small models)")
    ap.add_argument("--functions", action="store_true",
                    help="also the functions group (bench_speed's FUNCTION_FORMULAS)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    import mixedmodels as ours
    bc.load_our_kernels()

    with tempfile.TemporaryDirectory() as tmp:
        theirs = import_revision(args.revision, Path(tmp))
        kernels = getattr(importlib.import_module(f"{BASE_NAME}.linalg.compiled"),
                          "load_kernels", None)
        if kernels is not None:  # else a revision before the kernels loaded when they pay
            kernels()  # both packages fit on their compiled kernels, as in a warm process
        only = set(args.only.split(",")) if args.only else None
        candidates = bs.small_models() + (bs.function_models() if args.functions else [])
        models = [m for m in candidates if only is None or m.id in only]
        print(f"| model | {args.revision} (ms) | work tree (ms) | work tree / {args.revision} |")
        print("|---|---:|---:|---:|")
        ratios, base_times, new_times = [], [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for model in models:
                data = bc.read_pandas(model.csv, model.labels)
                for _ in range(3):
                    theirs.lmer(model.formula, data)
                    ours.lmer(model.formula, data)
                times = {id(theirs): [], id(ours): []}
                for r in range(args.repeats):
                    for package in (theirs, ours) if r % 2 else (ours, theirs):
                        start = time.perf_counter()
                        package.lmer(model.formula, data)
                        times[id(package)].append(time.perf_counter() - start)
                base = statistics.median(times[id(theirs)]) * 1e3
                new = statistics.median(times[id(ours)]) * 1e3
                ratios.append(new / base)
                base_times.append(base)
                new_times.append(new)
                print(f"| {model.id} | {base:.3f} | {new:.3f} | {new / base:.3f} |", flush=True)
        print(f"| **median** | {statistics.median(base_times):.3f} | "
              f"{statistics.median(new_times):.3f} | {statistics.median(ratios):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
