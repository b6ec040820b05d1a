"""Linear mixed-effects models from lme4-style formulas.

    >>> import mixedmodels as mm
    >>> fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
"""

import gc as _gc

# Loading the package and its dependencies creates a few hundred thousand objects (modules,
# classes, functions) and frees almost none, so the collector's full passes during the import,
# each over every object made so far, find nothing to collect. They are held off while the package
# loads (the oldest generation's threshold raised, then restored); the young generations' passes
# go on, and untrack what they can (tuples and dicts of atoms), which keeps later full passes,
# the one at exit included, short. Measured on fresh processes against pausing the collector
# altogether: about as fast an import, and 0.1 s less to exit.
_thresholds = _gc.get_threshold()
_gc.set_threshold(_thresholds[0], _thresholds[1], 1 << 30)
try:
    from . import covariance as cov
    from . import datasets
    from .core.optimize import OptSettings, OptSummary
    from .errors import ArgumentTypeError, DataError, DataWarning, FitWarning, FormulaError
    from .gauge import gauge_rr
    from .output import plots
    from .output.report import write_report
    from .result import (
        GeneralizedLeastSquares,
        LinearMixedModel,
        LmmFit,
        PartitionedFit,
        PartitionedModel,
        anova,
        gls,
        lmer,
    )
finally:
    _gc.set_threshold(*_thresholds)


__all__ = [
    "lmer", "gls", "anova", "LinearMixedModel", "GeneralizedLeastSquares", "LmmFit",
    "PartitionedModel", "PartitionedFit", "cov", "OptSettings", "OptSummary", "datasets",
    "FormulaError", "DataError", "ArgumentTypeError", "DataWarning", "FitWarning", "gauge_rr",
    "plots",
    "write_report",
]
__version__ = "0.1.0"
