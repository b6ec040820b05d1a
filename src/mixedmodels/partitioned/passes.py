"""The passes over a Dask DataFrame's partitions, each one Dask computation.

1. ``schema_of``: every partition's ``PartitionSummary``, added up by a tree reduction, into
   the ``DataSchema`` (levels, missing values, transforms' state).
2. ``crossproducts_of``: every partition's design in the schema's terms (``build_design``'s
   ``schema``), its cross-products A (``core.crossproducts.CrossProducts``, the type of the
   in-memory fit) and the R of a QR decomposition of its [X y] (TSQR: the R of stacked R's
   is the R of the stacked rows, Demmel et al. 2012, SIAM J. Sci. Comput. 34(1)), added up
   by a tree reduction.

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
from ..core.structure import build_structure
from ..covariance.residual import residual_structure
from ..design.build import Design, build_design
from ..design.schema import (
    DataSchema,
    ModelColumns,
    complete_mask,
    dtype_name,
    summarize,
)
from ..errors import DataError
from ..formula.parse import ParsedFormula, parse_formula
from ..parallel.progress import progress_bar

__all__ = ["PartitionCrossProducts", "crossproducts_of", "schema_of"]

#: partial sums added at each node of the tree reduction
FAN_IN = 8
#: complete rows kept as a sample of the data (``PartitionCrossProducts.sample``): at most
#: this many from each partition, spread over it, and in all
PARTITION_SAMPLE_ROWS = 1_000
SAMPLE_ROWS = 20_000


def schema_of(ddf, formula: ParsedFormula, columns: ModelColumns,
              progress: bool = False) -> DataSchema:
    """The ``DataSchema`` of ``ddf`` for ``formula`` (pass 1)."""
    dtypes = {name: dtype_name(ddf.dtypes[name]) for name in columns.used}
    summaries = [_delayed(summarize)(part, formula, columns, dtypes, index)
                 for index, part in enumerate(ddf.to_delayed())]
    summary = _compute(summaries, progress, "schema")
    return DataSchema.of(summary, formula, columns, ddf.dtypes)


@dataclass(frozen=True)
class PartitionCrossProducts:
    """The sum of the partitions' shares (None for a partition without complete rows).

    Attributes:
        crossproducts: A of [Z X y] (X in the basis asked for).
        r: the (p + 1, p + 1) R of a QR decomposition of the whitened [X y] (all columns of X).
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

    def __add__(self, other: "PartitionCrossProducts | None") -> "PartitionCrossProducts":
        if other is None:
            return self
        stacked = np.vstack([self.r, other.r])
        cells = pd.concat([self.cells, other.cells]).drop_duplicates()
        rows = pd.concat([self.rows, other.rows]).head(SAMPLE_ROWS)
        return PartitionCrossProducts(self.crossproducts + other.crossproducts,
                                      np.linalg.qr(stacked, mode="r"), self.template, cells,
                                      rows)

    @property
    def sample(self) -> pd.DataFrame:
        return pd.concat([self.cells, self.rows], ignore_index=True)

    def __radd__(self, other):
        return self if other is None else other + self


def crossproducts_of(ddf, schema: DataSchema, formula: str, weights: str | None,
                     transform: np.ndarray | None = None,
                     progress: bool = False) -> PartitionCrossProducts:
    """A of ``ddf`` (pass 2), with X's columns ``X @ transform`` when a transform is given
    (the kept columns in the fixed-effects basis: ``fixed_basis``)."""
    from dask import delayed

    schema.check_partitions(ddf.npartitions)
    shared = delayed(schema, pure=True)  # one copy in the graph, not one per partition
    shares = [_delayed(_partition_share)(part, index, shared, formula, weights, transform)
              for index, part in enumerate(ddf.to_delayed())]
    total = _compute(shares, progress, "cross-products")
    if total is None:
        raise DataError("no partition has a row without missing values")
    return total


def _partition_share(frame: pd.DataFrame, index: int, schema: DataSchema, formula: str,
                     weights: str | None, transform: np.ndarray | None):
    """One partition's ``PartitionCrossProducts`` (None without complete rows)."""
    schema.check_partition(frame, index)
    if not complete_mask(frame, schema.columns).complete.any():
        return None
    design = build_design(parse_formula(formula), frame, weights, schema=schema)
    structure = build_structure(design.terms)
    residual = residual_structure(design.weights if weights is not None else None, design.n)
    X = design.X if transform is None else design.X @ transform
    xy = np.column_stack([X, design.y - design.offset])
    crossproducts = CrossProducts.accumulate(structure.blocks, xy, residual)
    r = np.linalg.qr(residual.whiten(np.column_stack([design.X, xy[:, -1]])), mode="r")
    if r.shape[0] < r.shape[1]:  # fewer rows than columns: pad R with zero rows
        r = np.vstack([r, np.zeros((r.shape[1] - r.shape[0], r.shape[1]))])
    frame = design.frame
    categorical = [name for name in schema.columns.categorical if name in frame.columns]
    cells = frame.drop_duplicates(subset=categorical) if categorical else frame.iloc[:0]
    rows = frame.iloc[::max(1, len(frame) // PARTITION_SAMPLE_ROWS)].head(PARTITION_SAMPLE_ROWS)
    return PartitionCrossProducts(crossproducts, r, _without_rows(design), cells, rows)


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
