"""Fits of Dask DataFrames (``partitioned``): every reference model, split into 1, 3 and 7
partitions, gives the numbers of the in-memory fit of the same rows.

Tolerances: the objective to 1e-10 relative; fixed effects, standard errors, variance
components, conditional modes and Satterthwaite's df to 1e-8 (relative, or absolute for
values near 0); profile intervals to 1e-6 (their ends are found by a root search to that
precision).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import dataset_for, load_reference, reference_ids

import mixedmodels as mm

dd = pytest.importorskip("dask.dataframe")

PARTITIONS = (1, 3, 7)
OBJECTIVE_RTOL = 1e-10
RTOL, ATOL = 1e-8, 1e-8
DF_RTOL = 1e-6  # see test_satterthwaite_df_precision


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _partitioned_fit(record: dict, partitions: int, reml: bool = True):
    data = dd.from_pandas(dataset_for(record), npartitions=partitions)
    return _quiet(mm.lmer, record["formula"], data, reml=reml)


def _close(ours, theirs, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float),
                               rtol=rtol, atol=atol)


#: InstEval's three fits (73,421 rows) take a minute: in the slow run
MODEL_IDS = [pytest.param(model_id, marks=pytest.mark.slow) if model_id == "classic/insteval"
             else model_id for model_id in reference_ids()]


@pytest.mark.parametrize("partitions", PARTITIONS)
@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_same_fit_as_in_memory(model_id, partitions, reference_fits):
    record = load_reference(model_id)
    memory = reference_fits[model_id, "REML"][2]
    fit = _partitioned_fit(record, partitions)
    assert fit.nobs == memory.nobs
    assert fit.objective == pytest.approx(memory.objective, rel=OBJECTIVE_RTOL)
    assert list(fit.fixef.index) == list(memory.fixef.index)
    _close(fit.fixef, memory.fixef)
    _close(fit.stderr, memory.stderr)
    _close(fit.varcorr["sdcor"], memory.varcorr["sdcor"])
    for group, modes in memory.ranef.items():
        assert list(fit.ranef[group].index) == list(modes.index)
        _close(fit.ranef[group], modes, atol=1e-8 * max(1.0, float(np.abs(modes).max().max())))
    _close(fit.coef_table()["df"], memory.coef_table()["df"], rtol=DF_RTOL)


@pytest.mark.parametrize("model_id", ["sleepstudy_corr", "penicillin_crossed",
                                      "classic/machines_nested"])
def test_ml_and_profile_intervals(model_id, reference_fits):
    record = load_reference(model_id)
    memory = reference_fits[model_id, "ML"][2]
    fit = _partitioned_fit(record, 3, reml=False)
    assert fit.objective == pytest.approx(memory.objective, rel=OBJECTIVE_RTOL)
    _close(fit.fixef, memory.fixef)
    ours, theirs = _quiet(fit.confint), _quiet(memory.confint)
    _close(ours, theirs, rtol=1e-6, atol=1e-6)
