"""BLAS threads: one thread for systems whose dense blocks are small.

A multithreaded BLAS wakes and synchronizes its threads on every call. Between calls the
optimizer runs Python code, the threads go back to sleep, and on small matrices waking them
costs far more than the work: on the 2-core reference machine, a fit of lmerTest's ham model
(largest dense block 81 x 81) took 244 ms with OpenBLAS's two threads and 9 ms with one. On
blocks of 800 rows and more, two threads are faster (``benchmarks/bench_threads.py``). The
blocked Cholesky therefore runs with one BLAS thread when its largest dense block has fewer
than ``SERIAL_BELOW`` rows.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

SERIAL_BELOW = 600


@lru_cache(maxsize=1)
def _controller():
    import scipy.linalg  # noqa: F401 -- load SciPy's BLAS too, so that both are controlled
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def blas_threads_for(largest_dense_block: int):
    """A context manager: BLAS limited to one thread if the largest dense block is small,
    else left as it is."""
    if largest_dense_block >= SERIAL_BELOW:
        return nullcontext()
    return _controller().limit(limits=1, user_api="blas")
