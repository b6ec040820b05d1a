"""lme4's layout of theta is written down in one module: covariance.structures.

The column-major lower triangle, the sd_/cor_ names and the boundary (singular) rule are read
from there by every other module; these tests search the source text for a second copy.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mixedmodels"
HOME = PACKAGE / "covariance" / "structures.py"

PATTERNS = {
    "the lower triangle": r"tril_indices",
    "its column-major order": r"lexsort",
    "sd_ names": r"""f["']sd_\{|["']sd_["']""",
    "cor_ names": r"""f["']cor_\{|["']cor_["']""",
    "the boundary rule": r"SINGULAR_TOLERANCE\s*=|lower(_bounds\(\))?\s*==\s*0\b",
}


def _sources():
    return {path: path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("what", PATTERNS)
def test_written_only_in_covariance_structures(what):
    pattern = re.compile(PATTERNS[what])
    where = sorted(str(path.relative_to(PACKAGE)) for path, text in _sources().items()
                   if pattern.search(text))
    assert where == ["covariance/structures.py"], f"{what} is written in {where}"
