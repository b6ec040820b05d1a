"""The model before it is fitted: formula + data -> matrices, and the objective of theta.

``lmer`` is four named stages, each usable on its own:

1. ``LinearMixedModel(formula, data)``: parse the formula, build y, X and the random-effects
   blocks, accumulate A (lme4's ``lFormula``);
2. ``model.objective(theta)``: the REML criterion or -2 log-likelihood (``mkLmerDevfun``);
3. ``model.optimize()``: BOBYQA on theta (``optimizeLmer``);
4. ``model.fit()``: freeze the fitted state at the optimum (``mkMerMod``); beta and u are
   solved on first use.
"""

from __future__ import annotations

import dataclasses
import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.linalg
from scipy.linalg.lapack import dtrtrs

from ..core.centring import CentredCoordinates, far_structured_columns
from ..core.optimize import (
    CONVERGED,
    METHODS,
    POLISH_PARAMETERS,
    BestPoint,
    ConvergenceCheck,
    OptSettings,
    OptSummary,
    check_convergence,
    minimize_bobyqa,
    minimize_lbfgs,
    newton_polish,
    numerical_polish,
    snap_to_bounds,
)
from ..core.pls import PLSSystem
from ..core.residual_system import ResidualParameterSystem
from ..core.response_shift import response_shift, shifted_response
from ..core.scalar import NAME as SCALAR_NEWTON
from ..core.scalar import minimize_scalar
from ..core.start import moment_start, one_component_start, theta_units
from ..core.structure import ReStructure, build_structure
from ..covariance.correlation import CS, Correlation, Symm, Toep
from ..covariance.residual import Identity, ResidualStructure, residual_structure
from ..covariance.residual_model import (
    ResidualModel,
    check_identified,
    check_strata,
    correlation_of,
    variance_of,
)
from ..covariance.variance import Variance, VarIdent
from ..design.build import NOBS_CHECKS, Design, build_design, response_qr
from ..errors import DataError, DataWarning, FitWarning, recorded_warnings, warn_user
from ..formula.parse import parse_formula
from ..linalg.compiled import count_numpy_seconds, kernel_policy
from ..validate import (
    check_bool,
    check_choice,
    check_integer,
    check_number,
    type_error,
)
from .fitted import FittedModel

__all__ = ["GeneralizedLeastSquares", "LinearMixedModel", "check_settings"]

#: "auto" optimizes with the gradient (L-BFGS) from this many parameters when the objective
#: runs the blocked factor, and from ``GRADIENT_FROM`` on smaller systems, whose compiled
#: evaluations cost 2 to 6 us against 4 to 15 us for a compiled gradient (one grouping
#: factor's loop over its levels, or the dense system's). BOBYQA takes 2 to 6 times L-BFGS's
#: evaluations at 1 to 3 parameters, 7 to 20 times from 4 on (402 against 28 on Machines'
#: (0 + Machine | Worker), 6,373 against 201 with 72 parameters); a gradient costs 2.5 to 4
#: evaluations of the blocked factor, where L-BFGS starts at the MIVQUE(0) variances
#: (``LinearMixedModel._lbfgs_start``). Optimizer's time, BOBYQA against L-BFGS (both
#: followed by the Newton polish): on the blocked factor, every model has 2 parameters or
#: more: ham (2) 10.7 against 5.4 ms, simulated 900 x 400 crossed levels (2) 70 against
#: 51 ms, 200 schools with 5 classes each (2) 27 against 21 ms, InstEval (3) 3.5 against
#: 1.0 s; on smaller systems, at 3 parameters: Orthodont 1.14 against 0.58 ms, sleepstudy
#: 0.57 against 0.41, BodyWeight 1.18 against 0.45, Assay 1.57 against 1.13, ChickWeight
#: 1.37 against 0.85, MathAchieve 1.52 against 1.23, Carrots 0.98 against 1.04; at 2,
#: BOBYQA or even (Penicillin 0.59 against 1.17 ms: at its optimum the criterion's rounding
#: exceeds what L-BFGS's line search can gain, which spins there until it fails and BOBYQA
#: continues; Machines nested 0.49 against 0.42, sleepstudy's (Days || Subject) 0.36
#: against 0.38); at 1, BOBYQA by 10 to 25% (cake 0.24 against 0.31), and Newton's method on
#: the one parameter (``core.scalar``) by more: it is the method at 1 (``_uses_scalar_newton``).
#: Structured terms (``cs``, ``ar1``, ``toep``) keep BOBYQA: on their correlations'
#: unconstrained scale the criterion flattens towards +/-1, where L-BFGS can stall (a toep
#: term on the trial data stopped 5 log-likelihood units short).
GRADIENT_FROM_BLOCKED = 2
GRADIENT_FROM = 3

#: BOBYQA runs on theta in its columns' units only where one is farther than this factor
#: from 1 (``LinearMixedModel._bobyqa_units``)
BOBYQA_UNIT_RANGE = 10.0

#: the optimizers' tolerances when Newton steps finish the fit
#: (``LinearMixedModel._polished_settings``)
POLISHED_TOLERANCES = {"ftol_rel": 1e-9, "ftol_abs": 1e-7, "xtol_abs": 1e-6}

#: a restricted fit (``LinearMixedModel._beyond_nested``) below the fit's criterion by more
#: than this, relative to 1 + |criterion|, shows a local optimum: far above the optimizers'
#: tolerances, so that a fit at a nested structure's optimum is not refitted for rounding
NESTED_MARGIN = 1e-7
#: passes of ``LinearMixedModel._beyond_nested``: a pass that improved the fit is followed by
#: another from the better theta
NESTED_ROUNDS = 3

#: the restricted fits' tolerances (no tighter than the fit's): they only tell whether a
#: restriction fits better by ``NESTED_MARGIN``, which a fit to 1e-9 does (Machines' ``toep``
#: terms: 90 restricted evaluations at these instead of 180 at the defaults)
NESTED_TOLERANCES = {"ftol_rel": 1e-9, "ftol_abs": 1e-7, "xtol_abs": 1e-5}
#: near an exact fit, BOBYQA's continuations in units of theta's size (``_beyond_scale``)
SCALE_RESTARTS = 4
#: no fit is near an exact one (``_near_exact``: r^2 below 1e-7 of y'y) whose largest sd,
#: relative to sigma and in its column's units, is below this: r^2 / y'y is then at least
#: about 1 / (sd / sigma)^2 times the share of y'y the fixed effects leave, 1e-4 at least
#: (a larger one is taken out first: ``core.response_shift``). Spares large fits the
#: evaluation the test takes
NEAR_EXACT_SDS = 10.0
#: a fit whose largest sd is this many times sigma gets a FitWarning: there eps (sd/sigma)^2
#: is 2e-5, and on a crossed design of 160 rows the criterion was off by 7e-3 at 1.2e6
#: (against a 50-digit computation; 1e-7 at 1.2e5), on a random intercept and slope the
#: factor failed on the way to the optimum (near 7e6)
PRECISION_RATIO = 3e5

#: the tolerances of ``OptSettings``: non-negative numbers
_TOLERANCES = ("ftol_rel", "ftol_abs", "xtol_rel", "xtol_abs")


def _no_tighter(settings: OptSettings, tolerances: dict[str, float]) -> OptSettings:
    """``settings`` with each of ``tolerances`` no tighter than given."""
    return _loosened(settings, tuple(tolerances.items()))


@lru_cache(maxsize=64)  # settings are frozen and few: each is loosened once (10 us a fit)
def _loosened(settings: OptSettings, tolerances: tuple[tuple[str, float], ...]) -> OptSettings:
    return dataclasses.replace(settings, **{name: max(getattr(settings, name), value)
                                            for name, value in tolerances})


def check_settings(settings) -> OptSettings:
    """The optimizer settings, checked: an ``OptSettings`` with non-negative tolerances, a
    positive initial step and a positive number of evaluations."""
    if not isinstance(settings, OptSettings):
        raise type_error("settings", "an mm.OptSettings", settings)
    return _checked_settings(settings)


@lru_cache(maxsize=32)  # settings are frozen: each one is checked once (fits reuse them)
def _checked_settings(settings: OptSettings) -> OptSettings:
    for name in _TOLERANCES:
        check_number(getattr(settings, name), f"settings.{name}", minimum=0)
    check_number(settings.initial_step, "settings.initial_step", minimum=0, exclusive=True)
    check_integer(settings.maxeval, "settings.maxeval")
    check_choice(settings.method, "settings.method", METHODS)
    return settings


def _numbers(values, name: str, count: int, what: str) -> np.ndarray:
    """``values`` as a float array of shape (count,), all finite: a TypeError for values that
    are not numbers, a ValueError for the wrong number of them or non-finite ones."""
    allowed = f"{count} finite numbers ({what})"
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise type_error(name, allowed, values) from None
    if array.shape != (count,) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be {allowed}, not {_summary(array)}")
    return array


def _summary(array: np.ndarray) -> str:
    """What a message shows of an array given for a vector: its shape, or its bad values."""
    if array.ndim != 1:
        return f"an array of shape {array.shape}"
    bad = array[~np.isfinite(array)]
    return f"{len(array)} numbers" if not len(bad) else f"numbers such as {bad[0]}"


class LinearMixedModel:
    """y = X beta + Z u + e with u ~ N(0, sigma^2 Lambda Lambda'), e ~ N(0, sigma^2 W^-1)
    (W the prior weights, I without them; plus the formula's offset, if any, with
    coefficient 1).

    Args:
        formula: lme4-style, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
        data: a pandas DataFrame with the columns the formula names.
        reml: fit by REML (the default, as in lme4) or by maximum likelihood.
        weights: prior weights, as lme4's ``weights``: None, a column name or one value per
            row; Var(e_i) = sigma^2 / w_i.
        nobs_checks: "error" (default, as lme4), "warning" or "ignore": what a grouping factor
            with as many levels as observations, or a term with as many random effects, is
            (``design.build.check_identifiable``).
        transforms: the state of the formula's stateful transforms (``poly``, ``scale``...) to
            apply instead of learning it from ``data``: another model's ``design.transforms``,
            for a refit of its data (``rebuild``).

    Attributes:
        warnings: the messages of the warnings raised while reading the data (rows dropped for
            missing values, aliased columns...); ``fit()`` adds its own to the fit's.
    """

    #: the class of ``fit()``'s result (the package's API uses its facade, ``LmmFit``)
    result_type = FittedModel
    #: (term label, column names) of the random-effects columns that lie in the fixed
    #: effects' span, whose variances REML cannot estimate (``_check_within_fixed_span``)
    within_fixed_span: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: the formula has random-effects terms (lmer); ``GeneralizedLeastSquares`` has none
    random_effects = True
    #: the rows of the data are in this process (not in a Dask DataFrame's partitions)
    rows_in_memory = True

    def __init__(self, formula: str, data: pd.DataFrame, reml: bool = True, weights=None,
                 nobs_checks: str = "error", transforms: dict | None = None,
                 correlation=None, variance=None):
        reml = check_bool(reml, "reml")
        check_choice(nobs_checks, "nobs_checks", NOBS_CHECKS)
        self.correlation: Correlation | None = correlation_of(correlation)
        self.variance: Variance | None = variance_of(variance)
        with recorded_warnings() as messages:
            self.design: Design = build_design(parse_formula(formula), data, weights,
                                               nobs_checks, transforms, self._residual_columns(),
                                               self.random_effects)
        self.warnings: tuple[str, ...] = tuple(messages)
        self.data_index: pd.Index = _data_index(data, self.design)
        self.nobs_checks = nobs_checks
        weights = self.design.weights if self.design.weighted else None
        residual_model = None
        if self.correlation is not None or self.variance is not None:
            residual_model = ResidualModel(self.correlation, self.variance, self.design.frame,
                                           weights)
        self.structure: ReStructure = build_structure(self.design.terms, residual_model)
        #: b0 (p,) when the cross-products are of y - X b0 (``core.response_shift``), else None
        self.response_shift: np.ndarray | None = response_shift(self.design.response_r)
        y = shifted_response(self.design.X, self.design.y - self.design.offset,
                             self.response_shift)
        if self.structure.parameters.residual is not None:
            _check_nested(residual_model, self.structure)
            check_strata(residual_model.variance, residual_model.features)
            check_identified(residual_model)
            with recorded_warnings() as messages:
                _check_confounded(residual_model.correlation, residual_model.variance,
                                  self.design.terms)
            self.warnings += tuple(messages)
            self.residual = None
            self.system = ResidualParameterSystem(self.structure, self.design.X, y,
                                                  residual_model)
        else:
            self.residual: ResidualStructure | None = (
                residual_structure(weights, self.design.n) if residual_model is None
                else residual_model.at(np.zeros(0)))
            # the design's QR of [X y] is of the whitened X where the residuals are
            # independent of one variance (Psi = I)
            x_qr = self.design.response_r if isinstance(self.residual, Identity) else None
            self.system = PLSSystem(self.structure, self.design.X, y, self.residual,
                                    x_qr=x_qr)
        self.reml = reml
        with recorded_warnings() as messages:
            self._check_far_structured()
            if reml:
                self.within_fixed_span = _check_within_fixed_span(self.design)
        self.warnings += tuple(messages)

    def _block_sums(self) -> list[np.ndarray] | None:
        """Per block, (k, k) the sums of its columns' products (A's level blocks summed, or,
        with a residual structure, the columns' own), or None without rows in this process."""
        if hasattr(self.system, "crossproducts"):
            return [diag.sum(axis=0) for diag in self.system.crossproducts.diag]
        blocks = self.structure.blocks
        if not blocks or blocks[0].values.shape[0] == 0:
            return None
        return [b.values.T @ b.values for b in blocks]

    def _check_far_structured(self) -> None:
        """A ``FitWarning`` for each structured term on a column far from 0 with an
        intercept (``core.centring.far_structured_columns``), saying what to do."""
        parameters = self.structure.parameters
        if parameters.linear:
            return
        sums = self._block_sums()
        for t, column, ratio in ([] if sums is None else
                                 far_structured_columns(parameters, sums)):
            syntax = parameters.structures[t].syntax
            how_far = f"{ratio:,.0f} sds" if np.isfinite(ratio) else "more than 1e7 sds"
            warn_user(f"the {syntax}() term on {parameters.groups[t]!r} has an intercept and "
                      f"the column {column!r}, whose mean is {how_far} from 0: in these "
                      "coordinates its correlations are ill-determined and the optimizer "
                      "can stop far from the optimum. Centre the column (a structured "
                      "covariance is another model after the shift), or use an unstructured "
                      "term, (... | group), which is searched with its columns centred",
                      FitWarning)

    def _residual_columns(self) -> tuple[str, ...]:
        """The columns of the residual structure: positions, groups, strata."""
        columns = []
        if self.correlation is not None:
            columns += list(self.correlation.positions)
            columns += [self.correlation.group] if self.correlation.group else []
        if self.variance is not None:
            columns.append(self.variance.column)
        return tuple(dict.fromkeys(columns))

    def residual_at(self, theta: np.ndarray) -> ResidualStructure:
        """Psi at theta (its residual part), or the model's fixed Psi."""
        if self.residual is not None:
            return self.residual
        parameters = self.structure.parameters
        return parameters.residual.at(np.asarray(theta, dtype=float)[parameters.residual_slice])

    def _sibling(self, design: Design, system, reml: bool) -> "LinearMixedModel":
        """A model sharing this one's structure (no formula or data processing)."""
        model = object.__new__(type(self))
        model.__dict__.update(self.__dict__)  # the attributes of subclasses too
        model.design, model.system, model.reml = design, system, bool(reml)
        return model

    def with_reml(self, reml: bool) -> "LinearMixedModel":
        """The same model and data, fitted by REML (True) or ML (False)."""
        return self._sibling(self.design, self.system, check_bool(reml, "reml"))

    def with_response(self, y) -> "LinearMixedModel":
        """The same design with a new response (for simulation and the bootstrap): only the
        blocks of A that involve y are recomputed. ``y`` has one finite value per observation
        of the model, in the order of its rows."""
        y = _numbers(y, "y", self.design.n, "one for each of the model's observations")
        X = self.design.X
        design = dataclasses.replace(self.design, y=y,
                                     response_r=response_qr(X, y - self.design.offset))
        shift = response_shift(design.response_r)
        model = self._sibling(design, self.system.with_response(
            shifted_response(X, y - design.offset, shift)), self.reml)
        model.response_shift = shift
        return model

    def rebuild(self, rows=None, formula: str | None = None,
                reml: bool | None = None) -> "LinearMixedModel":
        """A new model of this model's data, for refits: group deletion (``rows``), reduced
        random effects (``formula``), or a copy that pickles (a plain ``LinearMixedModel``,
        whatever this model's class and attributes).

        Args:
            rows: the design's rows to keep: positions, or an (n,) boolean mask; None keeps all.
            formula: another formula on the same variables; None keeps this model's.
            reml: the criterion; None keeps this model's.

        The rows keep their prior weights, and stateful transforms (``poly``, ``scale``...) the
        state learnt from all the rows of this model's data (as R's ``update`` with ``subset``
        evaluates them before subsetting): the refit's fixed effects are those of the same
        basis. The build's data warnings (aliased columns, a collinear random-effects term)
        are not shown: they repeat this model's, or concern the subset of rows the caller
        chose (group deletion reports an aliased effect as NaN).
        """
        frame = self.design.frame if rows is None else self.design.frame.iloc[rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            formula = self.formula if formula is None else formula
            cls = LinearMixedModel if parse_formula(formula).random else GeneralizedLeastSquares
            return cls(formula, frame,
                       reml=self.reml if reml is None else reml,
                       weights=self.design.weights_label, nobs_checks=self.nobs_checks,
                       transforms=self.design.transforms, correlation=self.correlation,
                       variance=self.variance)

    @property
    def formula(self) -> str:
        return self.design.formula.text

    def objective(self, theta) -> float:
        """The REML criterion (``reml=True``) or -2 log-likelihood, profiled over beta and
        sigma, at ``theta`` (one finite number per covariance parameter)."""
        return self._criterion(_numbers(theta, "theta", self.structure.parameters.n_params,
                                        "one per covariance parameter"))

    def _criterion(self, theta: np.ndarray) -> float:
        """The objective at a theta that needs no checking (the optimizer's)."""
        return self.system.objective(theta, self.reml)

    def optimize(self, settings: OptSettings = OptSettings()) -> OptSummary:
        """Minimize the objective over theta from lme4's start (identity), with the method of
        ``settings.method`` (see ``OptSettings``).

        BOBYQA: a stop on the boundary (a standard deviation at 0) is restarted once from there
        with a smaller trust region, as lme4's ``restart_edge``: near the boundary the objective
        is flat in some directions and BOBYQA's first stop can depend on rounding alone. The
        better of the two optima is kept; the summary counts both runs' evaluations.
        With one variance component, "auto" runs Newton's method on its parameter
        (``core.scalar``) from its MIVQUE(0) estimate where that is positive
        (``_scalar_start``), whose steps go on to where the gradient's rounding stops them (no
        polish follows), continued by BOBYQA where they do not converge.
        L-BFGS runs with the signs of lam's diagonal free (``ParameterMap.sign_free``: on the
        bound 0 the criterion's derivative vanishes, optimum or not) and theta is then mapped
        to lme4's canonical form; when round-off or the evaluation limit stops it before its
        tolerances, BOBYQA continues from its end with the restart's trust region, and the
        summary counts both. Then parameters within ``SNAP_DISTANCE`` of their bound are
        tried on it and kept there when the criterion is no worse (``snap_to_bounds``), so that
        a boundary optimum is reported on the boundary, as lme4 and MixedModels.jl report it.
        Last, where the analytic gradient exists, Newton steps take the parameters off their
        bounds to where the gradient vanishes (``newton_polish``), and where they end near a
        bound it is tried again; with a residual structure's parameters, which have none, the
        same steps with a central-difference gradient (``numerical_polish``), so that fits of
        the same data whose criteria differ by rounding (rows in another order, or summed over
        partitions) agree to 1e-9, not 1e-6. Where the steps' Hessian at the optimizer's end
        is not positive definite, that end is no minimum, and BOBYQA continues from there as
        after a boundary stop: with their signs free, L-BFGS can stop at a saddle (a variance
        near 0 whose covariance went to another column: 3.5e-3 above the optimum on a (x | g)
        fit of 3 groups), and BOBYQA where a variance is near 0 but not within lme4's
        tolerance of it (0.83 above on an (x || g) fit of 8 groups with weights from 1e-6 to
        1e6). L-BFGS runs on theta in its columns' units (``core.start.theta_units``),
        BOBYQA where one of them is extreme (``_bobyqa_units``). A (1 + x | g) term on a
        covariate far from 0 is searched by BOBYQA in centred coordinates instead
        (``_minimize_centred``, unless "lbfgs" was asked for). Last, a Toeplitz correlation's
        fit is compared with its compound-symmetric and AR(1) special cases, and continued
        from one that fits better (``_beyond_nested``).

        Raises:
            ValueError: ``settings.method`` is "lbfgs" and the model has parameters of a
                residual structure (no analytic gradient for them).
        """
        settings = check_settings(settings)
        parameters = self.structure.parameters
        lower = parameters.lower()
        backend = self.system.backend
        if parameters.n_params == 0:  # a linear model: nothing to optimize
            return OptSummary("none", settings, np.zeros(0), lower, np.zeros(0),
                              self._criterion(np.zeros(0)), 1, "SUCCESS", 0.0,
                              np.array([self._criterion(np.zeros(0))]), backend)
        seen = None  # L-BFGS's evaluations, for the polish (``BestPoint``)
        centred = self.centred_coordinates() if settings.method != "lbfgs" else None
        with self.system.optimizer_threads():
            if centred is not None:
                summary = self._minimize_centred(centred, settings)
            elif self._uses_scalar_newton(settings):
                unit = float(self.theta_units()[0])
                summary = minimize_scalar(self._criterion_and_gradient, self._scalar_start(unit),
                                          unit, settings, backend, self._criterion)
                if summary.return_code not in CONVERGED:
                    summary = self._continued(summary, settings, 0.1)
            elif self._uses_gradient(settings):
                seen = BestPoint(self._criterion_and_gradient,
                                 history=self.system.evaluation_is_costly)
                summary = self._minimize_lbfgs(settings, seen)
                if summary.return_code not in CONVERGED:
                    summary = self._continued(summary, settings, 0.1)
            else:
                summary = self._minimize_bobyqa(self._bobyqa_start(),
                                                self._polished_settings(settings))
                summary = dataclasses.replace(summary, settings=settings)
                if parameters.is_singular(summary.final, units=self.theta_units()):
                    summary = self._continued(summary, settings, 0.1)
            summary = self._beyond_scale(summary, settings)
            summary = self._polished(snap_to_bounds(self._criterion, summary), seen)
            if summary.curvature == "indefinite":  # not a minimum: a saddle, or a flat stop
                # at the settings' own tolerances: at the polished ones (1e-10) BOBYQA stopped
                # in the saddle's flat region (3 groups' (x | g); 0.024 above on a
                # 10-parameter fit of 220 groups, where these take 8,600 evaluations)
                summary = self._continued(summary, settings, 0.1)
                summary = self._polished(snap_to_bounds(self._criterion, summary), None)
            summary = self._beyond_nested(summary, settings)
        return summary

    def _beyond_scale(self, summary: OptSummary, settings: OptSettings) -> OptSummary:
        """Near an exact fit (``_near_exact``) the optimum lies at sds thousands to millions
        of times sigma, and BOBYQA's trust region, which grows slowly from its start in the
        columns' units, can stop on the way (a residual sd 1e-7 of the groups': at theta
        1.4e5, 167 above the optimum at 1.5e7). There BOBYQA continues in units of theta's
        own size, again while that lowers the criterion, at most ``SCALE_RESTARTS`` times."""
        for _ in range(SCALE_RESTARTS):
            if not self._near_exact(summary.final):
                break
            units = np.maximum(np.abs(summary.final), self.theta_units())
            again = self._continued(summary, settings, 0.5, None, units)
            improved = again.fmin < summary.fmin - NESTED_MARGIN * (1.0 + abs(summary.fmin))
            summary = again
            if not improved:
                break
        return summary

    def _beyond_nested(self, summary: OptSummary, settings: OptSettings) -> OptSummary:
        """The fit, or a better one where a structure nested in it fits better: for each of
        its restrictions (``ParameterMap.restrictions``: a Toeplitz correlation's every lag's
        correlation one rho, or rho^lag, or its last partial autocorrelation on its bound
        +/-1; a residual correlation's independence), BOBYQA over the restricted parameters
        from the fit's (with none left free, the restriction's criterion); where that ends below
        the fit's criterion, the fit stopped at a local optimum, and BOBYQA continues over
        all the parameters from there. Machines' ``toep(0 + Machine | Worker, hom = TRUE)``
        stopped at 215.809, above its compound-symmetric special case (215.688); from there
        it reaches 215.161. The restrictions are also the ranges of a compact spatial
        correlation's scan (``Spatial.scan``), one evaluation each. Where one improved the
        fit, the restrictions at the new theta are tried again, at most ``NESTED_ROUNDS``
        passes (the spatial scan's fine part is around the fit's range). The summary counts
        every run's evaluations and names the restriction it continued from."""
        for _ in range(NESTED_ROUNDS):  # again from a better fit's own restrictions
            before = summary.fmin
            summary = self._nested_round(summary, settings)
            if not summary.fmin < before:
                break
        return summary

    def _nested_round(self, summary: OptSummary, settings: OptSettings) -> OptSummary:
        """One pass of ``_beyond_nested`` over the restrictions at the fit's theta."""
        loose = _no_tighter(settings, NESTED_TOLERANCES)
        held = 0  # the criteria of restrictions with nothing free, one evaluation each
        for restriction in self.structure.parameters.restrictions(summary.final):
            lower, upper = restriction.bounds()
            if len(lower):
                nested = minimize_bobyqa(lambda w: self._criterion(restriction.full(w)),
                                         restriction.start(), lower, loose, upper,
                                         backend=self.system.backend)
                runs, point, value = [nested], restriction.full(nested.final), nested.fmin
            else:  # nothing left free (gls with one correlation): the restriction's criterion
                point = restriction.full(np.zeros(0))
                runs, value = [], self._criterion(point)
                held += 1
            better = None
            if value < summary.fmin - NESTED_MARGIN * (1.0 + abs(summary.fmin)):
                better = self._polished(snap_to_bounds(self._criterion, self._minimize_bobyqa(
                    point, settings)), None)
            runs += [better] if better is not None else []
            summary = dataclasses.replace(
                better if better is not None and better.fmin < summary.fmin else summary,
                optimizer=summary.optimizer if better is None else
                f"{summary.optimizer}, continued from {restriction.name}",
                initial=summary.initial, settings=summary.settings,
                evaluations=summary.evaluations + sum(r.evaluations for r in runs),
                gradient_evaluations=summary.gradient_evaluations,
                trace=np.concatenate([summary.trace] + [r.trace for r in runs]),
                seconds=summary.seconds + sum(r.seconds for r in runs))
        return (dataclasses.replace(summary, evaluations=summary.evaluations + held) if held
                else summary)

    def centred_coordinates(self) -> CentredCoordinates | None:
        """The coordinates with the columns of terms on covariates far from 0 centred
        (``core.centring``), or None where there are none: the optimizer's for
        ``settings.method`` "auto" and "bobyqa" (L-BFGS: in theta, as asked), and those of
        the convergence check, Satterthwaite's df and Kenward-Roger's variance parameters.
        Computed once per system, as ``theta_units``."""
        cached = self.__dict__.get("_centred_of")
        if cached is not None and cached[0] is self.system:
            return cached[1]
        # only lme4's (linear) terms are centred: no sums for the others
        sums = self._block_sums() if self.structure.parameters.linear else None
        centred = None
        if sums is not None:
            # with a residual structure, the blocks' columns unweighted (any shift gives the
            # same model; the means only make it well-conditioned)
            n = (self.system.crossproducts.n if hasattr(self.system, "crossproducts")
                 else self.structure.blocks[0].values.shape[0])
            centred = CentredCoordinates.of(self.structure.parameters, sums, n)
        self._centred_of = (self.system, centred)
        return centred

    def _minimize_centred(self, centred: CentredCoordinates,
                          settings: OptSettings) -> OptSummary:
        """The optimizer in ``centred`` coordinates, in their units, from lme4's start in
        those units (``CentredCoordinates.units``), chosen as in theta
        (``_uses_gradient``): L-BFGS with the gradient J g (J the map's Jacobian,
        ``CentredCoordinates.jacobian``), continued by BOBYQA where it fails, or BOBYQA,
        again from a boundary stop; the optimum, as every fit's, in theta. (BOBYQA alone,
        at 6 parameters, stopped 1.83 above the optimum of a singular (1 + x + z | g) fit
        of 5 groups with z 70 sds from 0, which L-BFGS in theta reached.) The Newton steps
        that follow (``_polished``) run in theta: from this optimum they stay there
        (sleepstudy with Days + 1000 and + 10,000: the criterion of the centred fit to 4e-8
        and 2e-7, the rounding of the criterion itself at those means). Central-difference
        Newton steps in these coordinates were tried instead, and ended farther from the
        optimum (8e-7 above it on (1 + x + z | g) with x 500 sds from 0, against 9e-9)."""
        def criterion(theta_c):
            return self._criterion(centred.theta(theta_c))

        def criterion_and_gradient(theta_c):
            value, gradient = self._criterion_and_gradient(centred.theta(theta_c))
            return value, centred.jacobian(theta_c, units) @ gradient

        tolerances = self._polished_settings(settings)
        units = centred.units(self.theta_units())
        start = self.structure.parameters.start() * units
        if self._uses_gradient(settings):
            summary = self._minimize_lbfgs(settings, BestPoint(criterion_and_gradient,
                                                               False), units, start)
            if summary.return_code not in CONVERGED:
                summary = self._continued(summary, settings, 0.1, criterion, units)
        else:
            summary = self._minimize_bobyqa(start, tolerances, criterion, units)
            if self.structure.parameters.is_singular(summary.final, units=units):
                summary = self._continued(summary, tolerances, 0.1, criterion, units)
        return dataclasses.replace(summary, optimizer=f"{summary.optimizer} (centred)",
                                   settings=settings, initial=centred.theta(summary.initial),
                                   final=centred.theta(summary.final))

    def _polished(self, summary: OptSummary, seen: BestPoint | None) -> OptSummary:
        """Newton steps from the optimizer's end where the analytic gradient exists
        (``newton_polish``; ``seen``: L-BFGS's evaluations, whose last gradient and secant
        curvature they reuse), an end near a bound tried on it again; with a residual
        structure's parameters, or near an exact fit, the same steps with a central-difference
        gradient."""
        parameters = self.structure.parameters
        if self._near_exact(summary.final):
            return numerical_polish(self._criterion, summary, parameters.upper())
        if summary.optimizer == SCALAR_NEWTON:  # its steps are the polish's, to the end
            return summary
        if self._has_gradient():
            if seen is None:
                polished = newton_polish(self._criterion_and_gradient, summary,
                                         parameters.upper(), scale=self.theta_units())
            else:  # the secant curvature where a gradient costs more than fitting it
                polished = newton_polish(seen, summary, parameters.upper(),
                                         seen.at(summary.final), tuple(seen.history),
                                         self.theta_units())
            # the steps may end near a bound the optimizer stopped farther from
            return (polished if polished.final is summary.final
                    else snap_to_bounds(self._criterion, polished))
        if parameters.residual is not None:
            return numerical_polish(self._criterion, summary, parameters.upper())
        return summary

    def _polished_settings(self, settings: OptSettings) -> OptSettings:
        """The optimizer's tolerances: those of ``settings``, but no tighter than
        ``POLISHED_TOLERANCES`` when Newton steps follow (the analytic gradient, at most
        ``POLISH_PARAMETERS`` parameters). The optimizers' last evaluations at 1e-13 only
        refine theta within the Newton steps' reach: stopping at 1e-9 (theta to 1e-6) saves
        5 to 50% of BOBYQA's evaluations (median 22%, the Newton steps' gradients counted)
        and one to a few of L-BFGS's gradients, and the polished optimum is the same (on the
        50 REML and ML fits of the small reference models: the criterion within 4.1e-11
        relative and theta within 1.7e-10 of the fits at the settings' own tolerances; 1,297
        evaluations in all, 1,352 at 1e-10). At 1e-8 the Newton steps took more gradients,
        each 3 evaluations' cost, than BOBYQA saved (Oats: 6 for 6 evaluations, against 4);
        at 1e-7, theta moved by 2.3e-8 on beets. L-BFGS's: a test."""
        if not (self._has_gradient()
                and self.structure.parameters.n_params <= POLISH_PARAMETERS):
            return settings
        return _no_tighter(settings, POLISHED_TOLERANCES)

    def _near_exact(self, theta: np.ndarray) -> bool:
        """The response is fitted almost exactly at theta: the criterion is formed from the
        rows (``PLSSystem.row_residuals``), while the analytic gradient's log-determinant
        part still comes from A, whose Schur complements have lost their precision there
        (L-BFGS stopped 1.1e-3 above the optimum with a residual sd 1e-6 of the groups')."""
        system = self.system
        if not hasattr(system, "refines"):
            return False
        units = self.theta_units()
        if all(abs(t) < NEAR_EXACT_SDS * u for t, u in zip(theta.tolist(), units.tolist())):
            return False  # no evaluation: r^2 is a share of y'y no smaller than 1 / sd^2
        return bool(np.all(np.isfinite(theta))) and \
            system.refines(system.crossproduct_pwrss(theta))

    def _has_gradient(self) -> bool:
        """The analytic gradient is available: no residual-structure parameters, and every
        term's structure linear in its parameters (lme4's)."""
        return hasattr(self.system, "objective_and_gradient") and \
            self.structure.parameters.linear

    def _criterion_and_gradient(self, theta: np.ndarray):
        return self.system.objective_and_gradient(theta, self.reml)

    def _minimize_lbfgs(self, settings: OptSettings, criterion_and_gradient,
                        units: np.ndarray | None = None,
                        start: np.ndarray | None = None) -> OptSummary:
        """L-BFGS from ``start`` (default ``_lbfgs_start``) with the signs of lam's diagonal
        free (``ParameterMap.sign_free``), then theta in lme4's canonical form. It minimizes
        the criterion per observation (its first step is the gradient's, whose size grows
        with n otherwise: on the reference models, 866 evaluations in all instead of 1,245,
        at the same optima) over theta in its columns' units (``units``, default
        ``core.start.theta_units``). Where the criterion is not finite at the start, it
        starts again from lme4's. ``criterion_and_gradient`` may be of theta in other
        coordinates with theta's bounds and signs (``_minimize_centred``)."""
        parameters = self.structure.parameters
        units = self.theta_units() if units is None else units
        lower = np.where(parameters.sign_free(), -np.inf, parameters.lower()) / units
        n = self.design.n
        tolerances = self._polished_settings(settings)
        scaled = dataclasses.replace(tolerances, ftol_abs=tolerances.ftol_abs / n)

        def per_observation(u):
            value, gradient = criterion_and_gradient(u * units)
            return value / n, gradient * units / n

        def run(start: np.ndarray) -> OptSummary:
            return minimize_lbfgs(per_observation, start / units, lower, scaled,
                                  parameters.upper() / units, backend=self.system.backend)

        summary = run(self._lbfgs_start() if start is None else start)
        if not np.isfinite(summary.fmin):  # the criterion is not finite there: lme4's start
            again = run(parameters.start() * (1.0 if start is None else units))
            summary = dataclasses.replace(
                again, evaluations=summary.evaluations + again.evaluations,
                gradient_evaluations=summary.gradient_evaluations + again.gradient_evaluations,
                trace=np.concatenate([summary.trace, again.trace]),
                seconds=summary.seconds + again.seconds)
        raw = summary.final * units
        final = parameters.canonical(raw)
        criterion_and_gradient.reflect(np.where(final == raw, 1.0, -1.0))
        return dataclasses.replace(summary, initial=summary.initial * units, final=final,
                                   lower_bounds=parameters.lower(), settings=settings,
                                   fmin=summary.fmin * n, trace=summary.trace * n)

    def _lbfgs_start(self) -> np.ndarray:
        """L-BFGS's start: the MIVQUE(0) variances (``core.start.moment_start``) where an
        evaluation runs the blocked factor, BOBYQA's elsewhere (``_bobyqa_start``: lme4's
        lam = I, in the columns' units where one is extreme; Oxboys' quadratic growth curve,
        units 1.5 and 2.7, takes 53 gradients from there and 36 from lme4's). From
        MIVQUE(0), InstEval takes 11 gradients instead of 28, the 64 x 80 maximal design 35
        instead of 50, the 56 x 32 one 100 instead of 194. The estimates cost 0.15 to 0.65 ms
        on the reference models, more than a compiled small model's evaluations they save (a
        few microseconds each: BOBYQA from MIVQUE(0) takes 22 evaluations instead of 44 on
        Penicillin, 13 instead of 27 on Rail, but more on sleepstudy, carrots and
        MathAchieve)."""
        if self.system.evaluation_is_costly:
            return moment_start(self.structure.parameters, self.system.crossproducts)
        return self._bobyqa_start()

    def on_boundary(self, theta: np.ndarray) -> np.ndarray:
        """(n_params,) bool: the parameters on their boundary at theta, lme4's rule applied
        in theta's units (``ParameterMap.on_boundary``): on sleepstudy with Days * 1e5 the
        slope's diagonal entry of lam, 2.3e-6, is 0.66 in units of the column's spread, as
        0.23 is on Days. lme4's ``isSingular`` compares theta itself with 1e-4, and calls
        that fit singular."""
        return self.structure.parameters.on_boundary(theta, units=self.theta_units())

    def theta_units(self) -> np.ndarray:
        """(n_params,) theta's units (``core.start.theta_units``); ones for a residual
        structure's system, whose A changes with its parameters."""
        cached = self.__dict__.get("_units_of")
        if cached is not None and cached[0] is self.system:  # once per fit: 20-30 us
            return cached[1]
        parameters = self.structure.parameters
        if parameters.residual is not None or not hasattr(self.system, "crossproducts"):
            units = np.ones(parameters.n_params)
        else:
            units = theta_units(parameters, self.system.crossproducts)
        self._units_of = (self.system, units)
        return units

    def _bobyqa_units(self) -> np.ndarray | None:
        """theta's units for BOBYQA and the small systems' start (``theta_units``), or None where
        all are within a factor ``BOBYQA_UNIT_RANGE`` of 1: there BOBYQA's ball-shaped trust
        region is scaled well enough (sleepstudy's Days: 0.35), and the scaled objective's
        extra call cost 5 to 20% of a small model's fit; beyond it (a slope on x * 1e3 or
        more, BodyWeight's Time in days: 0.05) BOBYQA runs on theta / units, and both
        optimizers start at lme4's lam = I in those units (``core.start.unit_start``)."""
        cached = self.__dict__.get("_bobyqa_units_of")
        if cached is not None and cached[0] is self.system:  # asked twice per fit
            return cached[1]
        units = self.theta_units()
        if np.all(np.abs(np.log10(units)) <= np.log10(BOBYQA_UNIT_RANGE)):
            units = None
        self._bobyqa_units_of = (self.system, units)
        return units

    def _bobyqa_start(self) -> np.ndarray:
        """BOBYQA's start: lme4's lam = I, in the columns' units where BOBYQA runs in them
        (``_bobyqa_units``)."""
        units = self._bobyqa_units()
        start = self._moment_correlation(self.structure.parameters.start())
        return start if units is None else start * units

    def _moment_correlation(self, start: np.ndarray) -> np.ndarray:
        """``start`` with a general residual correlation (``symm``) of a model without
        random effects (gls) at the correlations of the least-squares residuals
        (``Symm.moment_start``, from ``_residual_pair_sums``); elsewhere at independence.
        With random effects those correlations are the marginal ones, of Z G Z' + R, not
        R's (and a random intercept within the same groups is confounded with the
        correlations, whose split the start would then decide)."""
        parameters = self.structure.parameters
        if (self.random_effects or parameters.residual is None
                or not isinstance(parameters.residual.correlation, Symm)):
            return start
        sums = self._residual_pair_sums()
        if sums is None:
            return start
        start = start.copy()
        part = slice(parameters.n_random,
                     parameters.n_random + parameters.residual.correlation.n_params)
        start[part] = parameters.residual.correlation.moment_start(sums)
        return start

    def _residual_pair_sums(self) -> np.ndarray | None:
        """``Symm.pair_sums`` of the least-squares residuals of all the rows, or None
        without the residual structure's groups."""
        residual = getattr(self.system, "residual", None)
        if getattr(residual, "group_codes", None) is None:
            return None
        y = self.design.y - self.design.offset
        beta = np.linalg.lstsq(self.design.X, y, rcond=None)[0]
        return self.structure.parameters.residual.correlation.pair_sums(
            y - self.design.X @ beta, residual.group_codes, residual.positions)

    def _minimize_bobyqa(self, start: np.ndarray, settings: OptSettings,
                         criterion=None, units: np.ndarray | None = None) -> OptSummary:
        """BOBYQA from ``start`` (theta), on theta / ``_bobyqa_units()`` where those are
        given, with ``settings``' initial step in those units: its trust region is a ball, so
        that a slope on x * 1e4 (theta about 1e-4) and an intercept (about 1) need steps of
        one size. Unscaled it stopped 1e-4 to 23% above the optimum on such models,
        silently. ``criterion``: of theta in other coordinates with theta's bounds, and
        ``units`` their units (``_minimize_centred``); the model's by default."""
        parameters = self.structure.parameters
        lower, upper = parameters.lower(), parameters.upper()
        units = self._bobyqa_units() if units is None else units
        criterion = self._criterion if criterion is None else criterion
        if units is None:
            return minimize_bobyqa(criterion, start, lower, settings, upper,
                                   backend=self.system.backend)

        def scaled(u):
            return criterion(u * units)

        summary = minimize_bobyqa(scaled, start / units, lower / units, settings,
                                  upper / units, backend=self.system.backend)
        return dataclasses.replace(summary, initial=summary.initial * units,
                                   final=summary.final * units, lower_bounds=lower)

    def _scalar_start(self, unit: float) -> float:
        """Newton's start on the one parameter: the MIVQUE(0) estimate of a variance
        component on one column per level (``core.start.one_component_start``), else lme4's
        lam = I in the column's ``unit``."""
        crossproducts = getattr(self.system, "crossproducts", None)
        if crossproducts is not None and crossproducts.diag[0].shape[1] == 1:
            start = one_component_start(crossproducts, unit)
            if start is not None:
                return start
        return float(self.structure.parameters.start()[0]) * unit

    def _uses_scalar_newton(self, settings: OptSettings) -> bool:
        """Newton's method on the one parameter (``core.scalar``) for "auto": a model with one
        covariance parameter and the analytic gradient, a variance component (linear in
        theta >= 0, so that the criterion is a function of theta^2)."""
        return (settings.method == "auto" and self.structure.parameters.n_params == 1
                and self._has_gradient())

    def _uses_gradient(self, settings: OptSettings) -> bool:
        """L-BFGS with the analytic gradient (else BOBYQA), as ``settings.method`` says."""
        available = hasattr(self.system, "objective_and_gradient")
        if settings.method == "lbfgs" and not available:
            raise ValueError("settings.method='lbfgs' needs the analytic gradient, which "
                             "models with a correlation structure or variance function do not "
                             "have: use method='bobyqa' or 'auto'")
        if settings.method == "auto":
            if not self._has_gradient():
                return False
            least = GRADIENT_FROM_BLOCKED if self.system.evaluation_is_costly else GRADIENT_FROM
            return self.structure.parameters.n_params >= least
        return settings.method == "lbfgs"

    def _continued(self, summary: OptSummary, settings: OptSettings, step: float,
                   criterion=None, units: np.ndarray | None = None) -> OptSummary:
        """BOBYQA again from where ``summary`` stopped, with initial step ``step``: the
        better optimum, with both runs' evaluations counted, and BOBYQA's return code when
        it stopped normally (it found nothing lower than where the first run failed, e.g.
        L-BFGS's line search defeated by rounding at the optimum: that is the optimum).
        ``criterion`` and ``units``: as ``_minimize_bobyqa``'s (other coordinates)."""
        restart = self._minimize_bobyqa(summary.final,
                                        dataclasses.replace(settings, initial_step=step),
                                        criterion, units)
        best = restart if restart.fmin < summary.fmin else summary
        optimizer = (summary.optimizer if summary.optimizer == restart.optimizer
                     else f"{summary.optimizer} + {restart.optimizer}")
        code = restart.return_code if restart.stopped_normally else best.return_code
        return dataclasses.replace(
            best, optimizer=optimizer, initial=summary.initial, return_code=code,
            evaluations=summary.evaluations + restart.evaluations,
            gradient_evaluations=summary.gradient_evaluations,
            trace=np.concatenate([summary.trace, restart.trace]),
            seconds=summary.seconds + restart.seconds)

    def fit(self, settings: OptSettings = OptSettings()) -> FittedModel:
        """Optimize, then freeze the result.

        A boundary (singular) fit is reported at once, with a ``FitWarning``. The finite-
        difference convergence check costs about as much as the fit itself, so it runs only
        when asked for (``fit.check_convergence()``, the summary).
        """
        summary = self.optimize(settings)
        if kernel_policy() == "earn":  # a fit on NumPy's back-ends: towards loading the kernels
            count_numpy_seconds(summary.seconds)
        theta = summary.final
        aliased = any(term.aliased for term in self.design.terms)
        parameters = self.structure.parameters
        boundary = self.on_boundary(theta)
        singular = bool(boundary.any()) or aliased
        with recorded_warnings() as messages:
            if boundary[:parameters.n_random].any() or aliased:
                warn_user("boundary (singular) fit: a variance is estimated as (nearly) zero, a "
                          "correlation as +/-1 (or at a structured term's bound), or "
                          "random-effects columns are collinear; see "
                          "fit.varcorr", FitWarning)
            if boundary[parameters.residual_slice].any():
                warn_user("boundary (singular) fit: a parameter of the residual structure is on "
                          "its bound (a correlation or partial correlation at +/-1 or at its "
                          "lower limit, an sd ratio at 0, a range at 0 or without bound); see "
                          "fit.summary()", FitWarning)
            rise = self._rise_beyond_boundary(theta, boundary)
            if rise > NO_MAXIMUM_RISE:
                warn_user(f"the likelihood has no maximum: where the fit stopped, on the "
                          f"boundary, it still rises ({rise:.3g} in -2 log-likelihood a step "
                          "further out), so the estimates and their standard errors mean "
                          "nothing; the data cannot estimate this covariance structure (a "
                          "general one, symm, needs more complete groups than times): use a "
                          "simpler one", FitWarning)
            if not summary.stopped_normally:
                warn_user(f"the optimizer stopped with {summary.return_code}", FitWarning)
            ratio = max((abs(t) / u for t, u in zip(theta.tolist(),
                                                    self.theta_units().tolist())), default=0.0)
            if ratio > PRECISION_RATIO and self._near_exact(theta):
                warn_user(f"the response is fitted almost exactly: a random effect's sd is "
                          f"{ratio:.2g} times the residual sd, where floating point no longer "
                          "holds the criterion to full precision (its factor's Schur "
                          "complements lose about (sd / sigma)^2 times the rounding), so the "
                          "optimum and the estimates may be off; is the residual variation "
                          "real, or is the response a function of the predictors?", FitWarning)
        return self.result_type(model=self, theta=theta, optsummary=summary,
                                is_singular=singular, warnings=self.warnings + tuple(messages))

    def _rise_beyond_boundary(self, theta: np.ndarray, boundary: np.ndarray) -> float:
        """How much the criterion falls when the parameters on a boundary that theta does not
        bound (a correlation's atanh far out, a range without limit) move a quarter further
        out: about 0 where the boundary is a limit the likelihood approaches (the change is
        of the order of 1 - rho^2 there, 1e-11), and of the order of log 10 where it rises
        without bound (an unstructured residual covariance on too few complete groups)."""
        if not boundary.any():  # (most fits: no bound arrays built)
            return 0.0
        lower, upper = self.structure.parameters.lower(), self.structure.parameters.upper()
        outward = boundary & (((theta < -1.0) & np.isinf(lower))
                              | ((theta > 1.0) & np.isinf(upper)))
        if not outward.any():
            return 0.0
        further = np.where(outward, 1.25 * theta, theta)
        try:
            return float(self._criterion(theta) - self._criterion(further))
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            return 0.0

    def convergence_check(self, theta) -> "ConvergenceCheck":
        """Gradient and Hessian of the objective at theta, over parameters off their bounds;
        in the centred coordinates where the optimizer searched them
        (``centred_coordinates``: in theta, a term on a covariate 350 sds from 0 had
        gradients of 28 and -167 at the optimum, and a Newton step "would lower the
        objective by 0.0057", which the criterion's own rounding, 2e-8, belies)."""
        theta = np.asarray(theta, dtype=float)
        parameters = self.structure.parameters
        centred = self.centred_coordinates()
        if centred is not None:
            theta_c = centred.centred(theta)
            units = centred.units(self.theta_units())
            return check_convergence(lambda t: self._criterion(centred.theta(t)), theta_c,
                                     parameters.lower(),
                                     parameters.on_boundary(theta_c, units=units), units)
        return check_convergence(self._criterion, theta, parameters.lower(),
                                 self.on_boundary(theta), self.theta_units())


class GeneralizedLeastSquares(LinearMixedModel):
    """y = X beta + e with e ~ N(0, sigma^2 Psi(delta)): no random effects, a residual
    correlation structure and variance function (nlme's ``gls``; PROC MIXED with only a
    REPEATED statement). Arguments as ``LinearMixedModel``'s."""

    random_effects = False


#: a fall of -2 log-likelihood beyond the boundary that says the likelihood has no maximum
NO_MAXIMUM_RISE = 1e-3


def _check_confounded(correlation, variance, terms) -> None:
    """A random intercept and a residual covariance that a constant within the group leaves
    of its form cannot be told apart: warn. Such residuals are compound-symmetric, Toeplitz
    or general (``symm``) correlations of one variance, and a general one with an sd per slot
    of its own column (SAS's UN): sigma^2 C + tau^2 11' is again sigma'^2 C' of the same
    kind. (A variance function of another column, or an AR(1), is not of its form after the
    constant is added: the intercept is then identified.)"""
    if correlation is None or correlation.group is None:
        return
    absorbs = isinstance(correlation, (CS, Symm, Toep)) and (
        variance is None or (isinstance(correlation, Symm) and isinstance(variance, VarIdent)
                             and variance.column == correlation.time))
    if not absorbs:
        return
    for term in terms:
        if term.group == correlation.group and term.columns == ("(Intercept)",):
            where = " + ".join(correlation.positions) or "1"
            residuals = f"correlation={correlation.syntax}({where} | {correlation.group})" + (
                f" with variance={variance.syntax}({variance.column})" if variance else "")
            warn_user(f"the random intercept (1 | {term.group}) and {residuals} are one "
                      f"covariance: a constant added within each "
                      f"{term.group} leaves the residual covariance of its form, so their "
                      "variances cannot be told apart (the fit is one of many equivalent "
                      "ones, and AIC counts a parameter too many); keep one of them",
                      DataWarning)


#: a random-effects column lies in the span of X when X leaves less than this share of its
#: sum of squares: rounding leaves about 1e-30 where it does (Penicillin's (1 | sample) with
#: sample a fixed effect), and a column outside keeps a share of order 1 / n or more
WITHIN_SPAN = 1e-12


def _check_within_fixed_span(design: Design) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Warn where a combination of a random-effects term's columns, the same in every level,
    lies level by level in the span of the fixed effects' X (``(1 | sample)`` with ``sample``
    also a fixed effect; ``g + (0 + a | g)``, whose columns' sum is g's indicator): Z_l a is
    then in X's span for every level l, and the REML criterion, a function of the contrasts
    K'y with K'X = 0, does not depend on that combination's variance a'Sigma a at all (flat
    to 1e-11 on Penicillin), whose estimate is wherever the optimizer stopped; the
    Satterthwaite df and Kenward-Roger's adjustment that follow from it are meaningless (df
    7e-13 there). lme4 warns of the flat direction only through its Hessian's eigenvalues.

    The test: with W_l the columns of level l less their projection on X, the generalized
    eigenvalues of (sum_l W_l'W_l, sum_l Z_l'Z_l) below ``WITHIN_SPAN``; their eigenvectors
    are the combinations. Only the levels where the term's columns are not all zero count
    (a slope on a covariate that is 0 outside one level), and a combination nonzero in more
    levels than X has columns cannot lie in its span, so the test runs where those levels are
    at most p: O(n p (levels k)) then.

    Returns:
        (term label, the combinations in the span, as text) for each term that has some.
    """
    X, r = design.X, design.response_r
    p = X.shape[1]
    if r is None or p == 0:
        return ()
    candidates = []  # (term, its columns level by level in X's rows: Z, levels used)
    for term in design.terms:
        k = len(term.columns)
        # a column without a zero (an intercept): every level used, no bincount
        every_level = bool(term.values.all() or (k > 1 and term.values.all(axis=0).any()))
        if every_level and len(term.levels) > p:
            continue  # more levels used than X has columns
        if every_level:
            used, position, rows = len(term.levels), term.codes, np.arange(X.shape[0])
        else:
            nonzero = term.values.any(axis=1)
            present = np.bincount(term.codes[nonzero], minlength=len(term.levels)) > 0
            used = int(present.sum())
            if not 0 < used <= p:
                continue
            rows = np.flatnonzero(nonzero)
            position = (np.cumsum(present) - 1)[term.codes[rows]]
        Z = np.zeros((X.shape[0], used * k))  # columns (level, column of the term)
        for c in range(k):
            Z[rows, position * k + c] = term.values[rows, c]
        candidates.append((term, Z, used))
    if not candidates:
        return ()
    # R^-T X'Z of every candidate's columns at once, R of X in r's upper triangle (its
    # reflectors below are not read)
    Z_all = np.hstack([Z for _, Z, _ in candidates]) if len(candidates) > 1 \
        else candidates[0][1]
    explained_all, _ = dtrtrs(r[:p, :p], X.T @ Z_all, lower=0, trans=1)
    found, start = [], 0
    for term, Z, used in candidates:
        explained = explained_all[:, start:start + Z.shape[1]]
        start += Z.shape[1]
        if len(term.columns) == 1:  # one column: the share of its sum of squares X leaves
            total = float(np.einsum("ij,ij->", Z, Z))
            left = total - float(np.einsum("ij,ij->", explained, explained))
            flat = list(term.columns) if left <= WITHIN_SPAN * total else []
        else:
            flat = _flat_combinations(term.columns, Z, explained, used)
        if flat:
            found.append((term.term.label, tuple(flat)))
            named = " and ".join(f"its column {text}" if text in term.columns
                                 else f"the combination {text} of its columns" for text in flat)
            warn_user(f"in the random-effects term {term.term.label}, {named} lies, level by "
                      "level, in the span of the fixed effects (its grouping factor is also a "
                      "fixed effect, or the fixed effects tell its levels apart): the REML "
                      "criterion does not depend on that variance, which cannot be "
                      "estimated, nor can the df and tests that follow from it; remove the "
                      "factor from the fixed effects, or simplify the term", FitWarning)
    return tuple(found)


def _flat_combinations(columns, Z: np.ndarray, explained: np.ndarray,
                       levels: int) -> list[str]:
    """The combinations of a term's k columns whose residual sum of squares, summed over the
    levels, is below ``WITHIN_SPAN`` of their total: Z (n, levels k) the columns level by
    level, ``explained`` R^-T X'Z; all the columns where every direction is."""
    k = len(columns)
    total = (Z.T @ Z).reshape(levels, k, levels, k)
    left = total - (explained.T @ explained).reshape(total.shape)
    diagonal = np.arange(levels)
    total, left = total[diagonal, :, diagonal, :].sum(0), left[diagonal, :, diagonal, :].sum(0)
    scale = np.sqrt(np.diagonal(total))
    if np.any(scale == 0.0):
        return []  # a column that is zero throughout: the term's own collinearity checks
    try:
        values, vectors = scipy.linalg.eigh(left / np.outer(scale, scale),
                                            total / np.outer(scale, scale))
    except np.linalg.LinAlgError:
        return []  # the term's columns are collinear: aliased within it
    flat = np.flatnonzero(values <= WITHIN_SPAN)
    if len(flat) == k:  # every direction: the columns
        return list(columns)
    return [_combination(columns, vectors[:, i] / scale) for i in flat]


def _combination(columns, weights: np.ndarray) -> str:
    """A combination of a term's columns as text: "(Intercept)", or "aA + aB" (weights
    relative to the largest; those below 1e-8 of it left out)."""
    weights = weights / weights[np.argmax(np.abs(weights))]
    parts = [(w, name) for w, name in zip(weights.tolist(), columns) if abs(w) > 1e-8]
    if len(parts) == 1:
        return parts[0][1]
    text = ""
    for w, name in parts:
        size = "" if abs(abs(w) - 1.0) < 1e-8 else f"{abs(w):.3g} "
        sign = ("-" if w < 0 else "") if not text else (" - " if w < 0 else " + ")
        text += f"{sign}{size}{name}"
    return text


def _check_nested(residual: ResidualModel, structure: ReStructure) -> None:
    """The residual structure's groups must lie within the levels of every random-effects
    grouping factor (patients within centres), so that the whitened rows of a group keep
    their level and A its blocked layout."""
    for block in structure.blocks:
        if not residual.groups_within(block.codes):
            group = residual.correlation.group
            raise DataError(
                f"the residual correlation groups ({group}) must lie within the levels of "
                f"each random-effects grouping factor, but some {group} has rows in more than "
                f"one level of {block.group}. Correlate the residuals within a factor nested "
                f"in {block.group} (or within {block.group} itself)")


def _data_index(data, design: Design) -> pd.Index:
    """The labels of the data's rows in the data's order: the design's rows, and those dropped
    for missing values, if any (data given as a dict of columns are labelled as the design's
    DataFrame of them)."""
    if not len(design.missing_rows):
        return design.rows
    return data.index if isinstance(data, pd.DataFrame) else pd.DataFrame(data).index
