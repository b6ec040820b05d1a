"""Model-matrix columns named as R names them.

formulaic names a column by its factors' Python text and its levels in brackets
(``Sex[T.M]``, ``I(age ** 2)``, ``poly(x, 2)[0]``); R deparses the same columns as
``SexM``, ``I(age^2)`` and ``poly(x, 2)1``. ``r_column_names`` gives R's names of formulaic's
columns, ``r_spelling`` R's text of a term or factor (both paths to a model matrix, formulaic's
and ``design.encoding``'s, name their columns with them).
"""

from __future__ import annotations

import ast
import re

from ..formula.parse import R_DOTTED_FUNCTIONS, r_written
from ..formula.rcode import R_IN, R_NOT, R_OPERATOR_FUNCTIONS, R_PAREN
from ..formula.rfunctions import r_number

__all__ = ["R_NAMES", "r_column_names", "r_name", "r_spelling"]


_FIELD = re.compile(r"\[(?:T\.)?([^\[\]]*)\](?=:|$)")


_RAW_POLY = re.compile(r"^(poly\(.*\braw = (?:TRUE|True)\b.*\))\[(\d+)\]$")
_KEYWORD = re.compile(r"\s*(?<![=!<>])=(?!=)\s*")


def r_spelling(text: str) -> str:
    """A term or column as R deparses it. Each factor of an interaction that Python reads
    (formulaic's text of an expression, a level's field after it) is deparsed as R deparses
    the expression (``_deparsed``): ``I(1 / (x + 1))`` as ``I(1/(x + 1))``, ``I(x * 2.0)`` as
    ``I(x * 2)``, ``I(1e-05 * x)`` as ``I(1e-05 * x)``. Others are spelled by rule: ``**``
    as ``^``, keyword arguments with spaces around ``=``, Python's True and False as TRUE
    and FALSE, the strings of a call's arguments in double quotes (``relevel(a, ref =
    "b")``), R's functions with a dot by their names (``as.factor(x)``, called ``as_factor``
    in formulaic: ``R_DOTTED_FUNCTIONS``), and names in backquotes without them where R
    needs none (``log(Days.x)``)."""
    parts = _interaction_parts(text)
    if len(parts) > 1:
        return ":".join(r_spelling(part) for part in parts)
    field = _TRAILING_FIELD.match(text) or _NAME_FIELD.match(text)
    expression, field = (field.group(1), field.group(2)) if field else (text, "")
    if _PLAIN_NAME.fullmatch(expression):  # a column, as formulaic names it: R's name
        return r_name(expression) + field
    deparsed = _deparsed(expression)
    return (deparsed if deparsed is not None else _spelled(expression)) + field


_TRAILING_FIELD = re.compile(r"^(.*\))(\[[^\[\]]*\])$")
#: a column's name and a level's field after it (``my f[T.b]``)
_NAME_FIELD = re.compile(r"^([^()\[\]`]+?)(\[[^\[\]]*\])$")
#: text that is a column's name, not an expression: no operator, bracket or quote (a name
#: Python reads is deparsed as one; this is one it does not, with a space or a leading digit)
_PLAIN_NAME = re.compile(r"[^()\[\]`'\"+\-*/^%:,~=<>!&|@]+")


def r_name(name: str) -> str:
    r"""A column's name as R writes it in a model's names: in backquotes unless R reads it as
    a name (lme4's fixef of y ~ `word len`: ``\`word len\```)."""
    if name.startswith("`") or (_R_SYNTACTIC.fullmatch(name) and name not in _R_RESERVED):
        return name
    return f"`{name}`"


def _spelled(text: str) -> str:
    """``r_spelling`` by rule, of text Python does not read (backquoted names)."""
    text = _KEYWORD.sub(" = ", text).replace("= True", "= TRUE").replace("= False", "= FALSE")
    if "as_" in text:
        text = _PYTHON_NAMES.sub(lambda m: R_NAMES[m.group(1)] + "(", text)
    text = r_written(text)
    if "`" in text:
        text = _BACKQUOTED.sub(_unquoted, text)
    return _double_quoted(text) if "'" in text else text


_BACKQUOTED = re.compile(r"`([^`]*)`")
#: R's syntactic names: a letter (in a UTF-8 locale, any letter) or a dot not before a digit,
#: then letters, digits, dots and underscores
_R_SYNTACTIC = re.compile(r"(?:[^\W\d_]|\.(?![0-9]))[\w.]*|\.")
#: R's reserved words, which R backquotes as names (``?Reserved``)
_R_RESERVED = frozenset({"if", "else", "repeat", "while", "function", "for", "next", "break",
                         "TRUE", "FALSE", "NULL", "Inf", "NaN", "NA", "NA_integer_",
                         "NA_real_", "NA_character_", "NA_complex_", "in"})


def _unquoted(match: re.Match) -> str:
    """A backquoted name as R deparses it: without its backquotes where R reads it as a
    name (``Days.x``; formulaic needs them inside a call), with them otherwise (``a b``)."""
    return r_name(match.group(1))


#: R's names of the functions formulaic calls by other names (``as_factor``: ``as.factor``)
R_NAMES = {python: r for r, python in R_DOTTED_FUNCTIONS.items()}
_PYTHON_NAMES = re.compile(rf"(?<![\w.])({'|'.join(map(re.escape, R_NAMES))})\(")


def _double_quoted(text: str) -> str:
    """``text`` with the single-quoted strings inside its parentheses (a call's arguments, as
    formulaic writes them) in double quotes, as R deparses them; a level's label after the
    call is left as it is."""
    out, depth, i = [], 0, 0
    while i < len(text):
        char = text[i]
        if char == "'" and depth:
            end = i + 1
            while end < len(text) and text[end] != "'":
                end += 2 if text[end] == "\\" else 1
            inner = text[i + 1:end].replace("\\'", "'").replace('"', '\\"')
            out.append(f'"{inner}"')
            i = end + 1
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        out.append(char)
        i += 1
    return "".join(out)


def r_column_names(columns) -> tuple[str, ...]:
    """formulaic's names as R prints them: ``Intercept`` -> ``(Intercept)``,
    ``Sex[T.M]`` -> ``SexM``, ``C(g, Sum)[1]:x`` -> ``C(g, Sum)1:x`` (the brackets of a
    factor's field, not those of a custom coding's matrix), ``I(age ** 2)`` -> ``I(age^2)``,
    keyword arguments as R deparses them (``raw = TRUE``), and raw polynomials numbered by
    degree from 1, as R's ``poly`` (formulaic numbers them from 0), in interactions too."""
    names = []
    for name in columns:
        name = str(name)
        if name == "Intercept":
            names.append("(Intercept)")
            continue
        parts = []
        for part in _interaction_parts(r_spelling(name)):
            raw = _RAW_POLY.match(part)
            parts.append(f"{raw.group(1)}[{int(raw.group(2)) + 1}]" if raw else part)
        names.append(_FIELD.sub(r"\1", ":".join(parts)))
    return tuple(names)


def _interaction_parts(name: str) -> list[str]:
    """A column's name split at the colons of its interaction (``poly(x, 2)[0]:b[T.B1]`` ->
    ``poly(x, 2)[0]``, ``b[T.B1]``), not at those inside brackets or quotes."""
    if ":" not in name:
        return [name]
    parts, depth, start, quote = [], 0, 0, None
    for i, char in enumerate(name):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == ":" and depth == 0:
            parts.append(name[start:i])
            start = i + 1
    return parts + [name[start:]]


# -- R's deparse of an expression -------------------------------------------------------------
# R prints an expression from its parse tree (``deparse``): binary + - * and comparisons, & and
# | with spaces around them, / ^ %% %/% without; numbers with up to 15 significant digits, in
# fixed or scientific notation, whichever is shorter (``format``: 1000, 1e+05, 1e-04). Python's
# parse tree of formulaic's text is printed the same way, with parentheses where R's
# precedence needs them (``?Syntax``); R keeps those its user wrote, which the tree no longer
# has (``x*(-2)`` is printed ``x * -2``, R's ``x * (-2)``).

#: R's binary operators for Python's, with their precedence (higher binds tighter) and spacing
_BINARY = {ast.Pow: ("^", 14, False), ast.Mod: ("%%", 11, False),
           ast.FloorDiv: ("%/%", 11, False), ast.Mult: ("*", 10, True),
           ast.Div: ("/", 10, False), ast.Add: ("+", 9, True), ast.Sub: ("-", 9, True),
           ast.BitAnd: ("&", 6, True), ast.BitOr: ("|", 5, True)}
_COMPARISONS = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==",
                ast.NotEq: "!="}
_UNARY = {ast.USub: ("-", 13), ast.UAdd: ("+", 13), ast.Invert: ("!", 7), ast.Not: ("!", 7)}
_COMPARISON_PRECEDENCE = 8


class _NotR(Exception):
    """A node R's deparse is not written for here."""


def _deparsed(text: str) -> str | None:
    """``text``, Python that formulaic evaluates, as R deparses the same expression; None
    where Python does not read it, or it holds what R has no spelling for here (a subscript,
    an attribute but NumPy's, a lambda...)."""
    quoted: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:  # a backquoted name, as a name Python reads
        quoted[f"_backquoted{len(quoted)}_"] = match.group(1)
        return f"_backquoted{len(quoted) - 1}_"

    try:
        tree = ast.parse(_BACKQUOTED.sub(placeholder, text.strip()), mode="eval").body
        return _Deparser(quoted).node(tree)[0]
    except (SyntaxError, ValueError, _NotR):
        return None


class _Deparser:
    """R's text of a Python parse tree: the user's parentheses (``_r_paren``, of
    ``formula.rcode``) kept, as R's deparse keeps them; others added where R's precedence
    needs them (text the token-by-token translation wrote, whose tree is Python's).
    ``quoted``: the backquoted names' placeholders and the names."""

    def __init__(self, quoted: dict[str, str]):
        self.quoted = quoted

    def node(self, node) -> tuple[str, int]:
        """R's text of a node and its precedence (99: an atom, a call)."""
        if isinstance(node, ast.Constant):
            return _constant(node.value), 99
        if isinstance(node, ast.Name):
            return _name(self.quoted.get(node.id, node.id)), 99
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "np":
            return f"np.{node.attr}", 99
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            symbol, precedence, spaced = _BINARY[type(node.op)]
            right_assoc = symbol == "^"
            left = self.operand(node.left, precedence, strict=right_assoc)
            if right_assoc and isinstance(node.right, ast.UnaryOp):
                right = self.node(node.right)[0]  # R reads 2^-x as 2^(-x)
            else:
                right = self.operand(node.right, precedence, strict=not right_assoc)
            return (f"{left} {symbol} {right}" if spaced else f"{left}{symbol}{right}"), \
                precedence
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            symbol, precedence = _UNARY[type(node.op)]
            # Python's ~ binds tighter than comparisons: its operand as the user wrote it
            bound = 99 if symbol == "!" else precedence
            return f"{symbol}{self.operand(node.operand, bound, strict=False)}", precedence
        if isinstance(node, ast.Compare) and len(node.ops) == 1 \
                and type(node.ops[0]) in _COMPARISONS:
            left = self.operand(node.left, _COMPARISON_PRECEDENCE, strict=False)
            right = self.operand(node.comparators[0], _COMPARISON_PRECEDENCE, strict=True)
            return f"{left} {_COMPARISONS[type(node.ops[0])]} {right}", _COMPARISON_PRECEDENCE
        raise _NotR

    def _call(self, node: ast.Call) -> tuple[str, int]:
        function = (node.func.id if isinstance(node.func, ast.Name)
                    else self.node(node.func)[0])
        if function == R_IN and len(node.args) == 2:  # R's x %in% table
            return (f"{self.operand(node.args[0], 11, strict=False)} %in% "
                    f"{self.operand(node.args[1], 11, strict=True)}"), 11
        if function in R_OPERATOR_FUNCTIONS and len(node.args) == 1:  # R's own operators
            text, own = self.node(node.args[0])
            if function == R_PAREN:  # the user's parentheses, which R keeps
                return f"({text})", 99
            if function != R_NOT:
                return text, own
            precedence = _UNARY[ast.Not][1]  # (its operand binds as tightly as a comparison)
            return f"!{text if own >= precedence else f'({text})'}", precedence
        arguments = [self.node(arg)[0] for arg in node.args]
        arguments += [f"{keyword.arg} = {self.node(keyword.value)[0]}"
                      for keyword in node.keywords if keyword.arg is not None]
        if len(arguments) != len(node.args) + len(node.keywords) \
                or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise _NotR
        return f"{R_NAMES.get(function, function)}({', '.join(arguments)})", 99

    def operand(self, node, precedence: int, strict: bool) -> str:
        """An operand's text: in the parentheses the source has around it, else in
        parentheses where it binds less tightly than its operator (``strict``: also where it
        binds as tightly, on the side the operator does not group)."""
        text, own = self.node(node)
        if own < precedence or (strict and own == precedence):
            return f"({text})"
        return text


def _constant(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return r_number(float(value))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise _NotR


def _name(name: str) -> str:
    """A name as R writes it: backquoted where R does not read it as a name."""
    name = R_NAMES.get(name, name)
    if name in _R_CONSTANTS:  # R's constants, names in formulaic's context (raw = TRUE)
        return name
    return r_name(name)


_R_CONSTANTS = frozenset({"TRUE", "FALSE", "NULL", "Inf", "NaN", "NA"})


