"""Residuals, fitted values and influence measures of a fitted model.

Notation: V = sigma^2 (Psi + T T') with T = Z Lambda and Psi the residual structure (I in
lme4), b the fixed effects, u the conditional modes, C = Var(b) = (X' V^-1 X)^-1
(``fit.vcov``). All computations hold theta and sigma at their estimates, and none forms an
n x n matrix: M = T'Psi^-1 T + I = L_Z L_Z' is solved with the fit's blocked factor, Psi
group by group, and the rows are processed in chunks.

* Leverage: for fixed theta the fitted values are linear in y, y_hat = H y, with
  H = X C X'V^-1 + Z G Z'V^-1 (I - X C X'V^-1) (the hat matrix of the penalized least-squares
  problem); equivalently I - H = R P with P = V^-1 - V^-1 X C X' V^-1 and R = sigma^2 Psi.
  With T = Z Lambda, S = Psi^-1 T, M = T' Psi^-1 T + I, A = V^-1 X (rows a_i):
  V^-1 = sigma^-2 (Psi^-1 - S M^-1 S'), Psi A = sigma^-2 (X - T M^-1 S'X) and
  h_ii = t_i' M^-1 s_i + sigma^2 (Psi A)_i' C a_i (Psi = I: the familiar
  diag(T M^-1 T')_i + sigma^2 a_i' C a_i). With a correlated Psi, H is not symmetric and
  h_ii is its diagonal in the data's rows (not that of the whitened rows).
* Cook's distance: D_i = (b - b_(i))' C^-1 (b - b_(i)) / p, where b_(i) is the fixed-effects
  estimate without observation i, the variance parameters held at their full-data values.
  This deletion is exact, not an approximation: deleting a row from a generalized least-squares
  fit equals adding an indicator column for it, whose coefficient is (P y)_i / P_ii, so
  b - b_(i) = C a_i (P y)_i / P_ii and D_i = (P y)_i^2 a_i' C a_i / (P_ii^2 p), with
  P y = V^-1 (y - X b) = R^-1 (y - X b - Z u) and P_ii = (V^-1)_ii - a_i' C a_i. (With
  Psi = I: (P y)_i = r_i / sigma^2 and P_ii = (1 - h_ii) / sigma^2, so
  D_i = r_i^2 a_i' C a_i / ((1 - h_ii)^2 p).) A refit of theta without the row would change
  the variance parameters too; ``influence_groups`` does such refits, per group.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..covariance.residual import Identity
from ..design.levels import grouping_codes
from ..lmm.model import LinearMixedModel
from ..parallel.executor import run_tasks
from ..validate import check_bool, check_choice, check_executor, check_string

__all__ = ["cooks_distance", "fitted", "influence_groups", "leverage", "residuals"]

CHUNK_ENTRIES = 4_000_000  # q x rows of dense right-hand sides solved at a time
RESIDUAL_KINDS = ("response", "pearson", "normalized", "marginal")
FITTED_KINDS = ("conditional", "marginal")
COOKS_METHODS = ("deletion", "lme4")


def residuals(fit, kind: str = "response", scaled: bool = False) -> np.ndarray:
    """Residuals of the fitted data, as lme4's ``residuals(fit, type, scaled)``.

    kind:
        "response": conditional residuals y - X b - Z u (``fit.residuals``);
        "pearson": the response residuals divided by their relative standard deviation
            sqrt(Psi_ii): times sqrt(w_i) for prior weights w (lme4), divided by the variance
            function's s_i (nlme); equal to the response residuals without either;
        "normalized": the response residuals whitened by Psi and divided by sigma,
            L_g^-1 r_g / sigma per group g of a correlation structure, Psi_g = L_g L_g', but
            for compound symmetry, whose groups nlme whitens with a Helmert-type factor
            (``CS.normalizing_rotation``) (nlme's ``resid(type = "normalized")``, always
            scaled: ``scaled`` changes nothing):
            independent N(0, 1) under the model; the scaled "pearson" residuals without a
            correlation structure;
        "marginal": y - X b - offset (the random effects not removed).
    scaled: divide by sigma (lme4's ``scaled = TRUE``; scaled Pearson residuals are the
        "Scaled residuals" of lme4's summary).
    """
    kind, scaled = check_choice(kind, "kind", RESIDUAL_KINDS), check_bool(scaled, "scaled")
    if kind == "response":
        values = fit.y - fit.fitted
    elif kind == "pearson":
        values = (fit.y - fit.fitted) / np.sqrt(fit.residual.variances())
    elif kind == "normalized":
        return fit.residual.normalize(fit.y - fit.fitted) / fit.sigma
    else:
        values = fit.y - fit.X @ fit.beta - fit.model.design.offset
    return values / fit.sigma if scaled else values


def fitted(fit, kind: str = "conditional") -> np.ndarray:
    """Fitted values: "conditional" X b + Z u (``fit.fitted``) or "marginal" X b (each plus
    the offset, if any)."""
    if check_choice(kind, "kind", FITTED_KINDS) == "conditional":
        return fit.fitted.copy()
    return fit.X @ fit.beta + fit.model.design.offset


def _pieces(fit):
    """What leverage and Cook's distance need (see the module docstring), per observation:
    t_i' M^-1 s_i, sigma^2 (V^-1)_ii, and the rows of A = V^-1 X and of Psi A, with
    T = Z Lambda, S = Psi^-1 T and M = T' Psi^-1 T + I = L_Z L_Z' (the fit's factor)."""
    residual = fit.residual
    sigma2 = fit.sigma ** 2
    X = np.asarray(fit.X, dtype=float)
    n = fit.nobs
    blocks = fit.model.structure.blocks
    if not blocks:  # gls: V = sigma^2 Psi
        psi_a = X / sigma2
        return np.zeros(n), residual.inverse_diagonal(), psi_a, residual.solve(psi_a)
    T = sp.csr_array(fit.Z @ fit.Lambda)
    S = sp.csr_array(residual.solve(T))
    q = T.shape[1]
    factor = fit._factor
    psi_a = (X - T @ factor.solve(np.asarray(S.T @ X), fixed=False)) / sigma2
    cross = np.empty(n)  # t_i' M^-1 s_i = (L_Z^-1 t_i)'(L_Z^-1 s_i)
    own = np.empty(n)  # s_i' M^-1 s_i
    chunk = max(1, CHUNK_ENTRIES // max(q, 1))
    Tt, St = sp.csc_matrix(T.T), sp.csc_matrix(S.T)
    same = isinstance(residual, Identity)  # S = T
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        t = factor.forward(Tt[:, start:stop].toarray(), fixed=False)
        s = t if same else factor.forward(St[:, start:stop].toarray(), fixed=False)
        cross[start:stop] = np.sum(t * s, axis=0)
        own[start:stop] = np.sum(s * s, axis=0)
    return cross, residual.inverse_diagonal() - own, psi_a, residual.solve(psi_a)


def _leverage_and_a(fit):
    """(h_ii, a_i' C a_i, sigma^2 (V^-1)_ii) per observation."""
    cross, inverse, psi_a, A = _pieces(fit)
    C = fit.vcov.to_numpy()
    sigma2 = fit.sigma ** 2
    leverage = cross + sigma2 * np.einsum("ij,jk,ik->i", psi_a, C, A)
    return leverage, np.einsum("ij,jk,ik->i", A, C, A), inverse


def leverage(fit) -> np.ndarray:
    """Diagonal of the hat matrix H (y_hat = H y for fixed theta), per observation."""
    return _leverage_and_a(fit)[0]


def cooks_distance(fit, method: str = "deletion") -> np.ndarray:
    """Cook's distance of the fixed effects per observation, (n,).

    method:
        "deletion": the exact effect of deleting the observation on the fixed effects, the
            variance parameters held fixed (see the module docstring; SAS PROC MIXED's COOKD
            with the covariance parameters not updated).
        "lme4": lme4's ``cooks.distance`` of an lmer fit, the linear model's formula with
            the hat values of the penalized least-squares fit, r_i^2 h_ii / (sigma^2 p
            (1 - h_ii)^2) (r the Pearson residuals, h ``leverage``, p the rank of X; NaN
            where h_ii = 1). h_ii counts the random effects' share of the fit in the
            observation too, which deletion does not move the fixed effects by: on sleepstudy's
            (Days | Subject) it is 34 to 384 times the deletion's, and flags 92 of 180 rows
            at the usual 4 / n where the deletion flags 2.
    """
    method = check_choice(method, "method", COOKS_METHODS)
    hat, quad, inverse = _leverage_and_a(fit)
    sigma2 = fit.sigma ** 2
    if method == "lme4":
        with np.errstate(divide="ignore", invalid="ignore"):
            distance = (residuals(fit, "pearson") / (1 - hat)) ** 2 * hat \
                / (sigma2 * len(fit.beta))
        return np.where(np.isfinite(distance), distance, np.nan)
    p_diagonal = inverse / sigma2 - quad  # P_ii
    p_y = fit.residual.solve(fit.y - fit.fitted) / sigma2  # (P y)_i = (R^-1 e)_i
    return quad * p_y ** 2 / (p_diagonal ** 2 * len(fit.beta))


def influence_groups(fit, group: str, progress: bool = True, executor=None) -> pd.DataFrame:
    """Case deletion by group, as influence.ME: the model is refitted (theta too) without each
    level of ``group`` (a variable of the model, or variables joined by ':' such as
    "cask:batch").

    ``executor``: a ``concurrent.futures.Executor`` (a process pool, or a Dask cluster's
    ``Client.get_executor()``) to run the refits on; the results do not depend on it.

    Returns:
        one row per level (index named ``group``): ``cooks_distance``
        = (b - b_(-j))' C^-1 (b - b_(-j)) / p with C = ``fit.vcov`` of the full fit, as
        influence.ME's ``cooks.distance`` (lme4's own ``cooks.distance(influence(fit,
        groups))`` is smaller by (n - p) / n, n the number of groups: 0.0821 against 0.0924
        for sleepstudy's subject 308),
        ``nobs_deleted``, ``singular`` (the refit is singular), and per fixed effect the refitted
        estimate (column named as the effect) and its change ``delta <name>`` = b_(-j) - b.
        An effect that cannot be estimated without the level (its column is aliased) is NaN,
        and the Cook's distance then uses the estimable effects only.
    """
    group = check_string(group, "group", "the name of a variable of the model (or names "
                                         "joined by ':')")
    progress, executor = check_bool(progress, "progress"), check_executor(executor)
    frame = fit.model.design.frame
    factors = tuple(group.split(":"))
    missing = [f for f in factors if f not in frame.columns]
    if missing:
        raise ValueError(f"group must name variables of the model, not {group!r}: "
                         f"{missing[0]!r} is not a column of the model's data (the columns "
                         f"the model uses): {', '.join(map(str, frame.columns))}")
    codes, levels = grouping_codes(frame, factors)
    if len(levels) < 2:
        raise ValueError(f"{group!r} has a single level; nothing to delete")
    names = list(fit.x_names)
    deletion = _Deletion(fit.model, tuple(names), np.asarray(codes))
    results = run_tasks(_Deletion.refit, deletion, range(len(levels)), executor=executor,
                        progress=progress, description="influence",
                        portable=_Deletion.portable)
    refits = np.array([values for values, _ in results])
    b = fit.beta
    C_inv = np.linalg.inv(fit.vcov.to_numpy())
    rows = []
    for j, (_, singular) in enumerate(results):
        delta = refits[j] - b
        ok = np.isfinite(delta)
        cook = float(delta[ok] @ C_inv[np.ix_(ok, ok)] @ delta[ok]) / int(ok.sum())
        row = {"cooks_distance": cook, "nobs_deleted": int((codes == j).sum()),
               "singular": singular}
        row.update(dict(zip(names, refits[j])))
        row.update({f"delta {name}": d for name, d in zip(names, delta)})
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(levels, name=group))


@dataclass(frozen=True, eq=False)
class _Deletion:
    """What a refit without one level needs: picklable, for the workers of an executor.

    Attributes:
        model: the fitted model's ``LinearMixedModel``.
        names: its fixed effects' names.
        codes: (n,) each row's level of the deleted grouping.
    """

    model: LinearMixedModel
    names: tuple[str, ...]
    codes: np.ndarray

    def refit(self, level: int) -> tuple[np.ndarray, bool]:
        """The fixed effects (NaN where aliased) and singularity of the refit without level."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refit = self.model.rebuild(rows=self.codes != level).fit()
        return refit.fixef.reindex(list(self.names)).to_numpy(), bool(refit.is_singular)

    def portable(self) -> "_Deletion":
        """The same deletion with a model that pickles (rebuilt from its formula and data)."""
        return replace(self, model=self.model.rebuild())
