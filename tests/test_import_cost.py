"""`import mixedmodels` loads only what a fit needs: the heavy modules that only some
features use (scipy.stats' 0.3 s, scipy.optimize's 0.1 s, scipy.special's 0.07 s, numba,
matplotlib) load when those features first run. numba (the compiled kernels) loads at the
first fit of a large system, or once small systems' fits have earned it, unless the process
asked for the NumPy back-ends, as the command line does (``prefer_numpy``)."""

import subprocess
import sys

import pytest

import mixedmodels as mm


def _printed(code: str) -> list[str]:
    """The words a fresh Python process running ``code`` prints."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split()


def test_import_loads_no_heavy_optional_module_and_leaves_the_collector_as_found():
    """No heavy optional module is loaded; the import holds off the collector's full passes
    while young ones go on, and restores its thresholds; a collector the caller disabled
    stays disabled."""
    code = ("import gc, sys, importlib; full = []; gc.set_threshold(500, 7, 3); "
            "gc.callbacks.append(lambda phase, info: full.append(info['generation'] == 2)); "
            "import mixedmodels; gc.callbacks.clear(); "
            "print(','.join(m for m in ('scipy.stats', 'scipy.optimize', 'scipy.special', "
            "'numba', 'matplotlib') if m in sys.modules) or '-', *gc.get_threshold(), "
            "gc.isenabled(), len(full) > 0, any(full)); "
            "gc.disable(); importlib.reload(mixedmodels); print(gc.isenabled()); gc.enable()")
    assert _printed(code) == ["-", "500", "7", "3", "True", "True", "False", "False"]


def test_a_fit_loads_only_its_own_layers():
    """``import mixedmodels`` and a fit load the layers up to lmm only; the layers a fit does
    not use (inference, diagnostics, output, partitioned) and the applications load when a
    method first calls them (docs/architecture.md)."""
    code = ("import sys, mixedmodels as mm; "
            "later = lambda: sorted({m.split('.')[1] for m in sys.modules if m.split('.')[0] "
            "== 'mixedmodels' and m.count('.') and m.split('.')[1] in ('inference', "
            "'diagnostics', 'output', 'partitioned', 'partitioned_result', 'gauge', 'cli')}); "
            "print(','.join(later()) or '-'); "
            "fit = mm.lmer('Reaction ~ Days + (Days | Subject)', mm.datasets.load('sleepstudy')); "
            "print(','.join(later()) or '-'); fit.summary(); print(','.join(later()))")
    assert _printed(code) == ["-", "-", "diagnostics,output"]


@pytest.mark.slow  # a new process (3 s): the default run's budget
def test_small_fits_run_without_numba_until_they_have_earned_the_kernels():
    """A new process's small fits run on the NumPy back-ends, those with a residual structure
    too (the marginal pieces); once their optimizations have taken KERNELS_AFTER_SECONDS,
    the next fit loads the kernels."""
    code = ("import sys, mixedmodels as mm; from mixedmodels.linalg import compiled; "
            "data = mm.datasets.load('sleepstudy'); "
            "gls = mm.gls('Reaction ~ Days', data, correlation='cs(1 | Subject)'); "
            "first = mm.lmer('Reaction ~ Days + (Days | Subject)', data); "
            "before = 'numba' in sys.modules; "
            "compiled.count_numpy_seconds(compiled.KERNELS_AFTER_SECONDS); "
            "later = mm.lmer('Reaction ~ Days + (Days | Subject)', data); "
            "print(before, gls.optsummary.backend.replace(' ', '_'), first.optsummary.backend, "
            "'numba' in sys.modules, later.optsummary.backend.replace(' ', '_'), "
            "first.objective - later.objective)")
    before, gls, first, after, later, difference = _printed(code)
    assert (before, gls, first, after, later) == (
        "False", "marginal_pieces_per_pattern_of_units", "dense", "True",
        "compiled_single_factor")
    assert abs(float(difference)) < 1e-9


def test_a_large_system_loads_the_kernels_at_its_first_fit():
    """q + p + 1 = 202 > SMALL_SYSTEM: the kernels pay at once."""
    code = ("import sys, numpy as np, pandas as pd, mixedmodels as mm; "
            "rng = np.random.default_rng(1); g = np.repeat(np.arange(200), 3); "
            "data = pd.DataFrame({'g': g.astype(str), 'y': rng.normal(size=600) + "
            "rng.normal(size=200)[g]}); fit = mm.lmer('y ~ 1 + (1 | g)', data); "
            "print('numba' in sys.modules, fit.optsummary.backend.replace(' ', '_'))")
    assert _printed(code) == ["True", "compiled_single_factor"]


@pytest.mark.slow  # a new process each (2-2.5 s): the default run's budget
def test_a_batch_fixes_the_back_ends_for_all_its_tasks():
    """A batch of fewer than BATCH_KERNELS refits loads no kernel while it runs, even when
    its fits earn them, and leaves the policy as it was; a batch of BATCH_KERNELS loads them
    first."""
    code = ("import mixedmodels; from mixedmodels.linalg import compiled; "
            "ctx = compiled.batch_policy(compiled.BATCH_KERNELS - 1); batch = ctx.__enter__(); "
            "compiled.count_numpy_seconds(compiled.KERNELS_AFTER_SECONDS); "
            "inside = compiled.single_factor_kernel(small=True) is not None; "
            "ctx.__exit__(None, None, None); after = compiled.kernel_policy(); "
            "ctx = compiled.batch_policy(compiled.BATCH_KERNELS); "
            "print(batch, inside, after, ctx.__enter__()); ctx.__exit__(None, None, None)")
    assert _printed(code) == ["numpy", "False", "earn", "loaded"]


@pytest.mark.slow  # a new process each (2-2.5 s): the default run's budget
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


@pytest.mark.slow  # a new process each (2-2.5 s): the default run's budget
def test_a_batch_on_threads_loads_the_kernels():
    """Threads share one BLAS setting, so only the kernels give every task the same sums."""
    code = ("import mixedmodels; from mixedmodels.linalg import compiled; "
            "ctx = compiled.batch_policy(3, threads=True); print(ctx.__enter__()); "
            "ctx.__exit__(None, None, None)")
    assert _printed(code) == ["loaded"]
