"""The penalized least-squares system of a residual structure fitted on partitions.

``ResidualParameterSystem`` (``core.residual_system``) is the in-memory model of a residual
structure with parameters delta: the criterion from the marginal pieces where they apply,
else from the ``PLSSystem`` of A(delta); the factor, the fixed effects and the conditional
modes from that system. ``PartitionedResidualSystem`` is the same class with A(delta) formed
on the partitions of a Dask DataFrame (whose groups each lie in one partition:
``partitioned.residual``):

* the marginal pieces (one random-effects factor whose levels are the correlation groups, or
  the groups without random effects) are sums over units: summed once, in the
  cross-products pass, they give the criterion at any theta without touching the data, so
  the optimizer runs on the client as in memory. The deviance at a given sigma (Satterthwaite's
  Hessian, the profile) comes from them too: the in-memory system forms A(delta) for it,
  here that would be a pass over the data per point;
* A(delta) is one Dask computation per distinct delta (``DeltaPasses``): each partition
  whitens its rows by its groups' blocks of Psi(delta) and returns its ``CrossProducts``,
  tree-summed on the workers (what comes back is the size of A). The systems of the last
  deltas are kept, as in memory. The fit's own system at its estimates is one pass; without
  marginal pieces every evaluation of the optimizer is one.

Nothing is kept on the workers between passes: each pass reads the partitions again (on a
cluster, ``ddf.persist()`` before the fit keeps them in the workers' memory, if it holds them).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from ..core.crossproducts import CrossProducts
from ..core.marginal import MarginalPieces
from ..core.pls import PLSSystem
from ..core.residual_system import ResidualParameterSystem
from ..core.structure import ReStructure
from ..covariance.residual_model import ResidualParameters
from ..design.schema import DataSchema
from .passes import residual_crossproducts_of

__all__ = ["DeltaPasses", "PartitionedResidualSystem"]


@dataclass(frozen=True, eq=False)
class DeltaPasses:
    """How A(delta) is formed from the partitions: the data, its schema, the model's formula
    and prior weights' column, the whole data's residual structure, and ``columns``
    ((p_all + 1, P): [X y] of all X's columns -> the system's [X y]: the kept columns, in
    the fixed-effects basis; a profile's transform after that)."""

    data: object
    schema: DataSchema
    formula: str
    weights: str | None
    parameters: ResidualParameters
    columns: np.ndarray

    @cached_property
    def _graph(self) -> tuple:
        """The partitions and one copy of the schema and structures in the graph."""
        from dask import delayed

        if self.data is None:
            raise ValueError("this copy of a Dask fit was sent to another process without "
                             "its data: A(delta) is formed where the fit was made")
        return (self.data.to_delayed(), delayed(self.schema, pure=True),
                delayed(self.parameters, pure=True))

    def crossproducts(self, delta: np.ndarray) -> CrossProducts | None:
        """A(delta), one Dask computation; None where Psi(delta) is not positive definite."""
        parts, schema, parameters = self._graph
        return residual_crossproducts_of(parts, schema, self.formula, self.weights,
                                         parameters, delta, self.columns)

    def with_columns(self, transform: np.ndarray) -> "DeltaPasses":
        """The passes of [X y] @ ``columns`` @ ``transform``."""
        return replace(self, columns=self.columns @ transform)

    def __getstate__(self) -> dict:
        """Pickled without the Dask DataFrame and its graph (as ``PartitionedModel``)."""
        state = dict(self.__dict__)
        state["data"] = None
        state.pop("_graph", None)
        return state


class PartitionedResidualSystem(ResidualParameterSystem):
    """``ResidualParameterSystem`` whose A(delta) is summed over partitions (see the module).

    Args:
        structure: the random-effects structure; its ``ParameterMap`` ends with delta.
        passes: how A(delta) is formed (``DeltaPasses``).
        n: the number of observations.
        basis: the fixed-effects basis R (None: X's own columns; ``passes.columns`` has
            R^-1 in it).
        pieces: the marginal pieces of [X y] in the system's columns, or None.
        start: A at the structure's start delta, from the cross-products pass (kept as the
            first system: the optimizer's first point).
    """

    def __init__(self, structure: ReStructure, passes: DeltaPasses, n: int,
                 basis: np.ndarray | None, pieces: MarginalPieces | None,
                 start: CrossProducts):
        self._passes = passes
        self._common(structure, passes.parameters, n, passes.columns.shape[1] - 1, basis)
        self._marginal = pieces
        self._dense = self._rows = None
        delta = structure.parameters.start()[self._delta]
        self._systems[delta.tobytes()] = PLSSystem.from_crossproducts(structure, start, basis)

    def _crossproducts(self, delta: np.ndarray) -> CrossProducts | None:
        return self._passes.crossproducts(delta)

    @property
    def passes_per_evaluation(self) -> bool:
        """Each new delta of the criterion is a pass over the data (no marginal pieces)."""
        return self._marginal is None

    @property
    def backend(self) -> str:
        if self._marginal is not None:
            return f"{self._marginal.backend}, summed over the partitions once"
        system = self.at(self.structure.parameters.start())
        return f"{system.backend}, A(delta) summed over the partitions per evaluation"

    def deviance(self, theta: np.ndarray, sigma: float, reml: bool) -> float:
        """-2 log-likelihood (or REML criterion) at (theta, sigma): from the marginal pieces
        when there are some (no pass over the data), else as in memory."""
        if self._marginal is None:
            return super().deviance(theta, sigma, reml)
        return self._marginal_criterion(np.asarray(theta, dtype=float), reml, sigma)

    def with_fixed_transform(self, transform: np.ndarray) -> "PartitionedResidualSystem":
        """A copy whose [X y] is [X y] @ transform (see ``PLSSystem.with_fixed_transform``):
        the partitions' columns and the marginal pieces transformed alike."""
        to_basis = np.eye(self.p + 1)
        to_basis[: self.p, : self.p] = self.fixed_basis
        columns = to_basis @ transform
        other = copy.copy(self)
        other._passes = self._passes.with_columns(columns)
        other.p = transform.shape[1] - 1
        other.fixed_basis = np.eye(other.p)
        other._basis = None
        other._logdet_basis = 0.0
        other._systems = OrderedDict()
        if self._marginal is not None:
            other._marginal = self._marginal.with_columns(columns)
        return other
