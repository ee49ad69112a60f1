"""harness.report.stats against hand-computed values and scipy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from harness.report.stats import (
    binomial_se,
    holm,
    min_detectable_effect,
    pareto_front,
    seed_contrast,
    seed_differences,
    seeds_for_effect,
    seeds_for_half_width,
    sign_flip_p,
    t_interval,
)


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


def test_seed_contrast_matches_scipy() -> None:
    d = np.array([0.012, 0.020, -0.004, 0.015, 0.009])
    c = seed_contrast(d)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert c.n_seeds == 5 and c.diff == pytest.approx(d.mean())
    assert (c.ci_low, c.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert c.half_width == pytest.approx(half)
    assert c.p == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    # Sign flips: |sum| >= observed for the observed pattern, its mirror, and those flipping
    # only the small values; counted by brute force.
    total = abs(d.sum())
    hits = sum(abs(np.dot(s, d)) >= total - 1e-12
               for s in itertools.product((1, -1), repeat=5))
    assert c.p_signflip == pytest.approx(hits / 32)


def test_seed_contrast_below_three_seeds_has_no_p() -> None:
    c = seed_contrast([0.05, 0.07])
    assert c.n_seeds == 2 and math.isnan(c.p) and math.isnan(c.p_signflip)
    # The t interval with one degree of freedom exists, and is wide: 12.7 x SE.
    assert c.half_width == pytest.approx(stats.t.ppf(0.975, 1) * 0.01)
    assert seed_contrast([]).n_seeds == 0 and math.isnan(seed_contrast([]).diff)


def test_sign_flip_exact_small_and_random_large() -> None:
    assert sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    assert sign_flip_p([1.0, -1.0, 2.0, -2.0]) == pytest.approx(1.0)
    p = sign_flip_p(np.full(20, 0.01))
    assert p == pytest.approx(1 / 20_001, rel=0.5) and p > 0


def test_seed_differences_pairs_within_seed() -> None:
    seeds = [0, 0, 0, 0, 1, 1, 1]
    cells = ["x", "x", "y", "y", "x", "x", "y"]
    groups = ["a", "b", "a", "b", "a", "b", "a"]
    values = [0.5, 0.6, 0.7, 0.9, 0.4, 0.45, 0.8]
    d = seed_differences(seeds, cells, groups, values, "a", "b")
    assert d[0] == pytest.approx((0.1 + 0.2) / 2) and d[1] == pytest.approx(0.05)
    # No shared cell in a seed: difference of its level means.
    d = seed_differences([0, 0], ["x", "y"], ["a", "b"], [0.5, 0.7], "a", "b")
    assert d[0] == pytest.approx(0.2)


def test_t_interval_and_binomial_se() -> None:
    mean, lo, hi = t_interval([0.8, 0.82, 0.84])
    assert mean == pytest.approx(0.82)
    assert hi - mean == pytest.approx(stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3))
    assert binomial_se(0.85, 269) == pytest.approx(math.sqrt(0.85 * 0.15 / 269))
    assert math.isnan(binomial_se(0.85, math.nan))


def test_min_detectable_effect_against_noncentral_t() -> None:
    sd, n, m = 0.011, 8, 7
    mde = min_detectable_effect(sd, n, family=m)
    crit = stats.t.ppf(1 - 0.05 / m / 2, n - 1)
    ncp = mde * math.sqrt(n) / sd
    power = stats.nct.sf(crit, n - 1, ncp) + stats.nct.cdf(-crit, n - 1, ncp)
    assert power == pytest.approx(0.8, abs=1e-6)
    # The audit (sd 0.011, 7 contrasts): about 0.043 at 4, 0.019 at 8, 0.011 at 16.
    assert mde == pytest.approx(0.019, abs=0.001)
    assert min_detectable_effect(sd, 4, family=m) == pytest.approx(0.043, rel=0.1)
    assert min_detectable_effect(sd, 16, family=m) == pytest.approx(0.011, rel=0.05)
    assert seeds_for_effect(sd, mde * 1.0001, family=m) == n
    assert seeds_for_effect(sd, mde * 0.999, family=m) == n + 1
    n2 = seeds_for_half_width(0.011, 0.01)
    assert stats.t.ppf(0.975, n2 - 1) * 0.011 / math.sqrt(n2) <= 0.01
    assert stats.t.ppf(0.975, n2 - 2) * 0.011 / math.sqrt(n2 - 1) > 0.01


def test_pareto_front_hand_example() -> None:
    cost = [1, 2, 2, 3, 4, math.nan]
    acc = [0.5, 0.7, 0.6, 0.7, 0.9, 1.0]
    # (2, 0.6) is beaten by (2, 0.7); (3, 0.7) by (2, 0.7); NaN cost never on the front.
    assert pareto_front(cost, acc).tolist() == [True, True, False, False, True, False]
