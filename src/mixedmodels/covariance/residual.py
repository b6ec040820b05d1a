"""The residual structure: R = Var(e) = sigma^2 Psi, with Psi known up to its own parameters.

Everything the package does with R goes through a ``ResidualStructure``:

* the fit works on whitened rows, Psi^-1/2 [Z X y], in which Var(e) = sigma^2 I; the
  -2 log-likelihood of the data is that of the whitened rows plus log|Psi|
  (log|V| = log|Psi^-1/2 V Psi^-1/2| + log|Psi|);
* Pearson residuals, simulation, the linear model of ``ranova``, leverage and Kenward-Roger use
  the same whitening; prediction intervals use the variance of a new observation.

Implementations:

* ``Identity``: Psi = I (lme4's default);
* ``KnownWeights``: Psi = W^-1 for prior weights w > 0, Var(e_i) = sigma^2 / w_i (lme4's
  ``weights``), log|Psi| = -sum(log w).

Neither has parameters of its own; structures with parameters (a variance per group, AR(1)
within subject) add them to the optimizer's vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["Identity", "KnownWeights", "ResidualStructure", "residual_structure"]


class ResidualStructure:
    """Psi for n observations (R = sigma^2 Psi). Subclasses are frozen dataclasses."""

    n_params = 0

    @property
    def n(self) -> int:
        raise NotImplementedError

    def whiten(self, rows):
        """Psi^-1/2 @ rows for an (n,) or (n, m) array or an (n, m) sparse matrix."""
        raise NotImplementedError

    def log_det(self) -> float:
        """log|Psi|."""
        raise NotImplementedError

    def variances(self) -> np.ndarray:
        """(n,) the diagonal of Psi: Var(e_i) / sigma^2."""
        raise NotImplementedError

    def covariance(self, sigma: float) -> sp.csr_array:
        """R = sigma^2 Psi as a sparse (n, n) matrix."""
        return sp.csr_array(sp.diags_array(sigma ** 2 * self.variances(), format="csr"))

    def new_observation_variance(self) -> float:
        """Var(e0) / sigma^2 of a new observation (weight 1: sigma^2, as lme4's predictions)."""
        return 1.0

    def subset(self, rows: np.ndarray) -> "ResidualStructure":
        """The structure of the given rows (a boolean mask or indices), for refits."""
        raise NotImplementedError


@dataclass(frozen=True)
class Identity(ResidualStructure):
    """Psi = I: independent residuals of equal variance."""

    nobs: int

    @property
    def n(self) -> int:
        return self.nobs

    def whiten(self, rows):
        return rows

    def log_det(self) -> float:
        return 0.0

    def variances(self) -> np.ndarray:
        return np.ones(self.nobs)

    def subset(self, rows: np.ndarray) -> "Identity":
        return Identity(len(np.arange(self.nobs)[rows]))


@dataclass(frozen=True, eq=False)
class KnownWeights(ResidualStructure):
    """Psi = diag(1 / w) for known prior weights w > 0.

    Attributes:
        weights: (n,) the prior weights.
    """

    weights: np.ndarray

    @property
    def n(self) -> int:
        return self.weights.shape[0]

    @property
    def root(self) -> np.ndarray:
        """(n,) sqrt(w): the whitening scale of each row."""
        return np.sqrt(self.weights)

    def whiten(self, rows):
        if sp.issparse(rows):
            return sp.csr_array(sp.diags_array(self.root) @ rows)
        rows = np.asarray(rows)
        return rows * (self.root if rows.ndim == 1 else self.root[:, None])

    def log_det(self) -> float:
        return -float(np.sum(np.log(self.weights)))

    def variances(self) -> np.ndarray:
        return 1.0 / self.weights

    def subset(self, rows: np.ndarray) -> "KnownWeights":
        return KnownWeights(self.weights[rows])


def residual_structure(weights: np.ndarray | None, n: int) -> ResidualStructure:
    """``KnownWeights`` for prior weights that are not all 1, else ``Identity``."""
    if weights is None or np.all(np.asarray(weights) == 1.0):
        return Identity(n)
    return KnownWeights(np.asarray(weights, dtype=float))
