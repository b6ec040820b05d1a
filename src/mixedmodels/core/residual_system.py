"""The penalized least-squares system when Psi has parameters of its own.

With R = sigma^2 Psi(delta) (a correlation structure, a variance function), the
cross-products A(delta) = [Z X y]' Psi(delta)^-1 [Z X y] and log|Psi(delta)| change with
delta, the last part of theta. ``ResidualParameterSystem`` builds, for each delta the optimizer
asks for, the ``PLSSystem`` of A(delta) (the rows whitened group by group, one Cholesky factor
per distinct block of Psi), and evaluates it at the terms' parameters exactly as a model with
fixed Psi. It offers ``PLSSystem``'s interface to the layers above, on the whole theta.

The fixed-effects basis (``pls.fixed_basis``) is chosen once, at the start of delta: a basis
change of X's columns is exact for every Psi, and it only matters for conditioning.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
from scipy.linalg.lapack import dtrtri as _trtri

from ..covariance.residual import BlockResidual
from ..covariance.residual_model import ResidualModel
from ..linalg.factor import Factor
from .crossproducts import CHUNK_ROWS, CrossProducts
from .pls import PLSSystem, fixed_basis
from .structure import ReStructure

__all__ = ["ResidualParameterSystem"]

_CACHED = 4  # systems kept (the optimizer's last points; the fit's factor and objective)


class ResidualParameterSystem:
    """A(delta) and L(theta) for a residual structure with parameters delta.

    Args:
        structure: the random-effects structure; its ``ParameterMap`` ends with delta.
        X: (n, p) fixed-effects columns; y: (n,) response (offset removed).
        residual: the residual structure's map delta -> Psi.
    """

    def __init__(self, structure: ReStructure, X: np.ndarray, y: np.ndarray,
                 residual: ResidualModel, chunk_rows: int = CHUNK_ROWS):
        self.structure = structure
        self.blocks = structure.blocks
        self.residual = residual
        self.n, self.p = X.shape
        self._delta = structure.parameters.residual_slice
        start = residual.at(residual.start())
        basis = fixed_basis(start.whiten(X)) if start is not None else None
        self.fixed_basis = np.eye(self.p) if basis is None else basis
        Q = X if basis is None else X @ _trtri(basis)[0]
        self._xy = np.column_stack([Q, y])
        self._basis = basis
        self._chunk_rows = chunk_rows
        self._systems: OrderedDict = OrderedDict()
        self._pieces = _Pieces.of(residual, self._xy) if not self.blocks else None

    def at(self, theta: np.ndarray) -> PLSSystem | None:
        """The system of A at theta's delta; None where Psi is not positive definite."""
        delta = np.asarray(theta, dtype=float)[self._delta]
        key = delta.tobytes()
        if key in self._systems:
            self._systems.move_to_end(key)
            return self._systems[key]
        psi = self.residual.at(delta)
        system = None
        if psi is not None:
            if self._pieces is not None and isinstance(psi, BlockResidual):
                crossproducts = self._pieces.crossproducts(psi)
            else:
                crossproducts = CrossProducts.accumulate(self.blocks, self._xy, psi,
                                                         self._chunk_rows)
            system = PLSSystem.from_crossproducts(self.structure, crossproducts, self._basis)
        self._systems[key] = system
        if len(self._systems) > _CACHED:
            self._systems.popitem(last=False)
        return system

    def _system(self, theta: np.ndarray) -> PLSSystem:
        system = self.at(theta)
        if system is None:
            raise np.linalg.LinAlgError("the residual covariance is not positive definite at "
                                        "these parameters")
        return system

    @property
    def backend(self) -> str:
        """The back-end of the terms' part, and how A(delta) is formed."""
        system = self.at(self.structure.parameters.start())
        inner = system.backend if system is not None else "blocked"
        how = "precomputed pieces" if self._pieces is not None else "rows whitened"
        return f"{inner}, A from {how} per evaluation"

    def objective(self, theta: np.ndarray, reml: bool) -> float:
        system = self.at(theta)
        return np.inf if system is None else system.objective(theta, reml)

    def factor(self, theta: np.ndarray) -> Factor:
        return self._system(theta).factor(theta)

    def objective_from(self, factor: Factor, reml: bool) -> float:
        return self._system(factor.theta).objective_from(factor, reml)

    def deviance(self, theta: np.ndarray, sigma: float, reml: bool) -> float:
        return self._system(theta).deviance(theta, sigma, reml)

    def unscaled_vcov(self, factor: Factor) -> np.ndarray:
        return self._system(factor.theta).unscaled_vcov(factor)

    def with_response(self, y: np.ndarray) -> "ResidualParameterSystem":
        """A copy for a new response (simulation, the bootstrap)."""
        other = copy.copy(self)
        other._xy = np.column_stack([self._xy[:, :-1], y])
        other._systems = OrderedDict()
        other._pieces = _Pieces.of(self.residual, other._xy) if not self.blocks else None
        return other

    def with_fixed_transform(self, transform: np.ndarray) -> "ResidualParameterSystem":
        """A copy whose [X y] is [X y] @ transform (see ``PLSSystem.with_fixed_transform``)."""
        other = copy.copy(self)
        to_basis = np.eye(self.p + 1)
        to_basis[: self.p, : self.p] = self.fixed_basis
        other._xy = self._xy @ (to_basis @ transform)
        other.p = transform.shape[1] - 1
        other.fixed_basis = np.eye(other.p)
        other._basis = None
        other._systems = OrderedDict()
        other._pieces = _Pieces.of(self.residual, other._xy) if not self.blocks else None
        return other


class _Pieces:
    """[X y]' Psi^-1 [X y] as a combination of precomputed pieces (a model without random
    effects and with a correlation structure).

    Groups that share a key share Psi_k, so with P = [X y] and the rows w_ga of group g,

        A(delta) = sum_k sum_{a, b} (Psi_k^-1)_ab S_kab,   S_kab = sum_{g of key k} w_ga w_gb',

    where the pieces S (K x m x (p+1) x m x (p+1) per class of groups of m rows) are formed
    once. Each evaluation then costs a few operations per key and pair of positions, and
    nothing per row (ARCHITECTURE: "residual structures without per-evaluation passes over the
    data"). Used when the keys are few (a trial's visit patterns), else rows are whitened.
    """

    MAX_KEYS = 2_000  # more distinct blocks than this: whitening the rows is as cheap

    def __init__(self, residual: ResidualModel, xy: np.ndarray):
        self.n = xy.shape[0]
        self.pieces = []
        for part in residual.classes:
            k, m = len(part.positions), part.rows.shape[1]
            columns = xy.shape[1]
            pieces = np.zeros((k, m * columns, m * columns))
            order = np.argsort(part.keys, kind="stable")
            bounds = np.searchsorted(part.keys[order], np.arange(k + 1))
            for key in range(k):
                rows = part.rows[order[bounds[key]:bounds[key + 1]]]
                w = xy[rows].reshape(len(rows), m * columns)
                pieces[key] = w.T @ w
            self.pieces.append(pieces.reshape(k, m, columns, m, columns))

    @classmethod
    def of(cls, residual: ResidualModel, xy: np.ndarray) -> "_Pieces | None":
        """The pieces, when the residual structure correlates rows in few distinct blocks."""
        if not residual.classes or residual.key_count() > cls.MAX_KEYS:
            return None
        return cls(residual, xy)

    def crossproducts(self, psi: BlockResidual) -> CrossProducts:
        """A(delta) of Psi at delta (a ``BlockResidual`` of the same classes and keys)."""
        total = 0.0
        for pieces, factor in zip(self.pieces, psi.factors):
            inverse = np.linalg.inv(factor)
            precision = np.swapaxes(inverse, 1, 2) @ inverse  # Psi_k^-1 = L^-T L^-1
            total = total + np.einsum("kab,kaibj->ij", precision, pieces, optimize=True)
        return CrossProducts((), {}, (), total, self.n, psi.log_det())
