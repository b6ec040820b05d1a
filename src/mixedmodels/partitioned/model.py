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

Not supported on partitions, each with an error that says so: residual correlation
structures and variance functions, ``gls``, prior weights given as values (a column name
is supported), refits of subsets of the rows (``rebuild``: group deletion, ``ranova``) and
new responses (the parametric bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg.lapack import dtrtri

from ..core.pls import PLSSystem, fixed_basis
from ..core.structure import build_structure
from ..covariance.residual import Identity
from ..design.build import (
    NOBS_CHECKS,
    Design,
    check_enough_rows,
    check_identifiable,
    drop_aliased,
    warn_missing_rows,
)
from ..design.schema import DataSchema, model_columns
from ..errors import DataError, FormulaError, recorded_warnings
from ..formula.parse import parse_formula
from ..lmm.model import LinearMixedModel
from ..validate import check_bool, check_choice
from .passes import crossproducts_of, schema_of

__all__ = ["PartitionedDesign", "PartitionedModel", "is_dask_frame"]

#: |R_yy| at most this times |y| (the norm of the least-squares residual): an exact fit
EXACT_FIT = 1e-10


def is_dask_frame(data) -> bool:
    """Whether ``data`` is a Dask DataFrame (without importing Dask when it is not loaded)."""
    module = type(data).__module__
    return module.startswith("dask.") or module.startswith("dask_expr")


@dataclass(frozen=True)
class PartitionedDesign(Design):
    """A ``Design`` whose rows are in the partitions: its arrays have no rows, ``n`` is the
    number of observations of all the partitions, ``schema`` the ``DataSchema`` and ``data``
    the Dask DataFrame."""

    nobs: int = 0
    schema: DataSchema | None = None
    data: object = None

    @property
    def n(self) -> int:
        return self.nobs


class PartitionedModel(LinearMixedModel):
    """``LinearMixedModel`` of a Dask DataFrame (see the module docstring).

    Args:
        formula, reml, nobs_checks: as ``LinearMixedModel``'s.
        data: a ``dask.dataframe.DataFrame``.
        weights: None, or the name of a column of prior weights.
        progress: show a progress bar for each pass over the data.
    """

    def __init__(self, formula: str, data, reml: bool = True, weights=None,
                 nobs_checks: str = "error", progress: bool = False):
        reml = check_bool(reml, "reml")
        check_choice(nobs_checks, "nobs_checks", NOBS_CHECKS)
        if weights is not None and not isinstance(weights, str):
            raise DataError("weights of a Dask DataFrame must be the name of one of its "
                            "columns (values cannot be matched to its rows)")
        parsed = parse_formula(formula)
        if not parsed.random:
            raise FormulaError("the formula has no random-effects term such as (1 | group)")
        columns = model_columns(parsed, data.dtypes, weights)
        with recorded_warnings() as messages:
            schema = schema_of(data, parsed, columns, progress)
            if schema.complete < schema.rows:
                warn_missing_rows(schema.rows - schema.complete, schema.rows, schema.missing)
            share = crossproducts_of(data, schema, formula, weights, progress=progress)
            template = share.template
            p = template.X.shape[1]
            _, names, dropped = drop_aliased(template.X, template.x_names, share.r[:, :p])
            keep = np.array([name in names for name in template.x_names])
        check_enough_rows(schema.complete, len(names))
        _check_exact_fit(share.r, parsed.response)
        basis = fixed_basis(share.r[:, np.flatnonzero(keep)])
        rows = np.append(np.flatnonzero(keep), p)
        if basis is None:
            crossproducts = share.crossproducts.with_response_rows(
                tuple(z[rows] for z in share.crossproducts.xy_z),
                share.crossproducts.xy[np.ix_(rows, rows)])
        else:  # the in-memory fit's basis Q = X R^-1, formed on the partitions
            transform = np.eye(p)[:, keep] @ dtrtri(basis)[0]
            crossproducts = crossproducts_of(data, schema, formula, weights, transform,
                                             progress).crossproducts
        design = PartitionedDesign(**{**template.__dict__, "X": template.X[:, keep],
                                      "x_names": names, "dropped": dropped,
                                      "transforms": schema.transforms},
                                   nobs=schema.complete, schema=schema, data=data)
        _check_levels(design)
        check_identifiable(design.terms, design.n, nobs_checks)
        self.design = design
        self.warnings = tuple(messages)
        self.data_index = None
        self.nobs_checks = nobs_checks
        self.correlation = self.variance = None
        self.structure = build_structure(design.terms)
        self.residual = Identity(0)
        self.system = PLSSystem.from_crossproducts(self.structure, crossproducts, basis)
        self.reml = reml

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
