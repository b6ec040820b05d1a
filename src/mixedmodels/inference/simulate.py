"""Responses simulated from a fitted model (as lme4's ``simulate``).

    y* = X beta + Z Lambda(theta) b* sigma + sigma e*,    b* ~ N(0, I_q), e* ~ N(0, I_n),

so that u* = sigma Lambda b* ~ N(0, G) are new random effects and y* ~ N(X beta, V). Z Lambda
is kept sparse (n x q): no dense n x q or n x n matrix is formed.

Random effects may instead be held at their conditional modes (lme4's ``use.u`` and
``re.form``): y* = X beta + Z_h u_h + Z_d Lambda_d b* sigma + sigma e*, for the held factors h
and the drawn ones d; and new rows (``newdata``) are simulated as ``predict`` encodes them,
their random effects drawn per level found in them.

Draws come from ``numpy.random.default_rng(seed)``. Simulation j uses the j-th chunk of
q + n standard normals of the stream (first b*, then e*), so the first k columns of
``simulate(fit, n, seed)`` are ``simulate(fit, k, seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..covariance.residual import KnownWeights, ResidualStructure
from ..design.build import offset_values
from ..design.materialize import ModelData
from ..diagnostics import predict as prediction
from ..diagnostics.predict import (
    fixed_matrix,
    included_blocks,
    new_frame,
    new_observation_variances,
    random_part,
    random_rows,
    unseen_level_error,
)
from ..validate import check_choice, check_integer, check_seed

__all__ = ["Simulator", "simulate"]

NEW_LEVELS = prediction.NEW_LEVELS + ("draw",)
REMEDY = ("use new_levels='draw' to draw a random effect for these rows, 'population' for a "
          "random effect of 0, or 'nan'")


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


def simulate(fit, n: int = 1, seed=None, newdata=None, include_random=False,
             new_levels: str = "error") -> np.ndarray:
    """Simulate n responses from the fitted model (lme4's ``simulate``).

    Args:
        fit: an ``LmmFit``.
        n: number of simulated responses (0 or more).
        seed: a non-negative int, a ``numpy.random.SeedSequence``, ``Generator`` or
            ``BitGenerator``, or None for fresh entropy; the same seed gives the same draws.
        newdata: None (the rows of the fit) or a DataFrame (or a dict of columns) with the
            columns the formula uses, encoded as ``predict`` encodes it. Its new
            observations are independent given the random effects, with the residual
            variance ``predict``'s prediction interval gives each row (the variance
            function's, over the row's prior weight when the weights are a column it has);
            a fit with correlated residuals (``correlation=``) simulates only its own rows.
        include_random: the grouping factors whose random effects are held at their
            conditional modes, the others being drawn anew: False (the default, lme4's
            ``re.form = NA``: all drawn, y* ~ N(X beta, V)), True (all held, lme4's
            ``use.u = TRUE``: y* = X beta + Z u_hat + e*) or a list of grouping factors
            (lme4's ``re.form``).
        new_levels: for a held grouping factor, a level of ``newdata`` not seen at fit time
            (or missing): "error", "population" (no random effect, lme4's
            ``allow.new.levels = TRUE``), "nan", or "draw" (a new draw from N(0, G), as the
            factors that are not held get). A factor that is not held draws every level of
            ``newdata``, new or not; a row missing its level is then handled as this says.

    Returns:
        An (m, n) array: column j is one simulated response, in the rows of the fit (m = nobs)
        or of ``newdata`` (NaN in its rows missing a value the formula needs).

    Raises:
        DataError: ``newdata`` lacks a column the model needs, or has a level of a held
            grouping factor not seen at fit time (with ``new_levels="error"``).
        ValueError: ``newdata`` with a fit whose residuals are correlated.
    """
    n = check_integer(n, "n (the number of simulations)", minimum=0)
    new_levels = check_choice(new_levels, "new_levels", NEW_LEVELS)
    held = included_blocks(fit, include_random)
    rng = np.random.default_rng(check_seed(seed, generators=True))
    if newdata is None and not held.any():
        simulator, rows, size = Simulator.from_fit(fit), None, fit.nobs
    else:
        simulator, rows, size = _conditional_simulator(fit, newdata, held, new_levels)
    try:
        draws = simulator.draw(n, rng)
    except MemoryError:
        gib = n * size * 8 / 2 ** 30
        raise MemoryError(f"n = {n} simulations of {size} observations take {gib:,.1f} "
                          "GiB (and as much again while they are drawn), more than this "
                          "machine can give: simulate fewer at a time") from None
    if rows is None:
        return draws
    out = np.full((size, n), np.nan)
    out[rows] = draws
    return out


def _conditional_simulator(fit, newdata, held: np.ndarray, new_levels: str):
    """(a Simulator of the rows, their positions in the output or None for all, the number of
    output rows) for ``newdata`` or for the fit's rows with some factors held."""
    design = fit.model.design
    if newdata is None:
        frame, rows, size = design.frame, None, fit.nobs
        mean = design.X @ fit.beta + design.offset
        residual = fit.residual
    else:
        if not fit.residual.separable:
            raise ValueError("simulate(newdata=...) draws independent new observations, and "
                             "this fit's residuals are correlated (correlation=): simulate "
                             "the fitted rows (newdata=None)")
        newdata = new_frame(newdata)
        size = len(newdata)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            X, complete = fixed_matrix(fit, newdata, include_random=True)
            rows = np.flatnonzero(complete)
            frame = newdata.iloc[rows]
            offsets = offset_values(ModelData.of(frame, design.transforms),
                                    design.formula.offsets, finite=False)
        mean = X[rows] @ fit.beta + offsets
        residual = KnownWeights(1.0 / new_observation_variances(fit, frame))
    if not len(frame) or not held.size:  # no complete row, or no random effects (gls)
        return Simulator(mean, sp.csr_array((len(frame), 0)), float(fit.sigma), residual), \
            rows, size
    by_block = random_rows(fit, frame)
    if held.any():
        unseen = "population" if new_levels == "draw" else new_levels
        mean = mean + random_part(fit, by_block, unseen, held, frame.index, REMEDY)
    zlam, unknown = _drawn_effects(fit, by_block, held, new_levels, frame.index, len(frame))
    mean = np.where(unknown, np.nan, mean)
    return Simulator(np.asarray(mean, dtype=float), zlam, float(fit.sigma), residual), rows, size


def _drawn_effects(fit, by_block, held: np.ndarray, new_levels: str, row_labels,
                   nrows: int) -> tuple[sp.csr_array, np.ndarray]:
    """(rows x q*) sparse Z Lambda of the random effects drawn anew: every level of the factors
    not held, and with ``new_levels="draw"`` the unseen levels of the held ones; and the rows
    left unknown (NaN). A row missing its level of a factor not held follows ``new_levels``
    as an unseen level of a held factor does (drawn, it is a level of its own)."""
    pieces = [sp.csr_array((nrows, 0))]
    unknown = np.zeros(nrows, dtype=bool)
    for b, block in enumerate(fit.model.structure.blocks):
        labels, index, values = by_block[b]
        missing = np.array([label is None for label in labels], dtype=bool)
        if held[b]:
            drawn = (index < 0) if new_levels == "draw" else np.zeros(nrows, dtype=bool)
        else:
            if missing.any() and new_levels == "error":
                unseen_level_error(block.group, labels, missing, row_labels, REMEDY)
            drawn = ~missing | (new_levels == "draw")
            unknown |= missing & (new_levels == "nan")
        if not drawn.any():
            continue
        codes = np.empty(nrows, dtype=np.intp)
        codes[~missing] = pd.factorize(labels[~missing])[0]
        codes[missing] = nrows + np.arange(missing.sum())  # each a level of its own
        codes = pd.factorize(codes[drawn])[0]
        levels, p = int(codes.max()) + 1, block.p
        z = sp.csr_array((values[drawn].ravel(),
                          (np.repeat(np.flatnonzero(drawn), p),
                           (codes[:, None] * p + np.arange(p)).ravel())),
                         shape=(nrows, levels * p))
        pieces.append(sp.csr_array(z @ sp.kron(sp.eye(levels), block.lam(fit.theta))))
    return sp.csr_array(sp.hstack(pieces, format="csr")), unknown
