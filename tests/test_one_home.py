"""One home for each assumption, checked on the source text of the package.

lme4's layout of theta (the column-major lower triangle, the sd_/cor_ names, the boundary rule)
is written in covariance.structures only; the ML/REML criterion in core.criterion only; and
the mixed-model equations are solved with the blocked factor only.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mixedmodels"
SOURCES = {path.relative_to(PACKAGE).as_posix(): path.read_text(encoding="utf-8")
           for path in PACKAGE.rglob("*.py")}


def _code(text: str) -> str:
    """The source without comments and docstrings (what runs)."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0] = ast.Pass()
    return ast.unparse(tree)


def _files_matching(pattern: str) -> list[str]:
    return sorted(name for name, text in SOURCES.items() if re.search(pattern, _code(text)))


def test_the_ml_and_reml_criterion_is_written_once():
    """log(2 pi ...) appears in one function: core.criterion.criterion."""
    assert _files_matching(r"2(\.0)? \* (np|math)\.pi") == ["core/criterion.py"]
    tree = ast.parse(SOURCES["core/criterion.py"])
    functions = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                 and re.search(r"\.pi\b", ast.unparse(node))]
    assert functions == ["criterion"]


@pytest.mark.slow  # 3 s: the default run's budget
def test_no_second_factorization_of_the_mixed_model_equations():
    assert _files_matching(r"\bsplu\b") == []
    assert _files_matching(r"\bspsolve\b|\bfactorized\b") == []


THETA_LAYOUT = {
    "the lower triangle": r"tril_indices",
    "its column-major order": r"lexsort",
    "sd_ names": r"""f["']sd_\{|["']sd_["']""",
    "cor_ names": r"""f["']cor_\{|["']cor_["']""",
    "the boundary rule": r"SINGULAR_TOLERANCE\s*=|lower(_bounds\(\))?\s*==\s*0\b",
}


#: the residual structures' parameters follow nlme's layouts (a correlation matrix's lower
#: triangle by rows, groups ordered by time), not lme4's theta
RESIDUAL_SIDE = ("covariance/correlation.py", "covariance/residual_model.py")


@pytest.mark.parametrize("what", THETA_LAYOUT)
def test_theta_layout_written_only_in_covariance_structures(what):
    where = sorted(name for name, text in SOURCES.items()
                   if re.search(THETA_LAYOUT[what], text) and name not in RESIDUAL_SIDE)
    assert where == ["covariance/structures.py"], f"{what} is written in {where}"
