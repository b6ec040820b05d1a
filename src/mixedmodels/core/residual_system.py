"""The penalized least-squares system when Psi has parameters of its own.

With R = sigma^2 Psi(delta) (a correlation structure, a variance function), the
cross-products A(delta) = [Z X y]' Psi(delta)^-1 [Z X y] and log|Psi(delta)| change with
delta, the last part of theta. ``ResidualParameterSystem`` builds, for each delta the optimizer
asks for, the ``PLSSystem`` of A(delta) (the rows whitened group by group, one Cholesky factor
per distinct block of Psi), and evaluates it at the terms' parameters exactly as a model with
fixed Psi. It offers ``PLSSystem``'s interface to the layers above, on the whole theta.

The fixed-effects basis (``pls.fixed_basis``) is chosen once, at the start of delta: a basis
change of X's columns is exact for every Psi, and it only matters for conditioning.

Only how A(delta) is formed depends on where the rows are: here, from the rows in memory;
``partitioned.residual_system.PartitionedResidualSystem``, summed over the partitions of a
Dask DataFrame (with the marginal pieces summed once, when they apply).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from contextlib import nullcontext

import numpy as np
from scipy.linalg.lapack import dtrtri as _trtri

from ..covariance.residual_model import ResidualModel
from ..linalg.factor import Factor
from ..threads import blas_threads_for
from .criterion import criterion
from .crossproducts import CHUNK_ROWS, CrossProducts
from .marginal import MarginalPieces
from .pls import SMALL_SYSTEM, PLSSystem, fixed_basis, sparse_z
from .structure import ReStructure

__all__ = ["ResidualParameterSystem"]

_CACHED = 4  # systems kept (the optimizer's last points; the fit's factor and objective)


class ResidualParameterSystem:
    """A(delta) and L(theta) for a residual structure with parameters delta, from the rows.

    Args:
        structure: the random-effects structure; its ``ParameterMap`` ends with delta.
        X: (n, p) fixed-effects columns; y: (n,) response (offset removed).
        residual: the residual structure's map delta -> Psi.

    Subclasses form A(delta) elsewhere (``partitioned.residual``: summed over the partitions
    of a Dask DataFrame): they set the attributes of ``_common`` and override
    ``_crossproducts``; the rest, from the criterion to the factor, is this class's.
    """

    def __init__(self, structure: ReStructure, X: np.ndarray, y: np.ndarray,
                 residual: ResidualModel, chunk_rows: int = CHUNK_ROWS):
        start = residual.at(residual.start())
        basis = fixed_basis(start.whiten(X)) if start is not None else None
        Q = X if basis is None else X @ _trtri(basis)[0]
        self._xy = np.column_stack([Q, y])
        self._chunk_rows = chunk_rows
        self._common(structure, residual, X.shape[0], X.shape[1], basis)
        self._set_dense()

    def _common(self, structure: ReStructure, residual, n: int, p: int,
               basis: np.ndarray | None) -> None:
        """The attributes every way of forming A(delta) has: the structure, the residual
        structure's parameters, n, p and the fixed-effects basis R (None: X's own columns)."""
        self.structure = structure
        self.blocks = structure.blocks
        self.residual = residual
        self.n, self.p = n, p
        self._delta = structure.parameters.residual_slice
        self.fixed_basis = np.eye(self.p) if basis is None else basis
        self._basis = basis
        self._systems: OrderedDict = OrderedDict()
        self._logdet_basis = (0.0 if basis is None else
                              2.0 * float(np.sum(np.log(np.abs(np.diagonal(basis))))))

    def _set_dense(self) -> None:
        """The objective's fast paths, which build no system per evaluation (the other
        methods, the factor and the deviance, use the ``PLSSystem`` of the whitened rows):

        * ``MarginalPieces``: one grouping factor whose levels are the correlation groups (or
          none, gls): the criterion from precomputed sums per pattern of units;
        * else, for a small system (q + p + 1 <= ``SMALL_SYSTEM``): A as one dense matrix,
          [Z X y]' Psi^-1 [Z X y] of the whitened dense rows, into the dense back-end.
        """
        self._marginal = MarginalPieces.of(self.structure, self.residual, self._xy)
        self._dense = self._rows = None
        size = sum(b.q for b in self.blocks) + self.p + 1
        if self._marginal is not None or size > SMALL_SYSTEM:
            return
        first = self.at(self.structure.parameters.start())
        if first is None:
            return
        backends = first.backends()
        self._dense = copy.copy(backends.get("compiled dense") or backends["dense"])
        self._rows = np.column_stack([sparse_z(self.structure, self.n).toarray(), self._xy])

    def at(self, theta: np.ndarray) -> PLSSystem | None:
        """The system of A at theta's delta; None where Psi is not positive definite."""
        delta = np.asarray(theta, dtype=float)[self._delta]
        key = delta.tobytes()
        if key in self._systems:
            self._systems.move_to_end(key)
            return self._systems[key]
        crossproducts = self._crossproducts(delta)
        system = None
        if crossproducts is not None:
            system = PLSSystem.from_crossproducts(self.structure, crossproducts, self._basis)
        self._systems[key] = system
        if len(self._systems) > _CACHED:
            self._systems.popitem(last=False)
        return system

    def _crossproducts(self, delta: np.ndarray) -> CrossProducts | None:
        """A(delta) of the whitened rows (in the fixed-effects basis); None where Psi is not
        positive definite."""
        psi = self.residual.at(delta)
        if psi is None:
            return None
        return CrossProducts.accumulate(self.blocks, self._xy, psi, self._chunk_rows)

    def _system(self, theta: np.ndarray) -> PLSSystem:
        system = self.at(theta)
        if system is None:
            raise np.linalg.LinAlgError("the residual covariance is not positive definite at "
                                        "these parameters")
        return system

    @property
    def backend(self) -> str:
        """The back-end of the terms' part, and how A(delta) is formed."""
        if self._marginal is not None:
            return self._marginal.backend
        if self._dense is not None:
            return "dense, rows whitened per evaluation"
        system = self.at(self.structure.parameters.start())
        inner = system.backend if system is not None else "blocked"
        return f"{inner}, rows whitened per evaluation"

    def optimizer_threads(self):
        """A context for the optimizer's evaluations: one BLAS thread when the dense path's
        products are small (waking a second thread for each costs more than it saves; see
        ``threads``)."""
        if self._marginal is not None:
            return blas_threads_for(self.p + 1)
        if self._dense is None:
            return nullcontext()
        return blas_threads_for(self._rows.shape[1])

    def objective(self, theta: np.ndarray, reml: bool) -> float:
        """The REML criterion or -2 log-likelihood at theta (terms' parameters and delta)."""
        if self._marginal is not None:
            return self._marginal_criterion(theta, reml)
        if self._dense is None:
            system = self.at(theta)
            return np.inf if system is None else system.objective(theta, reml)
        psi = self.residual.at(theta[self._delta])
        if psi is None:
            return np.inf
        whitened = psi.whiten(self._rows)
        self._dense.full = whitened.T @ whitened
        logdet_z, logdet_x, r2 = self._dense(theta)
        return criterion((logdet_z, logdet_x + self._logdet_basis, r2), self.n, self.p, reml,
                         psi.log_det())

    def _marginal_criterion(self, theta: np.ndarray, reml: bool,
                            sigma: float | None = None) -> float:
        """The criterion from the marginal pieces (profiled over sigma unless it is given)."""
        logdet_v, logdet_x, r2 = self._marginal.pieces(theta)
        return criterion((logdet_v, logdet_x + self._logdet_basis, r2), self.n, self.p, reml,
                         sigma=sigma)

    def factor(self, theta: np.ndarray) -> Factor:
        return self._system(theta).factor(theta)

    def objective_from(self, factor: Factor, reml: bool) -> float:
        return self._system(factor.theta).objective_from(factor, reml)

    def pwrss(self, factor: Factor) -> float:
        return self._system(factor.theta).pwrss(factor)

    def deviance(self, theta: np.ndarray, sigma: float, reml: bool) -> float:
        return self._system(theta).deviance(theta, sigma, reml)

    def unscaled_vcov(self, factor: Factor) -> np.ndarray:
        return self._system(factor.theta).unscaled_vcov(factor)

    def with_response(self, y: np.ndarray) -> "ResidualParameterSystem":
        """A copy for a new response (simulation, the bootstrap)."""
        other = copy.copy(self)
        other._xy = np.column_stack([self._xy[:, :-1], y])
        other._systems = OrderedDict()
        other._set_dense()
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
        other._logdet_basis = 0.0
        other._systems = OrderedDict()
        other._set_dense()
        return other

