"""BLAS threads on small dense blocks: the measurement behind ``mixedmodels.threads``.

1. The dense kernels of the blocked Cholesky (Cholesky, triangular solve, product) on n x n
   blocks, with one BLAS thread and with the default number, called in a tight loop.
2. Whole fits of the classic reference models (tests/reference/classic, InstEval included)
   and of simulated crossed designs (100,000 rows, 3,000 levels crossed with 1,000 to 4,000),
   with one BLAS thread and with the default number. Inside a fit the optimizer's Python code
   runs between BLAS calls, so the threads must be woken for each call: this, not the tight
   loop, is what decides ``SERIAL_BELOW``.

    python benchmarks/bench_threads.py [--repeats 7] [--no-crossed]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.linalg
from threadpoolctl import ThreadpoolController

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import mixedmodels as mm  # noqa: E402
from mixedmodels import threads  # noqa: E402
from mixedmodels.linalg.compiled import load_kernels  # noqa: E402


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def kernels(repeats: int) -> None:
    controller = ThreadpoolController()
    default = max(info["num_threads"] for info in controller.info())
    rng = np.random.default_rng(0)
    print(f"| n | Cholesky 1 / {default} threads (ms) | solve 1 / {default} | product 1 / "
          f"{default} |\n|---|---|---|---|")
    for n in (50, 100, 200, 400, 800, 1600):
        a = rng.normal(size=(n, n))
        s = a @ a.T + n * np.eye(n)
        lower = np.linalg.cholesky(s)
        b = rng.normal(size=(n, 3 * n))
        cells = []
        for kernel in (lambda: scipy.linalg.cholesky(s, lower=True, check_finite=False),
                       lambda: scipy.linalg.solve_triangular(lower, b, lower=True,
                                                             check_finite=False),
                       lambda: b.T @ b[:, :n]):
            with controller.limit(limits=1, user_api="blas"):
                one = _median_ms(kernel, repeats)
            cells.append(f"{one:.3f} / {_median_ms(kernel, repeats):.3f}")
        print(f"| {n} | " + " | ".join(cells) + " |")


def _one_and_default(fit, repeats: int) -> tuple[float, float]:
    """Median ms of fit() with BLAS limited to one thread, and with BLAS left alone."""
    saved = threads.SERIAL_BELOW
    try:
        threads.SERIAL_BELOW = 10 ** 9
        one = _median_ms(fit, repeats)
        threads.SERIAL_BELOW = 0
        default = _median_ms(fit, repeats)
    finally:
        threads.SERIAL_BELOW = saved
    return one, default


def _quiet_fit(formula, data):
    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mm.lmer(formula, data)
    return fit


def fits(repeats: int) -> None:
    from conftest import dataset_for, load_reference, reference_ids

    print("\n| model | largest dense block | one thread (ms) | BLAS default (ms) |\n"
          "|---|---|---|---|")
    for model_id in reference_ids():
        if not model_id.startswith("classic/"):
            continue
        record = load_reference(model_id)
        fit = _quiet_fit(record["formula"], dataset_for(record))
        largest = fit().model.system.largest_dense_block
        one, default = _one_and_default(fit, 3 if model_id.endswith("insteval") else repeats)
        print(f"| {model_id} | {largest} | {one:.2f} | {default:.2f} |")


def crossed() -> None:
    rng = np.random.default_rng(1)
    print("\n| rows | levels of g x h | one thread (s) | BLAS default (s) |\n|---|---|---|---|")
    n, a = 100_000, 3000
    for b in (1000, 2000, 4000):
        g, h = rng.integers(0, a, n), rng.integers(0, b, n)
        y = rng.normal(size=a)[g] + rng.normal(size=b)[h] + rng.normal(size=n)
        data = pd.DataFrame({"y": y, "x": rng.normal(size=n), "g": g.astype(str),
                             "h": h.astype(str)})
        one, default = _one_and_default(_quiet_fit("y ~ x + (1 | g) + (1 | h)", data), 1)
        print(f"| {n} | {a} x {b} | {one / 1e3:.2f} | {default / 1e3:.2f} |")


def main() -> None:
    load_kernels()  # a warm process
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-crossed", action="store_true", help="skip the simulated designs")
    args = parser.parse_args()
    kernels(args.repeats)
    fits(args.repeats)
    if not args.no_crossed:
        crossed()


if __name__ == "__main__":
    main()
