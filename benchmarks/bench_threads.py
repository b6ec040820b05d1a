"""BLAS threads on small dense blocks: the measurement behind ``mixedmodels.threads``.

1. The dense kernels of the blocked Cholesky (Cholesky, triangular solve, product) on n x n
   blocks, with one BLAS thread and with the default number, to find where threads start to pay.
2. Whole fits of the classic reference models (tests/reference/classic) with the package's
   policy (one thread below ``SERIAL_BELOW``) and with BLAS left alone.

    python benchmarks/bench_threads.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.linalg
from threadpoolctl import ThreadpoolController

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import mixedmodels as mm  # noqa: E402
from mixedmodels import threads  # noqa: E402


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


def fits(repeats: int) -> None:
    from conftest import dataset_for, load_reference, reference_ids

    print("\n| model | largest dense block | policy (ms) | BLAS default (ms) |\n|---|---|---|---|")
    for model_id in reference_ids():
        if not model_id.startswith("classic/") or model_id.endswith("insteval"):
            continue
        record = load_reference(model_id)
        data = dataset_for(record)

        def fit():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return mm.lmer(record["formula"], data)

        largest = fit().model.system.largest_dense_block
        policy = _median_ms(fit, repeats)
        saved = threads.SERIAL_BELOW
        threads.SERIAL_BELOW = 0
        try:
            default = _median_ms(fit, repeats)
        finally:
            threads.SERIAL_BELOW = saved
        print(f"| {model_id} | {largest} | {policy:.2f} | {default:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    kernels(args.repeats)
    fits(args.repeats)


if __name__ == "__main__":
    main()
