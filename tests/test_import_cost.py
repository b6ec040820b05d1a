"""`import mixedmodels` loads only what a fit needs: the heavy modules that only some
features use (scipy.stats' 0.3 s, scipy.optimize's 0.1 s, numba, matplotlib) load when those
features first run. A fit loads numba only once ``load_kernels`` has asked for it (importing
it and compiling the kernels costs more than the fits of a short process save)."""

import subprocess
import sys

import pytest


def test_import_leaves_the_heavy_optional_modules_unloaded():
    code = ("import sys, mixedmodels; "
            "print(' '.join(m for m in ('scipy.stats', 'scipy.optimize', 'numba', 'matplotlib')"
            " if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert loaded == []


def test_a_fresh_process_fits_without_numba(sleep):
    """The NumPy back-end reaches the optimum of the compiled one (the suite's ``sleep``)."""
    code = ("import sys, mixedmodels as mm; "
            "fit = mm.lmer('Reaction ~ Days + (Days | Subject)', mm.datasets.load('sleepstudy'));"
            " fit.summary(); "
            "print(fit.optsummary.backend, 'numba' in sys.modules, repr(fit.objective))")
    backend, numba, objective = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                               text=True, check=True).stdout.split()
    assert (backend, numba) == ("dense", "False")
    assert sleep.optsummary.backend == "compiled single factor"
    assert float(objective) == pytest.approx(sleep.objective, rel=1e-12)
