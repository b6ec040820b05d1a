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
over several machines. The model travels pickled with each chunk of replicates (or, if it
cannot be pickled, as its formula and data).

Intervals are percentile intervals computed as boot's ``boot.ci(type = "perc")`` (which lme4's
``confint`` uses): the order statistic (R + 1) alpha of the R finite replicates, interpolated on
the normal quantile scale when (R + 1) alpha is not an integer.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

from ..errors import FitWarning, warn_user
from ..lmm.model import LinearMixedModel
from ..parallel.progress import progress_bar
from ..parallel.workers import unpickled
from .parameters import parameter_names, parameter_values
from .simulate import Simulator

__all__ = ["BootstrapResult", "bootstrap", "percentile_interval"]


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
        return _intervals(self.replicates[self.parameters], level)

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
            z = scipy.stats.norm.ppf([alpha, k / (size + 1), (k + 1) / (size + 1)])
            tk, tk1 = t[k - 1], t[k]
            out.append(tk + (z[0] - z[1]) / (z[2] - z[1]) * (tk1 - tk))
    return (float(out[0]), float(out[1]))


def _intervals(table: pd.DataFrame, level: float) -> pd.DataFrame:
    _check_level(level)
    rows = [percentile_interval(table[name].to_numpy(), level) for name in table.columns]
    return pd.DataFrame(rows, index=pd.Index(list(table.columns), name="parameter"),
                        columns=["lower", "upper"])


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")


# -- replicates -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ModelRecipe:
    """Formula and data to rebuild a model that cannot be pickled, in a worker."""

    formula: str
    frame: pd.DataFrame
    reml: bool
    weights: np.ndarray | None = None

    def build(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return LinearMixedModel(self.formula, self.frame, reml=self.reml,
                                    weights=self.weights)


@dataclass(frozen=True, eq=False)
class _Replicator:
    """Simulates from the fit and refits its model: everything one worker needs."""

    model: object
    simulator: Simulator
    nparams: int

    def run(self, seeds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        values = np.full((len(seeds), self.nparams), np.nan)
        singular = np.zeros(len(seeds), dtype=bool)
        failed = np.zeros(len(seeds), dtype=bool)
        for i, seed in enumerate(seeds):
            y = self.simulator.draw(1, np.random.default_rng(seed))[:, 0]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FitWarning)
                    refit = self.model.with_response(y).fit()
                    values[i] = parameter_values(refit)
            except Exception:  # noqa: BLE001 -- a failed refit is kept as NaN and counted
                failed[i] = True
                continue
            singular[i] = refit.is_singular
            failed[i] = not refit.optsummary.stopped_normally
        return values, singular, failed


def _portable_payload(replicator: _Replicator) -> bytes:
    """The replicator pickled for the workers; a model that cannot be pickled is sent as its
    formula and data rows and rebuilt there."""
    try:
        return pickle.dumps(replicator, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        model = replicator.model
        design = model.design
        recipe = _ModelRecipe(model.formula, design.frame, model.reml,
                              design.weights if design.weighted else None)
        portable = _Replicator(recipe, replicator.simulator, replicator.nparams)
        return pickle.dumps(portable, protocol=pickle.HIGHEST_PROTOCOL)


_WORKER: _Replicator | None = None


def _unpickle_replicator(payload: bytes) -> _Replicator:
    replicator = pickle.loads(payload)
    if isinstance(replicator.model, _ModelRecipe):
        replicator = _Replicator(replicator.model.build(), replicator.simulator,
                                 replicator.nparams)
    return replicator


def _init_worker(payload: bytes) -> None:
    global _WORKER
    _WORKER = _unpickle_replicator(payload)


def _run_chunk(start: int, seeds):
    return start, _WORKER.run(seeds)


def _run_payload_chunk(payload: bytes, start: int, seeds):
    """A chunk on a worker of a user's executor (the replicator built once per worker)."""
    return start, unpickled(payload, _unpickle_replicator).run(seeds)


def _collect(futures, bar, values, singular, failed) -> None:
    """Store each finished chunk (start, (values, singular, failed)) in its rows."""
    for future in as_completed(futures):
        start, (v, s, f) = future.result()
        rows = slice(start, start + len(v))
        values[rows], singular[rows], failed[rows] = v, s, f
        if bar is not None:
            bar.update(len(v))


def bootstrap(fit, n: int, seed=None, progress: bool = True, n_jobs: int = 1,
              level: float = 0.95, executor=None) -> BootstrapResult:
    """Parametric bootstrap of a fitted model, as lme4's ``bootMer`` + ``confint(type="perc")``.

    Args:
        fit: an ``LmmFit``.
        n: number of replicates.
        seed: an int (or None for fresh entropy, recorded in the result's ``seed``).
        progress: show a tqdm progress bar (if tqdm is installed).
        n_jobs: processes to use (-1: all CPUs); the replicates do not depend on it. Under
            the "spawn" or "forkserver" start methods, call from an ``if __name__ ==
            "__main__":`` block, as for any process pool.
        level: confidence level of the percentile intervals.
        executor: a ``concurrent.futures.Executor`` to run the replicates on instead of
            ``n_jobs`` local processes, e.g. ``distributed.Client(...).get_executor()`` for a
            Dask cluster. The replicates do not depend on it either.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"the number of replicates must be >= 1, not {n}")
    _check_level(level)
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = sequence.spawn(n)
    names = parameter_names(fit)
    replicator = _Replicator(fit.model, Simulator.from_fit(fit), len(names))

    values = np.full((n, len(names)), np.nan)
    singular = np.zeros(n, dtype=bool)
    failed = np.zeros(n, dtype=bool)
    n_jobs = (os.cpu_count() or 1) if n_jobs is None or n_jobs < 1 else int(n_jobs)
    bar = None
    try:
        if executor is not None:
            size = max(1, min(50, math.ceil(n / 20)))
            payload = _portable_payload(replicator)
            futures = [executor.submit(_run_payload_chunk, payload, s, seeds[s:s + size])
                       for s in range(0, n, size)]
            bar = progress_bar(n, progress, "bootstrap")
            _collect(futures, bar, values, singular, failed)
        elif n_jobs == 1:
            bar = progress_bar(n, progress, "bootstrap")
            for i in range(n):
                values[i:i + 1], singular[i:i + 1], failed[i:i + 1] = replicator.run(seeds[i:i + 1])
                if bar is not None:
                    bar.update(1)
        else:
            size = max(1, min(50, math.ceil(n / (4 * n_jobs))))
            starts = range(0, n, size)
            payload = _portable_payload(replicator)
            workers = min(n_jobs, len(starts))
            with ProcessPoolExecutor(workers, initializer=_init_worker,
                                     initargs=(payload,)) as pool:
                futures = [pool.submit(_run_chunk, s, seeds[s:s + size]) for s in starts]
                # the bar starts after the workers, so that no fork copies its thread
                bar = progress_bar(n, progress, "bootstrap")
                _collect(futures, bar, values, singular, failed)
    finally:
        if bar is not None:
            bar.close()

    table = pd.DataFrame(values, columns=names)
    replicates = pd.concat([pd.DataFrame({"replicate": np.arange(n)}), table], axis=1)
    result = BootstrapResult(
        replicates=replicates, intervals=_intervals(table, level),
        estimate=pd.Series(parameter_values(fit), index=names, name="estimate"),
        seed=sequence.entropy if seed is None else seed, n=n, level=float(level),
        singular=singular, failed=failed)
    if result.n_failed:
        warn_user(f"{result.n_failed} of {n} bootstrap refits failed (kept; rows of NaN when "
                  f"the refit raised); {result.n_singular} were singular", FitWarning)
    return result
