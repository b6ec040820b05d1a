"""Random-effects structure: grouping-factor blocks of Z and the terms' covariance parameters.

lme4 keeps one term per bar; each term has a covariance structure (``covariance.structures``)
and theta joins their parameters (``covariance.parameters.ParameterMap``). For computing, terms
on the same grouping factor are stacked side by side into one ``ReBlock`` (as MixedModels.jl
does), so that the first diagonal block of L stays block-diagonal: Lambda_b = blockdiag over
levels of one p x p lower-triangular ``lam``, block-diagonal across that factor's terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
import scipy.sparse as sp

from ..covariance.parameters import ParameterMap
from ..covariance.structured import (
    AutoRegressive,
    CompoundSymmetry,
    HomogeneousDiagonal,
    Toeplitz,
)
from ..covariance.structures import (
    CovarianceStructure,
    Diagonal,
    LinearPattern,
    Scalar,
    Unstructured,
)
from ..design.build import TermDesign
from ..errors import FormulaError
from ..formula.parse import r_written

__all__ = ["ReBlock", "ReTerm", "ReStructure", "build_structure"]


@dataclass(frozen=True)
class ReTerm:
    """One lme4 term, as reported (varcorr rows); its parameters are those of the same term
    in the ``ParameterMap``.

    Attributes:
        group: the grouping factor's name.
        label: its name in variance tables: lme4 appends ``.1``, ``.2`` to repeated names.
        columns: the term's column names.
        block: index of the ``ReBlock`` that holds it; ``offset``: its first column there.
    """

    group: str
    label: str
    columns: tuple[str, ...]
    block: int
    offset: int

    @property
    def p(self) -> int:
        return len(self.columns)


@dataclass(frozen=True)
class ReBlock:
    """All random effects of one grouping factor: Z_b has ``levels * p`` columns, level-major.

    Attributes:
        values: (n, p) the per-observation values of the block's columns.
        codes: (n,) level of each observation.
        pattern: how the entries vector fills the block's p x p factor (from the
            ``ParameterMap``).
        entries: theta -> the entries vector (the ``ParameterMap``'s ``entries``); None for
            theta itself.
    """

    group: str
    levels: np.ndarray
    codes: np.ndarray
    values: np.ndarray
    columns: tuple[str, ...]
    pattern: LinearPattern
    entries: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False,
                                                               compare=False)

    @property
    def p(self) -> int:
        return self.values.shape[1]

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def q(self) -> int:
        return self.nlevels * self.p

    def lam(self, theta: np.ndarray) -> np.ndarray:
        """The p x p lower-triangular relative covariance factor for this theta."""
        return self.pattern.lam(theta if self.entries is None else self.entries(theta))

    def z_matrix(self, rows: slice = slice(None)) -> sp.csr_array:
        """Z_b (or the given rows of it) as a sparse matrix, p entries per row."""
        codes, values = self.codes[rows], self.values[rows]
        n = len(codes)
        columns = (codes[:, None] * self.p + np.arange(self.p)).ravel()
        indptr = np.arange(0, n * self.p + 1, self.p)
        return sp.csr_array((values.ravel(), columns, indptr), shape=(n, self.q))


@dataclass(frozen=True)
class ReStructure:
    """The blocks (for computing), the terms (for reporting) and theta's map of one model."""

    blocks: tuple[ReBlock, ...]
    terms: tuple[ReTerm, ...]
    parameters: ParameterMap


def build_structure(terms: tuple[TermDesign, ...], residual=None) -> ReStructure:
    """One covariance structure per term (lme4's: unstructured, a scalar for one column; or
    the term's ``diag``, ``cs``, ``ar1``, ``toep``), theta in lme4's term order, and the terms
    stacked by grouping factor (blocks in order of first appearance, i.e. by decreasing number
    of levels). ``residual``: the residual structure's parameters (a ``ResidualModel``),
    appended to theta; None for Psi fixed.

    Raises:
        FormulaError: a ``cs``, ``ar1`` or ``toep`` term with one column.
    """
    signature = tuple((t.structure, t.hom, t.columns, t.group) for t in terms)
    for t in terms:
        _check_columns(t)
    parameters = _parameter_map(signature) if residual is None else \
        ParameterMap(*_map_arguments(signature), residual)
    seen: dict[str, int] = {}
    re_terms = []
    for i, t in enumerate(terms):
        count = seen.get(t.group, 0)
        seen[t.group] = count + 1
        label = t.group if count == 0 else f"{t.group}.{count}"
        re_terms.append(ReTerm(t.group, label, t.columns, parameters.block_of[i],
                               parameters.offsets[i]))
    blocks = []
    for members, pattern in zip(parameters.blocks, parameters.patterns):
        first = terms[members[0]]
        values = terms[members[0]].values if len(members) == 1 else \
            np.column_stack([terms[i].values for i in members])
        columns = tuple(c for i in members for c in terms[i].columns)
        blocks.append(ReBlock(first.group, first.levels, first.codes, values, columns, pattern,
                              parameters.entries))
    return ReStructure(tuple(blocks), tuple(re_terms), parameters)


_CORRELATED = {"cs": CompoundSymmetry, "ar1": AutoRegressive, "toep": Toeplitz}


@lru_cache(maxsize=64)
def _parameter_map(signature: tuple) -> ParameterMap:
    """The ``ParameterMap`` of terms given as (structure, hom, columns, group), without a
    residual structure. It is the same for every fit of a formula to data with the same
    levels, and nothing changes it after it is built, so fits share it: ``build_structure``
    takes 9-27 us with it kept, 60-130 us building it (the small reference models)."""
    return ParameterMap(*_map_arguments(signature))


def _map_arguments(signature: tuple) -> tuple[list, list, list]:
    """(structures, columns, groups) of terms given as (structure, hom, columns, group)."""
    return ([_covariance(name, hom, len(columns)) for name, hom, columns, _ in signature],
            [columns for _, _, columns, _ in signature], [group for *_, group in signature])


def _check_columns(term: TermDesign) -> None:
    """A ``cs``, ``ar1`` or ``toep`` term needs two columns or more."""
    if term.structure in _CORRELATED and len(term.columns) < 2:
        raise FormulaError(f"the random-effects term {term.term.label} has one column "
                           f"({term.columns[0]}); {term.structure}() correlates two or more "
                           f"columns: write ({r_written(term.term.expr)} | {term.group}) for "
                           "one")


def _covariance(name: str, hom: bool, k: int) -> CovarianceStructure:
    """The structure of a term of ``k`` columns: lme4's ``(x | g)`` (``us``) is unstructured,
    a scalar for one column (``||`` gives one-column terms); ``diag`` one sd per column
    (``hom``: one shared); ``cs``, ``ar1`` and ``toep`` (``covariance.structured``, two
    columns or more: ``_check_columns``)."""
    if name == "us":
        return Scalar() if k == 1 else Unstructured(k)
    if name == "diag":
        return Scalar() if k == 1 else (HomogeneousDiagonal(k) if hom else Diagonal(k))
    return _CORRELATED[name](k, hom)
