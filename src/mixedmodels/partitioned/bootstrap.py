"""The parametric bootstrap of a model of a Dask DataFrame, its simulations on the partitions.

A replicate refits the model to a simulated response y* = X beta + Z u* + e*. Only the
cross-products that involve y change (Z'y*, X'y*, y*'y*), and they are sums over rows: each
pass over the partitions simulates a chunk of replicates' responses on every partition and
sums their products there (``_ResponseProducts``); the refits then run on the client from
the model's cross-products with those rows replaced (``PLSSystem.with_response_products``),
as the in-memory bootstrap refits ``model.with_response(y*)``.

Draws: replicate i has the seed ``SeedSequence(seed).spawn(n)[i]`` (as in memory); its
random effects u* are drawn on the client from its child 0, its residuals on partition k from
its child k + 1. The replicates depend on the seed and the partitions, not on the chunking,
the scheduler or the worker that ran a partition. They are not the in-memory bootstrap's
draws (which come in another order), but the same distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..inference.bootstrap import BootstrapResult, bootstrap_result, replicate_values
from ..inference.parameters import parameter_names
from ..parallel.progress import progress_bar
from ..validate import check_bool, check_integer, check_level, check_seed
from .passes import _compute
from .rows import RowsModel, _complete, _shared

__all__ = ["bootstrap"]

#: replicates simulated per pass over the data: a partition holds rows x CHUNK responses
CHUNK = 64


@dataclass(frozen=True)
class _ResponseProducts:
    """For k responses: Z_b'y per block (q_b, k), X'y (p, k) and y'y (k,) of the whitened
    rows, X in the model's own columns; summed over partitions with ``+``."""

    zty: tuple[np.ndarray, ...]
    xty: np.ndarray
    yty: np.ndarray

    def __add__(self, other: "_ResponseProducts") -> "_ResponseProducts":
        return _ResponseProducts(tuple(a + b for a, b in zip(self.zty, other.zty)),
                                 self.xty + other.xty, self.yty + other.yty)


def _seeds(sequence: np.random.SeedSequence, child: int) -> np.random.Generator:
    """The generator of a replicate's child stream (0: u*; k + 1: partition k's e*)."""
    return np.random.default_rng(np.random.SeedSequence(
        sequence.entropy, spawn_key=(*sequence.spawn_key, child)))


def _partition_products(frame, model: RowsModel, u: tuple, sequences: list, index: int):
    """The ``_ResponseProducts`` of one partition for the replicates of ``sequences``, their
    random effects ``u`` per block (k, levels, p); None without complete rows."""
    if not len(frame) or not _complete(frame, model):
        return None
    design, mean, blocks = model.parts(frame)
    root_w = np.sqrt(design.weights)
    k = len(sequences)
    noise = np.column_stack([_seeds(s, index + 1).standard_normal(design.n) for s in sequences])
    Y = (mean - design.offset)[:, None] + model.sigma * noise / root_w[:, None]
    for j in range(k):
        Y[:, j] += model.random_part(blocks, [modes[j] for modes in u])
    Y *= root_w[:, None]  # the whitened rows
    zty = []
    for (codes, values), modes in zip(blocks, u):
        p, levels = values.shape[1], modes.shape[1]
        columns = (codes[:, None] * p + np.arange(p)).ravel()
        rows = np.repeat(np.arange(design.n), p)
        Z = sp.csr_array(((values * root_w[:, None]).ravel(), (rows, columns)),
                         shape=(design.n, levels * p))
        zty.append(np.asarray(Z.T @ Y))
    columns = [design.x_names.index(name) for name in model.x_names]
    X = design.X[:, columns] * root_w[:, None]
    return _ResponseProducts(tuple(zty), X.T @ Y, np.einsum("ij,ij->j", Y, Y))


def bootstrap(fit, n: int, seed=None, progress: bool = True,
              level: float = 0.95) -> BootstrapResult:
    """Parametric bootstrap of a fit of a Dask DataFrame (see the module docstring), as the
    in-memory ``inference.bootstrap.bootstrap``: n replicates, in passes of ``CHUNK`` over
    the data, and their percentile intervals at ``level``."""
    from dask import delayed

    n = check_integer(n, "n (the number of replicates)")
    seed, level = check_seed(seed), check_level(level)
    progress = check_bool(progress, "progress")
    if fit.model.structure.parameters.residual is not None:
        raise NotImplementedError(
            "the bootstrap of a Dask fit with a residual structure is not available: each "
            "replicate's refit would form A(delta) of its own response at every delta its "
            "optimizer tries (its cross-products are not those of the fitted response plus "
            "a few sums, as without one). fit.simulate(n) gives the responses on the "
            "partitions; confint(method='profile') gives intervals")
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    model = fit.model
    data = model.dask_data("fit.bootstrap()")
    rows_model = RowsModel.of(fit)
    shared = _shared(rows_model)
    system = model.system
    to_basis = system._basis_inverse.T  # Q'y = R^-T X'y
    nparams = len(parameter_names(fit))
    bar = progress_bar(n, progress, "bootstrap")
    rows = []
    replicates = sequence.spawn(n)
    for start in range(0, n, CHUNK):
        chunk = replicates[start:start + CHUNK]
        u = tuple(np.stack([fit.sigma * _seeds(s, 0).standard_normal(modes.shape) @ lam.T
                            for s in chunk]) for modes, lam in zip(rows_model.u, rows_model.lam))
        shared_u, shared_chunk = delayed(u, pure=True), delayed(chunk, pure=True)
        parts = [delayed(_partition_products, pure=True)(part, shared, shared_u, shared_chunk,
                                                         index)
                 for index, part in enumerate(data.to_delayed())]
        products = _compute(parts, False, "bootstrap")
        for j in range(len(chunk)):
            responses = system.with_response_products(
                [z[:, j] for z in products.zty], to_basis @ products.xty[:, j],
                float(products.yty[j]))
            rows.append(replicate_values(
                lambda: model._sibling(model.design, responses, model.reml), nparams))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return bootstrap_result(fit, rows, seed, sequence, level)

