"""The report's first screen: one sentence per factor saying what is established, what is ruled
out and what is unresolved, from the seed-level main-effects table.

For each non-reference level:

* *established*: the Holm-adjusted seed-level test is significant; the sentence gives the
  direction, size and 95% CI, and says so when the CI is wider than the study's target (the
  sign is established, the size only to that half-width);
* *ruled out*: not significant, and the CI is resolved (half-width within the study's target):
  effects beyond the CI's bounds are ruled out ("costs less than 1.3 points");
* *unresolved*: fewer than 3 seeds, or not significant with a CI wider than the target; the
  sentence gives the half-width, the MDE and the seeds a 2-point MDE needs.

The placebo factor comes first, with what a significant placebo would mean.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.report.contrasts import DEFAULT_TARGET
from harness.report.effects import PLACEBO
from harness.report.stats import seeds_for_half_width

__all__ = ["PLACEBO_MEANING", "verdicts"]

PLACEBO_MEANING = ("A placebo level changes only the order in which the training data is "
                   "drawn, so its true effect is zero: a significant placebo would mean that "
                   "this report's tests give false positives in this setting, and every other "
                   "conclusion should be doubted.")


def _units(metric: str) -> tuple[float, str]:
    return (100.0, " points") if "acc" in metric else (1.0, "")


def _num(x: float, scale: float) -> str:
    return f"{scale * x:+.1f}" if scale != 1 else f"{x:+.3g}"


def _mag(x: float, scale: float) -> str:
    return f"{scale * abs(x):.1f}" if scale != 1 else f"{abs(x):.3g}"


def _phrase(r: pd.Series, ref: str, scale: float, unit: str, target: float) -> str:
    level = str(r["level"])
    n = int(r["n_seeds"])
    if n < 3:
        return (f"{level} vs {ref} unresolved ({n} seed{'s' if n != 1 else ''}, at least 3 "
                f"needed for a test)")
    ci = f"95% CI [{_num(r['diff_ci_low'], scale)}, {_num(r['diff_ci_high'], scale)}]{unit}"
    if bool(r["significant"]):
        way = "raises" if r["diff"] > 0 else "lowers"
        text = (f"{level} {way} it by {_mag(r['diff'], scale)}{unit} vs {ref} ({ci}, "
                f"p_holm = {r['p_holm']:.2g}): established")
        half = float(r["half_width"])
        if math.isfinite(half) and half > target:
            # Its sign is known, its size not to the study's precision: say so, by name.
            more = seeds_for_half_width(float(r["sd_seed"]), target)
            need = f"; about {more} seeds would reach it" if more is not None else ""
            text += (f", but its size is resolved only to ±{_mag(half, scale)}{unit}, wider "
                     f"than the ±{_mag(target, scale)}{unit} target{need}")
        return text
    if bool(r["resolved"]):
        lo, hi = float(r["diff_ci_low"]), float(r["diff_ci_high"])
        bounds = []
        if lo < 0:
            bounds.append(f"costs less than {_mag(lo, scale)}{unit}")
        if hi > 0:
            bounds.append(f"gains less than {_mag(hi, scale)}{unit}")
        return f"{level} vs {ref}: no effect established; {level} {' and '.join(bounds)} ({ci})"
    seeds2 = r.get("seeds_2pt")
    need = (f", about {int(seeds2)} seeds would detect 2 points" if seeds2 is not None
            and not pd.isna(seeds2) else "")
    mde = (f"; MDE {_mag(r['mde'], scale)}{unit} at {n} seeds" if math.isfinite(r["mde"])
           else "")
    return (f"{level} vs {ref} unresolved at ±{_mag(r['half_width'], scale)}{unit} (target "
            f"±{_mag(target, scale)}{unit}; diff {_num(r['diff'], scale)}{unit}{mde}{need})")


def verdicts(effects: pd.DataFrame, *, metric: str = "test_acc",
             target: float = DEFAULT_TARGET) -> list[str]:
    """One sentence per factor of a :func:`harness.report.effects.main_effects` table, the
    placebo first."""
    scale, unit = _units(metric)
    out = []
    for factor in dict.fromkeys(effects["factor"]):
        sub = effects[effects["factor"] == factor]
        refs = sub[sub["reference"].astype(bool)]
        ref = str(refs["level"].iloc[0]) if len(refs) else "the reference"
        rows = sub[~sub["reference"].astype(bool)]
        if rows.empty:
            continue
        phrases = [_phrase(r, ref, scale, unit, target) for _, r in rows.iterrows()]
        text = f"{factor} ({metric}): " + "; ".join(phrases) + "."
        if factor == PLACEBO:
            bad = bool(rows["significant"].astype(bool).any())
            text = (("Placebo check FAILED: " if bad else "Placebo check passed: ") + text
                    + " " + PLACEBO_MEANING)
        out.append(text)
    return out
