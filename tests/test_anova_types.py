"""Type I, II and III ANOVA tables against lmerTest (tests/reference/anova_types.json, made by
anova_types.R), with Satterthwaite and Kenward-Roger denominator degrees of freedom."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REFERENCE = json.loads((Path(__file__).parent / "reference" / "anova_types.json").read_text())
CASES = [(case, key) for case in REFERENCE for key in case["tables"]]
DDF = {"Satterthwaite": "satterthwaite", "Kenward-Roger": "kenward-roger"}


@pytest.mark.parametrize("case, key", CASES, ids=[f"{c['id']}-{k}" for c, k in CASES])
def test_matches_lmertest(case, key, reference_fits):
    kind, ddf = key.split("_")
    table = reference_fits[case["id"], "REML"][2].anova(DDF[ddf], type=int(kind[-1]))
    reference = case["tables"][key]
    assert list(table.index) == [row["term"] for row in reference]
    for row in reference:
        ours = table.loc[row["term"]]
        assert ours["num_df"] == row["numdf"]
        assert ours["F"] == pytest.approx(row["F"], rel=2e-4)
        assert ours["den_df"] == pytest.approx(row["dendf"], rel=1e-3)
        assert ours["p"] == pytest.approx(row["p"], rel=2e-3, abs=1e-10)
        assert ours["sum_sq"] == pytest.approx(row["sumsq"], rel=2e-4)
        assert ours["mean_sq"] == pytest.approx(row["meansq"], rel=2e-4)


def test_type_names_and_bad_type(reference_fits):
    fit = reference_fits["orthodont", "REML"][2]
    np.testing.assert_array_equal(fit.anova(type="II").to_numpy(), fit.anova(type=2).to_numpy())
    with pytest.raises(ValueError, match="type"):
        fit.anova(type=4)
