"""Kenward-Roger: bias-adjusted Var(beta-hat) and denominator df (as pbkrtest).

V = sum_i gamma_i G_i with one G_i = Z E_i Z' per variance or covariance of each term and
G = I for the residual. This needs each term's Sigma linear in its variance parameters (its
structure's ``covariance_derivatives``): lme4's terms, ``diag``, and the homogeneous ``cs`` and
``toep`` are; for the others (``ar1``, heterogeneous ``cs`` and ``toep``) V is not linear in any
parameterization, the second derivatives of V that Kenward & Roger's formulas then need are
not computed, and ``from_fit`` refuses (use Satterthwaite's df).

pbkrtest forms the n x n matrix V^{-1}; here every quantity comes from q x q and q x p
matrices through V^{-1} = sigma^{-2} (I - Z Lambda M^{-1} Lambda' Z'),
M = I + Lambda' Z'Z Lambda = L_Z L_Z':

    K = Z'V^{-1}Z = sigma^{-2} Z'Z B,   B = I - Lambda M^{-1} Lambda' Z'Z,
    T = Z'V^{-1}X = sigma^{-2} (Z'X - Z'Z C),   C = Lambda M^{-1} Lambda' Z'X,
    Z'V^{-2}X = sigma^{-2} B'T,   X'V^{-2}X = sigma^{-4} (X - ZC)'(X - ZC),
    tr V^{-2} = sigma^{-4} (n - q + ||M^{-1}||_F^2).

Then (Kenward & Roger 1997) P_i = -X'V^{-1}G_iV^{-1}X, Q_ij = X'V^{-1}G_iV^{-1}G_jV^{-1}X,
I_ij = tr(V^{-1}G_iV^{-1}G_j) - 2 tr(Phi Q_ij) + tr(Phi P_i Phi P_j), W = 2 I^{-1},
Phi_A = Phi + 2 Phi U Phi with U = sum_ij W_ij (Q_ij - P_i Phi P_j).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats

__all__ = ["KenwardRoger"]


@dataclass(frozen=True)
class _Component:
    """One variance parameter's E_i: pairs of Z columns (rows, cols), symmetric, or None for
    the residual."""

    rows: np.ndarray | None
    cols: np.ndarray | None


@dataclass(frozen=True)
class KenwardRoger:
    """Phi = Var(beta-hat), its adjustment, and the P_i and W needed for test df."""

    phi: np.ndarray
    adjusted_vcov: np.ndarray
    P: list
    W: np.ndarray

    @classmethod
    def from_fit(cls, fit) -> "KenwardRoger":
        if not fit.reml:
            raise ValueError("Kenward-Roger needs a REML fit; refit with reml=True")
        _check_linear(fit)
        parts = _Parts.compute(fit)
        components = _components(fit)
        return cls.from_parts(parts, components, fit.vcov.to_numpy())

    @classmethod
    def from_parts(cls, parts: "_Parts", components: list, phi: np.ndarray) -> "KenwardRoger":
        m = len(components)
        P = [parts.p_matrix(c) for c in components]
        Q = {(i, j): parts.q_matrix(components[i], components[j])
             for i in range(m) for j in range(i, m)}
        info = np.zeros((m, m))
        for i in range(m):
            for j in range(i, m):
                info[i, j] = info[j, i] = (parts.trace(components[i], components[j])
                                           - 2 * np.sum(phi * Q[i, j])
                                           + np.sum((phi @ P[i]) * (P[j] @ phi)))
        eigen = np.abs(np.linalg.eigvalsh(info)).min()
        W = 2 * (np.linalg.inv(info) if eigen > 1e-10 else np.linalg.pinv(info))
        U = np.zeros_like(phi)
        for i in range(m):
            for j in range(i, m):
                term = W[i, j] * (Q[i, j] - P[i] @ phi @ P[j])
                U += term if i == j else term + term.T
        return cls(phi, phi + 2 * phi @ U @ phi, P, W)

    def test(self, L: np.ndarray, beta: np.ndarray, rhs=0.0) -> dict:
        """F test of L beta = rhs with the Kenward-Roger scaling and df (pbkrtest)."""
        L = np.atleast_2d(L)
        q = np.linalg.matrix_rank(L)
        theta = L.T @ np.linalg.solve(L @ self.phi @ L.T, L)
        a1 = a2 = 0.0
        us = [theta @ self.phi @ P @ self.phi for P in self.P]
        for i in range(len(us)):
            for j in range(i, len(us)):
                e = 1.0 if i == j else 2.0
                a1 += e * self.W[i, j] * np.trace(us[i]) * np.trace(us[j])
                a2 += e * self.W[i, j] * np.sum(us[i] * us[j].T)
        b = (a1 + 6 * a2) / (2 * q)
        g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
        denominator = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / denominator, (q - g) / denominator, (q + 2 - g) / denominator
        v0 = 1 + c1 * b
        v0 = 0.0 if abs(v0) < 1e-10 else v0
        v1, v2 = 1 - c2 * b, 1 - c3 * b
        ratio = 1.0 if abs(1 - a2 / q) < 1e-14 and abs(v1) < 1e-14 else (1 - a2 / q) / v1
        rho = ratio ** 2 * v0 / (q * v2)
        df = 4 + (q + 2) / (q * rho - 1)
        scaling = 1.0 if abs(df - 2) < 0.01 else df * (1 - a2 / q) / (df - 2)
        difference = L @ beta - rhs
        wald = difference @ np.linalg.solve(L @ self.adjusted_vcov @ L.T, difference)
        f_value = scaling * wald / q
        return {"F": float(f_value), "num_df": int(q), "den_df": float(df),
                "p": float(scipy.stats.f.sf(f_value, q, df))}


def _check_linear(fit) -> None:
    """A ValueError naming the first term whose covariance is not linear in its parameters."""
    terms = fit.model.design.terms
    for term, covariance in zip(terms, fit.model.structure.parameters.structures):
        if covariance.covariance_derivatives() is None:
            raise ValueError(
                f"Kenward-Roger needs every random-effects covariance linear in its variance "
                f"parameters; the term {term.term.text} ({covariance.description}) is not: "
                "use Satterthwaite's df (ddf='satterthwaite'), or a homogeneous structure "
                "(hom = TRUE) for cs and toep")


def _components(fit) -> list:
    """E_i for each variance/covariance parameter of each term (its covariance structure's
    ``covariance_derivatives``, repeated over the levels) and the residual. A parameter that
    several entries of Sigma share (a homogeneous structure's variance) has them all in one
    component."""
    structure = fit.model.structure
    starts = np.cumsum([0] + [b.q for b in structure.blocks])
    components = []
    for term, covariance in zip(structure.terms, structure.parameters.structures):
        block = structure.blocks[term.block]
        levels = np.arange(block.nlevels) * block.p + starts[term.block] + term.offset
        for entries in covariance.covariance_derivatives():
            components.append(_Component(np.concatenate([levels + a for a, _ in entries]),
                                         np.concatenate([levels + b for _, b in entries])))
    components.append(_Component(None, None))
    return components


@dataclass(frozen=True)
class _Parts:
    """The q x q and q x p products of the identities in the module docstring."""

    K: np.ndarray
    T: np.ndarray
    B: np.ndarray
    zv2x: np.ndarray
    xv2x: np.ndarray
    xv3x: np.ndarray
    trace_v2: float
    sigma2: float

    @classmethod
    def compute(cls, fit) -> "_Parts":
        X, Z = fit._whitened  # with prior weights, the identities hold for the scaled rows
        n = fit.nobs
        sigma2 = fit.sigma ** 2
        lam = fit.Lambda
        azz = (Z.T @ Z).tocsr()
        azx = np.asarray(Z.T @ X)
        q = azz.shape[0]
        m_inverse = fit._factor.solve(np.eye(q), fixed=False)
        lam_m = np.asarray(lam @ m_inverse)  # Lambda M^{-1}
        lam_m_lam = np.asarray((lam @ lam_m.T).T)  # Lambda M^{-1} Lambda'
        B = np.eye(azz.shape[0]) - np.asarray(azz @ lam_m_lam.T).T  # Z'Z is symmetric
        C = lam_m_lam @ azx
        K = np.asarray(azz @ B) / sigma2
        T = (azx - azz @ C) / sigma2
        D = X.T @ X - 2 * azx.T @ C + C.T @ (azz @ C)
        xv2x = D / sigma2 ** 2
        lt = np.asarray(lam.T @ T)
        xv3x = (D - sigma2 ** 2 * lt.T @ m_inverse @ lt) / sigma2 ** 3
        trace_v2 = (n - q + np.sum(m_inverse ** 2)) / sigma2 ** 2
        return cls(K, T, B, B.T @ T / sigma2, xv2x, xv3x, trace_v2, sigma2)

    @staticmethod
    def _split(c: _Component):
        """E_i as (r, s) index pairs with E_i = sum e_r e_s' (both orders for a covariance);
        None for the residual, whose G is I."""
        if c.rows is None:
            return None
        if np.array_equal(c.rows, c.cols):
            return [(c.rows, c.cols)]
        return [(c.rows, c.cols), (c.cols, c.rows)]

    def p_matrix(self, c: _Component) -> np.ndarray:
        """P_i = -X'V^{-1} G_i V^{-1} X."""
        pairs = self._split(c)
        if pairs is None:
            return -self.xv2x
        return -sum(self.T[r].T @ self.T[s] for r, s in pairs)

    def q_matrix(self, ci: _Component, cj: _Component) -> np.ndarray:
        """Q_ij = X'V^{-1} G_i V^{-1} G_j V^{-1} X (i before j; the residual is last)."""
        pi, pj = self._split(ci), self._split(cj)
        if pi is None:
            return self.xv3x
        if pj is None:
            return sum(self.T[r].T @ self.zv2x[s] for r, s in pi)
        return sum(self.T[r].T @ self.K[np.ix_(s, r2)] @ self.T[s2]
                   for r, s in pi for r2, s2 in pj)

    def trace(self, ci: _Component, cj: _Component) -> float:
        """tr(V^{-1} G_i V^{-1} G_j)."""
        pi, pj = self._split(ci), self._split(cj)
        if pi is None and pj is None:
            return self.trace_v2
        if pi is None or pj is None:
            pairs = pi if pj is None else pj
            # tr(E Z'V^{-2}Z) = sum over pairs (r, s) of (Z'V^{-2}Z)[s, r]; Z'V^{-2}Z = B'K / s2
            return float(sum(np.sum(self.B[:, s] * self.K[:, r]) for r, s in pairs)
                         / self.sigma2)
        return float(sum(np.sum(self.K[np.ix_(s, r2)] * self.K[np.ix_(s2, r)].T)
                         for r, s in pi for r2, s2 in pj))
