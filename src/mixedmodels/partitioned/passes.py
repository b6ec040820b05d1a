"""The passes over a Dask DataFrame's partitions, each one Dask computation.

1. ``schema_of``: every partition's ``PartitionSummary``, added up by a tree reduction, into
   the ``DataSchema`` (levels, missing values, transforms' state); with a residual
   structure, its ``ResidualShare`` too (what it learns, and each partition's groups).
2. ``crossproducts_of``: every partition's design in the schema's terms (``build_design``'s
   ``schema``), its cross-products A (``core.crossproducts.CrossProducts``, the type of the
   in-memory fit) and the R of a QR decomposition of its [X y] (TSQR: the R of stacked R's
   is the R of the stacked rows, Demmel et al. 2012, SIAM J. Sci. Comput. 34(1)), added up
   by a tree reduction; with a residual structure, of the rows whitened at its start, and
   the sums of its marginal pieces (``core.marginal.UnitSums``).
3. ``residual_crossproducts_of``: with a residual structure, A(delta) at one value of its
   parameters (``partitioned.residual_system``), as often as the fit needs it.

What comes back to the client is the size of A and of the schema, never of the rows. The
computations run on the active Dask scheduler: a ``distributed.Client``'s cluster when one is
the default, else Dask's own (the threads of this process). A partition that fails on a
worker which dies is recomputed by Dask; the result does not depend on where, or how often, a
partition ran.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..core.crossproducts import CrossProducts
from ..core.marginal import UnitSums
from ..core.structure import build_structure
from ..covariance.residual import residual_structure
from ..covariance.residual_model import ResidualParameters
from ..design.build import Design, build_design
from ..design.schema import (
    DataSchema,
    ModelColumns,
    PartitionSummary,
    complete_mask,
    dtype_name,
    summarize,
)
from ..errors import DataError
from ..formula.parse import ParsedFormula, parse_formula
from ..lmm.model import _check_nested
from ..parallel.progress import progress_bar
from .residual import ResidualShare, partition_residual

__all__ = ["PartitionCrossProducts", "crossproducts_of", "residual_crossproducts_of",
           "schema_of"]

#: partial sums added at each node of the tree reduction
FAN_IN = 8
#: complete rows kept as a sample of the data (``PartitionCrossProducts.sample``): at most
#: this many from each partition, spread over it, and in all
PARTITION_SAMPLE_ROWS = 1_000
SAMPLE_ROWS = 20_000


def schema_of(ddf, formula: ParsedFormula, columns: ModelColumns, progress: bool = False,
              residual: tuple | None = None) -> DataSchema:
    """The ``DataSchema`` of ``ddf`` for ``formula`` (pass 1); with ``residual``, the
    (correlation, variance) structures given to the model, their ``ResidualShare`` too."""
    dtypes = {name: dtype_name(ddf.dtypes[name]) for name in columns.used}
    summaries = [_delayed(_schema_share)(part, formula, columns, dtypes, index, residual)
                 for index, part in enumerate(ddf.to_delayed())]
    total = _compute(summaries, progress, "schema")
    return DataSchema.of(total.summary, formula, columns, ddf.dtypes, total.residual)


@dataclass(frozen=True)
class _SchemaShare:
    """A partition's ``PartitionSummary`` and ``ResidualShare`` (None without a residual
    structure, or without complete rows)."""

    summary: PartitionSummary
    residual: ResidualShare | None

    def __add__(self, other: "_SchemaShare") -> "_SchemaShare":
        residual = (other.residual if self.residual is None
                    else self.residual + other.residual)
        return _SchemaShare(self.summary + other.summary, residual)


def _schema_share(frame: pd.DataFrame, formula: ParsedFormula, columns: ModelColumns,
                  dtypes: dict, index: int, residual: tuple | None) -> _SchemaShare:
    summary = summarize(frame, formula, columns, dtypes, index)
    share = None
    if residual is not None and summary.complete:
        complete = frame.loc[complete_mask(frame, columns).complete]
        share = ResidualShare.of(complete, *residual, index)
    return _SchemaShare(summary, share)


@dataclass(frozen=True)
class PartitionCrossProducts:
    """The sum of the partitions' shares (None for a partition without complete rows).

    Attributes:
        crossproducts: A of [Z X y] (X in the basis asked for; of the whitened rows at the
            residual structure's start, if the model has one).
        r: the (p + 1, p + 1) R of a QR decomposition of the whitened [X y] (all columns of X).
        pieces: with a residual structure, the sums of its marginal pieces (``UnitSums``, of
            [X y] in the basis asked for), or None where they do not apply.
        template: the design of the first partition with complete rows, without its rows
            (its specs, names and terms: the model's design on the client).
        sample: complete rows in the model's columns (cast to the schema's levels), to
            evaluate the fixed part's coding on (hypothesis contrasts): one row of every
            combination of the categorical columns' levels that the data have, then up to
            ``SAMPLE_ROWS`` more, ``PARTITION_SAMPLE_ROWS`` at most from each partition.
    """

    crossproducts: CrossProducts
    r: np.ndarray
    template: Design
    cells: pd.DataFrame
    rows: pd.DataFrame
    pieces: UnitSums | None = None

    def __add__(self, other: "PartitionCrossProducts | None") -> "PartitionCrossProducts":
        if other is None:
            return self
        stacked = np.vstack([self.r, other.r])
        cells = pd.concat([self.cells, other.cells]).drop_duplicates()
        rows = pd.concat([self.rows, other.rows]).head(SAMPLE_ROWS)
        pieces = None if self.pieces is None else self.pieces + other.pieces
        return PartitionCrossProducts(self.crossproducts + other.crossproducts,
                                      np.linalg.qr(stacked, mode="r"), self.template, cells,
                                      rows, pieces)

    @property
    def sample(self) -> pd.DataFrame:
        return pd.concat([self.cells, self.rows], ignore_index=True)

    def __radd__(self, other):
        return self if other is None else other + self


def crossproducts_of(ddf, schema: DataSchema, formula: str, weights: str | None,
                     columns: np.ndarray | None = None, progress: bool = False,
                     residual: ResidualParameters | None = None) -> PartitionCrossProducts:
    """A of ``ddf`` (pass 2), of [X y] @ ``columns`` when they are given ((p + 1) x (p' + 1):
    the kept columns of X in the fixed-effects basis, ``fixed_basis``, and y less the
    ``core.response_shift`` X b0, formed in each row). With a ``residual``
    structure (the whole data's, ``ResidualShare.parameters``), of the rows whitened at its
    start, and its marginal pieces' sums.

    Raises:
        DataError: no complete rows; with a residual structure, as in memory: its groups
            not within the levels of a random-effects factor (``lmm.model._check_nested``),
            or its start not positive definite.
    """
    from dask import delayed

    schema.check_partitions(ddf.npartitions)
    shared = delayed(schema, pure=True)  # one copy in the graph, not one per partition
    shares = [_delayed(_partition_share)(part, index, shared, formula, weights, columns,
                                         residual)
              for index, part in enumerate(ddf.to_delayed())]
    total = _compute(shares, progress, "cross-products")
    if total is None:
        raise DataError("no partition has a row without missing values")
    return total


def _partition_share(frame: pd.DataFrame, index: int, schema: DataSchema, formula: str,
                     weights: str | None, columns: np.ndarray | None,
                     parameters: ResidualParameters | None = None):
    """One partition's ``PartitionCrossProducts`` (None without complete rows)."""
    schema.check_partition(frame, index)
    if not complete_mask(frame, schema.columns).complete.any():
        return None
    design = build_design(parse_formula(formula), frame, weights, schema=schema)
    structure = build_structure(design.terms)
    xy = np.column_stack([design.X, design.y - design.offset])
    xy = xy if columns is None else xy @ columns
    pieces = None
    if parameters is None:
        residual = residual_structure(design.weights if weights is not None else None,
                                      design.n)
    else:
        model = partition_residual(design, parameters)
        _check_nested(model, structure)
        residual = model.at(model.start())
        if residual is None:
            raise DataError("the residual structure is not positive definite at its start "
                            "(independence, or a typical range or gap) on these data")
        pieces = UnitSums.of(structure, model, xy)
    crossproducts = CrossProducts.accumulate(structure.blocks, xy, residual)
    r = np.linalg.qr(residual.whiten(np.column_stack([design.X, xy[:, -1]])), mode="r")
    if r.shape[0] < r.shape[1]:  # fewer rows than columns: pad R with zero rows
        r = np.vstack([r, np.zeros((r.shape[1] - r.shape[0], r.shape[1]))])
    frame = design.frame
    categorical = [name for name in schema.columns.categorical if name in frame.columns]
    cells = frame.drop_duplicates(subset=categorical) if categorical else frame.iloc[:0]
    rows = frame.iloc[::max(1, len(frame) // PARTITION_SAMPLE_ROWS)].head(PARTITION_SAMPLE_ROWS)
    return PartitionCrossProducts(crossproducts, r, _without_rows(design), cells, rows, pieces)


def residual_crossproducts_of(parts: list, schema, formula: str, weights: str | None,
                              parameters: ResidualParameters, delta: np.ndarray,
                              columns: np.ndarray):
    """A(delta) of the partitions ``parts`` (a Dask DataFrame's ``to_delayed()``; ``schema``
    a delayed ``DataSchema``): each partition's rows [X y] @ ``columns`` whitened by its
    groups' blocks of Psi(delta) (the whole data's structures, ``parameters``), their
    ``CrossProducts`` tree-summed; None where Psi is not positive definite."""
    shares = [_delayed(_residual_share)(part, index, schema, formula, weights, parameters,
                                        delta, columns)
              for index, part in enumerate(parts)]
    total = _compute(shares, False, "residual cross-products")
    if total is None:
        raise DataError("no partition has a row without missing values")
    return None if isinstance(total, _Outside) else total  # (a copy, from a worker)


class _Outside:
    """The share of a partition whose block of Psi is not positive definite: the sum too
    (any instance: one from a worker process is a copy)."""

    def __add__(self, other):
        return self

    __radd__ = __add__


def _residual_share(frame: pd.DataFrame, index: int, schema: DataSchema, formula: str,
                    weights: str | None, parameters: ResidualParameters, delta: np.ndarray,
                    columns: np.ndarray):
    """One partition's A(delta) (``residual_crossproducts_of``); None without complete
    rows, ``_Outside`` where its Psi(delta) is not positive definite."""
    schema.check_partition(frame, index)
    if not complete_mask(frame, schema.columns).complete.any():
        return None
    design = build_design(parse_formula(formula), frame, weights, schema=schema)
    psi = partition_residual(design, parameters).at(delta)
    if psi is None:
        return _Outside()
    xy = np.column_stack([design.X, design.y - design.offset]) @ columns
    return CrossProducts.accumulate(build_structure(design.terms).blocks, xy, psi)


def residual_pair_sums_of(ddf, schema: DataSchema, formula: str, weights: str | None,
                          parameters: ResidualParameters, columns: np.ndarray,
                          beta: np.ndarray, progress: bool = False) -> np.ndarray:
    """``Symm.pair_sums`` of the least-squares residuals y - X beta of all the rows (beta
    of [X y] @ ``columns``'s X), summed over the partitions: the start of a general
    correlation (``Symm.moment_start``), as in memory."""
    from dask import delayed

    shared = delayed(schema, pure=True)
    shares = [_delayed(_pair_sums_share)(part, index, shared, formula, weights, parameters,
                                         columns, beta)
              for index, part in enumerate(ddf.to_delayed())]
    return _compute(shares, progress, "residual correlations")


def _pair_sums_share(frame: pd.DataFrame, index: int, schema: DataSchema, formula: str,
                     weights: str | None, parameters: ResidualParameters,
                     columns: np.ndarray, beta: np.ndarray):
    """One partition's share of ``residual_pair_sums_of`` (None without complete rows)."""
    schema.check_partition(frame, index)
    if not complete_mask(frame, schema.columns).complete.any():
        return None
    design = build_design(parse_formula(formula), frame, weights, schema=schema)
    xy = np.column_stack([design.X, design.y - design.offset]) @ columns
    model = partition_residual(design, parameters)
    return parameters.correlation.pair_sums(xy[:, -1] - xy[:, :-1] @ beta, model.group_codes,
                                            model.positions)


def _without_rows(design: Design) -> Design:
    """The design's specs, names and terms, without the rows (sent to the client)."""
    empty = np.zeros(0)
    terms = tuple(replace(t, values=t.values[:0], codes=t.codes[:0]) for t in design.terms)
    return replace(design, y=empty, X=design.X[:0], terms=terms, rows=design.rows[:0],
                   source=None, offset=empty, weights=empty,
                   missing_rows=design.missing_rows[:0])


def _add(*parts):
    """The sum of the parts that are not None (None if all are)."""
    total = None
    for part in parts:
        if part is not None:
            total = part if total is None else total + part
    return total


def _tree_sum(parts: list):
    """A tree of delayed sums, ``FAN_IN`` parts per node."""
    while len(parts) > 1:
        parts = [_delayed(_add)(*parts[i:i + FAN_IN]) for i in range(0, len(parts), FAN_IN)]
    return parts[0]


def _delayed(function):
    from dask import delayed

    return delayed(function, pure=True)


def _compute(parts: list, progress: bool, what: str):
    """The sum of the partitions' delayed ``parts``, computed on the active scheduler (a
    tree reduction on the cluster's workers, or in this process's threads), with a progress
    bar counting partitions (tqdm) if asked for. Data that cannot be read (a file gone, or
    unreadable) is a DataError that says which."""
    bar = progress_bar(len(parts), progress, f"mixedmodels: {what} pass", unit="partition")
    try:
        client = _client()
        if client is None:
            return _compute_here(parts, bar)
        futures = client.compute(parts)
        total = futures
        while len(total) > 1:  # the tree reduction, on the workers
            total = [client.submit(_add, *total[i:i + FAN_IN], pure=False)
                     for i in range(0, len(total), FAN_IN)]
        if bar is not None:
            from distributed import as_completed
            for _ in as_completed(futures):
                bar.update(1)
        return total[0].result()
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        raise DataError(f"a partition of the data could not be read ({what} pass): "
                        f"{exc}") from None
    except KeyError as exc:  # a file without a column the data's first file has
        raise DataError(f"a partition of the data lacks a column the model uses ({what} "
                        f"pass): {exc}; give every file the same columns") from None
    except Exception as exc:
        if type(exc).__module__.startswith("pyarrow"):  # a file that is not valid Parquet
            raise DataError(f"a partition of the data could not be read ({what} pass): "
                            f"{type(exc).__name__}: {exc}") from None
        raise
    finally:
        if bar is not None:
            bar.close()


def _compute_here(parts: list, bar):
    """The tree sum of ``parts`` on Dask's local scheduler, ``bar`` ticking per partition."""
    import dask
    from dask.callbacks import Callback

    keys = {part.key for part in parts}

    def finished(key, result, dsk, state, worker_id):
        if key in keys:
            bar.update(1)

    with Callback(posttask=finished) if bar is not None else nullcontext():
        return dask.compute(_tree_sum(parts))[0]


def _client():
    """The default ``distributed.Client``, or None (Dask's local scheduler)."""
    try:
        from distributed import default_client
        return default_client()
    except (ImportError, ValueError):
        return None
