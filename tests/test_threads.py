"""BLAS threads (``linalg.threads``): one thread for systems of small dense blocks, and BLAS's
own number back for one LAPACK call on a large block."""

from __future__ import annotations

import pytest

from mixedmodels.linalg import threads

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
