"""Linear mixed-effects models from lme4-style formulas.

    >>> import mixedmodels as mm
    >>> fit = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
"""

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

__all__ = [
    "lmer", "gls", "anova", "LinearMixedModel", "GeneralizedLeastSquares", "LmmFit",
    "PartitionedModel", "PartitionedFit", "cov", "OptSettings", "OptSummary", "datasets",
    "FormulaError", "DataError", "ArgumentTypeError", "DataWarning", "FitWarning", "gauge_rr",
    "plots",
    "write_report",
]
__version__ = "0.1.0"
