"""`import mixedmodels` loads only what a fit needs: the heavy modules that only some
features use (scipy.stats' 0.3 s, scipy.optimize's 0.1 s, scipy.special's 0.07 s, numba,
matplotlib) load when those features first run. A fit loads numba (the compiled kernels)
unless the process asked for the NumPy back-ends, as the command line does
(``prefer_numpy``)."""

import subprocess
import sys

import pytest

import mixedmodels as mm


def _printed(code: str) -> list[str]:
    """The words a fresh Python process running ``code`` prints."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split()


def test_import_leaves_the_heavy_optional_modules_unloaded():
    code = ("import sys, mixedmodels; "
            "print(' '.join(m for m in ('scipy.stats', 'scipy.optimize', 'scipy.special', 'numba',"
            " 'matplotlib') if m in sys.modules))")
    loaded = _printed(code)
    assert loaded == []


def test_import_leaves_the_collector_as_it_found_it():
    """The import holds off the collector's full passes, and restores its thresholds."""
    code = ("import gc; full = []; gc.set_threshold(500, 7, 3); "
            "gc.callbacks.append(lambda phase, info: full.append(info['generation'] == 2)); "
            "import mixedmodels; "
            "print(*gc.get_threshold(), gc.isenabled(), len(full) > 0, any(full))")
    assert _printed(code) == ["500", "7", "3", "True", "True", "False"]


def test_a_fit_loads_the_kernels():
    code = ("import sys, mixedmodels as mm; "
            "fit = mm.lmer('Reaction ~ Days + (Days | Subject)', mm.datasets.load('sleepstudy'));"
            " print('numba' in sys.modules, fit.optsummary.backend)")
    out = _printed(code)
    assert out[0] == "True" and " ".join(out[1:]) == "compiled single factor"


def test_a_process_that_prefers_numpy_fits_without_numba(sleep):
    """The NumPy back-ends reach the optima of the compiled ones (the suite has loaded the
    kernels), with the same optimizer: L-BFGS for 3 parameters, whatever the back-end."""
    code = ("import sys, mixedmodels as mm; "
            "from mixedmodels.linalg.compiled import prefer_numpy; prefer_numpy(); "
            "fits = [mm.lmer(f, mm.datasets.load(d)) for f, d in ("
            "('Reaction ~ Days + (Days | Subject)', 'sleepstudy'), "
            "('y ~ arm * visit + (visit | patient)', 'trial'))]; "
            "fits[0].summary(); "
            "print('numba' in sys.modules, *(f'{f.optsummary.backend}/{f.optsummary.optimizer}/"
            "{f.objective!r}' for f in fits))")
    numba, *fits = _printed(code)
    assert numba == "False"
    trial = mm.lmer("y ~ arm * visit + (visit | patient)", mm.datasets.load("trial"))
    for fit, compiled, numpy_backend in zip(fits, (sleep, trial), ("dense", "blocked")):
        backend, optimizer, objective = fit.split("/")
        assert (backend, optimizer) == (numpy_backend, "LD_LBFGS")
        assert compiled.optsummary.backend == "compiled single factor"
        assert compiled.optsummary.optimizer == "LD_LBFGS"
        assert float(objective) == pytest.approx(compiled.objective, rel=1e-11)


def test_import_leaves_the_garbage_collector_as_it_found_it():
    code = ("import gc; gc.disable(); import mixedmodels; a = gc.isenabled(); "
            "gc.enable(); import importlib; importlib.reload(mixedmodels); "
            "print(a, gc.isenabled())")
    assert _printed(code) == ["False", "True"]
