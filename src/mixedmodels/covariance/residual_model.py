"""The residual covariance as a function of its parameters: R = sigma^2 Psi(delta).

Psi combines a correlation structure within groups (``covariance.correlation``), a variance
function (``covariance.variance``) and prior weights w:

    Psi_g = W_g^-1/2 S_g C_g S_g W_g^-1/2   (one block per group; diagonal without a
                                             correlation structure),

as nlme's ``gls``/``lme`` with ``correlation=`` and ``weights=`` (Pinheiro & Bates 2000,
section 5.1) and SAS PROC MIXED's REPEATED statement. ``ResidualModel`` is bound to the rows of
one data set; ``at(delta)`` gives Psi at parameters delta as a ``ResidualStructure`` that the
fit whitens the rows with. Groups of equal size whose Psi_g are equal (the same visit times,
strata and weights) share one Cholesky factor, so that each evaluation costs one small
factorization per pattern of visits rather than per group.

What the structures learn from the rows (strata, slots, scales: ``bind``) is
``ResidualParameters``, the parameters' side without the rows; ``Learning`` learns it from
data in partitions, kept from a few of their rows and added up, so that each partition's
``ResidualModel`` (``learn=False``) is the whole data's restricted to its rows.

``correlation_of`` and ``variance_of`` read the string forms (``"ar1(visit | patient)"``,
``"ident(centre)"``) into the same objects as the class forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..datasets import listed_rows
from ..errors import DataError, DataWarning, FormulaError, warn_user
from .correlation import (
    AR1,
    ARMA,
    CAR1,
    CS,
    Correlation,
    Exp,
    Gaus,
    Lin,
    Ratio,
    Spatial,
    Spher,
    Symm,
    Toep,
)
from .residual import BlockResidual, Identity, KnownWeights, ResidualStructure
from .structures import SINGULAR_TOLERANCE
from .variance import VarExp, Variance, VarIdent, VarPower

__all__ = ["CORRELATIONS", "VARIANCES", "Learning", "ResidualModel", "ResidualParameters",
           "check_identified", "check_strata", "correlation_of", "row_keys", "unit_descriptors",
           "unit_keys", "variance_of"]

#: the string forms of ``correlation=``: name -> (class, what goes left of the bar)
CORRELATIONS = {"ar1": (AR1, "an integer time column"), "car1": (CAR1, "a time column"),
                "cs": (CS, "1"), "symm": (Symm, "an integer column"),
                "toep": (Toep, "an integer time column"),
                "arma": (ARMA, "an integer time column"),
                **{cls.syntax: (cls, "coordinate columns joined by +")
                   for cls in (Exp, Gaus, Spher, Lin, Ratio)}}
#: nlme's classes, and the string forms of the same structures here
NLME_CORRELATIONS = {"corAR1": "ar1(time | group)", "corCAR1": "car1(time | group)",
                     "corCompSymm": "cs(1 | group)", "corSymm": "symm(time | group)",
                     "corARMA": "arma(time | group, p = 1, q = 1)",
                     "corExp": "exp(x + y | group)", "corGaus": "gaus(x + y | group)",
                     "corSpher": "spher(x + y | group)", "corLin": "lin(x | group)",
                     "corRatio": "ratio(x + y | group)"}
#: the string forms of ``variance=``
VARIANCES = {"ident": VarIdent, "power": VarPower, "exp": VarExp}

#: a time of an integer structure within this of a whole number, relative (or absolute below
#: 1), is that number: times computed in floating point (3 * 0.1 * 10 = 3.0000000000000004,
#: a few units of the last place), not times with fractions (1e9 + 0.4, 4 + 2e-9)
WHOLE_TOLERANCE = 1e-12
#: rows of one correlation group at most: its block of Psi is a dense matrix
MAX_GROUP_ROWS = 5_000
_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$", re.S)
_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


def _name(text: str, argument: str, whole: str) -> str:
    name = text.strip().strip("`")
    if name == "1" and argument == "correlation":
        raise FormulaError(f"correlation={whole!r}: this structure needs a time or position "
                           "column left of the bar, e.g. ar1(visit | patient) (the order of "
                           "the rows is never used; nlme's ~ 1 | patient means the row order)")
    if not name or not (_NAME.match(name) or text.strip().startswith("`")):
        raise FormulaError(f"{argument}={whole!r}: {text.strip()!r} is not a column name; "
                           "give a column of the data (for a combination of columns such as "
                           "a:b or a*b, make one column of it first)")
    return name


def correlation_of(value) -> Correlation | None:
    """A correlation structure from ``correlation=``: None, a ``Correlation`` object, or a
    string such as ``"ar1(visit | patient)"``, ``"cs(1 | patient)"`` or
    ``"exp(x + y | site)"`` (the group may be left out: all rows are then one group)."""
    if value is None or isinstance(value, Correlation):
        return value
    forms = ", ".join(f"{name}(... | group)" for name in CORRELATIONS)
    if not isinstance(value, str):
        raise FormulaError(f"correlation= must be a string such as 'ar1(visit | patient)' or a "
                           f"structure such as mm.cov.AR1('visit', group='patient'), not "
                           f"{type(value).__name__}")
    match = _CALL.match(value)
    if match and match.group(1) in NLME_CORRELATIONS:
        raise FormulaError(f"correlation={value!r}: nlme's {match.group(1)} is written "
                           f"{NLME_CORRELATIONS[match.group(1)]} here (its form's columns, "
                           "without '~')")
    if not match or match.group(1).lower() not in CORRELATIONS:
        raise FormulaError(f"correlation={value!r} is not a correlation structure; use one of "
                           f"{forms}")
    if match.group(2).lstrip().startswith("~"):
        raise FormulaError(f"correlation={value!r}: write the columns without nlme's '~': "
                           f"{match.group(1)}({match.group(2).lstrip()[1:].strip()})")
    name, inside = match.group(1).lower(), match.group(2)
    cls, left_kind = CORRELATIONS[name]
    left, _, right = inside.partition("|")
    if cls is ARMA and "|" in inside:
        if "," in left:
            pieces = [piece.strip() for piece in left.split(",")]
            orders = [piece for piece in pieces if _ORDER.match(piece)]
            times = [piece for piece in pieces if not _ORDER.match(piece)]
            raise FormulaError(f"correlation={value!r}: arma's orders go after its group: "
                               f"arma({', '.join(times)} | {right.strip()}, "
                               f"{', '.join(orders)})")
        right, orders = _arma_orders(value, right)
    elif cls is ARMA:  # all rows one group: arma(visit, p = 1)
        left, orders = _arma_orders(value, left)
    if "," in right:
        option = right.split(",", 1)[1].strip()
        raise FormulaError(f"correlation={value!r}: a structure takes no options after its "
                           f"group ({option!r}); nlme's nugget = TRUE, value = and fixed = "
                           f"are not offered: write {name}({left.strip()} | "
                           f"{right.split(',', 1)[0].strip()})")
    group = _name(right, "correlation", value) if right.strip() else None
    if cls is CS:
        if left.strip() != "1":
            raise FormulaError(f"correlation={value!r}: cs takes no position column; write "
                               "cs(1 | group)")
        return CS(group)
    columns = [_name(part, "correlation", value) for part in left.split("+")]
    if issubclass(cls, Spatial):
        return cls(tuple(columns), group)
    if len(columns) != 1:
        raise FormulaError(f"correlation={value!r}: {name} takes one column left of the bar "
                           f"({left_kind}), not {len(columns)}")
    return cls(columns[0], group, **orders) if cls is ARMA else cls(columns[0], group)


_ORDER = re.compile(r"^\s*([pq])\s*=\s*([0-9]+)\s*$")


def _arma_orders(whole: str, right: str) -> tuple[str, dict]:
    """(what precedes the orders, {"p": ..., "q": ...}) of arma's right of the bar,
    "patient, p = 1, q = 1" (or of its inside without a group, "visit, p = 1"); each order 0
    unless given, at least one of them 1 or more."""
    group, *options = right.split(",")
    orders = {}
    for option in options:
        match = _ORDER.match(option)
        if match is None or match.group(1) in orders:
            raise FormulaError(f"correlation={whole!r}: arma takes the orders p = and q = "
                               f"after its group, each once (e.g. arma(visit | patient, p = 1, "
                               f"q = 1)), not {option.strip()!r}")
        orders[match.group(1)] = int(match.group(2))
    if not orders.get("p") and not orders.get("q"):
        raise FormulaError(f"correlation={whole!r}: give arma's orders, p = and q = (at least "
                           "one of them 1 or more), e.g. arma(visit | patient, p = 1, q = 1)")
    return group, {"p": orders.get("p", 0), "q": orders.get("q", 0)}


def variance_of(value) -> Variance | None:
    """A variance function from ``variance=``: None, a ``Variance`` object, or a string:
    ``"ident(centre)"``, ``"power(x)"`` or ``"exp(x)"``."""
    if value is None or isinstance(value, Variance):
        return value
    forms = "ident(stratum), power(covariate) or exp(covariate)"
    if not isinstance(value, str):
        raise FormulaError(f"variance= must be a string such as 'ident(centre)' or a function "
                           f"such as mm.cov.VarIdent('centre'), not {type(value).__name__}")
    match = _CALL.match(value)
    if not match or match.group(1).lower() not in VARIANCES:
        raise FormulaError(f"variance={value!r} is not a variance function; use {forms}")
    inside = match.group(2)
    if "|" in inside:  # nlme's varIdent(form = ~ 1 | centre)
        left, _, inside = inside.partition("|")
        if left.strip() != "1":
            raise FormulaError(f"variance={value!r}: write {match.group(1)}(column)")
    return VARIANCES[match.group(1).lower()](_name(inside, "variance", value))


@dataclass(frozen=True, eq=False)
class _Class:
    """The groups of one size m: their rows, keys, and per key its positions (K, m, d), its
    rows' variance-function values and weights (K, m)."""

    rows: np.ndarray
    keys: np.ndarray
    positions: np.ndarray
    features: np.ndarray
    weights: np.ndarray


class ResidualParameters:
    """The parameters delta of a residual structure, without the rows: the correlation
    structure and variance function as bound to a data set (what ``bind`` learnt from its rows:
    strata, slots, scales), their start, bounds, names and reported values, and the blocks
    Psi_k of units described by their positions, variance-function values and weights.

    ``ResidualModel`` adds the rows of one data set (Psi itself, ``at``). A model of a Dask
    DataFrame keeps this on the client, learnt from all the partitions (``Learning``), and
    each partition binds its own rows to it (``ResidualModel(..., learn=False)``).

    Args:
        correlation, variance: the bound structures (either may be None).
    """

    def __init__(self, correlation: Correlation | None, variance: Variance | None):
        self.correlation = correlation
        self.variance = variance
        parts = [p for p in (self.correlation, self.variance) if p is not None]
        self.n_params = sum(p.n_params for p in parts)
        self._split = self.correlation.n_params if self.correlation is not None else 0

    # -- parameters ----------------------------------------------------------------------------
    def _parts(self, delta: np.ndarray):
        return delta[: self._split], delta[self._split:]

    def start(self) -> np.ndarray:
        """Independence and equal variances (on the optimizer's unconstrained scale)."""
        return self._concat("start")

    def lower(self) -> np.ndarray:
        """The optimizer's bounds: none (every parameter is unconstrained)."""
        return np.full(self.n_params, -np.inf)

    def upper(self) -> np.ndarray:
        return np.full(self.n_params, np.inf)

    def _concat(self, method: str, index: int | None = None) -> np.ndarray:
        out = []
        for part in (self.correlation, self.variance):
            if part is not None:
                value = getattr(part, method)()
                out.append(value if index is None else value[index])
        return np.concatenate(out) if out else np.zeros(0)

    def names(self) -> list[str]:
        """The parameters' names: ``Phi|patient``, ``ratio_F|Sex``, ..."""
        out = []
        if self.correlation is not None:
            group = self.correlation.group or "(all rows)"
            out += [f"{name}|{group}" for name in self.correlation.names()]
        if self.variance is not None:
            out += [f"{name}|{self.variance.column}" for name in self.variance.names()]
        return out

    def values(self, delta: np.ndarray) -> np.ndarray:
        """The reported values: correlations, a range, sd ratios, powers."""
        return self._each("values", delta)

    def from_values(self, values: np.ndarray) -> np.ndarray:
        return self._each("from_values", values)

    def _each(self, method: str, vector: np.ndarray) -> np.ndarray:
        out = [getattr(part, method)(value) for part, value
               in zip((self.correlation, self.variance), self._parts(np.asarray(vector, float)))
               if part is not None]
        return np.concatenate(out) if out else np.zeros(0)

    def value_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of the reported values."""
        return self._concat("value_bounds", 0), self._concat("value_bounds", 1)

    def on_boundary(self, delta: np.ndarray, tol: float = SINGULAR_TOLERANCE) -> np.ndarray:
        """A value within ``tol`` of its bound: a correlation at +/-1 (or at cs's lower
        bound), a partial correlation at +/-1 (toep, symm), a range at 0 or without bound
        (relative to the data's extent), an sd ratio at 0 or without bound."""
        correlation, variance = self._parts(np.asarray(delta, dtype=float))
        parts = ([(self.correlation.boundary_values(correlation),
                   self.correlation.boundary_bounds())] if self.correlation else []) + (
            [(self.variance.boundary_values(variance), self.variance.boundary_bounds())]
            if self.variance else [])
        values = np.concatenate([v for v, _ in parts] or [np.zeros(0)])
        lower = np.concatenate([b[0] for _, b in parts] or [np.zeros(0)])
        upper = np.concatenate([b[1] for _, b in parts] or [np.zeros(0)])
        return (np.isfinite(lower) & (values - lower < tol)) | (
            np.isfinite(upper) & (upper - values < tol))

    def describe(self, delta: np.ndarray) -> list[str]:
        """The summary's lines, as nlme prints them."""
        correlation, variance = self._parts(np.asarray(delta, dtype=float))
        lines = []
        if self.correlation is not None:
            group = f" within {self.correlation.group}" if self.correlation.group else ""
            lines.append(f"Correlation structure{group}: "
                         f"{self.correlation.describe(correlation)}")
        if self.variance is not None:
            lines.append(f"Variance function: {self.variance.describe(variance)}")
        return lines

    # -- blocks of Psi -------------------------------------------------------------------------
    def blocks(self, delta: np.ndarray, positions: np.ndarray, features: np.ndarray,
               weights: np.ndarray) -> np.ndarray | None:
        """(K, m, m) the blocks Psi_k of K units of m rows with these positions (K, m, d),
        variance-function values and weights (K, m) (a unit: a correlation group, or rows
        that are independent without a correlation structure); None where an entry is not
        finite."""
        correlation, variance = self._parts(np.asarray(delta, dtype=float))
        sds = 1.0 if self.variance is None else self.variance.sds(variance, features)
        sds = sds / np.sqrt(weights)
        if self.correlation is None:
            psi = np.zeros(weights.shape + weights.shape[-1:])
            m = weights.shape[-1]
            psi[:, np.arange(m), np.arange(m)] = sds ** 2
        else:
            psi = self.correlation.matrices(correlation, positions)
            psi = psi * sds[:, :, None] * sds[:, None, :]
        return psi if np.all(np.isfinite(psi)) else None

    def new_variances(self, frame: pd.DataFrame, delta: np.ndarray) -> np.ndarray:
        """(len(frame),) Var(e0) / sigma^2 of new observations with these rows' values of the
        variance function's column, before prior weights: the stratum's sd ratio squared
        (``ident``), |x|^(2 delta) (``power``), exp(2 delta x) (``exp``); 1 without a variance
        function (a correlation structure has unit variances). NaN where the column is
        missing, and where ``power``'s column is 0 (with a DataWarning).

        Raises:
            DataError: the column is absent, or holds a stratum the fit has no ratio for.
        """
        if self.variance is None:
            return np.ones(len(frame))
        _, params = self._parts(np.asarray(delta, dtype=float))
        name = self.variance.column
        if name not in frame.columns:
            raise DataError(f"newdata has no column {name!r}, which the variance function "
                            f"needs for the variance of a new observation")
        column = frame[name]
        missing = pd.isna(column).to_numpy().copy()
        if isinstance(self.variance, VarIdent):
            codes = _stratum_codes(self.variance, column, "newdata")
            values = np.where(missing, 0, codes).astype(float)
        else:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            missing |= np.isnan(values)
            if isinstance(self.variance, VarPower) and np.any(values == 0):
                # an sd of |0|^delta: 0 or infinite, which the fit refuses in its own rows
                zero = np.flatnonzero(values == 0)
                shown = ", ".join(map(repr, frame.index[zero[:5]].tolist()))
                warn_user(f"newdata has {name} = 0 in {len(zero)} row(s) ({shown}"
                          f"{' ...' if len(zero) > 5 else ''}), where power({name}) gives no "
                          "residual variance (an sd of 0 or infinity): their variances are "
                          "NaN", DataWarning)
                missing |= values == 0
            values = np.where(missing, 1.0, values)
        out = self.variance.sds(params, values) ** 2
        return np.where(missing, np.nan, out)


class ResidualModel(ResidualParameters):
    """Psi(delta) for the rows of one data set.

    Args:
        correlation, variance: the structures (either may be None).
        frame: the model's rows, with the structures' columns.
        weights: (n,) prior weights, or None.
        learn: bind the structures to these rows (``bind``: strata, slots, scales); False
            when they are bound already, to all the rows of which these are some (a
            partition's rows and ``Learning.parameters()``'s structures).

    Raises:
        DataError: a column of the wrong kind (text for a time, a time that is not a whole
            number, a power of 0), two rows of one group at the same position, or (``learn``
            False) a stratum the bound variance function does not know.
    """

    def __init__(self, correlation: Correlation | None, variance: Variance | None,
                 frame: pd.DataFrame, weights: np.ndarray | None = None, learn: bool = True):
        n = frame.shape[0]
        self.n = n
        variance, self.features = _bind_variance(variance, frame, learn)
        self.weights = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        self.group_codes = self.positions = None
        self.classes: tuple[_Class, ...] = ()
        if correlation is not None:
            self.group_codes, self.group_labels = _group_codes(correlation, frame)
            self.positions = _positions(correlation, frame)
            _check_distinct(correlation, self.group_codes, self.positions, frame)
            sizes = np.bincount(self.group_codes)
            if sizes.max() > MAX_GROUP_ROWS:
                where = (f"one group of {correlation.group}" if correlation.group
                         else "all rows are one group (no '| group' was given)")
                raise DataError(
                    f"the residual correlation structure would correlate {sizes.max()} rows: "
                    f"{where}, and its covariance is a dense matrix of that size. Give a "
                    f"grouping column within which residuals are correlated, e.g. "
                    f"{type(correlation).__name__.lower()}(... | patient); at most "
                    f"{MAX_GROUP_ROWS} rows per group are allowed")
            if learn:
                correlation = correlation.bind(self.positions, sizes)
        super().__init__(correlation, variance)
        if correlation is not None:
            self.classes = tuple(
                _Class(rows, keys, self.positions[rows[first]], self.features[rows[first]],
                       self.weights[rows[first]])
                for rows, keys, first in unit_keys(self, self.group_codes))

    # -- Psi -----------------------------------------------------------------------------------
    def sds(self, delta: np.ndarray) -> np.ndarray:
        """(n,) the rows' relative standard deviations s_i / sqrt(w_i)."""
        _, variance = self._parts(np.asarray(delta, dtype=float))
        sds = 1.0 if self.variance is None else self.variance.sds(variance, self.features)
        return sds / np.sqrt(self.weights)

    def at(self, delta: np.ndarray) -> ResidualStructure | None:
        """Psi at delta; None where it is not positive definite (outside the domain)."""
        delta = np.asarray(delta, dtype=float)
        correlation, variance = self._parts(delta)
        if self.correlation is None:
            sds = self.sds(delta)
            if not np.all(np.isfinite(sds) & (sds > 0)):
                return None
            if np.all(sds == 1.0):
                return Identity(self.n)
            return KnownWeights(1.0 / sds ** 2)
        factors = []
        for part in self.classes:
            psi = self.blocks(delta, part.positions, part.features, part.weights)
            if psi is None:
                return None
            try:
                factors.append(np.linalg.cholesky(psi))
            except np.linalg.LinAlgError:
                return None
        rotations = tuple(self.correlation.normalizing_rotation(correlation, p.rows.shape[1])
                          for p in self.classes)
        return BlockResidual(self.n, tuple(p.rows for p in self.classes),
                             tuple(p.keys for p in self.classes), tuple(factors),
                             rotations if any(q is not None for q in rotations) else None)

    def groups_within(self, codes: np.ndarray) -> bool:
        """Does every group of the correlation structure lie within one level of ``codes``
        (a random-effects grouping factor)? (Then the whitened rows of a group keep their
        level, and A keeps its blocked layout.)"""
        return all(np.all(codes[p.rows] == codes[p.rows[:, :1]]) for p in self.classes)



@dataclass(frozen=True, eq=False)
class Learning:
    """What a residual structure learns from its rows (the ``bind`` of its correlation
    structure and of its variance function, as ``ResidualModel`` binds them), kept from some
    of the rows, so that it adds up over disjoint sets of rows that keep each group whole
    (``+``: partitions of a Dask DataFrame, in a tree reduction).

    Attributes:
        correlation, variance: the structures, not bound.
        strata: the rows of the variance function's column it learns from (the first two of
            each stratum, or the covariate's most extreme value), with their dtype; None
            without one.
        positions: (k, d) the positions the correlation structure learns from (distinct
            times, extreme coordinates; ``Correlation.learning_rows``).
        largest: the rows of the largest group (0 without a correlation structure).
        several, pairs: a general correlation's (``Symm``) groups of two rows or more and
            (m, 2) pairs of times seen within one group (``_pairs_together``), for its
            identification (``check_symm_identified``); 0 and none for the others.
    """

    correlation: Correlation | None
    variance: Variance | None
    strata: pd.Series | None
    positions: np.ndarray
    largest: int
    several: int = 0
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    @classmethod
    def of(cls, correlation: Correlation | None, variance: Variance | None,
           frame: pd.DataFrame) -> "Learning":
        """What the structures learn from the rows of ``frame`` (complete rows of whole
        groups), which are checked as ``ResidualModel`` checks them.

        Raises:
            DataError: as ``ResidualModel``.
        """
        model = ResidualModel(correlation, variance, frame)
        positions, largest = np.zeros((0, 0)), 0
        several, pairs = 0, np.zeros((0, 2))
        if correlation is not None:
            positions = model.positions[model.correlation.learning_rows(model.positions)]
            largest = int(np.bincount(model.group_codes).max()) if model.n else 0
            if isinstance(correlation, Symm):
                several, pairs = _pairs_together(model.group_codes, model.positions[:, 0])
        strata = None
        if variance is not None:
            strata = frame[variance.column].iloc[model.variance.learning_rows(model.features)]
        return cls(correlation, variance, strata, positions, largest, several, pairs)

    def __add__(self, other: "Learning") -> "Learning":
        strata = None
        if self.strata is not None:
            strata = pd.concat([self.strata, other.strata])
            _, values = _bind_variance(self.variance, strata.to_frame())
            strata = strata.iloc[self.variance.learning_rows(values)]
        positions = np.vstack([self.positions, other.positions])
        if self.correlation is not None:
            positions = positions[self.correlation.learning_rows(positions)]
        pairs = np.vstack([self.pairs, other.pairs])
        return Learning(self.correlation, self.variance, strata, positions,
                        max(self.largest, other.largest), self.several + other.several,
                        np.unique(pairs, axis=0) if len(pairs) else pairs)

    def parameters(self) -> ResidualParameters:
        """The structures bound as ``ResidualModel`` binds them to all the rows."""
        correlation = variance = None
        if self.variance is not None:
            variance, values = _bind_variance(self.variance, self.strata.to_frame())
            check_strata(variance, values)
        if self.correlation is not None:
            correlation = self.correlation.bind(self.positions, np.array([self.largest]))
            _check_groups_of_several(correlation, self.largest)
            if isinstance(correlation, Symm):
                check_symm_identified(correlation, self.several, self.pairs)
        return ResidualParameters(correlation, variance)


def check_strata(variance: Variance | None, values: np.ndarray) -> None:
    """Each stratum of an ``ident`` variance function needs two rows or more: the sd ratio of
    a stratum of one row is not identified (the likelihood grows without bound as it goes to
    0), as where ``ident`` is given a continuous covariate (298 strata of one row each: a
    fit that did not end in 100 s). ``values``: the strata's codes of all the rows, or of
    some rows that include two of each stratum that has two (``Learning``'s, summed over a
    Dask DataFrame's partitions).

    Raises:
        DataError: naming a stratum of one row, and what to use instead.
    """
    if not isinstance(variance, VarIdent):
        return
    counts = np.bincount(values.astype(np.intp), minlength=len(variance.levels))
    single = np.flatnonzero(counts == 1)
    if len(single):
        name = variance.column
        raise DataError(f"variance='ident({name})': {len(single)} of its {len(counts)} strata "
                        f"have a single row (e.g. {variance.levels[single[0]]!r}), whose sd "
                        "is not identified; ident gives each level of a factor its own sd: "
                        f"for a continuous {name!r} use power({name}) or exp({name})")


def _bind_variance(variance: Variance | None, frame: pd.DataFrame, learn: bool = True):
    """(the bound function, (n,) its column's values: codes of strata or numbers); with
    ``learn`` False, ``variance`` is bound already (its strata, its scale) and only read."""
    if variance is None:
        return None, np.zeros(frame.shape[0])
    column = frame[variance.column]
    if isinstance(variance, VarIdent):
        if not learn:
            return variance, _stratum_codes(variance, column).astype(float)
        codes, levels = _factor(column)
        if variance.levels is not None:  # the user's order: its first stratum is the reference
            order = list(variance.levels)
            absent = [level for level in levels if level not in order]
            if absent:
                raise DataError(f"VarIdent({variance.column!r}, levels=...) does not list the "
                                f"stratum {_plain(absent[0])!r} of the data; list every stratum "
                                f"of {variance.column!r} (the first is the reference)")
            used = [level for level in order if level in set(levels)]
            codes = np.asarray([used.index(level) for level in levels])[codes]
            levels = used
        return variance.with_levels(levels), codes.astype(float)
    values = _numeric(column, variance.column, f"the variance function's {variance.column!r}")
    if isinstance(variance, VarPower) and np.any(values == 0):
        first = listed_rows(column.index[[np.argmax(values == 0)]])
        raise DataError(f"power({variance.column}) needs nonzero values of {variance.column!r} "
                        f"(the sd is proportional to |{variance.column}|^delta); {first} "
                        "has 0. Shift the covariate or use exp(...)")
    return (variance.bind(values) if learn else variance), values


def _stratum_codes(variance: VarIdent, column: pd.Series, what: str = "the data") -> np.ndarray:
    """The codes of ``column``'s values among the bound function's strata (-1 where missing).

    Raises:
        DataError: a value that is not one of its strata.
    """
    codes = pd.Index(list(variance.levels)).get_indexer(column)
    unseen = (codes < 0) & ~pd.isna(column).to_numpy()
    if unseen.any():
        level = _plain(column.to_numpy()[np.argmax(unseen)])
        raise DataError(f"{what} column {variance.column!r} has the level {level!r}, for which "
                        f"the variance function ident({variance.column}) has no sd ratio (its "
                        f"levels: {', '.join(map(str, variance.levels))})")
    return codes


def _plain(value):
    """A numpy scalar as the Python value it holds (for messages: 7, not np.int64(7))."""
    return value.item() if isinstance(value, np.generic) else value


def _factor(column: pd.Series) -> tuple[np.ndarray, list]:
    """(codes, levels): the levels of a categorical column in its order, else sorted; the
    codes as ``np.intp`` (pandas stores a categorical's as small as its levels allow: int8
    below 128 levels, which arithmetic on them would overflow)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        used = column.cat.remove_unused_categories()
        return used.cat.codes.to_numpy().astype(np.intp), list(used.cat.categories)
    codes, levels = pd.factorize(column, sort=True)
    return codes, list(levels)


def _numeric(column: pd.Series, name: str, what: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        if pd.api.types.is_datetime64_any_dtype(column):
            hint = (f"convert it to a number of days, e.g. (df[{name!r}] - "
                    f"df[{name!r}].min()).dt.days")
        elif isinstance(column.dtype, pd.CategoricalDtype):
            hint = f"use its codes in order, e.g. df[{name!r}].cat.codes + 1"
        else:
            hint = f"convert it with pd.to_numeric(df[{name!r}]) or number its values"
        raise DataError(f"{what} must be numeric, but column {name!r} holds {column.dtype} "
                        f"values; {hint}")
    return column.to_numpy(dtype=float)


def _group_codes(correlation: Correlation, frame: pd.DataFrame):
    if correlation.group is None:
        return np.zeros(frame.shape[0], dtype=np.int64), ["(all rows)"]
    codes, levels = pd.factorize(frame[correlation.group], sort=True)
    return codes.astype(np.int64), list(levels)


def _positions(correlation: Correlation, frame: pd.DataFrame) -> np.ndarray:
    """(n, d) the rows' positions; whole numbers where the structure needs them."""
    if not correlation.positions:
        return np.zeros((frame.shape[0], 0))
    columns = []
    for name in correlation.positions:
        values = _numeric(frame[name], name, f"the correlation structure's position {name!r}")
        if correlation.integer:
            whole = np.round(values)
            off = np.abs(values - whole) > WHOLE_TOLERANCE * np.maximum(1.0, np.abs(values))
            if off.any():
                first = listed_rows(frame.index[[np.argmax(off)]])
                raise DataError(f"{correlation.title} needs whole numbers in {name!r} (visits "
                                f"or slots); {first} has {float(values[off][0])!r}. Use "
                                "car1(...) for a continuous time")
            values = whole  # 3.0000000000000004 (0.1 * 10 * 3) is visit 3
        columns.append(values)
    return np.column_stack(columns)


def _check_groups_of_several(correlation: Correlation, largest: int) -> None:
    """A DataError where every group has a single row: no two rows are correlated, and the
    likelihood does not depend on the correlation parameters (ar1's phi stayed at its start,
    0, reported as an estimate, with a profile interval of [-1, 1])."""
    if correlation.n_params and largest < 2:
        where = (f"every group of {correlation.group!r} has a single row" if correlation.group
                 else "there is a single row")
        raise DataError(f"correlation={correlation.text}: {where}, so no two residuals "
                        "are correlated and its parameters are not in the likelihood; group "
                        "the rows by a column within which they repeat, or leave out "
                        "correlation=")


def check_identified(residual: "ResidualModel") -> None:
    """A DataError where every correlation group has one row (``_check_groups_of_several``).
    A general correlation has one parameter per pair of slots: a DataError where a pair
    never occurs within one group (its correlation is not in the likelihood), or where
    there are no more groups than slots (the groups' residuals span fewer dimensions than
    the slots, and the likelihood grows without bound as C tends to their span: 3 groups of
    3 visits took 90,000 evaluations towards -infinity). An ARMA structure: a DataError
    where no group's times span as many steps as it has parameters
    (``_check_arma_identified``). Other structures pass. Over a Dask DataFrame's partitions,
    the general correlation's test from the sums of ``Learning`` (the ARMA one from the
    times of all the rows, ``ARMA.bind``)."""
    symm, group_codes, positions = residual.correlation, residual.group_codes, residual.positions
    if symm is None:
        return
    _check_groups_of_several(symm, int(np.bincount(group_codes).max()))
    if isinstance(symm, ARMA):
        _check_arma_identified(symm, group_codes, positions[:, 0])
    if not isinstance(symm, Symm):
        return
    several, pairs = _pairs_together(group_codes, positions[:, 0])
    check_symm_identified(symm, several, pairs)


def _check_arma_identified(arma: ARMA, group_codes: np.ndarray, times: np.ndarray) -> None:
    """A DataError where the groups' times span fewer steps than the ARMA structure has
    parameters: its correlations enter the likelihood at no more lags than that (``bind``
    checks the times of all the rows; here, of each group: visits 1-3 and 11-13 in two
    halves of the groups span 12 steps, their groups 2)."""
    if not len(times):
        return
    order = np.argsort(group_codes, kind="stable")
    codes, sorted_times = group_codes[order], times[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    spans = np.maximum.reduceat(sorted_times, starts) - np.minimum.reduceat(sorted_times, starts)
    lags = int(round(float(spans.max()) / arma.step))
    arma.check_lags(lags, f"within each group of {arma.group!r} the times {arma.time!r} span "
                          f"at most {lags}")


def _pairs_together(group_codes: np.ndarray, times: np.ndarray) -> tuple[int, np.ndarray]:
    """(the groups with two rows or more, (m, 2) the distinct pairs of times a < b seen
    within one group): what a general correlation's identification needs from rows, which
    adds up over sets of rows that keep each group whole (``Learning``)."""
    if not len(times):
        return 0, np.zeros((0, 2))
    distinct, slots = np.unique(times, return_inverse=True)
    seen = np.zeros((int(group_codes.max()) + 1, len(distinct)))
    seen[group_codes, slots] = 1.0
    rows, cols = np.nonzero(np.triu(seen.T @ seen > 0, 1))
    several = int(np.count_nonzero(seen.sum(axis=1) > 1))
    return several, np.column_stack([distinct[rows], distinct[cols]])


def check_symm_identified(symm: "Symm", several: int, pairs: np.ndarray) -> None:
    """``check_identified``'s test of a general correlation (bound: its slots known), from
    the number of groups with two rows or more and the pairs of times seen together
    (``_pairs_together``, of all the rows or summed over partitions)."""
    together = np.zeros((symm.size, symm.size))
    if len(pairs):
        slots = np.asarray(symm.slots, dtype=float)
        first, second = np.searchsorted(slots, pairs[:, 0]), np.searchsorted(slots, pairs[:, 1])
        together[second, first] = together[first, second] = 1.0
    groups = several
    what = symm.text
    alternatives = ("use a structure with fewer parameters (toep, ar1, cs), or fewer "
                    f"distinct values of {symm.time!r}")
    if groups <= symm.size:
        raise DataError(f"{what} has a correlation for every pair of the {symm.size} values "
                        f"of {symm.time!r}, and only {groups} groups have two rows or more: "
                        "with no more groups than values the likelihood grows without bound; "
                        + alternatives)
    rows, cols = np.nonzero(np.tril(together == 0, -1))
    if len(rows):
        pairs = ", ".join(f"{symm.slots[c]:g} and {symm.slots[r]:g}"
                          for r, c in list(zip(rows, cols))[:5])
        more = f" ({len(rows)} pairs in all)" if len(rows) > 5 else ""
        raise DataError(f"{what}: no group has rows at both {symm.time!r} = {pairs}{more}, "
                        "whose correlations the data therefore cannot estimate; "
                        + alternatives)


def _check_distinct(correlation: Correlation, group_codes: np.ndarray, positions: np.ndarray,
                    frame: pd.DataFrame) -> None:
    """Two rows of one group at the same position would make Psi singular: an error."""
    if not positions.shape[1]:
        return
    order = np.lexsort(tuple(positions.T[::-1]) + (group_codes,))
    ordered = positions[order]
    same = np.all(ordered[1:] == ordered[:-1], axis=1) & (
        group_codes[order][1:] == group_codes[order][:-1])
    if same.any():
        first = order[np.argmax(same)]
        group = (" (no '| group' was given: all rows are one group)" if correlation.group is None
                 else f" of {correlation.group} {_plain(frame[correlation.group].iloc[first])!r}")
        second = order[np.argmax(same) + 1]
        labels = [_plain(frame.index[first]), _plain(frame.index[second])]
        rows = (f"rows {labels[0]!r} and {labels[1]!r}" if labels[0] != labels[1] else
                f"the rows at positions {min(first, second)} and {max(first, second)} (both "
                f"labelled {labels[0]!r})")
        raise DataError(f"two rows{group} are at the same position "
                        f"({', '.join(correlation.positions)}): {rows}; the correlation "
                        "structure needs distinct positions within a group: its group is the "
                        "unit measured repeatedly (the subject, not a factor such as sex or "
                        "treatment that holds many subjects), or the data hold a repeated "
                        "measurement to average or drop")


def unit_keys(residual: ResidualModel, units: np.ndarray, z: np.ndarray | None = None):
    """The rows of independent units (codes ``units``), by size, each unit's rows ordered by
    position, and their keys: units of one key have the same Psi block (positions, relative
    ones for a stationary structure, variance-function values and weights) and the same
    random-effects rows ``z`` (n, p_z), if given.

    Returns:
        per size m: (rows (G, m), keys (G,) in 0..K-1, the position in rows of each key's first
        unit (K,)).
    """
    n = len(units)
    positions = residual.positions if residual.positions is not None else np.zeros((n, 0))
    first = positions[:, 0] if positions.shape[1] else np.zeros(n)
    order = np.lexsort((np.arange(n), first, units))
    sizes = np.bincount(units)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for m in np.unique(sizes[sizes > 0]):
        groups = np.flatnonzero(sizes == m)
        rows = order[starts[groups][:, None] + np.arange(m)]
        keys, first_of_key = row_keys(unit_descriptors(residual, rows, z))
        out.append((rows, keys, first_of_key))
    return out


def unit_descriptors(residual: ResidualModel, rows: np.ndarray,
                     z: np.ndarray | None = None) -> np.ndarray:
    """(G, D) what makes units of m rows (``rows``, (G, m), ordered by position) share a key
    (``unit_keys``): their positions (relative to the first for a stationary structure),
    variance-function values, weights and random-effects rows ``z``; equal rows, one key."""
    n = residual.n
    positions = residual.positions if residual.positions is not None else np.zeros((n, 0))
    place = positions[rows]
    stationary = residual.correlation is None or residual.correlation.stationary
    relative = place - place[:, :1] if stationary else place
    parts = [relative.reshape(len(rows), -1), residual.features[rows], residual.weights[rows]]
    if z is not None:
        parts.append(z[rows].reshape(len(rows), -1))
    return np.concatenate(parts, axis=1) + 0.0  # + 0.0: -0.0 and 0.0 are one value


def row_keys(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(key of each row (G,), the first row of each key (K,)): equal rows, equal keys (as
    ``np.unique(axis=0)``, without its overhead on small arrays)."""
    if matrix.shape[1] == 0:
        return np.zeros(len(matrix), dtype=np.int64), np.zeros(1, dtype=np.int64)
    order = np.lexsort(matrix.T[::-1])
    ordered = matrix[order]
    new = np.concatenate([[True], np.any(ordered[1:] != ordered[:-1], axis=1)])
    keys = np.empty(len(matrix), dtype=np.int64)
    keys[order] = np.cumsum(new) - 1
    return keys, order[new]
