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
    from .api import anova, gls, lmer
    from .core.optimize import OptSettings, OptSummary
    from .deferred import deferred
    from .errors import ArgumentTypeError, DataError, DataWarning, FitWarning, FormulaError
    from .result import GeneralizedLeastSquares, LinearMixedModel, LmmFit
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

# What a fit does not use loads on first use: the plots, Gauge R&R, the report and the Dask
# facade (``deferred``; the names by PEP 562). ``import mixedmodels`` then costs what a fit
# needs (see ``result``).
plots = deferred("mixedmodels.output.plots")
_gauge = deferred("mixedmodels.gauge")
_report = deferred("mixedmodels.output.report")
_partitioned = deferred("mixedmodels.partitioned_result")
_DEFERRED = {"PartitionedModel": _partitioned, "PartitionedFit": _partitioned,
             "gauge_rr": _gauge, "write_report": _report}


def __getattr__(name: str):
    if name not in _DEFERRED:
        raise AttributeError(f"module 'mixedmodels' has no attribute {name!r}")
    return getattr(_DEFERRED[name], name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
