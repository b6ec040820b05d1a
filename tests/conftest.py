"""Shared test helpers: the lme4 reference fits and our fits of them.

Each reference file written by ``tests/reference/lme4_reference.R`` holds one model: ``data``
(the CSV's name), ``formula``, and per method (``"REML"``, ``"ML"``) lme4's results. There are
two sets: the shared models (tests/reference/*.json, fitted to the bundled data sets) and more
classic models (tests/reference/classic/*.json, ids "classic/<name>", fitted to the CSV files
in tests/reference/classic/data; their records list the columns R treated as factors). Other
JSON files (likelihood-ratio tables, contrasts...) have other layouts and are skipped here.

The property tests' examples (hypothesis) depend on the settings profile: "ci", loaded when the
CI environment variable is set, draws the same examples on every run and prints the blob that
reproduces a failure; "dev", loaded otherwise, draws new examples each run, so that repeated
local runs search wider. HYPOTHESIS_PROFILE=ci or HYPOTHESIS_PROFILE=dev chooses explicitly (e.g.
HYPOTHESIS_PROFILE=ci to rerun CI's examples locally). Tests set their own ``max_examples``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

# The default run has two worker processes (pyproject.toml's "-n 2"): each runs BLAS, and the
# processes its tests start, on one thread. Two BLAS threads per worker oversubscribed the two
# cores: the default run took 162 s instead of 126 s. Set before NumPy loads its BLAS, or, where
# a plugin loaded it first, through threadpoolctl.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")
    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings

import mixedmodels as mm
from mixedmodels.linalg.compiled import load_kernels

# The suite fits hundreds of models, as a long session does: with the compiled kernels. A
# fresh process's fits, on the NumPy back-ends, are checked in tests/test_import_cost.py (and
# every back-end against the blocked factor in tests/test_backends.py).
load_kernels()

REFERENCE_DIR = Path(__file__).parent / "reference"
CLASSIC_DIR = REFERENCE_DIR / "classic"
METHODS = ("REML", "ML")

# Both from hypothesis's "default" profile: the current default may be its own "ci" profile,
# which it loads by itself when it sees a CI environment variable.
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True,
                          deadline=None, print_blob=True)
settings.register_profile("dev", parent=settings.get_profile("default"), deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if "CI" in os.environ else "dev"))


def load_reference(model_id: str) -> dict:
    """The lme4 reference record of one model, e.g. ``load_reference("sleepstudy_corr")`` or
    ``load_reference("classic/mathach")``."""
    with open(REFERENCE_DIR / f"{model_id}.json", encoding="utf-8") as handle:
        return json.load(handle)


def reference_ids(classic: bool = True) -> list[str]:
    """The ids of the single-model reference files (those with a formula and REML/ML fits):
    the shared models, then (unless ``classic=False``) the classic ones."""
    ids = []
    folders = [REFERENCE_DIR] + ([CLASSIC_DIR] if classic else [])
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            with open(path, encoding="utf-8") as handle:
                record = json.load(handle)
            if isinstance(record, dict) and {"data", "formula", "REML", "ML"} <= set(record):
                ids.append(path.relative_to(REFERENCE_DIR).with_suffix("").as_posix())
    return ids


def symm_local_optimum_data() -> pd.DataFrame:
    """15 groups g of up to 5 visits (y, visit) on which gls with ``symm(visit | g)`` from
    independence stops at a local optimum, 291.240, above the optimum 273.638."""
    rng = np.random.default_rng(2)
    rows = []
    for g in range(15):
        shift = rng.normal()  # the last group's is added to every row
        for t in range(1, 6):
            if rng.random() < 0.15:
                continue
            rng.uniform(size=3)
            rows.append((f"G{g}", t))
    data = pd.DataFrame(rows, columns=["g", "visit"])
    data["y"] = (1 + 0.5 * data["visit"] + shift
                 + rng.normal(size=len(data)) * (1 + 0.3 * data["visit"])
                 + np.repeat(rng.normal(size=15), data.groupby("g").size().to_numpy()))
    return data


def dataset_for(record: dict):
    """The data a reference record was fitted to: a bundled data set ("sleepstudy.csv" ->
    sleepstudy) or, for a classic model, its CSV with R's factors read as strings."""
    if "factors" not in record:
        return mm.datasets.load(Path(record["data"]).stem.lower())
    return pd.read_csv(CLASSIC_DIR / "data" / record["data"], keep_default_na=False,
                       na_values=list(mm.datasets.CSV_MISSING_VALUES),
                       dtype={column: str for column in record["factors"]})


def fit_reference(record: dict, method: str):
    """Our fit of a reference model; warnings (singular fits) are expected and silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(record["formula"], dataset_for(record), reml=(method == "REML"))


@pytest.fixture(scope="session")
def reference_loader():
    """``load_reference`` as a fixture, for tests that cannot import conftest."""
    return load_reference


@pytest.fixture(scope="session")
def reference_fits() -> dict:
    """{(model_id, method): (whole record, lme4's results for that method, our LmmFit)},
    every model fitted once per session."""
    fits = {}
    for model_id in reference_ids():
        record = load_reference(model_id)
        for method in METHODS:
            fits[model_id, method] = (record, record[method], fit_reference(record, method))
    return fits


def _quiet_fit(formula: str, name: str, reml: bool = True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, mm.datasets.load(name), reml=reml)


@pytest.fixture(scope="session")
def quiet_fit():
    """lmer on a bundled data set, with the fit's warnings silenced."""
    return _quiet_fit


@pytest.fixture(scope="session")
def sleep():
    """The REML fit of Reaction ~ Days + (Days | Subject) to sleepstudy."""
    return _quiet_fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")


@pytest.fixture(scope="session")
def wide_sleepstudy():
    """(sleepstudy, the same data with 200 extra float columns x0..x199 that no model uses)."""
    data = mm.datasets.load("sleepstudy")
    extra = np.random.default_rng(0).normal(size=(len(data), 200))
    return data, pd.concat([data, pd.DataFrame(extra, columns=[f"x{j}" for j in range(200)])],
                           axis=1)
