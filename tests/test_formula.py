"""parse_formula: lme4's bar terms, their expansions and names, and marked syntax errors."""

from __future__ import annotations

import keyword

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedmodels.errors import FormulaError
from mixedmodels.formula.parse import ParsedFormula, RandomTerm, parse_formula


def terms(text: str) -> list[tuple[str, str]]:
    return [(t.expr, t.group) for t in parse_formula(text).random]


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
    assert parse_formula(text).fixed == fixed


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
    ("y ~ (1 | a/b/c)", [("1", "c:b:a"), ("1", "b:a"), ("1", "a")]),
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


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and not keyword.issoftkeyword(s))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(NAMES, min_size=4, max_size=4, unique=True), st.booleans(),
       st.sampled_from(["|", "||"]), st.booleans())
def test_generated_formulas(names, slope, bar, nested):
    """Whatever the names, spacing and bar, the parts come back as lme4 would name them."""
    y, x, g, h = names
    group = f"{g}/{h}" if nested else g
    lhs = x if slope else "1"
    text = f"{y} ~ {x} + ({lhs} {bar} {group})"
    parsed = parse_formula(text)
    assert parsed.response == y
    assert parsed.fixed == x
    groups = [f"{h}:{g}", g] if nested else [g]
    exprs = (["1", f"0 + {x}"] if slope else ["1"]) if bar == "||" else [lhs]
    assert [(t.expr, t.group) for t in parsed.random] == [(e, grp) for grp in groups
                                                          for e in exprs]
    compact = text.replace(" ", "")
    assert parse_formula(compact).random == parsed.random
