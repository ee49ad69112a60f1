"""Interactions at the seed level: difference-of-differences contrasts and simple effects.

An interaction contrast of levels ``la`` (of factor A, reference ``ra``) and ``lb`` (of B,
reference ``rb``) is, per seed, the mean over the other factors' cells of
``y(la, lb) - y(la, rb) - y(ra, lb) + y(ra, rb)``: how much B's effect changes when A moves from
its reference. A simple effect is one factor's contrast within one level of another (hybrid vs
Adam *within* ste-clip). Columns follow :mod:`harness.report.contrasts`.

In a fractional-factorial study both tables add ``aliased_with``: the effects the design cannot
tell the contrast from (:mod:`harness.fraction`). Where that is a main effect of a two-level
factor (a resolution III fraction: a two-factor interaction of its two-level factors, or one of
them within a level of another), the row carries no estimate and its ``test`` says why.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from harness.fraction import AliasStructure, study_fraction, word
from harness.report.contrasts import (
    DEFAULT_TARGET,
    contrast_values,
    finish_family,
    level_stats,
    no_contrast,
    not_estimable,
    summarize,
)
from harness.report.tables import _check_factors, _complete, study_factors

__all__ = ["interaction_contrasts", "simple_effects"]

_CONTRAST = ["n_seeds", "diff", "diff_ci_low", "diff_ci_high", "half_width", "sd_seed", "t",
             "p", "p_signflip", "test"]


def _within(df: pd.DataFrame, fa: str, la: str, fb: str, rb: str, lb: str, metric: str,
            factors: Sequence[str]) -> dict[Any, float]:
    sub = df[df[fa] == la]
    return contrast_values(sub, fb, rb, lb, metric, [f for f in factors if f != fa])


def _unestimable(frac: AliasStructure, effect: Sequence[str]) -> dict[str, Any] | None:
    """The contrast columns of a row whose effect a resolution III fraction aliases with a main
    effect, else None."""
    if not frac.aliased_with_main_effect(effect):
        return None
    return not_estimable(f"not estimable: aliased with the main effect of "
                         f"{frac.alias(effect)[0]} (resolution III fraction)")


def interaction_contrasts(runs: pd.DataFrame, *, metric: str = "test_acc",
                          levels: Mapping[str, Sequence[str]] | None = None,
                          target: float = DEFAULT_TARGET) -> pd.DataFrame:
    """Every two-factor interaction contrast (each non-reference level of A with each of B),
    seed-level, Holm over the table."""
    lv = study_factors(runs, levels)
    _check_factors(runs, lv)
    df = _complete(runs, metric)
    factors = list(lv)
    frac = study_fraction(runs.attrs.get("design"), lv)
    rows = []
    for fa, fb in itertools.combinations(factors, 2):
        ra, rb = lv[fa][0], lv[fb][0]
        for la in lv[fa][1:]:
            for lb in lv[fb][1:]:
                row: dict[str, Any] = {"factor_a": fa, "level_a": la, "factor_b": fb,
                                       "level_b": lb,
                                       "contrast": f"({fa}={la} - {ra}) x ({fb}={lb} - {rb})"}
                if frac is not None:
                    row["aliased_with"] = word(frac.alias([fa, fb]))
                blank = _unestimable(frac, [fa, fb]) if frac is not None else None
                if blank is None:
                    hi = _within(df, fa, la, fb, rb, lb, metric, factors)
                    lo = _within(df, fa, ra, fb, rb, lb, metric, factors)
                    blank = summarize({s: hi[s] - lo[s] for s in hi if s in lo})
                row.update(blank)
                rows.append(row)
    columns = ["factor_a", "level_a", "factor_b", "level_b", "contrast",
               *(["aliased_with"] if frac is not None else []), *_CONTRAST]
    return finish_family(pd.DataFrame(rows, columns=columns), target=target)


def simple_effects(runs: pd.DataFrame, within: str, factor: str, *, metric: str = "test_acc",
                   levels: Mapping[str, Sequence[str]] | None = None,
                   target: float = DEFAULT_TARGET) -> pd.DataFrame:
    """``factor``'s levels against its reference within each level of ``within``, seed-level,
    Holm over the table."""
    lv = study_factors(runs, levels)
    _check_factors(runs, lv)
    df = _complete(runs, metric)
    factors = list(lv)
    frac = study_fraction(runs.attrs.get("design"), lv)
    rows = []
    ref = lv[factor][0]
    for w in lv[within]:
        sub = df[df[within] == w]
        for label in lv[factor]:
            row: dict[str, Any] = {"within": f"{within} = {w}", "factor": factor,
                                   "level": label}
            row.update(level_stats(sub[sub[factor] == label], metric))
            if frac is not None:
                row["aliased_with"] = "; ".join(
                    word(a) for a in (frac.alias([factor]), frac.alias([within, factor])) if a)
            blank = _unestimable(frac, [within, factor]) if frac is not None else None
            if label == ref:
                row.update(no_contrast("reference"))
            elif blank is not None:
                row.update(blank)
            else:
                row.update(summarize(_within(df, within, w, factor, ref, label, metric,
                                             factors)))
            rows.append(row)
    columns = ["within", "factor", "level", "runs", "seeds", "mean", "ci_low", "ci_high",
               *(["aliased_with"] if frac is not None else []), *_CONTRAST]
    return finish_family(pd.DataFrame(rows, columns=columns), target=target)
