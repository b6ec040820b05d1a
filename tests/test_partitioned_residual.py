"""Residual structures (``correlation=``, ``variance=``, ``gls``) on the partitions of a Dask
DataFrame (``partitioned.residual``, ``partitioned.residual_system``): the numbers of the
in-memory fit of the same rows, split by group into 1, 3 and 7 partitions; the refusal when a
group spans partitions, and its advice followed; what the fit offers downstream.

Tolerances: the objective to 1e-10 relative; fixed effects, standard errors, variance
components, the residual structure's parameters and the conditional modes to 1e-8 (relative,
or absolute near 0); Satterthwaite's df to 1e-6 (a numerical Hessian of the criterion, which
amplifies its rounding). Both fits end with the Newton polish of ``numerical_polish``, which
is what makes them agree to 1e-9 rather than BOBYQA's 1e-6 (``test_the_polish_makes_the_
difference``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE_DIR, symm_local_optimum_data

import mixedmodels as mm

dd = pytest.importorskip("dask.dataframe")

OBJECTIVE_RTOL = 1e-10
RTOL, ATOL = 1e-8, 1e-8
DF_RTOL = 1e-6


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _by_group(frame: pd.DataFrame, column: str, partitions: int):
    """A Dask DataFrame of ``partitions`` partitions, each with whole groups of ``column``
    (dealt out in turn), the rows in their order within each."""
    levels = pd.Index(frame[column].unique())
    part = pd.Series(np.arange(len(levels)) % partitions, index=levels)
    pieces = [frame[frame[column].map(part) == i] for i in range(partitions)]
    return dd.from_map(lambda piece: piece, pieces)


def _close(ours, theirs, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float),
                               rtol=rtol, atol=atol)


def _data(name: str) -> pd.DataFrame:
    if name == "sleepstudy":
        return mm.datasets.load("sleepstudy")
    return pd.read_csv(REFERENCE_DIR / "data" / f"{name}.csv")


#: (data, group, fitter, formula, correlation, variance)
MODELS = {
    "ar1": ("sleepstudy", "Subject", "lmer", "Reaction ~ Days + (1 | Subject)",
            "ar1(Days | Subject)", None),
    "cs": ("orthodont", "Subject", "lmer", "distance ~ age + Sex + (age | Subject)",
           "cs(1 | Subject)", None),
    "ident": ("orthodont", "Subject", "lmer", "distance ~ age + Sex + (1 | Subject)", None,
              "ident(Sex)"),
    "symm": ("orthodont", "Subject", "lmer", "distance ~ age * Sex + (1 | Subject)",
             "symm(visit | Subject)", "ident(age)"),
    "gls ar1": ("trial", "patient", "gls", "y ~ arm * visit", "ar1(visit | patient)", None),
}
#: the nlme reference models' structures not above (what they learn from the rows: car1's
#: gap, exp's extent, the covariates' spread), at 3 partitions
LEARNING = {
    "car1": ("bodyweight", "Rat", "lmer", "weight ~ Time * Diet + (Time | Rat)",
             "car1(Time | Rat)", None),
    "power": ("bodyweight", "Rat", "lmer", "weight ~ Time * Diet + (Time | Rat)", None,
              "power(Time)"),
    "exp variance": ("orthodont", "Subject", "lmer", "distance ~ age + Sex + (1 | Subject)",
                     None, "exp(age)"),
    "exp": ("spatial", "site", "gls", "z ~ x1", "exp(x + y | site)", None),
    "cs ident": ("orthodont", "Subject", "gls", "distance ~ age * Sex", "cs(1 | Subject)",
                 "ident(age)"),
    "arma": ("ovary", "Mare", "lmer", "follicles ~ sin2pt + cos2pt + (1 | Mare)",
             "arma(visit | Mare, p = 1, q = 1)", None),
}
_MEMORY: dict = {}


def _fit(model: tuple, data, reml: bool):
    _, _, fitter, formula, correlation, variance = model
    return _quiet(getattr(mm, fitter), formula, data, reml=reml, correlation=correlation,
                  variance=variance)


def _memory(name: str, model: tuple, reml: bool):
    if (name, reml) not in _MEMORY:
        _MEMORY[name, reml] = _fit(model, _data(model[0]), reml)
    return _MEMORY[name, reml]


def _check_same_fit(fit, memory):
    assert fit.nobs == memory.nobs
    assert fit.objective == pytest.approx(memory.objective, rel=OBJECTIVE_RTOL)
    _close(fit.fixef, memory.fixef)
    _close(fit.stderr, memory.stderr)
    _close(fit.varcorr["sdcor"], memory.varcorr["sdcor"])
    _close(fit.residual_parameters, memory.residual_parameters)
    assert list(fit.residual_parameters.index) == list(memory.residual_parameters.index)
    for group, modes in memory.ranef.items():
        _close(fit.ranef[group], modes, atol=1e-8 * max(1.0, float(np.abs(modes).max().max())))


CASES = [(name, k, reml) for name in MODELS for k in (1, 3, 7) for reml in (True, False)]
#: in the default run: every structure at 3 partitions by REML, AR(1) by ML and at 1 and 7
DEFAULT = [case for case in CASES if (case[1] == 3 and case[2]) or case[0] == "ar1"
           and (case[1] == 3 or case[2])]


@pytest.mark.parametrize("name, partitions, reml", [
    case if case in DEFAULT else pytest.param(*case, marks=pytest.mark.slow)
    for case in CASES])
def test_same_fit_as_in_memory(name, partitions, reml):
    model = MODELS[name]
    data = _by_group(_data(model[0]), model[1], partitions)
    fit = _fit(model, data, reml)
    assert fit.optsummary.backend.startswith("marginal pieces")  # no pass per evaluation
    _check_same_fit(fit, _memory(name, model, reml))


@pytest.mark.slow
@pytest.mark.parametrize("name", LEARNING)
def test_what_the_structures_learn_from_all_partitions(name):
    model = LEARNING[name]
    fit = _fit(model, _by_group(_data(model[0]), model[1], 3), True)
    memory = _memory(name, model, True)
    ours = fit.model.structure.parameters.residual
    theirs = memory.model.structure.parameters.residual
    assert ours.correlation == theirs.correlation and ours.variance == theirs.variance
    for part in ("correlation", "variance"):
        for learnt in ("gap", "scale", "slots", "largest", "levels"):
            assert getattr(getattr(ours, part), learnt, None) == \
                getattr(getattr(theirs, part), learnt, None)
    _check_same_fit(fit, memory)


@pytest.mark.parametrize("structure", [
    mm.cov.AR1("t", "g"), mm.cov.CAR1("t", "g"), mm.cov.CS("g"), mm.cov.Symm("t", "g"),
    mm.cov.Toep("t", "g"), mm.cov.Exp(("t", "x"), "g"), mm.cov.VarIdent("s"),
    mm.cov.ARMA("t", "g", p=1, q=1),
    mm.cov.VarPower("x"), mm.cov.VarExp("x")], ids=repr)
def test_learning_from_pieces_is_learning_from_all_the_rows(structure):
    """``Learning`` of the rows in three pieces, added, binds as all the rows at once."""
    from mixedmodels.covariance.residual_model import Learning, ResidualModel

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"g": np.repeat(np.arange(12), 5),
                          "t": 2 * np.tile(np.arange(5), 12) + 1,  # car1's gap: 2
                          "x": rng.normal(size=60), "s": rng.choice(["u", "v", "w"], 60)})
    frame = frame.iloc[np.flatnonzero(rng.random(60) < 0.8)]  # groups of several sizes
    correlation = structure if isinstance(structure, mm.cov.Correlation) else None
    variance = None if correlation is not None else structure
    pieces = [frame[frame["g"] % 3 == k] for k in range(3)]
    learnt = sum((Learning.of(correlation, variance, piece) for piece in pieces[1:]),
                 Learning.of(correlation, variance, pieces[0])).parameters()
    whole = ResidualModel(correlation, variance, frame)
    for ours, theirs in ((learnt.correlation, whole.correlation),
                         (learnt.variance, whole.variance)):
        assert ours == theirs
        for name in ("gap", "largest", "slots", "scale", "levels"):
            assert getattr(ours, name, None) == getattr(theirs, name, None)


@pytest.mark.slow
def test_a_pass_per_evaluation_where_there_are_no_marginal_pieces():
    """A variance function whose units (the random-effects levels) span partitions: A(delta)
    is summed over the partitions at each delta, the same fit."""
    frame = mm.datasets.load("sleepstudy").assign(day=lambda f: f["Days"] + 1)
    formula = "Reaction ~ Days + (1 | Subject)"
    data = dd.from_pandas(frame, npartitions=4)  # by rows: subjects cut in two
    fit = _quiet(mm.lmer, formula, data, variance="power(day)")
    memory = _quiet(mm.lmer, formula, frame, variance="power(day)")
    assert "per evaluation" in fit.optsummary.backend
    _check_same_fit(fit, memory)
    with pytest.raises(NotImplementedError, match="pass over the data.*method='wald'"):
        fit.confint()
    overflow = np.append(fit.theta[:-1], 1e6)  # a power whose sds overflow: no Psi
    assert fit.model.system.at(overflow) is None
    assert fit.model.objective(overflow) == np.inf


def test_the_polish_makes_the_difference(monkeypatch):
    """Without ``numerical_polish``, BOBYQA stops where rounding sends it: the fit over
    partitions and in memory 1e-7 apart on trial's AR(1) lme; with it, 1e-9."""
    from mixedmodels.lmm import model as stages

    frame = _data("trial")
    formula, correlation = "y ~ arm * visit + (1 | patient)", "ar1(visit | patient)"
    data = _by_group(frame, "patient", 3)

    def thetas():
        memory = _quiet(mm.LinearMixedModel, formula, frame, correlation=correlation)
        fit = _quiet(mm.PartitionedModel, formula, data, correlation=correlation)
        return memory.optimize().final, fit.optimize().final

    polished = thetas()
    np.testing.assert_allclose(*polished, rtol=1e-9)
    monkeypatch.setattr(stages, "numerical_polish", lambda objective, summary, upper: summary)
    stopped = thetas()
    assert np.max(np.abs(stopped[0] / stopped[1] - 1)) > 1e-8


@pytest.mark.slow
@pytest.mark.parametrize("reml", [True, False])
def test_groups_within_a_coarser_random_effect(reml):
    """AR(1) within patient, a random intercept per site: no marginal pieces, a pass per
    evaluation."""
    frame = mm.datasets.load("trial")
    frame["site"] = frame["patient"].str[1:].astype(int) % 4
    formula = "y ~ arm * visit + (1 | site)"
    memory = _quiet(mm.lmer, formula, frame, reml=reml, correlation="ar1(visit | patient)")
    for partitions in (3, 7):
        fit = _quiet(mm.lmer, formula, _by_group(frame, "patient", partitions), reml=reml,
                     correlation="ar1(visit | patient)")
        assert "per evaluation" in fit.optsummary.backend
        _check_same_fit(fit, memory)
    _close(fit.coef_table()["df"], memory.coef_table()["df"], rtol=DF_RTOL)


# -- groups across partitions --------------------------------------------------------------------
def test_a_group_in_two_partitions_is_refused_and_the_advice_works():
    frame = mm.datasets.load("sleepstudy")
    formula = "Reaction ~ Days + (1 | Subject)"
    split = dd.from_pandas(frame, npartitions=7)  # by rows: subjects cut in two
    with pytest.raises(mm.DataError, match=r"each Subject's rows in one partition: Subject "
                                           r"'\d+' has rows in partitions \d, \d .*"
                                           r"ddf.shuffle\(on='Subject'\)"):
        mm.lmer(formula, split, correlation="ar1(Days | Subject)")
    memory = _memory("ar1", MODELS["ar1"], True)
    for advice in (split.shuffle(on="Subject"), split.set_index("Subject", drop=False)):
        fit = _quiet(mm.lmer, formula, advice, correlation="ar1(Days | Subject)")
        assert fit.objective == pytest.approx(memory.objective, rel=OBJECTIVE_RTOL)
        _close(fit.fixef, memory.fixef)
        _close(fit.residual_parameters, memory.residual_parameters)


def test_one_group_of_all_rows_in_several_partitions():
    data = dd.from_pandas(_data("spatial"), npartitions=2)
    with pytest.raises(mm.DataError, match="no '\\| group': all rows are one group"):
        mm.gls("z ~ x1", data, correlation="exp(x + y)")


def test_rows_the_structure_refuses_are_refused_as_in_memory():
    frame = mm.datasets.load("sleepstudy")
    data = _by_group(frame, "Subject", 3)
    with pytest.raises(mm.DataError, match="power\\(Days\\) needs nonzero values"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", data, variance="power(Days)")
    with pytest.raises(mm.DataError, match="residual structure uses the column 'Dys'.*"
                                           "Did you mean 'Days'"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", data, correlation="ar1(Dys | Subject)")
    frame = frame.assign(site=frame["Subject"].astype(int) % 3)
    with pytest.raises(mm.DataError, match="groups \\(site\\) must lie within the levels"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", _by_group(frame, "site", 3),
                correlation="cs(1 | site)")


def test_a_schema_is_reused_for_the_same_structure_only():
    frame = mm.datasets.load("sleepstudy")
    data = _by_group(frame, "Subject", 3)
    formula = "Reaction ~ Days + (1 | Subject)"
    fit = _quiet(mm.lmer, formula, data, correlation="ar1(Days | Subject)")
    schema = fit.model.design.schema
    again = mm.PartitionedModel(formula, data, schema=schema,
                                correlation="ar1(Days | Subject)")
    assert again.objective(fit.theta) == pytest.approx(fit.objective, rel=1e-12)
    with pytest.raises(ValueError, match="another residual structure"):
        mm.PartitionedModel(formula, data, schema=schema, correlation="car1(Days | Subject)")
    with pytest.raises(ValueError, match="other columns"):
        mm.PartitionedModel(formula, data, schema=schema)


# -- downstream of the fit -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ar1_fits():
    model = MODELS["ar1"]
    frame = _data(model[0])
    return frame, _memory("ar1", model, True), _fit(model, _by_group(frame, "Subject", 3), True)


def test_tests_and_intervals(ar1_fits):
    _, memory, fit = ar1_fits
    _close(fit.coef_table(), memory.coef_table(), rtol=DF_RTOL)
    _close(fit.anova(), memory.anova(), rtol=DF_RTOL)
    profiled = ["Phi|Subject", "Days"]
    _close(fit.confint(parameters=profiled), memory.confint(parameters=profiled), rtol=1e-7)
    _close(fit.confint("wald").fillna(0), memory.confint("wald").fillna(0))
    assert "Correlation structure within Subject: AR(1)" in str(fit.summary())
    reduced = _quiet(mm.lmer, "Reaction ~ 1 + (1 | Subject)", fit.model.data,
                     correlation="ar1(Days | Subject)")
    reduced_memory = _quiet(mm.lmer, "Reaction ~ 1 + (1 | Subject)", memory.model.design.frame,
                            correlation="ar1(Days | Subject)")
    _close(_quiet(mm.anova, reduced, fit), _quiet(mm.anova, reduced_memory, memory), rtol=1e-7)


def test_residuals_fitted_values_and_predictions_on_partitions(ar1_fits):
    _, memory, fit = ar1_fits
    for kind in ("response", "pearson", "normalized", "marginal"):
        ours = fit.resid(kind, scaled=True).compute().sort_index()  # partitions by subject
        theirs = memory.resid(kind, scaled=True)
        pd.testing.assert_index_equal(ours.index, theirs.index, exact=False)
        _close(ours, theirs, atol=1e-8)
    _close(fit.fitted_values().compute().sort_index(), memory.fitted_values(), atol=1e-7)
    _close(fit.predict(interval="prediction").compute().sort_index(),
           memory.predict(interval="prediction"), atol=1e-7)


def test_simulations_have_the_residual_correlation(ar1_fits):
    _, _, fit = ar1_fits
    draws = fit.simulate(200, seed=5).compute()
    assert draws.shape == (180, 200)
    pd.testing.assert_frame_equal(draws, fit.simulate(200, seed=5).compute())
    # residuals of consecutive days of a subject: correlated as sigma^2 phi, plus the
    # random intercept's variance
    values = draws.to_numpy()
    same_subject = np.arange(179)[np.arange(179) % 10 != 9]
    covariance = np.mean([np.cov(values[i], values[i + 1])[0, 1] for i in same_subject])
    sd, phi = fit.varcorr["sdcor"].to_numpy(), fit.residual_parameters.iloc[0]
    expected = sd[0] ** 2 + sd[1] ** 2 * phi
    assert covariance == pytest.approx(expected, rel=0.15)


def test_what_needs_every_row_refuses(ar1_fits):
    _, _, fit = ar1_fits
    with pytest.raises(NotImplementedError, match="bootstrap of a Dask fit with a residual"):
        fit.bootstrap(5)
    with pytest.raises(ValueError, match="Kenward-Roger.*ddf='satterthwaite'"):
        fit.coef_table("kenward-roger")
    with pytest.raises(ValueError, match="partitions of the Dask DataFrame"):
        fit.residual
    with pytest.raises(ValueError, match="partitions of the Dask DataFrame"):
        fit.R


def test_ident_strata_of_one_row_are_refused_across_partitions():
    """A stratum of one row in all the data is refused as in memory, though each partition
    sees only some strata (``test_ident_strata_of_two_rows_in_two_partitions_fit``: a
    stratum with one row in each of two partitions is not)."""
    trial = mm.datasets.load("trial")
    strata = np.where(np.arange(len(trial)) < 2, "lone", trial["arm"].astype(str))
    lone = trial.assign(s=strata)
    lone.loc[1, "s"] = "other"
    with pytest.raises(mm.DataError, match=r"2 of its 4 strata have a single row"):
        mm.gls("y ~ visit", lone, variance="ident(s)")
    with pytest.raises(mm.DataError, match=r"2 of its 4 strata have a single row"):
        mm.gls("y ~ visit", _by_group(lone, "patient", 3), variance="ident(s)")


@pytest.mark.slow
def test_ident_strata_of_two_rows_in_two_partitions_fit():
    """One "pair" row in each of the first two patients, which the partitions split: the
    fit of the rows in memory."""
    trial = mm.datasets.load("trial")
    pair = trial.assign(s=np.where(np.isin(np.arange(len(trial)), [0, 5]), "pair",
                                   trial["arm"].astype(str)))
    first, second = pair["patient"].iloc[0], pair["patient"].iloc[5]
    assert first != second
    in_memory = _quiet(mm.gls, "y ~ visit", pair, variance="ident(s)")
    partitioned = _quiet(mm.gls, "y ~ visit", _by_group(pair, "patient", 3),
                         variance="ident(s)")
    assert partitioned.objective == pytest.approx(in_memory.objective, rel=OBJECTIVE_RTOL)


@pytest.mark.parametrize("correlation", ["ar1(visit | patient)", "cs(1 | patient)",
                                         "symm(visit | patient)", "exp(visit | patient)"])
def test_groups_of_one_row_have_no_correlation_to_estimate(correlation):
    """Every patient seen once: ar1's phi stayed at its start, 0, reported as an estimate;
    now a DataError, in memory and over partitions."""
    trial = mm.datasets.load("trial")
    once = trial.groupby("patient").head(1).reset_index(drop=True)
    for data in (once, _by_group(once, "patient", 3)):
        with pytest.raises(mm.DataError, match="every group of 'patient' has a single row"):
            mm.gls("y ~ arm", data, correlation=correlation)


def test_gls_symm_starts_at_the_residuals_correlations_over_partitions():
    """15 groups of up to 5 visits (tests/test_residual_structures.py's): the partitions'
    pass of the least-squares residuals' pair sums gives the in-memory start, and the fit
    reaches 273.638 as in memory (from independence it stopped at 291.240)."""
    data = symm_local_optimum_data()
    in_memory = mm.gls("y ~ visit", data, correlation="symm(visit | g)")
    partitioned = _quiet(mm.gls, "y ~ visit", _by_group(data, "g", 3),
                         correlation="symm(visit | g)")
    np.testing.assert_allclose(partitioned.model._bobyqa_start(),
                               in_memory.model._bobyqa_start(), rtol=1e-12, atol=1e-12)
    assert in_memory.objective == pytest.approx(273.638077106, abs=1e-6)
    assert partitioned.objective == pytest.approx(in_memory.objective, rel=OBJECTIVE_RTOL)
