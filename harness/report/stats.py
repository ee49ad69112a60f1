"""Statistics behind the report tables: bootstrap intervals, paired tests, Holm, Pareto fronts.

The choices, stated once here and in every table that uses them:

- Confidence intervals are percentile bootstrap intervals of the mean over runs (scipy's
  ``bootstrap``, 2,000 resamples, a fixed seed so a report is reproducible).
- A difference between two levels is tested on *pairs* of runs that share every other level and
  the seed, so seed noise and the other factors cancel. The test is the Wilcoxon signed-rank test
  (two-sided, exact for small samples) when there are at least :data:`MIN_WILCOXON_PAIRS` pairs;
  below that it cannot reach p < 0.05 at all (its smallest two-sided p is 2/2^n), so the paired
  t-test is used and the table says so. With fewer than two pairs nothing is tested.
- p-values of one table form one family, corrected with Holm's step-down method.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = [
    "ALPHA",
    "MIN_WILCOXON_PAIRS",
    "N_BOOTSTRAP",
    "PairedTest",
    "bootstrap_ci",
    "holm",
    "paired_test",
    "pareto_front",
]

ALPHA = 0.05
N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 20250101
#: Two-sided exact Wilcoxon p is at least 2/2^n: n = 6 is the first n that can reach 0.05.
MIN_WILCOXON_PAIRS = 6


def bootstrap_ci(values: Sequence[float] | np.ndarray, *, confidence: float = 0.95,
                 n_resamples: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (non-finite values dropped).

    Fewer than two values give NaNs: one run says nothing about the spread. Identical values
    give the zero-width interval every resample would.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan, math.nan
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", vectorized=True,
                          rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclasses.dataclass(frozen=True)
class PairedTest:
    """Result of comparing ``b`` against ``a`` on paired runs (difference = b - a)."""

    n: int
    mean_diff: float
    test: str
    statistic: float
    p: float


def paired_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> PairedTest:
    """Two-sided paired test of ``b - a``; pairs with a non-finite side are dropped."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.shape} vs {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    d = y[ok] - x[ok]
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    if n < 2:
        return PairedTest(n, mean, "none (n<2)", math.nan, math.nan)
    if np.all(d == 0):
        # Identical pairs: no evidence of any difference (scipy would return NaN).
        name = "wilcoxon" if n >= MIN_WILCOXON_PAIRS else "paired t (n<6)"
        return PairedTest(n, mean, name, 0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if n >= MIN_WILCOXON_PAIRS:
            res = stats.wilcoxon(y[ok], x[ok], alternative="two-sided")
            return PairedTest(n, mean, "wilcoxon", float(res.statistic), float(res.pvalue))
        if np.all(d == d[0]):
            # A constant non-zero shift has zero variance, so t is undefined. With accuracies
            # on a few hundred test samples this happens by quantization (two seeds both
            # +1 sample), and p = 0 would call a one-sample difference certain: no test.
            return PairedTest(n, mean, "none (zero variance, n<6)", math.nan, math.nan)
        res = stats.ttest_rel(y[ok], x[ok])
        return PairedTest(n, mean, "paired t (n<6)", float(res.statistic), float(res.pvalue))


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
