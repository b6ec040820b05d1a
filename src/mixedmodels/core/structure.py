"""Random-effects structure: grouping-factor blocks of Z and the map theta -> Lambda.

lme4 keeps one term per bar; its theta is the concatenation, term by term, of the lower
triangle (column-major) of each term's relative covariance factor. For computing, terms on the
same grouping factor are stacked side by side into one ``ReBlock`` (as MixedModels.jl does), so
that the first diagonal block of L stays block-diagonal: Lambda_b = blockdiag over levels of one
p x p lower-triangular ``lam``, block-diagonal across that factor's terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..design.build import TermDesign

__all__ = ["ReBlock", "ReTerm", "ReStructure", "build_structure"]


@dataclass(frozen=True)
class ReTerm:
    """One lme4 term, as reported (varcorr rows, theta entries).

    Attributes:
        group: the grouping factor's name.
        label: its name in variance tables: lme4 appends ``.1``, ``.2`` to repeated names.
        columns: the term's column names.
        block: index of the ``ReBlock`` that holds it; ``offset``: its first column there.
        theta: the slice of theta that parameterizes it.
    """

    group: str
    label: str
    columns: tuple[str, ...]
    block: int
    offset: int
    theta: slice

    @property
    def p(self) -> int:
        return len(self.columns)


@dataclass(frozen=True)
class ReBlock:
    """All random effects of one grouping factor: Z_b has ``levels * p`` columns, level-major.

    Attributes:
        values: (n, p) the per-observation values of the block's columns.
        codes: (n,) level of each observation.
        lam_rows, lam_cols, theta_index: lam[lam_rows[k], lam_cols[k]] = theta[theta_index[k]].
    """

    group: str
    levels: np.ndarray
    codes: np.ndarray
    values: np.ndarray
    columns: tuple[str, ...]
    lam_rows: np.ndarray
    lam_cols: np.ndarray
    theta_index: np.ndarray

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
        lam = np.zeros((self.p, self.p))
        lam[self.lam_rows, self.lam_cols] = theta[self.theta_index]
        return lam

    def z_matrix(self, rows: slice = slice(None)) -> sp.csr_array:
        """Z_b (or the given rows of it) as a sparse matrix, p entries per row."""
        codes, values = self.codes[rows], self.values[rows]
        n = len(codes)
        columns = (codes[:, None] * self.p + np.arange(self.p)).ravel()
        indptr = np.arange(0, n * self.p + 1, self.p)
        return sp.csr_array((values.ravel(), columns, indptr), shape=(n, self.q))


@dataclass(frozen=True)
class ReStructure:
    """The blocks (for computing) and the terms (for reporting) of one model."""

    blocks: tuple[ReBlock, ...]
    terms: tuple[ReTerm, ...]
    ntheta: int

    def lower_bounds(self) -> np.ndarray:
        """0 for diagonal entries of each lam (standard deviations), -inf elsewhere."""
        bounds = np.full(self.ntheta, -np.inf)
        for term in self.terms:
            bounds[term.theta.start + _diagonal_offsets(term.p)] = 0.0
        return bounds

    def initial_theta(self) -> np.ndarray:
        """Identity relative covariance: 1 on diagonals, 0 off them (lme4's start)."""
        return np.where(self.lower_bounds() == 0.0, 1.0, 0.0)

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        return [block.lam(theta) for block in self.blocks]


def _diagonal_offsets(p: int) -> np.ndarray:
    """Positions of the diagonal in the column-major lower triangle of a p x p matrix."""
    return np.cumsum([0] + [p - j for j in range(p - 1)])


def build_structure(terms: tuple[TermDesign, ...]) -> ReStructure:
    """Stack terms by grouping factor (blocks in order of first appearance, i.e. by decreasing
    number of levels) and lay out theta in lme4's term order."""
    block_names = list(dict.fromkeys(t.group for t in terms))
    members: dict[str, list[int]] = {name: [] for name in block_names}
    for i, t in enumerate(terms):
        members[t.group].append(i)

    re_terms: list[ReTerm | None] = [None] * len(terms)
    placement = {}
    for b, name in enumerate(block_names):
        offset = 0
        for i in members[name]:
            placement[i] = (b, offset)
            offset += terms[i].values.shape[1]

    seen: dict[str, int] = {}
    start = 0
    for i, t in enumerate(terms):
        p = t.values.shape[1]
        count = seen.get(t.group, 0)
        seen[t.group] = count + 1
        label = t.group if count == 0 else f"{t.group}.{count}"
        block, offset = placement[i]
        size = p * (p + 1) // 2
        re_terms[i] = ReTerm(t.group, label, t.columns, block, offset, slice(start, start + size))
        start += size

    blocks = []
    for b, name in enumerate(block_names):
        rows, cols, index = [], [], []
        for i in members[name]:
            term = re_terms[i]
            r, c = np.tril_indices(term.p)
            order = np.lexsort((r, c))  # column-major, as lme4 stores theta
            rows.append(r[order] + term.offset)
            cols.append(c[order] + term.offset)
            index.append(np.arange(term.theta.start, term.theta.stop))
        first = terms[members[name][0]]
        values = np.column_stack([terms[i].values for i in members[name]])
        columns = tuple(c for i in members[name] for c in terms[i].columns)
        blocks.append(ReBlock(name, first.levels, first.codes, values, columns,
                              np.concatenate(rows), np.concatenate(cols), np.concatenate(index)))
    return ReStructure(tuple(blocks), tuple(re_terms), start)
