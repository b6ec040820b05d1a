"""Ordered factors (pandas Categorical with ordered=True, or ordered(x)) are coded by polynomial
contrasts, as lme4 codes R's ordered factors (contr.poly: x.L, x.Q, x.C, x^4): fixed effects,
their names, the REML criterion, lmerTest's ANOVA tables and predictions against
tests/reference/ordered_factors.json (made by ordered_factors.R)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference

import mixedmodels as mm
from mixedmodels.design.encoding import fast_encoding

REFERENCE = load_reference("ordered_factors")
MODELS = REFERENCE["models"]
BANDS = {"band3": ([-1, 2, 5, 9], ["early", "mid", "late"]),
         "band5": ([-1, 1, 3, 5, 7, 9], ["d01", "d23", "d45", "d67", "d89"])}


def banded(frame: pd.DataFrame) -> pd.DataFrame:
    """sleepstudy's Days cut into ordered bands, and its first nine subjects and the others,
    as ordered_factors.R makes them."""
    first = sorted(mm.datasets.load("sleepstudy").Subject.unique())[:9]
    return frame.assign(half=np.where(frame.Subject.isin(first), "first", "second"),
                        **{name: pd.cut(frame.Days, edges, labels=labels, ordered=True)
                           for name, (edges, labels) in BANDS.items()})


DATA = banded(mm.datasets.load("sleepstudy"))
NEW = banded(pd.DataFrame(REFERENCE["new"])[["Days", "Subject"]])


def quiet_lmer(formula: str, data: pd.DataFrame = DATA):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, data)


@pytest.fixture(scope="module")
def fits():
    return {model["formula"]: quiet_lmer(model["formula"]) for model in MODELS}


@pytest.mark.parametrize("model", MODELS, ids=[model["formula"] for model in MODELS])
def test_matches_lme4(fits, model):
    fit = fits[model["formula"]]
    assert list(fit.fixef.index) == list(model["fixef"])
    assert fit.objective == pytest.approx(model["reml_criterion"], rel=1e-10)
    se = np.array(list(model["se"].values()))
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(model["fixef"].values()), rtol=0,
                               atol=1e-5 * se.min())
    np.testing.assert_allclose(fit.stderr.to_numpy(), se, rtol=1e-5)
    np.testing.assert_allclose(fit.theta, model["theta"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fit.predict(NEW), model["predict_new"], rtol=1e-6)


@pytest.mark.parametrize("model", MODELS, ids=[model["formula"] for model in MODELS])
@pytest.mark.parametrize("kind", ["type1", "type3"])
def test_anova_matches_lmertest(fits, model, kind):
    table = fits[model["formula"]].anova(type=int(kind[-1]))
    rows = model["anova"][kind]
    assert list(table.index) == [row["term"] for row in rows]
    for row in rows:
        assert table.loc[row["term"], "num_df"] == row["numdf"]
        assert table.loc[row["term"], "F"] == pytest.approx(row["F"], rel=1e-5)
        assert table.loc[row["term"], "den_df"] == pytest.approx(row["dendf"], rel=1e-5)


def test_the_columns_are_r_contr_poly():
    """R's contr.poly(5): the QR decomposition of the powers of the centred level numbers,
    Q times the diagonal of R (free of the decomposition's signs), columns scaled to norm 1."""
    fit = quiet_lmer("Reaction ~ band5 + (1 | Subject)")
    x = np.arange(5.0) - 2.0
    q, r = np.linalg.qr(np.vander(x, 5, increasing=True))
    contr_poly = q * np.diag(r)
    contr_poly = (contr_poly / np.linalg.norm(contr_poly, axis=0))[:, 1:]
    first_rows = np.unique(DATA.band5.cat.codes.to_numpy(), return_index=True)[1]
    np.testing.assert_allclose(fit.X[first_rows, 1:], contr_poly, atol=1e-12)


def test_new_data_are_coded_as_the_fit_data():
    """A plain text column in new data is coded by the fit's polynomial contrasts; a level the
    fit did not see is an error; the fit pickles."""
    fit = quiet_lmer("Reaction ~ band3 * Days + (1 | Subject)")
    as_text = NEW.assign(band3=NEW.band3.astype(str))
    np.testing.assert_allclose(fit.predict(as_text), fit.predict(NEW), rtol=1e-12)
    copy = pickle.loads(pickle.dumps(fit))
    np.testing.assert_array_equal(copy.predict(NEW), fit.predict(NEW))
    with pytest.raises(mm.DataError, match="band3"):
        fit.predict(NEW.assign(band3=["early", "mid", "never", "late"]))


def test_levels_without_rows_are_no_levels():
    """An ordered factor's levels are those with rows (R's drop.unused.levels): the
    polynomials are those of the levels left."""
    data = DATA.assign(band5=DATA.band5.cat.add_categories(["d10"]),
                       Reaction=DATA.Reaction.mask(DATA.Days >= 8))
    fit = quiet_lmer("Reaction ~ band5 + (1 | Subject)", data)
    assert fit.x_names == ("(Intercept)", "band5.L", "band5.Q", "band5.C")
    four = quiet_lmer("Reaction ~ band5 + (1 | Subject)",
                      data.dropna().assign(band5=lambda f: f.band5.cat.remove_unused_categories()))
    np.testing.assert_allclose(fit.beta, four.beta, rtol=1e-10)


def test_ordered_is_coded_by_polynomials_in_the_fast_encoding():
    """Not by the treatment contrasts of an unordered categorical."""
    assert fast_encoding("band3", DATA).names == ("(Intercept)", "band3.L", "band3.Q")
    unordered = fast_encoding("band3", DATA.assign(band3=DATA.band3.cat.as_unordered()))
    assert unordered.names == ("(Intercept)", "band3mid", "band3late")


def test_an_unordered_categorical_keeps_treatment_contrasts():
    fit = quiet_lmer("Reaction ~ band3 + (1 | Subject)",
                     DATA.assign(band3=DATA.band3.cat.as_unordered()))
    assert fit.x_names == ("(Intercept)", "band3mid", "band3late")
