"""Every public function, method and command-line option checks its arguments: a wrong type is
a TypeError (``mm.ArgumentTypeError``, also a ValueError), a value outside what is allowed a
ValueError (``mm.DataError`` for the data), and the message names the argument.

Each row of the tables is (id, call, expected error, words the message must hold); the calls fail
on their checks, before any costly computation.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.cli import main

SLEEP = "Reaction ~ Days + (Days | Subject)"
TYPE, VALUE, DATA = mm.ArgumentTypeError, ValueError, mm.DataError


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return mm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def gauge_data() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    parts, operators = np.arange(5), ["a", "b", "c"]
    rows = [(p, o, p + rng.normal()) for p in parts for o in operators for _ in range(2)]
    return pd.DataFrame(rows, columns=["part", "operator", "y"])


def _settings(**fields):
    return lambda fit, model, data, tmp: mm.lmer(SLEEP, data, settings=mm.OptSettings(**fields))


# (id, call(fit, model, data, tmp_path), error, words in the message)
MODEL_CASES = [
    ("lmer reml type", lambda f, m, d, t: mm.lmer(SLEEP, d, reml="no"), TYPE, "reml"),
    ("lmer reml None", lambda f, m, d, t: mm.lmer(SLEEP, d, reml=None), TYPE, "reml"),
    ("lmer progress type", lambda f, m, d, t: mm.lmer(SLEEP, d, progress="yes"), TYPE,
     "progress"),
    ("gls progress type", lambda f, m, d, t: mm.gls("Reaction ~ Days", d, progress=1), TYPE,
     "progress"),
    ("lmer R's REML=", lambda f, m, d, t: mm.lmer(SLEEP, d, REML=False), TYPE,
     "no argument 'REML'; for R's REML=, write reml=True or reml=False"),
    ("lmer R's control=", lambda f, m, d, t: mm.lmer(SLEEP, d, control=None), TYPE,
     "settings=mm.OptSettings"),
    ("lmer misspelt keyword", lambda f, m, d, t: mm.lmer(SLEEP, d, wieghts="Days"), TYPE,
     "no argument 'wieghts'; did you mean weights=?"),
    ("gls unknown keyword", lambda f, m, d, t: mm.gls("Reaction ~ Days", d, zzz=1), TYPE,
     "its arguments are formula, data, reml, correlation"),
    ("anova misspelt keyword", lambda f, m, d, t: mm.anova(f, f, refitt=False), TYPE,
     "did you mean refit=?"),
    ("predict R's re.form", lambda f, m, d, t: f.predict(re_form=None), TYPE,
     "predict() has no argument 're_form'; for R's re_form=, write include_random=False"),
    ("simulate R's nsim", lambda f, m, d, t: f.simulate(nsim=2), TYPE, "write n="),
    ("predict unknown", lambda f, m, d, t: f.predict(type="response"), TYPE,
     "its arguments are newdata, include_random"),
    ("confint R's parm", lambda f, m, d, t: f.confint(parm="Days"), TYPE,
     "for lme4's parm=, write parameters="),
    ("fit anova misspelt", lambda f, m, d, t: f.anova(typ=3), TYPE, "did you mean type=?"),
    ("lmer R's offset=", lambda f, m, d, t: mm.lmer(SLEEP, d, offset=1), TYPE,
     "offset(x) in the formula"),
    ("anova of one fit", lambda f, m, d, t: mm.anova(f), VALUE, "call fit.anova()"),
    ("lmer formula type", lambda f, m, d, t: mm.lmer(3, d), mm.FormulaError, "formula"),
    ("lmer data type", lambda f, m, d, t: mm.lmer(SLEEP, 5), TYPE, "data"),
    ("lmer weights type", lambda f, m, d, t: mm.lmer(SLEEP, d, weights=5), TYPE, "weights"),
    ("lmer weights value", lambda f, m, d, t: mm.lmer(SLEEP, d, weights=-np.ones(len(d))),
     DATA, "weights"),
    ("lmer nobs_checks type", lambda f, m, d, t: mm.lmer(SLEEP, d, nobs_checks=1), TYPE,
     "nobs_checks"),
    ("lmer nobs_checks value", lambda f, m, d, t: mm.lmer(SLEEP, d, nobs_checks="no"), VALUE,
     "nobs_checks"),
    ("lmer settings type", lambda f, m, d, t: mm.lmer(SLEEP, d, settings="fast"), TYPE,
     "settings"),
    ("OptSettings maxeval type", _settings(maxeval=2.5), TYPE, "settings.maxeval"),
    ("OptSettings maxeval value", _settings(maxeval=0), VALUE, "settings.maxeval"),
    ("OptSettings ftol_rel type", _settings(ftol_rel="1e-8"), TYPE, "settings.ftol_rel"),
    ("OptSettings ftol_rel value", _settings(ftol_rel=-1.0), VALUE, "settings.ftol_rel"),
    ("OptSettings ftol_abs value", _settings(ftol_abs=np.nan), VALUE, "settings.ftol_abs"),
    ("OptSettings xtol_rel type", _settings(xtol_rel=None), TYPE, "settings.xtol_rel"),
    ("OptSettings xtol_abs value", _settings(xtol_abs=-1e-10), VALUE, "settings.xtol_abs"),
    ("OptSettings initial_step type", _settings(initial_step=True), TYPE,
     "settings.initial_step"),
    ("OptSettings initial_step value", _settings(initial_step=0.0), VALUE,
     "settings.initial_step"),
    ("LinearMixedModel reml type", lambda f, m, d, t: mm.LinearMixedModel(SLEEP, d, reml="yes"),
     TYPE, "reml"),
    ("LinearMixedModel nobs_checks value",
     lambda f, m, d, t: mm.LinearMixedModel(SLEEP, d, nobs_checks="warn"), VALUE, "nobs_checks"),
    ("fit settings type", lambda f, m, d, t: m.fit("fast"), TYPE, "settings"),
    ("fit settings value", lambda f, m, d, t: m.fit(mm.OptSettings(maxeval=-5)), VALUE,
     "settings.maxeval"),
    ("objective theta type", lambda f, m, d, t: m.objective(["a", "b", "c"]), TYPE, "theta"),
    ("objective theta value", lambda f, m, d, t: m.objective([1.0, 0.0]), VALUE, "theta"),
    ("objective theta nan", lambda f, m, d, t: m.objective([1.0, np.nan, 1.0]), VALUE, "theta"),
    ("with_reml type", lambda f, m, d, t: m.with_reml("ML"), TYPE, "reml"),
    ("with_response type", lambda f, m, d, t: m.with_response(["a"] * 180), TYPE, "y"),
    ("with_response value", lambda f, m, d, t: m.with_response(np.ones(3)), VALUE, "y"),
]

FIT_CASES = [
    ("coef_table ddf type", lambda f, m, d, t: f.coef_table(ddf=1), TYPE, "ddf"),
    ("coef_table ddf value", lambda f, m, d, t: f.coef_table(ddf="welch"), VALUE, "ddf"),
    ("anova type type", lambda f, m, d, t: f.anova(type=3.0), TYPE, "type"),
    ("anova type value", lambda f, m, d, t: f.anova(type=4), VALUE, "type"),
    ("anova ddf type", lambda f, m, d, t: f.anova(ddf=None), TYPE, "ddf"),
    ("test L type", lambda f, m, d, t: f.test("Days"), TYPE, "L"),
    ("test L value", lambda f, m, d, t: f.test([[0, 1, 0]]), VALUE, "L"),
    ("test rhs type", lambda f, m, d, t: f.test([[0, 1]], rhs="x"), TYPE, "rhs"),
    ("test rhs value", lambda f, m, d, t: f.test([[0, 1]], rhs=[1, 2, 3]), VALUE, "rhs"),
    ("test ddf value", lambda f, m, d, t: f.test([[0, 1]], ddf="exact"), VALUE, "ddf"),
    ("profile level type", lambda f, m, d, t: f.profile(level="0.9"), TYPE, "level"),
    ("profile level value", lambda f, m, d, t: f.profile(level=99), VALUE, "level"),
    ("profile points type", lambda f, m, d, t: f.profile(points=2.5), TYPE, "points"),
    ("profile points value", lambda f, m, d, t: f.profile(points=1), VALUE, "points"),
    ("profile executor type", lambda f, m, d, t: f.profile(executor=4), TYPE, "executor"),
    ("ranova reduce_terms type", lambda f, m, d, t: f.ranova(reduce_terms="yes"), TYPE,
     "reduce_terms"),
    ("confint method type", lambda f, m, d, t: f.confint(method=1), TYPE, "method"),
    ("confint method value", lambda f, m, d, t: f.confint(method="mcmc"), VALUE, "method"),
    ("confint level type", lambda f, m, d, t: f.confint(level="95%"), TYPE, "level"),
    ("confint level value", lambda f, m, d, t: f.confint(level=95), VALUE, "level"),
    ("confint executor type", lambda f, m, d, t: f.confint(executor="pool"), TYPE, "executor"),
    ("confint parameters type", lambda f, m, d, t: f.confint(parameters=5), TYPE, "parameters"),
    ("confint parameters value", lambda f, m, d, t: f.confint(parameters=["sd_x"]), VALUE,
     "parameter"),
    ("confint bootstrap option", lambda f, m, d, t: f.confint("wald", n=100), TYPE,
     "method='bootstrap'"),
    ("confint bootstrap n", lambda f, m, d, t: f.confint("bootstrap", n=0), VALUE, "n "),
    ("resid kind type", lambda f, m, d, t: f.resid(kind=1), TYPE, "kind"),
    ("resid kind value", lambda f, m, d, t: f.resid(kind="deviance"), VALUE, "kind"),
    ("resid scaled type", lambda f, m, d, t: f.resid(scaled="yes"), TYPE, "scaled"),
    ("resid na_action type", lambda f, m, d, t: f.resid(na_action=None), TYPE, "na_action"),
    ("resid na_action value", lambda f, m, d, t: f.resid(na_action="drop"), VALUE, "na_action"),
    ("fitted_values kind type", lambda f, m, d, t: f.fitted_values(kind=None), TYPE, "kind"),
    ("fitted_values kind value", lambda f, m, d, t: f.fitted_values(kind="population"), VALUE,
     "kind"),
    ("fitted_values na_action value", lambda f, m, d, t: f.fitted_values(na_action="pass"),
     VALUE, "na_action"),
    ("refit y type", lambda f, m, d, t: f.refit("Reaction"), TYPE, "y"),
    ("refit y value", lambda f, m, d, t: f.refit(np.ones(179)), VALUE, "y"),
    ("simulate n type", lambda f, m, d, t: f.simulate(n=2.5), TYPE, "n "),
    ("simulate n value", lambda f, m, d, t: f.simulate(n=-1), VALUE, "n "),
    ("simulate seed type", lambda f, m, d, t: f.simulate(seed="a"), TYPE, "seed"),
    ("simulate seed value", lambda f, m, d, t: f.simulate(seed=-1), VALUE, "seed"),
    ("bootstrap n type", lambda f, m, d, t: f.bootstrap(n=2.5), TYPE, "n "),
    ("bootstrap n value", lambda f, m, d, t: f.bootstrap(n=0), VALUE, "n "),
    ("bootstrap seed type", lambda f, m, d, t: f.bootstrap(5, seed=1.5), TYPE, "seed"),
    ("bootstrap progress type", lambda f, m, d, t: f.bootstrap(5, progress="no"), TYPE,
     "progress"),
    ("bootstrap n_jobs type", lambda f, m, d, t: f.bootstrap(5, n_jobs=1.5), TYPE, "n_jobs"),
    ("bootstrap n_jobs value", lambda f, m, d, t: f.bootstrap(5, n_jobs=0), VALUE, "n_jobs"),
    ("bootstrap level value", lambda f, m, d, t: f.bootstrap(5, level=0.0), VALUE, "level"),
    ("bootstrap executor type", lambda f, m, d, t: f.bootstrap(5, executor=2), TYPE,
     "executor"),
    ("predict newdata type", lambda f, m, d, t: f.predict(5), TYPE, "newdata"),
    ("predict newdata value", lambda f, m, d, t: f.predict(d[["Subject"]]), VALUE, "newdata"),
    ("predict include_random type", lambda f, m, d, t: f.predict(include_random=5), TYPE,
     "include_random"),
    ("predict include_random value", lambda f, m, d, t: f.predict(include_random=["Days"]),
     VALUE, "include_random"),
    ("predict new_levels type", lambda f, m, d, t: f.predict(new_levels=False), TYPE,
     "new_levels"),
    ("predict new_levels value", lambda f, m, d, t: f.predict(new_levels="zero"), VALUE,
     "new_levels"),
    ("predict interval type", lambda f, m, d, t: f.predict(interval=True), TYPE, "interval"),
    ("predict interval value", lambda f, m, d, t: f.predict(interval="conf"), VALUE, "interval"),
    ("predict level type", lambda f, m, d, t: f.predict(level="high"), TYPE, "level"),
    ("predict level value", lambda f, m, d, t: f.predict(level=1.5), VALUE, "level"),
    ("predict na_action value", lambda f, m, d, t: f.predict(na_action="drop"), VALUE,
     "na_action"),
    ("leverage na_action type", lambda f, m, d, t: f.leverage(na_action=True), TYPE,
     "na_action"),
    ("leverage na_action value", lambda f, m, d, t: f.leverage(na_action="all"), VALUE,
     "na_action"),
    ("cooks_distance na_action type", lambda f, m, d, t: f.cooks_distance(na_action=0), TYPE,
     "na_action"),
    ("cooks_distance na_action value", lambda f, m, d, t: f.cooks_distance(na_action="x"),
     VALUE, "na_action"),
    ("influence_groups group type", lambda f, m, d, t: f.influence_groups(5), TYPE, "group"),
    ("influence_groups group value", lambda f, m, d, t: f.influence_groups("Patient"), VALUE,
     "group"),
    ("influence_groups progress type",
     lambda f, m, d, t: f.influence_groups("Subject", progress=1), TYPE, "progress"),
    ("influence_groups executor type",
     lambda f, m, d, t: f.influence_groups("Subject", executor="dask"), TYPE, "executor"),
    ("term_covariance type", lambda f, m, d, t: f.term_covariance("Subject"), TYPE,
     "term_index"),
    ("term_covariance value", lambda f, m, d, t: f.term_covariance(1), VALUE, "term_index"),
]

FUNCTION_CASES = [
    ("anova fit type", lambda f, m, d, t: mm.anova(f, "m1"), TYPE, "argument 2"),
    ("anova count", lambda f, m, d, t: mm.anova(f), VALUE, "two or more"),
    ("anova refit type", lambda f, m, d, t: mm.anova(f, f, refit="no"), TYPE, "refit"),
    ("anova names type", lambda f, m, d, t: mm.anova(f, f, names="ab"), TYPE, "names"),
    ("anova names value", lambda f, m, d, t: mm.anova(f, f, names=["a"]), VALUE, "names"),
    ("write_report fit type", lambda f, m, d, t: mm.write_report("fit", t / "r.html"), TYPE,
     "fit"),
    ("write_report path type", lambda f, m, d, t: mm.write_report(f, 5), TYPE, "path"),
    ("write_report path value", lambda f, m, d, t: mm.write_report(f, t / "no" / "r.html"),
     VALUE, "path"),
    ("write_report title type", lambda f, m, d, t: mm.write_report(f, t / "r.html", title=1),
     TYPE, "title"),
    ("write_report profile type",
     lambda f, m, d, t: mm.write_report(f, t / "r.html", profile="yes"), TYPE, "profile"),
    ("write_report dpi type", lambda f, m, d, t: mm.write_report(f, t / "r.html", dpi=72.5),
     TYPE, "dpi"),
    ("write_report dpi value", lambda f, m, d, t: mm.write_report(f, t / "r.html", dpi=0),
     VALUE, "dpi"),
    ("write_report ddf value", lambda f, m, d, t: mm.write_report(f, t / "r.html", ddf="welch"),
     VALUE, "ddf"),
    ("datasets.load name type", lambda f, m, d, t: mm.datasets.load(5), TYPE, "name"),
    ("datasets.load name value", lambda f, m, d, t: mm.datasets.load("sleep"), VALUE, "name"),
    ("datasets.describe name type", lambda f, m, d, t: mm.datasets.describe(None), TYPE, "name"),
    ("datasets.describe name value", lambda f, m, d, t: mm.datasets.describe(""), VALUE, "name"),
    ("BootstrapResult.confint level",
     lambda f, m, d, t: f.bootstrap(2, seed=1, progress=False).confint(level=2), VALUE, "level"),
]

PLOT_CASES = [
    ("caterpillar fit type", lambda f, m, d, t: mm.plots.caterpillar(None), TYPE, "fit"),
    ("caterpillar group type", lambda f, m, d, t: mm.plots.caterpillar(f, group=1), TYPE,
     "group"),
    ("caterpillar group value", lambda f, m, d, t: mm.plots.caterpillar(f, group="Day"), VALUE,
     "group"),
    ("caterpillar term type", lambda f, m, d, t: mm.plots.caterpillar(f, term=5), TYPE, "term"),
    ("caterpillar term value", lambda f, m, d, t: mm.plots.caterpillar(f, term="Day"), VALUE,
     "term"),
    ("caterpillar level type", lambda f, m, d, t: mm.plots.caterpillar(f, level="95"), TYPE,
     "level"),
    ("caterpillar level value", lambda f, m, d, t: mm.plots.caterpillar(f, level=95), VALUE,
     "level"),
    ("caterpillar ax type", lambda f, m, d, t: mm.plots.caterpillar(f, ax=5), TYPE, "ax"),
    ("qq_ranef fit type", lambda f, m, d, t: mm.plots.qq_ranef("fit"), TYPE, "fit"),
    ("qq_ranef group value", lambda f, m, d, t: mm.plots.qq_ranef(f, group="Days"), VALUE,
     "group"),
    ("residuals_vs_fitted fit type", lambda f, m, d, t: mm.plots.residuals_vs_fitted(m), TYPE,
     "fit"),
    ("residuals_vs_fitted ax type", lambda f, m, d, t: mm.plots.residuals_vs_fitted(f, ax="a"),
     TYPE, "ax"),
    ("qq_residuals fit type", lambda f, m, d, t: mm.plots.qq_residuals(d), TYPE, "fit"),
    ("qq_residuals ax type", lambda f, m, d, t: mm.plots.qq_residuals(f, ax=[1]), TYPE, "ax"),
    ("group_panels x type", lambda f, m, d, t: mm.plots.group_panels(f, 1), TYPE, "x"),
    ("group_panels x value", lambda f, m, d, t: mm.plots.group_panels(f, "Hours"), VALUE, "x"),
    ("group_panels ncols type", lambda f, m, d, t: mm.plots.group_panels(f, "Days", ncols="6"),
     TYPE, "ncols"),
    ("group_panels ncols value", lambda f, m, d, t: mm.plots.group_panels(f, "Days", ncols=0),
     VALUE, "ncols"),
    ("profile_zeta profile type", lambda f, m, d, t: mm.plots.profile_zeta(f, profile=5), TYPE,
     "profile"),
    ("profile_zeta profile value",
     lambda f, m, d, t: mm.plots.profile_zeta(f, profile=pd.DataFrame({"a": [1]})), VALUE,
     "profile"),
    ("profile_zeta ncols value", lambda f, m, d, t: mm.plots.profile_zeta(f, ncols=-1), VALUE,
     "ncols"),
    ("profile_zeta parameters type",
     lambda f, m, d, t: mm.plots.profile_zeta(f, parameters=3, profile=_PROFILE), TYPE,
     "parameters"),
    ("profile_zeta parameters value",
     lambda f, m, d, t: mm.plots.profile_zeta(f, parameters="x", profile=_PROFILE), VALUE,
     "parameter"),
]

_PROFILE = pd.DataFrame({"parameter": ["sigma", "sigma"], "value": [20.0, 30.0],
                         "zeta": [-1.0, 1.0]})

CASES = MODEL_CASES + FIT_CASES + FUNCTION_CASES + PLOT_CASES


@pytest.mark.parametrize("call, error, words", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_argument(call, error, words, sleep, data, tmp_path):
    """``sleep`` is conftest's REML fit of sleepstudy."""
    with pytest.raises(error) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call(sleep, sleep.model, data, tmp_path)
    message = str(info.value)
    assert words in message, message
    assert isinstance(info.value, ValueError)  # every input error is a ValueError


@pytest.mark.parametrize("call, error, words", [
    (lambda g: mm.gauge_rr(g, ["part"], "operator", "y"), TYPE, "part"),
    (lambda g: mm.gauge_rr(g, "part", "operator", "weight"), DATA, "response"),
    (lambda g: mm.gauge_rr(g, "part", "operator", "y", tolerance="12"), TYPE, "tolerance"),
    (lambda g: mm.gauge_rr(g, "part", "operator", "y", tolerance=-1), DATA, "tolerance"),
    (lambda g: mm.gauge_rr(g, "part", "operator", "y", level="0.9"), TYPE, "level"),
    (lambda g: mm.gauge_rr(g, "part", "operator", "y", level=90), VALUE, "level"),
], ids=["part type", "response value", "tolerance type", "tolerance value", "level type",
        "level value"])
def test_gauge_rr_bad_argument(gauge_data, call, error, words):
    with pytest.raises(error, match=words):
        call(gauge_data)


def test_numpy_scalars_are_accepted(sleep):
    """numpy booleans and integers are as good as Python's."""
    assert sleep.simulate(np.int64(2), seed=np.int32(1)).shape == (180, 2)
    np.testing.assert_array_equal(sleep.resid(scaled=np.bool_(True)), sleep.resid(scaled=True))
    assert sleep.anova(type=np.int64(2)).shape[0] == 1
    assert sleep.coef_table("kr").shape == sleep.coef_table("kenward-roger").shape


def test_messages_show_the_value_and_what_is_allowed(sleep, data):
    with pytest.raises(TypeError) as info:
        mm.lmer(SLEEP, data, reml="no")
    assert str(info.value) == "reml must be True or False, not 'no' (str)"
    with pytest.raises(ValueError) as info:
        sleep.confint(level=95)
    assert str(info.value) == ("level must be a number between 0 and 1 (exclusive), such as "
                               "0.95, not 95")
    with pytest.raises(ValueError) as info:
        sleep.predict(interval="conf")
    assert str(info.value) == ("interval must be one of None, 'confidence', 'prediction', not "
                               "'conf'")
    with pytest.raises(TypeError) as info:
        sleep.bootstrap(n=np.float64(2.5))
    assert str(info.value) == ("n (the number of replicates) must be a positive integer, not "
                               "2.5 (float64)")


# -- the command line -------------------------------------------------------------------------

def _error_line(capsys, argv) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "", err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("mixedmodels: error: ") and "Traceback" not in err
    return lines[-1]


@pytest.fixture
def files(tmp_path):
    """A directory with new data for --predict, sleepstudy with a text column, and a gauge
    study with a text column."""
    pd.DataFrame({"Days": [1.0], "Subject": ["308"]}).to_csv(tmp_path / "new.csv", index=False)
    mm.datasets.load("sleepstudy").assign(note="text").to_csv(tmp_path / "sleep.csv",
                                                              index=False)
    rows = [(p, o, float(p) + 0.1 * r, "text") for p in range(4) for o in "ab" for r in range(2)]
    pd.DataFrame(rows, columns=["P", "O", "Y", "N"]).to_csv(tmp_path / "gauge.csv", index=False)
    return tmp_path


def _fit(*extra):
    return lambda d: ["fit", SLEEP, "--data", "sleepstudy", *extra]


def _gauge(*extra, part="P", data="gauge.csv"):
    return lambda d: ["gauge-rr", str(d / data), "--part", part, "--operator", "O",
                      "--response", "Y", *extra]


# (id, argv(directory), words in the error line)
CLI_CASES = [
    ("formula cut short", lambda d: ["fit", "Reaction ~", "--data", "sleepstudy"], "formula"),
    ("formula unknown column",
     lambda d: ["fit", "Reaction ~ Dayz + (1 | Subject)", "--data", "sleepstudy"], "formula"),
    ("--data directory", lambda d: ["fit", SLEEP, "--data", str(d)], "--data"),
    ("--data unknown", lambda d: ["fit", SLEEP, "--data", "sleepstudie"], "--data"),
    ("--sep type", _fit("--sep", "ab"), "--sep"),
    ("--sep value", _fit("--sep", '"'), "--sep"),
    ("--ml value", _fit("--ml=yes"), "--ml"),
    ("--json value", _fit("--json=1"), "--json"),
    ("--anova value", _fit("--anova=3"), "--anova"),
    ("--weights type", lambda d: ["fit", SLEEP, "--data", str(d / "sleep.csv"), "--weights",
                                  "note"], "weights"),
    ("--weights value", _fit("--weights", "w"), "weights"),
    ("--ddf type", _fit("--ddf", "3"), "--ddf"),
    ("--ddf value", _fit("--ddf", "welch"), "--ddf"),
    ("--anova-type type", _fit("--anova", "--anova-type", "3.0"), "--anova-type"),
    ("--anova-type value", _fit("--anova", "--anova-type", "4"), "--anova-type"),
    ("--anova-type alone", _fit("--anova-type", "2"), "--anova-type"),
    ("--predict type", lambda d: _fit("--predict", str(d), "--out", str(d / "p.csv"))(d),
     "--predict"),
    ("--predict value", lambda d: _fit("--predict", str(d / "no.csv"), "--out",
                                       str(d / "p.csv"))(d), "--predict"),
    ("--out type", lambda d: _fit("--predict", str(d / "new.csv"), "--out", str(d))(d), "--out"),
    ("--out value", lambda d: _fit("--predict", str(d / "new.csv"), "--out",
                                   str(d / "no" / "p.csv"))(d), "--out"),
    ("--out alone", lambda d: _fit("--out", str(d / "p.csv"))(d), "--out"),
    ("--interval type", lambda d: _fit("--predict", str(d / "new.csv"), "--out",
                                       str(d / "p.csv"), "--interval", "1")(d), "--interval"),
    ("--interval value", lambda d: _fit("--predict", str(d / "new.csv"), "--out",
                                        str(d / "p.csv"), "--interval", "conf")(d),
     "--interval"),
    ("--interval alone", _fit("--interval", "prediction"), "--interval"),
    ("--report type", lambda d: _fit("--report", str(d))(d), "--report"),
    ("--report value", lambda d: _fit("--report", str(d / "no" / "r.html"))(d), "--report"),
    ("gauge DATA type", _gauge(data="."), "DATA"),
    ("gauge DATA value", _gauge(data="no.csv"), "DATA"),
    ("gauge --part value", _gauge(part="Part"), "part"),
    ("gauge --part missing", lambda d: ["gauge-rr", str(d / "gauge.csv"), "--operator", "O",
                                        "--response", "Y"], "--part"),
    ("gauge --operator value", lambda d: ["gauge-rr", str(d / "gauge.csv"), "--part", "P",
                                          "--operator", "Op", "--response", "Y"], "operator"),
    ("gauge --response type", lambda d: ["gauge-rr", str(d / "gauge.csv"), "--part", "P",
                                         "--operator", "O", "--response", "N"], "response"),
    ("gauge --response value", lambda d: ["gauge-rr", str(d / "gauge.csv"), "--part", "P",
                                          "--operator", "O", "--response", "Z"], "response"),
    ("gauge --tolerance type", _gauge("--tolerance", "wide"), "--tolerance"),
    ("gauge --tolerance value", _gauge("--tolerance", "-1"), "--tolerance"),
    ("gauge --tolerance nan", _gauge("--tolerance", "nan"), "--tolerance"),
    ("gauge --json value", _gauge("--json=no"), "--json"),
    ("gauge --sep value", _gauge("--sep", ""), "--sep"),
]


@pytest.mark.parametrize("argv, words", [case[1:] for case in CLI_CASES],
                         ids=[case[0] for case in CLI_CASES])
def test_bad_command_line(capsys, files, argv, words):
    line = _error_line(capsys, argv(files))
    assert words in line, line


def test_ddf_alias_on_the_command_line(capsys):
    assert main(["fit", SLEEP, "--data", "sleepstudy", "--ddf", "kr"]) == 0
    assert "kenward-roger degrees of freedom" in capsys.readouterr().out
