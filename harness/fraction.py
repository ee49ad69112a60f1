"""``design: fractional-factorial``: which combinations a half fraction runs, and its aliases.

The factors with exactly two levels (k of them, at least :data:`MIN_TWO_LEVEL`) run in the half
fraction 2^(k-1) with the defining relation ``I = +F1 × F2 × ... × Fk``: a factor's first level
is coded -1, its second +1, and a combination runs when the product of its codes is +1. Factors
with more levels are crossed with that fraction in full; a factor with one level is a constant.
The resolution is k: every effect of the two-level factors is aliased with its complement in the
defining word (a main effect with a (k-1)-factor interaction, a two-factor interaction with a
(k-2)-factor one).

Pure functions of factor names and level counts (or level lists), in spec order, importing no
other harness module: the spec parser plans with them and the report, which must not import the
parser, prints the same alias structure from the factors and levels the database stores.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["FRACTIONAL", "MIN_TWO_LEVEL", "SUB", "AliasStructure", "alias_structure",
           "fraction_problem", "in_fraction", "order_name", "roman", "study_fraction",
           "two_level", "word"]

FRACTIONAL = "fractional-factorial"
#: Fewer two-level factors leave a fraction of resolution II or less: main effects aliased with
#: each other.
MIN_TWO_LEVEL = 3
#: How an effect's factors are joined in the alias text (tex_escape turns it into \times).
TIMES = " × "
#: The indent of a line of :meth:`AliasStructure.lines` that belongs to the line above it.
SUB = "  "


def _count(levels: Sequence[Any] | int) -> int:
    return levels if isinstance(levels, int) else len(levels)


def two_level(levels: Mapping[str, Sequence[Any] | int]) -> list[str]:
    """The factors with exactly two levels, in the given (spec) order."""
    return [f for f, lv in levels.items() if _count(lv) == 2]


def fraction_problem(levels: Mapping[str, Sequence[Any] | int]) -> str | None:
    """Why these factors cannot run as a half fraction, or None."""
    two = two_level(levels)
    if len(two) >= MIN_TWO_LEVEL:
        return None
    have = f" ({', '.join(two)})" if two else ""
    return (f"design: {FRACTIONAL} needs at least {MIN_TWO_LEVEL} two-level factors (factors "
            f"with exactly 2 levels), got {len(two)}{have}; use design: full-factorial")


def in_fraction(choice: Mapping[str, int], two: Sequence[str]) -> bool:
    """Whether a combination (level index per factor) satisfies ``I = +product of the codes``
    of the two-level factors ``two`` (index 0 is coded -1, index 1 is +1)."""
    return sum(1 for f in two if choice[f] == 0) % 2 == 0


def roman(n: int) -> str:
    """``n`` (>= 1) in roman numerals: 3 -> III, 5 -> V, 14 -> XIV."""
    out = []
    for value, glyph in ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"),
                         (90, "XC"), (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"),
                         (4, "IV"), (1, "I")):
        count, n = divmod(n, value)
        out.append(glyph * count)
    return "".join(out)


def word(factors: Sequence[str]) -> str:
    """An effect as text: ``A × B × C``."""
    return TIMES.join(factors)


def order_name(n: int) -> str:
    """``main effect``, ``two-factor interaction``, ``3-factor interaction``, ..."""
    return {1: "main effect", 2: "two-factor interaction"}.get(n, f"{n}-factor interaction")


@dataclasses.dataclass(frozen=True)
class AliasStructure:
    """The alias structure of a study's half fraction."""

    #: The two-level factors, in spec order: the defining word.
    two_level: tuple[str, ...]
    #: The factors with more than two levels (crossed in full) and their level counts.
    crossed: tuple[tuple[str, int], ...]
    #: The factors with one level (constants).
    constant: tuple[str, ...]

    @property
    def resolution(self) -> int:
        return len(self.two_level)

    @property
    def combinations(self) -> int:
        return 2 ** (len(self.two_level) - 1) * math.prod(n for _, n in self.crossed)

    def alias(self, effect: Sequence[str]) -> tuple[str, ...]:
        """The effect an effect (a set of factors) is aliased with: its two-level part replaced
        by that part's complement in the defining word; () when it has no two-level part (an
        effect of the crossed factors alone is aliased with nothing)."""
        multi = [f for f in effect if f not in self.two_level]
        part = [f for f in effect if f in self.two_level]
        if not part:
            return ()
        return (*multi, *(f for f in self.two_level if f not in part))

    def aliased_with_main_effect(self, effect: Sequence[str]) -> bool:
        """Whether ``effect`` (not itself a main effect) cannot be told from a main effect of a
        two-level factor (resolution III: a two-factor interaction of two-level factors)."""
        alias = self.alias(effect)
        return len(effect) > 1 and len(alias) == 1 and alias[0] in self.two_level

    def main_effects(self) -> list[tuple[str, str]]:
        return [(f, word(self.alias([f]))) for f in self.two_level]

    def interactions(self) -> list[tuple[str, str]]:
        return [(word(pair), word(self.alias(pair)))
                for pair in itertools.combinations(self.two_level, 2)]

    def lines(self) -> list[str]:
        """The alias structure as lines of text: the fraction, the defining relation, the
        resolution and what it means, every main effect's and two-factor interaction's alias
        (one per line, indented by :data:`SUB` under its heading), the factors crossed in
        full and the constants."""
        k = self.resolution
        two = self.two_level
        crossed = ", ".join(f"{f} ({n} levels)" for f, n in self.crossed)
        out = [f"Half fraction 2^({k}-1) of the {k} two-level factors ({2 ** (k - 1)} of their "
               f"{2 ** k} combinations)" + (f", crossed in full with {crossed}" if crossed
                                            else "") + f": {self.combinations} combinations, "
               "each run with every seed.",
               f"Defining relation: I = +{word(two)} (each factor's first level coded -1, its "
               "second +1; a combination is run when the product of its codes is +1).",
               f"Resolution {roman(k)}: " + _meaning(k)]
        out.append(f"Main effects, each aliased with a {order_name(k - 1)}:")
        out += [f"{SUB}{e} = {a}" for e, a in self.main_effects()]
        out.append("Two-factor interactions, each aliased with a "
                   + (order_name(k - 2) if k > 3 else "main effect") + ":")
        out += [f"{SUB}{e} = {a}" for e, a in self.interactions()]
        if self.crossed:
            names = ", ".join(f for f, _ in self.crossed)
            f0 = self.crossed[0][0]
            out.append(f"Crossed in full with the fraction (every level with every combination "
                       f"of the fraction): {names}. Their own main effects and interactions "
                       "are aliased with nothing; an interaction of one with an effect of the "
                       "two-level factors is aliased with its interaction with that effect's "
                       f"alias ({word([f0, two[0]])} = {word(self.alias([f0, two[0]]))}).")
        if self.constant:
            out.append(f"Constant (one level): {', '.join(self.constant)}.")
        return out


def _meaning(k: int) -> str:
    if k == 3:
        return ("main effects are aliased with two-factor interactions, so a main effect "
                "estimates the sum of the two; each is estimable only if the two-factor "
                "interaction it is aliased with is negligible, and no two-factor interaction "
                "of the two-level factors can be told from a main effect.")
    if k == 4:
        return ("main effects are clear of each other and of two-factor interactions (aliased "
                "with 3-factor interactions), but two-factor interactions are aliased in pairs "
                "with each other.")
    return (f"main effects and two-factor interactions are clear of each other (aliased with "
            f"{k - 1}- and {k - 2}-factor interactions, assumed negligible).")


def alias_structure(levels: Mapping[str, Sequence[Any] | int]) -> AliasStructure:
    """The alias structure of the half fraction of ``levels`` (factor -> levels or level
    count, spec order); raises ValueError with :func:`fraction_problem`'s text when there is
    none."""
    problem = fraction_problem(levels)
    if problem:
        raise ValueError(problem)
    return AliasStructure(tuple(two_level(levels)),
                          tuple((f, _count(lv)) for f, lv in levels.items() if _count(lv) > 2),
                          tuple(f for f, lv in levels.items() if _count(lv) == 1))


def study_fraction(design: str | None, levels: Mapping[str, Sequence[Any] | int]
                   ) -> AliasStructure | None:
    """The alias structure of a study of ``design`` with these factors and levels: None unless
    it is a fractional-factorial study whose levels make a half fraction."""
    if design != FRACTIONAL or fraction_problem(levels):
        return None
    return alias_structure(levels)
