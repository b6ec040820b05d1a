"""design.py: grouping factors' levels and codes, aliased columns, R's column names, and the
Design that build_design assembles."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.design import frame as design_frame
from mixedmodels.design.build import build_design, drop_aliased
from mixedmodels.design.frame import FrameColumns
from mixedmodels.design.levels import factor_codes, grouping_codes, level_label
from mixedmodels.design.names import r_column_names
from mixedmodels.errors import DataWarning
from mixedmodels.formula.parse import parse_formula


def design(formula: str, data: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_design(parse_formula(formula), data)


# --- grouping_codes ------------------------------------------------------------------------------

def test_string_levels_sorted():
    frame = pd.DataFrame({"g": ["b", "c", "a", "b", "a"]})
    codes, levels = grouping_codes(frame, ("g",))
    assert list(levels) == ["a", "b", "c"]
    np.testing.assert_array_equal(codes, [1, 2, 0, 1, 0])
    assert codes.dtype == np.intp


def test_integer_levels_sort_numerically_and_print_as_integers():
    frame = pd.DataFrame({"g": [10, 9, 100, 9]})
    codes, levels = grouping_codes(frame, ("g",))
    assert list(levels) == ["9", "10", "100"]
    np.testing.assert_array_equal(codes, [1, 0, 2, 0])
    floats = pd.DataFrame({"g": [2.0, 1.0, 1.5, 2.0]})
    assert list(grouping_codes(floats, ("g",))[1]) == ["1", "1.5", "2"]


def test_categorical_keeps_its_own_order_and_drops_unused():
    frame = pd.DataFrame({"g": pd.Categorical(["lo", "hi", "mid", "hi"],
                                              categories=["mid", "lo", "unused", "hi"])})
    codes, levels = grouping_codes(frame, ("g",))
    assert list(levels) == ["mid", "lo", "hi"]
    np.testing.assert_array_equal(codes, [1, 2, 0, 2])


def test_boolean_levels():
    """Labelled as R labels a logical grouping factor's levels (lme4 1.1.31:
    rownames(ranef(m)$g) are "FALSE", "TRUE")."""
    codes, levels = grouping_codes(pd.DataFrame({"g": [True, False, True]}), ("g",))
    assert list(levels) == ["FALSE", "TRUE"]
    np.testing.assert_array_equal(codes, [1, 0, 1])


def test_interaction_levels_first_factor_slowest_unused_dropped():
    frame = pd.DataFrame({"a": ["B", "A", "B", "A", "B"], "b": ["y", "x", "x", "x", "y"]})
    codes, levels = grouping_codes(frame, ("a", "b"))
    assert list(levels) == ["A:x", "B:x", "B:y"]  # A:y never occurs
    np.testing.assert_array_equal(codes, [2, 0, 1, 0, 2])
    codes, levels = grouping_codes(frame, ("b", "a"))
    assert list(levels) == ["x:A", "x:B", "y:B"]


def test_interaction_of_many_large_factors():
    """Combinations are decoded from the pairs present only (never the full product)."""
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame({name: rng.integers(0, 100_000, n) for name in "abcd"})
    codes, levels = grouping_codes(frame, tuple("abcd"))  # 1e20 possible combinations
    labels = frame.astype(str).agg(":".join, axis=1).to_numpy()
    assert len(levels) == len(set(labels))
    np.testing.assert_array_equal(levels[codes], labels)
    order = sorted(set(map(tuple, frame.to_numpy())))
    assert list(levels) == [":".join(map(str, t)) for t in order]


@pytest.mark.parametrize("values", [
    pd.Series(["b", None, "a", "b"], dtype=object), pd.Series(["b", None, "a"], dtype="str"),
    pd.Series(["b", None, "a", "c"] * 250, dtype="str"),  # read as stored (stored_text)
    pd.Series(["b", None, "a", "c"] * 250, dtype="string[python]"),
    pd.Series(["b", None, "a", "c"] * 250, dtype="string[pyarrow]"),
    pd.Series([3, None, 1], dtype="Int64"), pd.Series([2.5, np.nan, -1.0, 2.5]),
    pd.Series([1, "a", 2.5, "a"], dtype=object),  # pandas sorts the numbers first
    pd.Series(pd.to_datetime(["2024-03-01", "2024-01-01", None])),
], ids=["object", "str", "long str", "long string", "long arrow", "Int64", "float", "mixed",
        "dates"])
def test_factor_codes_are_pandas_sorted_factorize(values):
    """The codes (-1 where missing) and level labels of pandas' factorize(sort=True)."""
    codes, levels = factor_codes(values)
    expected_codes, uniques = pd.factorize(values, sort=True)
    np.testing.assert_array_equal(codes, expected_codes)
    assert list(levels) == [level_label(u) for u in uniques]


def test_design_reads_each_column_once(monkeypatch):
    """Each column is read once, as the array pandas stores: no Series (text read as values,
    checked for numbers among it, builds one only for the message that names the rows)."""
    arrays, series = [], []
    getitem = pd.DataFrame.__getitem__
    monkeypatch.setattr(pd.DataFrame, "__getitem__",
                        lambda self, key: series.append(key) or getitem(self, key))
    column_array = design_frame.column_array
    monkeypatch.setattr(design_frame, "column_array",
                        lambda frame, name: arrays.append(name) or column_array(frame, name))
    data = mm.datasets.load("orthodont")
    design = build_design(parse_formula("distance ~ age * Sex + (age | Subject)"), data)
    assert sorted(arrays) == ["Sex", "Subject", "age", "distance"]
    assert series == []
    np.testing.assert_array_equal(design.y, data["distance"].to_numpy(dtype=float))
    assert not design.y.flags.writeable


@pytest.mark.parametrize("dtype", ["int8", "uint16", "Int64", "float32", "category", "str",
                                   "string[python]", "object", "bool"])
def test_column_array_is_the_series_array(dtype):
    """``column_array`` gives what ``frame[name].array`` holds (NumPy's values as an array,
    read-only: a view of the frame's own block), through pandas' block accessor."""
    values = {"bool": [True, False, True]}.get(dtype, [3, 1, 2])
    frame = pd.DataFrame({"x": pd.Series(values).astype(dtype), "y": [0.5, 1.5, 2.5]})
    array = design_frame.column_array(frame, "x")
    expected = frame["x"].array
    assert array.dtype == frame["x"].dtype
    np.testing.assert_array_equal(np.asarray(array, dtype=object),
                                  np.asarray(expected, dtype=object))
    if isinstance(array, np.ndarray):
        assert not array.flags.writeable
    columns = design_frame.FrameColumns(frame)
    np.testing.assert_array_equal(columns.values("x"), frame["x"].to_numpy())
    np.testing.assert_array_equal(columns.labels("x"), frame["x"].to_numpy(dtype=str))


def test_long_text_grouping_factors_are_coded_as_stored(monkeypatch):
    """Long columns of pandas' text are coded, and their missing values found, without a
    NumPy array of their values (one Python string per row: 60 MB per million rows)."""
    read = []
    values = FrameColumns.values
    monkeypatch.setattr(FrameColumns, "values",
                        lambda self, name: read.append(name) or values(self, name))
    data = pd.concat([mm.datasets.load("penicillin")] * 7, ignore_index=True)
    data.loc[3, "plate"] = None
    assert isinstance(data["plate"].dtype, pd.StringDtype) and len(data) == 1008
    with pytest.warns(DataWarning, match="dropped 1 of 1008 rows"):
        design = build_design(parse_formula("diameter ~ 1 + (1 | plate) + (1 | sample)"), data)
    assert read == ["diameter"]
    assert [len(term.levels) for term in design.terms] == [24, 6]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("pqrs"), st.integers(0, 12)), min_size=1,
                max_size=40))
def test_codes_index_the_levels(rows):
    frame = pd.DataFrame(rows, columns=["a", "b"])
    codes, levels = grouping_codes(frame, ("a", "b"))
    expected = [f"{a}:{b}" for a, b in rows]
    assert list(levels[codes]) == expected
    assert sorted(set(expected), key=lambda s: (s.split(":")[0], int(s.split(":")[1]))) \
        == list(levels)
    assert len(set(codes)) == len(levels)  # every level is used


# --- drop_aliased --------------------------------------------------------------------------------

def test_full_rank_is_unchanged():
    X = np.column_stack([np.ones(5), np.arange(5.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept, names, dropped = drop_aliased(X, ("(Intercept)", "x"))
    assert kept is X and names == ("(Intercept)", "x") and dropped == ()


def test_later_aliased_columns_are_dropped_with_a_warning():
    x = np.arange(6.0)
    X = np.column_stack([np.ones(6), x, 2 * x + 1, np.zeros(6), x ** 2, x - 3])
    names = ("(Intercept)", "x", "x2", "zero", "xsq", "shift")
    with pytest.warns(DataWarning, match="x2, zero, shift"):
        kept, kept_names, dropped = drop_aliased(X, names)
    assert kept_names == ("(Intercept)", "x", "xsq")
    assert dropped == ("x2", "zero", "shift")
    np.testing.assert_array_equal(kept, X[:, [0, 1, 4]])


def test_nearly_aliased_column_by_relative_tolerance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    tiny = 1e-9 * rng.normal(size=50)  # below 1e-7 of the column's norm: aliased
    with pytest.warns(DataWarning):
        _, names, dropped = drop_aliased(np.column_stack([x, 3 * x + tiny]), ("x", "y"))
    assert dropped == ("y",)
    small = 1e-4 * rng.normal(size=50)  # clearly independent
    _, names, dropped = drop_aliased(np.column_stack([x, 3 * x + small]), ("x", "y"))
    assert dropped == ()


def test_alias_check_is_scale_free():
    x = np.arange(10.0)
    for scale in (1e-12, 1.0, 1e12):
        with pytest.warns(DataWarning):
            _, _, dropped = drop_aliased(np.column_stack([np.ones(10), x, scale * (x + 1)]),
                                         ("1", "x", "s"))
        assert dropped == ("s",)


# --- r_column_names ------------------------------------------------------------------------------

@pytest.mark.parametrize("formulaic, r", [
    ("Intercept", "(Intercept)"),
    ("Days", "Days"),
    ("Type[T.T2]", "TypeT2"),
    ("Sex[Male]", "SexMale"),
    ("age:Sex[T.Male]", "age:SexMale"),
    ("I(age ** 2)", "I(age^2)"),
    ("np.log(x + 1)", "np.log(x + 1)"),
])
def test_r_column_names(formulaic, r):
    assert r_column_names([formulaic]) == (r,)


# --- build_design --------------------------------------------------------------------------------

def test_design_of_orthodont():
    data = mm.datasets.load("orthodont")
    d = design("distance ~ age * Sex + (age | Subject)", data)
    assert d.x_names == ("(Intercept)", "age", "SexMale", "age:SexMale")
    assert d.n == len(data) == 108
    np.testing.assert_array_equal(d.y, data.distance.to_numpy())
    male = (data.Sex == "Male").to_numpy(dtype=float)
    np.testing.assert_array_equal(d.X[:, 2], male)
    np.testing.assert_array_equal(d.X[:, 3], male * data.age.to_numpy())
    (term,) = d.terms
    assert term.columns == ("(Intercept)", "age") and term.group == "Subject"
    assert list(term.levels) == sorted(data.Subject.unique())
    np.testing.assert_array_equal(term.levels[term.codes], data.Subject.to_numpy())
    np.testing.assert_array_equal(term.values[:, 1], data.age.to_numpy())
    assert term.aliased == ()


def test_terms_ordered_by_number_of_levels_stable():
    pastes = mm.datasets.load("pastes")
    d = design("strength ~ 1 + (1 | batch) + (1 | batch/cask)", pastes)
    assert [t.group for t in d.terms] == ["cask:batch", "batch", "batch"]
    data = pd.DataFrame({"y": np.arange(12.0) ** 1.5, "g": list("abcd") * 3,
                         "h": list("wxyz") * 3, "k": list("pq") * 6})
    d = design("y ~ (1 | k) + (1 | h) + (1 | g)", data)
    assert [t.group for t in d.terms] == ["h", "g", "k"]  # ties keep the formula's order


def test_rows_record_the_rows_used():
    data = mm.datasets.load("sleepstudy")
    data.loc[[4, 9], "Reaction"] = np.nan
    with pytest.warns(DataWarning, match="dropped 2 of 180"):
        d = build_design(parse_formula("Reaction ~ Days + (1 | Subject)"), data)
    assert d.n == 178
    assert 4 not in d.rows and 9 not in d.rows and list(d.rows[:4]) == [0, 1, 2, 3]


def test_frame_keeps_only_the_columns_the_model_uses(wide_sleepstudy):
    data, wide = wide_sleepstudy
    formula = "Reaction ~ Days + (Days | Subject)"
    narrow_fit, wide_fit = mm.lmer(formula, data), mm.lmer(formula, wide)
    assert list(wide_fit.model.design.frame.columns) == ["Reaction", "Days", "Subject"]
    # the model pickled for executors' tasks does not grow with the unused columns
    assert len(pickle.dumps(wide_fit.model)) <= 1.2 * len(pickle.dumps(narrow_fit.model))
    np.testing.assert_array_equal(wide_fit.theta, narrow_fit.theta)
    # offsets, grouping factors and weights are columns the model uses
    weights = np.linspace(0.5, 2.0, len(wide))
    d = build_design(parse_formula("Reaction ~ 1 + offset(x1) + (1 | Subject)"), wide, weights)
    assert list(d.frame.columns) == ["Reaction", "x1", "Subject", "(weights)"]
    np.testing.assert_array_equal(d.frame["(weights)"], weights)


def test_frame_keeps_the_variables_of_stateful_transforms():
    """x in poly(x, 2) or scale(x) is a variable of the formula: the frame keeps it, also when
    rows with missing values are dropped; the transforms' state is learnt from all the rows
    (as R's model frame), so X is that of all the data, restricted to the rows used."""
    data = mm.datasets.load("sleepstudy").assign(Hours=1.0)
    data.loc[[4, 9], "Reaction"] = np.nan
    with pytest.warns(DataWarning, match="dropped 2 of 180"):
        d = build_design(parse_formula("Reaction ~ poly(Days, 2) + (scale(Days) | Subject)"),
                         data)
    assert list(d.frame.columns) == ["Reaction", "Days", "Subject"] and d.n == 178
    every_row = design("Reaction ~ poly(Days, 2) + (scale(Days) | Subject)",
                       data.fillna({"Reaction": 0.0}))
    np.testing.assert_array_equal(d.X, every_row.X[d.rows])
    np.testing.assert_array_equal(d.terms[0].values, every_row.terms[0].values[d.rows])


def test_dropped_columns_recorded():
    data = mm.datasets.load("sleepstudy").assign(D2=lambda f: f.Days * 2.0)
    d = design("Reaction ~ Days + D2 + (1 | Subject)", data)
    assert d.dropped == ("D2",) and d.x_names == ("(Intercept)", "Days")
    assert d.X.shape == (180, 2)


def test_fast_and_formulaic_model_matrices_agree():
    """Plain columns take a fast path; an equivalent expression goes through formulaic."""
    data = mm.datasets.load("orthodont")
    fast = design("distance ~ age * Sex + (age | Subject)", data)
    slow = design("distance ~ I(age) * Sex + (I(age) | Subject)", data)
    np.testing.assert_array_equal(fast.X, slow.X)
    np.testing.assert_array_equal(fast.terms[0].values, slow.terms[0].values)
    assert slow.x_names == ("(Intercept)", "I(age)", "SexMale", "I(age):SexMale")


@pytest.mark.parametrize("fixed", [
    "a * b", "a * b * x", "x + a + b + a:b", "a + b + a:b + a:x + b:x + a:b:x", "0 + a * b",
    "a * b * c", "a:b", "x + a:b", "a + a:b", "a * x + b",
    "0 + a + b", "0 + a + b + c", "0 + x:a + b", "0 + a + a:x", "x + a:x + b",
])
def test_fast_encoding_equals_formulaic(fixed):
    """Several categorical factors in a term, or none of the intercept, or a term whose
    margins are missing: the fast encoding equals the formulaic path's matrix and names, both
    by R's rule ("0 + a + b" codes a by indicators and b by contrasts; "a:b" codes both by
    indicators, one column per combination, as R)."""
    from mixedmodels.design.encoding import fast_encoding
    from mixedmodels.design.materialize import formula_matrix
    from mixedmodels.design.names import r_column_names

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.choice(["p", "q", "r"], 60), "b": rng.choice(["u", "v"], 60),
                          "c": rng.choice(["k", "m", "n"], 60), "x": rng.normal(size=60)})
    encoding = fast_encoding(fixed, frame)
    assert encoding is not None
    reference = formula_matrix(fixed, frame)
    assert encoding.names == r_column_names(reference.columns)
    np.testing.assert_array_equal(encoding.matrix(frame), np.asarray(reference, dtype=float))
    if fixed in ("a:b", "x + a:b"):  # every combination, one aliased with the intercept
        assert [n for n in encoding.names if ":" in n] == [
            "ap:bu", "aq:bu", "ar:bu", "ap:bv", "aq:bv", "ar:bv"]


def test_fast_encoding_equals_formulaic_on_many_formulas():
    """Sums of up to three of these terms (every sixth sum of three), with and without
    intercept: the fast encoding equals the formulaic path's matrix and names."""
    import itertools

    from mixedmodels.design.encoding import fast_encoding
    from mixedmodels.design.materialize import formula_matrix
    from mixedmodels.design.names import r_column_names

    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.choice(["p", "q", "r"], 80), "b": rng.choice(["u", "v"], 80),
                          "c": rng.choice(["k", "m", "n"], 80), "x": rng.normal(size=80),
                          "z": rng.normal(size=80)})
    atoms = ["a", "b", "c", "x", "a:b", "a:x", "b:x", "a:b:x", "x:z", "a:c", "b:c:z"]
    fast = total = 0
    for size in (1, 2, 3):  # every sum of one or two terms, every sixth one of three
        for combo in list(itertools.combinations(atoms, size))[::6 if size == 3 else 1]:
            for prefix in ("", "0 + "):
                formula = prefix + " + ".join(combo)
                encoding = fast_encoding(formula, frame)
                total += 1
                if encoding is None:
                    continue
                fast += 1
                reference = formula_matrix(formula, frame)
                assert encoding.names == r_column_names(reference.columns), formula
                np.testing.assert_array_equal(encoding.matrix(frame),
                                              np.asarray(reference, dtype=float), formula)
    assert fast == total == 188  # plain columns: every formula takes the fast path


SMALL_INTEGER_FORMULAS = ["Reaction ~ I(-D) + (1 | Subject)",
                          "Reaction ~ I(D - 1) + offset(-D) + (1 | Subject)",
                          "Reaction ~ I((D * 15)^2) + (1 | Subject)",
                          "Reaction ~ factor(D) + (I(-D) | Subject)",
                          "I(Reaction - D) ~ D + (1 | Subject)"]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64", "int8", "int16",
                                   "int32", "UInt8", "Int16"])
def test_small_and_unsigned_integers_are_evaluated_as_wide_integers(dtype):
    """Expressions of a column of small or unsigned integers give what they give on 64-bit
    integers: NumPy's wrap-around (-1 as 255 in uint8, 30^2 as -124 in int8) reaches no model."""
    data = mm.datasets.load("sleepstudy")
    narrow, wide = data.assign(D=data.Days.astype(dtype)), data.assign(D=data.Days)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for formula in SMALL_INTEGER_FORMULAS:
            fit, expected = mm.lmer(formula, narrow), mm.lmer(formula, wide)
            np.testing.assert_array_equal(fit.X, expected.X)
            assert list(fit.fixef.index) == list(expected.fixef.index)
            np.testing.assert_allclose(fit.fixef, expected.fixef, rtol=1e-10)
            np.testing.assert_allclose(fit.predict(narrow.head(5)),
                                       expected.predict(wide.head(5)), rtol=1e-10)
    assert mm.lmer(SMALL_INTEGER_FORMULAS[0], narrow).X[1, 1] == -1.0
