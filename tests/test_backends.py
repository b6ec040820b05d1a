"""Every objective back-end against the blocked factor, on every reference model.

Each back-end returns the criterion's pieces (log|L_Z|^2, log|R_X|^2, r^2); the REML criterion
and the deviance from them must equal the blocked computation's to 1e-10, at three values of
theta per model: lme4's start, the optimum, and a point away from both. The dense back-ends
are checked up to a larger system than the one they are used for, so that every model with
q + p + 1 <= DENSE_CHECK_LIMIT runs through them.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_ids

from mixedmodels.core.pls import SMALL_SYSTEM

DENSE_CHECK_LIMIT = 1500
SEEN: set[str] = set()


def _thetas(fit) -> list[np.ndarray]:
    structure = fit.model.structure
    lower = structure.parameters.lower()
    rng = np.random.default_rng(11)
    away = np.where(lower == 0, fit.theta * rng.uniform(0.5, 1.5, len(lower)) + 0.05,
                    fit.theta + rng.normal(0, 0.2, len(lower)))
    return [structure.parameters.start(), fit.theta, away]


@pytest.mark.parametrize("model_id", reference_ids())
def test_every_backend_equals_blocked(model_id, reference_fits):
    fit = reference_fits[model_id, "REML"][2]
    system = fit.model.system
    backends = system.backends(small_limit=DENSE_CHECK_LIMIT)
    assert system.backend in backends or system.backend == "blocked"
    for theta in _thetas(fit):
        blocked = system.blocked_pieces(theta)
        for name, backend in backends.items():
            pieces = backend(theta)
            for reml in (True, False):
                expected = system.criterion(blocked, reml)
                assert system.criterion(pieces, reml) == pytest.approx(expected, rel=1e-10), name
            SEEN.add(name)


def test_every_backend_was_checked():
    """Runs after the test above (file order): each back-end met at least one model."""
    assert SEEN >= {"blocked", "dense", "compiled single factor", "compiled dense"}, SEEN


def test_the_fast_path_is_chosen_by_size(reference_fits):
    """The fit uses a dense back-end exactly when the whole system is small."""
    for (_, method), (_, _, fit) in reference_fits.items():
        system = fit.model.system
        size = sum(b.q for b in system.blocks) + system.p + 1
        if len(system.blocks) > 1:
            assert (system.backend in ("dense", "compiled dense")) == (size <= SMALL_SYSTEM)
        assert fit.optsummary.backend == system.backend


def test_from_lower_is_the_symmetric_matrix_of_the_lower_triangle():
    from mixedmodels.linalg.symmetric import from_lower

    rng = np.random.default_rng(4)
    for size in (1, 2, 5):
        a = rng.normal(size=(size, size))
        expected = np.tril(a) + np.tril(a, -1).T
        out = from_lower(a)
        np.testing.assert_array_equal(out, expected)
        assert out is not a and not np.shares_memory(out, a)
