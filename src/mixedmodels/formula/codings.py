"""The codings (contrasts) a formula can give a categorical variable: ``C(x, coding)``.

A coding is written in formulaic's spelling or in R's:

* formulaic's: ``Treatment`` (``Treatment(reference="b")``), ``Sum``, ``Helmert``, ``Poly``,
  ``Diff``, and a custom matrix: a list of rows, one per level (``[[1, 0], [0, 1], [-1, -1]]``),
  or a dict of named columns (``{"ab": [1, -1, 0], "c": [1, 1, -2]}``);
* R's: ``contr.treatment``, ``contr.sum``, ``contr.helmert``, ``contr.poly``, ``contr.SAS``
  (and formulaic's ``contr.diff``, ``contr.custom``), bare or called as in R, which makes the
  matrix R's function returns, with R's column names: ``contr.treatment(3, base = 2)`` (columns
  ``...1`` and ``...3``), ``contr.poly(3, scores = [1, 2, 4])``, ``contr.sum(["a", "b", "c"])``
  (n given by labels: a Python list where R has ``c()``).

The columns are named as lme4 names them. R's spelling gives lme4's names for the same call:
R's ``C()`` turns the coding into a matrix whose columns are numbered, so ``C(period,
contr.sum)`` has ``C(period, contr.sum)1`` and ``C(period, contr.sum)2``, and
``C(period, contr.treatment)`` the positions of the non-reference levels, ``...2`` and
``...3``; ``contr.poly`` has ``.L``, ``.Q``, ``.C``, ``^4``... formulaic's spelling gives the
names R gives a factor whose contrasts are set to that coding (``contrasts(period) <-
"contr.sum"`` names the columns ``period1``, ``period2``): treatment by level
(``C(period, Treatment)late``), sum and Helmert by number (``C(period, Sum)1``), polynomial
as R. Diff, which R does not have, keeps formulaic's names (``C(period, Diff)D.late``); a
custom matrix is named by its column numbers or the dict's keys, as R names a matrix's columns.

The codings are those of R: sum (the last level is -1 in every column), Helmert (unscaled),
orthogonal polynomials on 1, ..., k. A coding needs a categorical variable: ``C(x, Sum)`` for a
numeric x is an error, as in R (write ``C(factor(x), Sum)``); ``C(x)`` alone marks x as
categorical, as in formulaic. Without a coding, a factor has R's default coding
(``default_coding``): treatment contrasts, or for an ordered factor (a pandas Categorical with
``ordered=True``) orthogonal polynomials, named ``x.L``, ``x.Q``, ``x.C``, ``x^4``... as R names
an ordered factor's columns; ``C(x)`` alone keeps it (``C(x).L``).
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass

import numpy as np
import pandas as pd
from formulaic.transforms import C as formulaic_C
from formulaic.transforms.contrasts import (
    Contrasts,
    CustomContrasts,
    DiffContrasts,
    HelmertContrasts,
    PolyContrasts,
    SASContrasts,
    SumContrasts,
    TreatmentContrasts,
)
from formulaic.utils.sentinels import UNSET

from ..errors import FormulaError

__all__ = ["ALLOWED_CODINGS", "CODING_CONTEXT", "checked_coding", "coded", "coding_names",
           "default_coding", "treatment_coded"]

ALLOWED_CODINGS = ("Treatment, Treatment(reference=...), Sum, Helmert, Poly, Diff, "
                   "contr.treatment, contr.sum, contr.helmert, contr.poly, contr.SAS, or a "
                   "custom matrix with one row per level")


def _numbered(levels) -> list[str]:
    """R's names of the k - 1 columns of a coding whose matrix has no column names."""
    return [str(j) for j in range(1, len(levels))]


def _positions(levels, base: int) -> list[str]:
    """R's names of the columns of ``contr.treatment(k, base)``: the levels' positions."""
    return [str(i + 1) for i in range(len(levels)) if i != base]


def _unlabelled(encoded):
    """Treatment columns without formulaic's level labels, to be named by position."""
    return encoded.to_numpy() if isinstance(encoded, pd.DataFrame) else encoded


class _Sum(SumContrasts):
    """Sum coding, columns numbered as R's ``contr.sum``."""

    FACTOR_FORMAT_REDUCED = "{name}[{field}]"

    @SumContrasts.override
    def get_coding_column_names(self, levels, reduced_rank=True):
        return _numbered(levels) if reduced_rank else levels


class _Treatment(TreatmentContrasts):
    """Treatment coding, written ``Treatment`` or ``Treatment(reference="b")`` (patsy's)."""

    def __init__(self, reference=UNSET):
        super().__init__(base=reference)


class _Helmert(HelmertContrasts):
    """Helmert coding, columns numbered as R's ``contr.helmert``."""

    FACTOR_FORMAT_REDUCED = "{name}[{field}]"

    @HelmertContrasts.override
    def get_coding_column_names(self, levels, reduced_rank=True):
        return _numbered(levels) if reduced_rank else levels


class _ByPosition:
    """A treatment coding as R's ``C(x, contr.treatment)`` and ``C(x, contr.SAS)`` name it:
    columns named by the positions of their levels (mixed into formulaic's classes)."""

    FACTOR_FORMAT_REDUCED = "{name}[{field}]"

    @TreatmentContrasts.override
    def _apply(self, dummies, levels, reduced_rank=True, sparse=False):
        return _unlabelled(super()._apply(dummies, levels, reduced_rank, sparse))

    @TreatmentContrasts.override
    def get_coding_column_names(self, levels, reduced_rank=True):
        return _positions(levels, self._find_base_index(levels)) if reduced_rank else levels


@dataclass
class _RTreatment(_ByPosition, TreatmentContrasts):
    """R's ``contr.treatment``, against the first level."""


@dataclass
class _RSAS(_ByPosition, SASContrasts):
    """R's ``contr.SAS``: treatment coding against the last level."""


class _Custom(CustomContrasts):
    """A custom matrix, checked to have one row per level of its variable when the levels are
    known (when the matrix is applied). Where R's rule codes the factor by indicators (``C(b,
    m):a`` without b's margin), one indicator per level, named by the level, as R."""

    def __init__(self, contrasts, names=None, variable: str = "the variable"):
        super().__init__(contrasts, names)
        self.variable = variable

    @CustomContrasts.override
    def _get_coding_matrix(self, levels, reduced_rank=True, sparse=False):
        if not reduced_rank:  # coded by indicators (design.term_codes): R ignores the matrix
            return np.eye(len(levels))
        if self.contrasts.shape[0] != len(levels):
            raise FormulaError(
                f"the custom coding of {self.variable} needs one row per level ({len(levels)}: "
                f"{', '.join(map(str, levels))}), but the matrix has "
                f"{self.contrasts.shape[0]} rows")
        return super()._get_coding_matrix(levels, reduced_rank, sparse)

    @CustomContrasts.override
    def get_coding_column_names(self, levels, reduced_rank=True):
        return super().get_coding_column_names(levels) if reduced_rank else list(levels)


def default_coding(values) -> Contrasts | None:
    """R's coding of a factor without one: polynomial contrasts (``contr.poly``) for an ordered
    categorical, else None (treatment contrasts, formulaic's default)."""
    dtype = getattr(values, "dtype", None)
    return PolyContrasts() if isinstance(dtype, pd.CategoricalDtype) and dtype.ordered else None


def coded(data, contrasts=None, *, levels=None, spans_intercept: bool = True):
    """``C(x, coding)``: formulaic's ``C`` with the coding checked and named as R names it
    (see the module's docstring); ``C(x)`` has R's default coding. Raises FormulaError for a
    coding of a numeric variable, an unknown coding or a malformed matrix."""
    if contrasts is None:
        contrasts = default_coding(data)
    else:
        series = pd.Series(data)
        variable = series.name if isinstance(series.name, str) else "x"
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            raise FormulaError(f"{variable} is numeric ({series.dtype}): a coding applies to a "
                               f"categorical variable; write C(factor({variable}), ...) to "
                               "code its distinct values as levels")
        contrasts = checked_coding(contrasts, variable)
    return formulaic_C(data, contrasts, levels=levels, spans_intercept=spans_intercept)


def treatment_coded(data, contrasts=None, *, levels=None, spans_intercept: bool = True):
    """``C(x, coding)`` with the coding ignored: x coded by treatment contrasts against its
    first level (lmerTest computes type III contrasts in that coding, then maps them)."""
    return formulaic_C(data, levels=levels, spans_intercept=spans_intercept)


def checked_coding(contrasts, variable: str):
    """The coding as formulaic takes it: a Contrasts instance or class, or a custom matrix."""
    if isinstance(contrasts, _RFunction):
        return contrasts.coding
    if isinstance(contrasts, Contrasts) or (inspect.isclass(contrasts)
                                            and issubclass(contrasts, Contrasts)):
        return contrasts
    if isinstance(contrasts, str):
        raise FormulaError(f"the coding {contrasts!r} is a string; write it without quotes "
                           f"as a name: {ALLOWED_CODINGS}")
    if isinstance(contrasts, (dict, list, tuple, np.ndarray)):
        return _custom(contrasts, variable)
    raise FormulaError(f"unknown coding {getattr(contrasts, '__name__', contrasts)!r}; use "
                       f"{ALLOWED_CODINGS}")


def _custom(contrasts, variable: str = "the variable") -> _Custom:
    """A custom matrix: a list of rows (one per level) or a dict of named columns."""
    names = list(contrasts) if isinstance(contrasts, dict) else None
    try:
        matrix = (np.array(list(contrasts.values()), dtype=float).T if names is not None
                  else np.array(contrasts, dtype=float))
    except (TypeError, ValueError):
        matrix = None
    if matrix is None or matrix.ndim != 2 or not matrix.size or not np.isfinite(matrix).all():
        raise FormulaError("a custom coding is a matrix of finite numbers, one row per level "
                           "and one column per contrast ([[1, 0], [0, 1], [-1, -1]]), or a "
                           "dict of named columns")
    return _Custom(matrix, names, variable)


def coding_names(expression: str) -> tuple[str, ...]:
    """The bare names given as codings of the ``C(...)`` calls in a factor's expression
    (``("Deviation",)`` for ``C(x, Deviation)``)."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return ()
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "C":
            given = node.args[1:2] + [k.value for k in node.keywords if k.arg == "contrasts"]
            names.extend(g.id for g in given if isinstance(g, ast.Name))
    return tuple(names)


class _RFunction:
    """One of R's coding functions, ``contr.treatment``, ``contr.SAS``, ``contr.sum``,
    ``contr.helmert`` or ``contr.poly``: written bare (``C(x, contr.sum)``), the coding of that
    name; called, the matrix R's function returns, with its column names, a custom coding as R's
    ``C(x, contr.treatment(3, base = 2))`` takes it (columns ``...1`` and ``...3``).

    Arguments as R's: ``n`` the number of levels or their labels; ``base`` the position of
    treatment's reference level (from 1); ``scores`` the levels' values for ``contr.poly``;
    ``contrasts = FALSE`` one indicator per level."""

    def __init__(self, name: str, coding):
        self.name, self.coding = name, coding

    def __call__(self, n, base: int = 1, contrasts: bool = True, scores=None, sparse=False):
        name = f"contr.{self.name}"
        labels = _level_labels(n, name)
        k = len(labels)
        if sparse is not False:
            raise FormulaError(f"{name}(sparse = ...) is not supported; leave it out")
        if (base != 1 and self.name != "treatment") or (
                scores is not None and self.name != "poly"):
            raise FormulaError(f"{name}() takes n and contrasts"
                               + (", and scores" if self.name == "poly" else "")
                               + f"; see R's help for {name}")
        if not contrasts:
            if self.name == "poly":
                raise FormulaError("contr.poly(contrasts = FALSE) is not supported")
            return {label: list(column) for label, column in zip(labels, np.eye(k))}
        if self.name in ("treatment", "SAS"):
            reference = k - 1 if self.name == "SAS" else _position(base, k)
            return {label: list(np.eye(k)[:, j]) for j, label in enumerate(labels)
                    if j != reference}
        if self.name == "sum":
            return np.vstack([np.eye(k - 1), -np.ones(k - 1)]).tolist()
        if self.name == "helmert":
            return [[(-1.0 if i <= j else float(j + 1) if i == j + 1 else 0.0)
                     for j in range(k - 1)] for i in range(k)]
        poly = PolyContrasts(scores=scores)
        matrix = poly._get_coding_matrix(list(range(k)))
        return dict(zip(poly.get_coding_column_names(list(range(k))), matrix.T.tolist()))


def _level_labels(n, name: str) -> list[str]:
    """R's ``n`` of a coding function: a number of levels (labelled by position) or the
    labels themselves."""
    if isinstance(n, (int, np.integer)) and not isinstance(n, bool):
        if n < 2:
            raise FormulaError(f"{name}({n}): a coding needs 2 levels or more")
        return [str(i) for i in range(1, n + 1)]
    if isinstance(n, (list, tuple)) and len(n) >= 2:
        return [str(label) for label in n]
    raise FormulaError(f"{name}(n): n is the number of levels (2 or more) or a list of their "
                       f"labels, not {n!r}")


def _position(base, k: int) -> int:
    """The row of R's ``base`` (a level's position, from 1) among k levels."""
    if isinstance(base, bool) or not isinstance(base, (int, np.integer)) or not 1 <= base <= k:
        raise FormulaError(f"contr.treatment(base = {base!r}): base is the position of the "
                           f"reference level, 1 to {k}")
    return int(base) - 1


_R_CODINGS = {"treatment": _RFunction("treatment", _RTreatment),
              "sum": _RFunction("sum", _Sum), "helmert": _RFunction("helmert", _Helmert),
              "poly": _RFunction("poly", PolyContrasts), "SAS": _RFunction("SAS", _RSAS),
              "diff": DiffContrasts, "custom": _custom}


class _Registry:
    """``contr`` in a formula: R's coding functions by name (``contr.sum``)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in _R_CODINGS:
            raise FormulaError(f"unknown coding contr.{name}; use {ALLOWED_CODINGS}")
        return _R_CODINGS[name]


#: The formula names of the codings, over formulaic's.
CODING_CONTEXT = {"C": coded, "contr": _Registry(), "Treatment": _Treatment, "Sum": _Sum,
                  "Helmert": _Helmert}
