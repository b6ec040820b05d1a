"""Split an lme4-style formula into its response, fixed part and random-effects terms.

The fixed part is handed to formulaic unchanged, except that ``^`` inside ``I(...)`` becomes
``**`` (in R, ``I(age^2)`` is a power) and names that Python cannot read are backquoted (see
below). Random-effects terms are the parenthesised bars:

* ``(x | g)``: correlated effects for the columns of ``x`` (intercept implied) within levels of g;
* ``(x || g)``: the same columns, uncorrelated: one term per column, as lme4 splits them;
* ``(1 | g/h)``: nesting, ``(1 | h:g) + (1 | g)`` (lme4's expansion and naming);
* ``(1 | g:h)``: the interaction of g and h as one grouping factor;
* ``name(x | g)`` and ``name(x | g, hom = TRUE)``: one term with a structured covariance (lme4
  2.x's syntax; ``covariance.structured``): ``us`` (the same as ``(x | g)``), ``diag``, ``cs``,
  ``ar1``, ``toep``; ``hom`` is TRUE for one shared sd, FALSE for one per column (the default
  of all but ``ar1``). glmmTMB's names ``homdiag``, ``hetdiag``, ``homcs``, ``hetcs``,
  ``homar1``, ``hetar1``, ``homtoep``, ``hettoep`` are the same structures with ``hom`` given.
  Only a term of the sum is read so: ``diag(x)`` elsewhere (no bar) is left to formulaic.

``offset(expr)`` terms of the fixed part (as in R) are taken out of it: their values are added
to the linear predictor with a fixed coefficient of 1. ``expr`` is arithmetic, as in R
(``offset(2 * x)``, ``offset(log(n))``); it is kept as ``I(expr)``.

The text is read in R's tokens. A name starts with a letter, or a dot not followed by a digit,
and goes on with letters, digits, dots and underscores (``day1e``, ``x.1e``, ``Reaction.Time``);
any text in backquotes is a name too (`` `1e+3 weird` ``). (A leading underscore, which R does
not allow, is accepted as formulaic accepts it: ``_g``.) A number starts only where a token
starts, so in ``day1e+x`` the ``e+`` is no exponent; quoted strings are read whole. formulaic
reads Python, so a name that Python cannot read whole (``x.1e``, ``.x1e``) is handed to it in
backquotes. A name of dotted words (``Reaction.Time``) is looked up whole as a term, but inside
a call such as ``log(...)`` Python reads it as attribute access: there, write it in backquotes
(``log(`Reaction.Time`)``).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import NamedTuple

from ..errors import FormulaError
from .rcode import R_GROUP, R_IN, R_NOT, R_OPERATOR_FUNCTIONS, R_PAREN, python_call

__all__ = ["RandomTerm", "ParsedFormula", "parse_formula", "formulaic_expression",
           "r_factor_order", "r_written", "formula_name", "called_only_names",
           "R_DOTTED_FUNCTIONS", "backquoted_names", "called_names",
           "STRUCTURE_NAMES", "DEFAULT_HOM"]

#: the covariance structures of a random-effects term, and whether one sd is shared by
#: default (lme4 2.x: all but ar1 are heterogeneous by default)
DEFAULT_HOM = {"us": False, "diag": False, "cs": False, "ar1": True, "toep": False}
#: the names a structured term can be written with: (structure, hom, or None for the default
#: or the ``hom =`` argument); glmmTMB's hom/het names give hom
STRUCTURE_NAMES = {name: (name, None) for name in DEFAULT_HOM} | {
    f"{prefix}{name}": (name, prefix == "hom")
    for name in ("diag", "cs", "ar1", "toep") for prefix in ("hom", "het")}
_HOM_VALUES = {"TRUE": True, "True": True, "T": True, "FALSE": False, "False": False,
               "F": False}


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | f1:f2:...)``, or a structured one,
    ``structure(expr | f1:f2:..., hom = ...)``.

    Attributes:
        expr: the left of the bar in formulaic syntax, e.g. ``"1"``, ``"Days"``, ``"0 + Days"``.
        factors: the data columns whose interaction is the grouping factor, in name order.
        structure: the covariance structure's name: ``"us"`` (lme4's ``(x | g)``), ``"diag"``,
            ``"cs"``, ``"ar1"`` or ``"toep"``.
        hom: one shared sd (True) or one per column (False); False for ``us``.
        name: the grouping factor's name where lme4 names it otherwise than its factors
            joined by ``:`` (a third level of nesting: ``b:(h:g)`` of ``g/h/b``); not
            compared, so that the term is the same however it was written.
    """

    expr: str
    factors: tuple[str, ...]
    structure: str = "us"
    hom: bool = False
    name: str = field(default="", compare=False)

    @property
    def group(self) -> str:
        """The grouping factor's name, as lme4 prints it (``"cask:batch"``, ``"b:(h:g)"``)."""
        return self.name or ":".join(self.factors)

    @cached_property  # terms are made once per formula (``parse_formula``), read per fit
    def text(self) -> str:
        """The term as a formula writes it: ``(Days | Subject)``,
        ``ar1(0 + factor(visit) | patient)``, ``cs(x | g, hom = TRUE)`` (``hom`` only when it
        is not the structure's default); read back, it is this term."""
        return self._written(":".join(map(formula_name, self.factors)))

    @cached_property
    def label(self) -> str:
        """The term as lme4 and lmerTest print it: ``text`` with the grouping factor's name
        (``(1 | b:(h:g))``)."""
        return self._written(self.name) if self.name else self.text

    def _written(self, group: str) -> str:
        bar = f"{r_written(self.expr)} | {group}"
        if self.structure == "us":
            return f"({bar})"
        hom = "" if self.hom == DEFAULT_HOM[self.structure] else \
            f", hom = {'TRUE' if self.hom else 'FALSE'}"
        return f"{self.structure}({bar}{hom})"


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part (formulaic syntax) and random terms."""

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    offsets: tuple[str, ...] = ()


_OFFSET = re.compile(r"offset\s*\(")

# R's tokens; every character belongs to one. A name starts with a letter, '_' or a dot not
# before a digit, and goes on with letters, digits, dots and '_'. A number is only tried where a
# token starts, so the digits and 'e' inside a name stay in it. Anything else (operators,
# brackets, an unclosed quote) is a one-character symbol.
_R_NAME = r"(?:[^\W\d]|\.(?![0-9]))[\w.]*"
_TOKEN = re.compile(rf"""
      (?P<space>\s+)
    | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    | (?P<name>{_R_NAME}|`[^`]*`)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<symbol>.)
""", re.VERBOSE | re.DOTALL)


class _Token(NamedTuple):
    kind: str  # "space", "number", "name", "string" or "symbol"
    text: str
    start: int


@lru_cache(maxsize=1024)
def _tokens(text: str) -> tuple[_Token, ...]:
    """``text`` as R's tokens. Every scan of formula text goes through them, so that nothing
    inside a name, a number or a string is taken for an operator or a bracket."""
    return tuple(_Token(m.lastgroup, m.group(), m.start()) for m in _TOKEN.finditer(text))


def _symbols(text: str) -> list[_Token]:
    """The operators and brackets of ``text``."""
    return [t for t in _tokens(text) if t.kind == "symbol"]


def _bars(text: str) -> list[int]:
    """The positions of the bars of ``text`` but those inside a call of another function than
    a covariance structure's (``I(a | b)``, ``ifelse(a | b, 1, 0)``: R's "or")."""
    tokens = _tokens(text)
    bars, identity = [], []  # identity: per open parenthesis, whether it is such a call's
    for i, token in enumerate(tokens):
        if token.text == "(":
            before = next((t for t in reversed(tokens[:i]) if t.kind != "space"), None)
            identity.append(before is not None and before.kind == "name"
                            and not _structure_like(before.text))
        elif token.text == ")" and identity:
            identity.pop()
        elif token.text == "|" and not any(identity):
            bars.append(token.start)
    return bars


def _following(tokens: tuple[_Token, ...], i: int) -> _Token | None:
    """The first token after ``tokens[i]`` that is not blank."""
    return next((t for t in tokens[i + 1:] if t.kind != "space"), None)


def formula_name(column: str) -> str:
    """A column's name as the formula reads it whole: as it is if it is an R name, else in
    backquotes (``"1e+3 weird"`` -> `` `1e+3 weird` ``)."""
    return column if re.fullmatch(_R_NAME, column) else f"`{column}`"


@lru_cache(maxsize=512)
def quoted_columns(text: str, columns: frozenset[str]) -> str:
    """``text`` (formulaic's) with the names of ``columns`` in backquotes where they are not
    called: the data's columns whose R names have a dot (``Days.x``), which Python would read
    inside a call as an attribute of another (``log(Days.x)``: the attribute x of Days), and
    those named as Python's constants (``True``), which Python would read as the constants
    (R's are ``TRUE`` and ``FALSE``)."""
    tokens = _tokens(text)
    out = []
    for i, token in enumerate(tokens):
        following = _following(tokens, i)
        if token.kind == "name" and token.text in columns \
                and not (following is not None and following.text == "(") \
                and not (i and tokens[i - 1].text in (".", ")", "]")):
            out.append(f"`{token.text}`")
        else:
            out.append(token.text)
    return "".join(out)


def backquoted_names(text: str) -> frozenset[str]:
    """The names written in backquotes in ``text``, without them."""
    return frozenset(t.text[1:-1] for t in _tokens(text)
                     if t.kind == "name" and t.text.startswith("`"))


@lru_cache(maxsize=512)
def called_names(text: str) -> frozenset[str]:
    """The names that ``text`` calls as functions (``log`` in ``log(x)``), without backquotes."""
    tokens = _tokens(text)
    return frozenset(t.text.strip("`") for i, t in enumerate(tokens) if t.kind == "name"
                     and getattr(_following(tokens, i), "text", None) == "(")


@lru_cache(maxsize=512)
def called_only_names(text: str) -> frozenset[str]:
    """The names that ``text`` calls as functions and reads nowhere else (``log`` in
    ``log(x)``, not in ``log + log(x)``), without backquotes: R looks a called name up among
    functions only, so a column of that name does not hide the function."""
    tokens = [t for t in _tokens(text) if t.kind != "space"]
    read = set()
    for i, t in enumerate(tokens):
        after = [u.text for u in tokens[i + 1:i + 3]]
        keyword = after[:1] == ["="] and after[1:] != ["="]  # scale = FALSE, not x == 2
        if t.kind == "name" and after[:1] != ["("] and not keyword \
                and not (i and tokens[i - 1].text == "."):
            read.add(t.text.strip("`"))
    return called_names(text) - read


def parse_formula(text: str) -> ParsedFormula:
    """Parse ``"y ~ fixed + (expr | group) + ..."``.

    Raises:
        FormulaError: with the offending position marked, for unbalanced parentheses or
            quotes, a missing ``~``, an empty side, or a malformed bar term.
    """
    if not isinstance(text, str):
        if isinstance(getattr(text, "shape", None), tuple):  # a data frame or an array
            shown = "(lmer takes the formula first, then the data)"
        else:
            shown = repr(text) if len(repr(text)) <= 60 else f"{repr(text)[:57]}..."
        raise FormulaError(f"the formula must be a string such as 'y ~ x + (1 | g)', not "
                           f"{type(text).__name__} {shown}")
    return _parse(text) if type(text) is str else _parse.__wrapped__(text)


@lru_cache(maxsize=256)
def _parse(text: str) -> ParsedFormula:
    """``parse_formula`` of a string, kept per text: the result is immutable (frozen, of
    tuples), and parsing costs 30-60 us within a fit of a small model (15-20 us repeated in
    a loop), which every fit of the formula (refits, bootstrap replicates, profiles, a
    simulation study) would pay again. Failures are not kept (each raises again)."""
    if not text.strip():
        raise FormulaError("the formula is empty; write it as 'response ~ predictors'")
    _check_quotes(text)
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
    if rhs.rstrip()[-1] in "+-":  # as R's "unexpected end of input"
        end = len(text.rstrip()) - 1
        raise FormulaError(_marked(text, end, f"the formula ends in {text[end]!r}: a term is "
                                              "missing after it"))

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
        call = _bar_call(inner)
        if call is not None:
            if sign == "-":
                raise FormulaError(_marked(text, piece_start, "a random-effects term cannot "
                                                              "be subtracted"))
            random.extend(_structured_terms(text, inner, piece_start + inner_offset, call))
            continue
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
            identity = f"I({expression})"
            _check_expression(text, identity, piece_start + stripped.index(expression) - 2,
                              "the offset")
            offsets.append(formulaic_expression(identity))
            continue
        if stripped == ".":
            raise FormulaError(_marked(text, piece_start, _DOT))
        bars = _bars(stripped)
        if bars:
            top_level = _top_level_positions(stripped, "|")
            bar = piece_start + (top_level[0] if top_level else bars[0])
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
    for expression in [fixed] + [term.expr for term in random]:
        _check_term_names(text, formulaic_expression(expression))
    return ParsedFormula(text=text, response=response,
                         fixed=r_factor_order(formulaic_expression(fixed)),
                         random=tuple(random), offsets=tuple(offsets))


def _check_term_names(text: str, expression: str) -> None:
    """A FormulaError where a column's name is that of an interaction in the same expression
    (`` `a:b` + a:b ``): formulaic names both columns "a:b" and keeps one, so one of them
    would vanish from the model without a word. Refused also where a and b are factors, whose
    interaction's columns are named by their levels: the column's name is ambiguous in the
    results all the same, and renaming it is the remedy either way."""
    from formulaic import Formula

    terms: dict[str, list] = {}
    for term in Formula(expression):
        terms.setdefault(":".join(str(f.expr) for f in term.factors), []).append(term)
    for name, same in terms.items():
        single = [t for t in same if len(t.factors) == 1]
        if len(same) > 1 and single:
            parts = next(t for t in same if len(t.factors) > 1).factors
            columns = " and ".join(repr(str(f.expr)) for f in parts)
            raise FormulaError(f"in {text!r}, the column {name!r} has the name of the "
                               f"interaction of {columns}, and the model cannot have both: "
                               f"rename the column (e.g. data.rename(columns={{{name!r}: "
                               f"{name.replace(':', '_')!r}}}))")


@lru_cache(maxsize=256)
def r_factor_order(fixed: str) -> str:
    """The fixed part, or a random-effects term's expression (formulaic syntax), with each
    interaction's factors in the order of their first appearance in it, as R's ``terms``
    orders them: ``b + a:b`` is ``b + b:a``, whose columns lme4 names ``bx:alo``, and
    ``I(x^2) + a:I(x^2)`` has ``I(x^2):a``; ``(x + a:x | g)`` has lme4's ``x:alo``. A factor's
    first appearance is that of its first token as formulaic reads the text (expressions
    compared as formulaic normalizes them: ``x**2`` is ``x ** 2``). The text as it is when
    every term is in that order already."""
    from formulaic import Formula
    from formulaic.parser import DefaultFormulaParser

    first: dict[str, int] = {}
    for token in DefaultFormulaParser().get_tokens(fixed):
        if token.kind.value in ("name", "python"):
            first.setdefault(str(token.to_factor().expr), len(first))
    terms = list(Formula(fixed))
    interactions = [term for term in terms if len(term.factors) > 1]
    if any(str(f.expr) not in first for term in interactions for f in term.factors) or all(
            [first[str(f.expr)] for f in term.factors]
            == sorted(first[str(f.expr)] for f in term.factors) for term in interactions):
        return fixed  # in R's order already, or a factor not found as written
    written = []
    for term in terms:
        ordered = sorted(term.factors, key=lambda f: first.get(str(f.expr), -1))
        written.append(":".join(_factor_text(f) for f in ordered))
    if "1" not in written:
        written.insert(0, "0")
    return " + ".join(written)


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
    for token in _symbols(text):
        if token.start >= open_at:
            depth += {"(": 1, ")": -1}.get(token.text, 0)
            if depth == 0:
                return token.start
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
        return ((f"in {without_r_operators(factor.group(1))}: " if factor else "")
                + str(exc.__cause__)), None
    message = str(exc)
    if "_r_" in message:  # the functions of R's operators (``rcode``) are no user's
        message = without_r_operators(message)
    position = None
    head, _, marked = message.partition("\n\n")
    match = _MARKER.search(marked)
    if match:
        position = len(_ANSI.sub("", marked[: match.start()]))
        message = head
    message = _ANSI.sub("", message).strip()
    names = _NO_OPERATOR.search(message)
    if names:  # two names side by side: often one column's name with a space in it
        name = f"{names.group(1)} {names.group(2)}"
        message = (f"{message.rstrip('.')}; if '{name}' is the name of one column, write it in "
                   f"backquotes: `{name}`")
    return message, position


_NO_OPERATOR = re.compile(r"^Missing operator between `([^`]*)` and `([^`]*)`")


#: R's every other column: not supported, since the model would change with the data's columns
_DOT = ("'.' (every other column of the data) is not supported: name the columns, as in "
        "y ~ x1 + x2 + (1 | g)")


def _check_expression(text: str, expr: str, start: int, what: str,
                      starts: list[tuple[int, int]] | None = None) -> None:
    """Let formulaic read ``expr`` (which begins at ``start`` in ``text``); a syntax error
    becomes a FormulaError marking its position in the whole formula, as does R's ``.``
    anywhere in it (``.^2``, ``x * .``)."""
    dot = next((t.start for t in _tokens(expr) if t.kind == "name" and t.text == "."), None)
    error = (_DOT, dot) if dot is not None else _formulaic_error(expr)
    if error is not None:
        message, position = error
        where = starts[0][1] if starts else start
        if position is not None:
            if starts:  # map a position in the joined fixed part back to the formula
                joined_start, original = max((s for s in starts if s[0] <= position),
                                             default=starts[0])
                where = original + max(position - joined_start, 0)
            else:
                where = start + position
        raise FormulaError(_marked(text, min(where, len(text)),
                                   f"cannot read {what} '{expr}': {message}")) from None


#: Python's keywords, which no Python expression reads as names (``keyword.kwlist``)
_PYTHON_KEYWORDS = frozenset(keyword.kwlist) - {"True", "False", "None", "and", "or", "not",
                                                "if", "else", "in", "is", "lambda"}


@lru_cache(maxsize=512)
def _formulaic_error(expr: str) -> tuple[str, int | None] | None:
    """None if formulaic reads ``expr`` (as ``formulaic_expression`` hands it over), else its
    message and the position in ``expr`` that it marked, if any."""
    from formulaic import Formula
    from formulaic.errors import FormulaicError

    try:
        Formula(formulaic_expression(expr))
        return None
    except SyntaxError as exc:  # Python code inside a call, e.g. I(x +)
        keyword = next((t for t in _tokens(expr) if t.kind == "name"
                        and t.text.strip("`") in _PYTHON_KEYWORDS), None)
        if keyword is not None:
            name = keyword.text.strip("`")
            return (f"'{name}' is a Python keyword, which Python cannot read as a name inside a "
                    f"call, even in backquotes: rename the column (e.g. data.rename(columns="
                    f"{{'{name}': '{name}_'}}))"), keyword.start
        return f"invalid Python code inside a call ({exc.msg})", None
    except FormulaicError as exc:
        error = exc
    try:  # formulaic's position is one in the text it read: find the fault in expr as written
        Formula(expr)
    except FormulaicError as exc:
        return formulaic_message(exc)
    except SyntaxError:
        pass
    return formulaic_message(error)[0], None


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
    return [RandomTerm(formulaic_expression(e), factors, name=name)
            for factors, name in groups for e in exprs]


_CALL = re.compile(rf"({_R_NAME})\s*\(")


def _bar_call(piece: str) -> re.Match | None:
    """The match of ``name(`` when the whole piece is one call with a bar at its top level
    (``ar1(x | g)``, ``diag(x | g, hom = TRUE)``), else None. ``I(a | b)`` is R's "or", a
    fixed effect here (lme4 reads its bar as a random-effects term, and fails)."""
    call = _CALL.match(piece)
    if call is None or not _structure_like(call.group(1)) \
            or _closing(piece, call.end() - 1) != len(piece.rstrip()) - 1:
        return None
    return call if _has_bar(piece[call.end():len(piece.rstrip()) - 1]) else None


#: R's functions whose argument may be a logical "or" (``I(a | b)``): their bar is no
#: random-effects term's
_OR_CALLS = frozenset({"I", "ifelse", "factor", "as.factor", "as.numeric", "as.integer",
                       "as.character", "ordered", "offset"})


def _structure_like(name: str) -> bool:
    """A call with a bar that is a random-effects term: any but those of ``_OR_CALLS``
    (another name than a structure's, ``foo(x | g)``, is refused with the list)."""
    return name not in _OR_CALLS


def _structured_terms(text: str, piece: str, start: int, call: re.Match) -> list[RandomTerm]:
    """The terms of ``name(expr | group[, hom = value])`` (``piece`` starts at ``start`` in
    ``text``): those of ``(expr | group)`` with the structure and ``hom``."""
    name = call.group(1)
    if name not in STRUCTURE_NAMES:
        glmmtmb = ", ".join(n for n in STRUCTURE_NAMES if n not in DEFAULT_HOM)
        raise FormulaError(_marked(text, start, (
            f"{name}() is not a covariance structure of a random-effects term; write (x | g) "
            f"or one of {', '.join(f'{n}(x | g)' for n in DEFAULT_HOM)}, optionally with "
            f"hom = TRUE or FALSE (or glmmTMB's names {glmmtmb})")))
    structure, fixed_hom = STRUCTURE_NAMES[name]
    body_start = call.end()
    body = piece[body_start:len(piece.rstrip()) - 1]
    commas = _top_level_positions(body, ",")
    bars = _top_level_positions(body, "|")
    if len(bars) >= 2 and bars[1] == bars[0] + 1:
        raise FormulaError(_marked(text, start + body_start + bars[1], (
            f"{name}() takes one bar, {name}(x | g): it is one term with {name}'s covariance "
            "(x || g splits x into uncorrelated terms)")))
    if commas and commas[0] < bars[0]:
        raise FormulaError(_marked(text, start + body_start + commas[0],
                                   f"{name}() takes the term first: {name}(x | g, hom = TRUE)"))
    if len(commas) > 1:
        raise FormulaError(_marked(text, start + body_start + commas[1],
                                   f"{name}() takes one argument after the term: hom"))
    hom = None
    if commas:
        argument = body[commas[0] + 1:]
        where = start + body_start + commas[0] + 1 + (len(argument) - len(argument.lstrip()))
        hom = _hom_argument(text, name, argument.strip(), where, structure)
        body = body[:commas[0]]
    if fixed_hom is not None and hom is not None and hom != fixed_hom:
        raise FormulaError(_marked(text, start, (
            f"{name}() has hom = {'TRUE' if fixed_hom else 'FALSE'}; write "
            f"{structure}(x | g, hom = {'TRUE' if hom else 'FALSE'}) instead")))
    hom = fixed_hom if fixed_hom is not None else hom
    hom = DEFAULT_HOM[structure] if hom is None else hom
    terms = _random_terms(text, body, start + body_start)
    return [RandomTerm(t.expr, t.factors, structure, hom, t.name) for t in terms]


def _hom_argument(text: str, name: str, argument: str, where: int, structure: str) -> bool:
    """The value of ``hom = value`` (TRUE, FALSE, True, False, T, F)."""
    if structure == "us":
        raise FormulaError(_marked(text, where, "us() has no arguments after the term: it has "
                                                "one sd per column and every correlation"))
    key, equals, value = argument.partition("=")
    if key.strip() != "hom" or not equals:
        raise FormulaError(_marked(text, where, (
            f"{name}() takes one argument after the term, hom = TRUE (one shared sd) or "
            f"hom = FALSE (one sd per column), not '{argument}'")))
    if value.strip() not in _HOM_VALUES:
        raise FormulaError(_marked(text, where + argument.index("=") + 1 + (
            len(value) - len(value.lstrip())), (
            f"hom must be TRUE or FALSE (also True, False, T, F), not '{value.strip()}'")))
    return _HOM_VALUES[value.strip()]


def _grouping_factors(text: str, group_text: str,
                      start: int) -> list[tuple[tuple[str, ...], str]]:
    """Each grouping factor's columns and its name where lme4 names it otherwise than its
    columns joined by ':' (else ""): ``g`` -> [((g,), "")]; ``g:h`` -> [((g, h), "")];
    ``g/h`` -> [((h, g), ""), ((g,), "")]; ``g/h/b`` -> [((b, h, g), "b:(h:g)"), ((h, g), ""),
    ((g,), "")], and ``a:b/c`` -> [((c, a, b), "c:(a:b)"), ((a, b), "")] (lme4's order, and
    its names: ``expandSlash`` writes a level nested in another as ``level:outer``, and R's
    deparse puts an outer interaction in parentheses)."""
    parsed: list[tuple[str, ...]] = []
    names: list[str] = []
    piece: list[_Token] = []  # the tokens, blanks aside, since the last ':' or '/'
    for token in (*_tokens(group_text), None):  # None: the end
        if token is not None and not (token.kind == "symbol" and token.text in ":/"):
            if token.kind != "space":
                piece.append(token)
            continue
        if len(piece) != 1 or piece[0].kind != "name":
            end = len(group_text) if token is None else token.start
            where = start + (piece[0].start if piece else end)
            hint = ("; R's interaction(a, b) as a grouping factor is a:b here"
                    if piece and piece[0].text == "interaction" else "")
            raise FormulaError(_marked(text, where, "a grouping factor must be a column name "
                                                    "(in backquotes unless it is an R name), "
                                                    "or names joined by ':' or '/'" + hint))
        names.append(piece[0].text.strip("`"))
        piece = []
        if token is None or token.text == "/":
            parsed.append(tuple(names))
            names = []
    if len(parsed) == 1:
        return [(parsed[0], "")]
    terms = []
    for depth in range(len(parsed), 0, -1):
        combined: tuple[str, ...] = ()
        for level in reversed(parsed[:depth]):
            combined += level
        name, names = ":".join(parsed[0]), len(parsed[0])
        for level in parsed[1:depth]:  # ':' groups from the left: an outer interaction's
            # name is in parentheses
            name = f"{':'.join(level)}:{f'({name})' if names > 1 else name}"
            names += len(level)
        terms.append((combined, "" if name == ":".join(combined) else name))
    return terms


@lru_cache(maxsize=256)
def _split_uncorrelated(expr: str) -> tuple[str, ...]:
    """``x * z`` -> ["1", "0 + x", "0 + z", "0 + x:z"]: one term per term label of the
    expression (lme4's ``expandDoubleVerts``), the intercept unless it is removed."""
    from formulaic import Formula

    exprs = []
    for term in Formula(r_factor_order(formulaic_expression(expr))):
        factors = [f for f in term.factors if str(f.expr) != "1"]
        if not factors:
            exprs.append("1")
            continue
        names = [_factor_text(f) for f in factors]
        exprs.append("0 + " + ":".join(names))
    return tuple(exprs)


def r_written(expr: str) -> str:
    """An expression as R writes it, for messages and labels: Python's power (``x**2``,
    ``x ** 2``, which ``formulaic_expression`` writes for R's ``^`` inside ``I()``) as
    ``x^2``, and without the functions of R's operators (``rcode``; ``_r_not(x)`` as
    ``!(x)``)."""
    return re.sub(r"\s*\*\*\s*", "^", without_r_operators(expr) if "_r_" in expr else expr)


_UNWRAPPED = R_OPERATOR_FUNCTIONS - {R_IN}


def without_r_operators(text: str) -> str:
    """``text`` without ``rcode``'s calls of one argument: ``_r_number(x)`` as ``x``,
    ``_r_not(x)`` as ``!(x)`` (``_r_in(a, b)`` stays: only a message shows this text)."""
    out, closing, i = [], [], 0  # closing: per open parenthesis, what its ')' becomes
    while i < len(text):
        name = next((f for f in _UNWRAPPED if text.startswith(f + "(", i)), None)
        if name is not None:
            # (R's ! binds looser than & and |: its operand in parentheses)
            out.append({R_NOT: "!(", R_GROUP: "(", R_PAREN: "("}.get(name, ""))
            closing.append(")" if name in (R_NOT, R_GROUP, R_PAREN) else "")
            i += len(name) + 1
            continue
        if text[i] == "(":
            closing.append(")")
        elif text[i] == ")" and closing:
            out.append(closing.pop())
            i += 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


#: R's functions whose names have a dot, which Python reads as attribute access: formulaic is
#: handed these names (``formula.rfunctions`` has the functions under them), and a model's
#: names are written back with R's (``design.names.r_spelling``)
R_DOTTED_FUNCTIONS = {"as.factor": "as_factor", "as.numeric": "as_numeric",
                      "as.integer": "as_integer", "as.character": "as_character"}


@lru_cache(maxsize=512)
def formulaic_expression(expr: str) -> str:
    """An expression of the formula as formulaic, which reads Python, must see it: inside
    every call, R code is written as Python with R's precedence and R's meaning of the
    operators (``rcode``: the power ``^``, which Python reads as exclusive or, as ``**``;
    ``%%`` ``%``; ``%/%`` ``//``; arithmetic on logicals as on 0 and 1; ``!`` a call of
    ``R_NOT``...), or, where that parser does not cover the code, token by token; outside
    every call, R's nesting operator ``b %in% a`` becomes ``b:a``, the interaction it is in R
    (formulaic reads ``%in%`` as ``a/b``, which adds a's main effect); R's ``as.factor(x)``
    and its kind are called by their Python names (``R_DOTTED_FUNCTIONS``); and a name that
    Python cannot read whole (``x.1e``, ``.x1e``) is backquoted. Function names and Python's
    attribute access after a bracket (``f(x).y``) are left as written."""
    tokens = _tokens(expr)
    written = _calls_as_python(expr, tokens)  # token position -> (Python text, tokens)
    out = []
    calls: list[bool] = []  # the open parentheses, True for a call's
    call_opens = -1  # where the '(' of the next call is
    skip = 0  # tokens of an operator already written
    nots: list[int] = []  # the depths of R's ! whose operand is open
    for i, token in enumerate(tokens):
        if skip:
            skip -= 1
            continue
        if i in written and not any(calls):  # a call at the top, parsed as R code
            text, skip = written[i]
            out.append(text)
            continue
        text = token.text
        if nots and token.kind == "symbol" and text in "&|,)":  # where R's ! ends
            while nots and nots[-1] == len(calls):
                blank = out.pop() if out and not out[-1].strip() else ""
                out.extend([")", blank])
                nots.pop()
        if token.kind == "name":
            following = _following(tokens, i)
            if following is not None and following.text == "(":  # a call
                call_opens = following.start
                text = R_DOTTED_FUNCTIONS.get(text, text)
            elif not (i and tokens[i - 1].text in (")", "]")):  # not f(x).y
                text = _formulaic_name(text)
        elif token.kind == "symbol":
            if text == "(":
                calls.append(token.start == call_opens)
            elif text == ")" and calls:
                calls.pop()
            after = [t.text for t in tokens[i + 1:i + 3]]
            if any(calls):  # R code
                if text == "^":
                    text = "**"
                elif text == "%" and after[:1] == ["%"]:
                    skip = 1
                elif text == "%" and after == ["/", "%"]:
                    text, skip = "//", 2
                elif text == "!" and after[:1] != ["="]:
                    text = f"{R_NOT}("  # to the next & or | (R's ! binds looser)
                    nots.append(len(calls))
            elif text == "%" and after == ["in", "%"]:
                text, skip = ":", 2
        out.append(text)
    return "".join(out)


def _calls_as_python(expr: str, tokens: tuple[_Token, ...]) -> dict[int, tuple[str, int]]:
    """For each call outside every other call (``I(x^2)``, not a term's bare column), the
    position of its name's token: its Python text with R's precedence and meaning of the
    operators (``rcode.python_call``) and the number of its tokens after the name; calls
    that parser does not cover are left out (translated token by token)."""
    written, depth, i = {}, 0, 0
    while i < len(tokens):
        token = tokens[i]
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        elif token.kind == "name" and depth == 0 and not (
                i and tokens[i - 1].text in (")", "]")):
            following = next((k for k in range(i + 1, len(tokens))
                              if tokens[k].kind != "space"), None)
            if following is not None and tokens[following].text == "(":
                end = following + 1 + _match(tokens[following + 1:])
                text = python_call(tokens[i:end + 1], expr, _formulaic_name,
                                   lambda name: R_DOTTED_FUNCTIONS.get(name, name))
                if text is not None:
                    written[i] = (text, end - i)
                    i = end + 1
                    continue
        i += 1
    return written


def _match(tokens) -> int:
    """The position in ``tokens`` of the ')' that closes an open parenthesis before them."""
    depth = 0
    for k, token in enumerate(tokens):
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            if depth == 0:
                return k
            depth -= 1
    return len(tokens)


def _factor_text(factor) -> str:
    """A formulaic factor as formulaic reads it back: a column's name (``_formulaic_name``),
    or its expression."""
    if getattr(factor.eval_method, "value", "") == "lookup":
        return _formulaic_name(str(factor.expr))
    return str(factor.expr)


def _formulaic_name(name: str) -> str:
    """A name as formulaic reads it whole: as written if Python reads it as a name or as
    names joined by dots (formulaic looks such a term up whole), else in backquotes. A lone
    ``.`` stays formulaic's "all other columns"."""
    if name.startswith("`") or name == "." or all(part.isidentifier()
                                                  for part in name.split(".")):
        return name
    return f"`{name}`"


def _split_top_level_sum(expr: str) -> list[tuple[str, int, str]]:
    """Split at top-level ``+`` and ``-``; return (sign, start offset, piece) triples."""
    pieces, depth, start, sign = [], 0, 0, "+"
    for token in _symbols(expr):
        if token.text in "([":
            depth += 1
        elif token.text in ")]":
            depth -= 1
        elif token.text in "+-" and depth == 0:
            if expr[start:token.start].strip():
                pieces.append((sign, start, expr[start:token.start]))
            sign, start = token.text, token.start + 1
    if expr[start:].strip():
        pieces.append((sign, start, expr[start:]))
    return pieces


def _has_bar(inner: str) -> bool:
    return bool(_top_level_positions(inner, "|"))


def _top_level_positions(text: str, char: str) -> list[int]:
    depth, found = 0, []
    for token in _symbols(text):
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        elif token.text == char and depth == 0:
            found.append(token.start)
    return found


def _check_quotes(text: str) -> None:
    """A quote that is not part of a string or a backquoted name is never closed."""
    for token in _symbols(text):
        if token.text in "`'\"":
            raise FormulaError(_marked(text, token.start, "this quote is never closed"))


def _check_parentheses(text: str) -> None:
    stack = []
    for token in _symbols(text):
        if token.text == "(":
            stack.append(token.start)
        elif token.text == ")":
            if not stack:
                raise FormulaError(_marked(text, token.start, "this ')' has no matching '('"))
            stack.pop()
    if stack:
        raise FormulaError(_marked(text, stack[-1], "this '(' is never closed"))


def _marked(text: str, position: int, message: str) -> str:
    """The message, the formula, and a caret under the offending character."""
    return f"{message} (at position {position + 1}):\n  {text}\n  {' ' * position}^"
