"""Model-matrix columns named as R names them.

formulaic names a column by its factors' Python text and its levels in brackets
(``Sex[T.M]``, ``I(age ** 2)``, ``poly(x, 2)[0]``); R deparses the same columns as
``SexM``, ``I(age^2)`` and ``poly(x, 2)1``. ``r_column_names`` gives R's names of formulaic's
columns, ``r_spelling`` R's text of a term or factor (both paths to a model matrix, formulaic's
and ``design.encoding``'s, name their columns with them).
"""

from __future__ import annotations

import re

from ..formula.parse import R_DOTTED_FUNCTIONS, r_written

__all__ = ["R_NAMES", "r_column_names", "r_spelling"]


_FIELD = re.compile(r"\[(?:T\.)?([^\[\]]*)\](?=:|$)")


_RAW_POLY = re.compile(r"^(poly\(.*\braw = (?:TRUE|True)\b.*\))\[(\d+)\]$")
_KEYWORD = re.compile(r"\s*(?<![=!<>])=(?!=)\s*")


def r_spelling(text: str) -> str:
    """A term or column as R deparses it: ``**`` as ``^``, keyword arguments with spaces around
    ``=``, Python's True and False as TRUE and FALSE, the strings of a call's arguments in
    double quotes (``relevel(a, ref = "b")``), and R's functions with a dot by their names
    (``as.factor(x)``, called ``as_factor`` in formulaic: ``R_DOTTED_FUNCTIONS``)."""
    text = _KEYWORD.sub(" = ", text).replace("= True", "= TRUE").replace("= False", "= FALSE")
    if "as_" in text:
        text = _PYTHON_NAMES.sub(lambda m: R_NAMES[m.group(1)] + "(", text)
    text = r_written(text)
    return _double_quoted(text) if "'" in text else text


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
