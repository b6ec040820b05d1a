"""Cold start: what importing mixedmodels adds, and the README's first command after install.

(a) Fresh processes of ``python -c "import mixedmodels"`` (this tree's ``src``) and of ``python -c
    "import numpy, pandas, scipy.sparse, scipy.linalg"``, alternated, ``--runs`` pairs: the
    median of the pairs' differences is what mixedmodels itself costs. Each process is timed
    whole (start, import, exit: Python's exit frees every module, and its last collector pass
    goes over every object) and prints the time of its import statement alone. Bytecode is
    cached as for a user (one unmeasured run of each first; PYTHONPYCACHEPREFIX points at a
    temporary folder, so nothing is written into the tree and PYTHONDONTWRITEBYTECODE, if set,
    does not force recompiling).
(b) A fresh venv (``python -m venv``), ``pip install`` of this repository (a copy of its files
    without .git), then the README's first command ``mixedmodels fit "Reaction ~ Days + (Days |
    Subject)" --data sleepstudy`` timed on its first run right after the install and on a
    second run (the first also writes bytecode and compiled-kernel caches). The venv and the
    copy are made in a temporary folder and removed.

    python benchmarks/bench_cold_start.py [--runs 7] [--no-venv] [--json PATH]

Step (b) downloads mixedmodels' dependencies through pip (a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as bc  # noqa: E402

BASE_IMPORT = "import numpy, pandas, scipy.sparse, scipy.linalg"
README_COMMAND = ["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy"]


def user_env(**more: str) -> dict[str, str]:
    """This environment as a user's shell would have it: bytecode written, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env.update(more)
    return env


def wall(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds of one run of ``cmd`` and what it printed; raises CalledProcessError (with its
    stderr) on failure."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, done.stdout


def import_cost(runs: int) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = user_env(PYTHONPATH=str(bc.REPO / "src"), PYTHONPYCACHEPREFIX=cache)
        timed = "import time; start = time.perf_counter(); {}; print(time.perf_counter() - start)"
        commands = {key: [sys.executable, "-c", timed.format(statement)]
                    for key, statement in (("mixedmodels", "import mixedmodels"),
                                           ("base", BASE_IMPORT))}
        for cmd in commands.values():
            wall(cmd, env)
        whole: dict[str, list[float]] = {k: [] for k in commands}
        statement: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(runs):
            for key, cmd in commands.items():
                seconds, printed = wall(cmd, env)
                whole[key].append(seconds)
                statement[key].append(float(printed))

    def summary(times: dict[str, list[float]]) -> dict:
        pairs = [a - b for a, b in zip(times["mixedmodels"], times["base"])]
        return {"mixedmodels": statistics.median(times["mixedmodels"]),
                "base": statistics.median(times["base"]),
                "difference": statistics.median(pairs)}

    return {"runs": runs, "process": summary(whole), "import statement": summary(statement)}


def fresh_install() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        # pip builds a local project in place: a copy keeps build/ out of this tree (and stale
        # files in an old build/ out of the install)
        source = Path(folder) / "source"
        shutil.copytree(bc.REPO, source, ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", "__pycache__", ".*_cache"))
        venv = Path(folder) / "venv"
        env = user_env()
        out = {"venv": wall([sys.executable, "-m", "venv", str(venv)], env)[0]}
        try:
            out["pip install"] = wall(
                [str(venv / "bin" / "pip"), "install", "-q", str(source)], env)[0]
            cli = [str(venv / "bin" / "mixedmodels"), *README_COMMAND]
            out["first run"] = wall(cli, env)[0]
            out["second run"] = wall(cli, env)[0]
        except subprocess.CalledProcessError as exc:
            out["error"] = f"{' '.join(exc.cmd[:3])} failed: {exc.stderr.strip()[-500:]}"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="fresh processes per import command")
    ap.add_argument("--no-venv", action="store_true", help="skip (b), the fresh venv")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    print("# Cold start\n")
    print(bc.environment_line() + "\n")
    imports = import_cost(args.runs)
    print(f"## (a) Import in a fresh process (medians of {args.runs} alternated pairs)\n")
    process, alone = imports["process"], imports["import statement"]
    print(bc.md_table(["command", "whole process (s)", "import statement (s)"], [
        [f"python -c \"{BASE_IMPORT}\"", bc.fmt_s(process["base"], 3),
         bc.fmt_s(alone["base"], 3)],
        ["python -c \"import mixedmodels\"", bc.fmt_s(process["mixedmodels"], 3),
         bc.fmt_s(alone["mixedmodels"], 3)],
        ["**mixedmodels' own cost (median difference)**", bc.fmt_s(process["difference"], 3),
         bc.fmt_s(alone["difference"], 3)]]))
    results = {"import": imports}
    if not args.no_venv:
        install = fresh_install()
        results["fresh venv"] = install
        print(f"\n## (b) Fresh venv: `pip install` of a copy of {bc.REPO}, then "
              f"`mixedmodels {' '.join(README_COMMAND[:1])} \"{README_COMMAND[1]}\" "
              f"{' '.join(README_COMMAND[2:])}`\n")
        print(bc.md_table(["step", "seconds"],
                          [[k, bc.fmt_s(v)] for k, v in install.items() if k != "error"]))
        if "error" in install:
            print(f"\n**Failed**: {install['error']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
