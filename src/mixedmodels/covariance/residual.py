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
  ``weights``), log|Psi| = -sum(log w); also a variance function's Psi at given parameters
  (diagonal, w_i = 1 / s_i^2);
* ``BlockResidual``: Psi block-diagonal by group, each block given by its Cholesky factor:
  a correlation structure (with a variance function and prior weights) at given parameters.

These are Psi at fixed parameters; ``covariance.residual_model.ResidualModel`` maps the
parameters of a correlation structure and a variance function to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

__all__ = ["BlockResidual", "Identity", "KnownWeights", "ResidualStructure",
           "residual_structure"]


class ResidualStructure:
    """Psi for n observations (R = sigma^2 Psi). Subclasses are frozen dataclasses."""

    #: the rows can be split anywhere: Psi is diagonal (A is a sum over rows)
    separable = True

    @property
    def n(self) -> int:
        raise NotImplementedError

    def whiten(self, rows):
        """Psi^-1/2 @ rows for an (n,) or (n, m) array or an (n, m) sparse matrix."""
        raise NotImplementedError

    def color(self, noise: np.ndarray) -> np.ndarray:
        """Psi^1/2 @ noise (n,) or (n, m): independent standard normals into draws of
        N(0, Psi) (the inverse of ``whiten``)."""
        raise NotImplementedError

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """(n,) values whitened as nlme whitens residuals: ``whiten``, but for a
        ``BlockResidual`` (each group's rows in the data's order, and nlme's factor for
        compound symmetry)."""
        return self.whiten(values)

    def log_det(self) -> float:
        """log|Psi|."""
        raise NotImplementedError

    def solve(self, rows):
        """Psi^-1 @ rows for an (n,) or (n, m) array or an (n, m) sparse matrix."""
        raise NotImplementedError

    def inverse_diagonal(self) -> np.ndarray:
        """(n,) the diagonal of Psi^-1."""
        return 1.0 / self.variances()

    def variances(self) -> np.ndarray:
        """(n,) the diagonal of Psi: Var(e_i) / sigma^2."""
        raise NotImplementedError

    def covariance(self, sigma: float) -> sp.csr_array:
        """R = sigma^2 Psi as a sparse (n, n) matrix."""
        return sp.csr_array(sp.diags_array(sigma ** 2 * self.variances(), format="csr"))

    def groups(self) -> np.ndarray | None:
        """(n,) each row's group of correlated rows (0, 1, ...); None when Psi is
        diagonal."""
        return None

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

    def color(self, noise: np.ndarray) -> np.ndarray:
        return noise

    def log_det(self) -> float:
        return 0.0

    def solve(self, rows):
        return rows

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

    def color(self, noise: np.ndarray) -> np.ndarray:
        noise = np.asarray(noise)
        return noise / (self.root if noise.ndim == 1 else self.root[:, None])

    def log_det(self) -> float:
        return -float(np.sum(np.log(self.weights)))

    def solve(self, rows):
        if sp.issparse(rows):
            return sp.csr_array(sp.diags_array(self.weights) @ rows)
        rows = np.asarray(rows)
        return rows * (self.weights if rows.ndim == 1 else self.weights[:, None])

    def variances(self) -> np.ndarray:
        return 1.0 / self.weights

    def subset(self, rows: np.ndarray) -> "KnownWeights":
        return KnownWeights(self.weights[rows])


def residual_structure(weights: np.ndarray | None, n: int) -> ResidualStructure:
    """``KnownWeights`` for prior weights that are not all 1, else ``Identity``."""
    if weights is None or np.all(np.asarray(weights) == 1.0):
        return Identity(n)
    return KnownWeights(np.asarray(weights, dtype=float))


@dataclass(frozen=True, eq=False)
class BlockResidual(ResidualStructure):
    """Psi = blockdiag over groups of Psi_g, with the groups' rows anywhere in the data.

    Groups of the same size m form a class; groups whose Psi_g are equal share one Cholesky
    factor (a "key": the same times and strata, as in a trial's visit patterns).

    Attributes:
        nobs: n.
        rows: per class, (G, m) the rows of each group (row positions in the data).
        keys: per class, (G,) each group's key.
        factors: per class, (K, m, m) the lower Cholesky factors L_k of the keys' Psi_k.
        rotations: per class, (m, m) the orthogonal Q (or None: I) of ``normalize``; None
            where every class's is I.
    """

    nobs: int
    rows: tuple[np.ndarray, ...]
    keys: tuple[np.ndarray, ...]
    factors: tuple[np.ndarray, ...]
    rotations: tuple[np.ndarray | None, ...] | None = None
    separable = False

    @property
    def n(self) -> int:
        return self.nobs

    @cached_property
    def _inverse_factors(self) -> tuple[np.ndarray, ...]:
        """Per class, (K, m, m) L_k^-1."""
        return tuple(np.linalg.inv(factor) for factor in self.factors)

    def whiten(self, rows):
        """L_g^-1 (the group's rows) for every group: Psi^-1/2 in the Cholesky sense, so that
        the whitened rows' cross-products are rows' Psi^-1 rows."""
        if sp.issparse(rows):
            return sp.csr_array(self.inverse_root() @ rows)
        return self._per_group(rows, self._inverse_factors)

    def color(self, noise: np.ndarray) -> np.ndarray:
        """L_g (the group's noise) for every group."""
        return self._per_group(noise, self.factors)

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """(n,) nlme's whitening of each group's values: L_g^-1 (the group's values), L_g the
        Cholesky factor of its Psi_g with its rows in the data's order (``whiten`` takes them
        in the order the groups share factors in: the same sum of squares, other values),
        then the class's rotation Q where the correlation structure has one
        (``Correlation.normalizing_rotation``)."""
        values = np.asarray(values, dtype=float)
        out = np.empty_like(values)
        rotations = self.rotations or (None,) * len(self.rows)
        for index, keys, psi, rotation in zip(self.rows, self.keys, self.blocks(), rotations):
            order = np.argsort(index, axis=1)  # (G, m): each group's rows in the data's order
            rows = np.take_along_axis(index, order, axis=1)
            psi = psi[keys][np.arange(len(keys))[:, None, None], order[:, :, None],
                            order[:, None, :]]
            whitened = np.linalg.solve(np.linalg.cholesky(psi), values[rows][..., None])[..., 0]
            out[rows] = whitened if rotation is None else whitened @ rotation.T
        return out

    def _per_group(self, values: np.ndarray, matrices) -> np.ndarray:
        """M_g (the group's rows of ``values``) for every group, M_k per class and key."""
        values = np.asarray(values, dtype=float)
        out = np.empty_like(values)
        for index, keys, matrix in zip(self.rows, self.keys, matrices):
            part = values[index] if values.ndim > 1 else values[index][..., None]
            out[index] = np.matmul(matrix[keys], part).reshape(values[index].shape)
        return out

    def solve(self, rows):
        """Psi_g^-1 (the group's rows) = L_g^-T L_g^-1 (the group's rows) for every group."""
        if sp.issparse(rows):
            inverse = self.inverse_root()
            return sp.csr_array(inverse.T @ (inverse @ rows))
        transposed = tuple(np.swapaxes(inverse, 1, 2) for inverse in self._inverse_factors)
        return self._per_group(self.whiten(rows), transposed)

    def inverse_diagonal(self) -> np.ndarray:
        out = np.empty(self.nobs)
        for index, keys, inverse in zip(self.rows, self.keys, self._inverse_factors):
            out[index] = np.sum(inverse ** 2, axis=1)[keys]  # column sums of L^-1 squared
        return out

    def inverse_root(self) -> sp.csr_array:
        """(n, n) sparse blockdiag(L_g^-1) in the data's row order."""
        return self._sparse(self._inverse_factors)

    def _sparse(self, blocks_of_classes) -> sp.csr_array:
        data, rows, cols = [], [], []
        for index, keys, blocks in zip(self.rows, self.keys, blocks_of_classes):
            m = index.shape[1]
            data.append(blocks[keys].ravel())
            rows.append(np.repeat(index, m, axis=1).ravel())
            cols.append(np.tile(index, (1, m)).ravel())
        return sp.csr_array((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(self.nobs, self.nobs))

    def log_det(self) -> float:
        total = 0.0
        for keys, factor in zip(self.keys, self.factors):
            per_key = 2.0 * np.log(np.diagonal(factor, axis1=1, axis2=2)).sum(axis=1)
            total += float(per_key @ np.bincount(keys, minlength=len(factor)))
        return total

    def blocks(self) -> tuple[np.ndarray, ...]:
        """Per class, (K, m, m) the keys' Psi_k = L_k L_k'."""
        return tuple(factor @ np.swapaxes(factor, 1, 2) for factor in self.factors)

    def variances(self) -> np.ndarray:
        out = np.empty(self.nobs)
        for index, keys, psi in zip(self.rows, self.keys, self.blocks()):
            out[index] = np.diagonal(psi, axis1=1, axis2=2)[keys]
        return out

    def covariance(self, sigma: float) -> sp.csr_array:
        return sp.csr_array(sigma ** 2 * self._sparse(self.blocks()))

    def groups(self) -> np.ndarray:
        out = np.empty(self.nobs, dtype=np.int64)
        first = 0
        for index in self.rows:
            out[index] = first + np.arange(len(index))[:, None]
            first += len(index)
        return out

    def subset(self, rows: np.ndarray) -> "ResidualStructure":
        """The structure of the given rows, which must be whole groups."""
        keep = np.zeros(self.nobs, dtype=bool)
        keep[rows] = True
        position = np.cumsum(keep) - 1
        out_rows, out_keys = [], []
        for index, keys in zip(self.rows, self.keys):
            inside = keep[index]
            if np.any(inside.any(axis=1) & ~inside.all(axis=1)):
                raise ValueError("a subset of the rows of a correlated residual structure "
                                 "must keep each group whole")
            whole = inside.all(axis=1)
            out_rows.append(position[index[whole]])
            out_keys.append(keys[whole])
        return BlockResidual(int(keep.sum()), tuple(out_rows), tuple(out_keys), self.factors,
                             self.rotations)
