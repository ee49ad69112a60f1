"""The report's tables on a fractional-factorial study: balanced, unpaired contrasts with the
right values, rows the fraction cannot fill shown (not dropped) with the reason, and no claim of
pairing where there is none. Runs frames are built here directly (no database, no training)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from harness.fraction import FRACTIONAL, in_fraction, study_fraction
from harness.report import (
    ablation,
    best_practice,
    best_practice_summary,
    comparisons_with_best,
    interaction_contrasts,
    main_effects,
    recommended_vs_baseline,
    simple_effects,
    verdicts,
)
from harness.report import design as dsg
from harness.report.mixed import AVAILABLE, mixed_model_check

#: Effects (accuracy) of f0 = hi, f1 = hi, their interaction, and m = y / z.
A, B, AB, MY, MZ = 0.02, 0.01, 0.03, 0.004, -0.006
SEEDS = range(4)


def fraction_frame(k: int, *, crossed: bool = True) -> pd.DataFrame:
    """A fractional study of k two-level factors f0..f(k-1) (and m, three levels, crossed):
    y = 0.7 + A [f0=hi] + B [f1=hi] + AB [f0=hi][f1=hi] + m's effect + the seed's offset + a
    little per-run noise."""
    levels = {f"f{i}": ["lo", "hi"] for i in range(k)}
    if crossed:
        levels["m"] = ["x", "y", "z"]
    two = [f for f in levels if f != "m"]
    rng = np.random.default_rng(7)
    rows = []
    for idx in itertools.product(*(range(len(v)) for v in levels.values())):
        choice = dict(zip(levels, idx))
        if not in_fraction(choice, two):
            continue
        for seed in SEEDS:
            y = (0.7 + A * choice["f0"] + B * choice["f1"] + AB * choice["f0"] * choice["f1"]
                 + (0.0, MY, MZ)[choice.get("m", 0)] + 0.01 * math.sin(seed + 1)
                 + 0.0005 * rng.normal())
            rows.append({"run_id": len(rows) + 1, "status": "complete", "seed": seed,
                         **{f: levels[f][i] for f, i in choice.items()}, "test_acc": y})
    df = pd.DataFrame(rows)
    df.attrs = {"levels": levels, "factors": list(levels), "design": FRACTIONAL,
                "metrics": ["test_acc"]}
    return df


def row(frame: pd.DataFrame, **where: str) -> pd.Series:
    sel = frame
    for k, v in where.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, where
    return sel.iloc[0]


def test_main_effects_are_balanced_differences_of_level_means() -> None:
    runs = fraction_frame(5)
    assert len(runs) == 48 * len(SEEDS)
    eff = main_effects(runs)
    # Averaged over f1 (balanced): f0's effect is A + AB / 2; f1's B + AB / 2.
    assert row(eff, factor="f0", level="hi")["diff"] == pytest.approx(A + AB / 2, abs=1e-3)
    assert row(eff, factor="f1", level="hi")["diff"] == pytest.approx(B + AB / 2, abs=1e-3)
    for f in ("f2", "f3", "f4"):
        assert row(eff, factor=f, level="hi")["diff"] == pytest.approx(0, abs=1e-3)
    assert row(eff, factor="m", level="y")["diff"] == pytest.approx(MY, abs=1e-3)
    assert row(eff, factor="m", level="z")["diff"] == pytest.approx(MZ, abs=1e-3)
    assert (eff[~eff["reference"]]["n_seeds"] == len(SEEDS)).all()
    assert len(verdicts(eff)) == 6


def test_interactions_and_simple_effects_in_resolution_v() -> None:
    runs = fraction_frame(5)
    inter = interaction_contrasts(runs)
    assert len(inter) == 10 + 5 * 2  # every pair of levels: nothing dropped
    ab = row(inter, factor_a="f0", factor_b="f1")
    assert ab["diff"] == pytest.approx(AB, abs=1e-3) and ab["aliased_with"] == "f2 × f3 × f4"
    assert bool(ab["significant"])
    others = inter[~((inter["factor_a"] == "f0") & (inter["factor_b"] == "f1"))]
    assert np.allclose(others["diff"].to_numpy(float), 0, atol=1.5e-3)
    assert row(inter, factor_a="f0", factor_b="m", level_b="y")["aliased_with"] == \
        "m × f1 × f2 × f3 × f4"
    simple = simple_effects(runs, "f0", "f1")
    assert row(simple, within="f0 = lo", level="hi")["diff"] == pytest.approx(B, abs=1e-3)
    assert row(simple, within="f0 = hi", level="hi")["diff"] == pytest.approx(B + AB, abs=1e-3)


def test_resolution_iii_interactions_are_not_estimable_and_say_why() -> None:
    runs = fraction_frame(3)
    inter = interaction_contrasts(runs)
    ab = row(inter, factor_a="f0", factor_b="f1")
    assert math.isnan(ab["diff"]) and ab["aliased_with"] == "f2"
    assert ab["test"] == "not estimable: aliased with the main effect of f2 (resolution III " \
                         "fraction)"
    assert not bool(ab["significant"]) and math.isnan(ab["p_holm"])
    # With the crossed factor the contrast is estimable (aliased with a 3-factor interaction).
    am = row(inter, factor_a="f0", factor_b="m", level_b="z")
    assert math.isfinite(am["diff"]) and am["aliased_with"] == "m × f1 × f2"
    simple = simple_effects(runs, "f0", "f1")
    blank = simple[simple["level"] == "hi"]
    assert len(blank) == 2 and blank["diff"].isna().all()
    assert blank["test"].str.startswith("not estimable").all()
    # Best practice never decides f0 and f1 jointly on an interaction it cannot estimate.
    cmp = comparisons_with_best(runs)
    assert not any(" x " in str(f) for f in cmp["factor"])


def test_ablation_mixed_model_and_baseline_outside_the_fraction() -> None:
    runs = fraction_frame(5)  # k odd: the all-reference baseline is not in the fraction
    abl = ablation(runs)
    assert list(abl["change"])[:2] == ["baseline", "f0 = hi"] and len(abl) == 1 + 5 + 2
    assert (abl["n_seeds"] == 0).all() and int(abl.iloc[0]["runs"]) == 0
    practice = best_practice(runs)
    versus = recommended_vs_baseline(runs, practice)
    assert int(versus.iloc[0]["runs"]) == 0
    assert "The baseline was not run in this study" in best_practice_summary(practice, versus)
    if AVAILABLE:
        check = mixed_model_check(runs, main_effects(runs))
        unpaired = check[check["factor"] != "m"]
        assert len(unpaired) == 5
        assert unpaired["verdict"].str.contains("no cell of the other factors ran both").all()
        assert check[check["factor"] == "m"]["mixed_diff"].notna().all()


def test_joint_decision_on_an_interacting_pair_uses_the_fractions_cells() -> None:
    runs = fraction_frame(5, crossed=False)
    cmp = comparisons_with_best(runs)
    joint = cmp[cmp["factor"] == "f0 x f1"]
    assert set(joint["best"]) == {"hi x hi"}
    # (hi, hi) against each other cell: -(A + B + AB), -(A + AB), -(B + AB).
    want = {"lo x lo": -(A + B + AB), "lo x hi": -(A + AB), "hi x lo": -(B + AB)}
    for label, d in want.items():
        assert row(joint, level=label)["diff"] == pytest.approx(d, abs=1e-3)


def test_design_lines_and_notes_only_for_a_fraction() -> None:
    lv = {f"f{i}": ["lo", "hi"] for i in range(5)}
    lines = dsg.design_lines(FRACTIONAL, lv)
    assert lines[0] == "Design: fractional-factorial, resolution V half fraction."
    assert any(x.startswith("Defining relation: I = +f0 × f1 × f2 × f3 × f4") for x in lines)
    assert dsg.design_lines("full-factorial", lv) == []
    table = dsg.alias_table(study_fraction(FRACTIONAL, lv))
    assert study_fraction("full-factorial", lv) is None
    assert len(table) == 15 and set(table["alias_order"]) == {3, 4}
