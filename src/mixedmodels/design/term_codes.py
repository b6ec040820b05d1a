"""Which categorical factors of a model's terms are coded by contrasts, and which by one
indicator per level: R's rule, as ``model.matrix`` applies it.

The rule (Chambers and Hastie, *Statistical Models in S*, 1992, p. 38; R's ``TermCode`` in
``src/library/stats/src/model.c``): in a term T, a categorical factor v is coded by contrasts
when T without v is empty (a main effect) or is contained in a term before T (the terms in
R's order: by degree, then as written); otherwise by indicators. Without an intercept, the
first categorical factor of the first term that has one is coded by indicators.

The rule looks at the formula, not at the columns: ``a:b`` alone, with an intercept, has
both factors coded by indicators, one column per combination, and one of them is aliased
with the intercept (R's model matrix is rank-deficient there, and lme4 drops the aliased
column). Every model matrix the package builds, with formulaic or without it
(``design.encoding``), codes its factors by this one rule, so that its columns are lme4's.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import lru_cache

__all__ = ["contrast_codes", "factor_table"]


def factor_table(terms: Sequence[Sequence[Hashable]]) -> tuple[tuple[bool, ...], ...]:
    """R's ``terms()`` "factors" table: for each term and each of its variables (numeric ones
    too), True where R writes 1 (the term without the variable is empty or contained in a
    term before it) and False where it writes 2.

    Args:
        terms: the terms in R's order, each the names of its variables (the intercept: an
            empty term, in no other term's containment).
    """
    terms = [tuple(term) for term in terms]
    table = []
    for j, term in enumerate(terms):
        preceding = [set(t) for t in terms[:j] if t]
        table.append(tuple(not (rest := set(term) - {v}) or any(rest <= t for t in preceding)
                           for v in term))
    return tuple(table)


@lru_cache(maxsize=256)  # a function of the formula and the columns' kinds: the same per fit
def contrast_codes(terms: tuple[tuple[Hashable, ...], ...],
                   categorical: frozenset) -> tuple[tuple[bool | None, ...], ...]:
    """For each term and each of its factors, True (coded by contrasts), False (by
    indicators) or None (not categorical): ``factor_table``'s codes of the categorical
    factors, and without an intercept the first of them by indicators.

    Args:
        terms: as ``factor_table``'s (tuples), in R's order of the variables within each
            term (their first appearance in the formula).
        categorical: the names of the categorical factors.
    """
    terms = [tuple(term) for term in terms]
    codes = [[code if v in categorical else None for v, code in zip(term, row)]
             for term, row in zip(terms, factor_table(terms))]
    if () not in terms:
        first = next(((j, k) for j, row in enumerate(codes) for k, code in enumerate(row)
                      if code is not None), None)
        if first is not None:
            codes[first[0]][first[1]] = False
    return tuple(tuple(row) for row in codes)
