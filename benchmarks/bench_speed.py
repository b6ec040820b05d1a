"""Whole REML fits side by side: mixedmodels, mixedlm, lme-python and lme4, in one run.

Each fit is whole: formula and data frame in, fitted result out, in a warm process; reading the
data is not timed. Every package reads the same CSV, label columns as strings (R: factors).

- mixedmodels: ``mm.lmer(formula, df)`` in this process (REML by default).
- mixedlm (PyPI ``mixedlm``, Rust) and lme-python (PyPI ``lme-python``, Rust, given polars
  frames): in child processes of a separate interpreter, one child per model, running a small
  generated driver. They are not dependencies of mixedmodels; install them in their own venv:

      python -m venv ~/.venvs/mm-peers
      ~/.venvs/mm-peers/bin/pip install mixedlm lme-python polars pandas

  ``--peers-python PATH`` names another interpreter; without it and without that venv the peers
  are skipped (said in the output).
- lme4: ``lmer()`` timed inside R (Rscript, when on PATH), with its REMLcrit and optimizer
  evaluations (``feval``).

Models (``--only``, comma-separated):

- small: the 10 shared reference models of tests/reference/*.json, Machines nested and with
  slopes, Oats, BodyWeight, Assay, cake (tests/reference/classic) and nlme's Oxboys with a
  quadratic growth curve per boy (tests/reference/classic/data/Oxboys.csv, written by
  Oxboys.R beside it). Per model: median of up to ``--repeats`` fits after ``--warmup``
  warm-up fits (fewer once ``--max-seconds`` of timed fits have accumulated). With
  ``--rounds N``, the whole comparison of the small models (ours and the peers model by
  model, then lme4's run of them all) is repeated N times and each package's time per model
  is the median of its N rounds: this machine's speed drifts by 20 to 40% over minutes (its
  neighbours' load), and lme4's models run minutes after ours, so one round's lme4 ratio
  moved from 9.0 to 14.1 between two runs of the same code.
- functions: sleepstudy with functions of its columns in the response, the fixed part and
  the random-effects terms (``FUNCTION_FORMULAS``: log, I(Days^2), scale, poly, factor, a
  logical), timed as the small models are, in a table of its own.
- insteval: lme4's InstEval (73,421 rows), ``y ~ service + (1 | s) + (1 | d) + (1 |
  dept:service)``.
- maximal2: simulated 64 subjects x 80 items, each subject sees each item once; f and c vary
  within subjects and within items; ``y ~ f * c + (1 + f * c | subject) + (1 + c | item)``.
- maximal3: simulated like kb07, 56 subjects x 32 items, three factors all within subject and
  within item, each subject-item pair in one of the 8 cells (Latin square); ``rt ~ spkr * prec *
  load + (1 + spkr * prec * load | subj) + (1 + spkr * prec * load | item)`` (72 parameters).
- shapes: simulated designs of other shapes (``SHAPES``), each timed as a large model: many
  small groups, few large groups, three nested levels, three crossed factors, many fixed
  effects, four correlated slopes.

The large models (all but small and functions) are timed as the best of a few fits after one warm-up fit of
sleepstudy (``--large-repeats``; defaults 2, 2 and 1), and also get: optimizer evaluations,
criteria relative to ours, the median time of one of our objective evaluations at the optimum
against one LAPACK Cholesky (``dpotrf``) of a dense SPD matrix of the same total size q + p + 1
(with one BLAS thread and with the default number), and the BLAS threads in use.

A peer whose child fails is reported as "fails". A fit is limited to ``--timeout`` seconds
(lme-python: ``--lp-timeout``) and then reported as "> T s": a peer's fit of a large model is
stopped at that limit (SIGALRM in its child), and any child, as lme4's run of a large model, is
killed once it has run its number of fits times that limit plus 60 s.

    python benchmarks/bench_speed.py [--only small,insteval,maximal2,maximal3] [--repeats 20]
        [--warmup 3] [--large-repeats N] [--timeout 600] [--lp-timeout 150] [--no-lp]
        [--peers-python PATH] [--no-peers] [--no-r] [--json PATH]

Quick check: ``python benchmarks/bench_speed.py --only small --repeats 3``. The whole run
takes 20 to 30 minutes on 2 cores, most of it lme4's and mixedlm's fits of maximal3. Cold
start: ``benchmarks/bench_cold_start.py``.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as bc  # noqa: E402

HERE = Path(__file__).resolve().parent
CLASSIC_DIR = bc.REF_DIR / "classic"
DEFAULT_PEERS_PYTHON = Path.home() / ".venvs" / "mm-peers" / "bin" / "python"
GROUPS = ("small", "functions", "insteval", "maximal2", "maximal3", "shapes")
#: the groups timed as the small models are (median of many fits), each in its own table
SMALL_GROUPS = {"small": "Small classic models",
                "functions": "Formulas with functions of columns (sleepstudy)"}
#: sleepstudy with functions of its columns in every part of the formula
FUNCTION_FORMULAS = {
    "log_response": "log(Reaction) ~ Days + (Days | Subject)",
    "quadratic": "Reaction ~ Days + I(Days^2) + (Days | Subject)",
    "log_covariate": "Reaction ~ log(Days + 1) + (1 | Subject)",
    "scaled": "Reaction ~ scale(Days) + (scale(Days) | Subject)",
    "orthogonal_poly": "Reaction ~ poly(Days, 2) + (1 | Subject)",
    "factor_of_numbers": "Reaction ~ factor(Days) + (1 | Subject)",
    "logical": "Reaction ~ Days * I(Days > 4) + (1 | Subject)",
}
LARGE_REPEATS = {"insteval": 2, "maximal2": 2, "maximal3": 1, "shapes": 2}
PEERS = ("mixedlm", "lme-python")
PACKAGES = ("mixedmodels",) + PEERS + ("lme4",)
CLASSIC_SMALL = ("machines_nested", "machines_unstructured", "oats", "bodyweight", "assay",
                 "cake")
WARM = ("Reaction ~ Days + (Days | Subject)", str(bc.DATA_DIR / "sleepstudy.csv"), ("Subject",))
CHILD_MARGIN = 60.0  # seconds a child may spend on imports, reading and warming up
SEED = 20241130


@dataclass(frozen=True)
class Model:
    id: str
    group: str
    formula: str
    csv: str
    labels: tuple[str, ...]

    @property
    def large(self) -> bool:
        return self.group not in SMALL_GROUPS


# --------------------------------------------------------------------------------------------
# models and data


def small_models() -> list[Model]:
    models = [Model(m["id"], "small", m["formula"], str(bc.DATA_DIR / m["data"]),
                    bc.LABEL_COLUMNS) for m in bc.ref_models()]
    for name in CLASSIC_SMALL:
        ref = json.loads((CLASSIC_DIR / f"{name}.json").read_text())
        models.append(Model(name, "small", ref["formula"], str(CLASSIC_DIR / "data" / ref["data"]),
                            tuple(ref["factors"])))
    models.append(Model("oxboys_quadratic", "small",
                        "height ~ age + I(age^2) + (age + I(age^2) | Subject)",
                        str(CLASSIC_DIR / "data" / "Oxboys.csv"), ("Subject", "Occasion")))
    return models


def function_models() -> list[Model]:
    return [Model(key, "functions", formula, str(bc.DATA_DIR / "sleepstudy.csv"), ("Subject",))
            for key, formula in FUNCTION_FORMULAS.items()]


def insteval_model() -> Model:
    ref = json.loads((CLASSIC_DIR / "insteval.json").read_text())
    return Model("insteval", "insteval", " ".join(ref["formula"].split()),
                 str(CLASSIC_DIR / "data" / ref["data"]), tuple(ref["factors"]))


def _random_correlation(rng, k: int):
    """A k x k correlation matrix with moderate, nonzero correlations."""
    import numpy as np

    a = rng.normal(size=(k, k + 4))
    s = a @ a.T
    d = np.sqrt(np.diag(s))
    return s / np.outer(d, d)


def _random_effects(rng, sds, n_levels: int):
    import numpy as np

    sds = np.asarray(sds, dtype=float)
    cov = _random_correlation(rng, len(sds)) * np.outer(sds, sds)
    return rng.multivariate_normal(np.zeros(len(sds)), cov, size=n_levels)


def maximal2_data(seed: int = SEED):
    """64 subjects x 80 items, every pair once. f = +-0.5 by (subject + item) parity and
    c = +-0.5 by (subject // 2 + item // 2) parity: both vary within subjects and within
    items, balanced against each other."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    subject, item = (a.ravel() for a in np.meshgrid(np.arange(64), np.arange(80), indexing="ij"))
    f = np.where((subject + item) % 2 == 0, -0.5, 0.5)
    c = np.where((subject // 2 + item // 2) % 2 == 0, -0.5, 0.5)
    x_subject = np.column_stack([np.ones_like(f), f, c, f * c])
    x_item = x_subject[:, [0, 2]]
    b_subject = _random_effects(rng, [60.0, 25.0, 20.0, 15.0], 64)
    b_item = _random_effects(rng, [40.0, 15.0], 80)
    y = (x_subject @ np.array([600.0, 30.0, 20.0, 10.0])
         + (x_subject * b_subject[subject]).sum(axis=1) + (x_item * b_item[item]).sum(axis=1)
         + rng.normal(0.0, 80.0, len(f)))
    return pd.DataFrame({"y": y, "f": f, "c": c, "subject": [f"s{i:02d}" for i in subject],
                         "item": [f"i{i:02d}" for i in item]})


def maximal3_data(seed: int = SEED):
    """56 subjects x 32 items like kb07: the pair (subject, item) is in cell (subject + item) % 8
    of the 2 x 2 x 2 design (spkr, prec, load = bits 0, 1, 2 of the cell, as +-0.5), so each
    factor varies within subjects and within items; rt in ms with kb07-like variances."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed + 1)
    subj, item = (a.ravel() for a in np.meshgrid(np.arange(56), np.arange(32), indexing="ij"))
    cell = (subj + item) % 8
    spkr, prec, load = (np.where((cell >> bit) & 1, 0.5, -0.5) for bit in range(3))
    x = np.column_stack([np.ones_like(spkr), spkr, prec, load, spkr * prec, spkr * load,
                         prec * load, spkr * prec * load])
    b_subj = _random_effects(rng, [300.0, 60.0, 80.0, 50.0, 40.0, 40.0, 30.0, 30.0], 56)
    b_item = _random_effects(rng, [350.0, 50.0, 150.0, 40.0, 40.0, 30.0, 30.0, 30.0], 32)
    beta = np.array([2180.0, 70.0, -330.0, 80.0, -20.0, 10.0, 15.0, -5.0])
    rt = (x @ beta + (x * b_subj[subj]).sum(axis=1) + (x * b_item[item]).sum(axis=1)
          + rng.normal(0.0, 670.0, len(spkr)))
    return pd.DataFrame({"rt": rt, "spkr": spkr, "prec": prec, "load": load,
                         "subj": [f"S{i:02d}" for i in subj], "item": [f"I{i:02d}" for i in item]})


#: the "shapes" group: name -> (formula, rows, label columns); data from ``shape_data``
SHAPES = {
    "many_small_groups": ("y ~ x + (1 + x | g)", 30_000, ("g",)),
    "few_large_groups": ("y ~ x + (1 + x | g)", 30_000, ("g",)),
    "nested3": ("y ~ x + (1 | school/class)", 14_400, ("school", "class")),
    "crossed3": ("y ~ x + (1 | a) + (1 | b) + (1 | c)", 30_000, ("a", "b", "c")),
    "wide_fixed": ("y ~ " + " + ".join(f"x{j}" for j in range(60)) + " + (1 | g)", 10_000,
                   ("g",)),
    "slopes4": ("y ~ x1 + x2 + x3 + (1 + x1 + x2 + x3 | g)", 9_600, ("g",)),
}


def shape_data(name: str, seed: int = SEED):
    """Simulated data of ``SHAPES[name]``: y from the formula's fixed and random effects
    (moderate sds and correlations) plus unit-variance noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed + 7 + sorted(SHAPES).index(name))
    n = SHAPES[name][1]
    x = rng.normal(size=n)
    if name in ("many_small_groups", "few_large_groups"):
        levels = 5_000 if name == "many_small_groups" else 10
        g = np.repeat(np.arange(levels), n // levels)
        b = _random_effects(rng, [1.0, 0.5], levels)
        y = 1 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=n)
        return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})
    if name == "nested3":
        school = np.repeat(np.arange(300), 48)
        klass = np.repeat(np.arange(8), 6)[np.arange(n) % 48]
        u_school, u_class = rng.normal(size=300), 0.5 * rng.normal(size=(300, 8))
        y = 2 + 0.3 * x + u_school[school] + u_class[school, klass] + rng.normal(size=n)
        return pd.DataFrame({"y": y, "x": x, "school": [f"s{i}" for i in school],
                             "class": [f"c{i}" for i in klass]})
    if name == "crossed3":
        codes = {k: rng.integers(0, m, n) for k, m in (("a", 400), ("b", 150), ("c", 30))}
        y = 1 + 0.2 * x + rng.normal(size=n)
        for (k, m), sd in zip((("a", 400), ("b", 150), ("c", 30)), (1.0, 0.7, 0.5)):
            y += sd * rng.normal(size=m)[codes[k]]
        return pd.DataFrame({"y": y, "x": x, **{k: [f"{k}{i}" for i in v]
                                                  for k, v in codes.items()}})
    if name == "wide_fixed":
        X = rng.normal(size=(n, 60))
        g = np.repeat(np.arange(500), n // 500)
        y = X @ rng.normal(scale=0.3, size=60) + rng.normal(size=500)[g] + rng.normal(size=n)
        frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(60)])
        return frame.assign(y=y, g=[f"g{i}" for i in g])
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])  # slopes4
    g = np.repeat(np.arange(800), n // 800)
    b = _random_effects(rng, [1.0, 0.5, 0.4, 0.3], 800)
    y = X @ np.array([1.0, 0.5, -0.3, 0.2]) + (X * b[g]).sum(axis=1) + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x1": X[:, 1], "x2": X[:, 2], "x3": X[:, 3],
                         "g": [f"g{i}" for i in g]})


def simulated_models(folder: Path, groups) -> list[Model]:
    out = []
    if "maximal2" in groups:
        csv = folder / "maximal2.csv"
        maximal2_data().to_csv(csv, index=False)
        out.append(Model("maximal2", "maximal2",
                         "y ~ f * c + (1 + f * c | subject) + (1 + c | item)", str(csv),
                         ("subject", "item")))
    if "maximal3" in groups:
        csv = folder / "maximal3.csv"
        maximal3_data().to_csv(csv, index=False)
        out.append(Model("maximal3", "maximal3",
                         "rt ~ spkr * prec * load + (1 + spkr * prec * load | subj) + "
                         "(1 + spkr * prec * load | item)", str(csv), ("subj", "item")))
    if "shapes" in groups:
        for name, (formula, _, labels) in SHAPES.items():
            csv = folder / f"{name}.csv"
            shape_data(name).to_csv(csv, index=False)
            out.append(Model(name, "shapes", formula, str(csv), labels))
    return out


# --------------------------------------------------------------------------------------------
# outcomes: {"status": "ok" | "timeout" | "fails", "seconds", "crit", "evals", ...}; a package
# not run has none


def rounds_text(args) -> str:
    if args.rounds <= 1:
        return ""
    return (f", in each of {args.rounds} rounds (all packages, model by model, then lme4), "
            "each package's median round per model")


def median_round(outcomes: list[dict]) -> dict:
    """One package's outcome for a model over the rounds: the round of the median time (the
    lower middle one of an even number), or the first failure."""
    failed = [o for o in outcomes if o["status"] != "ok"]
    if failed:
        return failed[0]
    ordered = sorted(outcomes, key=lambda o: o["seconds"])
    return dict(ordered[(len(ordered) - 1) // 2], rounds=[o["seconds"] for o in outcomes])


def ok(seconds: float, crit: float, evals, **more) -> dict:
    return {"status": "ok", "seconds": seconds, "crit": float(crit),
            "evals": None if evals is None else int(evals), **more}


def not_ok(status: str, note: str = "", limit: float | None = None) -> dict:
    return {"status": status, "seconds": None, "crit": None, "evals": None, "limit": limit,
            "note": note}


def fmt_time(o: dict | None, unit: str) -> str:
    if o is None:
        return "n/a"
    if o["status"] == "timeout":
        return f"> {o['limit']:.0f} s"
    if o["status"] == "fails":
        return "fails"
    return bc.fmt_ms(o["seconds"]) if unit == "ms" else bc.fmt_s(o["seconds"])


def fmt_vs(o: dict | None, ours: dict) -> str:
    """The cell for ``o``'s time / ours."""
    if o is None or ours["seconds"] is None:
        return "n/a"
    if o["status"] == "timeout":
        return f"> {o['limit'] / ours['seconds']:.1f}"
    if o["status"] == "fails":
        return "fails"
    return bc.fmt_ratio(o["seconds"], ours["seconds"])


def crit_diff(o: dict | None, ours: dict, relative: bool = False) -> str:
    if o is None or o["crit"] is None or ours["crit"] is None:
        return "n/a"
    d = o["crit"] - ours["crit"]
    return f"{d / abs(ours['crit']):+.1e}" if relative else f"{d:+.1e}"


def fmt_evals(o: dict | None) -> str:
    return "n/a" if o is None or o["evals"] is None else str(o["evals"])


# --------------------------------------------------------------------------------------------
# mixedmodels, in this process


def run_ours(model: Model, args) -> tuple[dict, object]:
    """Our outcome and the last fit (None when it failed)."""
    import mixedmodels as mm
    bc.load_our_kernels()

    data = bc.read_pandas(model.csv, model.labels)

    def fit():
        return mm.lmer(model.formula, data)

    try:
        if model.large:
            bc.best_time(lambda: mm.lmer(WARM[0], bc.read_pandas(WARM[1], WARM[2])), 1)
            seconds, result = bc.best_time(fit, large_repeats(model, args), args.timeout)
        else:
            result = bc.best_time(fit, 1)[1]
            seconds, _ = bc.median_time(fit, args.warmup, args.repeats, args.max_seconds)
    except Exception as exc:  # reported, not hidden
        return not_ok("fails", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"), None
    return ok(seconds, result.objective, result.optsummary.evaluations,
              gradient_evals=getattr(result.optsummary, "gradient_evaluations", None)), result


def large_repeats(model: Model, args) -> int:
    return args.large_repeats or LARGE_REPEATS[model.group]


def blas_threads() -> dict:
    """BLAS libraries loaded in this process and their default number of threads."""
    import scipy.linalg  # noqa: F401 -- loads SciPy's BLAS, so that it is listed too
    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i["user_api"] == "blas"]
    names = [" ".join(filter(None, (i["internal_api"], i.get("version")))) for i in libs]
    return {"libraries": [f"{name} ({i['num_threads']} threads)" for name, i in zip(names, libs)],
            "default": max((i["num_threads"] for i in libs), default=1)}


def _cholesky_seconds(n: int, repeats: int) -> float:
    """Median seconds of one dpotrf of an n x n SPD matrix (the copy it overwrites not timed)."""
    import numpy as np
    from scipy.linalg import lapack

    g = np.random.default_rng(0).normal(size=(n, n))
    a = np.asfortranarray(g @ g.T / n + np.eye(n))
    times = []
    for _ in range(repeats + 1):  # the first call warms up
        b = a.copy(order="F")
        t0 = time.perf_counter()
        _, info = lapack.dpotrf(b, lower=1, overwrite_a=1, clean=0)
        times.append(time.perf_counter() - t0)
        assert info == 0
    return statistics.median(times[1:])


def evaluation_floor(fit, repeats: int) -> dict:
    """One objective evaluation of ours at the optimum against one dense Cholesky of the same
    total size q + p + 1, with one BLAS thread and with the default number."""
    from threadpoolctl import threadpool_limits

    from mixedmodels.threads import SERIAL_BELOW

    model = fit.model
    q = sum(b.q for b in model.structure.blocks)
    p = model.design.X.shape[1]
    n = q + p + 1
    theta = fit.theta
    seconds, _ = bc.median_time(lambda: model._criterion(theta), 1, repeats, 20.0)
    with threadpool_limits(limits=1, user_api="blas"):
        one = _cholesky_seconds(n, repeats)
    default = blas_threads()["default"]
    many = _cholesky_seconds(n, repeats)
    largest = getattr(model.system, "largest_dense_block", None)
    ours = 1 if largest is not None and largest < SERIAL_BELOW else default
    return {"q": q, "p": p, "size": n, "eval_seconds": seconds, "dpotrf_1": one,
            "dpotrf_default": many, "default_threads": default, "our_threads": ours,
            "largest_dense_block": largest}


# --------------------------------------------------------------------------------------------
# mixedlm and lme-python, in child processes of the peers' interpreter

PEER_DRIVER = r'''
"""Generated by bench_speed.py: whole REML fits of one model by one peer, one JSON line out."""
import json
import math
import signal
import sys

sys.path.insert(0, {bench!r})
import _common as bc

peer, job = sys.argv[1], json.loads(sys.argv[2])
if peer == "mixedlm":
    import mixedlm

    read = bc.read_pandas

    def fit(formula, data):
        return mixedlm.lmer(formula, data, REML=True)

    def figures(result):
        return result.REMLcrit(), result.function_evals, result.converged
else:
    import lme_python

    read = bc.read_polars

    def fit(formula, data):
        return lme_python.lmer(formula, data, reml=True)

    def figures(result):
        return result.reml_criterion, result.iterations, result.converged

data = read(job["csv"], job["labels"])
formula = job["formula"]
if job["large"]:
    warm_formula, warm_csv, warm_labels = job["warm"]
    bc.best_time(lambda: fit(warm_formula, read(warm_csv, warm_labels)), 1)

    def limited_fit():
        signal.alarm(math.ceil(job["limit"]))  # SIGALRM's default action ends this process
        result = fit(formula, data)
        signal.alarm(0)
        return result

    seconds, result = bc.best_time(limited_fit, job["repeats"], job["limit"])
else:
    result = bc.best_time(lambda: fit(formula, data), 1)[1]
    seconds, _ = bc.median_time(lambda: fit(formula, data), job["warmup"], job["repeats"],
                                job["max_seconds"])
crit, evals, converged = (v() if callable(v) else v for v in figures(result))
print(json.dumps({{"seconds": seconds, "crit": float(crit), "evals": evals,
                  "converged": bool(converged)}}))
'''

VERSIONS = r'''
import json
from importlib.metadata import PackageNotFoundError, version
out = {}
for name in ("mixedlm", "lme-python", "polars", "pandas"):
    try:
        out[name] = version(name)
    except PackageNotFoundError:
        out[name] = None
print(json.dumps(out))
'''


class Peers:
    """The peers' interpreter, its package versions and the generated driver."""

    def __init__(self, python: str, folder: Path, args):
        self.python, self.args = python, args
        self.driver = folder / "peer_driver.py"
        self.driver.write_text(PEER_DRIVER.format(bench=str(HERE)))
        probe = folder / "peer_versions.py"
        probe.write_text(VERSIONS)
        child = bc.run_child([str(probe)], timeout=120, python=python)
        self.versions = child["result"] or {}

    def available(self, peer: str) -> bool:
        return bool(self.versions.get(peer))

    def limit(self, peer: str) -> float:
        return self.args.lp_timeout if peer == "lme-python" else self.args.timeout

    def run(self, peer: str, model: Model) -> dict:
        args = self.args
        limit = self.limit(peer)
        repeats = large_repeats(model, args) if model.large else args.repeats
        fits = repeats if model.large else 1 + args.warmup + repeats
        job = {"csv": model.csv, "labels": list(model.labels), "formula": model.formula,
               "large": model.large, "warm": list(WARM), "repeats": repeats, "limit": limit,
               "warmup": args.warmup, "max_seconds": args.max_seconds}
        child = bc.run_child([str(self.driver), peer, json.dumps(job)],
                             timeout=limit * fits + CHILD_MARGIN,
                             mem_limit_bytes=int(args.mem_gb * 2**30), python=self.python)
        if child["ok"]:
            r = child["result"]
            out = ok(r["seconds"], r["crit"], r["evals"], converged=r["converged"])
            if not r["converged"]:
                out["note"] = "reported no convergence"
            return out
        if child["returncode"] == -signal.SIGALRM:
            return not_ok("timeout", f"a fit stopped after {limit:.0f} s", limit)
        if child["timed_out"]:
            return not_ok("timeout", f"killed after {child['wall']:.0f} s", limit)
        last = (child["stderr"].strip().splitlines() or ["?"])[-1]
        return not_ok("fails", f"exit {child['returncode']}: {last[:200]}")


# --------------------------------------------------------------------------------------------
# lme4

R_BEST = """
d <- read_data({csv}, {labels})
w <- read_data({warm_csv}, {warm_labels})
invisible(suppressWarnings(suppressMessages(lmer({warm_formula}, data = w))))
best <- Inf; total <- 0
for (i in seq_len({repeats})) {{
  t0 <- proc.time()[["elapsed"]]
  m <- suppressWarnings(suppressMessages(lmer({formula}, data = d, REML = TRUE)))
  dt <- proc.time()[["elapsed"]] - t0
  best <- min(best, dt); total <- total + dt
  if (total > {limit}) break
}}
emit("fit", "seconds", best)
emit("fit", "crit", REMLcrit(m))
emit("fit", "evals", m@optinfo$feval)
"""


def lme4_small(models: list[Model], args) -> dict[str, dict]:
    jobs = [(m.id, m.csv, m.formula, m.labels) for m in models]
    try:
        rows = bc.run_r(bc.r_median_fits_code(jobs, args.warmup, args.repeats, args.max_seconds),
                        timeout=max(1800.0, args.timeout))
    except Exception as exc:
        note = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else repr(exc)
        return {m.id: not_ok("fails", note) for m in models}
    return {m.id: ok(r["seconds"], r["crit"], r["evals"]) if (r := rows.get(m.id))
            else not_ok("fails", "no result from R") for m in models}


def lme4_large(model: Model, args) -> dict:
    repeats = large_repeats(model, args)
    code = R_BEST.format(csv=bc.r_string(model.csv),
                         labels=bc.r_strings(model.labels),
                         warm_csv=bc.r_string(WARM[1]), warm_formula=WARM[0],
                         warm_labels=bc.r_strings(WARM[2]),
                         formula=model.formula, repeats=repeats, limit=args.timeout)
    try:
        r = bc.run_r(code, timeout=args.timeout * repeats + CHILD_MARGIN)["fit"]
    except subprocess.TimeoutExpired:
        return not_ok("timeout", "Rscript killed", args.timeout)
    except Exception as exc:
        return not_ok("fails", str(exc).strip().splitlines()[-1][:200])
    return ok(r["seconds"], r["crit"], r["evals"])


# --------------------------------------------------------------------------------------------
# reports


def report_small(models: list[Model], results: dict, title: str) -> dict:
    print(f"## {title}: whole-fit median time (ms)\n")
    headers = ["model", "mixedmodels", "mixedlm", "lme-python", "lme4", "mixedlm / mm",
               "lme-python / mm", "lme4 / mm"]
    rows, summary = [], {}
    for m in models:
        r = results[m.id]
        ours = r["mixedmodels"]
        rows.append([m.id] + [fmt_time(r.get(p), "ms") for p in PACKAGES]
                    + [fmt_vs(r.get(p), ours) for p in PACKAGES[1:]])
    med_row = [f"**median of {len(models)}**"]
    for p in PACKAGES:
        med = bc.median_or_none([results[m.id].get(p, {}).get("seconds") for m in models])
        med_row.append(bc.fmt_ms(med))
    for p in PACKAGES[1:]:
        med = bc.median_or_none([bc.ratio(results[m.id].get(p, {}).get("seconds"),
                                          results[m.id]["mixedmodels"]["seconds"])
                                 for m in models])
        summary[f"median {p} / mixedmodels"] = med
        med_row.append("n/a" if med is None else f"{med:.2f}")
    rows.append(med_row)
    print(bc.md_table(headers, rows))
    print("\nRatios > 1: mixedmodels is faster. The median row's ratios are medians of the "
          "per-model ratios (over the models where both finished).")
    if any("mixedlm" in results[m.id] for m in models):
        faster = [m.id for m in models
                  if (t := results[m.id]["mixedlm"]["seconds"]) is not None
                  and results[m.id]["mixedmodels"]["seconds"] is not None
                  and results[m.id]["mixedmodels"]["seconds"] < t]
        summary["faster than mixedlm"] = faster
        print(f"\nFaster than mixedlm on {len(faster)} of {len(models)}: "
              f"{', '.join(faster) or 'none'}.")
    if summary.get("median lme4 / mixedmodels") is not None:
        print(f"\nMedian lme4 / mixedmodels: {summary['median lme4 / mixedmodels']:.2f}.")

    print(f"\n## {title}: REML criterion and evaluations\n")
    headers = ["model", "mixedmodels crit", "mixedlm - mm", "lme-python - mm", "lme4 - mm",
               "mm evals", "mixedlm evals", "lme-python iters", "lme4 feval"]
    rows = []
    for m in models:
        r = results[m.id]
        ours = r["mixedmodels"]
        rows.append([m.id, "n/a" if ours["crit"] is None else f"{ours['crit']:.6f}"]
                    + [crit_diff(r.get(p), ours) for p in PACKAGES[1:]]
                    + [fmt_evals(r.get(p)) for p in PACKAGES])
    print(bc.md_table(headers, rows))
    print("\nA positive difference: that package stopped at a higher (worse) criterion than "
          "ours.\n")
    return summary


def report_large(model: Model, results: dict, n: int) -> None:
    r = results[model.id]
    ours = r["mixedmodels"]
    print(f"## {model.id}: `{model.formula}`, {n:,} rows\n")
    headers = ["package", "fit (s)", "time / mm", "REML criterion", "(crit - mm) / |mm|",
               "evaluations"]
    rows = []
    for p in PACKAGES:
        o = r.get(p)
        if o is None:
            continue
        evals = fmt_evals(o)
        if p == "mixedmodels" and o.get("gradient_evals") is not None:
            evals += f" (+ {o['gradient_evals']} gradients)"
        if p == "lme-python" and o["evals"] is not None:
            evals += " iterations"
        rows.append([p, fmt_time(o, "s"), "1" if p == "mixedmodels" else fmt_vs(o, ours),
                     "n/a" if o["crit"] is None else f"{o['crit']:.6f}",
                     "" if p == "mixedmodels" else crit_diff(o, ours, relative=True), evals])
    print(bc.md_table(headers, rows))
    print()


def report_floor(models: list[Model], floors: dict, blas: dict) -> None:
    if not floors:
        return
    print("## One objective evaluation against one dense Cholesky of the same size\n")
    headers = ["model", "q + p + 1", "our evaluation (ms)", "our BLAS threads",
               "dpotrf 1 thread (ms)", f"dpotrf {blas['default']} threads (ms)",
               "eval / dpotrf 1", f"eval / dpotrf {blas['default']}"]
    rows = []
    for m in models:
        f = floors.get(m.id)
        if f is None:
            continue
        rows.append([m.id, f"{f['q']} + {f['p']} + 1 = {f['size']}", bc.fmt_ms(f["eval_seconds"]),
                     f["our_threads"], bc.fmt_ms(f["dpotrf_1"]), bc.fmt_ms(f["dpotrf_default"]),
                     bc.fmt_ratio(f["eval_seconds"], f["dpotrf_1"]),
                     bc.fmt_ratio(f["eval_seconds"], f["dpotrf_default"])])
    print(bc.md_table(headers, rows))
    print("\nOur evaluation: median time of the REML criterion at the optimum theta (model "
          "._criterion). dpotrf: median time of scipy.linalg.lapack.dpotrf on a random dense "
          "SPD matrix of the size of the whole system [Z X y] (q random effects, p fixed "
          "effects); ours works on its sparse blocks, so a ratio below 1 is possible. BLAS: "
          + "; ".join(blas["libraries"]) + f"; default {blas['default']} threads.\n")


def report_notes(models: list[Model], results: dict) -> None:
    notes = [f"- {m.id}, {p}: {o['status']}" + (f" ({o['note']})" if o.get("note") else "")
             for m in models for p, o in results[m.id].items()
             if o["status"] != "ok" or o.get("note")]
    if notes:
        print("## Notes\n\n" + "\n".join(notes) + "\n")


# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(GROUPS),
                    help=f"comma-separated subset of {', '.join(GROUPS)}")
    ap.add_argument("--repeats", type=int, default=20, help="timed fits per small model")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up fits per small model")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the small models' comparison; medians over the rounds")
    ap.add_argument("--max-seconds", type=float, default=8.0,
                    help="stop repeating a small model after this much timed work (min 5 fits)")
    ap.add_argument("--large-repeats", type=int,
                    help="best of this many fits per large model (default: "
                    + ", ".join(f"{k} {v}" for k, v in LARGE_REPEATS.items()) + ")")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="seconds allowed per fit of mixedlm and lme4")
    ap.add_argument("--lp-timeout", type=float, default=150.0,
                    help="seconds allowed per fit of lme-python")
    ap.add_argument("--mem-gb", type=float, default=12.0, help="address-space cap of peer children")
    ap.add_argument("--peers-python", help=f"interpreter with mixedlm and lme-python installed "
                    f"(default: {DEFAULT_PEERS_PYTHON} if it exists)")
    ap.add_argument("--no-peers", action="store_true", help="skip mixedlm and lme-python")
    ap.add_argument("--no-lp", action="store_true", help="skip lme-python")
    ap.add_argument("--no-r", action="store_true", help="skip lme4")
    ap.add_argument("--floor-repeats", type=int, default=15,
                    help="timed calls of one evaluation and of dpotrf per large model")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    if unknown := set(groups) - set(GROUPS):
        ap.error(f"unknown --only group(s): {', '.join(sorted(unknown))}")

    tmp = tempfile.TemporaryDirectory()
    folder = Path(tmp.name)
    models = ((small_models() if "small" in groups else [])
              + (function_models() if "functions" in groups else [])
              + ([insteval_model()] if "insteval" in groups else [])
              + simulated_models(folder, groups))

    notes = []
    peers = None
    python = args.peers_python or (str(DEFAULT_PEERS_PYTHON) if DEFAULT_PEERS_PYTHON.exists()
                                   else None)
    if args.no_peers:
        notes.append("mixedlm and lme-python not run (--no-peers).")
    elif python is None:
        notes.append(f"mixedlm and lme-python not run: no --peers-python and no "
                     f"{DEFAULT_PEERS_PYTHON} (see this script's docstring to create it).")
    else:
        peers = Peers(python, folder, args)
        for p in PEERS:
            if not peers.available(p):
                notes.append(f"{p} not run: not installed in {python}.")
    run_peers = [p for p in PEERS if peers is not None and peers.available(p)
                 and not (p == "lme-python" and args.no_lp)]
    if args.no_lp:
        notes.append("lme-python not run (--no-lp).")
    run_r = not args.no_r and bc.have_rscript()
    if not run_r:
        notes.append("lme4 not run (--no-r or Rscript not on PATH).")

    print("# Whole REML fits side by side\n")
    extra = [f"{p} {peers.versions[p]}" for p in PEERS if peers and peers.available(p)]
    print(bc.environment_line(extra) + "\n")
    blas = blas_threads()
    print(f"BLAS: {'; '.join(blas['libraries'])}. Small models: median of up to {args.repeats} "
          f"fits after {args.warmup} warm-up fits (fewer past {args.max_seconds:g} s of timed "
          f"fits){rounds_text(args)}; large models: best of a few fits after a warm-up fit "
          f"of sleepstudy. Limits per fit: {args.timeout:.0f} s (mixedlm, lme4), "
          f"{args.lp_timeout:.0f} s (lme-python).\n")
    for n in notes:
        print(f"- {n}")
    if notes:
        print()

    results: dict[str, dict] = {}
    nobs: dict[str, int] = {}
    floors: dict[str, dict] = {}
    small = [m for m in models if not m.large]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rounds = []
        for r in range(max(1, args.rounds) if small else 0):
            one: dict[str, dict] = {m.id: {} for m in small}
            for m in small:
                print(f"... round {r + 1}: {m.id}", file=sys.stderr, flush=True)
                one[m.id]["mixedmodels"] = run_ours(m, args)[0]
                for p in run_peers:
                    one[m.id][p] = peers.run(p, m)
            if run_r:
                for key, o in lme4_small(small, args).items():
                    one[key]["lme4"] = o
            rounds.append(one)
        for m in small:
            nobs[m.id] = len(bc.read_pandas(m.csv, m.labels))
            results[m.id] = {package: median_round([one[m.id][package] for one in rounds])
                             for package in rounds[0][m.id]}
        for m in models:
            if not m.large:
                continue
            print(f"... {m.id}", file=sys.stderr, flush=True)
            nobs[m.id] = len(bc.read_pandas(m.csv, m.labels))
            results[m.id] = {}
            results[m.id]["mixedmodels"], fit = run_ours(m, args)
            if fit is not None:
                floors[m.id] = evaluation_floor(fit, args.floor_repeats)
            for p in run_peers:
                results[m.id][p] = peers.run(p, m)
            if run_r:
                results[m.id]["lme4"] = lme4_large(m, args)

    summary = {}
    for group, title in SMALL_GROUPS.items():
        if any(m.group == group for m in small):
            summary[group] = report_small([m for m in small if m.group == group], results,
                                          title)
    large = [m for m in models if m.large]
    for m in large:
        report_large(m, results, nobs[m.id])
    report_floor(large, floors, blas)
    report_notes(models, results)

    if args.json:
        out = {"environment": bc.environment_line(extra), "blas": blas,
               "options": vars(args), "summary": summary, "floor": floors,
               "models": {m.id: {"group": m.group, "formula": m.formula, "nobs": nobs[m.id],
                                 "results": results[m.id]} for m in models}}
        Path(args.json).write_text(json.dumps(out, indent=1))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
