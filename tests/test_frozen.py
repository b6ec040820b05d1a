"""The fitted model is frozen: its arrays cannot be written, reading an attribute runs no
optimizer-sized computation and warns of nothing, and V refuses to be built when too large."""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.lmm import fitted as fitted_module


@pytest.fixture()
def fresh():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))


@pytest.mark.parametrize("read", [
    lambda f: f.theta, lambda f: f.beta, lambda f: f.fixef.values, lambda f: f.stderr.values,
    lambda f: f.vcov.values, lambda f: f.u, lambda f: f.fitted, lambda f: f.residuals,
])
def test_arrays_are_read_only(fresh, read):
    before = fresh.to_dict()
    with pytest.raises(ValueError, match="read-only"):
        read(fresh)[0] = 12345.0
    assert fresh.to_dict() == before


@pytest.mark.parametrize("edit", [
    lambda f: f.ranef["Subject"].iloc.__setitem__((0, 0), 1000.0),
    lambda f: f.ranef.__setitem__("Subject", None),
    lambda f: f.fixef.iloc.__setitem__(1, 0.0),
    lambda f: f.vcov.iloc.__setitem__((0, 0), 0.0),
    lambda f: f.stderr.iloc.__setitem__(0, 0.0),
    lambda f: f.varcorr.iloc.__setitem__((0, 3), 0.0),
    lambda f: f.condvar.__setitem__("Subject", None),
])
def test_edits_of_what_a_fit_returns_leave_the_fit_as_it_is(fresh, edit):
    """A table (or dict of them) read from a fit is the reader's own: editing it changes
    no later read, nor the predictions and coefficients derived from the fit."""
    data = mm.datasets.load("sleepstudy").head(3)
    before, predicted, coef = fresh.to_dict(), fresh.predict(data), fresh.coef["Subject"]
    ranef, varcorr = fresh.ranef["Subject"], fresh.varcorr
    try:
        with warnings.catch_warnings():  # pandas warns that the edited table is a temporary
            warnings.simplefilter("ignore")
            edit(fresh)
    except ValueError as exc:  # pandas without copy-on-write refuses to write read-only arrays
        assert "read-only" in str(exc)
    assert fresh.to_dict() == before
    np.testing.assert_array_equal(fresh.predict(data), predicted)
    pd.testing.assert_frame_equal(fresh.coef["Subject"], coef)
    pd.testing.assert_frame_equal(fresh.ranef["Subject"], ranef)
    pd.testing.assert_frame_equal(fresh.varcorr, varcorr)
    assert fresh.condvar["Subject"].shape == (18, 2, 2)


@pytest.mark.parametrize("name", ["Z", "Lambda", "G", "R", "V"])
def test_sparse_matrices_are_read_only(fresh, name):
    matrix = getattr(fresh, name)
    for part in (matrix.data, matrix.indices, matrix.indptr):
        with pytest.raises(ValueError, match="read-only"):
            part[0] = part[0]
    assert (matrix @ np.ones(matrix.shape[1])).shape == (matrix.shape[0],)


def test_response_and_conditional_variances_are_read_only(fresh):
    for array in (fresh.y, fresh.condvar["Subject"]):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0.0


def test_fields_cannot_be_reassigned(fresh):
    with pytest.raises(dataclasses.FrozenInstanceError):
        fresh.theta = np.zeros(3)


def test_converged_is_free_and_silent(fresh):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        start = time.perf_counter()
        assert fresh.converged is True
        elapsed = time.perf_counter() - start
    assert elapsed < 0.1 * fresh.optsummary.seconds + 1e-4


def test_convergence_check_on_request(fresh):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check = fresh.check_convergence()
    assert check.converged and check.newton_decrement < 1e-6
    assert fresh.check_convergence() is check  # computed once


def test_v_refuses_above_the_limit(fresh, monkeypatch):
    monkeypatch.setattr(fitted_module, "DENSE_V_LIMIT", 100)
    with pytest.raises(ValueError, match="leverage"):
        fresh.V


def test_v_is_z_g_z_plus_r(fresh):
    Z, G, R = fresh.Z.toarray(), fresh.G.toarray(), fresh.R.toarray()
    np.testing.assert_allclose(fresh.V.toarray(), Z @ G @ Z.T + R, rtol=1e-12)


def test_no_attribute_can_be_assigned(fresh):
    """The facade is frozen as the state is: a derived quantity cannot be overwritten."""
    for name in ("sigma", "beta", "objective", "anything"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(fresh, name, 1.0)
    with pytest.raises(ValueError, match="read-only"):
        fresh.X[0, 0] = 5.0
