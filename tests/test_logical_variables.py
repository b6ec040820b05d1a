"""Logical variables are factors of levels FALSE and TRUE, as R's model matrix codes them:
against lme4 and lmerTest (tests/reference/logical_variables.json, made by
logical_variables.R)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

REFERENCE = json.loads((Path(__file__).parent / "reference" / "logical_variables.json")
                       .read_text())


def _sleep(missing: str = "boolean") -> pd.DataFrame:
    """sleepstudy with the logical columns of logical_variables.R; ``gap`` has missing values,
    stored as pandas' nullable ``boolean`` or as Python objects (bools and None)."""
    data = mm.datasets.load("sleepstudy").copy()
    data["even"] = data["Days"] % 2 == 0
    data["late"] = data["Days"] >= 5
    data["slow"] = data["Reaction"] > 300
    gap = pd.array(data["Days"] % 3 == 0, dtype="boolean")
    gap[data["Days"].to_numpy() == 3] = pd.NA
    data["gap"] = gap if missing == "boolean" else pd.Series(
        [None if v is pd.NA else bool(v) for v in gap], dtype=object, index=data.index)
    return data


def _new() -> pd.DataFrame:
    new = pd.DataFrame({"Days": [0.0, 3.0, 5.0, 8.0], "Subject": ["308", "309", "999", "372"]})
    new["even"] = new["Days"] % 2 == 0
    new["late"] = new["Days"] >= 5
    new["gap"] = new["Days"] % 3 == 0
    return new


def _fit(formula: str, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, data)


@pytest.mark.parametrize("record", REFERENCE, ids=[r["formula"] for r in REFERENCE])
def test_matches_lme4(record):
    fit = _fit(record["formula"], _sleep())
    assert fit.objective == pytest.approx(record["criterion"], rel=1e-8)
    assert fit.nobs == record["nobs"]
    assert list(fit.fixef.index) == list(record["fixef"])
    se = np.array(list(record["se"].values()))
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(record["fixef"].values()),
                               rtol=0, atol=1e-4 * se.min())
    np.testing.assert_allclose(fit.stderr.to_numpy(), se, rtol=1e-4)
    columns = record["ranef_columns"]  # a single name is a string in the JSON
    assert list(fit.ranef["Subject"].columns) == ([columns] if isinstance(columns, str)
                                                  else columns)
    for group, levels in record["ranef_levels"].items():
        assert list(fit.ranef[group].index) == levels
    table = fit.anova()
    assert list(table.index) == [row["term"] for row in record["anova"]]
    for row in record["anova"]:
        assert table.loc[row["term"], "F"] == pytest.approx(row["F"], rel=1e-4)
        assert table.loc[row["term"], "den_df"] == pytest.approx(row["dendf"], rel=1e-3)
    population = fit.predict(_new(), include_random=False)
    np.testing.assert_allclose(population, record["predict_population"], rtol=1e-6)
    conditional = fit.predict(_new(), new_levels="population")
    np.testing.assert_allclose(conditional, record["predict"], rtol=1e-5)


def test_missing_values_as_python_objects_are_the_same_logical_variable():
    record = next(r for r in REFERENCE if r["formula"].startswith("Reaction ~ gap"))
    fit = _fit(record["formula"], _sleep(missing="object"))
    assert list(fit.fixef.index) == list(record["fixef"])
    assert fit.nobs == record["nobs"]
    assert fit.objective == pytest.approx(record["criterion"], rel=1e-8)


def test_a_logical_keeps_both_levels_when_the_rows_kept_have_one():
    """R makes a logical factor(b, levels = c(FALSE, TRUE)) whatever its values: with every
    'even' row dropped, evenTRUE is a column of zeros, which lme4 1.1.31 drops as
    rank-deficient ("dropping 1 column / coefficient"), leaving the fit without 'even'."""
    data = _sleep()
    data.loc[data["even"], "Reaction"] = np.nan
    with pytest.warns(mm.DataWarning, match="rank deficient: dropping aliased column.s. "
                                            "evenTRUE"):
        fit = mm.lmer("Reaction ~ Days + even + (1 | Subject)", data)
    assert list(fit.fixef.index) == ["(Intercept)", "Days"]
    plain = _fit("Reaction ~ Days + (1 | Subject)", data.dropna(subset=["Reaction"]))
    assert fit.objective == pytest.approx(plain.objective, rel=1e-10)


def test_partitions_code_a_logical_as_the_whole_data():
    dd = pytest.importorskip("dask.dataframe")
    data = _sleep()
    formula = "Reaction ~ even * Days + (late | Subject)"
    whole = _fit(formula, data)
    partitioned = _fit(formula, dd.from_pandas(data, npartitions=3))
    assert list(partitioned.fixef.index) == list(whole.fixef.index)
    assert partitioned.objective == pytest.approx(whole.objective, rel=1e-9)
    np.testing.assert_allclose(partitioned.fixef, whole.fixef, rtol=1e-6)


def test_new_data_with_numbers_for_a_logical_are_refused():
    """R refuses them too ("contrasts apply only to factors"); formulaic would code 1 as a
    number: a prediction of 366.23 where True gives 315.44."""
    fit = _fit("Reaction ~ late:Days + (1 | Subject)", _sleep())
    new = pd.DataFrame({"Days": [6.0], "Subject": ["308"], "late": [1]})
    with pytest.raises(mm.DataError, match="'late' was categorical .* give the same kind of "
                                           "values .True or False."):
        fit.predict(new, include_random=False)
    right = fit.predict(new.assign(late=[True]), include_random=False)
    as_objects = fit.predict(new.assign(late=pd.Series([True], dtype=object)),
                             include_random=False)
    assert float(right.iloc[0]) == pytest.approx(float(as_objects.iloc[0]), rel=1e-12)


def test_factor_of_python_bools_is_labelled_as_in_r():
    data = _sleep()
    data["late"] = data["late"].astype(object)
    fit = _fit("Reaction ~ factor(late) + (1 | Subject)", data)
    assert list(fit.fixef.index) == ["(Intercept)", "factor(late)TRUE"]
    new = data.head(3)
    np.testing.assert_allclose(fit.predict(new, include_random=False),
                               fit.predict(new.assign(late=new["late"].astype(bool)),
                                           include_random=False), rtol=1e-12)


def test_partitions_read_python_bools_as_logical():
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    data = _sleep()
    objects = data.assign(late=data["late"].astype(object))
    formula = "Reaction ~ late + Days + (1 | Subject) + (1 | Subject:late)"
    with dask.config.set({"dataframe.convert-string": False}):
        partitioned = _fit(formula, dd.from_pandas(objects, npartitions=3))
    whole = _fit(formula, data)
    assert list(partitioned.fixef.index) == ["(Intercept)", "lateTRUE", "Days"]
    assert list(partitioned.ranef["Subject:late"].index[:2]) == ["308:FALSE", "308:TRUE"]
    assert partitioned.objective == pytest.approx(whole.objective, rel=1e-10)
    np.testing.assert_allclose(np.asarray(partitioned.predict(data.head(3))),
                               np.asarray(whole.predict(data.head(3))), rtol=1e-8)
