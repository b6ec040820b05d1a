"""Split an lme4-style formula into its response, fixed part and random-effects terms.

The fixed part is handed to formulaic unchanged, except that ``^`` inside ``I(...)`` becomes
``**`` (in R, ``I(age^2)`` is a power). Random-effects terms are the parenthesised bars:

* ``(x | g)``: correlated effects for the columns of ``x`` (intercept implied) within levels of g;
* ``(x || g)``: the same columns, uncorrelated: one term per column, as lme4 splits them;
* ``(1 | g/h)``: nesting, ``(1 | h:g) + (1 | g)`` (lme4's expansion and naming);
* ``(1 | g:h)``: the interaction of g and h as one grouping factor.

``offset(expr)`` terms of the fixed part (as in R) are taken out of it: their values are added
to the linear predictor with a fixed coefficient of 1. ``expr`` is arithmetic, as in R
(``offset(2 * x)``, ``offset(log(n))``); it is kept as ``I(expr)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..errors import FormulaError

__all__ = ["RandomTerm", "ParsedFormula", "parse_formula"]


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | f1:f2:...)``.

    Attributes:
        expr: the left of the bar in formulaic syntax, e.g. ``"1"``, ``"Days"``, ``"0 + Days"``.
        factors: the data columns whose interaction is the grouping factor, in name order.
    """

    expr: str
    factors: tuple[str, ...]

    @property
    def group(self) -> str:
        """The grouping factor's name, as lme4 prints it (``"cask:batch"``)."""
        return ":".join(self.factors)


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part (formulaic syntax) and random terms."""

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    offsets: tuple[str, ...] = ()


_OFFSET = re.compile(r"offset\s*\(")
_NAME = re.compile(r"\s*([A-Za-z_.][A-Za-z0-9_.]*|`[^`]+`)\s*$")


def parse_formula(text: str) -> ParsedFormula:
    """Parse ``"y ~ fixed + (expr | group) + ..."``.

    Raises:
        FormulaError: with the offending position marked, for unbalanced parentheses, a missing
            ``~``, an empty side, or a malformed bar term.
    """
    if not isinstance(text, str):
        raise FormulaError(f"the formula must be a string such as 'y ~ x + (1 | g)', not "
                           f"{type(text).__name__} {text!r}")
    if not text.strip():
        raise FormulaError("the formula is empty; write it as 'response ~ predictors'")
    _check_parentheses(text)
    tilde = _top_level_positions(text, "~")
    if len(tilde) != 1:
        where = tilde[1] if len(tilde) > 1 else len(text)
        raise FormulaError(_marked(text, where, "a formula needs exactly one '~' between the "
                                                "response and the predictors"))
    lhs, rhs = text[: tilde[0]], text[tilde[0] + 1:]
    response = lhs.strip()
    if not response:
        raise FormulaError(_marked(text, 0, "the response (left of '~') is missing"))
    if not rhs.strip():
        raise FormulaError(_marked(text, len(text), "the predictors (right of '~') are missing"))

    _check_expression(text, response, lhs.index(response), "the response")

    fixed_parts: list[str] = []
    fixed_starts: list[tuple[int, int]] = []  # (offset in the joined fixed text, in ``text``)
    random: list[RandomTerm] = []
    offsets: list[str] = []
    offset = tilde[0] + 1
    for sign, start, piece in _split_top_level_sum(rhs):
        stripped = piece.strip()
        piece_start = offset + start + piece.index(stripped[0])
        inner, inner_offset = _strip_outer_parentheses(stripped)
        if inner_offset and _has_bar(inner):
            if sign == "-":
                raise FormulaError(_marked(text, piece_start, "a random-effects term cannot "
                                                              "be subtracted"))
            random.extend(_random_terms(text, inner, piece_start + inner_offset))
            continue
        call = _OFFSET.match(stripped)
        if call and _closing(stripped, call.end() - 1) == len(stripped) - 1:
            if sign == "-":
                raise FormulaError(_marked(text, piece_start, "an offset cannot be subtracted; "
                                                              "write + offset(-expr)"))
            expression = stripped[call.end():-1].strip()
            if not expression:
                raise FormulaError(_marked(text, piece_start, "offset() needs an expression"))
            # arithmetic, as in R (offset(2 * x)): evaluated as formulaic's I(...)
            identity = _powers_in_identity(f"I({expression})")
            _check_expression(text, identity, piece_start + stripped.index(expression) - 2,
                              "the offset")
            offsets.append(identity)
            continue
        if "|" in stripped:
            bars = _top_level_positions(stripped, "|")
            bar = piece_start + (bars[0] if bars else stripped.index("|"))
            raise FormulaError(_marked(text, bar, "a bar must be inside its own parentheses, "
                                                  "added to the rest: ... + (expr | group)"))
        joined = " ".join(fixed_parts)
        fixed_starts.append((len(joined) + (1 if joined else 0) + 2, piece_start))
        fixed_parts.append(("- " if sign == "-" else "+ ") + stripped)
    fixed = " ".join(fixed_parts) if fixed_parts else "+ 1"
    if fixed.startswith("+ "):
        fixed, shift = fixed[2:], -2
    else:  # a leading '-' (e.g. '-1 + x'): keep the intercept term being removed explicit
        fixed, shift = "1 " + fixed, 2
    fixed_starts = [(a + shift, b) for a, b in fixed_starts]
    _check_expression(text, fixed, 0, "the fixed-effects part", fixed_starts)
    return ParsedFormula(text=text, response=response, fixed=_powers_in_identity(fixed),
                         random=tuple(random), offsets=tuple(offsets))


def _strip_outer_parentheses(piece: str) -> tuple[str, int]:
    """``((1 | g))`` -> ``1 | g`` and the offset of the inside; ``(a) + (b)`` is left alone."""
    offset = 0
    while True:
        trimmed = piece.rstrip()
        if not (trimmed.startswith("(") and trimmed.endswith(")")
                and _closing(trimmed, 0) == len(trimmed) - 1):
            return piece, offset
        inner = trimmed[1:-1]  # trailing blanks kept: positions stay those of the text
        lead = len(inner) - len(inner.lstrip())
        piece, offset = inner.lstrip(), offset + 1 + lead


def _closing(text: str, open_at: int) -> int:
    """Index of the parenthesis closing the one at ``open_at`` (-1 if none)."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return -1


_MARKER = re.compile("\u29db(?:\x1b\\[[0-9;]*m)?(.*?)(?:\x1b\\[[0-9;]*m)?\u29da", re.S)
_ANSI = re.compile("\x1b\\[[0-9;]*m")


_FACTOR = re.compile(r"factor `(.*)`\. \[")


def formulaic_message(exc: Exception) -> tuple[str, int | None]:
    """formulaic's error message without its terminal colour codes and marked-up copy of the
    formula, and the position (in the text formulaic was given) that it marked, if any. A
    FormulaError raised while a factor was evaluated (a coding's, ``formula.codings``) keeps
    its message, after the factor's text."""
    if isinstance(exc.__cause__, FormulaError):
        factor = _FACTOR.search(str(exc))
        return (f"in {factor.group(1)}: " if factor else "") + str(exc.__cause__), None
    message = str(exc)
    position = None
    head, _, marked = message.partition("\n\n")
    match = _MARKER.search(marked)
    if match:
        position = len(_ANSI.sub("", marked[: match.start()]))
        message = head
    return _ANSI.sub("", message).strip(), position


def _check_expression(text: str, expr: str, start: int, what: str,
                      starts: list[tuple[int, int]] | None = None) -> None:
    """Let formulaic read ``expr`` (which begins at ``start`` in ``text``); a syntax error
    becomes a FormulaError marking its position in the whole formula."""
    error = _formulaic_error(expr)
    if error is not None:
        message, position = error
        where = start
        if position is not None:
            if starts:  # map a position in the joined fixed part back to the formula
                joined_start, original = max((s for s in starts if s[0] <= position),
                                             default=starts[0])
                where = original + max(position - joined_start, 0)
            else:
                where = start + position
        raise FormulaError(_marked(text, min(where, len(text)),
                                   f"cannot read {what} '{expr}': {message}")) from None


@lru_cache(maxsize=512)
def _formulaic_error(expr: str) -> tuple[str, int | None] | None:
    """None if formulaic reads ``expr``, else its message and the position it marked."""
    from formulaic import Formula
    from formulaic.errors import FormulaicError

    try:
        Formula(expr)  # R's '^' inside I(...) still parses: positions stay those of the text
        return None
    except FormulaicError as exc:
        error = exc
    try:
        Formula(_powers_in_identity(expr))
        return None
    except FormulaicError:
        return formulaic_message(error)


def _random_terms(text: str, inner: str, inner_start: int) -> list[RandomTerm]:
    """Expand the inside of one ``( ... | ... )`` into lme4's terms."""
    bars = _top_level_positions(inner, "|")
    double = len(bars) == 2 and bars[1] == bars[0] + 1
    if not (len(bars) == 1 or double):
        raise FormulaError(_marked(text, inner_start + bars[-1],
                                   "a random-effects term has one bar: (expr | group)"))
    expr = inner[: bars[0]].strip()
    group_text = inner[bars[-1] + 1:]
    if not expr:
        raise FormulaError(_marked(text, inner_start + bars[0], "nothing left of the bar; "
                                                                "write (1 | group) for intercepts"))
    groups = _grouping_factors(text, group_text, inner_start + bars[-1] + 1)
    _check_expression(text, expr, inner_start + inner.index(expr), "the random-effects term")
    exprs = list(_split_uncorrelated(expr)) if double else [expr]
    if not exprs:
        raise FormulaError(_marked(text, inner_start + inner.index(expr),
                                   "this random-effects term has no columns"))
    return [RandomTerm(_powers_in_identity(e), g) for g in groups for e in exprs]


def _grouping_factors(text: str, group_text: str, start: int) -> list[tuple[str, ...]]:
    """``g`` -> [(g,)]; ``g:h`` -> [(g, h)]; ``g/h`` -> [(h, g), (g,)] (lme4's order and names)."""
    nests = group_text.split("/")
    parsed: list[tuple[str, ...]] = []
    position = start
    for nest in nests:
        names = []
        for name in nest.split(":"):
            match = _NAME.match(name)
            if not match:
                where = position + len(name) - len(name.lstrip())
                raise FormulaError(_marked(text, where, "a grouping factor must be a column "
                                                        "name (or names joined by ':' or '/')"))
            names.append(match.group(1).strip("`"))
            position += len(name) + 1
        parsed.append(tuple(names))
    if len(parsed) == 1:
        return parsed
    terms = []
    for depth in range(len(parsed), 0, -1):
        combined: tuple[str, ...] = ()
        for level in reversed(parsed[:depth]):
            combined += level
        terms.append(combined)
    return terms


@lru_cache(maxsize=256)
def _split_uncorrelated(expr: str) -> tuple[str, ...]:
    """``x * z`` -> ["1", "0 + x", "0 + z", "0 + x:z"]: one term per term label of the
    expression (lme4's ``expandDoubleVerts``), the intercept unless it is removed."""
    from formulaic import Formula

    exprs = []
    for term in Formula(_powers_in_identity(expr)):
        factors = [f for f in term.factors if str(f.expr) != "1"]
        if not factors:
            exprs.append("1")
            continue
        names = [(f"`{f.expr}`" if getattr(f.eval_method, "value", "") == "lookup"
                  and not re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*", f.expr) else f.expr)
                 for f in factors]
        exprs.append("0 + " + ":".join(names))
    return tuple(exprs)


def _powers_in_identity(expr: str) -> str:
    """Inside ``I(...)``, R's ``^`` is a power: rewrite it as Python's ``**``."""
    out, i = [], 0
    while i < len(expr):
        match = re.compile(r"\bI\(").search(expr, i)
        if not match:
            out.append(expr[i:])
            break
        out.append(expr[i: match.end()])
        depth, j = 1, match.end()
        while j < len(expr) and depth:
            depth += {"(": 1, ")": -1}.get(expr[j], 0)
            j += 1
        out.append(expr[match.end(): j].replace("^", "**"))
        i = j
    return "".join(out)


def _split_top_level_sum(expr: str) -> list[tuple[str, int, str]]:
    """Split at top-level ``+`` and ``-``; return (sign, start offset, piece) triples."""
    pieces, depth, start, sign = [], 0, 0, "+"
    for i, char in enumerate(expr):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char in "+-" and depth == 0 and not _is_exponent_sign(expr, i):
            if expr[start:i].strip():
                pieces.append((sign, start, expr[start:i]))
            sign, start = char, i + 1
    if expr[start:].strip():
        pieces.append((sign, start, expr[start:]))
    return pieces


def _is_exponent_sign(expr: str, i: int) -> bool:
    """True for the sign in a number such as ``1e-5``."""
    return i >= 2 and expr[i - 1] in "eE" and expr[i - 2].isdigit()


def _has_bar(inner: str) -> bool:
    return bool(_top_level_positions(inner, "|"))


def _top_level_positions(text: str, char: str) -> list[int]:
    depth, found = 0, []
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == char and depth == 0:
            found.append(i)
    return found


def _check_parentheses(text: str) -> None:
    stack = []
    for i, c in enumerate(text):
        if c == "(":
            stack.append(i)
        elif c == ")":
            if not stack:
                raise FormulaError(_marked(text, i, "this ')' has no matching '('"))
            stack.pop()
    if stack:
        raise FormulaError(_marked(text, stack[-1], "this '(' is never closed"))


def _marked(text: str, position: int, message: str) -> str:
    """The message, the formula, and a caret under the offending character."""
    return f"{message} (at position {position + 1}):\n  {text}\n  {' ' * position}^"
