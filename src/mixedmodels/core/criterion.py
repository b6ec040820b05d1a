"""The ML and REML criteria from the pieces of the factor L(theta): the one place they are written.

Every objective back-end (the blocked factor, the compiled loops, the dense path) returns the
same ``Pieces``; ``criterion`` turns them into -2 log-likelihood or the REML criterion
(Bates et al. 2015, "Fitting Linear Mixed-Effects Models Using lme4", eqs. 34 and 41):

    ML:   log|L_Z|^2 + n log(2 pi sigma^2) + r^2 / sigma^2 + log|Psi|,
    REML: log|L_Z|^2 + log|R_X|^2 + (n - p) log(2 pi sigma^2) + r^2 / sigma^2 + log|Psi|,

with Psi the residual structure's R / sigma^2. Profiled over sigma (sigma^2 = r^2 / d,
d = n or n - p) the last terms become d (1 + log(2 pi r^2 / d)).
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["Pieces", "criterion", "residual_dof"]


class Pieces(NamedTuple):
    """What the criterion needs from L(theta).

    Attributes:
        logdet_z: log|L_Z|^2 = log|Lambda' Z' Psi^-1 Z Lambda + I|.
        logdet_x: log|R_X|^2 (REML only; any value for ML).
        r2: the penalized weighted residual sum of squares.
    """

    logdet_z: float
    logdet_x: float
    r2: float


def residual_dof(n: int, p: int, reml: bool) -> int:
    """d = n - p under REML, n under ML: sigma-hat^2 = r^2 / d."""
    return n - p if reml else n


def criterion(pieces: Pieces | tuple[float, float, float], n: int, p: int, reml: bool,
              log_det_psi: float = 0.0, sigma: float | None = None) -> float:
    """The REML criterion (``reml``) or -2 log-likelihood.

    Args:
        pieces: from any back-end at one theta.
        n, p: observations and fixed effects.
        log_det_psi: log|Psi| of the residual structure (-sum log w for prior weights).
        sigma: the residual standard deviation; None profiles it out (sigma^2 = r^2 / d).

    Returns:
        the criterion; inf when r^2 is not positive (theta outside the domain) or a given
        sigma is not positive.
    """
    logdet_z, logdet_x, r2 = pieces
    if not r2 > 0.0 or (sigma is not None and not sigma > 0.0):
        return math.inf
    if reml:  # (residual_dof inlined: this runs at every evaluation of the optimizer)
        dof, logdet = n - p, logdet_z + logdet_x
    else:
        dof, logdet = n, logdet_z
    if sigma is None:
        return logdet + dof * (1.0 + math.log(2.0 * math.pi * r2 / dof)) + log_det_psi
    return logdet + dof * math.log(2.0 * math.pi * sigma ** 2) + r2 / sigma ** 2 + log_det_psi
