"""A fit's parameters as lme4 reports them in ``confint`` and ``bootMer``: the random-effects
terms' standard deviations and correlations (theta's order, see ``covariance.structures``),
``sigma``, then the fixed effects."""

from __future__ import annotations

import numpy as np

__all__ = ["parameter_names", "parameter_values"]


def parameter_names(fit) -> list[str]:
    """lme4's ``oldNames = FALSE`` names (``sd_<column>|<group>``,
    ``cor_<column2>.<column1>|<group>``, ``sigma``, fixed effects), in the order of
    ``parameter_values``."""
    return fit.model.structure.parameters.names() + ["sigma"] + list(fit.x_names)


def parameter_values(fit) -> np.ndarray:
    """The values named by ``parameter_names``; a correlation with a zero sd is NaN (as lme4's
    ``Cv_to_Sv``)."""
    sdcor = fit.model.structure.parameters.sdcor(fit.theta, fit.sigma)
    return np.concatenate([sdcor, [fit.sigma], fit.beta])
