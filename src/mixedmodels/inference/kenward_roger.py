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

That sparse form holds when V is linear in the terms' covariances and sigma^2 with Psi known
(lme4's models, prior weights). For a term on a covariate far from 0, which the optimizer
searched with its columns centred (``core.centring``), the variance parameters are those of
the centred columns: K, T and the other Z-side products become S'KS, S'T, ... with Z S the
centred columns (the first-order adjustment does not depend on a linear reparameterization
of the variance parameters, and in lme4's the information matrix was so ill-conditioned that
the slope's standard error came out 2% off at Days + 1000; 6% with AR(1) residuals, whose
clusters' G_i are formed from the centred columns the same way).

A model whose residual covariance has parameters of its own, R = sigma^2 Psi(delta) (a
correlation structure, a variance function; ``mm.gls`` too), has

    V(gamma) = Z G Z' + sigma^2 Psi(delta),   gamma = (the terms' covariances, sigma^2, delta),
    G_i = dV/dgamma_i:  Z E_i Z' (a term's entry),  Psi (sigma^2),  sigma^2 dPsi/ddelta_k,

with delta on the optimizer's scale and dPsi/ddelta_k by central differences (Richardson
extrapolation, ``core.numdiff``) of Psi through ``ResidualModel.at``. V is then block-diagonal
over independent clusters (the connected components of the random-effects grouping factors
and the correlation structure's groups), and every quantity above is a sum over clusters:
X'V^-1X, P_i, Q_ij and tr(V^-1 G_i V^-1 G_j) are accumulated cluster by cluster from dense
m x m blocks, clusters of the same size batched together (``_ClusterSums``), so that a trial
of thousands of patients costs a few batched inversions of 6 x 6 matrices.

This is the first-order form of Kenward & Roger (1997), the one pbkrtest implements: the
terms R_ij = X'V^-1 (d^2V/dgamma_i dgamma_j) V^-1 X of U are left out (SAS's
DDFM=KR(FIRSTORDER)). They vanish when V is linear in gamma (lme4's models, compound symmetry
or an unstructured R written in covariances); for AR(1) and the other nonlinear structures
SAS's default DDFM=KR includes them. Without them, Phi_A and the df do not depend on how delta
is parameterized (P, Q, the information and U all transform with the Jacobian of a
reparameterization and U is unchanged), so that, e.g., ``gls`` with compound symmetry and the
random-intercept model give the same Kenward-Roger tests where the two are the same model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..core.numdiff import jacobian
from .distributions import fdtrc

__all__ = ["DENSE_CLUSTER_LIMIT", "KenwardRoger", "clusters"]

#: the largest independent cluster (rows) the per-cluster Kenward-Roger forms densely
DENSE_CLUSTER_LIMIT = 1000
_CHUNK_ENTRIES = 400_000  # K m^2 entries of a batch of K clusters of m rows


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
    def from_fit(cls, fit, by_clusters: bool | None = None) -> "KenwardRoger":
        """The fit's matrices: by the sparse identities (models with Psi known) or by
        clusters (``by_clusters=True``; always for a residual structure with parameters and
        for ``gls``).

        Raises:
            ValueError: an ML fit; by clusters, a cluster of more than
                ``DENSE_CLUSTER_LIMIT`` rows, or a model of a Dask DataFrame.
        """
        if not fit.reml:
            raise ValueError("Kenward-Roger needs a REML fit; refit with reml=True")
        _check_linear(fit)
        if by_clusters is None:
            by_clusters = (fit.model.structure.parameters.residual is not None
                           or not fit.model.structure.blocks)
        phi = fit.vcov.to_numpy()
        if by_clusters and not fit.model.rows_in_memory:
            raise ValueError(
                "Kenward-Roger with a residual structure (or for gls) works on the "
                "independent clusters of the rows (V cluster by cluster), which stay in the "
                "partitions of the Dask DataFrame the model was fitted to: use "
                "ddf='satterthwaite'")
        if by_clusters:
            sums = _ClusterSums.compute(fit)
            return cls.assemble(phi, sums.P, sums.Q, sums.traces)
        parts = _Parts.compute(fit)
        components = _components(fit)
        return cls.from_parts(parts, components, phi)

    @classmethod
    def from_parts(cls, parts: "_Parts", components: list, phi: np.ndarray) -> "KenwardRoger":
        m = len(components)
        P = [parts.p_matrix(c) for c in components]
        Q = {(i, j): parts.q_matrix(components[i], components[j])
             for i in range(m) for j in range(i, m)}
        traces = np.zeros((m, m))
        for i in range(m):
            for j in range(i, m):
                traces[i, j] = traces[j, i] = parts.trace(components[i], components[j])
        return cls.assemble(phi, P, Q, traces)

    @classmethod
    def assemble(cls, phi: np.ndarray, P: list, Q: dict, traces: np.ndarray) -> "KenwardRoger":
        """Phi_A and W from P_i, Q_ij (i <= j) and tr(V^-1 G_i V^-1 G_j)."""
        m = len(P)
        info = np.zeros((m, m))
        for i in range(m):
            for j in range(i, m):
                info[i, j] = info[j, i] = (traces[i, j] - 2 * np.sum(phi * Q[i, j])
                                           + np.sum((phi @ P[i]) * (P[j] @ phi)))
        # equilibrated first: variances are in the response's units squared, correlations
        # in none, and an absolute test of the smallest eigenvalue (or pinv's relative cut)
        # changed the df with the response's units (y * 1e6: 136 became 9,006 on an ar1 gls)
        diagonal = np.abs(np.diagonal(info))
        scale = 1.0 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0))
        balanced = info * np.outer(scale, scale)
        eigen = np.abs(np.linalg.eigvalsh(balanced)).min()
        inverse = np.linalg.inv(balanced) if eigen > 1e-10 else np.linalg.pinv(balanced)
        W = 2 * inverse * np.outer(scale, scale)
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
                "p": float(fdtrc(q, df, f_value))}


def _check_linear(fit) -> None:
    """A ValueError naming the first term whose covariance is not linear in its parameters."""
    terms = fit.model.design.terms
    for term, covariance in zip(terms, fit.model.structure.parameters.structures):
        if covariance.covariance_derivatives() is None:
            raise ValueError(
                f"Kenward-Roger needs every random-effects covariance linear in its variance "
                f"parameters; the term {term.term.label} ({covariance.description}) is not: "
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
    zv2z: np.ndarray
    zv2x: np.ndarray
    xv2x: np.ndarray
    xv3x: np.ndarray
    trace_v2: float
    sigma2: float

    @classmethod
    def compute(cls, fit) -> "_Parts":
        # the cross-products of the whitened rows (with prior weights, the identities hold
        # for the scaled rows)
        azz, azx, xx = fit.model.system.gram()
        n = fit.nobs
        sigma2 = fit.sigma ** 2
        lam = fit.Lambda
        q = azz.shape[0]
        m_inverse = fit._factor.solve(np.eye(q), fixed=False)
        lam_m = np.asarray(lam @ m_inverse)  # Lambda M^{-1}
        lam_m_lam = np.asarray((lam @ lam_m.T).T)  # Lambda M^{-1} Lambda'
        B = np.eye(azz.shape[0]) - np.asarray(azz @ lam_m_lam.T).T  # Z'Z is symmetric
        C = lam_m_lam @ azx
        K = np.asarray(azz @ B) / sigma2
        T = (azx - azz @ C) / sigma2
        D = xx - 2 * azx.T @ C + C.T @ (azz @ C)
        xv2x = D / sigma2 ** 2
        lt = np.asarray(lam.T @ T)
        xv3x = (D - sigma2 ** 2 * lt.T @ m_inverse @ lt) / sigma2 ** 3
        trace_v2 = (n - q + np.sum(m_inverse ** 2)) / sigma2 ** 2
        parts = cls(K, T, B.T @ K / sigma2, B.T @ T / sigma2, xv2x, xv3x, trace_v2, sigma2)
        centred = fit.model.centred_coordinates()
        return parts if centred is None else parts.with_columns(
            centred.z_map(fit.model.structure.blocks))

    def with_columns(self, S: np.ndarray) -> "_Parts":
        """The parts for Z S (q, q) instead of Z: the random effects' covariances in other
        coordinates (the centred ones of ``core.centring``, whose unit entries are Kenward
        and Roger's variance parameters there)."""
        return _Parts(S.T @ self.K @ S, S.T @ self.T, S.T @ self.zv2z @ S, S.T @ self.zv2x,
                      self.xv2x, self.xv3x, self.trace_v2, self.sigma2)

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
            # tr(E Z'V^{-2}Z) = sum over pairs (r, s) of (Z'V^{-2}Z)[s, r]
            return float(sum(np.sum(self.zv2z[s, r]) for r, s in pairs))
        return float(sum(np.sum(self.K[np.ix_(s, r2)] * self.K[np.ix_(s2, r)].T)
                         for r, s in pi for r2, s2 in pj))


# -- by independent clusters ---------------------------------------------------------------------
def clusters(fit) -> np.ndarray:
    """(n,) each row's independent cluster: the connected components of the rows linked by a
    level of a random-effects grouping factor or by a group of the residual correlation
    structure (each row its own cluster without either)."""
    n = fit.nobs
    labels = [block.codes for block in fit.model.structure.blocks]
    groups = fit.residual.groups()
    if groups is not None:
        labels.append(groups)
    if not labels:
        return np.arange(n)
    columns, offset = [], n
    for codes in labels:
        codes = np.asarray(codes, dtype=np.int64)
        columns.append(offset + codes)
        offset += int(codes.max()) + 1
    rows = np.tile(np.arange(n), len(columns))
    graph = sp.coo_array((np.ones(len(rows)), (rows, np.concatenate(columns))),
                         shape=(offset, offset))
    _, component = connected_components(graph, directed=False)
    _, ids = np.unique(component[:n], return_inverse=True)
    return ids


@dataclass(frozen=True)
class _ClusterSums:
    """P_i, Q_ij (i <= j) and tr(V^-1 G_i V^-1 G_j) summed over the independent clusters.

    The components gamma_i, in order: each term's covariance entries (its structure's
    ``covariance_derivatives``), sigma^2, then delta (the residual structure's parameters).
    """

    P: list
    Q: dict
    traces: np.ndarray
    xvx: np.ndarray

    @classmethod
    def compute(cls, fit) -> "_ClusterSums":
        ids = clusters(fit)
        sizes = np.bincount(ids)
        if sizes.max() > DENSE_CLUSTER_LIMIT:
            raise ValueError(
                f"Kenward-Roger with a residual structure (or for gls) works on the "
                f"independent clusters of the data, and this fit's largest cluster has "
                f"{sizes.max()} rows (the limit is {DENSE_CLUSTER_LIMIT}): crossed grouping "
                f"factors or a correlation over all rows join the rows into one cluster. Use "
                f"ddf='satterthwaite'")
        order = np.argsort(ids, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)])
        batches = []
        for m in np.unique(sizes):
            members = np.flatnonzero(sizes == m)
            rows = order[starts[members][:, None] + np.arange(m)]
            step = max(1, _CHUNK_ENTRIES // (m * m))
            batches += [rows[k:k + step] for k in range(0, len(rows), step)]
        psi, dpsi = _residual_blocks(fit, batches)
        p = len(fit.beta)
        count = None
        P = Q = traces = None
        xvx = np.zeros((p, p))
        for rows, psi_b, dpsi_b in zip(batches, psi, dpsi):
            V, G = _cluster_covariance(fit, rows, psi_b, dpsi_b)
            if count is None:
                count = len(G)
                P = np.zeros((count, p, p))
                Q = np.zeros((count, count, p, p))
                traces = np.zeros((count, count))
            X = fit.X[rows]  # (K, m, p)
            inverse = np.linalg.inv(V)
            A = inverse @ X  # V^-1 X per cluster
            C = np.stack([g @ A for g in G])  # G_i V^-1 X
            B = np.stack([inverse @ g for g in G])  # V^-1 G_i
            D = B @ A  # V^-1 G_i V^-1 X
            k = len(G)
            xvx += np.einsum("kmp,kmq->pq", X, A)
            P -= np.einsum("kmp,ikmq->ipq", A, C)
            Q += np.einsum("iap,jaq->ijpq", C.reshape(k, -1, p), D.reshape(k, -1, p))
            flat = B.reshape(k, -1)
            traces += flat @ np.swapaxes(B, 2, 3).reshape(k, -1).T
        Qd = {(i, j): Q[i, j] for i in range(count) for j in range(i, count)}
        return cls(list(P), Qd, traces, xvx)


def _residual_blocks(fit, batches):
    """Per batch, (K, m, m) Psi of each cluster and (d, K, m, m) its derivatives in delta."""
    parameters = fit.model.structure.parameters
    rows_i = [np.repeat(rows, rows.shape[1], axis=1).ravel() for rows in batches]
    rows_j = [np.tile(rows, (1, rows.shape[1])).ravel() for rows in batches]
    all_i, all_j = np.concatenate(rows_i), np.concatenate(rows_j)

    def entries(residual) -> np.ndarray:
        return np.asarray(residual.covariance(1.0)[all_i, all_j]).ravel()

    values = entries(fit.residual)
    model = parameters.residual
    if model is None:
        derivatives = np.zeros((0, len(values)))
    else:
        def psi_at(delta):
            residual = model.at(delta)
            if residual is None:
                raise ValueError("Kenward-Roger: the residual covariance is not positive "
                                 "definite near the estimate; use ddf='satterthwaite'")
            return entries(residual)

        derivatives = np.atleast_2d(jacobian(psi_at, fit.theta[parameters.residual_slice]))
    out_psi, out_d = [], []
    start = 0
    for rows in batches:
        size = rows.size * rows.shape[1]
        shape = (len(rows), rows.shape[1], rows.shape[1])
        out_psi.append(values[start:start + size].reshape(shape))
        out_d.append(derivatives[:, start:start + size].reshape((-1,) + shape))
        start += size
    return out_psi, out_d


def _cluster_covariance(fit, rows: np.ndarray, psi: np.ndarray, dpsi: np.ndarray):
    """V (K, m, m) of the clusters whose rows are ``rows`` (K, m), and the G_i = dV/dgamma_i,
    each (K, m, m), in ``_ClusterSums``' order."""
    structure = fit.model.structure
    sigma2 = fit.sigma ** 2
    V = sigma2 * psi
    centred = fit.model.centred_coordinates()  # the G_i of the centred columns (see _Parts)
    shifts = {} if centred is None else {b: shift for b, _, shift, _ in centred.shifts}
    same = []
    for b, block in enumerate(structure.blocks):
        codes = block.codes[rows]
        mask = codes[:, :, None] == codes[:, None, :]
        values = block.values[rows]  # (K, m, p_b)
        lam = block.lam(fit.theta)
        scaled = values @ lam
        V = V + mask * (scaled @ np.swapaxes(scaled, 1, 2)) * sigma2
        same.append((mask, values @ shifts[b] if b in shifts else values))
    G = []
    for term, covariance in zip(structure.terms, structure.parameters.structures):
        mask, values = same[term.block]
        for entries in covariance.covariance_derivatives():  # the entries gamma_i is
            total = 0.0
            for a, b in entries:
                xa = values[:, :, term.offset + a]
                xb = values[:, :, term.offset + b]
                outer = xa[:, :, None] * xb[:, None, :]
                total = total + (outer if a == b else outer + np.swapaxes(outer, 1, 2))
            G.append(mask * total)
    G.append(psi)
    G += [sigma2 * d for d in dpsi]
    return V, G
