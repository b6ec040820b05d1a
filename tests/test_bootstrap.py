"""Parametric bootstrap: reproducible replicates, lme4's names, boot's percentile intervals."""

from __future__ import annotations

import json
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.inference.bootstrap import (
    BootstrapResult,
    _Replicator,
    bootstrap,
    percentile_interval,
)
from mixedmodels.inference.simulate import Simulator, simulate
from mixedmodels.parallel.executor import pickled

REFERENCE = Path(__file__).parent / "reference"
NAMES = ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject", "sigma",
         "(Intercept)", "Days"]


@pytest.fixture(scope="module")
def ml_fit():
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"),
                   reml=False)


@pytest.fixture(scope="module")
def dyestuff2_fit():
    with pytest.warns(mm.FitWarning, match="singular"):
        return mm.lmer("Yield ~ 1 + (1 | Batch)", mm.datasets.load("dyestuff2"))


@pytest.fixture(scope="module")
def boot20(ml_fit):
    return bootstrap(ml_fit, 20, seed=11, progress=False)


def test_names_and_shape(ml_fit, boot20):
    from mixedmodels.inference.parameters import parameter_names

    assert isinstance(boot20, BootstrapResult)
    assert list(boot20.replicates.columns) == ["replicate"] + NAMES
    assert boot20.parameters == NAMES == parameter_names(ml_fit)  # as confint(method="profile")
    assert boot20.replicates["replicate"].tolist() == list(range(20))
    assert list(boot20.intervals.index) == NAMES
    assert list(boot20.intervals.columns) == ["lower", "upper"]
    assert (boot20.n, boot20.seed, boot20.level) == (20, 11, 0.95)
    assert boot20.n_failed == 0 and boot20.singular.shape == (20,)
    assert np.all(np.isfinite(boot20.replicates.to_numpy()))


def test_estimate_is_the_fit(ml_fit, boot20):
    est = boot20.estimate
    varcorr = ml_fit.varcorr
    assert est["sd_(Intercept)|Subject"] == pytest.approx(varcorr.sdcor[0])
    assert est["sd_Days|Subject"] == pytest.approx(varcorr.sdcor[1])
    assert est["cor_Days.(Intercept)|Subject"] == pytest.approx(varcorr.sdcor[2])
    assert est["sigma"] == pytest.approx(ml_fit.sigma)
    np.testing.assert_allclose(est[["(Intercept)", "Days"]], ml_fit.beta)
    # against lme4 (ML fit of sleepstudy_corr.json)
    reference = json.loads((REFERENCE / "sleepstudy_corr.json").read_text())["ML"]
    assert est["sigma"] == pytest.approx(reference["sigma"], rel=1e-4)


def test_same_seed_same_replicates(ml_fit, boot20):
    again = bootstrap(ml_fit, 20, seed=11, progress=False)
    pd.testing.assert_frame_equal(again.replicates, boot20.replicates, check_exact=True)
    pd.testing.assert_frame_equal(again.intervals, boot20.intervals, check_exact=True)
    other = bootstrap(ml_fit, 20, seed=12, progress=False)
    assert np.all(other.replicates["sigma"].to_numpy() != boot20.replicates["sigma"].to_numpy())
    # replicate i's seed depends on i alone: the first 10 of 20 are the 10
    first = bootstrap(ml_fit, 10, seed=11, progress=False)
    pd.testing.assert_frame_equal(first.replicates, boot20.replicates.iloc[:10],
                                  check_exact=True)


def test_parallel_equals_serial(ml_fit, boot20):
    parallel = bootstrap(ml_fit, 20, seed=11, progress=False, n_jobs=2)
    pd.testing.assert_frame_equal(parallel.replicates, boot20.replicates, check_exact=True)
    np.testing.assert_array_equal(parallel.singular, boot20.singular)


def test_replicate_is_a_refit_of_a_simulation(ml_fit, boot20):
    child = np.random.SeedSequence(11).spawn(20)[3]
    y = simulate(ml_fit, 1, seed=child)[:, 0]
    refit = ml_fit.model.with_response(y).fit()
    row = boot20.replicates.iloc[3]
    assert row["sigma"] == refit.sigma
    np.testing.assert_array_equal(row[["(Intercept)", "Days"]].to_numpy(dtype=float), refit.beta)
    assert row["sd_Days|Subject"] == pytest.approx(refit.varcorr.sdcor[1], rel=1e-12)
    assert row["cor_Days.(Intercept)|Subject"] == pytest.approx(refit.varcorr.sdcor[2],
                                                                rel=1e-12)


def test_intervals_are_the_percentiles(boot20, ml_fit):
    # R = 20, level 0.95: (R + 1) 0.025 < 1 and (R + 1) 0.975 > R: the extreme values
    table = boot20.replicates[NAMES]
    np.testing.assert_array_equal(boot20.intervals["lower"], table.min())
    np.testing.assert_array_equal(boot20.intervals["upper"], table.max())
    # R = 19, level 0.9: (R + 1) alpha = 1 and 19 exactly: the order statistics
    r19 = bootstrap(ml_fit, 19, seed=5, progress=False, level=0.9)
    table = r19.replicates[NAMES]
    np.testing.assert_array_equal(r19.intervals["lower"], table.min())
    np.testing.assert_array_equal(r19.intervals["upper"], table.max())
    # another level from the same replicates: R = 20, level 0.8 -> order stats 2.1 and 18.9,
    # interpolated on the normal scale between neighbours
    at80 = boot20.confint(0.8)
    ordered = np.sort(boot20.replicates["Days"].to_numpy())
    assert ordered[1] < at80.loc["Days", "lower"] < ordered[2]
    assert ordered[17] < at80.loc["Days", "upper"] < ordered[18]
    assert at80.loc["Days", "lower"] == percentile_interval(ordered[::-1], 0.8)[0]
    assert boot20.confint() is boot20.intervals


def test_too_few_replicates_for_the_level_warn(boot20):
    """boot.ci's warning: an endpoint that is the smallest or largest replicate says nothing
    of the level; 0.95 needs 40 replicates ((R + 1) 0.975 < R), 0.8 needs 10."""
    with pytest.warns(mm.FitWarning, match="20 finite replicates for 0.95 intervals, which "
                                           "need at least 40"):
        boot20.confint(0.95)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        boot20.confint(0.8)
    table = boot20.replicates[NAMES].iloc[:10]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BootstrapResult(boot20.replicates.iloc[:10], None, None, 0, 10, 0.8, None,
                        None).confint(0.8)
    with pytest.warns(mm.FitWarning, match="9 finite replicates for 0.8 intervals"):
        table.iloc[0] = np.nan
        BootstrapResult(pd.concat([boot20.replicates[["replicate"]].iloc[:10], table], axis=1),
                        None, None, 0, 10, 0.8, None, None).confint(0.8)


def test_percentile_interval_matches_boot_norm_inter():
    """Reference values from R: boot:::norm.inter(t, alpha) (boot 1.3)."""
    i = np.arange(1, 51)
    t = np.sqrt(i) * np.where(i % 2 == 1, -1.0, 1.0)
    assert percentile_interval(t[:30], 0.9) == pytest.approx(
        (-5.2687036203315962, 5.3627911924615272), rel=1e-14)
    assert percentile_interval(t, 0.8) == pytest.approx(
        (-6.3863323552052291, 6.4641549218140417), rel=1e-14)
    # non-finite values are dropped, as boot does
    assert percentile_interval(np.r_[t, np.nan, np.inf], 0.8) == percentile_interval(t, 0.8)
    assert percentile_interval(t[:19], 0.9) == (-np.sqrt(19), np.sqrt(18))
    assert np.isnan(percentile_interval([np.nan], 0.9)[0])


def test_seed_none_is_recorded(ml_fit):
    first = bootstrap(ml_fit, 3, progress=False)
    assert isinstance(first.seed, int)
    again = bootstrap(ml_fit, 3, seed=first.seed, progress=False)
    pd.testing.assert_frame_equal(first.replicates, again.replicates, check_exact=True)


def test_singular_refits_are_kept_and_counted(dyestuff2_fit):
    fit = dyestuff2_fit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = bootstrap(fit, 30, seed=3, progress=False, level=0.9)
    # the replicates' own "boundary (singular) fit" warnings do not escape; at most a summary
    messages = [str(w.message) for w in caught]
    assert not any("boundary" in m for m in messages)
    assert len(messages) == (1 if result.n_failed else 0)
    sd = result.replicates["sd_(Intercept)|Batch"].to_numpy()
    ok = ~result.failed
    assert result.n_singular == int((sd[ok] < 1e-3).sum()) > 5
    assert np.array_equal(result.singular[ok], sd[ok] < 1e-3)
    assert len(result.replicates) == 30 and np.all(np.isfinite(sd[ok]))
    # failed refits (here: the optimizer raising, see below) are kept as rows of NaN
    assert np.array_equal(np.isnan(sd), result.failed) and result.n_failed <= 3
    assert result.intervals.loc["sd_(Intercept)|Batch", "lower"] == 0.0


def test_refits_of_singular_responses_do_not_raise(dyestuff2_fit):
    """About 2 % of refits of responses simulated from the (singular) Dyestuff2 fit raise
    nlopt.RoundoffLimited; which ones depends on rounding in the objective. For the first one
    found, lme4 fits theta = 0 with REML criterion 166.7272518 (checked by hand)."""
    responses = simulate(dyestuff2_fit, 200, seed=3)
    raised = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(responses.shape[1]):
            try:
                dyestuff2_fit.model.with_response(responses[:, j]).fit()
            except Exception as error:  # noqa: BLE001
                raised.append((j, type(error).__name__))
    assert raised == []


class _FlakyModel:
    """A stand-in model whose refit raises for one response."""

    def __init__(self, model):
        self.model, self.structure, self.calls = model, model.structure, 0

    def with_response(self, y):
        self.calls += 1
        if self.calls == 2:
            raise FloatingPointError("refit blew up")
        return self.model.with_response(y)


def _run(replicator, seeds):
    """(values, singular, failed) of the replicates of these seeds, one row each."""
    return tuple(np.array(column) for column in zip(*map(replicator.replicate, seeds)))


def test_failed_refits_are_rows_of_nan(ml_fit):
    replicator = _Replicator(_FlakyModel(ml_fit.model), Simulator.from_fit(ml_fit), len(NAMES))
    values, singular, failed = _run(replicator, np.random.SeedSequence(1).spawn(3))
    assert failed.tolist() == [False, True, False]
    assert np.all(np.isnan(values[1])) and np.all(np.isfinite(values[[0, 2]]))
    assert singular.dtype == bool and not singular[1]


def test_any_executor_gives_the_same_replicates(ml_fit, boot20):
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        threaded = bootstrap(ml_fit, 20, seed=11, progress=False, executor=pool)
    pd.testing.assert_frame_equal(threaded.replicates, boot20.replicates, check_exact=True)
    with ProcessPoolExecutor(2) as pool:
        processes = bootstrap(ml_fit, 20, seed=11, progress=False, executor=pool)
    pd.testing.assert_frame_equal(processes.replicates, boot20.replicates, check_exact=True)
    np.testing.assert_array_equal(processes.singular, boot20.singular)


@pytest.mark.slow
def test_dask_cluster_executor(ml_fit, boot20):
    distributed = pytest.importorskip("distributed")
    with distributed.Client(n_workers=2, threads_per_worker=1, processes=True,
                            dashboard_address=None) as client:
        result = ml_fit.bootstrap(20, seed=11, progress=False, executor=client.get_executor())
    pd.testing.assert_frame_equal(result.replicates, boot20.replicates, check_exact=True)


def test_unpicklable_model_is_rebuilt_for_the_workers(ml_fit):
    model = ml_fit.model.with_reml(False)
    model.callback = lambda: None  # not picklable
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(model)
    replicator = _Replicator(model, Simulator.from_fit(ml_fit), len(NAMES))
    rebuilt = pickle.loads(pickled(replicator, _Replicator.portable))
    assert type(rebuilt.model).__name__ == "LinearMixedModel" and not rebuilt.model.reml
    seeds = np.random.SeedSequence(4).spawn(2)
    np.testing.assert_allclose(_run(rebuilt, seeds)[0], _run(replicator, seeds)[0], rtol=1e-7)


def test_progress_bar_is_optional(ml_fit, boot20, monkeypatch, capsys):
    pytest.importorskip("tqdm")
    shown = bootstrap(ml_fit, 4, seed=11, progress=True)
    assert "bootstrap" in capsys.readouterr().err  # tqdm writes to stderr
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    hidden = bootstrap(ml_fit, 4, seed=11, progress=True)
    assert capsys.readouterr().err == ""
    pd.testing.assert_frame_equal(shown.replicates, hidden.replicates)
    pd.testing.assert_frame_equal(shown.replicates, boot20.replicates.iloc[:4])


def test_argument_checks(ml_fit):
    with pytest.raises(ValueError, match="replicates"):
        bootstrap(ml_fit, 0, progress=False)
    with pytest.raises(ValueError, match="level"):
        bootstrap(ml_fit, 2, level=1.5, progress=False)


def test_fit_methods(ml_fit, boot20):
    if not hasattr(ml_fit, "bootstrap"):
        pytest.skip("LmmFit.bootstrap not installed")
    result = ml_fit.bootstrap(20, seed=11, progress=False)
    pd.testing.assert_frame_equal(result.replicates, boot20.replicates, check_exact=True)
    pd.testing.assert_frame_equal(ml_fit.confint("bootstrap", n=20, seed=11, progress=False),
                                  boot20.intervals)
    np.testing.assert_array_equal(ml_fit.simulate(2, seed=1), simulate(ml_fit, 2, seed=1))


# -- acceptance: 1,000 replicates ---------------------------------------------------------------
# lme4 1.1.31: confint(m, method = "boot", nsim = 5000, seed = 99, oldNames = FALSE) on the ML
# fit m <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE). (Three runs of
# nsim = 1000 after set.seed(1), (2), (3) gave, e.g. for sd_(Intercept)|Subject, lower 10.29,
# 11.05, 11.19 and upper 33.10, 32.81, 32.35.)
LME4_BOOT_NSIM = 5000
LME4_BOOT = {
    "sd_(Intercept)|Subject": (10.3438812202, 33.2621470449),
    "cor_Days.(Intercept)|Subject": (-0.4831349575, 0.9999999975),
    "sd_Days|Subject": (3.0068059418, 7.6615130933),
    "sigma": (22.5957660756, 28.5398329105),
    "(Intercept)": (238.1521964522, 264.5275071140),
    "Days": (7.4630241799, 13.3863303698),
}


def _percentile_se(values: np.ndarray, alpha: float) -> float:
    """Monte-Carlo standard error of the alpha-quantile of R values, from the order statistics
    around it (the distribution-free binomial interval: R alpha +/- 1.96 sqrt(R alpha (1-alpha))
    spans about +/- 1.96 standard errors)."""
    t = np.sort(values[np.isfinite(values)])
    size = len(t)
    half = 1.96 * np.sqrt(size * alpha * (1 - alpha))
    lo = int(np.clip(np.floor(size * alpha - half), 0, size - 1))
    hi = int(np.clip(np.ceil(size * alpha + half), 0, size - 1))
    return (t[hi] - t[lo]) / (2 * 1.96)


@pytest.mark.slow
def test_acceptance_1000_replicates(ml_fit):
    """1,000 replicates of the ML fit of sleepstudy.

    1. Against lme4's own bootstrap (the same method, 5,000 replicates): every endpoint is
       within 4 Monte-Carlo standard errors (of the difference: ours at 1,000 and lme4's at
       5,000 replicates, se estimated from our order statistics).
    2. Against lme4's profile intervals (a different method): sigma and the fixed effects agree
       to within 0.15 of the profile interval's width. The sds and the correlation do not, and
       neither does lme4's bootstrap: ML underestimates the sds (the bootstrap distribution sits
       below the estimate) and about 4 % of refits are singular with correlation 1, so the
       percentile intervals of the sds are shifted down by 0.15-0.2 widths and the correlation's
       upper end is 1. This is the percentile method, not Monte-Carlo error; the test checks
       that direction.
    """
    level = 0.95
    result = bootstrap(ml_fit, 1000, seed=1, progress=False, level=level)
    assert result.n_failed == 0
    assert 20 <= result.n_singular <= 70  # lme4: 33 of 1000 (bootMer, seed 1)
    reference = json.loads((REFERENCE / "sleepstudy_corr.json").read_text())["ML"]
    profile = {row["param"]: (row["lower"], row["upper"]) for row in reference["profile_ci"]}
    report = []
    for name in NAMES:
        values = result.replicates[name].to_numpy()
        ours = result.intervals.loc[name]
        lme4 = LME4_BOOT[name]
        width = profile[name][1] - profile[name][0]
        for side, alpha, mine, theirs, prof in [
                ("lower", (1 - level) / 2, ours["lower"], lme4[0], profile[name][0]),
                ("upper", (1 + level) / 2, ours["upper"], lme4[1], profile[name][1])]:
            se = _percentile_se(values, alpha) * np.sqrt(1 + 1000 / LME4_BOOT_NSIM)
            report.append(f"{name:30s} {side}: boot {mine:10.4f} lme4-boot {theirs:10.4f} "
                          f"(4se {4 * se:.4f}) profile {prof:10.4f} "
                          f"(diff/width {(mine - prof) / width:+.3f})")
            assert abs(mine - theirs) <= 4 * se + 1e-6, report[-1]
            if name.startswith(("sd_", "cor_")):
                continue
            assert abs(mine - prof) < 0.15 * width, report[-1]
        if name.startswith("sd_"):
            assert ours["lower"] < profile[name][0] and ours["upper"] < profile[name][1]
    assert result.intervals.loc["cor_Days.(Intercept)|Subject", "upper"] == pytest.approx(1.0)
    print("\n".join(report))
