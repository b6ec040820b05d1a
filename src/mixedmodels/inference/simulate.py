"""Responses simulated from a fitted model (as lme4's ``simulate``, unconditional on u).

    y* = X beta + Z Lambda(theta) b* sigma + sigma e*,    b* ~ N(0, I_q), e* ~ N(0, I_n),

so that u* = sigma Lambda b* ~ N(0, G) are new random effects and y* ~ N(X beta, V). Z Lambda
is kept sparse (n x q): no dense n x q or n x n matrix is formed.

Draws come from ``numpy.random.default_rng(seed)``. Simulation j uses the j-th chunk of
q + n standard normals of the stream (first b*, then e*), so the first k columns of
``simulate(fit, n, seed)`` are ``simulate(fit, k, seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..covariance.residual import ResidualStructure
from ..validate import check_integer, check_seed

__all__ = ["Simulator", "simulate"]


@dataclass(frozen=True, eq=False)
class Simulator:
    """What simulation needs from a fit, small and picklable (sent to bootstrap workers).

    Attributes:
        mean: (n,) X beta (+ the offset).
        zlam: (n, q) sparse Z Lambda(theta).
        sigma: residual standard deviation.
        residual: Psi = Var(e) / sigma^2 at the estimates (I, prior weights' W^-1, or a
            correlation structure's and variance function's): e = sigma Psi^1/2 z.
    """

    mean: np.ndarray
    zlam: sp.csr_array
    sigma: float
    residual: ResidualStructure

    @classmethod
    def from_fit(cls, fit) -> Simulator:
        zlam = sp.csr_array(sp.csr_array(fit.Z) @ sp.csr_array(fit.Lambda))
        mean = fit.X @ fit.beta + fit.model.design.offset
        return cls(np.asarray(mean, dtype=float), zlam, float(fit.sigma), fit.residual)

    @property
    def nobs(self) -> int:
        return self.mean.shape[0]

    @property
    def q(self) -> int:
        return self.zlam.shape[1]

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n responses as the columns of an (nobs, n) array."""
        normals = rng.standard_normal((n, self.q + self.nobs))
        b, e = normals[:, :self.q], normals[:, self.q:]
        noise = self.zlam @ b.T + self.residual.color(e.T)
        return self.mean[:, None] + self.sigma * noise


def simulate(fit, n: int = 1, seed=None) -> np.ndarray:
    """Simulate n responses from the fitted model, with new random effects.

    Args:
        fit: an ``LmmFit``.
        n: number of simulated responses (0 or more).
        seed: a non-negative int, a ``numpy.random.SeedSequence``, ``Generator`` or
            ``BitGenerator``, or None for fresh entropy; the same seed gives the same draws.

    Returns:
        An (nobs, n) array: column j is one simulated response, in the rows of the fit.
    """
    n = check_integer(n, "n (the number of simulations)", minimum=0)
    rng = np.random.default_rng(check_seed(seed, generators=True))
    try:
        return Simulator.from_fit(fit).draw(n, rng)
    except MemoryError:
        size = n * fit.nobs * 8 / 2 ** 30
        raise MemoryError(f"n = {n} simulations of {fit.nobs} observations take {size:,.1f} "
                          "GiB (and as much again while they are drawn), more than this "
                          "machine can give: simulate fewer at a time") from None
