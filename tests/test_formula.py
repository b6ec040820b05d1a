"""parse_formula: lme4's bar terms, their expansions and names, names as R reads them, and
marked syntax errors."""

from __future__ import annotations

import keyword
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.errors import FormulaError
from mixedmodels.formula.parse import (
    ParsedFormula,
    RandomTerm,
    parse_formula,
    without_r_operators,
)


def terms(text: str) -> list[tuple[str, str]]:
    """The random terms' expressions (without the calls that give R's operators R's meaning:
    ``r_arithmetic``) and groups."""
    return [(without_r_operators(t.expr), t.group) for t in parse_formula(text).random]


def test_parts_of_a_formula():
    parsed = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert isinstance(parsed, ParsedFormula)
    assert parsed.text == "Reaction ~ Days + (Days | Subject)"
    assert parsed.response == "Reaction"
    assert parsed.fixed == "Days"
    assert parsed.random == (RandomTerm("Days", ("Subject",)),)
    assert parsed.random[0].group == "Subject"


@pytest.mark.parametrize("text, fixed", [
    ("y ~ (1 | g)", "1"),
    ("y ~ 1 + (1 | g)", "1"),
    ("y ~ 0 + (1 | g)", "0"),
    ("y ~ x + (1 | g)", "x"),
    ("y ~ x - 1 + (1 | g)", "x - 1"),
    ("y ~ -1 + x + (1 | g)", "1 - 1 + x"),
    ("y ~ (1 | g) + x * z", "x * z"),
    ("y ~ x + (1 | g) + z", "x + z"),
    ("y ~ I(x^2) + (1 | g)", "I(x**2)"),
    ("y ~ x + I((x + 1)^2) + (1 | g)", "x + I((x + 1)**2)"),
    ("y ~ x + 1e-5 + (1 | g)", "x + 1e-5"),
])
def test_fixed_part(text, fixed):
    assert without_r_operators(parse_formula(text).fixed) == fixed


@pytest.mark.parametrize("text, expected", [
    ("y ~ (1 | g)", [("1", "g")]),
    ("y ~ (x | g)", [("x", "g")]),
    ("y ~ (1 + x | g)", [("1 + x", "g")]),
    ("y ~ (0 + x | g)", [("0 + x", "g")]),
    ("y ~ (-1 + x | g)", [("-1 + x", "g")]),
    ("y ~ (x - 1 | g)", [("x - 1", "g")]),
    ("y ~ (I(x^2) | g)", [("I(x**2)", "g")]),
    ("y ~ (1 | g) + (1 | h)", [("1", "g"), ("1", "h")]),
    ("y ~ (1|g)+(x|h)", [("1", "g"), ("x", "h")]),
    ("y ~ ((1 | g))", [("1", "g")]),
    ("y ~ x + ( ( 1 | g ) )", [("1", "g")]),
    ("y ~ (1 | `my group`)", [("1", "my group")]),
    ("y ~ (1 | group.id)", [("1", "group.id")]),
])
def test_single_bar_terms(text, expected):
    assert terms(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("y ~ (x || g)", [("1", "g"), ("0 + x", "g")]),
    ("y ~ (1 + x || g)", [("1", "g"), ("0 + x", "g")]),
    ("y ~ (x + z || g)", [("1", "g"), ("0 + x", "g"), ("0 + z", "g")]),
    ("y ~ (0 + x || g)", [("0 + x", "g")]),
    ("y ~ (-1 + x || g)", [("0 + x", "g")]),
    ("y ~ (x - 1 || g)", [("0 + x", "g")]),
    ("y ~ (1 || g)", [("1", "g")]),
    # lme4's expandDoubleVerts: one term per term label, interactions included
    ("y ~ (x * z || g)", [("1", "g"), ("0 + x", "g"), ("0 + z", "g"), ("0 + x:z", "g")]),
    ("y ~ (I(x^2) || g)", [("1", "g"), ("0 + I(x ** 2)", "g")]),
    ("y ~ (`a b` + z || g)", [("1", "g"), ("0 + `a b`", "g"), ("0 + z", "g")]),
    ("y ~ (x || g/h)", [("1", "h:g"), ("0 + x", "h:g"), ("1", "g"), ("0 + x", "g")]),
])
def test_double_bar_expansion(text, expected):
    assert terms(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("y ~ (1 | batch/cask)", [("1", "cask:batch"), ("1", "batch")]),
    ("y ~ (1 | a/b/c)", [("1", "c:(b:a)"), ("1", "b:a"), ("1", "a")]),
    ("y ~ (1 | a/b/c/d)", [("1", "d:(c:(b:a))"), ("1", "c:(b:a)"), ("1", "b:a"), ("1", "a")]),
    ("y ~ (1 | a/b:c)", [("1", "b:c:a"), ("1", "a")]),
    ("y ~ (1 | a:b/c)", [("1", "c:(a:b)"), ("1", "a:b")]),
    ("y ~ (x | a/b)", [("x", "b:a"), ("x", "a")]),
    ("y ~ (1 | g:h)", [("1", "g:h")]),
    ("y ~ (1 | h:g)", [("1", "h:g")]),
    ("y ~ (1 | a:b:c)", [("1", "a:b:c")]),
    ("y ~ (1 | g) + (1 | g:h)", [("1", "g"), ("1", "g:h")]),
])
def test_nesting_and_interactions_use_lme4_names(text, expected):
    assert terms(text) == expected


def test_nested_factors_are_the_columns():
    (inner, outer) = parse_formula("strength ~ 1 + (1 | batch/cask)").random
    assert inner.factors == ("cask", "batch") and inner.group == "cask:batch"
    assert outer.factors == ("batch",) and outer.group == "batch"


def _position(message: str) -> int:
    """The caret's 0-based column under the formula (the message's last line)."""
    return message.splitlines()[-1].index("^") - 2


@pytest.mark.parametrize("text, position, words", [
    ("y ~ (x | g", 4, "never closed"),
    ("y ~ `x + (1 | g)", 4, "never closed"),
    ("y ~ I(x == 'a) + (1 | g)", 11, "never closed"),
    ("y ~ x | g)", 9, "no matching '('"),
    ("y ~ x ~ z + (1 | g)", 6, "exactly one '~'"),
    ("y + (1 | g)", 11, "exactly one '~'"),
    (" ~ x + (1 | g)", 0, "response"),
    ("y ~   ", 6, "predictors"),
    ("y ~ x + (1 | g) | h", 16, "inside its own parentheses"),
    ("y ~ x * (1 | g)", 11, "inside its own parentheses"),
    ("y ~ x - (1 | g)", 8, "cannot be subtracted"),
    ("y ~ x + (| g)", 9, "nothing left of the bar"),
    ("y ~ x + (1 | g + h)", 13, "grouping factor"),
    ("y ~ x + (1 | g:)", 15, "grouping factor"),
    ("y ~ x + (1 | | g)", 13, "one bar"),
    ("y ~ x + (0 || g)", 9, "no columns"),
    ("y ~ x + z $ 2 + (1 | g)", 10, "Unknown operator"),
    ("y ~ x + I(z^2) + w $ 2 + (1 | g)", 19, "Unknown operator"),
    ("y ~ x * + (1 | g)", 6, "fixed-effects part"),
    ("y ~ x + (x * | g)", 11, "random-effects term"),
    ("y $ 2 ~ x + (1 | g)", 2, "the response"),
    ("y ~ x + I(z +) + (1 | g)", 4, "invalid Python code"),
    ("y ~ x + (I(z +) | g)", 9, "invalid Python code"),
    ("y ~ x + (1 || g) + ", 17, "ends in '+'"),
    ("y ~ x + (1 | g) -", 16, "ends in '-'"),
])
def test_errors_mark_the_position(text, position, words):
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    message = str(info.value)
    assert words in message
    assert f"(at position {position + 1}):" in message
    assert message.splitlines()[-2].strip() == text.strip()
    assert _position(message) == position


@pytest.mark.parametrize("value", [None, 1, 2.5, ("y ~ x",), b"y ~ (1|g)"])
def test_formula_must_be_a_string(value):
    with pytest.raises(FormulaError, match="must be a string"):
        parse_formula(value)


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_empty_formula(value):
    with pytest.raises(FormulaError, match="empty"):
        parse_formula(value)


# R names: a letter or a dot (not before a digit), then letters, digits, dots and underscores
NAMES = st.from_regex(r"[A-Za-z.][A-Za-z0-9._]{0,6}", fullmatch=True).filter(
    lambda s: not re.match(r"\.[0-9]", s) and s.strip(".")
    and not any(keyword.iskeyword(p) or keyword.issoftkeyword(p) for p in s.split(".")))


def _spelled(name: str) -> str:
    """A name as the parsed parts hand it to formulaic: in backquotes unless Python reads it as
    words joined by dots."""
    return name if all(part.isidentifier() for part in name.split(".")) else f"`{name}`"


@settings(max_examples=60, deadline=None)
@given(st.lists(NAMES, min_size=4, max_size=4, unique=True), st.booleans(),
       st.sampled_from(["|", "||"]), st.booleans())
def test_generated_formulas(names, slope, bar, nested):
    """Whatever the names, spacing and bar, the parts come back as lme4 would name them."""
    y, x, g, h = names
    group = f"{g}/{h}" if nested else g
    lhs = x if slope else "1"
    text = f"{y} ~ {x} + ({lhs} {bar} {group})"
    groups = [f"{h}:{g}", g] if nested else [g]
    exprs = ((["1", f"0 + {_spelled(x)}"] if slope else ["1"]) if bar == "||"
             else [_spelled(lhs) if slope else lhs])
    for variant in (text, text.replace(" ", "")):
        parsed = parse_formula(variant)
        assert parsed.response == y
        assert parsed.fixed == _spelled(x)
        assert [(t.expr, t.group) for t in parsed.random] == [(e, grp) for grp in groups
                                                              for e in exprs]


# --- names as R reads them -----------------------------------------------------------------------

def _compact(text: str) -> str:
    """The text without the blanks outside backquotes."""
    return re.sub(r"(`[^`]*`)|\s+", lambda m: m.group(1) or "", text)


# (the name as written, the column it names, as the parsed parts spell it for formulaic: a name
# that Python cannot read is backquoted)
R_NAMES = [
    ("a0e", "a0e", "a0e"),
    ("day1e", "day1e", "day1e"),
    ("x1e5", "x1e5", "x1e5"),
    ("v2E", "v2E", "v2E"),
    ("x.1e", "x.1e", "`x.1e`"),
    ("t_1e", "t_1e", "t_1e"),
    ("a1e1", "a1e1", "a1e1"),
    (".x1e", ".x1e", "`.x1e`"),
    ("Reaction.Time", "Reaction.Time", "Reaction.Time"),
    ("`1e+3 weird`", "1e+3 weird", "`1e+3 weird`"),
    ("`a|b (c) d/e:f`", "a|b (c) d/e:f", "`a|b (c) d/e:f`"),
]


@pytest.mark.parametrize("name, column, spelled", R_NAMES, ids=[n for n, _, _ in R_NAMES])
def test_names_with_digits_dots_and_e(name, column, spelled):
    """Digits, 'e', '+', dots and underscores inside a name are part of the name, whatever the
    spacing, in the response, the fixed part, a term's left side and the grouping factor."""
    cases = [  # formula, response, fixed, random terms
        (f"y ~ {name} + (1 | g)", "y", spelled, [("1", "g")]),
        (f"y ~ {name} - 1 + (1 | g)", "y", f"{spelled} - 1", [("1", "g")]),
        (f"y ~ {name} * z + (1 | g) - 1", "y", f"{spelled} * z - 1", [("1", "g")]),
        (f"y ~ x + ({name} | g)", "y", "x", [(spelled, "g")]),
        (f"y ~ x + (1 + {name} | g)", "y", "x", [(f"1 + {spelled}", "g")]),
        (f"y ~ x + ({name} || g)", "y", "x", [("1", "g"), (f"0 + {spelled}", "g")]),
        (f"y ~ x + (1 | {name})", "y", "x", [("1", column)]),
        (f"y ~ x + (1 | {name}/h)", "y", "x", [("1", f"h:{column}"), ("1", column)]),
        (f"y ~ x + (1 | h:{name})", "y", "x", [("1", f"h:{column}")]),
        (f"{name} ~ {name} + ({name} | {name})", name, spelled, [(spelled, column)]),
    ]
    for text, response, fixed, random in cases:
        for variant in (text, _compact(text)):
            parsed = parse_formula(variant)
            assert parsed.response == response, variant
            assert _compact(parsed.fixed) == _compact(fixed), variant
            assert [(_compact(t.expr), t.group) for t in parsed.random] == \
                [(_compact(e), g) for e, g in random], variant
            assert parsed.offsets == (), variant


@pytest.mark.parametrize("text, fixed, offsets", [
    ("y ~ I(x * 1e-3) + (1 | g)", "I(x * 1e-3)", ()),
    ("y~I(x*1e-3)+(1|g)", "I(x*1e-3)", ()),
    ("y ~ x + offset(2e+1 * z) + (1|g)", "x", ("I(2e+1 * z)",)),
    ("y~x+offset(2e+1*z)+(1|g)", "x", ("I(2e+1*z)",)),
    ("y ~ x+I(z*1E+2)+(1|g)", "x + I(z*1E+2)", ()),
    ("y ~ x + I(z^.5e-1) + (1|g)", "x + I(z**.5e-1)", ()),
    ("y ~ x + I(`a^b`^2) + (1|g)", "x + I(`a^b`**2)", ()),
    ("y ~ x.I(z^2) + (1|g)", "x.I(z**2)", ()),
    ("y ~ log(z^2 + 1) + (1|g)", "log(z**2 + 1)", ()),
    ("y ~ I(x.1e^2) + (1|g)", "I(`x.1e`**2)", ()),
    ('y ~ I(x == "a+b|c") + (1|g)', 'I(x == "a+b|c")', ()),
    ("y ~ I(x == 'a-b')-1 + (1|g)", "I(x == 'a-b') - 1", ()),
])
def test_numbers_strings_and_powers(text, fixed, offsets):
    """A number is read where a token starts (its exponent's sign is no '+' or '-' between
    terms); quoted strings and backquoted names are read whole; inside every call, R code,
    '^' is a power (Python's exclusive or: log(Days^2 + 1) was log(Days XOR 3))."""
    parsed = parse_formula(text)
    assert without_r_operators(parsed.fixed) == fixed
    assert tuple(map(without_r_operators, parsed.offsets)) == offsets
    assert [(t.expr, t.group) for t in parsed.random] == [("1", "g")]


def test_fit_with_digits_and_e_in_a_column_name():
    data = mm.datasets.load("sleepstudy").assign(day1e=lambda f: f.Days)
    fit = mm.lmer("Reaction ~ day1e+(1|Subject)", data)
    reference = mm.lmer("Reaction ~ Days + (1 | Subject)", data)
    assert fit.fixef.index.tolist() == ["(Intercept)", "day1e"]
    assert fit.objective == pytest.approx(reference.objective, rel=1e-10)


@pytest.mark.parametrize("column", ["x.1e", ".x1e", "Reaction.Time", "1e+3 weird"])
def test_fit_with_dotted_and_odd_column_names(column):
    """Each name is its whole column (not the column before its dot), in the fixed part, in
    I(...) and in a term's left side; the rows it misses are dropped, and predictions need it
    (and no other column) in new data."""
    data = mm.datasets.load("sleepstudy")
    data.loc[3, "Days"] = float("nan")
    data[column] = data.Days
    name = f"`{column}`" if " " in column else column
    power = f"I(`{column}`^2)"
    with pytest.warns(mm.DataWarning, match="dropped 1 of 180 rows"):
        fit = mm.lmer(f"Reaction~{name}+{power}+({name}|Subject)", data)
    with pytest.warns(mm.DataWarning, match="dropped 1 of 180 rows"):
        reference = mm.lmer("Reaction ~ Days + I(Days^2) + (Days | Subject)", data)
    # R's names: backquoted only where R does not read the column's name as a name
    assert fit.fixef.index.tolist() == ["(Intercept)", name,
                                        f"I(`{column}`^2)" if " " in column else f"I({column}^2)"]
    assert fit.objective == pytest.approx(reference.objective, rel=1e-10)
    np.testing.assert_allclose(fit.predict(data[[column, "Subject"]].iloc[5:9]),
                               reference.predict(data[["Days", "Subject"]].iloc[5:9]),
                               rtol=1e-8)
