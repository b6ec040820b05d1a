"""BLAS threads (``threads``): one thread for systems of small dense blocks, and BLAS's
own number back for one LAPACK call on a large block."""

from __future__ import annotations

import pytest

from mixedmodels import threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> int:
    return max(entry["num_threads"] for entry in threadpoolctl.threadpool_info()
               if entry["user_api"] == "blas")


def test_small_systems_run_serial_and_large_blocks_get_their_threads_back():
    default = threads._controller_and_threads()[1]
    with threads.blas_threads_for(threads.SERIAL_BELOW - 1):
        assert _blas_threads() == 1
        with threads.threads_for_block(threads.PARALLEL_FROM - 1):
            assert _blas_threads() == 1
        with threads.threads_for_block(threads.PARALLEL_FROM):
            assert _blas_threads() == default
        assert _blas_threads() == 1
    with threads.blas_threads_for(threads.SERIAL_BELOW):
        assert _blas_threads() == default


def test_fits_in_threads_leave_blas_as_they_found_it():
    """The number of BLAS threads belongs to the process: serial sections entered and left by
    several threads at once restore it when the last one leaves (each restoring what it found
    left it at 1)."""
    import threading
    import time

    default = threads._controller_and_threads()[1]
    start = threading.Barrier(4)

    def work(delay):
        start.wait()
        with threads.blas_threads_for(10):
            time.sleep(delay)
            with threads.threads_for_block(threads.PARALLEL_FROM):
                time.sleep(delay / 2)

    workers = [threading.Thread(target=work, args=(0.01 * (k + 1),)) for k in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert threads._SERIAL.depth == 0
    assert _blas_threads() == default
    with threads.blas_threads_for(10):  # and the main thread's limits still work
        assert _blas_threads() == 1


@pytest.mark.parametrize("shape", [(50, 3), (2_000, 30)])  # below and above SERIAL_QR_FROM
def test_householder_qr_is_lapacks_qr_and_leaves_blas_as_it_found_it(shape, monkeypatch):
    import numpy as np

    default = threads._controller_and_threads()[1]
    X = np.random.default_rng(1).normal(size=shape)
    seen = []
    section = threads._SERIAL.section

    def watched():
        seen.append(True)
        return section()

    monkeypatch.setattr(threads._SERIAL, "section", watched)
    R = np.triu(threads.householder_qr(X)[:shape[1]])
    assert bool(seen) == (X.size >= threads.SERIAL_QR_FROM)
    np.testing.assert_allclose(np.abs(R), np.abs(np.linalg.qr(X, mode="r")), atol=1e-10)
    assert _blas_threads() == default
