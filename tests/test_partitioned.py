"""Fits of Dask DataFrames (``partitioned``): every reference model, split into 1, 3 and 7
partitions, gives the numbers of the in-memory fit of the same rows.

Tolerances: the objective to 1e-10 relative; fixed effects, standard errors, variance
components, conditional modes, Satterthwaite's df and profile intervals to 1e-8 (relative, or
absolute for values near 0).
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import dataset_for, load_reference, reference_ids

import mixedmodels as mm

dd = pytest.importorskip("dask.dataframe")

PARTITIONS = (1, 3, pytest.param(7, marks=pytest.mark.slow))
OBJECTIVE_RTOL = 1e-10
RTOL, ATOL = 1e-8, 1e-8


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _partitioned_fit(record: dict, partitions: int, reml: bool = True):
    data = dd.from_pandas(dataset_for(record), npartitions=partitions)
    return _quiet(mm.lmer, record["formula"], data, reml=reml)


def _close(ours, theirs, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float),
                               rtol=rtol, atol=atol)


#: InstEval's three fits (73,421 rows) take a minute: in the slow run
MODEL_IDS = [pytest.param(model_id, marks=pytest.mark.slow) if model_id == "classic/insteval"
             else model_id for model_id in reference_ids()]


@pytest.mark.parametrize("partitions", PARTITIONS)
@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_same_fit_as_in_memory(model_id, partitions, reference_fits):
    record = load_reference(model_id)
    memory = reference_fits[model_id, "REML"][2]
    fit = _partitioned_fit(record, partitions)
    assert fit.nobs == memory.nobs
    assert fit.objective == pytest.approx(memory.objective, rel=OBJECTIVE_RTOL)
    assert list(fit.fixef.index) == list(memory.fixef.index)
    _close(fit.fixef, memory.fixef)
    _close(fit.stderr, memory.stderr)
    _close(fit.varcorr["sdcor"], memory.varcorr["sdcor"])
    for group, modes in memory.ranef.items():
        assert list(fit.ranef[group].index) == list(modes.index)
        _close(fit.ranef[group], modes, atol=1e-8 * max(1.0, float(np.abs(modes).max().max())))
    _close(fit.coef_table()["df"], memory.coef_table()["df"])


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["sleepstudy_corr", "penicillin_crossed",
                                      "classic/machines_nested"])
def test_ml_and_profile_intervals(model_id, reference_fits):
    record = load_reference(model_id)
    memory = reference_fits[model_id, "ML"][2]
    fit = _partitioned_fit(record, 3, reml=False)
    assert fit.objective == pytest.approx(memory.objective, rel=OBJECTIVE_RTOL)
    _close(fit.fixef, memory.fixef)
    _close(_quiet(fit.confint), _quiet(memory.confint))


_MEMORY_INTERVALS: dict = {}


@pytest.mark.slow
@pytest.mark.parametrize("partitions", PARTITIONS)
@pytest.mark.parametrize("model_id", [m for m in reference_ids() if m != "classic/insteval"])
def test_profile_intervals_of_every_model(model_id, partitions, reference_fits):
    """The REML fits' profile intervals, every reference model but InstEval (whose profile
    takes minutes in memory too), to 1e-8."""
    memory = reference_fits[model_id, "REML"][2]
    if model_id not in _MEMORY_INTERVALS:
        _MEMORY_INTERVALS[model_id] = _quiet(memory.confint)
    fit = _partitioned_fit(load_reference(model_id), partitions)
    _close(_quiet(fit.confint), _MEMORY_INTERVALS[model_id])


# -- downstream of the fit: per-row results on the partitions, tests, refusals ----------------
def _trial_frame() -> pd.DataFrame:
    """sleepstudy with a three-level text factor, prior weights and missing values."""
    frame = mm.datasets.load("sleepstudy").copy()
    codes = frame["Subject"].astype("category").cat.codes
    frame["arm"] = np.array(["a", "b", "c"], dtype=object)[codes % 3]
    frame["w"] = 1.0 + 0.5 * (frame["Days"] % 3)
    frame.loc[[3, 50, 101], "Reaction"] = np.nan
    frame.loc[[7], "arm"] = None
    return frame


TRIAL = "Reaction ~ scale(Days) * arm + (1 + Days | Subject)"


@pytest.fixture(scope="module")
def trial_fits():
    frame = _trial_frame()
    memory = _quiet(mm.lmer, TRIAL, frame, weights="w")
    partitioned = _quiet(mm.lmer, TRIAL, dd.from_pandas(frame, npartitions=3), weights="w")
    return frame, memory, partitioned


def test_trial_fit_agrees(trial_fits):
    _, memory, fit = trial_fits
    assert fit.nobs == memory.nobs == 176
    assert fit.objective == pytest.approx(memory.objective, rel=OBJECTIVE_RTOL)
    _close(fit.fixef, memory.fixef)
    _close(fit.coef_table("kenward-roger"), memory.coef_table("kenward-roger"), rtol=1e-6)
    _close(fit.anova(), memory.anova(), rtol=1e-6)
    _close(fit.anova(ddf="kenward-roger"), memory.anova(ddf="kenward-roger"), rtol=1e-6)
    assert [m for m in fit.warnings if "missing" in m] == \
        [m for m in memory.warnings if "missing" in m]
    assert "Scaled residuals" in str(fit.summary())


@pytest.mark.parametrize("na_action", ["omit", "exclude"])
def test_residuals_and_fitted_values_on_partitions(trial_fits, na_action):
    _, memory, fit = trial_fits
    for kind in ("response", "pearson", "marginal"):
        for scaled in (False, True):
            ours = fit.resid(kind, scaled, na_action).compute()
            theirs = memory.resid(kind, scaled, na_action)
            pd.testing.assert_index_equal(ours.index, theirs.index)
            _close(ours, theirs, atol=1e-7)
    for kind in ("conditional", "marginal"):
        ours = fit.fitted_values(kind, na_action).compute()
        _close(ours, memory.fitted_values(kind, na_action), atol=1e-7)
    _close(fit.predict(na_action=na_action).compute(), memory.predict(na_action=na_action),
           atol=1e-7)


def test_predict_new_dask_data(trial_fits):
    frame, memory, fit = trial_fits
    new = frame.dropna().iloc[::5]
    ours = fit.predict(dd.from_pandas(new, npartitions=2), interval="confidence").compute()
    _close(ours, memory.predict(new, interval="confidence"), atol=1e-7)
    _close(fit.predict(new), memory.predict(new), atol=1e-7)


def test_simulate_on_partitions(trial_fits):
    _, _, fit = trial_fits
    first = fit.simulate(3, seed=1).compute()
    assert first.shape == (fit.nobs, 3)
    pd.testing.assert_frame_equal(first, fit.simulate(3, seed=1).compute())
    assert not np.allclose(first, fit.simulate(3, seed=2).compute())
    # y* = X beta + Z u* + e*: centred on the marginal fitted values
    spread = (first.sub(fit.fitted_values("marginal").compute(), axis=0)).to_numpy()
    assert abs(spread.mean()) < 4 * spread.std() / np.sqrt(spread.size) + fit.varcorr[
        "sdcor"].iloc[0]


def test_likelihood_ratio_test(trial_fits):
    frame, memory, fit = trial_fits
    reduced = "Reaction ~ scale(Days) + arm + (1 + Days | Subject)"
    memory0 = _quiet(mm.lmer, reduced, frame, weights="w")
    fit0 = _quiet(mm.lmer, reduced, dd.from_pandas(frame, npartitions=2), weights="w")
    _close(_quiet(mm.anova, fit0, fit), _quiet(mm.anova, memory0, memory), rtol=1e-6)


def test_likelihood_ratio_test_checks_the_data_and_the_nesting():
    """Dask fits keep no rows: the response is compared by its sum of squares, nesting on a
    sample of the rows, and a Dask fit is not compared with a pandas one."""
    sleep = mm.datasets.load("sleepstudy")
    ddf = dd.from_pandas(sleep, npartitions=3)
    small = _quiet(mm.lmer, "Reaction ~ Days + (1 | Subject)", ddf, reml=False)
    large = _quiet(mm.lmer, "Reaction ~ Days + (Days | Subject)", ddf, reml=False)
    memory = _quiet(mm.lmer, "Reaction ~ Days + (Days | Subject)", sleep, reml=False)
    memory_small = _quiet(mm.lmer, "Reaction ~ Days + (1 | Subject)", sleep, reml=False)
    _close(mm.anova(small, large), mm.anova(memory_small, memory), rtol=1e-6)
    with pytest.raises(ValueError, match="a Dask DataFrame and to a pandas DataFrame"):
        mm.anova(small, memory)
    doubled = dd.from_pandas(sleep.assign(Reaction=2 * sleep["Reaction"]), npartitions=3)
    other = _quiet(mm.lmer, "Reaction ~ Days + (Days | Subject)", doubled, reml=False)
    with pytest.raises(ValueError, match="response values .* differ"):
        mm.anova(small, other)
    no_slope = _quiet(mm.lmer, "Reaction ~ 1 + (Days | Subject)", ddf, reml=False)
    with pytest.raises(ValueError, match="fixed effect\\(s\\) Days are not in the larger"):
        mm.anova(small, no_slope)


def test_what_needs_every_row_refuses(trial_fits):
    _, _, fit = trial_fits
    for method in (fit.leverage, fit.cooks_distance, fit.ranova):
        with pytest.raises(NotImplementedError, match="every row"):
            method()
    with pytest.raises(ValueError, match="partitions of the Dask DataFrame"):
        fit.X
    with pytest.raises(ValueError, match="type=3"):
        fit.anova(type=1)


# -- bad input -----------------------------------------------------------------------------------
def test_a_schema_refuses_other_data():
    frame = mm.datasets.load("sleepstudy")
    formula = "Reaction ~ Days + (Days | Subject)"
    fit = _quiet(mm.lmer, formula, dd.from_pandas(frame, npartitions=3))
    schema = fit.model.design.schema
    same = mm.PartitionedModel(formula, dd.from_pandas(frame, npartitions=3), schema=schema)
    assert same.objective(fit.theta) == pytest.approx(fit.objective, rel=1e-12)
    changed = frame.assign(Reaction=frame["Reaction"] + 1.0)
    with pytest.raises(mm.DataError, match="not the data the schema was computed from"):
        mm.PartitionedModel(formula, dd.from_pandas(changed, npartitions=3), schema=schema)
    with pytest.raises(mm.DataError, match="5 partitions and the schema was computed from 3"):
        mm.PartitionedModel(formula, dd.from_pandas(frame, npartitions=5), schema=schema)


def test_an_empty_partition_is_no_rows():
    frame = mm.datasets.load("sleepstudy")
    formula = "Reaction ~ Days + (Days | Subject)"

    def empty_second(part, partition_info=None):
        return part.iloc[:0] if partition_info["number"] == 1 else part

    data = dd.from_pandas(frame, npartitions=3).map_partitions(empty_second,
                                                               meta=frame.iloc[:0])
    kept = data.compute()
    fit = _quiet(mm.lmer, formula, data)
    memory = _quiet(mm.lmer, formula, kept)
    assert fit.nobs == memory.nobs < len(frame)
    assert fit.objective == pytest.approx(memory.objective, rel=OBJECTIVE_RTOL)
    assert repr(fit).startswith("<PartitionedFit 'Reaction ~ Days + (Days | Subject)' REML")
    with pytest.raises(ValueError, match="fit.V needs the rows of the data"):
        fit.V
    nothing = dd.from_pandas(frame, npartitions=3).map_partitions(lambda part: part.iloc[:0],
                                                                   meta=frame.iloc[:0])
    with pytest.raises(mm.DataError, match="the data have no rows"):
        _quiet(mm.lmer, formula, nothing)


def test_files_whose_dtypes_differ(tmp_path):
    pytest.importorskip("pyarrow")
    frame = mm.datasets.load("sleepstudy")
    frame.iloc[:90].to_parquet(tmp_path / "a.parquet")
    frame.iloc[90:].astype({"Days": float}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(mm.DataError, match="column 'Days' of dtype float64.*int64"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", dd.read_parquet(tmp_path))


def test_a_missing_file(tmp_path):
    pytest.importorskip("pyarrow")
    frame = mm.datasets.load("sleepstudy")
    frame.iloc[:90].to_parquet(tmp_path / "a.parquet")
    frame.iloc[90:].to_parquet(tmp_path / "b.parquet")
    data = dd.read_parquet(tmp_path)
    (tmp_path / "b.parquet").unlink()
    with pytest.raises(mm.DataError, match="could not be read.*b.parquet"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", data)


def test_refused_formulas_and_arguments():
    data = dd.from_pandas(mm.datasets.load("sleepstudy"), npartitions=2)
    with pytest.raises(mm.FormulaError, match="factor"):
        mm.lmer("Reaction ~ factor(Days) + (1 | Subject)", data)
    with pytest.raises(mm.FormulaError, match="add the expression to the data"):
        mm.lmer("Reaction ~ C(Days > 3) + (1 | Subject)", data)
    with pytest.raises(mm.FormulaError, match="categories start with the reference level"):
        mm.lmer('Reaction ~ relevel(Subject, ref = "309") + (1 | Subject)', data)
    with pytest.raises(mm.DataError, match="name of one of its columns"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", data, weights=np.ones(180))


def test_a_factor_too_large_for_memory_fails_before_the_pass_over_the_rows():
    from mixedmodels.partitioned.model import check_factor_size

    frame = mm.datasets.load("penicillin")
    data = dd.from_pandas(frame, npartitions=2)
    fit = _quiet(mm.lmer, "diameter ~ 1 + (1 | plate) + (1 | sample)", data)
    schema = fit.model.design.schema
    check_factor_size(schema)  # 24 x 6 levels: 288 bytes
    crossed = dataclasses.replace(schema, levels={("user",): pd.RangeIndex(3_000_000),
                                                  ("movie",): pd.RangeIndex(2_000_000)})
    with pytest.raises(mm.DataError, match=r"at least 29,802 GiB \(user 3,000,000 levels, "
                                           r"movie 2,000,000 levels\)"):
        check_factor_size(crossed)


@pytest.mark.slow
def test_bootstrap_on_partitions(trial_fits):
    frame, memory, fit = trial_fits
    result = fit.bootstrap(40, seed=3, progress=False)
    assert result.replicates.shape == (40, 1 + len(memory.confint()))
    again = fit.bootstrap(40, seed=3, progress=False)
    pd.testing.assert_frame_equal(result.replicates, again.replicates)
    # the same distribution as the in-memory bootstrap's (other draws): estimates centred
    # on the fit's within a few bootstrap standard errors
    table = result.replicates.drop(columns="replicate")
    spread = table.std()
    assert (np.abs(table.mean() - result.estimate) < 4 * spread / np.sqrt(40) + 1e-9
            + 0.5 * spread).all()
    theirs = memory.bootstrap(40, seed=3, progress=False).replicates.drop(columns="replicate")
    ratio = spread / theirs.std()
    assert ((ratio > 0.5) & (ratio < 2)).all(), ratio


def test_bootstrap_responses_are_sums_over_partitions():
    """A replicate's cross-products from the partitions equal those of its response built
    in memory: refitting that response in memory gives the same parameters."""
    from mixedmodels.partitioned.bootstrap import _partition_products, _ResponseProducts
    from mixedmodels.partitioned.rows import RowsModel

    frame = _trial_frame()
    fit = _quiet(mm.lmer, TRIAL, dd.from_pandas(frame, npartitions=3), weights="w")
    model = RowsModel.of(fit)
    sequences = np.random.SeedSequence(11).spawn(2)
    u = tuple(np.stack([np.full(modes.shape, 0.5 * (j + 1)) for j in range(2)])
              for modes in model.u)
    parts = fit.model.data.to_delayed()
    shares = [_partition_products(part.compute(), model, u, sequences, i)
              for i, part in enumerate(parts)]
    total = shares[0] + shares[1] + shares[2]
    assert isinstance(total, _ResponseProducts)
    # the response itself, in memory: X beta + Z u* + e*, e* from the same streams
    memory = _quiet(mm.lmer, TRIAL, frame, weights="w")
    zs = [part.compute() for part in parts]
    ys = []
    for index, part in enumerate(zs):
        design, mean, blocks = model.parts(part)
        e = np.random.default_rng(np.random.SeedSequence(
            sequences[0].entropy, spawn_key=(*sequences[0].spawn_key, index + 1)))
        y = mean - design.offset + model.sigma * e.standard_normal(design.n) / np.sqrt(
            design.weights) + model.random_part(blocks, [modes[0] for modes in u])
        ys.append(y)
    y = np.concatenate(ys) + memory.model.design.offset
    refit = memory.model.with_response(y).fit()
    system = fit.model.system.with_response_products(
        [z[:, 0] for z in total.zty], fit.model.system._basis_inverse.T @ total.xty[:, 0],
        float(total.yty[0]))
    partitioned = fit.model._sibling(fit.model.design, system, True).fit()
    assert partitioned.objective == pytest.approx(refit.objective, rel=1e-10)
    _close(partitioned.fixef, refit.fixef)


def test_rows_of_weight_zero_are_left_out_as_in_memory():
    frame = mm.datasets.load("sleepstudy").assign(w=1.0)
    frame.loc[[10, 100, 170], "w"] = 0.0
    frame.loc[[11], "Reaction"] = np.nan
    formula = "Reaction ~ Days + (Days | Subject)"
    with pytest.warns(mm.DataWarning) as caught:
        memory = mm.lmer(formula, frame, weights="w")
    with pytest.warns(mm.DataWarning) as ours:
        fit = mm.lmer(formula, dd.from_pandas(frame, npartitions=3), weights="w")
    assert fit.nobs == memory.nobs == 176
    assert fit.sigma == pytest.approx(memory.sigma, rel=1e-10)
    _close(fit.stderr, memory.stderr)
    assert len(fit.resid().compute()) == 176
    assert any("3 of 180 rows whose weight 'w' is 0" in str(w.message) for w in ours)
    missing = [str(w.message) for w in caught if "missing values" in str(w.message)]
    assert missing == [str(w.message) for w in ours if "missing values" in str(w.message)]


def test_anova_of_data_sorted_by_a_factor():
    """Partitions each with one level of a factor (data sorted by it): the sample on which
    the contrasts are evaluated has every combination of the levels all the same."""
    frame = mm.datasets.load("orthodont")
    formula = "distance ~ age * Sex + (1 | Subject)"
    fit = _quiet(mm.lmer, formula, dd.from_pandas(frame.sort_values("Sex"), npartitions=3))
    _close(fit.anova(), _quiet(mm.lmer, formula, frame).anova(), rtol=1e-6)


def test_unreadable_files_and_other_collections(tmp_path):
    pytest.importorskip("pyarrow")
    frame = mm.datasets.load("sleepstudy")
    frame.iloc[:90].to_parquet(tmp_path / "a.parquet")
    frame.iloc[90:].drop(columns="Days").to_parquet(tmp_path / "b.parquet")
    (tmp_path / "c.parquet").write_text("not parquet")
    formula = "Reaction ~ Days + (1 | Subject)"
    with pytest.raises(mm.DataError, match="lacks a column.*Days"):
        mm.lmer(formula, dd.read_parquet([tmp_path / "a.parquet", tmp_path / "b.parquet"]))
    with pytest.raises(mm.DataError, match="could not be read.*ArrowInvalid"):
        mm.lmer(formula, dd.read_parquet([tmp_path / "a.parquet", tmp_path / "c.parquet"]))
    with pytest.raises(mm.DataError, match="must be a Dask DataFrame"):
        mm.lmer(formula, dd.from_pandas(frame, npartitions=2)["Reaction"])


@pytest.fixture(scope="module")
def sleep_by_day():
    """sleepstudy sorted by day (the first of 3 partitions has days 0 to 3 only), with text
    columns of its days and of the study's halves, and dates."""
    data = mm.datasets.load("sleepstudy").sort_values("Days", kind="stable")
    data = data.reset_index(drop=True)
    data["half"] = np.where(data.Days < 5, "early", "late")
    data["day_text"] = data.Days.astype(str)
    data["date"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(data.Days, unit="D")
    return data


@pytest.mark.parametrize("formula", [
    "Reaction ~ as.numeric(day_text) + (1 | Subject)",  # text's numbers, not a factor's codes
    "Reaction ~ as.numeric(day_text) + half + (1 | Subject)",
    "Reaction ~ I(Days > 4) + (1 | Subject)",  # logical: levels FALSE and TRUE
    "Reaction ~ I(half == 'late') + Days + (1 | Subject)",
    "Reaction ~ day_text + (1 | Subject)",
])
def test_calls_on_columns_as_in_memory(sleep_by_day, formula):
    """A call on a column sees it as the in-memory design does (a column of text is cast to
    the levels of all the rows only where it is a factor itself)."""
    memory = _quiet(mm.lmer, formula, sleep_by_day)
    fit = _quiet(mm.lmer, formula, dd.from_pandas(sleep_by_day, npartitions=3))
    assert list(fit.fixef.index) == list(memory.fixef.index)
    assert fit.objective == pytest.approx(memory.objective, rel=OBJECTIVE_RTOL)
    _close(fit.fixef, memory.fixef)


@pytest.mark.parametrize("formula, shown", [
    ("Reaction ~ interaction(Subject, half) + (1 | Days)", "interaction(Subject, half)"),
    ("Reaction ~ as.factor(Days) + (1 | Subject)", "as.factor(Days)"),
    ("Reaction ~ Days + as.character(Days) + (1 | Subject)", "as.character(Days)"),
    ("Reaction ~ Days + (0 + as.factor(half) | Subject)", "as.factor(half)"),
])
def test_calls_that_make_levels_are_refused(sleep_by_day, formula, shown):
    """A call whose values are levels would be coded with each partition's own levels (the
    first partition's 12 of interaction()'s 36 combinations, silently): refused, naming it."""
    with pytest.raises(mm.FormulaError, match=re.escape(shown) + ".*add its values to the data"):
        _quiet(mm.lmer, formula, dd.from_pandas(sleep_by_day, npartitions=3))


def test_columns_read_as_numbers_are_checked_as_in_memory(sleep_by_day):
    """A column of dates read as values: the in-memory DataError, not a factor of dates."""
    formula = "Reaction ~ date + (1 | Subject)"
    with pytest.raises(mm.DataError) as memory:
        _quiet(mm.lmer, formula, sleep_by_day)
    with pytest.raises(mm.DataError) as partitioned:
        _quiet(mm.lmer, formula, dd.from_pandas(sleep_by_day, npartitions=3))
    assert str(partitioned.value) == str(memory.value)
    assert "holds dates" in str(memory.value)


def test_predict_checks_new_data_as_in_memory():
    """A Dask fit's predictions check new data's types as an in-memory fit's (its sample has
    the columns' dtypes); a Dask DataFrame given to an in-memory fit's predict is named."""
    new = pd.DataFrame({"Days": ["1", "x"], "Subject": ["308", "309"]})
    sleep = mm.datasets.load("sleepstudy")
    memory = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    partitioned = _quiet(mm.lmer, "Reaction ~ Days + (Days | Subject)",
                         dd.from_pandas(sleep, npartitions=2))
    for fit in (memory, partitioned):
        with pytest.raises(mm.DataError, match="'Days' was numeric in the data of the fit"):
            fit.predict(new)
    with pytest.raises(mm.ArgumentTypeError, match=r"not a Dask DataFrame.*newdata.compute\(\)"):
        memory.predict(dd.from_pandas(sleep, npartitions=2))


def test_an_unpickled_fit_says_its_rows_were_left_behind():
    """A pickled Dask fit leaves its data behind: its numbers and summary stay, and what
    computes on the partitions says so (it raised AttributeError on None)."""
    import pickle

    data = dd.from_pandas(mm.datasets.load("sleepstudy"), npartitions=2)
    fit = pickle.loads(pickle.dumps(_quiet(mm.lmer, "Reaction ~ Days + (Days | Subject)", data)))
    assert "Random effects:" in str(fit.summary())
    for call, name in [(fit.resid, "fit.resid()"), (fit.fitted_values, "fit.fitted_values()"),
                       (fit.simulate, "fit.simulate()"), (fit.predict, "fit.predict()"),
                       (lambda: fit.bootstrap(2, progress=False), "fit.bootstrap()")]:
        with pytest.raises(ValueError, match=re.escape(name) + ".*unpickled without it"):
            call()
