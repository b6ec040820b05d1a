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
    from .result import (
        GeneralizedLeastSquares,
        LinearMixedModel,
        LmmFit,
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

# What a fit does not use loads on first use (PEP 562): the Dask facade, Gauge R&R, the plots
# and the report. ``import mixedmodels`` then costs what a fit needs (see ``result``).
_DEFERRED = {
    "PartitionedModel": ("partitioned_result", "PartitionedModel"),
    "PartitionedFit": ("partitioned_result", "PartitionedFit"),
    "gauge_rr": ("gauge", "gauge_rr"),
    "plots": ("output.plots", None),
    "write_report": ("output.report", "write_report"),
}


def __getattr__(name: str):
    if name not in _DEFERRED:
        raise AttributeError(f"module 'mixedmodels' has no attribute {name!r}")
    from importlib import import_module

    module, attribute = _DEFERRED[name]
    value = import_module(f"{__name__}.{module}")
    value = value if attribute is None else getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
