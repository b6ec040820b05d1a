"""Per-observation results of a model of a Dask DataFrame, computed on its partitions.

The rows stay where they are: each result is a lazy Dask series (or DataFrame) with the
partitions of the data, built by ``map_partitions`` from each partition's design in the whole
data's terms (``build_design(..., schema=...)``) and what the fit sends once to every worker
(``RowsModel``: the schema, beta, the conditional modes, sigma; the size of q, never of n).
Compute them with ``.compute()``, write them with ``.to_parquet(...)``, or reduce them
(``.describe()``, ``.mean()``).

Rows dropped for missing values are left out (``na_action="omit"``, as in memory) or kept as
NaN (``"exclude"``), so that the result aligns with the data's own partitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.structure import build_structure
from ..covariance.residual import ResidualStructure, residual_structure
from ..covariance.residual_model import ResidualParameters
from ..design.build import build_design
from ..design.schema import DataSchema, complete_mask
from ..diagnostics.predict import predict
from ..formula.parse import parse_formula
from ..validate import check_bool, check_choice, check_integer, check_seed
from .residual import partition_residual

__all__ = ["RowsModel", "fitted_values", "predictions", "residuals", "simulations"]

#: the residual kinds (``diagnostics.residuals``'s)
RESIDUAL_KINDS = ("response", "pearson", "normalized", "marginal")
NA_ACTIONS = ("omit", "exclude")


@dataclass(frozen=True)
class RowsModel:
    """What the partitions need from a fit: small, sent once to each worker.

    Attributes:
        formula, weights: the model's formula text and prior weights' column (or None).
        schema: the data's ``DataSchema``.
        x_names: the fixed effects' names; ``beta`` (p,) their estimates.
        u: per grouping factor (the model's blocks), its conditional modes (levels, p).
        lam: per grouping factor, its p x p relative covariance factor.
        sigma: the residual standard deviation.
        residual: the residual structure (``ResidualParameters``, the whole data's), or
            None; ``delta`` its estimates.
    """

    formula: str
    weights: str | None
    schema: DataSchema
    x_names: tuple[str, ...]
    beta: np.ndarray
    u: tuple[np.ndarray, ...]
    lam: tuple[np.ndarray, ...]
    sigma: float
    residual: ResidualParameters | None = None
    delta: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def of(cls, fit) -> "RowsModel":
        design = fit.model.design
        blocks = fit.model.structure.blocks
        parameters = fit.model.structure.parameters
        return cls(design.formula.text, design.weights_label, design.schema, fit.x_names,
                   np.asarray(fit.beta), tuple(fit._u_blocks),
                   tuple(b.lam(fit.theta) for b in blocks), float(fit.sigma),
                   parameters.residual, np.asarray(fit.theta[parameters.residual_slice]))

    def parts(self, frame: pd.DataFrame):
        """(design, X beta + offset, per block (codes, values)) of a partition's complete
        rows."""
        design = build_design(parse_formula(self.formula), frame, self.weights,
                              schema=self.schema)
        columns = [design.x_names.index(name) for name in self.x_names]
        mean = design.X[:, columns] @ self.beta + design.offset
        blocks = [(b.codes, b.values) for b in build_structure(design.terms).blocks]
        return design, mean, blocks

    def psi(self, design) -> ResidualStructure:
        """Psi = Var(e) / sigma^2 of a partition's rows (its ``design``): the residual
        structure's at the estimates (its groups are in the partition), or the prior
        weights' W^-1."""
        if self.residual is None:
            return residual_structure(design.weights if self.weights is not None else None,
                                      design.n)
        return partition_residual(design, self.residual).at(self.delta)

    def random_part(self, blocks, u) -> np.ndarray:
        """Z u of rows given by their blocks' (codes, values)."""
        total = 0.0
        for (codes, values), modes in zip(blocks, u):
            total = total + np.einsum("ij,ij->i", values, modes[codes])
        return np.asarray(total, dtype=float)


def _complete(frame: pd.DataFrame, model: RowsModel) -> bool:
    return bool(complete_mask(frame, model.schema.columns).complete.any())


def _series(values: np.ndarray, rows: pd.Index, frame: pd.DataFrame, name: str,
            na_action: str) -> pd.Series:
    series = pd.Series(values, index=rows, name=name, dtype=float)
    return series.reindex(frame.index) if na_action == "exclude" else series


def _partition_fitted(frame, model: RowsModel, kind: str, na_action: str) -> pd.Series:
    if not len(frame) or not _complete(frame, model):
        return _series(np.zeros(0), frame.index[:0], frame, "fitted", na_action)
    design, mean, blocks = model.parts(frame)
    if kind == "conditional":
        mean = mean + model.random_part(blocks, model.u)
    return _series(mean, design.rows, frame, "fitted", na_action)


def _partition_residuals(frame, model: RowsModel, kind: str, scaled: bool,
                         na_action: str) -> pd.Series:
    if not len(frame) or not _complete(frame, model):
        return _series(np.zeros(0), frame.index[:0], frame, "residual", na_action)
    design, mean, blocks = model.parts(frame)
    values = design.y - mean
    if kind != "marginal":
        values = values - model.random_part(blocks, model.u)
    if kind == "pearson":
        values = values / np.sqrt(model.psi(design).variances())
    elif kind == "normalized":
        values = model.psi(design).normalize(values)
    if scaled or kind == "normalized":
        values = values / model.sigma
    return _series(values, design.rows, frame, "residual", na_action)


def _partition_simulations(frame, model: RowsModel, u: tuple, seed, index: int,
                           n: int) -> pd.DataFrame:
    columns = [f"sim_{j + 1}" for j in range(n)]
    if not len(frame) or not _complete(frame, model):
        return pd.DataFrame(np.zeros((0, n)), index=frame.index[:0], columns=columns)
    design, mean, blocks = model.parts(frame)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    noise = model.psi(design).color(rng.standard_normal((design.n, n)))
    out = mean[:, None] + model.sigma * noise
    for j in range(n):
        out[:, j] += model.random_part(blocks, [modes[j] for modes in u])
    return pd.DataFrame(out, index=design.rows, columns=columns)


def fitted_values(fit, kind: str = "conditional", na_action: str = "omit"):
    """X beta + Z u ("conditional") or X beta ("marginal"), plus the offset, per row: a lazy
    Dask series with the data's partitions."""
    kind = check_choice(kind, "kind", ("conditional", "marginal"))
    na_action = check_choice(na_action, "na_action", NA_ACTIONS)
    data = fit.model.dask_data("fit.fitted_values()")
    model = _shared(RowsModel.of(fit))
    return data.map_partitions(_partition_fitted, model, kind, na_action,
                               meta=pd.Series(dtype=float, name="fitted"))


def residuals(fit, kind: str = "response", scaled: bool = False, na_action: str = "omit"):
    """Residuals per row, as ``diagnostics.residuals`` defines them ("pearson" divided by
    the sd of Psi's diagonal, "normalized" whitened by the partition's blocks of Psi: each
    group's rows are in one partition): a lazy Dask series."""
    kind = check_choice(kind, "kind", RESIDUAL_KINDS)
    scaled = check_bool(scaled, "scaled")
    na_action = check_choice(na_action, "na_action", NA_ACTIONS)
    data = fit.model.dask_data("fit.resid()")
    model = _shared(RowsModel.of(fit))
    return data.map_partitions(_partition_residuals, model, kind, scaled, na_action,
                               meta=pd.Series(dtype=float, name="residual"))


def simulations(fit, n: int = 1, seed=None):
    """n responses simulated from the fitted model, as lme4's ``simulate``: new random effects
    u* ~ N(0, G) drawn once (on the client, q values per simulation), new residuals
    e* ~ N(0, sigma^2 Psi) drawn on each partition (its groups' blocks of Psi, at the
    estimates) from its own stream (``SeedSequence(seed, spawn_key=(partition,))``), so
    that the same seed and partitions give the same draws wherever they run. A lazy Dask
    DataFrame with columns sim_1 ... sim_n, in the rows of the fit."""
    n = check_integer(n, "n (the number of simulations)", minimum=1)
    seed = check_seed(seed)
    data = fit.model.dask_data("fit.simulate()")
    entropy = np.random.SeedSequence(seed).entropy
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(2 ** 31,)))
    model = RowsModel.of(fit)
    u = tuple(np.stack([fit.sigma * rng.standard_normal(modes.shape) @ lam.T
                        for _ in range(n)]) for modes, lam in zip(model.u, model.lam))
    shared_model, shared_u = _shared(model), _shared(u)
    meta = pd.DataFrame({f"sim_{j + 1}": pd.Series(dtype=float) for j in range(n)})
    parts = [_delayed(_partition_simulations)(part, shared_model, shared_u, entropy, i, n)
             for i, part in enumerate(data.to_delayed())]
    import dask.dataframe as dd

    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def predictions(fit, newdata=None, na_action: str = "omit", **options):
    """``diagnostics.predict.predict`` on each partition of the Dask DataFrame ``newdata``,
    or of the fitted data's rows used by the fit (``newdata`` None; the others left out, or
    NaN with ``na_action="exclude"``): a lazy Dask series (a DataFrame with ``interval``)."""
    na_action = check_choice(na_action, "na_action", NA_ACTIONS)
    meta = predict(fit, fit.model.design.sample.head(1), **options).iloc[:0]
    fitted_rows = newdata is None
    data = fit.model.dask_data("fit.predict()") if fitted_rows else newdata
    schema = fit.model.design.schema if fitted_rows else None
    return data.map_partitions(_partition_predict, _shared(fit), options, meta, schema,
                               na_action, meta=meta)


def _partition_predict(frame, fit, options, meta, schema, na_action):
    """Predictions for a partition; with the data's ``schema``, for its rows the fit used."""
    rows = frame
    if schema is not None:
        rows = frame.loc[complete_mask(frame, schema.columns).complete]
    out = predict(fit, rows, **options) if len(rows) else meta
    return out.reindex(frame.index) if schema is not None and na_action == "exclude" else out


def _shared(value):
    """``value`` as one Dask key, sent once to each worker (not once per partition)."""
    from dask import delayed

    return delayed(value, pure=True)


def _delayed(function):
    from dask import delayed

    return delayed(function, pure=True)
