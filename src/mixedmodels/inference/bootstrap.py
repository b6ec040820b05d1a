"""Parametric bootstrap (as lme4's ``bootMer`` and ``confint(method = "boot")``).

Each replicate simulates a response from the fitted model (new random effects and errors, see
``simulate``), refits the same design to it with ``model.with_response(y*).fit()`` and records
the parameters named as lme4's ``confint(oldNames = FALSE)`` (see ``parameters``): the terms'
standard deviations and correlations in theta's order, then ``sigma``, then the fixed effects.

Reproducibility: replicate i draws from ``default_rng(SeedSequence(seed).spawn(n)[i])``. Its
seed depends on i alone, not on n, the chunking or the number of processes, so the replicates
are the same for any ``n_jobs`` and the first k replicates of n are those of k.

Replicates can run in local processes (``n_jobs``) or on any ``concurrent.futures.Executor``
(``executor``): a process pool, or a Dask cluster's ``Client.get_executor()`` to spread them
over several machines (see ``parallel.executor.run_tasks``). The model travels pickled with
each chunk of replicates (or, if it cannot be pickled, rebuilt from its formula and data as a
plain ``LinearMixedModel``).

Intervals are percentile intervals computed as boot's ``boot.ci(type = "perc")`` (which lme4's
``confint`` uses): the order statistic (R + 1) alpha of the R finite replicates, interpolated on
the normal quantile scale when (R + 1) alpha is not an integer. As ``boot.ci``, they warn when
an endpoint is the smallest or largest replicate: too few replicates for the level (fewer than 40
at 0.95).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..errors import FitWarning, warn_user
from ..parallel.executor import run_tasks
from ..validate import (
    check_bool,
    check_executor,
    check_integer,
    check_level,
    check_n_jobs,
    check_seed,
)
from .distributions import ndtri
from .parameters import parameter_names, parameter_values
from .simulate import Simulator

__all__ = ["BootstrapResult", "bootstrap", "bootstrap_result", "percentile_interval",
           "replicate_values"]


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """The replicates of a parametric bootstrap and their percentile intervals.

    Attributes:
        replicates: one row per replicate: column ``replicate`` (0, 1, ...), then one column per
            parameter, named as lme4's ``confint(oldNames = FALSE)``. Singular refits are kept;
            refits that raised an error are rows of NaN.
        intervals: percentile intervals at ``level``, indexed by parameter, columns lower, upper.
        estimate: the parameters of the original fit (lme4's ``t0``).
        seed: the seed of the replicates (the entropy drawn when none was given): pass it again
            to reproduce them.
        n: number of replicates; level: confidence level of ``intervals``.
        singular: per replicate, whether the refit was a boundary (singular) fit.
        failed: per replicate, whether the optimizer stopped abnormally or the refit raised.
    """

    replicates: pd.DataFrame
    intervals: pd.DataFrame
    estimate: pd.Series
    seed: object
    n: int
    level: float
    singular: np.ndarray
    failed: np.ndarray

    @property
    def n_singular(self) -> int:
        return int(self.singular.sum())

    @property
    def n_failed(self) -> int:
        return int(self.failed.sum())

    @property
    def parameters(self) -> list[str]:
        return list(self.replicates.columns[1:])

    def confint(self, level: float | None = None) -> pd.DataFrame:
        """Percentile intervals at another level, from the same replicates."""
        if level is None:
            return self.intervals
        return _intervals(self.replicates[self.parameters], check_level(level))

    def __repr__(self) -> str:
        return (f"<BootstrapResult n={self.n} seed={self.seed!r} level={self.level} "
                f"singular={self.n_singular} failed={self.n_failed}>")


# -- percentile intervals ---------------------------------------------------------------------
def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """boot's ``perc.ci``/``norm.inter`` on the finite values: order statistic (R + 1) alpha,
    interpolated on the normal quantile scale between neighbours when not an integer; the
    extreme order statistics when (R + 1) alpha falls outside [1, R]."""
    t = np.asarray(values, dtype=float)
    t = np.sort(t[np.isfinite(t)])
    size = len(t)
    if size == 0:
        return (np.nan, np.nan)
    out = []
    for alpha in ((1 - level) / 2, (1 + level) / 2):
        rk = (size + 1) * alpha
        k = math.trunc(rk)
        if k == rk and 1 <= k <= size:
            out.append(t[k - 1])
        elif k <= 0:
            out.append(t[0])
        elif k >= size:
            out.append(t[-1])
        else:
            z = ndtri(np.array([alpha, k / (size + 1), (k + 1) / (size + 1)]))
            tk, tk1 = t[k - 1], t[k]
            out.append(tk + (z[0] - z[1]) / (z[2] - z[1]) * (tk1 - tk))
    return (float(out[0]), float(out[1]))


def _extreme(size: int, level: float) -> bool:
    """Whether a percentile interval of ``size`` values takes an extreme order statistic
    (boot's ``norm.inter`` warns then)."""
    return (math.trunc((size + 1) * (1 - level) / 2) < 1
            or math.trunc((size + 1) * (1 + level) / 2) >= size)


def _intervals(table: pd.DataFrame, level: float) -> pd.DataFrame:
    """Percentile intervals of every column; a FitWarning, as boot's ``boot.ci``, when an
    endpoint is an extreme order statistic (too few finite replicates for the level)."""
    rows = [percentile_interval(table[name].to_numpy(), level) for name in table.columns]
    finite = np.isfinite(table.to_numpy(dtype=float)).sum(axis=0)
    fewest = int(finite.min()) if len(finite) else 0
    if 0 < fewest and _extreme(fewest, level):
        needed = next(size for size in range(fewest, 10**7) if not _extreme(size, level))
        warn_user(f"extreme order statistics used as endpoints: {fewest} finite replicate"
                  f"{'s' if fewest != 1 else ''} for {level:g} intervals, which need at least "
                  f"{needed}; run more (n=)", FitWarning)
    return pd.DataFrame(rows, index=pd.Index(list(table.columns), name="parameter"),
                        columns=["lower", "upper"])


# -- replicates -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Replicator:
    """Simulates from the fit and refits its model: everything one worker needs."""

    model: object
    simulator: Simulator
    nparams: int

    def replicate(self, seed) -> tuple[np.ndarray, bool, bool]:
        """One replicate: its (nparams,) parameters (NaN if the refit raised), whether the
        refit is singular, whether it failed (raised, or the optimizer stopped abnormally)."""
        y = self.simulator.draw(1, np.random.default_rng(seed))[:, 0]
        return replicate_values(lambda: self.model.with_response(y), self.nparams)

    def portable(self) -> "_Replicator":
        """The same replicator with a model that pickles: the model rebuilt from its formula
        and data, for workers when the model itself cannot be pickled."""
        return replace(self, model=self.model.rebuild())


def replicate_values(model, nparams: int) -> tuple[np.ndarray, bool, bool]:
    """One replicate's row: the parameters of ``model().fit()`` (NaN if it raised), whether it
    is singular, whether it failed (raised, or the optimizer stopped abnormally)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            refit = model().fit()
            values = parameter_values(refit)
    except Exception:  # noqa: BLE001 -- a failed refit is kept as NaN and counted
        return np.full(nparams, np.nan), False, True
    return values, bool(refit.is_singular), not refit.optsummary.stopped_normally


def bootstrap(fit, n: int, seed=None, progress: bool = True, n_jobs: int = 1,
              level: float = 0.95, executor=None) -> BootstrapResult:
    """Parametric bootstrap of a fitted model, as lme4's ``bootMer`` + ``confint(type="perc")``.

    Args:
        fit: an ``LmmFit``.
        n: number of replicates (a positive integer).
        seed: a non-negative int or a ``numpy.random.SeedSequence`` (or None for fresh
            entropy, recorded in the result's ``seed``).
        progress: show a tqdm progress bar (if tqdm is installed).
        n_jobs: processes to use (-1: all CPUs); the replicates do not depend on it. Under
            the "spawn" or "forkserver" start methods, call from an ``if __name__ ==
            "__main__":`` block, as for any process pool.
        level: confidence level of the percentile intervals.
        executor: a ``concurrent.futures.Executor`` to run the replicates on instead of
            ``n_jobs`` local processes, e.g. ``distributed.Client(...).get_executor()`` for a
            Dask cluster. The replicates do not depend on it either.
    """
    n = check_integer(n, "n (the number of replicates)")
    seed, level = check_seed(seed), check_level(level)
    progress, n_jobs = check_bool(progress, "progress"), check_n_jobs(n_jobs)
    executor = check_executor(executor)
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    names = parameter_names(fit)
    replicator = _Replicator(fit.model, Simulator.from_fit(fit), len(names))
    rows = run_tasks(_Replicator.replicate, replicator, sequence.spawn(n), executor=executor,
                     n_jobs=n_jobs, progress=progress, description="bootstrap",
                     portable=_Replicator.portable)
    return bootstrap_result(fit, rows, seed, sequence, level)


def bootstrap_result(fit, rows: list, seed, sequence: np.random.SeedSequence,
                     level: float) -> BootstrapResult:
    """The ``BootstrapResult`` of replicates given as (parameters, singular, failed) rows, with
    a warning that counts the failed refits."""
    names = parameter_names(fit)
    n = len(rows)
    values, singular, failed = (np.array(column) for column in zip(*rows))
    table = pd.DataFrame(values, columns=names)
    replicates = pd.concat([pd.DataFrame({"replicate": np.arange(n)}), table], axis=1)
    result = BootstrapResult(
        replicates=replicates, intervals=_intervals(table, level),
        estimate=pd.Series(parameter_values(fit), index=names, name="estimate"),
        seed=sequence.entropy if seed is None else seed, n=n, level=level,
        singular=singular, failed=failed)
    if result.n_failed:
        warn_user(f"{result.n_failed} of {n} bootstrap refits failed (kept; rows of NaN when "
                  f"the refit raised); {result.n_singular} were singular", FitWarning)
    return result
