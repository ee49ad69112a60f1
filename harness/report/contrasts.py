"""Seed-level contrasts as table rows: the machinery every comparing table of the report shares.

A contrast compares level ``b`` with level ``a`` of one factor (or of a joint factor). Per seed
it is the mean of ``b - a`` over the cells where both ran with that seed (a cell: every other
factor's level), so within a seed the other factors cancel; over seeds it is a
:func:`harness.report.stats.seed_contrast`. Holm runs over one table (its *family*, which the
table's caption names).

Column contract of every contrast table (``main_effects.csv``, ``ablation.csv``,
``interaction_contrasts.csv``, ``simple_effects.csv``, ``best_practice_vs_best.csv``, ...);
notebooks and the report's figures rely on these names:

========================  ======================================================================
``factor``, ``level``     the compared level (and its factor)
``diff``                  mean over seeds of the per-seed contrast (``level - reference``)
``diff_ci_low/high``      95% t interval of ``diff``, df = n_seeds - 1
``half_width``            half the width of that interval
``sd_seed``               SD of the per-seed contrast values
``n_seeds``               seeds with a value for this contrast
``t``, ``p``              one-sample t statistic and two-sided p (NaN below 3 seeds)
``p_signflip``            exact sign-flip randomization p (NaN below 3 seeds)
``p_holm``                Holm-adjusted ``p`` over the table's family
``significant``           ``p_holm < 0.05``
``resolved``              at least 3 seeds and ``half_width <= target`` (the study's precision)
``mde``                   minimum detectable effect, 80% power, two-sided t at 0.05 / family
``seeds_1pt/2pt``         seeds at which the MDE (same power, same family) falls to 0.01 / 0.02
``test``                  which test the row carries, or why it carries none
========================  ======================================================================
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.report.stats import (
    ALPHA,
    MIN_SEEDS,
    holm,
    min_detectable_effect,
    seed_contrast,
    seed_differences,
    seeds_for_effect,
    t_interval,
)

__all__ = [
    "CONTRAST_COLUMNS",
    "DEFAULT_TARGET",
    "SEED_TEST",
    "contrast_values",
    "family_note",
    "finish_family",
    "level_stats",
    "no_contrast",
    "not_estimable",
    "PAIRED_UNIT",
    "seed_means",
    "summarize",
]

#: Default precision target: a contrast is resolved when its CI half-width is at most this.
DEFAULT_TARGET = 0.02
SEED_TEST = "seed-level t (df = seeds - 1)"
#: What family_note says a contrast is per seed (a fractional design's report qualifies it).
PAIRED_UNIT = "per seed, the mean paired difference over that seed's cells"
CONTRAST_COLUMNS = ["n_seeds", "diff", "diff_ci_low", "diff_ci_high", "half_width", "sd_seed",
                    "t", "p", "p_signflip", "p_holm", "significant", "resolved", "mde",
                    "seeds_1pt", "seeds_2pt", "test"]


def _cell_keys(df: pd.DataFrame, others: Sequence[str]) -> list[Hashable]:
    if not others:
        return [()] * len(df)
    return list(df[list(others)].astype(str).itertuples(index=False, name=None))


def contrast_values(df: pd.DataFrame, factor: str, a: str, b: str, metric: str,
                    factors: Sequence[str]) -> dict[Hashable, float]:
    """Per seed, the mean of ``metric`` at ``factor = b`` minus at ``a`` over shared cells."""
    sub = df[df[factor].isin([a, b])]
    if sub.empty:
        return {}
    others = [f for f in factors if f != factor]
    return seed_differences(sub["seed"].tolist(), _cell_keys(sub, others), sub[factor].tolist(),
                            sub[metric].to_numpy(float), a, b)


def seed_means(values: pd.Series, seeds: pd.Series) -> np.ndarray:
    """The mean of ``values`` within each seed (non-finite dropped), one entry per seed."""
    v = values.astype(float)
    ok = np.isfinite(v.to_numpy())
    if not ok.any():
        return np.array([])
    return v[ok].groupby(seeds[ok]).mean().to_numpy(float)


def level_stats(sub: pd.DataFrame, metric: str) -> dict[str, Any]:
    """Runs, seeds, mean and the t interval over the seed means of one group of runs; beside an
    accuracy, the test-set size and the binomial SE one run's accuracy has on it."""
    per_seed = seed_means(sub[metric], sub["seed"]) if len(sub) else np.array([])
    mean, lo, hi = t_interval(per_seed)
    values = sub[metric].astype(float)
    values = values[np.isfinite(values)]
    # The mean is the mean of the seed means, the centre of the interval (in a balanced design
    # it equals the mean over runs).
    return {"runs": int(len(values)), "seeds": int(per_seed.size), "mean": mean,
            "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
            "ci_low": lo, "ci_high": hi}


def summarize(per_seed: Mapping[Hashable, float] | Sequence[float]) -> dict[str, Any]:
    """The contrast columns of one row, before the family is known (no Holm, MDE yet)."""
    values = list(per_seed.values()) if isinstance(per_seed, Mapping) else list(per_seed)
    c = seed_contrast(values)
    if c.n_seeds == 0:
        test = "none (no seed ran both levels)"
    elif not c.testable:
        test = f"unresolved: {c.n_seeds} seed(s) < {MIN_SEEDS}, no p-value"
    else:
        test = SEED_TEST
    return {"n_seeds": c.n_seeds, "diff": c.diff, "diff_ci_low": c.ci_low,
            "diff_ci_high": c.ci_high, "half_width": c.half_width, "sd_seed": c.sd, "t": c.t,
            "p": c.p, "p_signflip": c.p_signflip, "test": test}


def no_contrast(test: str) -> dict[str, Any]:
    """The contrast columns of the row the others are compared with."""
    return {"n_seeds": 0, "diff": 0.0, "diff_ci_low": math.nan, "diff_ci_high": math.nan,
            "half_width": math.nan, "sd_seed": math.nan, "t": math.nan, "p": math.nan,
            "p_signflip": math.nan, "test": test}


def not_estimable(test: str) -> dict[str, Any]:
    """The contrast columns of a row the design cannot estimate (``test`` says why): no value."""
    return {**no_contrast(test), "diff": math.nan}


def finish_family(out: pd.DataFrame, *, target: float = DEFAULT_TARGET) -> pd.DataFrame:
    """Holm over the table's testable rows, then significance, resolution and power columns.

    The family size ``m`` (rows with a p-value) also sets the MDE's level ``0.05 / m``.
    """
    out = out.copy()
    p = out["p"].to_numpy(float) if len(out) else np.array([])
    out["p_holm"] = holm(p)
    out["significant"] = out["p_holm"].to_numpy(float) < ALPHA
    family = int(np.isfinite(p).sum())
    n = out["n_seeds"].to_numpy(int) if len(out) else np.array([], dtype=int)
    half = out["half_width"].to_numpy(float) if len(out) else np.array([])
    out["resolved"] = (n >= MIN_SEEDS) & np.isfinite(half) & (half <= target + 1e-12)
    sd = out["sd_seed"].to_numpy(float) if len(out) else np.array([])
    out["mde"] = [min_detectable_effect(s, int(k), family=max(1, family)) if k >= MIN_SEEDS
                  else math.nan for s, k in zip(sd, n)]
    for col, effect in (("seeds_1pt", 0.01), ("seeds_2pt", 0.02)):
        needed = [seeds_for_effect(s, effect, family=max(1, family)) if math.isfinite(s)
                  else None for s in sd]
        out[col] = pd.array(needed, dtype="Int64")
    return _order(out)


def _order(out: pd.DataFrame) -> pd.DataFrame:
    """Contrast columns after the row's identity and level statistics, in contract order."""
    keep = [c for c in out.columns if c not in CONTRAST_COLUMNS]
    return out[keep + [c for c in CONTRAST_COLUMNS if c in out.columns]]


def family_note(family: str, target: float, *, extra: str = "") -> str:
    """The caption sentence naming the Holm family and the resolution target."""
    text = (f"The seed is the unit: {PAIRED_UNIT}; "
            f"over seeds, mean, 95% t interval (df = seeds - 1), one-sample t-test "
            f"(p) and exact sign-flip p (p_signflip). Holm family: {family}. significant: "
            f"p_holm < {ALPHA}; resolved: >= {MIN_SEEDS} seeds and CI half-width <= "
            f"{target:g}; mde: effect detected with 80% power at 0.05 / family size; "
            f"seeds_1pt / seeds_2pt: seeds for an MDE of 0.01 / 0.02. Fewer than "
            f"{MIN_SEEDS} seeds: unresolved, no p-value.")
    return text + (" " + extra if extra else "")
