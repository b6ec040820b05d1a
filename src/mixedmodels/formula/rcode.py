"""R code inside a formula's calls, parsed with R's precedence and written as Python.

Inside ``I(...)``, ``log(...)`` and every other call, a formula holds R code, which formulaic
evaluates as Python. The two languages share their operators' spelling but not their
precedence nor their meaning on R's values (R's ``?Syntax``, loosest first):

==============================  ===================================================
R                               Python written for it
==============================  ===================================================
``|`` ``||``, ``&`` ``&&``      ``|``, ``&`` of logicals (``_r_logical``: a number
                                is whether it is nonzero); looser than comparisons,
                                where Python's bind tighter
``!``                           ``_r_not(...)`` of what follows up to ``&`` or ``|``
``==`` ``<`` ...                the same, never chained (``(a < b) < c``)
``+`` ``-``, ``*`` ``/``        the same, a logical operand as 0 and 1
                                (``_r_number``)
``%%`` ``%/%`` ``%in%``         ``%``, ``//`` and ``_r_in(...)``, tighter than ``*``
                                and ``/``, where Python's ``%`` and ``//`` are not
unary ``-`` ``+``               the same, on a logical as a number
``^``                           ``**`` (Python's ``^`` is exclusive or)
==============================  ===================================================

The Python text keeps the R text's names, numbers, strings and spacing, the user's
parentheses as ``_r_paren(...)`` and ``_r_group(...)`` (both the identity) where Python's
precedence would group otherwise, so that Python's parse tree is R's and keeps what R's
deparse prints (``design.names`` writes it back as R prints it, the functions above left
out). Code this
parser does not cover (subscripts, ``:`` sequences, ``$``, formulas, assignments) is left to
the token-by-token translation of ``formula.parse``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["R_GROUP", "R_IN", "R_LOGICAL", "R_NOT", "R_NUMBER", "R_OPERATOR_FUNCTIONS",
           "R_PAREN", "python_call"]

#: the functions that give Python's operators R's meaning on R's values
#: (``formula.rfunctions``), under names no formula writes
R_NUMBER, R_LOGICAL, R_NOT, R_IN = "_r_number", "_r_logical", "_r_not", "_r_in"
#: the identity, for the grouping that R's precedence needs and Python's does not: its
#: parentheses are not the user's, which R's deparse keeps (``design.names``)
R_GROUP = "_r_group"
#: the identity, for the user's parentheses, which R's deparse keeps and formulaic's
#: rendering of the text would not (``design.names``)
R_PAREN = "_r_paren"
R_OPERATOR_FUNCTIONS = frozenset({R_NUMBER, R_LOGICAL, R_NOT, R_IN, R_GROUP, R_PAREN})

# R's binary operators: (precedence, Python's operator); all group from the left but ^
_BINARY = {"|": (1, "|"), "||": (1, "|"), "&": (2, "&"), "&&": (2, "&"),
           "==": (4, "=="), "!=": (4, "!="), "<": (4, "<"), ">": (4, ">"), "<=": (4, "<="),
           ">=": (4, ">="), "+": (5, "+"), "-": (5, "-"), "*": (6, "*"), "/": (6, "/"),
           "%%": (7, "%"), "%/%": (7, "//"), "%in%": (7, None), "^": (10, "**")}
_NOT, _UNARY_MINUS = 3, 8  # the precedence of R's ! and of its unary minus
_LOGICAL = ("|", "||", "&", "&&")
_ARITHMETIC = ("+", "-", "*", "/", "%%", "%/%", "^")
_COMPARISON = ("==", "!=", "<", ">", "<=", ">=")
# Python's precedence of what is written (higher binds tighter); calls and atoms: 99
_PYTHON = {"|": 4, "&": 6, "==": 3, "!=": 3, "<": 3, ">": 3, "<=": 3, ">=": 3, "+": 8,
           "-": 8, "*": 9, "/": 9, "%": 9, "//": 9, "**": 11}
_PYTHON_UNARY = 10


class _Unsupported(Exception):
    """Code this parser leaves to the token-by-token translation."""


class _Node:
    """A parsed expression: its kind, its span [start, end) in the source, and its parts."""

    __slots__ = ("kind", "start", "end", "parts")

    def __init__(self, kind: str, start: int, end: int, *parts):
        self.kind, self.start, self.end, self.parts = kind, start, end, parts

    @property
    def logical(self) -> bool:
        """Its values may be logical, or not numbers at all (a column, a call's value, a
        comparison, a logical operator's): an arithmetic operand to read as R's numbers."""
        if self.kind in ("name", "call"):
            return True
        if self.kind == "paren":
            return self.parts[0].logical
        if self.kind == "binary":
            return self.parts[0] in _LOGICAL + _COMPARISON + ("%in%",)
        return self.kind == "not"


def python_call(tokens: Sequence, source: str, name_of: Callable[[str], str],
                function_of: Callable[[str], str]) -> str | None:
    """The Python text of one call's R code, or None where the parser does not cover it.

    Args:
        tokens: the call's R tokens (kind, text, start), blanks included, from its name to
            its closing parenthesis.
        source: the text the tokens' starts index.
        name_of: a name as formulaic reads it (backquoted where Python would not).
        function_of: a function's name as formulaic calls it (R's ``as.factor``:
            ``as_factor``).
    """
    parser = _Parser([t for t in tokens if t.kind != "space"], source)
    try:
        node = parser.expression(0)
        if parser.position != len(parser.tokens):
            raise _Unsupported
    except (_Unsupported, IndexError):
        return None
    return _Writer(source, name_of, function_of).write(node)


class _Parser:
    """Precedence climbing over R's tokens (R's ``?Syntax``)."""

    def __init__(self, tokens: list, source: str):
        self.tokens, self.source, self.position = tokens, source, 0

    def _peek(self, ahead: int = 0):
        at = self.position + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def _operator(self) -> tuple[str, int] | None:
        """The binary operator at the position (its R text, its number of tokens), if any."""
        first = self._peek()
        if first is None or first.kind != "symbol":
            return None
        texts = [t.text if t is not None and t.kind != "space" else ""
                 for t in (self._peek(k) for k in range(4))]
        if texts[0] == "%":  # %% %/% %in%
            for width, operator in ((2, "%%"), (3, "%/%"), (3, "%in%")):
                if "".join(texts[:width]) == operator and self._adjacent(width):
                    return operator, width
            raise _Unsupported  # another %op%
        if texts[0] in "=!<>" and texts[1] == "=" and self._adjacent(2):
            return texts[0] + "=", 2
        if texts[0] in "&|" and texts[1] == texts[0] and self._adjacent(2):
            return texts[0] * 2, 2
        if texts[0] in ("<", ">", "+", "-", "*", "/", "^", "&", "|"):
            return texts[0], 1
        return None

    def _adjacent(self, width: int) -> bool:
        """The next ``width`` tokens touch (``% %`` is no operator)."""
        tokens = [self._peek(k) for k in range(width)]
        return all(b.start == a.start + len(a.text) for a, b in zip(tokens, tokens[1:]))

    def expression(self, least: int) -> _Node:
        left = self._unary()
        while True:
            found = self._operator()
            if found is None or _BINARY[found[0]][0] < least:
                return left
            operator, width = found
            start = self._peek().start
            self.position += width
            precedence = _BINARY[operator][0]
            right = self.expression(precedence if operator == "^" else precedence + 1)
            left = _Node("binary", left.start, right.end, operator, left, right, start,
                         start + len(operator))

    def _unary(self) -> _Node:
        token = self._peek()
        if token.kind == "symbol" and token.text == "!" and not (
                self._peek(1) is not None and self._peek(1).text == "="):
            self.position += 1
            operand = self.expression(_NOT + 1)
            return _Node("not", token.start, operand.end, operand, token.start + 1)
        if token.kind == "symbol" and token.text in "-+":
            self.position += 1
            operand = self.expression(_UNARY_MINUS + 1)
            return _Node("unary", token.start, operand.end, token.text, operand,
                         token.start + 1)
        return self._postfix()

    def _postfix(self) -> _Node:
        token = self._peek()
        self.position += 1
        if token.kind in ("number", "string"):
            return _Node("atom", token.start, token.start + len(token.text), token.text)
        if token.kind == "symbol" and token.text == "(":
            inner = self.expression(0)
            close = self._expect(")")
            return _Node("paren", token.start, close + 1, inner)
        if token.kind != "name":
            raise _Unsupported
        following = self._peek()
        if following is None or following.text != "(":
            return _Node("name", token.start, token.start + len(token.text), token.text)
        self.position += 1
        arguments = []
        while self._peek().text != ")":
            if self._peek().kind == "name" and self._peek(1) is not None \
                    and self._peek(1).text == "=" and not (
                        self._peek(2) is not None and self._peek(2).text == "="):
                self.position += 2  # a keyword: written as the source has it (``_call``)
            arguments.append(self.expression(0))
            if self._peek().text == ",":
                self.position += 1
            elif self._peek().text != ")":
                raise _Unsupported
        close = self._expect(")")
        return _Node("call", token.start, close + 1, token.text, arguments)

    def _expect(self, text: str) -> int:
        token = self._peek()
        if token is None or token.text != text:
            raise _Unsupported
        self.position += 1
        return token.start


class _Writer:
    """The Python text of a parsed node, the source's spacing kept."""

    def __init__(self, source: str, name_of, function_of):
        self.source, self.name_of, self.function_of = source, name_of, function_of

    def write(self, node: _Node) -> str:
        return getattr(self, f"_{node.kind}")(node)

    def _gap(self, start: int, end: int) -> str:
        return self.source[start:end]

    def _atom(self, node: _Node) -> str:
        return node.parts[0]

    def _name(self, node: _Node) -> str:
        return self.name_of(node.parts[0])

    def _paren(self, node: _Node) -> str:
        inner = node.parts[0]
        return (R_PAREN + self._gap(node.start, inner.start) + self.write(inner)
                + self._gap(inner.end, node.end))

    def _call(self, node: _Node) -> str:
        name, arguments = node.parts
        out = [self.function_of(name)]
        at = node.start + len(name)
        for argument in arguments:  # (a keyword is in the gap before its value)
            out.append(self._gap(at, argument.start))
            out.append(self.write(argument))
            at = argument.end
        out.append(self._gap(at, node.end))
        return "".join(out)

    def _operand(self, node: _Node, parent: int, right: bool, wrap: str | None) -> str:
        """A child's text: in the function ``wrap`` (or not), in parentheses where Python
        would group it otherwise."""
        text = self.write(node)
        if wrap is not None:
            return f"{wrap}({text})"
        own = _python_precedence(node)
        if right and parent == _PYTHON["**"] and node.kind == "unary":
            return text  # Python reads 2**-x as 2**(-x), as R reads 2^-x
        if own < parent or (own == parent and (right != (parent == _PYTHON["**"])
                                               or parent == _PYTHON["=="])):
            return f"{R_GROUP}({text})"
        return text

    def _binary(self, node: _Node) -> str:
        operator, left, right, op_start, op_end = node.parts
        if operator == "%in%":
            return (f"{R_IN}({self.write(left)}, {self.write(right)})")
        python = _BINARY[operator][1]
        parent = _PYTHON[python]
        wraps = [None, None]
        for k, side in enumerate((left, right)):
            if operator in _ARITHMETIC and side.logical:
                wraps[k] = R_NUMBER
            elif operator in _LOGICAL and not (side.kind == "binary"
                                               and side.parts[0] in _COMPARISON):
                wraps[k] = R_LOGICAL
            elif operator in _LOGICAL:  # a comparison: grouped, as Python's & binds
                wraps[k] = R_GROUP     # tighter
        texts = [self._operand(side, parent, k == 1, wraps[k])
                 for k, side in enumerate((left, right))]
        return (texts[0] + self._gap(left.end, op_start) + python
                + self._gap(op_end, right.start) + texts[1])

    def _unary(self, node: _Node) -> str:
        sign, operand, op_end = node.parts
        wrap = R_NUMBER if operand.logical else None
        return (sign + self._gap(op_end, operand.start)
                + self._operand(operand, _PYTHON_UNARY, True, wrap))

    def _not(self, node: _Node) -> str:
        operand, op_end = node.parts
        return f"{R_NOT}({self._gap(op_end, operand.start)}{self.write(operand)})"


def _python_precedence(node: _Node) -> int:
    if node.kind == "binary":
        return 99 if node.parts[0] == "%in%" else _PYTHON[_BINARY[node.parts[0]][1]]
    if node.kind == "unary":
        return _PYTHON_UNARY
    return 99  # atoms, names, parentheses, calls (``_r_not``'s too)
