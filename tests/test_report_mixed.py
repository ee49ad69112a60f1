"""The mixed-model cross-check beside the seed-level main effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_calibration import LEVELS, simulate

from harness.report import main_effects
from harness.report.mixed import disagreements, mixed_model_check


def test_mixed_model_agrees_with_seed_level_contrasts_on_a_balanced_study() -> None:
    frame = simulate(np.random.default_rng(3), seeds=8, effect=0.02, slope_sd=0.011)
    me = main_effects(frame, levels=LEVELS, extra=())
    check = mixed_model_check(frame, me, levels=LEVELS)
    assert check["factor"].tolist() == ["a", "b", "c"]
    # Balanced design: the fixed coefficient is exactly the mean of the per-seed contrasts.
    seed = me[~me["reference"]].set_index("factor")["diff"]
    assert np.allclose(check.set_index("factor")["mixed_diff"], seed, atol=1e-9)
    assert (check["se_ratio"].between(0.5, 2.0)).all()
    assert disagreements(check) == []


def test_disagreements_are_named() -> None:
    check = pd.DataFrame({"factor": ["a", "b"], "level": ["on", "y"],
                          "verdict": ["agrees", "disagrees: mixed p = 0.001 vs seed-level p = "
                                                "0.3, SE ratio 0.40"]})
    assert disagreements(check) == ["b = y: disagrees: mixed p = 0.001 vs seed-level p = 0.3, "
                                    "SE ratio 0.40"]


def test_two_seeds_are_not_fitted() -> None:
    frame = simulate(np.random.default_rng(4), seeds=2, effect=0.02, slope_sd=0.011)
    me = main_effects(frame, levels=LEVELS, extra=())
    check = mixed_model_check(frame, me, levels=LEVELS)
    assert check["verdict"].str.startswith("not fitted: fewer than 3 seeds").all()


def test_one_difference_per_seed_is_not_fitted_rather_than_a_disagreement() -> None:
    """One-at-a-time designs give one paired difference per seed: the mixed model is not
    identified there, so the check says so instead of reporting a sharp disagreement."""
    from harness.report.mixed import AVAILABLE

    if not AVAILABLE:
        pytest.skip("statsmodels is not installed")
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(6):
        base = 0.8 + rng.normal(0, 0.02)
        rows.append({"seed": seed, "f": "a", "test_acc": base, "status": "complete"})
        rows.append({"seed": seed, "f": "b", "test_acc": base - 0.05 + rng.normal(0, 0.01),
                     "status": "complete"})
    runs = pd.DataFrame(rows)
    effects = main_effects(runs, levels={"f": ["a", "b"]})
    check = mixed_model_check(runs, effects, levels={"f": ["a", "b"]})
    assert check["verdict"].iloc[0].startswith("not fitted: one paired difference per seed")
