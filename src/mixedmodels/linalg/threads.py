"""BLAS threads: one thread for systems whose dense blocks are not large.

A multithreaded BLAS wakes and synchronizes its threads on every call. Inside a fit the
optimizer's Python code runs between BLAS calls, the threads go back to sleep, and waking them
costs more than they save unless the blocks are large. On the 2-core reference machine
(``benchmarks/bench_threads.py``), one BLAS thread against OpenBLAS's two: lmerTest's ham model
(largest dense block 81 rows) 9 ms against 200 ms; InstEval (1,128 rows) 2.9 s against 7.5 s;
simulated crossed designs of 100,000 rows, 3,000 x 1,000 levels: 0.85 s either way; 3,000 x
2,000: 3.8 s against 3.0 s; 3,000 x 4,000: 6.8 s against 5.0 s. The blocked Cholesky therefore
runs with one BLAS thread when its largest dense block has fewer than ``SERIAL_BELOW`` rows.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

SERIAL_BELOW = 1500


@lru_cache(maxsize=1)
def _controller():
    import scipy.linalg  # noqa: F401 -- load SciPy's BLAS too, so that both are controlled
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def blas_threads_for(largest_dense_block: int):
    """A context manager: BLAS limited to one thread if the largest dense block has fewer than
    ``SERIAL_BELOW`` rows, else left as it is."""
    if largest_dense_block >= SERIAL_BELOW:
        return nullcontext()
    return _controller().limit(limits=1, user_api="blas")
