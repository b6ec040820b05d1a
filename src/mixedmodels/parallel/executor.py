"""Independent tasks on one shared payload, run serially, on local processes or on an executor.

The bootstrap (one task per replicate), the profile (one per parameter) and group deletion (one
per level) all apply a function to a list of items with one large shared object, the payload (a
model or fit): ``run_tasks(function, payload, items)`` returns ``[function(payload, item) for
item in items]``, computed

* serially, with no pickling, when there is no executor and ``n_jobs`` is 1;
* otherwise in chunks of items submitted to a ``concurrent.futures`` executor (a process pool,
  a thread pool, a Dask cluster's ``Client.get_executor()``) or to a pool of ``n_jobs`` local
  processes. The payload is pickled once and travels with every chunk; a worker unpickles it
  once per process (``unpickled``, a cache of the few most recent payloads, kept here since it
  serves only these tasks) and hands the same object to every chunk it runs.

The results are in the order of the items whatever the order in which chunks finish, and the
back-ends are fixed for the whole batch (``linalg.compiled.batch_policy``: the kernels, loaded
by the caller and every worker, or NumPy's throughout), so the results do not depend on the
executor, the number of processes or the chunking.
"""

from __future__ import annotations

import math
import os
import pickle
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed

from ..linalg.compiled import batch_policy, load_kernels, prefer_numpy
from .progress import progress_bar

__all__ = ["pickled", "run_tasks", "unpickled"]

CHUNKS_PER_WORKER = 4  # local processes: chunks per process, to even out their loads
EXECUTOR_CHUNKS = 20  # an executor's workers are unknown: this many chunks
MAX_CHUNK = 50  # items per chunk at most, so that the progress bar moves


def run_tasks(function, payload, items, *, executor=None, n_jobs: int = 1,
              chunk_size: int | None = None, progress: bool = False, description: str = "",
              portable=None) -> list:
    """``[function(payload, item) for item in items]``, serially or in parallel.

    Args:
        function: ``function(payload, item) -> result``; for processes and clusters it must be
            picklable (a module-level function, a method of a module-level class, or a
            ``functools.partial`` of one).
        payload: the object every task shares (pickled once when the tasks run in parallel).
        items: a sequence; each item is one task, and one step of the progress bar.
        executor: a ``concurrent.futures.Executor`` to run the chunks on.
        n_jobs: without an executor, local processes to use (-1 or None: all CPUs); 1 runs
            the tasks in this process, one after the other. Under the "spawn" and
            "forkserver" start methods, call from an ``if __name__ == "__main__":`` block.
        chunk_size: items per task sent to a worker; by default about ``CHUNKS_PER_WORKER``
            chunks per local process, or ``EXECUTOR_CHUNKS`` chunks on an executor, and at
            most ``MAX_CHUNK`` items each.
        progress, description: show a tqdm bar with this label (if tqdm is installed).
        portable: called with the payload when it cannot be pickled, to give an equivalent
            payload that can (e.g. with its model rebuilt without what stops it pickling).

    Returns:
        the results, one per item, in the order of ``items``.
    """
    items = list(items)
    n_jobs = (os.cpu_count() or 1) if n_jobs is None or n_jobs < 1 else int(n_jobs)
    with batch_policy(len(items), threads=executor is not None) as policy:
        if not items or (executor is None and n_jobs == 1):
            return _serial(function, payload, items, progress, description)
        data = pickled(payload, portable)
        workers = n_jobs if executor is None else None
        chunks = _chunks(len(items), chunk_size or _chunk_size(len(items), workers))
        if executor is not None:
            return _gather(executor, function, data, items, chunks, policy, progress,
                           description)
        with ProcessPoolExecutor(min(n_jobs, len(chunks))) as pool:
            return _gather(pool, function, data, items, chunks, policy, progress,
                           description)


def _serial(function, payload, items: list, progress: bool, description: str) -> list:
    """The tasks one after the other in this process, on the payload itself (not a copy)."""
    bar = progress_bar(len(items), progress, description)
    results = []
    try:
        for item in items:
            results.append(function(payload, item))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results


def _chunk_size(count: int, workers: int | None) -> int:
    """Items per chunk for ``count`` items on ``workers`` local processes (None: an executor)."""
    chunks = EXECUTOR_CHUNKS if workers is None else CHUNKS_PER_WORKER * workers
    return max(1, min(MAX_CHUNK, math.ceil(count / chunks)))


def _chunks(count: int, size: int) -> list[range]:
    """Consecutive ranges of item positions covering 0..count-1, ``size`` positions each."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def _gather(executor, function, data: bytes, items: list, chunks: list[range], policy: str,
            progress: bool, description: str) -> list:
    """Submit every chunk, then collect the results into the items' positions as chunks end;
    the workers follow the batch's kernel ``policy`` (``linalg.compiled.batch_policy``).

    The bar starts after the submissions, when a local pool has started its processes: a
    fork then copies no thread of tqdm's."""
    futures = {executor.submit(_run_chunk, function, data, policy,
                               items[chunk.start:chunk.stop]): chunk for chunk in chunks}
    results = [None] * len(items)
    bar = progress_bar(len(items), progress, description)
    try:
        for future in as_completed(futures):
            chunk = futures[future]
            results[chunk.start:chunk.stop] = future.result()
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return results


def _run_chunk(function, data: bytes, policy: str, items: list) -> list:
    """One chunk, on a worker: the payload is unpickled once per worker process; ``policy``:
    the batch's (``linalg.compiled.batch_policy``), "loaded" or "numpy", which the worker
    follows."""
    if policy == "loaded":
        load_kernels()
    else:
        prefer_numpy()
    payload = unpickled(data)
    return [function(payload, item) for item in items]


def pickled(payload, portable=None) -> bytes:
    """The payload pickled; if it cannot be, ``portable(payload)`` pickled (when given)."""
    try:
        return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        if portable is None:
            raise
        return pickle.dumps(portable(payload), protocol=pickle.HIGHEST_PROTOCOL)


_KEPT = 4  # payloads kept per worker process (the most recent)
_CACHE: dict[bytes, object] = {}
_LOCK = threading.Lock()


def unpickled(data: bytes):
    """``pickle.loads(data)``, computed once per process for each payload and shared by every
    task (and thread) of the process that receives the same payload."""
    with _LOCK:
        if data not in _CACHE:
            if len(_CACHE) >= _KEPT:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[data] = pickle.loads(data)
        return _CACHE[data]
