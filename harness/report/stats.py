"""Statistics behind the report: seed-level contrasts, t intervals, Holm, power, Pareto fronts.

The choices, stated once here and in every table that uses them:

- **The seed is the unit of replication.** One seed fixes the initial weights and the data order
  of every cell (combination of levels) it runs in, so runs that share a seed are not
  independent. A contrast (level vs reference, one level vs the best, an interaction) is first
  averaged over the cells of each seed — :func:`seed_differences` — and the per-seed values are
  then compared over seeds — :func:`seed_contrast`: their mean, a t interval with
  ``df = seeds - 1``, a one-sample t-test, and beside it an exact sign-flip (randomization)
  p-value. With fewer than :data:`MIN_SEEDS` seeds a contrast is *unresolved*: no p-value.
- Level means get t intervals over the seed means of the level (:func:`t_interval`), never a
  percentile bootstrap of a handful of values.
- p-values of one table form one family, corrected with Holm's step-down method (:func:`holm`).
- Power: :func:`min_detectable_effect` is the effect a two-sided t-test at the Holm family's
  first step (``alpha / m``) detects with probability 0.8 (non-central t), from the observed SD
  of the seed values; :func:`seeds_for_effect` inverts it.

This module is numpy/scipy only, so the study stage (seeds planned by precision) uses the very
functions the report prints.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Hashable, Sequence

import numpy as np
from scipy import optimize, stats

__all__ = [
    "ALPHA",
    "MIN_SEEDS",
    "POWER",
    "SeedContrast",
    "binomial_se",
    "holm",
    "min_detectable_effect",
    "pareto_front",
    "seed_contrast",
    "seed_differences",
    "seeds_for_effect",
    "seeds_for_half_width",
    "sign_flip_p",
    "t_interval",
]

ALPHA = 0.05
POWER = 0.8
#: A contrast over fewer seeds is reported unresolved, with no p-value.
MIN_SEEDS = 3
#: Up to this many seeds the sign-flip p enumerates all 2^n sign patterns (exact).
EXACT_SIGN_FLIP_MAX = 16
SIGN_FLIP_DRAWS = 20_000
SIGN_FLIP_SEED = 20250101
#: Largest number of seeds the power inversions search.
MAX_SEEDS_SEARCH = 1000


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]


def t_interval(values: Sequence[float] | np.ndarray, *, confidence: float = 0.95
               ) -> tuple[float, float, float]:
    """``(mean, low, high)``: the t interval of the mean of ``values`` (non-finite dropped).

    One value gives NaN bounds; identical values the zero-width interval.
    """
    x = _finite(values)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1)
                 / math.sqrt(x.size))
    return mean, mean - half, mean + half


def binomial_se(accuracy: float, n: float) -> float:
    """Standard error ``sqrt(p (1 - p) / n)`` of an accuracy measured on ``n`` test samples."""
    if not (math.isfinite(accuracy) and math.isfinite(n) and n > 0):
        return math.nan
    p = min(max(accuracy, 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / n)


def sign_flip_p(values: Sequence[float] | np.ndarray) -> float:
    """Two-sided randomization p of ``mean(values) = 0`` by flipping signs.

    Under the null each seed's contrast is symmetric about 0, so every sign pattern is equally
    likely. Exact (all ``2^n`` patterns) up to :data:`EXACT_SIGN_FLIP_MAX` values, otherwise
    :data:`SIGN_FLIP_DRAWS` random patterns with a fixed seed (the observed one counted, so p > 0).
    NaN for fewer than two values.
    """
    d = _finite(values)
    n = d.size
    if n < 2:
        return math.nan
    observed = abs(d.sum())
    tol = 1e-12 * max(1.0, float(np.abs(d).sum()))
    if n <= EXACT_SIGN_FLIP_MAX:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        sums = np.abs(signs @ d)
        return float(np.mean(sums >= observed - tol))
    rng = np.random.default_rng(SIGN_FLIP_SEED)
    signs = rng.choice((1.0, -1.0), size=(SIGN_FLIP_DRAWS, n))
    hits = int(np.sum(np.abs(signs @ d) >= observed - tol))
    return (hits + 1) / (SIGN_FLIP_DRAWS + 1)


@dataclasses.dataclass(frozen=True)
class SeedContrast:
    """A contrast over seeds: one value per seed (the mean over that seed's cells)."""

    n_seeds: int
    diff: float
    #: Standard deviation of the per-seed values (ddof 1).
    sd: float
    ci_low: float
    ci_high: float
    half_width: float
    t: float
    #: One-sample t-test p (two-sided); NaN with fewer than MIN_SEEDS seeds.
    p: float
    #: Exact sign-flip randomization p; NaN with fewer than MIN_SEEDS seeds.
    p_signflip: float

    @property
    def testable(self) -> bool:
        return self.n_seeds >= MIN_SEEDS


def seed_contrast(per_seed: Sequence[float] | np.ndarray, *, confidence: float = 0.95
                  ) -> SeedContrast:
    """Mean, t interval (df = seeds - 1), t-test and sign-flip p of per-seed contrast values.

    Fewer than :data:`MIN_SEEDS` seeds: the interval is still given where it exists (2 seeds:
    t with 1 df, very wide) but there is no p-value. Seed values that are all equal give a
    zero-width interval; their t-test p is then the sign-flip p (t itself is undefined).
    """
    d = _finite(per_seed)
    n = int(d.size)
    mean, lo, hi = t_interval(d, confidence=confidence)
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    half = (hi - lo) / 2 if math.isfinite(lo) else math.nan
    if n < MIN_SEEDS:
        return SeedContrast(n, mean, sd, lo, hi, half, math.nan, math.nan, math.nan)
    p_flip = sign_flip_p(d)
    if sd == 0:
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        return SeedContrast(n, mean, sd, lo, hi, half, t, 1.0 if mean == 0 else p_flip, p_flip)
    t = mean / (sd / math.sqrt(n))
    p = float(2 * stats.t.sf(abs(t), n - 1))
    return SeedContrast(n, mean, sd, lo, hi, half, float(t), p, p_flip)


def seed_differences(seeds: Sequence[Hashable], cells: Sequence[Hashable],
                     groups: Sequence[Hashable], values: Sequence[float] | np.ndarray,
                     a: Hashable, b: Hashable) -> dict[Hashable, float]:
    """Per seed, the mean of ``b - a`` over that seed's cells where both were run.

    ``seeds``, ``cells`` (what must be equal for two runs to pair: the other factors' levels),
    ``groups`` (the compared levels) and ``values`` are aligned per run; non-finite values are
    dropped and several runs of one (seed, cell, group) are averaged first. A seed where ``a``
    and ``b`` never share a cell (a fractional or search design) contributes the difference of
    its mean over ``b`` runs and over ``a`` runs instead; a seed without both is left out.
    """
    y = np.asarray(values, dtype=float)
    sums: dict[tuple[Hashable, Hashable, Hashable], list[float]] = {}
    for s, c, g, v in zip(seeds, cells, groups, y):
        if (g == a or g == b) and math.isfinite(v):
            acc = sums.setdefault((s, c, g), [0.0, 0.0])
            acc[0] += v
            acc[1] += 1
    mean = {k: total / n for k, (total, n) in sums.items()}
    per_seed: dict[Hashable, list[float]] = {}
    side: dict[tuple[Hashable, Hashable], list[float]] = {}
    for (s, c, g), v in mean.items():
        side.setdefault((s, g), []).append(v)
        if g == b and (s, c, a) in mean:
            per_seed.setdefault(s, []).append(v - mean[(s, c, a)])
    out: dict[Hashable, float] = {}
    for s in dict.fromkeys(seeds):
        if s in per_seed:
            out[s] = float(np.mean(per_seed[s]))
        elif (s, a) in side and (s, b) in side:
            out[s] = float(np.mean(side[(s, b)]) - np.mean(side[(s, a)]))
    return out


def _power(effect: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided one-sample t-test at level ``alpha`` for a true mean ``effect``."""
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    ncp = abs(effect) * math.sqrt(n) / sd
    upper = float(stats.nct.sf(crit, df, ncp))
    # The far tail (a significant result of the wrong sign) is below 1e-9 wherever scipy
    # loses it to NaN (large non-centrality).
    lower = float(stats.nct.cdf(-crit, df, ncp))
    return upper + (lower if math.isfinite(lower) else 0.0)


@functools.lru_cache(maxsize=4096)
def _unit_mde(n_seeds: int, level: float, power: float) -> float:
    """The MDE at seed SD 1 (the MDE is proportional to the SD: t and its non-centrality
    scale together)."""
    hi = 2.0
    while _power(hi, 1.0, n_seeds, level) < power:
        hi *= 2.0
        if hi > 1e6:
            return math.inf
    return float(optimize.brentq(lambda e: _power(e, 1.0, n_seeds, level) - power, 0.0, hi,
                                 xtol=1e-10))


def min_detectable_effect(sd: float, n_seeds: int, *, family: int = 1, alpha: float = ALPHA,
                          power: float = POWER) -> float:
    """Smallest true effect a seed-level t-test at ``alpha / family`` (Holm's first, strictest
    step) detects with probability ``power``, for seed values of standard deviation ``sd``."""
    if not (math.isfinite(sd) and n_seeds >= 2):
        return math.nan
    if sd == 0:
        return 0.0
    return sd * _unit_mde(int(n_seeds), alpha / max(1, family), power)


@functools.lru_cache(maxsize=256)
def _z_sum(level: float, power: float) -> float:
    return float(stats.norm.ppf(1 - level / 2) + stats.norm.ppf(power))


def seeds_for_effect(sd: float, effect: float, *, family: int = 1, alpha: float = ALPHA,
                     power: float = POWER) -> int | None:
    """Fewest seeds (at least :data:`MIN_SEEDS`) whose MDE is at most ``effect``; None: more
    than :data:`MAX_SEEDS_SEARCH`, or no spread estimate."""
    if not (math.isfinite(sd) and effect > 0):
        return None
    if sd == 0:
        return MIN_SEEDS
    level = alpha / max(1, family)
    # The normal approximation never overshoots the t answer: start just below it.
    z = _z_sum(level, power)
    start = max(MIN_SEEDS, int((z * sd / effect) ** 2) - 1)
    for n in range(start, MAX_SEEDS_SEARCH + 1):
        if sd * _unit_mde(n, level, power) <= effect:
            return n
    return None


def seeds_for_half_width(sd: float, half_width: float, *, confidence: float = 0.95
                         ) -> int | None:
    """Fewest seeds (at least :data:`MIN_SEEDS`) whose expected t-interval half-width, at seed
    SD ``sd``, is at most ``half_width``."""
    if not (math.isfinite(sd) and half_width > 0):
        return None
    for n in range(MIN_SEEDS, MAX_SEEDS_SEARCH + 1):
        if stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n) <= half_width:
            return n
    return None


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values; NaNs stay NaN and do not count in the family."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def pareto_front(cost: Sequence[float] | np.ndarray,
                 value: Sequence[float] | np.ndarray) -> np.ndarray:
    """Mask of points no other point beats: lower-or-equal cost and higher-or-equal value, one
    strictly. Non-finite points are never on the front."""
    c = np.asarray(cost, dtype=float)
    v = np.asarray(value, dtype=float)
    ok = np.isfinite(c) & np.isfinite(v)
    front = np.zeros(c.shape, dtype=bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (c <= c[i]) & (v >= v[i]) & ((c < c[i]) | (v > v[i]))
        front[i] = not dominated.any()
    return front
