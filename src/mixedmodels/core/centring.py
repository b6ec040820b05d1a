"""Optimizer coordinates for a random-effects term on covariates far from 0.

A term (1 + x | g) on a covariate whose mean m is many sds from 0 (a year, a dose of 1000 +
a few units) has its intercept at x = 0, far from the data: the intercept's sd is about m
times the slope's, and the two are correlated nearly -1. lam, in which lme4's criterion is
smooth and which the optimizers search, is then ill-conditioned: on sleepstudy with Days +
1000, L-BFGS stopped on the boundary 40 units of REML criterion above the optimum (and
BOBYQA from lme4's start went no better), though the criterion itself was right to 1e-8
there. The model is the same with x centred: x - m only moves the intercept, b = M b_c with
M = I - e_j m' (j the intercept's column, m the columns' means, m_j = 0), so Sigma = M Sigma_c
M' and lam lam' = M lam_c lam_c' M'.

``CentredCoordinates`` gives the optimizer lam_c (theta_c: the same pattern, bounds and
parameters as theta) and the objective theta(theta_c): lam is the lower-triangular factor of
M lam_c lam_c' M', from the QR decomposition of (M lam_c)' (no Cholesky, which fails where
lam_c is singular, at the bounds the optimizer tries), with its diagonal made non-negative.
The optimum is reported in lme4's coordinates, theta, as every fit is.

Only terms where this is the same model are centred: a block of one unstructured term
(lme4's (x | g)) with an intercept, whose columns' weighted mean is more than
``CENTRING_RATIO`` sds from 0. A residual structure's parameters are searched as they are
(the shift moves only the random effects). ``(x || g)`` and structured terms are not (their
covariance is not closed under the shift: uncorrelated at x = 0 is correlated at x = m);
``far_structured_columns`` finds the structured ones, of which the model warns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..covariance.parameters import ParameterMap
from ..covariance.structures import Unstructured
from .start import set_units

__all__ = ["CENTRING_RATIO", "CentredCoordinates", "far_structured_columns"]

#: a term is centred where a column's mean is more than this many sds from 0: at 36 sds
#: (sleepstudy's Days + 100) L-BFGS still reached the optimum in theta, at 350 (Days + 1000)
#: it stopped 40 above it
CENTRING_RATIO = 10.0

#: the steps of ``CentredCoordinates.jacobian``, relative to each parameter's unit
JACOBIAN_STEP = 1e-6


class CentredCoordinates:
    """theta as a function of theta_c, the optimizer's coordinates in which the centred
    terms' columns are centred (see the module docstring).

    Args:
        shifts: per centred block, (its index among the blocks, its pattern in theta,
            M (k, k), its columns' spreads (k,) about their means: sds, and the intercept's
            root mean square).
    """

    def __init__(self, shifts):
        self.shifts = tuple(shifts)

    @classmethod
    def of(cls, parameters: ParameterMap, totals: Sequence[np.ndarray],
           n: int) -> "CentredCoordinates | None":
        """The coordinates of a model of ``n`` rows whose blocks' columns have the sums of
        products ``totals`` (per block of ``parameters.blocks``, (k, k): sum_i w_i z_i z_i',
        the sum of A's level blocks), or None where no term is centred."""
        if not parameters.linear:
            return None
        shifts = []
        for b, (terms, j) in enumerate(zip(parameters.blocks, parameters.block_intercepts())):
            structure = parameters.structures[terms[0]]
            if len(terms) != 1 or type(structure) is not Unstructured or structure.k < 2 \
                    or j < 0:
                continue
            sums = totals[b]
            means = _far_means(sums.tolist(), j)  # (on k x k floats: 2 us, NumPy's 12)
            if means is None:
                continue
            shift = np.eye(structure.k)
            shift[j] -= means
            variances = np.diagonal(sums) - means ** 2 * sums[j, j]
            spreads = np.sqrt(np.maximum(variances, 0.0) / n)
            spreads[j] = np.sqrt(sums[j, j] / n)
            spreads = np.where(np.isfinite(spreads) & (spreads > 0.0), spreads, 1.0)
            shifts.append((b, parameters.patterns[b], shift, spreads))
        return cls(shifts) if shifts else None

    def units(self, units: np.ndarray) -> np.ndarray:
        """(n_params,) theta_c's units: ``units`` (theta's, ``core.start.theta_units``) with
        the centred terms' from their columns' spreads about their means (where a mean is
        1e4 sds from 0 and more, theta's spread of the column falls back to its root mean
        square)."""
        units = np.array(units, dtype=float)
        for _, pattern, _, spreads in self.shifts:
            set_units(units, spreads, pattern)
        return units

    def theta(self, centred: np.ndarray) -> np.ndarray:
        """(n_params,) theta of the optimizer's ``centred`` (n_params,)."""
        return self._mapped(centred, inverse=False)

    def centred(self, theta: np.ndarray) -> np.ndarray:
        """(n_params,) the centred coordinates of ``theta`` (the inverse of ``theta``: M^-1 =
        I + e_j m')."""
        return self._mapped(theta, inverse=True)

    def jacobian(self, centred: np.ndarray, units: np.ndarray) -> np.ndarray:
        """(n_params, n_params) d theta / d theta_c at ``centred`` (row i: the derivatives by
        theta_c[i]), for the gradient in these coordinates (J g): the identity outside the
        centred blocks; within each, central differences of its map with steps
        ``JACOBIAN_STEP`` times each parameter's unit (``units``), all in one batched QR
        decomposition. The map is smooth and cheap (a k x k QR per point): the differences
        are exact but for rounding, about 1e-10 relative."""
        centred = np.asarray(centred, dtype=float)
        out = np.eye(len(centred))
        for _, pattern, shift, _ in self.shifts:
            params = pattern.index
            m = len(params)
            steps = JACOBIAN_STEP * units[params]
            points = np.repeat(centred[None, :], 2 * m, axis=0)
            points[np.arange(m), params] += steps
            points[m + np.arange(m), params] -= steps
            lams = np.zeros((2 * m, pattern.size, pattern.size))
            lams[:, pattern.rows, pattern.cols] = points[:, params]
            lams = shift @ lams
            r = np.linalg.qr(np.swapaxes(lams, 1, 2), mode="r")
            signs = np.where(np.diagonal(r, axis1=1, axis2=2) < 0.0, -1.0, 1.0)
            lam = np.swapaxes(r, 1, 2) * signs[:, None, :]
            values = lam[:, pattern.rows, pattern.cols]
            out[np.ix_(params, params)] = (values[:m] - values[m:]) / (2 * steps[:, None])
        return out

    def z_map(self, blocks) -> np.ndarray:
        """(q, q) S with Z S the random-effects columns centred (``blocks``: the model's
        ``ReBlock``s, Z's columns level-major within each): M on each level's columns of a
        centred block, the identity elsewhere. The random effects' quantities in the
        centred coordinates are S' (Z'...) S."""
        sizes = [block.q for block in blocks]
        starts = np.cumsum([0] + sizes)
        out = np.eye(starts[-1])
        for b, _, shift, _ in self.shifts:
            out[starts[b]:starts[b + 1], starts[b]:starts[b + 1]] = np.kron(
                np.eye(blocks[b].nlevels), shift)
        return out

    def _mapped(self, vector: np.ndarray, inverse: bool) -> np.ndarray:
        out = np.array(vector, dtype=float)
        for _, pattern, shift, _ in self.shifts:
            matrix = 2.0 * np.eye(len(shift)) - shift if inverse else shift
            r = np.linalg.qr((matrix @ pattern.lam(vector)).T, mode="r")
            lam = r.T * np.where(np.diagonal(r) < 0.0, -1.0, 1.0)
            out[pattern.index] = lam[pattern.rows, pattern.cols]
        return out


def _far_means(totals: list, j: int) -> np.ndarray | None:
    """The (k,) weighted means of a block's columns (0 for the intercept, column ``j``),
    from the sums of its level blocks ``totals`` (k x k: sum w z z'), where one is more
    than ``CENTRING_RATIO`` sds from 0; else None. The squared mean and the variance about
    it are compared times sum w: a variance lost to rounding (a mean 1e5 sds from 0) is
    below any mean."""
    weight = totals[j][j]
    if not weight > 0.0:
        return None
    means = [0.0 if c == j else row[j] / weight for c, row in enumerate(totals)]
    for c, mean in enumerate(means):
        square = mean * mean * weight
        if square > CENTRING_RATIO ** 2 * max(totals[c][c] - square, 0.0):
            return np.array(means)
    return None


def far_structured_columns(parameters: ParameterMap,
                           totals: Sequence[np.ndarray]) -> list[tuple[int, str, float]]:
    """(term, column name, |mean| / sd) of the columns more than ``CENTRING_RATIO`` sds from
    0 in the structured terms (``cs``, ``ar1``, ``toep``) that have their block's intercept
    (``totals`` as ``CentredCoordinates.of``'s). Such a term is not centred (its covariance
    is another model after the shift), and its correlation parameters are ill-determined in
    its own: on sleepstudy with Days + 1000, cs(Days | Subject), which for two columns is
    (Days | Subject), stopped 42 units of REML criterion above that model's optimum. The sd
    is inf where the variance is lost to rounding."""
    out = []
    for b, (terms, j) in enumerate(zip(parameters.blocks, parameters.block_intercepts())):
        sums = totals[b]
        for t in terms:
            structure, first = parameters.structures[t], parameters.offsets[t]
            if structure.linear or not first <= j < first + structure.k \
                    or not sums[j, j] > 0.0:
                continue
            for c in range(first, first + structure.k):
                mean = sums[c, j] / sums[j, j]
                variance = sums[c, c] / sums[j, j] - mean ** 2
                ratio = abs(mean) / np.sqrt(variance) if variance > 0.0 else np.inf
                if c != j and ratio > CENTRING_RATIO:
                    out.append((t, parameters.columns[t][c - first], float(ratio)))
    return out

