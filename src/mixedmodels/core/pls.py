"""Penalized least squares: the stored cross-products A, the factor L(theta), the criterion.

With Z = [Z_1 .. Z_k] (one block per grouping factor), Lambda(theta) block-diagonal and the
rows whitened by the residual structure (Psi^-1/2),

    A = [Z X y]' Psi^-1 [Z X y],      L L' = Lambda' A Lambda + I  (identity on the Z blocks only).

From L alone (Bates et al. 2015, section 3): log|L_Z|^2 = 2 sum log diag(L_Z),
log|R_X|^2 = 2 sum log diag(L_XX), r^2 = L[-1, -1]^2, which ``core.criterion`` turns into the
ML or REML criterion. A is built once (``core.crossproducts``); each evaluation then costs
nothing in n.

Back-ends: every way of evaluating the pieces at theta gives the same numbers (tested on every
reference model). ``blocked`` is the general one (the block kernels of ``linalg.blocks``);
``compiled single factor`` (one grouping factor), ``compiled dense`` and ``dense`` (NumPy; used
without numba, or after ``linalg.compiled.prefer_numpy``) are faster for their shapes.
``backend`` names the one the fit uses.

The back-ends fill Lambda from the ``ParameterMap``'s patterns applied to its entries vector.
When every term's structure is linear in its parameters (lme4's), the entries are theta and
the back-ends are called with theta as it is; otherwise (a ``cs``, ``ar1`` or ``toep`` term)
each back-end is wrapped to compute the entries first (``_ThroughEntries``), and a theta
outside the structures' domain gives an infinite criterion.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dpotri as _potri
from scipy.linalg.lapack import dtrtri as _trtri

from ..covariance.residual import Identity, ResidualStructure
from ..linalg.blocks import (
    BlockDiagonal,
    BlockSparse,
    cholesky,
    rank_update,
    rdiv,
)
from ..linalg.compiled import (
    SingleFactorObjective,
    SmallDenseObjective,
    columns_of_t,
    dense_gradient_kernel,
    dense_kernel,
    single_factor_kernel,
)
from ..linalg.factor import Factor
from ..linalg.symmetric import from_lower
from ..threads import SERIAL_QR_FROM, blas_threads_for, householder_qr
from .criterion import Pieces, criterion
from .crossproducts import CHUNK_ROWS, CrossProducts
from .gradient import profiled_gradient
from .structure import ReStructure

__all__ = ["PLSSystem", "fixed_basis", "sparse_z"]

DENSE_LIMIT = 40_000  # off-diagonal blocks with fewer entries are stored dense: faster kernels
DENSE_FILL = 0.1  # ... and so are larger ones with this share of nonzeros (as MixedModels.jl)
# q + p + 1 up to this: one dense Cholesky per theta beats the block loop (two crossed factors,
# whole fits: size 63: 1.9 ms against 3.4 ms; 98: 3.4 against 3.8; 143: 7.6 against 4.8)
SMALL_SYSTEM = 100
NEARLY_COLLINEAR = 1e-3  # see fixed_basis
FAILED = Pieces(0.0, 0.0, -1.0)  # theta outside the domain: the criterion is inf
#: r^2 below this share of the (shifted, whitened) response's y'y is formed from the rows (see
#: ``PLSSystem.row_residuals``): A's Schur complement keeps about eps y'y / r^2 of its relative
#: precision, 1e-9 at this ratio. Oxboys' quadratic growth curve ends at 1e-5 (heights of 150
#: cm, residual sd 0.45 cm): A's r^2 is good to 1e-11 there, and the rows' would cost 250 times
#: the fit
REFINE_BELOW = 1e-7
#: at most this many steps of iterative refinement of a solve from the rows (each a solve and
#: a pass over them), stopped when a step is below ``REFINED`` times the solution
REFINEMENTS = 6
REFINED = 1e-10


def fixed_basis(X: np.ndarray, r: np.ndarray | None = None) -> np.ndarray | None:
    """R (p x p, upper triangular, positive diagonal) of X = Q R when X's columns are nearly
    collinear, else None. ``r``: a QR of X, or of X followed by other columns, in LAPACK's
    compact form (R in its upper triangle), when it is known (``Design.response_r``).

    Nearly collinear: some column's distance from the span of the columns before it is less
    than ``NEARLY_COLLINEAR`` times its length (|R_jj| / |x_j|, the measure by which aliased
    columns are dropped at 1e-7). Forming X'X of such columns loses their small directions to
    rounding and the criterion becomes too noisy for the optimizer, so the fit then works with
    the orthonormal columns Q = X R^-1 and maps back. Well-conditioned X is used as it is (the
    arithmetic of lme4)."""
    p = X.shape[1]
    if p < 2:  # one column has nothing to be collinear with
        return None
    qr = householder_qr(X) if r is None else r  # R in the upper triangle
    diagonal = np.abs(qr.diagonal()[:p])
    if np.all(diagonal >= NEARLY_COLLINEAR * np.sqrt(np.einsum("ij,ij->j", X, X))):
        return None
    R = np.triu(qr[:p, :p])
    return R * np.where(np.diagonal(R) < 0, -1.0, 1.0)[:, None]


class PLSSystem:
    """A in the layout the factorization uses, and L(theta) and the criterion from it."""

    def __init__(self, structure: ReStructure, X: np.ndarray, y: np.ndarray,
                 residual: ResidualStructure | None = None, chunk_rows: int = CHUNK_ROWS,
                 x_qr: np.ndarray | None = None):
        """A of the rows of X, y and the structure's blocks, accumulated over chunks of
        ``chunk_rows`` rows; ``residual`` (default: Psi = I) whitens them. ``x_qr``: a QR of
        the whitened X (or of it followed by other columns) in LAPACK's compact form, when
        it is known (``fixed_basis``).

        The products over the rows run with the BLAS threads of the factor of these blocks
        (``threads.blas_threads_for``) where X has ``SERIAL_QR_FROM`` entries or more (below,
        the limit's own cost is not worth paying): on 2 cores with another process busy,
        OpenBLAS's two threads took 10 to 210 ms for the [X y]'[X y] of 10,000 rows and 62
        columns, one thread 2 to 8 ms."""
        residual = Identity(X.shape[0]) if residual is None else residual
        largest = max([b.q for b in structure.blocks[1:]] + [X.shape[1] + 1])
        with (blas_threads_for(largest) if X.size >= SERIAL_QR_FROM else nullcontext()):
            basis = fixed_basis(residual.whiten(X), x_qr)
            Q = X if basis is None else X @ _trtri(basis)[0]  # X R^-1
            crossproducts = CrossProducts.accumulate(structure.blocks, np.column_stack([Q, y]),
                                                     residual, chunk_rows)
        self._init(structure, crossproducts, basis)
        self._x = residual.whiten(Q)  # for a new response's Q'y
        self._z = (structure.blocks, residual)
        self._y = residual.whiten(y)  # for r^2 formed from the rows (``row_residuals``)
        self._set_refinement()

    @classmethod
    def from_crossproducts(cls, structure: ReStructure, crossproducts: CrossProducts,
                           fixed_basis: np.ndarray | None = None):
        """The system of given cross-products (e.g. summed over partitions of the rows),
        whose fixed-effects columns are X R^-1 for ``fixed_basis`` R (default: I, columns X)."""
        system = object.__new__(cls)
        system._init(structure, crossproducts, fixed_basis)
        system._x = system._z = system._y = None
        return system

    def _init(self, structure: ReStructure, crossproducts: CrossProducts,
              fixed_basis: np.ndarray | None) -> None:
        p = crossproducts.xy.shape[0] - 1
        if fixed_basis is None:  # X's own columns
            self.fixed_basis = self._basis_inverse = np.eye(p)
            self._logdet_basis = 0.0
        else:
            self.fixed_basis = fixed_basis
            self._basis_inverse = _trtri(fixed_basis)[0] if p else fixed_basis
            # REML's log|X'V^-1X| = log|Q'V^-1Q| + 2 log|det R|; ML does not depend on R
            self._logdet_basis = 2.0 * float(np.sum(np.log(np.abs(np.diagonal(fixed_basis)))))
        self.structure = structure
        self.blocks = structure.blocks
        self.crossproducts = crossproducts
        self.n = crossproducts.n
        self.p = crossproducts.xy.shape[0] - 1
        self.log_det_psi = crossproducts.log_det_psi
        self.A_diag = list(crossproducts.diag)
        self.A_off = {(i, j): self._offdiagonal_block(m, i, j)
                      for (i, j), m in crossproducts.off.items()}
        self._set_xy(crossproducts)

    def _set_xy(self, crossproducts: CrossProducts) -> None:
        """The [X y] blocks of A, and the back-ends that depend on them."""
        self.crossproducts = crossproducts
        self.A_xy = list(crossproducts.xy_z)
        self.A_xyxy = crossproducts.xy
        self._set_backend()
        self._set_refinement()

    def _set_refinement(self) -> None:
        """The r^2 below which it is formed from the rows (``refines``): ``REFINE_BELOW``
        times y'y where the rows are here, else none."""
        rows = getattr(self, "_y", None) is not None
        self._refine_below = REFINE_BELOW * float(self.A_xyxy[-1, -1]) if rows else -1.0

    def _set_backend(self) -> None:
        """The fastest back-end for this shape: a compiled loop for one grouping factor (once
        the kernels are loaded), one dense Cholesky for small models, else the blocked factor.
        Also the rows of the factor's largest dense diagonal block (the grouping factors after
        the first, which fill in, and [X y]), which decides the BLAS threads of ``factor``."""
        self.largest_dense_block = max([b.q for b in self.blocks[1:]] + [self.p + 1])
        self.size = sum(b.q for b in self.blocks) + self.A_xyxy.shape[0]  # q + p + 1
        self._fast = self._small = self.single_factor = None
        if len(self.blocks) == 1:
            kernel = single_factor_kernel(small=self.size <= SMALL_SYSTEM)
            if kernel is not None:
                self.single_factor = SingleFactorObjective(
                    kernel, self.blocks[0], self.A_diag[0], self.A_xy[0], self.A_xyxy)
                self._fast = self._through_entries(self.single_factor)
                return
        if self.size <= SMALL_SYSTEM:
            self._fast = self.backends()["compiled dense" if dense_kernel() else "dense"]

    @property
    def small_system(self) -> "_SmallSystem | None":
        """The whole of A as one dense matrix when q + p + 1 <= ``SMALL_SYSTEM`` (built on
        first use), else None."""
        if self._small is None and self.size <= SMALL_SYSTEM:
            self._small = _SmallSystem(self)
        return self._small

    def _through_entries(self, backend):
        """The back-end as a function of theta: itself when the entries are theta (linear
        structures: nothing added to the hot path), else computing the entries first."""
        parameters = self.structure.parameters
        return backend if parameters.linear else _ThroughEntries(backend, parameters.entries)

    def backends(self, small_limit: int = SMALL_SYSTEM) -> dict:
        """Every back-end that applies to this system, by name: theta -> ``Pieces``; the dense
        ones for systems of at most ``small_limit`` rows (q + p + 1)."""
        out = {"blocked": self.blocked_pieces}
        kernel = single_factor_kernel(small=self.size <= SMALL_SYSTEM)
        if len(self.blocks) == 1 and kernel is not None:
            out["compiled single factor"] = self._through_entries(SingleFactorObjective(
                kernel, self.blocks[0], self.A_diag[0], self.A_xy[0], self.A_xyxy))
        if self.size <= small_limit:
            small = self.small_system or _SmallSystem(self)  # built once where it is used
            out["dense"] = self._through_entries(small)
            compiled = small.compiled()
            if compiled is not None:
                out["compiled dense"] = self._through_entries(compiled)
        return out

    @staticmethod
    def optimizer_threads():
        """A context for the optimizer's evaluations: none needed (``factor`` limits BLAS
        threads itself; the compiled back-ends call no BLAS)."""
        return nullcontext()

    @property
    def backend(self) -> str:
        """The name of the back-end ``objective`` uses."""
        return "blocked" if self._fast is None else self._fast.name

    def _offdiagonal_block(self, product, i: int, j: int):
        """Z_i'Z_j as stored: block-sparse below the first block when it is large and sparse,
        else dense. A block with at least ``DENSE_FILL`` of its entries nonzero is dense
        whatever its size (a fully crossed design's subject x item block): a dense product
        costs far less than a gather/scatter over every pair of its entries."""
        entries = product.shape[0] * product.shape[1]
        nonzero = product.nnz if sp.issparse(product) else np.count_nonzero(product)
        if j == 0 and entries > DENSE_LIMIT and nonzero < DENSE_FILL * entries:
            return BlockSparse.from_scipy(sp.csr_array(product),
                                          (self.blocks[i].p, self.blocks[j].p))
        return product.toarray() if sp.issparse(product) else np.asarray(product)

    def gram(self) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
        """(Z'Z (q x q, sparse), Z'X (q x p), X'X (p x p)) of the whitened rows, X in its own
        columns (not the fixed-effects basis), from the cross-products alone."""
        p = self.p
        zq = np.hstack(self.A_xy)[:p].T if self.A_xy else np.zeros((0, p))  # Z'Q
        return (self.crossproducts.z_gram(), zq @ self.fixed_basis,
                self.fixed_basis.T @ self.A_xyxy[:p, :p] @ self.fixed_basis)

    def _require_rows(self, what: str) -> None:
        if self._x is None:
            raise ValueError(f"{what} needs the rows of the data; this system was built from "
                             "cross-products alone")

    def with_response(self, y: np.ndarray) -> "PLSSystem":
        """A copy for a new response: Z'y, X'y and y'y are recomputed, the rest is shared."""
        self._require_rows("a new response")
        blocks, residual = self._z
        y = residual.whiten(y)
        zty = []
        for block in blocks:
            columns = (block.codes[:, None] * block.p + np.arange(block.p)).ravel()
            zty.append(np.bincount(columns, (residual.whiten(block.values) * y[:, None]).ravel(),
                                   block.q))  # Z_b' y of the whitened rows
        other = self.with_response_products(zty, self._x.T @ y, y @ y)
        other._y = y
        other._set_refinement()
        return other

    def with_response_products(self, zty: list, qty: np.ndarray, yty: float) -> "PLSSystem":
        """A copy for a new response given by its products with the whitened rows: Z_b'y per
        block (q_b,), Q'y (p,) with the system's fixed-effects columns Q, and y'y (from
        sums over partitions of the rows, or ``with_response``). The rest is shared."""
        xy_z = []
        for a, products in zip(self.A_xy, zty):
            a = a.copy()
            a[-1] = products
            xy_z.append(a)
        xy = self.A_xyxy.copy()
        xy[-1, :-1] = xy[:-1, -1] = qty
        xy[-1, -1] = yty
        other = copy.copy(self)
        other._y = None  # (the rows of this response are not known here)
        other._set_xy(self.crossproducts.with_response_rows(xy_z, xy))
        return other

    def with_fixed_transform(self, transform: np.ndarray) -> "PLSSystem":
        """A copy whose [X y] is [X y] @ transform ((p + 1) x (p' + 1), last column the new
        response): e.g. dropping a column of X and moving it, times a constant, into y.
        Only the [X y] blocks of A change, by A -> T' A (T)."""
        other = copy.copy(self)
        other.p = transform.shape[1] - 1
        # from the system's basis (X = Q R) to X @ transform: [Q y] @ blockdiag(R, 1) @ transform
        to_basis = scipy.linalg.block_diag(self.fixed_basis, 1.0) @ transform
        if self._x is not None:
            other._x = self._x @ to_basis[:-1, :-1]
            other._y = (None if self._y is None
                        else self._x @ to_basis[:-1, -1] + self._y * to_basis[-1, -1])
        other.fixed_basis = other._basis_inverse = np.eye(other.p)
        other._logdet_basis = 0.0
        other._set_xy(self.crossproducts.with_response_rows(
            [to_basis.T @ a for a in self.A_xy], to_basis.T @ self.A_xyxy @ to_basis))
        return other

    # -- per theta -----------------------------------------------------------------------------
    def factor(self, theta: np.ndarray) -> Factor:
        """The blocked Cholesky factor of Lambda' A Lambda + I (Z part) for this theta.

        Raises:
            numpy.linalg.LinAlgError: if [X y] is numerically rank deficient at this theta, or
                theta is outside a structured term's domain (a correlation beyond its bounds).
        """
        lambdas = self.structure.parameters.lambdas(theta)
        k = len(self.blocks)
        L = [[None] * (i + 1) for i in range(k + 1)]
        with blas_threads_for(self.largest_dense_block):
            for j in range(k + 1):
                diagonal = self._scaled_diagonal(j, lambdas)
                for m in range(j):
                    diagonal = rank_update(diagonal, L[j][m], L[j][m])
                L[j][j] = cholesky(diagonal)
                for i in range(j + 1, k + 1):
                    below = self._scaled_offdiagonal(i, j, lambdas)
                    for m in range(j):
                        below = rank_update(below, L[i][m], L[j][m])
                    L[i][j] = rdiv(below, L[j][j])
        return Factor(theta, lambdas, L, self.fixed_basis)

    def _scaled_diagonal(self, j: int, lambdas):
        """Lambda_j' A_jj Lambda_j + I, or A for the [X y] block. A_jj is block-diagonal (an
        observation has one level of each factor); after the first factor the result is made
        dense here, for the rank updates that fill it in, rather than A_jj kept dense: a
        factor of 2,000 levels keeps 16 kB instead of 32 MB, and no evaluation scales its
        zeros. Its level blocks are scaled as the dense product scaled them (the same bits)."""
        if j == len(self.blocks):
            return self.A_xyxy
        lam = lambdas[j]
        if j == 0:
            return BlockDiagonal(_scale_blocks(self.A_diag[0], lam))
        levels, p = self.blocks[j].nlevels, self.blocks[j].p
        blocks = _scale_dense(self.A_diag[j].reshape(levels * p, p), lam, lam, levels, p, 1, p)
        scaled = BlockDiagonal(blocks.reshape(levels, p, p)).toarray()
        scaled[np.diag_indices_from(scaled)] += 1.0
        return scaled

    def _scaled_offdiagonal(self, i: int, j: int, lambdas):
        """Lambda_i' A_ij Lambda_j (no Lambda on the left for the [X y] block row)."""
        lam_j = lambdas[j]
        block_j = self.blocks[j]
        if i == len(self.blocks):
            rows = self.A_xy[j].reshape(-1, block_j.nlevels, block_j.p)
            return (rows @ lam_j).reshape(self.A_xy[j].shape)
        lam_i = lambdas[i]
        stored = self.A_off[i, j]
        if isinstance(stored, BlockSparse):
            return stored.with_data(lam_i.T @ stored.data @ lam_j)
        block_i = self.blocks[i]
        return _scale_dense(stored, lam_i, lam_j, block_i.nlevels, block_i.p, block_j.nlevels,
                            block_j.p)

    # -- the criterion -------------------------------------------------------------------------
    def blocked_pieces(self, theta: np.ndarray) -> Pieces:
        """The criterion's pieces from the blocked factor."""
        try:
            return self.pieces_of(self.factor(theta))
        except np.linalg.LinAlgError:
            return FAILED

    def pieces_of(self, factor: Factor) -> Pieces:
        """The criterion's pieces from the factor; where A's r^2 has lost its precision, r^2
        and log|R_X|^2 formed from the rows (``row_residuals``, ``row_logdet_x``)."""
        r2 = factor.pwrss()
        if not self.refines(r2):
            return Pieces(factor.logdet_z(), factor.logdet_x(), r2)
        return Pieces(factor.logdet_z(), self.row_logdet_x(factor),
                      self.row_residuals(factor)[0])

    def crossproduct_pwrss(self, theta: np.ndarray) -> float:
        """A's r^2 at theta, from the fastest back-end (negative where the factor fails)."""
        fast = self._fast
        return (fast(theta) if fast is not None else self.blocked_pieces(theta))[2]

    def pwrss(self, factor: Factor) -> float:
        """r^2 at the factor's theta, from the rows where A's has lost its precision."""
        r2 = factor.pwrss()
        return self.row_residuals(factor)[0] if self.refines(r2) else r2

    def refines(self, r2: float) -> bool:
        """r^2 from A keeps too little of its precision, and the rows are here to form it."""
        return 0.0 <= r2 < self._refine_below

    def row_residuals(self, factor: Factor) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """r^2, rho_b = Z_b' e per block and the spherical random effects v_b, from the
        whitened rows' residuals e = y - X beta - Z Lambda v at the factor's theta
        (``_penalized_fit``): r^2 = e'e + v'v, as lme4 forms it.

        A forms r^2 as y'y less what the factor explains, which keeps only about
        eps y'y / r^2 of its relative precision: a response fitted almost exactly by the
        fixed and random effects (a residual sd 1e-5 of the groups') made the REML criterion
        noisy by 1e-3, and BOBYQA stopped 3.5 above the optimum (lme4's, from the rows: at
        the optimum to 2e-7). Used where r^2 < ``REFINE_BELOW`` y'y only.

        Raises:
            ValueError: a system built from cross-products alone.
        """
        e, spherical, _, rho = self._penalized_fit(factor, self._y[:, None], fixed=True)
        r2 = float(e[:, 0] @ e[:, 0] + spherical[:, 0] @ spherical[:, 0])
        offsets = np.cumsum([0] + [block.q for block in self.blocks])
        return (r2, [rho[a:b, 0] for a, b in zip(offsets[:-1], offsets[1:])],
                [spherical[a:b, 0] for a, b in zip(offsets[:-1], offsets[1:])])

    def row_logdet_x(self, factor: Factor) -> float:
        """log|R_X|^2, R_X'R_X = X'X - X'Z Lambda M^-1 Lambda'Z'X (M = Lambda'Z'Z Lambda + I)
        in the system's columns, formed from the rows as R'R + V'V with R = X - Z Lambda V
        the residuals of X's columns penalized-regressed on Z Lambda (``_penalized_fit``).
        Where sds are many times sigma, X's columns that Z spans (an intercept) keep only a
        share of about 1 / theta^2 of X'X in the Schur complement, which A forms by
        subtraction, and REML's log|R_X|^2 loses its precision with r^2's."""
        if self.p == 0:
            return 0.0
        residuals, spherical, _, _ = self._penalized_fit(factor, self._x, fixed=False)
        schur = residuals.T @ residuals + spherical.T @ spherical
        return 2.0 * float(np.log(np.diagonal(np.linalg.cholesky(schur))).sum())

    def _penalized_fit(self, factor: Factor, targets: np.ndarray, fixed: bool):
        """The penalized least squares of the whitened rows' ``targets`` (n, m) on
        [Z Lambda, X] (``fixed``; X in its own columns) or on Z Lambda alone, solved with the
        factor and refined from the rows (the normal equations' residual [Lambda'Z'e - v; X'e],
        solved with the same factor, shrinks the solve's error, which grows with Lambda, by
        about eps cond(K) per step; Golub and Van Loan, Matrix Computations, 3.5.3): at most
        ``REFINEMENTS`` steps, until one is below ``REFINED`` times the solution or no
        smaller than the one before.

        Returns:
            (e (n, m), v (q, m), beta (p, m) or None, Z'e (q, m)): the residuals, the
            spherical random effects, the fixed effects and the residuals' products with Z.
        """
        self._require_rows("the criterion from the rows")
        z, zt = self._whitened_z()
        q, m = z.shape[1], targets.shape[1]
        offsets = np.cumsum([0] + [block.q for block in self.blocks])
        shapes = [(block.nlevels, block.p, m) for block in self.blocks]

        def lam(v, transpose=False):  # Lambda v, or Lambda' v: I (x) lam_b on each block
            out = np.empty_like(v)
            for a, b, shape, lam_b in zip(offsets[:-1], offsets[1:], shapes, factor.lambdas):
                out[a:b] = np.einsum("ba,lbm->lam" if transpose else "ab,lbm->lam", lam_b,
                                     v[a:b].reshape(shape)).reshape(b - a, m)
            return out

        basis = factor.fixed_basis
        spherical = np.zeros((q, m))
        beta = np.zeros((self.p, m)) if fixed else None
        last, done = None, False
        for solve in range(REFINEMENTS + 2):  # the solve, its refinements, the residuals
            e = targets - z @ lam(spherical)
            if fixed:
                e -= self._x @ (beta if basis is None else basis @ beta)
            ze = zt @ e
            if done or solve == REFINEMENTS + 1:
                break
            rhs = lam(ze, transpose=True) - spherical
            if fixed:
                xe = self._x.T @ e
                rhs = np.vstack([rhs, xe if basis is None else basis.T @ xe])
            step = factor.solve(rhs, fixed)
            spherical = spherical + step[:q]
            if fixed:
                beta = beta + step[q:]
            size = float(np.abs(step).max())
            scale = max(float(np.abs(spherical).max(initial=0.0)),
                        float(np.abs(beta).max(initial=0.0)) if fixed else 0.0)
            # converged to rounding, or no longer converging (the factor too inaccurate)
            done = solve > 0 and (size <= REFINED * scale or size >= last)
            last = size
        return e, spherical, beta, ze

    def _whitened_z(self) -> tuple[sp.csr_array, sp.csr_array]:
        """Z of the whitened rows (n x q) and its transpose, built on first use. The residual
        structure's groups lie within every grouping factor's levels (``lmm.model``), so it
        is Z's pattern of the whitened values."""
        cached = self.__dict__.get("_z_rows")
        if cached is None:
            _, residual = self._z
            z = sp.csr_array(residual.whiten(sparse_z(self.structure, self._y.shape[0])))
            cached = self._z_rows = (z, sp.csr_array(z.T))
        return cached

    def criterion(self, pieces, reml: bool, sigma: float | None = None) -> float:
        """REML criterion or -2 log-likelihood from the pieces (profiled over sigma unless
        ``sigma`` is given), in the columns of X (the pieces are in those of Q)."""
        logdet_z, logdet_x, r2 = pieces
        return criterion((logdet_z, logdet_x + self._logdet_basis, r2), self.n, self.p, reml,
                         self.log_det_psi, sigma)

    def objective(self, theta: np.ndarray, reml: bool) -> float:
        """REML criterion or -2 log-likelihood at theta (float64 array), profiled over sigma:
        the fastest back-end's pieces into ``criterion``, written out because the optimizer
        calls it hundreds of times per fit."""
        fast = self._fast
        logdet_z, logdet_x, r2 = fast(theta) if fast is not None else self.blocked_pieces(theta)
        if fast is not None and 0.0 <= r2 < self._refine_below:  # ``refines``: r^2 from the
            logdet_z, logdet_x, r2 = self.blocked_pieces(theta)  # rows (``row_residuals``)
        return criterion((logdet_z, logdet_x + self._logdet_basis, r2), self.n, self.p, reml,
                         self.log_det_psi)

    def objective_and_gradient(self, theta: np.ndarray, reml: bool) -> tuple[float, np.ndarray]:
        """The criterion and its analytic gradient at theta (``core.gradient``)."""
        return profiled_gradient(self, theta, reml)

    @property
    def evaluation_is_costly(self) -> bool:
        """The objective runs the blocked factor with the kernels loaded or not (several
        grouping factors and more than ``SMALL_SYSTEM`` rows; one has the compiled loop once
        they are loaded): gradient-driven optimization pays (``OptSettings.method``)."""
        return len(self.blocks) != 1 and self.size > SMALL_SYSTEM

    def objective_from(self, factor: Factor, reml: bool) -> float:
        return self.criterion(self.pieces_of(factor), reml)

    def deviance(self, theta: np.ndarray, sigma: float, reml: bool) -> float:
        """-2 log-likelihood (or REML criterion) at (theta, sigma), not profiled over sigma.

        Raises:
            numpy.linalg.LinAlgError: if the factor cannot be computed at theta.
        """
        return self.criterion(self.pieces_of(self.factor(theta)), reml, sigma)

    def unscaled_vcov(self, factor: Factor) -> np.ndarray:
        """(R_X R_X')^{-1}: Var(beta-hat) / sigma^2 at this theta, in the columns of X."""
        rx_inverse = scipy.linalg.solve_triangular(factor.xy[: self.p, : self.p],
                                                   self._basis_inverse.T, lower=True)
        return rx_inverse.T @ rx_inverse


class _ThroughEntries:
    """A back-end of the entries vector as a function of theta: the entries first (see the
    module docstring); theta outside the structures' domain gives ``FAILED``."""

    def __init__(self, backend, entries):
        self.backend, self.entries = backend, entries
        self.name = backend.name

    def __call__(self, theta: np.ndarray) -> Pieces:
        try:
            entries = self.entries(theta)
        except np.linalg.LinAlgError:
            return FAILED
        return self.backend(entries)


@dataclass(frozen=True)
class _DenseLayout:
    """Where the pieces of A and the entries of T go in ``_SmallSystem``'s dense matrices:
    a function of the blocks' shapes alone, computed once per shape (``_dense_layout``).

    Attributes:
        starts: (blocks + 1,) each block's first row in A; q the rows of Z, size q + p + 1.
        level_blocks: per block, the flat positions in A of its levels' p x p diagonal blocks,
            in the order of the block's stored (levels, p, p) products.
        rows, cols, index: T's Lambda entries: T[rows, cols] = entries[index].
        diagonal: flat positions of the Z part's diagonal.
        t_columns: T by columns (``linalg.compiled.columns_of_t``).
    """

    starts: np.ndarray
    q: int
    size: int
    level_blocks: tuple[np.ndarray, ...]
    rows: np.ndarray
    cols: np.ndarray
    index: np.ndarray
    diagonal: np.ndarray
    t_columns: tuple[np.ndarray, np.ndarray, np.ndarray]


@lru_cache(maxsize=64)
def _dense_layout(shapes: tuple, xy_size: int) -> _DenseLayout:
    """The ``_DenseLayout`` of blocks of ``shapes`` (levels, p, and Lambda's pattern: rows,
    cols, index, each a tuple) followed by ``xy_size`` columns of [X y]. A small model's
    design gives the same shapes at every fit: the layout costs 30 to 50 us to compute."""
    starts = np.cumsum([0] + [levels * p for levels, p, *_ in shapes])
    q = int(starts[-1])
    size = q + xy_size
    level_blocks, rows, cols, index = [], [], [], []
    for start, (levels, p, pattern_rows, pattern_cols, pattern_index) in zip(starts, shapes):
        within = start + np.arange(levels)[:, None, None] * p
        level_blocks.append(((within + np.arange(p)[None, :, None]) * size
                             + within + np.arange(p)[None, None, :]).reshape(-1))
        offsets = start + np.arange(levels)[:, None] * p
        rows.append((offsets + np.array(pattern_rows, dtype=np.int64)).reshape(-1))
        cols.append((offsets + np.array(pattern_cols, dtype=np.int64)).reshape(-1))
        index.append(np.tile(np.array(pattern_index, dtype=np.int64), levels))
    empty = [np.zeros(0, dtype=np.int64)]  # a model without random effects (gls)
    rows, cols = np.concatenate(rows + empty), np.concatenate(cols + empty)
    index = np.concatenate(index + empty)
    layout = _DenseLayout(starts, q, size, tuple(level_blocks), rows, cols, index,
                          np.arange(q) * (size + 1), columns_of_t(rows, cols, index, q, size))
    for array in (starts, rows, cols, index, layout.diagonal, *level_blocks,
                  *layout.t_columns):
        array.flags.writeable = False  # shared by every system of these shapes
    return layout


class _SmallSystem:
    """The whole of A as one dense matrix, for models so small that one LAPACK Cholesky of
    T' A T + diag(I, 0) (T = blockdiag(Lambda, I)) costs less than the block loop's calls.
    Used for the criterion's pieces only; they equal the blocked computation's to rounding."""

    def __init__(self, system: "PLSSystem"):
        blocks = system.blocks
        layout = _dense_layout(tuple((b.nlevels, b.p, tuple(b.pattern.rows.tolist()),
                                      tuple(b.pattern.cols.tolist()),
                                      tuple(b.pattern.index.tolist())) for b in blocks),
                               system.A_xyxy.shape[0])
        starts, q, size = layout.starts, layout.q, layout.size
        full = np.zeros((size, size))
        flat = full.reshape(-1)
        for i, block in enumerate(blocks):
            flat[layout.level_blocks[i]] = system.A_diag[i].reshape(-1)
            for j in range(i):
                stored = system.A_off[i, j]
                dense = stored.toarray() if isinstance(stored, BlockSparse) else stored
                full[starts[i]:starts[i + 1], starts[j]:starts[j + 1]] = dense
                full[starts[j]:starts[j + 1], starts[i]:starts[i + 1]] = dense.T
            full[q:, starts[i]:starts[i + 1]] = system.A_xy[i]
            full[starts[i]:starts[i + 1], q:] = system.A_xy[i].T
        # A_diag's level blocks are symmetric; [X y]'s made so here from its lower triangle (a
        # transformed X'X can differ from its transpose)
        full[q:, q:] = from_lower(system.A_xyxy)
        self.full = full
        self.rows, self.cols, self.index = layout.rows, layout.cols, layout.index
        self.q, self.size = q, size
        # the first grouping factor's rows: block-diagonal, p per level (none without blocks)
        self.first, self.first_p = (blocks[0].q, blocks[0].p) if blocks else (0, 1)
        self.diagonal = layout.diagonal  # flat positions of the Z part's diagonal
        self.layout = layout
        self._layout = None  # the compiled computation (``compiled``), on first use

    name = "dense"

    def compiled(self) -> SmallDenseObjective | None:
        """The compiled computation of this system (built on first use), or None without the
        compiled kernels."""
        kernel = dense_kernel()
        if kernel is not None and self._layout is None:
            self._layout = SmallDenseObjective(kernel, self.full, self.layout.t_columns, self.q,
                                               self.first, self.first_p)
        return self._layout if kernel is not None else None

    def __call__(self, theta: np.ndarray) -> Pieces:
        factor, _ = self._factor(theta)
        if factor is None:
            return FAILED
        return self._pieces(factor)

    def _factor(self, entries: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """The lower Cholesky factor of T' A T + diag(I, 0) (None if it fails) and T: T is
        made per call, so that threads can share the system (a profile on an executor)."""
        transform = np.eye(self.size)  # T without its Lambda entries
        transform[self.rows, self.cols] = entries[self.index]
        scaled = transform.T @ (self.full @ transform)
        scaled.ravel()[self.diagonal] += 1.0
        factor, info = _potrf(scaled, lower=1, overwrite_a=1)
        return (factor if info == 0 else None), transform

    def _pieces(self, factor: np.ndarray) -> Pieces:
        diagonal = np.log(np.diagonal(factor))
        logdet_z = 2.0 * diagonal[: self.q].sum()
        return Pieces(logdet_z, 2.0 * diagonal[self.q:-1].sum(), np.diagonal(factor)[-1] ** 2)

    def gradient(self, entries: np.ndarray, reml: bool, n: int,
                 sigma: float | None = None) -> tuple[Pieces, np.ndarray]:
        """The pieces and the criterion's gradient by the entries (``core.gradient``'s
        formulas on the dense matrices): with S the rows of Omega_S (the random effects, and
        for REML the fixed effects), d log|Omega_S| / d entry = 2 sum over the entry's
        positions (r, c) in T of (Omega_S^-1 T' A)[c, r], and d r^2 = -2 rho[r] v[c], weighted
        by d / r^2 (profiled) or 1 / sigma^2 (the deviance at ``sigma``). One compiled loop
        when the kernels are loaded (``linalg.compiled``), else NumPy and LAPACK.

        Raises:
            numpy.linalg.LinAlgError: the factor fails at these entries.
        """
        q, size = self.q, self.size
        kept = size - 1 if reml else q  # the rows of Omega_S
        dof = (n - (size - 1 - q)) if reml else n
        kernel = dense_gradient_kernel()
        if kernel is not None:  # the same computation as one compiled loop
            variance = 0.0 if sigma is None else sigma ** 2
            pieces, gradient = self.compiled().gradient(kernel, entries, kept, dof, variance,
                                                        self.rows, self.cols, self.index)
            if pieces[2] < 0:
                raise np.linalg.LinAlgError("the factor is not positive definite")
            return Pieces(*pieces), gradient
        with blas_threads_for(size):  # small: one BLAS thread
            return self._numpy_gradient(entries, kept, dof, sigma)

    def _numpy_gradient(self, entries: np.ndarray, kept: int, dof: int,
                        sigma: float | None = None):
        """``gradient`` with NumPy and LAPACK."""
        q = self.q
        factor, transform = self._factor(entries)
        if factor is None:
            raise np.linalg.LinAlgError("the factor is not positive definite")
        inverse = _potri(factor[:kept, :kept], lower=1)[0]
        inverse = from_lower(inverse)
        traces = inverse @ (transform[:kept, :kept].T @ self.full[:kept, :q])
        # the solution [v; beta] of L_K' [v; beta] = L's last row, and rho = Z'(y - Z b - X beta)
        solution = scipy.linalg.solve_triangular(factor[:-1, :-1], factor[-1, :-1], lower=True,
                                                 trans="T", check_finite=False)
        b = transform[:q, :q] @ solution[:q]
        rho = self.full[:q, -1] - self.full[:q, :q] @ b - self.full[:q, q:-1] @ solution[q:]
        pieces = self._pieces(factor)
        weight = dof / pieces.r2 if sigma is None else 1.0 / sigma ** 2
        per_position = (2.0 * traces[self.cols, self.rows]
                        - 2.0 * weight * rho[self.rows] * solution[self.cols])
        return pieces, np.bincount(self.index, per_position, len(entries))


def _scale_blocks(blocks: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """lam' B_l lam + I for each (p x p) block B_l.

    With row-major vec, vec(lam' B lam) = vec(B) kron(lam, lam): one product for all levels.
    """
    levels, p = blocks.shape[:2]
    if p == 1:
        return blocks * (lam[0, 0] ** 2) + 1.0
    kron = (lam[:, None, :, None] * lam[None, :, None, :]).reshape(p * p, p * p)
    flat = blocks.reshape(levels, p * p) @ kron
    flat[:, :: p + 1] += 1.0
    return flat.reshape(levels, p, p)


def _scale_dense(a: np.ndarray, lam_i, lam_j, li: int, pi: int, lj: int, pj: int) -> np.ndarray:
    """Lambda_i' A Lambda_j for dense A with level-major columns."""
    if pi == 1 and pj == 1:
        return a * (lam_i[0, 0] * lam_j[0, 0])
    blocks = a.reshape(li, pi, lj, pj)
    right = np.tensordot(blocks, lam_j, axes=([3], [0]))  # A Lambda_j: (li, pi, lj, pj)
    both = np.tensordot(lam_i, right, axes=([0], [1]))  # Lambda_i' (A Lambda_j): (pi, li, ...)
    return np.ascontiguousarray(both.transpose(1, 0, 2, 3)).reshape(a.shape)


def sparse_z(structure: ReStructure, n: int) -> sp.csr_array:
    """Z = [Z_1 .. Z_k] of n observations as one sparse matrix (n x 0 without random
    effects)."""
    if not structure.blocks:
        return sp.csr_array((n, 0))
    return sp.csr_array(sp.hstack([b.z_matrix() for b in structure.blocks], format="csr"))
