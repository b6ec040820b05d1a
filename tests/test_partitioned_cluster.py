"""Fits of Dask DataFrames on a real cluster: a ``LocalCluster`` with two worker processes,
its ``Client`` the default scheduler. The fit is the in-memory one, also when a worker dies
in the middle of a pass (Dask recomputes its partitions elsewhere)."""

from __future__ import annotations

import os
import warnings

import pytest

import mixedmodels as mm

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, memory_limit="1GiB")
        with distributed.Client(cluster) as client:
            yield client
        cluster.close()


def _transitions(dask_scheduler) -> int:
    """The scheduler's count of task transitions."""
    return dask_scheduler.transition_counter


def _die_once(part, marker, partition_info=None):
    """The partition, after killing the worker process the first time partition 1 runs."""
    if partition_info is not None and partition_info["number"] == 1 \
            and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return part


@pytest.mark.slow
def test_fit_on_worker_processes(client):
    frame = mm.datasets.load("sleepstudy")
    memory = mm.lmer(FORMULA, frame)
    before = client.run_on_scheduler(_transitions)
    fit = mm.lmer(FORMULA, dd.from_pandas(frame, npartitions=4))
    assert client.run_on_scheduler(_transitions) > before  # the passes ran on the cluster
    assert len(client.scheduler_info()["workers"]) == 2
    assert fit.objective == pytest.approx(memory.objective, rel=1e-10)
    residuals = fit.resid().compute()
    assert residuals.to_numpy() == pytest.approx(memory.resid().to_numpy(), abs=1e-7)


@pytest.mark.slow
def test_a_worker_dying_mid_fit(client, tmp_path):
    frame = mm.datasets.load("sleepstudy")
    marker = str(tmp_path / "died")
    data = dd.from_pandas(frame, npartitions=4).map_partitions(_die_once, marker,
                                                               meta=frame.iloc[:0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mm.lmer(FORMULA, data)
    assert os.path.exists(marker)  # a worker did die
    assert fit.objective == pytest.approx(mm.lmer(FORMULA, frame).objective, rel=1e-10)


@pytest.mark.slow
def test_a_residual_structure_on_worker_processes(client):
    """AR(1) within subject and a variance function, on whole subjects per partition: the
    in-memory fit; A(delta) at another delta is summed on the workers (also where Psi is
    not positive definite on them), the normalized residuals whitened there."""
    import numpy as np
    import pandas as pd

    frame = mm.datasets.load("sleepstudy").assign(day=lambda f: f["Days"] + 1)
    formula = "Reaction ~ Days + (1 | Subject)"
    options = {"correlation": "ar1(Days | Subject)", "variance": "power(day)"}
    subjects = frame["Subject"].unique()
    data = dd.from_map(lambda part: frame[frame["Subject"].isin(part)],
                       [subjects[:9], subjects[9:]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        memory = mm.lmer(formula, frame, **options)
        fit = mm.lmer(formula, data, **options)
    assert fit.objective == pytest.approx(memory.objective, rel=1e-10)
    system = fit.model.system
    theta = fit.theta + 0.01
    assert system.at(theta).objective(theta, True) == pytest.approx(
        memory.model.system.at(theta).objective(theta, True), rel=1e-10)
    assert system.at(np.append(fit.theta[:-1], 1e6)) is None  # sds overflow on the workers
    normalized = fit.resid("normalized").compute()
    pd.testing.assert_series_equal(normalized, memory.resid("normalized"), check_names=False,
                                   check_index_type=False, atol=1e-8)
