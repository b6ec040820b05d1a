"""The criterion from the marginal covariance of independent units, combined from pieces.

When the random effects have one grouping factor and the residual correlation groups are its
levels (a random intercept and AR(1) within patient), or there are no random effects (gls),
y splits into independent units u (the levels, or the correlation groups) with

    V_u / sigma^2 = Z_u Lambda Lambda' Z_u' + Psi_u      (m_u x m_u),

and the profiled criterion needs only log|V| = sum_u log|V_u| and

    [X y]' V^-1 [X y] = sum_k sum_{a,b} (V_k^-1)_ab S_kab,   S_kab = sum_{u of key k} w_ua w_ub',

where units of the same key (the same size, random-effects rows, positions, strata and
weights: a trial's visit pattern) share V_k, and w_ua is row a of unit u's [X y]. The pieces S
are formed once; each evaluation factors one small V_k per key and costs nothing per row or
per level: this is the SAS PROC MIXED computation by subject, with the subjects grouped by
pattern (ARCHITECTURE: "residual structures without per-evaluation passes over the data").
r^2 = y'V^-1 y - b' X'V^-1 X b and log|X'V^-1 X| come from one Cholesky factor of the
(p + 1) x (p + 1) sum, as the last block of L.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg.lapack import dpotrf as _potrf

from ..covariance.residual_model import ResidualModel, row_keys, unit_descriptors, unit_keys
from ..linalg.compiled import marginal_kernel
from .criterion import Pieces
from .structure import ReStructure

__all__ = ["MarginalPieces", "UnitSums"]

#: keys x m^2 x (p + 1)^2 above this: the pieces would need too much memory
MAX_PIECE_ENTRIES = 20_000_000
FAILED = Pieces(0.0, 0.0, -1.0)


@dataclass(frozen=True, eq=False)
class _Keys:
    """Every key's units padded to the largest size m (padding rows are independent of the
    others, with variance 1 and no random effects or data, so they change nothing): per key,
    its random-effects rows (K, m, p_z), the residual structure's positions (K, m, d),
    features and weights (K, m), which rows are real (K, m), the number of units of each
    key (K,), and the pieces as one (K m m, P P) matrix."""

    z: np.ndarray
    positions: np.ndarray
    features: np.ndarray
    weights: np.ndarray
    real: np.ndarray
    counts: np.ndarray
    pieces: np.ndarray


@dataclass(frozen=True, eq=False)
class _SizeClass:
    """The keys of the units of m rows: per key, what identifies it (``unit_descriptors``,
    (K, D)), its first unit's random-effects rows (K, m, p_z), positions (K, m, d), features
    and weights (K, m), its number of units (K,) and its pieces S_kab (K, m, P, m, P)."""

    descriptors: np.ndarray
    z: np.ndarray
    positions: np.ndarray
    features: np.ndarray
    weights: np.ndarray
    counts: np.ndarray
    pieces: np.ndarray

    def __add__(self, other: "_SizeClass") -> "_SizeClass":
        """The keys of both (the first's representatives for keys the two share), summed."""
        joined = [np.concatenate([a, b]) for a, b in zip(self._fields(), other._fields())]
        keys, first = row_keys(joined[0])
        count = len(first)
        counts = np.bincount(keys, weights=joined[5], minlength=count)
        pieces = np.zeros((count,) + self.pieces.shape[1:])
        np.add.at(pieces, keys, joined[6])
        return _SizeClass(*(field[first] for field in joined[:5]), counts, pieces)

    def _fields(self) -> tuple:
        return (self.descriptors, self.z, self.positions, self.features, self.weights,
                self.counts, self.pieces)


@dataclass(frozen=True, eq=False)
class UnitSums:
    """The sums ``MarginalPieces`` is made of, per key of units, from some whole units: added
    (``+``) over disjoint sets of them (the partitions of a Dask DataFrame, when each keeps
    its units whole), the keys ordered as those of all the units at once.

    Attributes:
        classes: per unit size m, its keys (``_SizeClass``).
        size: P, the columns of [X y].
        units: the units' codes when they are a random-effects factor's levels (numbered as
            in all the data), to find a unit in two sets of rows; None when they are the
            residual structure's groups (which the caller keeps whole).
    """

    classes: dict
    size: int
    units: np.ndarray | None

    @classmethod
    def of(cls, structure: ReStructure, residual: ResidualModel,
           xy: np.ndarray) -> "UnitSums | None":
        """The sums of the rows ``xy`` (n, P), or None where they do not apply (two or more
        grouping factors, groups that are not the units, too many distinct keys)."""
        blocks = structure.blocks
        if len(blocks) > 1:
            return None
        n, size = xy.shape
        if blocks:
            units, z = blocks[0].codes, blocks[0].values
            if residual.group_codes is not None and not _same_partition(
                    residual.group_codes, units):
                return None
        elif residual.group_codes is not None:
            units, z = residual.group_codes, np.zeros((n, 0))
        else:
            return None  # independent rows, no random effects: whitening is as cheap
        keyed = unit_keys(residual, units, z)
        m = max(rows.shape[1] for rows, _, _ in keyed)
        if sum(len(first) for _, _, first in keyed) * (m * size) ** 2 > MAX_PIECE_ENTRIES:
            return None
        classes = {}
        for rows, keys, first in keyed:
            k, width = len(first), rows.shape[1]
            order = np.argsort(keys, kind="stable")
            bounds = np.searchsorted(keys[order], np.arange(k + 1))
            pieces = np.empty((k, width, size, width, size))
            for key in range(k):
                w = xy[rows[order[bounds[key]:bounds[key + 1]]]].reshape(-1, width * size)
                pieces[key] = (w.T @ w).reshape(width, size, width, size)
            representative = rows[first]
            d = residual.positions.shape[1] if residual.positions is not None else 0
            classes[int(width)] = _SizeClass(
                unit_descriptors(residual, representative, z), z[representative],
                residual.positions[representative] if d else np.zeros((k, width, 0)),
                residual.features[representative], residual.weights[representative],
                np.bincount(keys, minlength=k).astype(float), pieces)
        return cls(classes, size, np.unique(units) if blocks else None)

    @property
    def entries(self) -> int:
        """The entries of the pieces padded to the largest size (``MarginalPieces``)."""
        m = max(self.classes)
        return sum(len(c.counts) for c in self.classes.values()) * (m * self.size) ** 2

    def __add__(self, other: "UnitSums | None") -> "UnitSums | None":
        """The sums of both sets of units; None (the sums do not apply) when a unit is in
        both, or when the keys grow beyond ``MAX_PIECE_ENTRIES``."""
        if other is None:
            return None
        units = None
        if self.units is not None:
            if np.intersect1d(self.units, other.units).size:
                return None
            units = np.union1d(self.units, other.units)
        classes = dict(self.classes)
        for m, keys in other.classes.items():
            classes[m] = classes[m] + keys if m in classes else keys
        total = UnitSums(dict(sorted(classes.items())), self.size, units)
        return total if total.entries <= MAX_PIECE_ENTRIES else None


class MarginalPieces:
    """The criterion's pieces at theta from precomputed per-key sums (see the module)."""

    def __init__(self, keys: _Keys, parameters, p: int):
        self.keys = keys
        self.parameters = parameters
        self.p = p
        self._kernel = marginal_kernel()
        self._no_lambda = np.zeros((0, 0))
        m = keys.real.shape[1]
        self._mask = keys.real[:, :, None] & keys.real[:, None, :]
        self._padding = np.where(keys.real, 0.0, 1.0)[:, :, None] * np.eye(m)

    @property
    def backend(self) -> str:
        """How the pieces are computed: "marginal pieces per pattern of units" (NumPy), with
        ", compiled" when the kernels compute them."""
        return "marginal pieces per pattern of units" + (
            ", compiled" if self._kernel is not None else "")

    @classmethod
    def of(cls, structure: ReStructure, residual: ResidualModel,
           xy: np.ndarray) -> "MarginalPieces | None":
        """The pieces, or None where they do not apply (two or more grouping factors, groups
        that are not the units, too many distinct keys)."""
        sums = UnitSums.of(structure, residual, xy)
        return None if sums is None else cls.from_sums(sums, structure.parameters)

    @classmethod
    def from_sums(cls, sums: UnitSums, parameters) -> "MarginalPieces":
        """The pieces of ``sums`` for the model's ``ParameterMap``."""
        m, size = max(sums.classes), sums.size
        count = sum(len(c.counts) for c in sums.classes.values())
        first = next(iter(sums.classes.values()))
        d, p_z = first.positions.shape[2], first.z.shape[2]
        out = _Keys(np.zeros((count, m, p_z)), np.zeros((count, m, d)), np.zeros((count, m)),
                    np.ones((count, m)), np.zeros((count, m), bool), np.zeros(count),
                    np.zeros((count, m, m, size, size)))
        start = 0
        for width, keys in sums.classes.items():
            at = slice(start, start + len(keys.counts))
            out.pieces[at, :width, :width] = keys.pieces.transpose(0, 1, 3, 2, 4)
            out.z[at, :width] = keys.z
            if d:
                out.positions[at, :width] = keys.positions
                out.positions[at, width:] = keys.positions[:, :1]
            out.features[at, :width] = keys.features
            out.features[at, width:] = keys.features[:, :1]
            out.weights[at, :width] = keys.weights
            out.real[at, :width] = True
            out.counts[at] = keys.counts
            start += len(keys.counts)
        keys = _Keys(out.z, out.positions, out.features, out.weights, out.real, out.counts,
                     out.pieces.reshape(count * m * m, size * size))
        return cls(keys, parameters, size - 1)

    def with_columns(self, transform: np.ndarray) -> "MarginalPieces":
        """The pieces of [X y] @ ``transform`` ((P, P') : new columns of X, the last a new
        response; see ``PLSSystem.with_fixed_transform``): S_kab -> T' S_kab T."""
        size = self.p + 1
        pieces = self.keys.pieces.reshape(-1, size, size)
        pieces = np.einsum("ip,kij,jq->kpq", transform, pieces, transform, optimize=True)
        keys = replace(self.keys, pieces=pieces.reshape(len(pieces), -1))
        return MarginalPieces(keys, self.parameters, transform.shape[1] - 1)

    def pieces(self, theta: np.ndarray) -> Pieces:
        """(log|V / sigma^2|, log|X'V^-1 X|, r^2) at theta; r^2 = -1 outside the domain."""
        parameters, keys = self.parameters, self.keys
        delta = theta[parameters.residual_slice]
        v = parameters.residual.blocks(delta, keys.positions, keys.features, keys.weights)
        if v is None:
            return FAILED
        if self._kernel is not None:
            lam = parameters.lambdas(theta)[0] if keys.z.shape[2] else self._no_lambda
            return Pieces(*self._kernel(v, keys.real, keys.z, lam, keys.counts, keys.pieces,
                                        self.p + 1))
        v = v * self._mask + self._padding
        if keys.z.shape[2]:
            zl = keys.z @ parameters.lambdas(theta)[0]
            v += zl @ np.swapaxes(zl, 1, 2)
        try:
            factor = np.linalg.cholesky(v)
        except np.linalg.LinAlgError:
            return FAILED
        logdet_v = 2.0 * float(keys.counts @ np.log(np.diagonal(factor, axis1=1,
                                                                 axis2=2)).sum(axis=1))
        size = self.p + 1
        total = (np.linalg.inv(v).reshape(-1) @ keys.pieces).reshape(size, size)
        factor, info = _potrf(total, lower=1)
        if info != 0:
            return FAILED
        diagonal = np.diagonal(factor)
        return Pieces(logdet_v, 2.0 * float(np.log(diagonal[: self.p]).sum()),
                      float(diagonal[-1] ** 2))


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Do the codes a and b split the rows into the same groups?"""
    return _constant_within(a, b) and _constant_within(b, a)


def _constant_within(a: np.ndarray, b: np.ndarray) -> bool:
    """Is b constant within each group of codes a (0..k-1)?"""
    first = np.full(int(a.max()) + 1, -1, dtype=np.int64)
    first[a[::-1]] = b[::-1]  # the value of b at each group's first row
    return bool(np.all(first[a] == b))
