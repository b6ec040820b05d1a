"""BLAS threads: one thread for systems whose dense blocks are not large.

A multithreaded BLAS wakes and synchronizes its threads on every call. Inside a fit the
optimizer's Python code runs between BLAS calls, the threads go back to sleep, and waking them
costs more than they save unless the blocks are large. On the 2-core reference machine
(``benchmarks/bench_threads.py``), one BLAS thread against OpenBLAS's two: lmerTest's ham model
(largest dense block 81 rows) 9 ms against 200 ms; InstEval (1,128 rows) 2.9 s against 7.5 s;
simulated crossed designs of 100,000 rows, 3,000 x 1,000 levels: 0.85 s either way; 3,000 x
2,000: 3.8 s against 3.0 s; 3,000 x 4,000: 6.8 s against 5.0 s. The blocked Cholesky therefore
runs with one BLAS thread when its largest dense block has fewer than ``SERIAL_BELOW`` rows.

Within that, the Cholesky factorization and inversion of one dense block of at least
``PARALLEL_FROM`` rows get BLAS's own number of threads back (``threads_for_block``): one LAPACK
call of a few milliseconds pays for waking the threads. On the quiet reference machine, two
threads against one: ``dpotri`` 27 -> 14 ms at 1,128 rows (InstEval's lecturers), 8.5 -> 4.1 ms
at 713; ``dpotrf`` 15 -> 11 ms and 3.9 -> 3.2 ms; at 421 rows ``dpotrf`` gains nothing. One
gradient of InstEval's criterion: 80 -> 64 ms.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from functools import lru_cache

SERIAL_BELOW = 1500
PARALLEL_FROM = 600


@lru_cache(maxsize=1)
def _controller_and_threads():
    """threadpoolctl's controller, and BLAS's number of threads when it was made (before any
    limit of ours: both functions below make it before they limit)."""
    import scipy.linalg  # noqa: F401 -- load SciPy's BLAS too, so that both are controlled
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    threads = [entry["num_threads"] for entry in controller.info()
               if entry["user_api"] == "blas"]
    return controller, max(threads, default=1)


def _controller():
    return _controller_and_threads()[0]


class _Serial:
    """BLAS at one thread while any thread of this process is in a serial section.

    BLAS's number of threads belongs to the process, not to a thread: two fits in threads (a
    bootstrap or a profile on a thread pool) that each set it to 1 and restored what they
    found left it at 1 after both. The first thread in restores it when the last one leaves.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.depth = 0
        self.limiter = None

    @contextmanager
    def section(self):
        with self.lock:
            if self.depth == 0:
                self.limiter = _controller().limit(limits=1, user_api="blas")
            self.depth += 1
        try:
            yield
        finally:
            with self.lock:
                self.depth -= 1
                if self.depth == 0:
                    self.limiter.restore_original_limits()
                    self.limiter = None

    @contextmanager
    def parallel(self, threads: int):
        """BLAS's own threads for one call, when this thread is the only one in a serial
        section (others would run their small calls threaded meanwhile)."""
        with self.lock:
            alone = self.depth == 1
            if alone:
                _controller().limit(limits=threads, user_api="blas")
        try:
            yield
        finally:
            if alone:
                with self.lock:
                    if self.depth > 0:
                        _controller().limit(limits=1, user_api="blas")


_SERIAL = _Serial()


def blas_threads_for(largest_dense_block: int):
    """A context manager: BLAS limited to one thread if the largest dense block has fewer than
    ``SERIAL_BELOW`` rows, else left as it is."""
    if largest_dense_block >= SERIAL_BELOW:
        return nullcontext()
    return _SERIAL.section()


def threads_for_block(rows: int):
    """A context manager for one LAPACK call on a dense block of ``rows`` rows: BLAS's own
    number of threads from ``PARALLEL_FROM`` rows (inside ``blas_threads_for``'s limit), else
    left as it is."""
    if rows < PARALLEL_FROM:
        return nullcontext()
    threads = _controller_and_threads()[1]
    if threads < 2:
        return nullcontext()
    return _SERIAL.parallel(threads)


#: a Householder QR of at least this many entries runs with one BLAS thread (``householder_qr``)
SERIAL_QR_FROM = 50_000


def householder_qr(a):
    """LAPACK's ``dgeqrf`` of ``a`` (n x p): the compact QR (R in the upper triangle,
    reflectors below), with one BLAS thread from ``SERIAL_QR_FROM`` entries. Its panels are
    matrix-vector products, too small for threads to pay for their synchronization: on the
    2-core reference machine, 10,000 x 61 took 15 ms on one thread and 210 to 450 ms on
    OpenBLAS's two (more with another process busy); below, the limit's own cost (30 us)
    is not worth paying."""
    from scipy.linalg.lapack import dgeqrf

    if a.size < SERIAL_QR_FROM:
        return dgeqrf(a)[0]
    with _SERIAL.section():
        return dgeqrf(a)[0]
