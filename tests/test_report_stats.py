"""harness.report.stats against hand-computed values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.report.stats import bootstrap_ci, holm, paired_test, pareto_front


def test_holm_hand_example() -> None:
    # sorted: 0.01*4 = 0.04; 0.03*3 = 0.09; 0.04*2 = 0.08 -> monotone 0.09; 0.2*1 = 0.2
    adjusted = holm([0.01, 0.04, 0.03, 0.2])
    assert adjusted.tolist() == pytest.approx([0.04, 0.09, 0.09, 0.2])


def test_holm_caps_at_one_and_skips_nan() -> None:
    adjusted = holm([0.5, math.nan, 0.4, 0.001])
    # Family of three: 0.001*3, 0.4*2 = 0.8, 0.5*1 -> monotone 0.8
    assert adjusted[3] == pytest.approx(0.003)
    assert adjusted[2] == pytest.approx(0.8)
    assert adjusted[0] == pytest.approx(0.8)
    assert math.isnan(adjusted[1])
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0]
    assert holm([]).size == 0


def test_paired_test_wilcoxon_matches_scipy() -> None:
    a = np.array([0.80, 0.82, 0.79, 0.85, 0.81, 0.83, 0.78])
    b = a + np.array([0.01, 0.03, -0.005, 0.02, 0.015, 0.025, 0.012])
    t = paired_test(a, b)
    ref = stats.wilcoxon(b - a)
    assert t.test == "wilcoxon" and t.n == 7
    assert t.p == pytest.approx(ref.pvalue)
    assert t.mean_diff == pytest.approx(np.mean(b - a))
    # Exact two-sided: one negative of rank 1 among 7 -> (2 * 2) / 2^7.
    assert t.p == pytest.approx(4 / 128)


def test_paired_test_small_n_falls_back_to_t() -> None:
    a = [0.80, 0.82, 0.79]
    b = [0.83, 0.84, 0.80]
    t = paired_test(a, b)
    assert t.test == "paired t (n<6)" and t.n == 3
    assert t.p == pytest.approx(stats.ttest_rel(b, a).pvalue)
    d = np.subtract(b, a)
    assert t.statistic == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(3)))


def test_paired_test_edge_cases() -> None:
    assert paired_test([1.0], [2.0]).test == "none (n<2)"
    assert math.isnan(paired_test([1.0], [2.0]).p)
    same = paired_test([0.5] * 7, [0.5] * 7)
    assert same.p == 1.0 and same.mean_diff == 0.0
    shifted = paired_test([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    # A constant shift over few pairs has zero variance: t is undefined, nothing is claimed.
    assert math.isnan(shifted.p) and shifted.mean_diff == 0.5
    assert shifted.test.startswith("none (zero variance")
    dropped = paired_test([0.1, math.nan, 0.3, 0.2], [0.2, 0.5, math.inf, 0.25])
    assert dropped.n == 2
    with pytest.raises(ValueError, match="differ in length"):
        paired_test([1.0, 2.0], [1.0])


def test_bootstrap_ci_close_to_numpy_percentile_bootstrap() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0.8, 0.02, size=12)
    lo, hi = bootstrap_ci(x)
    means = rng.choice(x, size=(20000, x.size), replace=True).mean(axis=1)
    ref_lo, ref_hi = np.percentile(means, [2.5, 97.5])
    assert lo == pytest.approx(ref_lo, abs=0.002)
    assert hi == pytest.approx(ref_hi, abs=0.002)
    assert lo < x.mean() < hi
    assert bootstrap_ci(x) == (lo, hi)  # fixed seed: reproducible


def test_bootstrap_ci_degenerate_inputs() -> None:
    assert bootstrap_ci([0.7, 0.7, 0.7]) == (0.7, 0.7)
    for few in ([], [0.7], [0.7, math.nan]):
        lo, hi = bootstrap_ci(few)
        assert math.isnan(lo) and math.isnan(hi)
    assert bootstrap_ci([0.5, math.nan, 0.5]) == (0.5, 0.5)


def test_pareto_front_hand_example() -> None:
    cost = [1, 2, 2, 3, 4, math.nan]
    acc = [0.5, 0.7, 0.6, 0.7, 0.9, 1.0]
    # (2, 0.6) is beaten by (2, 0.7); (3, 0.7) by (2, 0.7); NaN cost never on the front.
    assert pareto_front(cost, acc).tolist() == [True, True, False, False, True, False]
