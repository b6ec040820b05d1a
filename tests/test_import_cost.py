"""`import mixedmodels` loads only what a fit needs: the heavy modules that only some
features use (scipy.stats' 0.3 s, scipy.optimize's 0.1 s, numba, matplotlib) load when those
features first run."""

import subprocess
import sys


def test_import_leaves_the_heavy_optional_modules_unloaded():
    code = ("import sys, mixedmodels; "
            "print(' '.join(m for m in ('scipy.stats', 'scipy.optimize', 'numba', 'matplotlib')"
            " if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert loaded == []
