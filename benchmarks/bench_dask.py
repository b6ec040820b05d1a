"""Exact fits on Dask DataFrames: time and memory of mm.lmer, 1 to 100 million rows.

``mm.lmer(FORMULA, dd.read_parquet(directory))`` on a local Dask cluster, with

    y ~ x1 + x2 + x3 + x4 + x5 + (1 | site) + (1 | subject) + (1 | item), REML

Data (``make_parquet``): 200,000 subjects nested in 2,000 sites (subject s in site s // 100),
crossed with 500 items; each subject sees a fixed set of 10 items drawn at random (one per
row if it has fewer than 10 rows), its rows spread evenly over them, so the random-effects
cross-products do not grow with the number of rows: only the rows per subject do
(n / 200,000). y = 1 + 0.5 x1 - 0.3 x2 + 0.2 x3 + 0 x4 + 0.1 x5 + site (sd 0.3) + subject
(sd 0.5) + item (sd 0.4) + noise (sd 1), x standard normal. The rows are generated in blocks
of 1,000 subjects, each block from its own seed (seed, block), so the data depend on the seed
only, not on the chunking; files of about 1,000,000 rows (whole blocks), written one at a
time, so generating 100 million rows holds one file's rows in memory. A data set is written
once, to ``DATA_DIR/rows-N``, and reused while its manifest (``_manifest.json``: sizes, seed,
generation parameters, the files' byte sizes) matches.

The factors are stored as int32, not as short strings ("s123456"). Measured on the 2,000,000
row set (best of 10 reads): the files are the same size (103.05 against 103.18 MB: Parquet's
dictionary encoding makes the strings as small as the numbers; the float columns are most of
the bytes), but ``pd.read_parquet`` takes 0.06 against 0.17 s (the three factor columns
alone 0.013 against 0.11 s), ``dd.read_parquet(...).compute()`` 0.09 against 0.19 s, and
factorizing a factor column (as ``mm.lmer`` does) 0.007 against 0.18 to 0.21 s; the frame
holds 120 against 173 MB. Integers are also what the Dask path gets per partition: codes
without hashing text.

The fit runs in a child process that starts ``distributed.LocalCluster(n_workers=2,
threads_per_worker=1, processes=True, memory_limit="3GB")`` and a Client, warms up (one fit
of the first 20,000 rows through the same Dask path: imports and compilation, in the client
and on the workers), then times ``mm.lmer(FORMULA, dd.read_parquet(directory))`` with
``time.perf_counter``. Memory: a thread of the child samples every 0.2 s, with psutil, the
resident set size of the child itself ("client": the Client, the scheduler and the nannies,
which all live in it) and of each of its descendants; the peaks over the fit are reported,
the workers identified by their process ids (``Client.run(os.getpid)``, before and after the
fit: a worker replaced during the fit is reported). The kernel's count of the largest peak of
any single process in the child's tree (``wait4`` ru_maxrss, whole child: start-up and
warm-up included) is printed as a cross-check of the sampling. GB are 10^9 bytes, as
``memory_limit="3GB"``.

Targets: 20,000,000 rows fitted in under 600 s; client peak RSS under 2 GB; every worker's
peak RSS under 3 GB (all sizes).

``--check-subset`` also fits the 2,000,000-row set in memory (``pd.read_parquet`` and
``mm.lmer``, in its own child) and reports the largest relative difference from the Dask
fit (of the 2,000,000-row set, fitted with the others) of the REML criterion (target 1e-10),
beta, theta and sigma (vectors: max |a - b| / max |b|, so that x4's estimate near 0 does not
inflate it).

    PYTHONPATH=src python benchmarks/bench_dask.py [--rows 1000000 5000000 20000000]
        [--check-subset] [--data-dir /tmp/mixedmodels-bench-dask] [--timeout 1800]

``--rows`` takes multiples of 200,000 from 400,000 on (2 rows per subject; with 1 the subject term
is confounded with the residual); 100000000 works (about 5 GB of Parquet; slow, run it once).
``--timeout`` bounds each child (generation, fit) in seconds; a child that overruns is killed
(its Dask workers then exit by themselves, their parent gone). Progress goes to stderr, the
Markdown report to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as bc  # noqa: E402

FORMULA = "y ~ x1 + x2 + x3 + x4 + x5 + (1 | site) + (1 | subject) + (1 | item)"
N_SITES, N_SUBJECTS, N_ITEMS = 2_000, 200_000, 500
ITEMS_PER_SUBJECT = 10
BETA = (1.0, 0.5, -0.3, 0.2, 0.0, 0.1)
SD_SITE, SD_SUBJECT, SD_ITEM, SD_E = 0.3, 0.5, 0.4, 1.0
SEED = 12345
BLOCK_SUBJECTS = 1_000  # the unit of generation, with its own seed
CHUNK_ROWS = 1_000_000  # rows per file, about (whole blocks)
MANIFEST = "_manifest.json"  # the leading "_" keeps it out of (d)d.read_parquet(directory)
LAYOUT_VERSION = 1  # bump when the generation changes

DEFAULT_ROWS = (1_000_000, 5_000_000, 20_000_000)
SUBSET_ROWS = 2_000_000
WARMUP_ROWS = 20_000
CLUSTER = dict(n_workers=2, threads_per_worker=1, processes=True, memory_limit="3GB",
               dashboard_address=None)
SAMPLE_SECONDS = 0.2
TARGET_ROWS, TARGET_SECONDS = 20_000_000, 600.0
TARGET_CLIENT_BYTES, TARGET_WORKER_BYTES = 2 * 10**9, 3 * 10**9
TARGET_OBJECTIVE_REL = 1e-10


# --------------------------------------------------------------------------------------------
# data


def _spec(n_rows: int, seed: int, chunk_rows: int) -> dict:
    """What a data set's manifest must say for it to be reused (all but its files)."""
    return {"layout_version": LAYOUT_VERSION, "n_rows": n_rows, "seed": seed,
            "chunk_rows": chunk_rows, "block_subjects": BLOCK_SUBJECTS, "n_sites": N_SITES,
            "n_subjects": N_SUBJECTS, "n_items": N_ITEMS,
            "items_per_subject": ITEMS_PER_SUBJECT, "beta": list(BETA),
            "sds": [SD_SITE, SD_SUBJECT, SD_ITEM, SD_E]}


def _existing(directory: Path, spec: dict) -> dict | None:
    """The manifest of ``directory`` if it matches ``spec`` and all its files are there with
    their recorded sizes, else None."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if {k: manifest.get(k) for k in spec} != spec:
        return None
    for f in manifest["files"]:
        path = directory / f["name"]
        if not path.is_file() or path.stat().st_size != f["bytes"]:
            return None
    return manifest


def _block(seed: int, block: int, per_subject: int, site_effect, item_effect) -> dict:
    """The rows of subjects block * BLOCK_SUBJECTS ... + BLOCK_SUBJECTS - 1, from the seed
    (seed, 1, block) alone."""
    import numpy as np

    rng = np.random.default_rng([seed, 1, block])
    k = min(ITEMS_PER_SUBJECT, per_subject)
    # k distinct items per subject: redraw the subjects whose draw repeats an item
    items = rng.integers(0, N_ITEMS, (BLOCK_SUBJECTS, k), dtype=np.int32)
    while True:
        ordered = np.sort(items, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not repeated.any():
            break
        items[repeated] = rng.integers(0, N_ITEMS, (int(repeated.sum()), k), dtype=np.int32)
    n = BLOCK_SUBJECTS * per_subject
    first = block * BLOCK_SUBJECTS
    subject = np.repeat(np.arange(first, first + BLOCK_SUBJECTS, dtype=np.int32), per_subject)
    site = subject // np.int32(N_SUBJECTS // N_SITES)
    item = items[:, np.arange(per_subject) % k].ravel()
    x = rng.standard_normal((5, n))
    subject_effect = rng.normal(0.0, SD_SUBJECT, BLOCK_SUBJECTS)
    y = (BETA[0] + np.asarray(BETA[1:]) @ x + site_effect[site]
         + np.repeat(subject_effect, per_subject) + item_effect[item]
         + rng.normal(0.0, SD_E, n))
    return {"y": y, **{f"x{j + 1}": x[j] for j in range(5)},
            "site": site, "subject": subject, "item": item}


def make_parquet(n_rows: int, directory: str | Path, seed: int = SEED,
                 chunk_rows: int = CHUNK_ROWS) -> dict:
    """Write the synthetic data set of ``n_rows`` rows (a multiple of 200,000) to
    ``directory`` as Parquet files ``part-00000.parquet``, ... of about ``chunk_rows`` rows,
    one at a time, then ``_manifest.json``; or reuse them if the manifest matches. Returns the
    manifest, with "reused" set."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if n_rows <= 0 or n_rows % N_SUBJECTS:
        raise ValueError(f"n_rows must be a positive multiple of {N_SUBJECTS:,}, not {n_rows}")
    directory = Path(directory)
    spec = _spec(n_rows, seed, chunk_rows)
    manifest = _existing(directory, spec)
    if manifest is not None:
        return {**manifest, "reused": True}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)
    for stale in directory.glob("part-*.parquet"):
        stale.unlink()

    per_subject = n_rows // N_SUBJECTS
    rng = np.random.default_rng([seed, 0])
    site_effect = rng.normal(0.0, SD_SITE, N_SITES)
    item_effect = rng.normal(0.0, SD_ITEM, N_ITEMS)
    n_blocks = N_SUBJECTS // BLOCK_SUBJECTS
    blocks_per_file = max(1, round(chunk_rows / (BLOCK_SUBJECTS * per_subject)))
    files = []
    for number, start in enumerate(range(0, n_blocks, blocks_per_file)):
        parts = [_block(seed, b, per_subject, site_effect, item_effect)
                 for b in range(start, min(start + blocks_per_file, n_blocks))]
        table = pa.table({c: np.concatenate([p[c] for p in parts]) for c in parts[0]})
        del parts
        name = f"part-{number:05d}.parquet"
        pq.write_table(table, directory / name)
        files.append({"name": name, "rows": table.num_rows,
                      "bytes": (directory / name).stat().st_size})
        del table
    manifest = {**spec, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return {**manifest, "reused": False}


# --------------------------------------------------------------------------------------------
# children


class RssMonitor(threading.Thread):
    """Samples every SAMPLE_SECONDS the RSS of this process and of each of its descendants,
    keeping each one's peak (bytes) in ``peaks``, by process id."""

    def __init__(self):
        import psutil

        super().__init__(daemon=True)
        self.me = psutil.Process()
        self.peaks: dict[int, int] = {}
        self.done = threading.Event()

    def sample(self) -> None:
        import psutil

        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                rss = proc.memory_info().rss
            except psutil.Error:  # it ended between the listing and the reading
                continue
            self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), rss)

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            self.sample()

    def stop(self) -> dict[int, int]:
        self.done.set()
        self.join()
        self.sample()
        return self.peaks


def _estimates(fit) -> dict:
    import numpy as np

    return {"objective": float(fit.objective), "evals": int(fit.optsummary.evaluations),
            "beta": [float(v) for v in np.asarray(fit.beta, dtype=float).ravel()],
            "theta": [float(v) for v in np.asarray(fit.theta, dtype=float).ravel()],
            "sigma": float(fit.sigma)}


def child_fit(directory: str) -> None:
    """Start the cluster, fit FORMULA on ``dd.read_parquet(directory)``, print one JSON line."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    import mixedmodels as mm

    out: dict = {}
    with LocalCluster(**CLUSTER) as cluster, Client(cluster) as client:
        ddf = dd.read_parquet(directory)
        out["partitions"] = ddf.npartitions
        stage = "warm-up"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                first = ddf.get_partition(0).compute()  # rows spread over its subjects
                warm = first.iloc[::max(1, len(first) // WARMUP_ROWS)]
                mm.lmer(FORMULA, dd.from_pandas(warm, npartitions=2))
            stage = "fit"
            workers_before = set(client.run(os.getpid).values())
            monitor = RssMonitor()
            out["rss_before"] = bc.current_rss_bytes()
            monitor.start()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    t0 = time.perf_counter()
                    fit = mm.lmer(FORMULA, ddf)
                    out["fit_seconds"] = time.perf_counter() - t0
            finally:
                peaks = monitor.stop()
                out["warnings"] = sorted({str(w.message)[:160] for w in caught})
            out.update(_estimates(fit))
        except Exception as exc:  # reported, not hidden
            out["error"] = f"{stage}: {type(exc).__name__}: {exc}"
        if "rss_before" in out:
            workers = workers_before | set(client.run(os.getpid).values())
            out["client_peak"] = peaks[os.getpid()]
            out["worker_peaks"] = [peaks.get(pid) for pid in sorted(workers)]
            out["workers_replaced"] = len(workers) - len(workers_before)
    print(json.dumps(out))


def child_memory(directory: str) -> None:
    """Fit FORMULA on ``pd.read_parquet(directory)`` in this process; print one JSON line."""
    import pandas as pd

    import mixedmodels as mm

    df = pd.read_parquet(directory)
    out: dict = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mm.lmer(FORMULA, df.head(WARMUP_ROWS))
        out["rss_before"] = bc.current_rss_bytes()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            fit = mm.lmer(FORMULA, df)
            out["fit_seconds"] = time.perf_counter() - t0
        out["warnings"] = sorted({str(w.message)[:160] for w in caught})
        out.update(_estimates(fit))
    except Exception as exc:  # reported, not hidden
        out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))


def child_generate(n_rows: int, directory: str) -> None:
    """make_parquet; print one JSON line with its seconds, files and bytes."""
    t0 = time.perf_counter()
    manifest = make_parquet(n_rows, directory)
    print(json.dumps({"seconds": time.perf_counter() - t0, "reused": manifest["reused"],
                      "files": len(manifest["files"]),
                      "bytes": sum(f["bytes"] for f in manifest["files"])}))


# --------------------------------------------------------------------------------------------
# report


def gb(b: float | None) -> str:
    return "n/a" if b is None else f"{b / 1e9:.2f}"


def met(value: float | None, limit: float) -> str:
    return "n/a" if value is None else ("yes" if value < limit else "**no**")


def rel_diff(a, b) -> float:
    """|a - b| / |b| of numbers; max |a - b| / max |b| of vectors."""
    import numpy as np

    a, b = np.atleast_1d(np.asarray(a, dtype=float)), np.atleast_1d(np.asarray(b, dtype=float))
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def numbers(values, digits: int = 4) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def failure(res: dict, timeout: float) -> str | None:
    """Why a child gave no result or what went wrong in it, or None."""
    if res["timed_out"]:
        return f"killed at the {timeout:.0f} s timeout"
    if not res["ok"]:
        tail = "\n".join(res["stderr"].strip().splitlines()[-8:])
        return f"child failed (exit {res['returncode']}); stderr tail:\n\n```\n{tail}\n```"
    return res["result"].get("error")


def report(args, sizes: list[int], data: dict, fits: dict, memory: dict | None) -> None:
    from importlib.metadata import version

    print("# Exact fits on Dask DataFrames\n")
    print(bc.environment_line([f"{m} {version(m)}" for m in ("dask", "distributed", "pyarrow",
                                                            "psutil")]) + "\n")
    print(f"`{FORMULA}`, REML. {N_SITES:,} sites, {N_SUBJECTS:,} subjects nested in them, "
          f"{N_ITEMS} crossed items ({ITEMS_PER_SUBJECT} per subject); true sds site {SD_SITE}, "
          f"subject {SD_SUBJECT}, item {SD_ITEM}, residual {SD_E}; beta {BETA}; seed {SEED}. "
          f"`LocalCluster({', '.join(f'{k}={v!r}' for k, v in CLUSTER.items())})`. RSS sampled "
          f"every {SAMPLE_SECONDS} s over the timed fit; GB = 10^9 bytes. Data in "
          f"`{args.data_dir}`.\n")

    print("## Data\n")
    rows = []
    for n in sizes:
        r = data[n]["result"] or {}
        reused = r.get("reused")
        rows.append([f"{n:,}", f"{n // N_SUBJECTS:,}", r.get("files", "n/a"), gb(r.get("bytes")),
                     "reused" if reused else bc.fmt_s(r.get("seconds"), 1),
                     "" if reused else gb(data[n]["maxrss_bytes"])])
    print(bc.md_table(["rows", "rows per subject", "files", "Parquet (GB)", "generation (s)",
                       "generation peak RSS (GB)"], rows))

    results = {n: fits[n]["result"] or {} for n in fits}
    print("\n## Scale curve\n")
    rows = []
    for n, r in results.items():
        seconds, workers = r.get("fit_seconds"), [w for w in r.get("worker_peaks", []) if w]
        rows.append([f"{n:,}", bc.fmt_s(seconds, 1),
                     "n/a" if seconds is None else f"{seconds / (n / 1e6):.2f}",
                     gb(r.get("client_peak")), gb(max(workers) if workers else None)])
    print(bc.md_table(["rows", "fit (s)", "s per 1M rows", "client peak RSS (GB)",
                       "max worker peak RSS (GB)"], rows))

    print("\n## Fits\n")
    rows = []
    for n, r in results.items():
        rows.append([f"{n:,}", r.get("partitions", "n/a"), gb(r.get("rss_before")),
                     ", ".join(gb(w) for w in r.get("worker_peaks", [])) or "n/a",
                     gb(fits[n]["maxrss_bytes"]), r.get("evals", "n/a")])
    print(bc.md_table(["rows", "partitions", "client RSS before the fit (GB)",
                       "worker peak RSS (GB)", "largest process peak, wait4 (GB)",
                       "evaluations"], rows))
    rows = [[f"{n:,}", f"{r['objective']:.6f}", f"{r['sigma']:.5f}", numbers(r["theta"]),
             numbers(r["beta"])] for n, r in results.items() if "sigma" in r]
    if rows:
        print()
        print(bc.md_table(["rows", "REML criterion", "sigma", "theta", "beta"], rows))

    print("\n## Targets\n")
    client = [r["client_peak"] for r in results.values() if r.get("client_peak")]
    workers = [w for r in results.values() for w in r.get("worker_peaks", []) if w]
    target_seconds = results.get(TARGET_ROWS, {}).get("fit_seconds")
    rows = [[f"fit of {TARGET_ROWS:,} rows (s)", bc.fmt_s(target_seconds, 1),
             f"< {TARGET_SECONDS:.0f}", met(target_seconds, TARGET_SECONDS)],
            ["client peak RSS, largest over the sizes (GB)", gb(max(client, default=None)),
             f"< {gb(TARGET_CLIENT_BYTES)}", met(max(client, default=None), TARGET_CLIENT_BYTES)],
            ["worker peak RSS, largest over the sizes and workers (GB)",
             gb(max(workers, default=None)), f"< {gb(TARGET_WORKER_BYTES)}",
             met(max(workers, default=None), TARGET_WORKER_BYTES)]]
    dask_subset = results.get(SUBSET_ROWS, {})
    mem = (memory or {}).get("result") or {}
    compare = "sigma" in dask_subset and "sigma" in mem
    if memory is not None:
        objective = rel_diff(dask_subset["objective"], mem["objective"]) if compare else None
        rows.append([f"REML criterion, Dask against in memory, {SUBSET_ROWS:,} rows (relative)",
                     "n/a" if objective is None else f"{objective:.1e}",
                     f"< {TARGET_OBJECTIVE_REL:.0e}", met(objective, TARGET_OBJECTIVE_REL)])
    print(bc.md_table(["target", "value", "limit", "met"], rows))

    if memory is not None:
        print(f"\n## Dask against in memory: {SUBSET_ROWS:,} rows\n")
        print(f"In memory (`pd.read_parquet`, `mm.lmer`): fit {bc.fmt_s(mem.get('fit_seconds'), 1)}"
              f" s, {mem.get('evals', 'n/a')} evaluations, RSS before the fit "
              f"{gb(mem.get('rss_before'))} GB, peak RSS of the child {gb(memory['maxrss_bytes'])}"
              f" GB; Dask: fit {bc.fmt_s(dask_subset.get('fit_seconds'), 1)} s, "
              f"{dask_subset.get('evals', 'n/a')} evaluations.\n")
        rows = [[key, f"{rel_diff(dask_subset[key], mem[key]):.1e}"]
                for key in ("objective", "beta", "theta", "sigma")] if compare else []
        print(bc.md_table(["quantity", "max relative difference"], rows) if rows
              else "No comparison: a fit failed (below).")

    notes = []
    for n in sizes:
        for what, res in (("data", data[n]), ("Dask fit", fits.get(n))):
            why = res and failure(res, args.timeout)
            if why:
                notes.append(f"- **{n:,} rows, {what}**: {why}")
        r = results.get(n, {})
        if r.get("workers_replaced"):
            notes.append(f"- {n:,} rows: {r['workers_replaced']} worker(s) replaced during the "
                         "fit (its nanny restarts a worker that dies, e.g. at 95% of its "
                         "memory limit)")
        if r.get("warnings"):
            notes.append(f"- {n:,} rows, warnings of the fit: " + "; ".join(r["warnings"]))
    if memory is not None:
        why = failure(memory, args.timeout)
        if why:
            notes.append(f"- **in-memory fit**: {why}")
        if mem.get("warnings"):
            notes.append("- in-memory fit, warnings: " + "; ".join(mem["warnings"]))
    if notes:
        print("\n## Problems and warnings\n")
        print("\n".join(notes))


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS),
                    help=f"data set sizes, multiples of {N_SUBJECTS:,} (at least 2 of them)")
    ap.add_argument("--check-subset", action="store_true",
                    help=f"also fit {SUBSET_ROWS:,} rows in memory and compare")
    ap.add_argument("--data-dir", default="/tmp/mixedmodels-bench-dask",
                    help="where the Parquet data sets are written and reused")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per child process")
    ap.add_argument("--child-fit", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--child-memory", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--child-generate", nargs=2, metavar=("ROWS", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_fit:
        child_fit(args.child_fit)
        return 0
    if args.child_memory:
        child_memory(args.child_memory)
        return 0
    if args.child_generate:
        child_generate(int(args.child_generate[0]), args.child_generate[1])
        return 0
    bad = [n for n in args.rows if n < 2 * N_SUBJECTS or n % N_SUBJECTS]
    if bad:
        ap.error(f"--rows must be multiples of {N_SUBJECTS:,}, at least {2 * N_SUBJECTS:,} "
                 f"(with one row per subject its term is confounded with the residual): {bad}")

    sizes = sorted(set(args.rows) | ({SUBSET_ROWS} if args.check_subset else set()))
    directory = {n: str(Path(args.data_dir) / f"rows-{n}") for n in sizes}
    data, fits, memory = {}, {}, None
    for n in sizes:
        progress(f"data: {n:,} rows in {directory[n]}")
        data[n] = bc.run_child([__file__, "--child-generate", str(n), directory[n]],
                               timeout=args.timeout)
        if data[n]["ok"]:
            progress(f"Dask fit: {n:,} rows")
            fits[n] = bc.run_child([__file__, "--child-fit", directory[n]], timeout=args.timeout)
    if args.check_subset and data[SUBSET_ROWS]["ok"]:
        progress(f"in-memory fit: {SUBSET_ROWS:,} rows")
        memory = bc.run_child([__file__, "--child-memory", directory[SUBSET_ROWS]],
                              timeout=args.timeout)
    report(args, sizes, data, fits, memory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
