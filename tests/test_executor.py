"""run_tasks: serially, on an executor, on local processes; the bootstrap, group deletion and
the profile give on an executor what they give serially."""

from __future__ import annotations

import pickle
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.parallel import executor as module
from mixedmodels.parallel.executor import run_tasks


class _Bar:
    """A stand-in progress bar that records its total and its steps."""

    def __init__(self, total):
        self.total, self.steps, self.closed = total, 0, False

    def update(self, step):
        self.steps += step

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    made = []

    def progress_bar(total, enabled, description):
        made.append(_Bar(total))
        return made[-1]

    monkeypatch.setattr(module, "progress_bar", progress_bar)
    return made


def test_serial_without_pickling(bars):
    payload = {"offset": 10, "unpicklable": lambda: None}
    assert run_tasks(lambda p, item: p["offset"] + item, payload, range(5)) == list(range(10, 15))
    assert [(bar.total, bar.steps, bar.closed) for bar in bars] == [(5, 5, True)]


def test_results_in_item_order_whatever_the_completion_order(bars):
    def slower_first(payload, item):
        time.sleep(0.02 * (6 - item))
        return payload * item

    finished = []
    with ThreadPoolExecutor(6) as pool:
        original = pool.submit

        def submit(function, *args):
            future = original(function, *args)
            future.add_done_callback(lambda _: finished.append(args[-1][0]))
            return future

        pool.submit = submit
        assert run_tasks(slower_first, 3, range(6), executor=pool) == [0, 3, 6, 9, 12, 15]
    assert finished != sorted(finished)  # the chunks (one item each) ended out of order
    assert [(bar.total, bar.steps, bar.closed) for bar in bars] == [(6, 6, True)]


def test_chunks_and_local_processes():
    assert module._chunk_size(1000, None) == 50 and module._chunk_size(100, None) == 5
    assert module._chunk_size(10, 4) == 1 and module._chunk_size(100, 2) == 13
    assert [len(chunk) for chunk in module._chunks(7, 3)] == [3, 3, 1]
    # pow(payload, item) on two processes, in chunks of 4
    assert run_tasks(pow, 2, range(10), n_jobs=2, chunk_size=4) == [2 ** i for i in range(10)]


def test_payload_that_cannot_be_pickled_is_made_portable():
    payload = (5, lambda: None)
    with ThreadPoolExecutor(2) as pool:
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
            run_tasks(lambda p, item: p[0] + item, payload, range(3), executor=pool)
        assert run_tasks(lambda p, item: p[0] + item, payload, range(3), executor=pool,
                         portable=lambda p: p[:1]) == [5, 6, 7]


@pytest.mark.slow
def test_executor_results_equal_serial(wide_sleepstudy):
    """On data with 200 columns the model does not use (the design does not keep them)."""
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", wide_sleepstudy[1], reml=False)
    serial = (fit.bootstrap(8, seed=2, progress=False),
              fit.influence_groups("Subject", progress=False), fit.confint("profile"))
    with ThreadPoolExecutor(2) as pool:
        boot = fit.bootstrap(8, seed=2, progress=False, executor=pool)
        influence = fit.influence_groups("Subject", progress=False, executor=pool)
        profile = fit.confint("profile", executor=pool)
    pd.testing.assert_frame_equal(boot.replicates, serial[0].replicates, check_exact=True)
    pd.testing.assert_frame_equal(influence, serial[1], check_exact=True)
    pd.testing.assert_frame_equal(profile, serial[2], check_exact=True)
