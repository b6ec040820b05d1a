"""The fitted model is frozen: its arrays cannot be written, reading an attribute runs no
optimizer-sized computation and warns of nothing, and V refuses to be built when too large."""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
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
