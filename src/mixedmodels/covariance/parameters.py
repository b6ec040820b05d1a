"""theta: the covariance structures of a model's random-effects terms, joined.

lme4 concatenates the terms' parameter vectors in term order (Bates et al. 2015, section 2.2).
For computing, the terms on the same grouping factor are stacked side by side into one block,
whose k x k factor is block-diagonal across those terms (as MixedModels.jl does); the map lays
out both: the slice of theta of each term, and per block the pattern that fills that block's
factor from the *entries* vector.

The entries are what the factors are filled with (``entries(theta)``): theta itself when every
term's structure is linear in its parameters (lme4's structures; no copy, no work: the
objective's hot path), else the concatenation of each term's entries (a structured term's
lower triangle of lam, computed from its parameters).

A model with a parameterized residual structure (a correlation structure, a variance function)
appends that structure's parameters delta after the terms': theta = (terms' parameters,
delta), one vector for the optimizer, the profile and the bootstrap alike. The entries read
only the terms' part.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .correlation import Toep
from .nested import Held, Restriction, toeplitz_restrictions
from .structured import Toeplitz
from .structures import SINGULAR_TOLERANCE, BoundaryRule, CovarianceStructure, LinearPattern

__all__ = ["ParameterMap"]


class ParameterMap:
    """The model's theta and its terms: one ``CovarianceStructure`` per term, in lme4's order.

    Args:
        structures: one per term.
        columns: each term's column names.
        groups: each term's grouping factor.
        residual: the residual structure's parameters (a ``ResidualModel``), or None.

    Attributes:
        structures, columns, groups: as given.
        slices: each term's part of theta.
        blocks: per grouping factor (in order of first appearance), its terms in column order.
        block_of, offsets: per term, its block and the block column of its first column.
        patterns: per block, the ``LinearPattern`` of its factor in the entries vector (built
            once, read by every evaluation of the objective).
        n_random: the length of the terms' part of theta.
        residual_slice: the residual structure's part of theta (empty without one).
        n_params: the length of theta.
        linear: every structure is linear in its parameters: the entries are theta.
        entry_slices: each term's part of the entries vector.
    """

    def __init__(self, structures: Sequence[CovarianceStructure],
                 columns: Sequence[tuple[str, ...]], groups: Sequence[str], residual=None):
        self.structures = tuple(structures)
        self.columns = tuple(columns)
        self.groups = tuple(groups)
        self.residual = residual if residual is not None and residual.n_params else None
        ends = np.cumsum([s.n_params for s in self.structures]).tolist()
        self.slices = tuple(slice(end - s.n_params, end) for s, end in zip(self.structures, ends))
        self.n_random = ends[-1] if ends else 0
        self.n_params = self.n_random + (self.residual.n_params if self.residual else 0)
        self.residual_slice = slice(self.n_random, self.n_params)
        self.linear = all(s.linear for s in self.structures)
        entry_ends = np.cumsum([s.n_entries for s in self.structures]).tolist()
        self.entry_slices = tuple(slice(end - s.n_entries, end)
                                  for s, end in zip(self.structures, entry_ends))
        self._terms = tuple(zip(self.structures, self.slices))
        # the structures whose boundary rule is not the common one (``on_boundary``)
        self._own_rules = tuple((s, part) for s, part in self._terms
                                if type(s).on_boundary is not CovarianceStructure.on_boundary)
        members = {group: [] for group in self.groups}
        for t, group in enumerate(self.groups):
            members[group].append(t)
        self.blocks = tuple(tuple(terms) for terms in members.values())
        self.block_of, self.offsets = _placement(self.blocks, self.structures)
        self.patterns = tuple(self._block_pattern(terms) for terms in self.blocks)
        parts = list(self.structures) + ([self.residual] if self.residual else [])
        self._bounds = tuple(_frozen(np.concatenate([getattr(s, kind)() for s in parts] or
                                                    [np.zeros(0)]))
                             for kind in ("start", "lower", "upper"))
        self._boundary = BoundaryRule(self._bounds[1][:self.n_random],
                                      self._bounds[2][:self.n_random])

    def _block_pattern(self, terms: tuple[int, ...]) -> LinearPattern:
        """The terms' patterns shifted to their block columns and entries positions."""
        parts = [(self.structures[t].pattern, self.offsets[t], self.entry_slices[t].start)
                 for t in terms]
        return LinearPattern(np.concatenate([p.rows + offset for p, offset, _ in parts]),
                             np.concatenate([p.cols + offset for p, offset, _ in parts]),
                             np.concatenate([p.index + first for p, _, first in parts]),
                             sum(self.structures[t].k for t in terms))

    def block_intercepts(self) -> tuple[int, ...]:
        """Per block, the block column of its "(Intercept)" column, or -1 (computed once)."""
        if getattr(self, "_intercepts", None) is None:
            found = []
            for terms in self.blocks:
                columns = [self.offsets[t] + j for t in terms
                           for j, name in enumerate(self.columns[t]) if name == "(Intercept)"]
                found.append(columns[0] if columns else -1)
            self._intercepts = tuple(found)
        return self._intercepts

    def start(self) -> np.ndarray:
        """(n_params,) the optimizer's start (lme4's: every term's factor the identity),
        read-only."""
        return self._bounds[0]

    def lower(self) -> np.ndarray:
        """(n_params,) lower bounds of theta, read-only."""
        return self._bounds[1]

    def upper(self) -> np.ndarray:
        """(n_params,) upper bounds of theta, read-only."""
        return self._bounds[2]

    def names(self) -> list[str]:
        """The names of ``sdcor``'s values, as lme4's ``confint(oldNames = FALSE)``."""
        return [name for s, columns, group in zip(self.structures, self.columns, self.groups)
                for name in s.names(columns, group)] + (
                    self.residual.names() if self.residual else [])

    def split(self, theta: np.ndarray) -> list[np.ndarray]:
        """theta as one parameter vector per term."""
        return [theta[part] for part in self.slices]

    def entries(self, theta: np.ndarray) -> np.ndarray:
        """The vector the ``patterns`` index: theta itself (not a copy) when every structure is
        linear, else the terms' entries joined.

        Raises:
            numpy.linalg.LinAlgError: a structured term's parameters outside their domain.
        """
        if self.linear:
            return theta
        return np.concatenate([s.entries(theta[part]) for s, part in self._terms])

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per block, its (p, p) relative covariance factor.

        Raises:
            numpy.linalg.LinAlgError: a structured term's parameters outside their domain.
        """
        entries = self.entries(theta)
        return [pattern.lam(entries) for pattern in self.patterns]

    def unbounded(self, theta: np.ndarray) -> np.ndarray:
        """theta with each parameter bounded on both sides (a structured term's correlation)
        mapped to the real line, z = atanh(2 (x - lower) / (upper - lower) - 1); the others
        (sds, lme4's parameters) as they are. For numerical derivatives, whose steps must not
        leave the domain; ``bounded`` is its inverse."""
        z = np.array(theta, dtype=float)
        interval = self._interval()
        if interval.any():
            lower, upper = self.lower()[interval], self.upper()[interval]
            scaled = 2.0 * (z[: self.n_params][interval] - lower) / (upper - lower) - 1.0
            z[np.flatnonzero(interval)] = np.arctanh(scaled)
        return z

    def bounded(self, z: np.ndarray) -> np.ndarray:
        """The inverse of ``unbounded``."""
        theta = np.array(z, dtype=float)
        interval = self._interval()
        if interval.any():
            lower, upper = self.lower()[interval], self.upper()[interval]
            theta[np.flatnonzero(interval)] = lower + (upper - lower) * 0.5 * (
                np.tanh(theta[: self.n_params][interval]) + 1.0)
        return theta

    def bounded_derivative(self, z: np.ndarray) -> np.ndarray:
        """d bounded(z) / dz, elementwise (the map acts on each parameter alone):
        (upper - lower) / (2 cosh(z)^2) for the parameters bounded on both sides, 1 for the
        others."""
        out = np.ones(len(z))
        interval = self._interval()
        if interval.any():
            lower, upper = self.lower()[interval], self.upper()[interval]
            out[np.flatnonzero(interval)] = (upper - lower) * 0.5 / np.cosh(
                np.asarray(z, dtype=float)[: self.n_params][interval]) ** 2
        return out

    def sign_free(self) -> np.ndarray:
        """(n_params,) bool: the parameters whose sign does not matter: the diagonal of a
        linear term's lam (lme4's lower bound 0). Negating column c of lam leaves lam lam'
        unchanged, so the criterion is even in lam[c, c] (with the entries below it negated
        too): a gradient-driven optimizer may cross 0 freely, where on the bound the gradient
        would vanish whether or not the optimum is there. ``canonical`` maps back."""
        free = [(s.lower() == 0) & s.linear for s in self.structures]
        return np.concatenate(free + [np.zeros(self.n_params - self.n_random, dtype=bool)])

    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """theta with every linear term's lam columns negated where their diagonal entry is
        negative: the same covariances, lme4's bounds (see ``sign_free``)."""
        theta = np.array(theta, dtype=float)
        for structure, part in self._terms:
            if not structure.linear:
                continue
            pattern = structure.pattern
            lam = pattern.lam(theta[part])
            lam *= np.where(np.diagonal(lam) < 0, -1.0, 1.0)[None, :]
            params = theta[part]
            params[pattern.index] = lam[pattern.rows, pattern.cols]
            theta[part] = params
        return theta

    def _interval(self) -> np.ndarray:
        """(n_params,) bool: the parameters bounded on both sides."""
        return np.isfinite(self.lower()) & np.isfinite(self.upper())

    def sdcor(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """(n_params,) the terms' standard deviations and correlations, in theta's order, then
        the residual structure's reported values (correlations, sd ratios...)."""
        return np.concatenate([s.sdcor(params, sigma)
                               for s, params in zip(self.structures, self.split(theta))]
                              + self._residual_part("values", theta))

    def _residual_part(self, method: str, theta: np.ndarray) -> list:
        if self.residual is None:
            return [np.zeros(0)]
        return [getattr(self.residual, method)(theta[self.residual_slice])]

    def from_sdcor(self, values: np.ndarray, sigma: float) -> np.ndarray:
        """(n_params,) theta of the given ``sdcor`` values (semi-definite terms allowed)."""
        return np.concatenate([s.from_sdcor(part, sigma)
                               for s, part in zip(self.structures, self.split(values))]
                              + self._residual_part("from_values", values))

    def sdcor_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each (n_params,), of ``sdcor``'s values."""
        bounds = [s.sdcor_bounds() for s in self.structures]
        if self.residual is not None:
            bounds.append(self.residual.value_bounds())
        return (np.concatenate([lower for lower, _ in bounds] or [np.zeros(0)]),
                np.concatenate([upper for _, upper in bounds] or [np.zeros(0)]))

    def on_boundary(self, theta: np.ndarray, tol: float = SINGULAR_TOLERANCE,
                    units: np.ndarray | None = None) -> np.ndarray:
        """(n_params,) bool: the parameters on their boundary (see ``is_singular``): each
        structure's rule, the common one applied to all the terms' parameters at once (a fit
        asks twice; two terms: 10 us so, 23 us structure by structure). ``units``: (n_params,)
        theta's units (``core.start.theta_units``); the common rule then applies to theta /
        units, so that a slope on a covariate in large units (theta about 1e-5 on income in
        dollars) is not on the boundary for its unit alone."""
        random = theta[:self.n_random]
        out = self._boundary(random if units is None else random / units[:self.n_random], tol)
        for s, part in self._own_rules:
            out[part] = s.on_boundary(theta[part] if units is None else theta[part] / units[part],
                                      tol)
        if self.residual is not None:
            out = np.concatenate([out, self.residual.on_boundary(theta[self.residual_slice],
                                                                 tol)])
        return out

    def restrictions(self, theta: np.ndarray) -> list[Restriction | Held]:
        """The restrictions of theta to the structures nested in each Toeplitz correlation
        (of a ``toep()`` term, or the residuals'), and to its last partial autocorrelation's
        bounds, and to a residual correlation's independence (every correlation 0),
        starting from theta (``covariance.nested``); and theta at each range of a compact
        spatial correlation's scan (``Spatial.scan``: the spherical and linear criteria
        have a local optimum between each two distances of the data)."""
        out = []
        lower, upper = self.lower(), self.upper()
        for t, (s, part) in enumerate(self._terms):
            if isinstance(s, Toeplitz):
                rho = slice(part.start + s.n_sd, part.stop)
                out += toeplitz_restrictions(theta, rho, s.correlations(theta[rho]),
                                             f"term {t + 1}", s.correlation_parameters,
                                             lower, upper)
        correlation = self.residual.correlation if self.residual is not None else None
        if correlation is None:
            return out
        part = slice(self.n_random, self.n_random + correlation.n_params)
        if isinstance(correlation, Toep):
            out += toeplitz_restrictions(theta, part, correlation.values(theta[part]),
                                         "the residual correlation", correlation.from_values,
                                         lower, upper)
        independent = correlation.from_values(np.zeros(len(correlation.value_bounds()[0])))
        if np.all(np.isfinite(independent)) and not np.allclose(theta[part], independent):
            out.append(Held("independent residuals", theta, np.arange(len(theta))[part],
                            independent, lower, upper))
        everything = np.arange(len(theta))
        current = float(correlation.values(theta[part])[0]) if correlation.n_params else 0.0
        for value in correlation.scan(current):  # every parameter held: the criterion there
            point = theta.copy()
            point[part] = correlation.from_values(np.array([value]))
            out.append(Held(f"range {value:.4g}", point, everything, point, lower, upper))
        return out

    def is_singular(self, theta: np.ndarray, tol: float = SINGULAR_TOLERANCE,
                    units: np.ndarray | None = None) -> bool:
        """lme4's ``isSingular``: a term's bounded parameter within ``tol`` of its bound
        (in ``units``, as ``on_boundary``)."""
        return bool(np.any(self.on_boundary(theta, tol, units)))


def _placement(blocks, structures) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per term, its block and the block column of its first column."""
    block_of, offsets = [0] * len(structures), [0] * len(structures)
    for b, terms in enumerate(blocks):
        offset = 0
        for t in terms:
            block_of[t], offsets[t] = b, offset
            offset += structures[t].k
    return tuple(block_of), tuple(offsets)


def _frozen(array: np.ndarray) -> np.ndarray:
    """The array, read-only: shared by every caller, changed by none."""
    array.flags.writeable = False
    return array
