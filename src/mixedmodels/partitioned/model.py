"""A linear mixed model of a Dask DataFrame: the model of the in-memory fit, from the summed
cross-products of its partitions.

``PartitionedModel(formula, ddf)`` makes two passes over the partitions (``passes``): the
schema, then the cross-products A and the R of [X y]. Then, as the in-memory design does from
the rows:

* aliased fixed-effects columns are dropped, decided from R (whose columns have the lengths
  and angles of X's), with the same warning;
* nearly collinear columns (``core.pls.fixed_basis``, decided from R too) take a third pass,
  which forms A in the orthonormal basis the in-memory fit uses, so that the numbers agree to
  rounding;
* the checks of the whole data (enough rows, a single level, identifiability, a response the
  fixed effects fit exactly) run on the totals.

The model's optimizer, criterion, factor and every quantity computed from them are those of
``LinearMixedModel``: a fit of the same rows in memory gives the same numbers to rounding
(``tests/test_partitioned.py``). Nothing the size of the rows is on the client: the design
keeps its specs, names and levels (``PartitionedDesign``), not its rows, and what needs the
rows (the fitted values, residuals and predictions) is computed on the partitions
(``rows``).

Residual correlation structures and variance functions (``correlation=``, ``variance=``,
and ``gls`` without random effects: ``PartitionedGls``) need each correlation group's rows
in one partition, and say how to repartition otherwise; their A(delta) is summed over the
partitions (``partitioned.residual``, ``partitioned.residual_system``).

Not supported on partitions, each with an error that says so: prior weights given as values
(a column name is supported), refits of subsets of the rows (``rebuild``: group deletion,
``ranova``) and new responses (``refit``; the parametric bootstrap of a model with a residual
structure: without one, ``partitioned.bootstrap`` simulates on the partitions).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.linalg.lapack import dtrtri

from ..core.marginal import MarginalPieces, UnitSums
from ..core.pls import PLSSystem, fixed_basis
from ..core.response_shift import least_squares, response_shift
from ..core.structure import build_structure
from ..covariance.residual import Identity
from ..covariance.residual_model import correlation_of, variance_of
from ..design.build import (
    NOBS_CHECKS,
    Design,
    _independent_columns,
    build_design,
    check_enough_rows,
    check_identifiable,
    check_random_terms,
    drop_aliased,
    warn_missing_rows,
)
from ..design.schema import DataSchema, model_columns
from ..errors import DataError, DataWarning, recorded_warnings, warn_user
from ..formula.parse import parse_formula
from ..lmm.model import LinearMixedModel, _check_confounded
from ..validate import check_bool, check_choice, type_name
from .passes import crossproducts_of, residual_pair_sums_of, schema_of
from .residual_system import DeltaPasses, PartitionedResidualSystem

__all__ = ["PartitionedDesign", "PartitionedGls", "PartitionedModel"]

#: |R_yy| at most this times |y| (the norm of the least-squares residual): an exact fit
EXACT_FIT = 1e-10


@dataclass(frozen=True)
class PartitionedDesign(Design):
    """A ``Design`` whose rows are in the partitions: its arrays have no rows, ``n`` is the
    number of observations of all the partitions, ``schema`` the ``DataSchema``, ``sample``
    some complete rows (``passes.PartitionCrossProducts.sample``)."""

    nobs: int = 0
    schema: DataSchema | None = None
    sample: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return self.nobs

    @property
    def contrast_frame(self) -> pd.DataFrame:
        """The sample, on which the fixed part's coding is evaluated (type III contrasts
        depend on the coding only, when X has full column rank on these rows).

        Raises:
            DataError: the sample's X does not have full column rank (some combination of the
                fixed-effects factors' levels is missing from it).
        """
        design = build_design(self.formula, self.sample, self.weights_label,
                              schema=self.schema)
        X = design.X[:, [design.x_names.index(name) for name in self.x_names]]
        if len(self.x_names) > 1 and not _independent_columns(X).all():
            raise DataError(
                f"hypothesis contrasts are evaluated on a sample of the data ({len(self.sample)} "
                "complete rows: every combination of the categorical columns' levels, and "
                "rows spread over the partitions) on which the fixed-effects columns are not "
                "linearly independent; the F tests of these data need them in memory")
        return self.sample


class PartitionedModel(LinearMixedModel):
    """``LinearMixedModel`` of a Dask DataFrame (see the module docstring); ``data`` is the
    Dask DataFrame. ``random_effects`` False (``PartitionedGls``): nlme's ``gls``, a formula
    without random-effects terms, as ``GeneralizedLeastSquares``.

    Args:
        formula, reml, nobs_checks: as ``LinearMixedModel``'s.
        data: a ``dask.dataframe.DataFrame``.
        weights: None, or the name of a column of prior weights.
        correlation, variance: a residual structure, as ``LinearMixedModel``'s (see
            ``partitioned.residual``: a correlation structure's groups must each lie in one
            partition).
        progress: show a progress bar for each pass over the data.
        schema: the ``DataSchema`` of these data from an earlier model of them (its
            ``design.schema``), to skip the first pass; it refuses other data (another
            number of partitions, rows or values, other dtypes).

    Raises:
        DataError: as the in-memory model; and a group of the correlation structure with
            rows in two partitions (the message says how to repartition).
        ValueError: a ``schema`` computed for other columns or another residual structure.
    """

    def __init__(self, formula: str, data, reml: bool = True, weights=None,
                 nobs_checks: str = "error", progress: bool = False,
                 schema: DataSchema | None = None, correlation=None, variance=None):
        reml = check_bool(reml, "reml")
        check_choice(nobs_checks, "nobs_checks", NOBS_CHECKS)
        import dask.dataframe as dd

        if not isinstance(data, dd.DataFrame):
            raise DataError(f"data must be a Dask DataFrame (or a pandas one), not a "
                            f"{type_name(data)}; e.g. ddf[[...columns...]] keeps it a "
                            "DataFrame")
        if weights is not None and not isinstance(weights, str):
            raise DataError("weights of a Dask DataFrame must be the name of one of its "
                            "columns (values cannot be matched to its rows)")
        self.correlation = correlation_of(correlation)
        self.variance = variance_of(variance)
        structures = None
        if self.correlation is not None or self.variance is not None:
            structures = (self.correlation, self.variance)
        parsed = parse_formula(formula)
        check_random_terms(parsed, self.random_effects)
        columns = model_columns(parsed, data.dtypes, weights, self._residual_columns())
        if schema is not None and (schema.columns != columns):
            raise ValueError("the schema was computed for a model that uses other columns "
                             f"({', '.join(schema.columns.used)}); compute this model's")
        if schema is not None and structures is not None and (
                schema.residual is None or not schema.residual.specifies(*structures)):
            raise ValueError("the schema was computed for a model with another residual "
                             "structure; compute this model's")
        with recorded_warnings() as messages:
            if schema is None:
                schema = schema_of(data, parsed, columns, progress, structures)
            check_factor_size(schema)
            parameters = None if structures is None else schema.residual.parameters()
            if schema.zero_weights:
                warn_user(f"dropped {schema.zero_weights} of {schema.rows} rows whose weight "
                          f"{weights!r} is 0: they carry no information", DataWarning)
            rows = schema.rows - schema.zero_weights
            if schema.complete < rows:
                warn_missing_rows(rows - schema.complete, rows, schema.missing)
            share = crossproducts_of(data, schema, formula, weights, progress=progress,
                                     residual=parameters)
            template = share.template
            p = template.X.shape[1]
            _, names, dropped = drop_aliased(template.X, template.x_names, share.r[:, :p])
            keep = np.array([name in names for name in template.x_names])
        check_enough_rows(schema.complete, len(names))
        _check_exact_fit(share.r, parsed.response)
        kept = np.flatnonzero(keep)
        first_r = share.r  # R of [X y], all of X's columns
        basis = fixed_basis(share.r[:, kept])
        rows = np.append(kept, p)
        shift = response_shift(np.linalg.qr(share.r[:, rows], mode="r"))
        columns = np.eye(p + 1)[:, rows]  # [X y] -> the kept columns and y
        if basis is not None:  # the in-memory fit's basis Q = X R^-1, formed on the partitions
            columns[:p, :-1] = np.eye(p)[:, keep] @ dtrtri(basis)[0]
        if shift is not None:  # y - X b0, as in memory
            columns[kept, -1] = -shift
        if basis is None and shift is None:
            crossproducts = share.crossproducts.with_response_rows(
                tuple(z[rows] for z in share.crossproducts.xy_z),
                share.crossproducts.xy[np.ix_(rows, rows)])
        else:
            share = crossproducts_of(data, schema, formula, weights, columns, progress,
                                     parameters)
            crossproducts = share.crossproducts
        design = PartitionedDesign(**{**template.__dict__, "X": template.X[:, keep],
                                      "x_names": names, "dropped": dropped,
                                      "transforms": schema.transforms},
                                   nobs=schema.complete, schema=schema, sample=share.sample)
        _check_levels(design)
        check_identifiable(design.terms, design.n, nobs_checks)
        self.design = design
        self.response_shift = shift
        self.data = data
        self.warnings = tuple(messages)
        self.data_index = None
        self.nobs_checks = nobs_checks
        self.structure = build_structure(design.terms, parameters)
        self.residual = Identity(0)
        self.reml = reml
        if self.structure.parameters.residual is None:
            self.system = PLSSystem.from_crossproducts(self.structure, crossproducts, basis)
            return
        with recorded_warnings() as messages:
            _check_confounded(self.correlation, self.variance, design.terms)
        self.warnings += tuple(messages)
        self.residual = None
        passes = DeltaPasses(data, schema, formula, weights, parameters, columns)
        self._least_squares = (passes, np.linalg.qr(first_r @ columns, mode="r"))
        self.system = PartitionedResidualSystem(
            self.structure, passes, design.n, basis,
            _marginal_pieces(share.pieces, self.structure, basis, columns), crossproducts)

    rows_in_memory = False

    def residual_at(self, theta: np.ndarray):
        """Psi of every row: not on partitions, which whiten their own rows (``rows``)."""
        if self.residual is not None:
            return self.residual
        raise ValueError("the residual covariance Psi is a matrix over the rows of the data, "
                         "which stay in the partitions of the Dask DataFrame the model was "
                         "fitted to: fit.resid(\"normalized\") whitens them there")

    def dask_data(self, what: str):
        """The Dask DataFrame the model was fitted to, for ``what`` (a method's name).

        Raises:
            ValueError: the model was unpickled, which leaves its data behind.
        """
        if self.data is None:
            raise ValueError(
                f"{what} computes on the partitions of the Dask DataFrame the model was "
                "fitted to, and this model was unpickled without it (a pickled fit leaves "
                "its data behind); fit the model to the Dask DataFrame again for it")
        return self.data

    def __getstate__(self) -> dict:
        """Pickled without the Dask DataFrame (a fit sent to the workers of its own data)."""
        state = dict(self.__dict__)
        state["data"] = None
        state.pop("_least_squares", None)
        return state

    def _residual_pair_sums(self) -> np.ndarray | None:
        """``Symm.pair_sums`` of the least-squares residuals, summed over the partitions in
        one pass (the start of gls with a general correlation, as in memory: from
        independence, 15 groups of up to 5 visits stopped at 291.24 where the rows in
        memory reach 273.64)."""
        if "_least_squares" not in self.__dict__:
            return None
        passes, r = self._least_squares
        beta = least_squares(r)
        if beta is None:
            return None
        return residual_pair_sums_of(passes.data, passes.schema, passes.formula,
                                     passes.weights, passes.parameters, passes.columns, beta)

    def rebuild(self, rows=None, formula=None, reml=None):
        """Refits of some of the rows need them in one process: not on partitions."""
        raise NotImplementedError(
            "refits of subsets of the rows or of other formulas (group deletion, ranova) are "
            "not available for a model of a Dask DataFrame; fit the other model with "
            "mm.lmer(formula, ddf) and compare with mm.anova")

    def with_response(self, y):
        """A new response needs the rows: not on partitions."""
        raise NotImplementedError(
            "a new response (refit, the parametric bootstrap) is not available for a model of "
            "a Dask DataFrame")


class PartitionedGls(PartitionedModel):
    """``PartitionedModel`` without random effects: ``GeneralizedLeastSquares`` of a Dask
    DataFrame."""

    random_effects = False


def check_factor_size(schema: DataSchema, memory: int | None = None) -> None:
    """A DataError, before the pass over the rows, when the Cholesky factor cannot fit in
    this machine's memory (``memory`` bytes; default: its physical memory).

    The factor's blocks of the grouping factors after the first (the one with most levels)
    fill in and are stored dense (``core.pls``): at least 8 (q_2^2 + q_2 q_3 + q_3^2 + ...)
    bytes, with q_b the levels of factor b (times its columns, at least 1). Two crossed
    factors of millions of levels each need terabytes: fitting them needs another method
    (or a nested design, whose second factor has few levels)."""
    sizes = sorted((len(levels) for levels in schema.levels.values()), reverse=True)[1:]
    needed = 8 * sum(a * b for i, a in enumerate(sizes) for b in sizes[:i + 1])
    memory = _physical_memory() if memory is None else memory
    if needed > memory:
        groups = sorted(schema.levels.items(), key=lambda item: -len(item[1]))
        described = ", ".join(f"{':'.join(group)} {len(levels):,} levels"
                              for group, levels in groups)
        raise DataError(
            f"the model's random-effects factor would need at least {needed / 2 ** 30:,.0f} "
            f"GiB ({described}): the blocks of every grouping factor after the one with the "
            f"most levels are dense, and this machine has {memory / 2 ** 30:,.0f} GiB. Two "
            "crossed factors with this many levels each are beyond an exact fit here")


def _physical_memory() -> int:
    """This machine's physical memory, in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _marginal_pieces(sums: UnitSums | None, structure, basis: np.ndarray | None,
                     columns: np.ndarray) -> MarginalPieces | None:
    """The marginal pieces of the system's [X y] from the cross-products pass's ``sums``:
    of all X's columns, then of the kept ones (``columns``); already of the fixed-effects
    basis when there is one (the third pass formed them there)."""
    if sums is None:
        return None
    pieces = MarginalPieces.from_sums(sums, structure.parameters)
    if basis is None and columns.shape[0] != columns.shape[1]:
        pieces = pieces.with_columns(columns)
    return pieces


def _check_exact_fit(r: np.ndarray, response: str) -> None:
    """The in-memory design's check that the response is not fitted exactly, from R."""
    if abs(r[-1, -1]) <= EXACT_FIT * np.linalg.norm(r[:, -1]):
        raise DataError(f"the fixed effects fit the response {response!r} exactly (all "
                        "residuals are zero), or it is constant: no variation is left for the "
                        "random effects or the residual")


def _check_levels(design: Design) -> None:
    """A grouping factor needs two levels or more (as the in-memory design checks)."""
    for term in design.terms:
        if len(term.levels) < 2:
            raise DataError(f"the grouping factor {term.group!r} has a single level "
                            f"({str(term.levels[0])!r}); a random effect needs at least two "
                            "groups")
