"""Columns read as values must hold numbers (design/columns.py): text among numbers ("n/a",
".", "?") and dates or times are DataErrors that name the column, the rows and what to do;
factor(x) reads any column as levels, and dates are fine grouping factors."""

from __future__ import annotations

import datetime
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import DataError

SLEEP = "Reaction ~ Days + (1 | Subject)"


def sleepstudy() -> pd.DataFrame:
    return mm.datasets.load("sleepstudy")


def quiet_lmer(formula: str, data: pd.DataFrame, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.lmer(formula, data, **options)


def with_text(column: str, cells: dict, dtype=object, data=None) -> pd.DataFrame:
    """sleepstudy with the text ``cells`` (row label -> text) in ``column``."""
    data = sleepstudy() if data is None else data
    values = data[column].astype(object)
    for row, text in cells.items():
        values[row] = text
    return data.assign(**{column: values.astype(dtype) if dtype is not object else values})


# --- text among numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["n/a", ".", "?", "missing", "nan"])
@pytest.mark.parametrize("dtype", [object, "string", str])
def test_text_among_numbers_is_an_error(text, dtype):
    data = with_text("Days", {5: text, 17: text}, dtype)
    with pytest.raises(DataError) as info:
        mm.lmer(SLEEP, data)
    message = str(info.value)
    assert f"column 'Days' holds numbers and text: {text!r} (rows 5, 17)" in message
    assert "pd.to_numeric(data['Days'], errors='coerce')" in message
    assert "factor(Days)" in message


def test_the_message_names_index_labels_values_and_the_first_rows():
    data = sleepstudy().set_index(pd.Index([f"obs{i}" for i in range(180)]))
    data = with_text("Days", {f"obs{i}": "." for i in range(3, 10)} | {"obs40": "?"}, data=data)
    with pytest.raises(DataError, match=r"'\.' \(rows 'obs3', 'obs4', 'obs5', 'obs6', 'obs7', "
                                        r"\.\.\.\), '\?' \(row 'obs40'\)"):
        mm.lmer(SLEEP, data)


@pytest.mark.parametrize("formula, column", [
    ("Reaction ~ poly(Days, 2) + (1 | Subject)", "Days"),
    ("Reaction ~ log1p(Days) + (1 | Subject)", "Days"),
    ("Reaction ~ 1 + (Days | Subject)", "Days"),
    ("Reaction ~ Days:Subject + (1 | Subject)", "Days"),
    ("Reaction ~ 1 + offset(Days) + (1 | Subject)", "Days"),
    ("Reaction ~ Days + (1 | Subject)", "Reaction"),
    ("log(Reaction) ~ Days + (1 | Subject)", "Reaction"),
])
def test_every_use_as_values_is_checked(formula, column):
    """Predictors, functions of them, random-effects terms, offsets and the response."""
    with pytest.raises(DataError, match=f"(column|the response) '{column}' holds numbers and "
                                        "text"):
        mm.lmer(formula, with_text(column, {3: "n/a"}))


def test_weights_are_checked():
    data = sleepstudy().assign(w=lambda f: 1.0 + f.Days / 10)
    with pytest.raises(DataError, match="column 'w' holds numbers and text: '.' \\(row 8\\)"):
        mm.lmer(SLEEP, with_text("w", {8: "."}, data=data), weights="w")


def test_the_advice_works():
    """pd.to_numeric(..., errors="coerce") makes the text missing: those rows are dropped."""
    data = with_text("Days", {5: "n/a", 17: "?"})
    data["Days"] = pd.to_numeric(data["Days"], errors="coerce")
    fit = quiet_lmer(SLEEP, data)
    expected = quiet_lmer(SLEEP, sleepstudy().drop(index=[5, 17]))
    assert fit.nobs == 178 and fit.objective == pytest.approx(expected.objective, rel=1e-12)


@pytest.mark.parametrize("term", ["factor(Days)", "C(Days)", "C(factor(Days), contr.sum)",
                                  "ordered(Days)"])
def test_a_column_read_as_levels_is_not_checked(term):
    """factor(x) (or C(x), ordered(x)) reads the column as levels, the text among them: the
    numbers sort before the text."""
    fit = quiet_lmer(f"Reaction ~ {term} + (1 | Subject)", with_text("Days", {5: "n/a"}))
    assert fit.x_names[0] == "(Intercept)" and len(fit.x_names) == 11
    if term == "factor(Days)":
        assert fit.x_names[1] == "factor(Days)1" and fit.x_names[-1] == "factor(Days)n/a"


def test_a_column_of_labels_is_not_a_column_of_numbers():
    """At most half of the distinct values numbers: labels (some of which look like numbers),
    a factor as before; text that is all numbers ("308") is labels too."""
    labels = sleepstudy().assign(dose=lambda f: np.where(f.Days < 3, "none", "low"))
    labels.loc[labels.Days > 6, "dose"] = "10"
    fit = quiet_lmer("Reaction ~ dose + (1 | Subject)", labels)
    assert fit.x_names == ("(Intercept)", "doselow", "dosenone")
    coded = quiet_lmer("Reaction ~ dose + (1 | Subject)",
                       sleepstudy().assign(dose=lambda f: (f.Days % 3).astype(str)))
    assert coded.x_names == ("(Intercept)", "dose1", "dose2")


def test_a_grouping_factor_is_not_checked():
    data = with_text("Subject", {0: "n/a"}).assign(Subject=lambda f: f.Subject.astype(object))
    assert quiet_lmer(SLEEP, data).nobs == 180


def test_numbers_stored_as_objects_are_an_error():
    """What is left after the text was replaced cell by cell: Python numbers in an object
    column, which would be a factor with one level per value."""
    data = with_text("Days", {5: np.nan})
    with pytest.raises(DataError, match=r"column 'Days' holds numbers stored as Python objects "
                                        r".*pd\.to_numeric\(data\['Days'\]\)"):
        mm.lmer(SLEEP, data)


# --- dates and times ------------------------------------------------------------------------------

START = pd.Timestamp("2024-03-01 08:00")


def dates(kind: str) -> pd.Series:
    """Each row's day of sleepstudy as a date or time of the given kind."""
    days = sleepstudy().Days
    stamps = START + pd.to_timedelta(days, unit="D")
    return {
        "datetime64[ns]": stamps.astype("datetime64[ns]"),
        "tz-aware": stamps.dt.tz_localize("Europe/Paris"),
        "timedelta": pd.to_timedelta(days, unit="D"),
        "date objects": pd.Series([t.date() for t in stamps], dtype=object),
        "datetime objects": pd.Series([t.to_pydatetime() for t in stamps], dtype=object),
        "Timestamp objects": pd.Series(list(stamps), dtype=object),
        "Timedelta objects": pd.Series(list(pd.to_timedelta(days, unit="D")), dtype=object),
        "periods": stamps.dt.to_period("D"),
        "times of day": pd.Series([(START + pd.Timedelta(hours=h)).time() for h in days],
                                  dtype=object),
    }[kind]


DATE_KINDS = ["datetime64[ns]", "tz-aware", "timedelta", "date objects", "datetime objects",
              "Timestamp objects", "Timedelta objects", "periods", "times of day"]
HOLDS = {"datetime64[ns]": "dates", "tz-aware": "dates", "timedelta": "time spans",
         "date objects": "date objects", "datetime objects": "date objects",
         "Timestamp objects": "date objects", "Timedelta objects": "time span objects",
         "periods": "periods", "times of day": "times of day"}


@pytest.mark.parametrize("kind", DATE_KINDS)
@pytest.mark.parametrize("formula", ["Reaction ~ t + (1 | Subject)",
                                     "Reaction ~ poly(t, 2) + (1 | Subject)",
                                     "Reaction ~ 1 + (t | Subject)"])
def test_dates_as_values_are_an_error_that_says_how_to_convert(kind, formula):
    with pytest.raises(DataError) as info:
        mm.lmer(formula, sleepstudy().assign(t=dates(kind)))
    message = str(info.value)
    assert message.startswith(f"column 't' holds {HOLDS[kind]} (")
    assert "convert it to a number, e.g." in message and "factor(t)" in message


@pytest.mark.parametrize("kind, convert", [
    ("datetime64[ns]", lambda t: (t - t.min()).dt.days),
    ("tz-aware", lambda t: (t - t.min()).dt.days),
    ("timedelta", lambda t: t.dt.total_seconds() / 86400),
    ("date objects", lambda t: (pd.to_datetime(t) - pd.to_datetime(t).min()).dt.days),
    ("periods", lambda t: (t.dt.to_timestamp() - t.dt.to_timestamp().min()).dt.days),
])
def test_the_conversions_the_messages_give_work(kind, convert):
    fit = quiet_lmer("Reaction ~ t + (1 | Subject)",
                     sleepstudy().assign(t=convert(dates(kind))))
    reference = quiet_lmer(SLEEP, sleepstudy())
    np.testing.assert_allclose(fit.beta, reference.beta, rtol=1e-9)


@pytest.mark.parametrize("kind", DATE_KINDS)
def test_dates_as_grouping_factors_work(kind):
    """A date is a level like any other: alone, in an interaction, and in predictions."""
    data = sleepstudy().assign(t=dates(kind))
    fit = quiet_lmer("Reaction ~ Days + (1 | Subject) + (1 | t)", data)
    labels = quiet_lmer("Reaction ~ Days + (1 | Subject) + (1 | t)",
                        data.assign(t=data.Days.astype(str)))
    assert fit.objective == pytest.approx(labels.objective, rel=1e-10)
    data["half"] = np.where(data.Subject < "335", "first", "second")
    crossed = quiet_lmer("Reaction ~ Days + (1 | half:t)", data)
    assert len(crossed.ranef["half:t"]) == 20
    np.testing.assert_allclose(fit.predict(data.iloc[:5]), fit.fitted[:5], rtol=1e-12)


@pytest.mark.parametrize("kind", ["datetime64[ns]", "tz-aware", "date objects"])
def test_dates_read_as_levels_or_converted_in_the_formula_work(kind):
    data = sleepstudy().assign(t=dates(kind))
    fit = quiet_lmer("Reaction ~ factor(t) + (1 | Subject)", data)
    assert len(fit.x_names) == 10
    if kind != "date objects":
        converted = quiet_lmer("Reaction ~ I(t.dt.dayofyear) + (1 | Subject)", data)
        assert converted.fixef["I(t.dt.dayofyear)"] == pytest.approx(
            quiet_lmer(SLEEP, sleepstudy()).fixef["Days"], rel=1e-9)


def test_date_weights_and_response_are_checked():
    data = sleepstudy().assign(t=dates("datetime64[ns]"))
    with pytest.raises(DataError, match="column 't' holds dates"):
        mm.lmer("t ~ Days + (1 | Subject)", data)
    with pytest.raises(DataError, match="column 't' holds dates"):
        mm.lmer(SLEEP, data, weights="t")
    day = datetime.date(2024, 3, 1)
    with pytest.raises(DataError, match="column 'd' holds date objects"):
        mm.lmer("Reaction ~ d + (1 | Subject)", data.assign(d=day))


# --- values that are neither numbers nor levels, and the response's messages ---------------------
@pytest.mark.parametrize("column, formula", [
    ("Subject", SLEEP),                                 # a grouping factor
    ("G", "Reaction ~ Days + G + (1 | Subject)"),       # a fixed-effects factor
    ("Days", SLEEP),                                    # a covariate
])
@pytest.mark.parametrize("wrap", [lambda v: [v], lambda v: {"a": v}, lambda v: np.array([v])])
def test_unhashable_cells_name_the_column(column, formula, wrap):
    data = sleepstudy().assign(G=lambda d: d.Subject)
    data[column] = pd.Series([wrap(v) for v in data[column]], dtype=object)
    with pytest.raises(DataError, match=rf"column '{column}' holds values of type "
                                        r"(list|dict|ndarray) .*neither numbers nor levels"):
        quiet_lmer(formula, data)


@pytest.mark.parametrize("dtype", [object, "str"])
def test_the_response_is_told_to_be_numbers_not_a_factor(dtype):
    """A response of Python numbers, or of numbers with text, is told to convert, with no
    advice to write factor(y), which a response cannot be."""
    data = sleepstudy()
    objects = data.assign(Reaction=data.Reaction.astype(object))
    with pytest.raises(DataError, match=r"^the response 'Reaction' holds numbers stored as "
                                        r"Python objects") as objects_error:
        quiet_lmer(SLEEP, objects)
    text = with_text("Reaction", {3: "n/a"}, dtype)
    with pytest.raises(DataError, match=r"^the response 'Reaction' holds numbers and text: "
                                        r"'n/a' \(row 3\)") as text_error:
        quiet_lmer(SLEEP, text)
    for error in (objects_error, text_error):
        assert "factor(" not in str(error.value)


def test_numbers_stored_as_text_in_a_random_term_are_named():
    """Days as text is a factor of 10 levels, (Days | Subject) then 180 random effects for 180
    rows (lme4 refuses it too): the error says the column is text and how to convert it."""
    data = sleepstudy().assign(Days=lambda d: d.Days.astype(str))
    with pytest.raises(DataError, match=r"180 random effects .*the column 'Days' is text, "
                                        r"each of its 10 values a level .*pd\.to_numeric"):
        mm.lmer("Reaction ~ Days + (Days | Subject)", data)
