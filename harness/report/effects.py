"""Main effects, the one-at-a-time ablation, BN vs shift-BN and the optimizer-switch table.

Every difference here is a seed-level contrast (:mod:`harness.report.contrasts`, whose docstring
holds the column contract); level means carry t intervals over their seed means and, beside an
accuracy, the test-set size and the binomial SE it implies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.report.contrasts import (
    DEFAULT_TARGET,
    contrast_values,
    finish_family,
    level_stats,
    no_contrast,
    seed_means,
    summarize,
)
from harness.report.stats import binomial_se
from harness.report.tables import (
    EXTRA_METRICS,
    _baseline_mask,
    _check_factors,
    _complete,
    _mean,
    study_factors,
)

__all__ = ["PLACEBO", "ablation", "bn_vs_shift_bn", "main_effects", "optimizer_switch",
           "placebo_first"]

#: The built-in A/A factor (tricks/placebo.py): its rows come first.
PLACEBO = "placebo"


def placebo_first(factors: Sequence[str]) -> list[str]:
    return [f for f in factors if f == PLACEBO] + [f for f in factors if f != PLACEBO]


def _test_set(sel: pd.DataFrame, mean: float) -> dict[str, float]:
    """Test samples per run and the binomial SE of one run's accuracy at the level's mean."""
    n = _mean(sel["test_samples"]) if "test_samples" in sel else math.nan
    return {"test_samples": n, "binom_se": binomial_se(mean, n)}


def main_effects(runs: pd.DataFrame, *, metric: str = "test_acc",
                 levels: Mapping[str, Sequence[str]] | None = None,
                 extra: Sequence[str] = EXTRA_METRICS,
                 target: float = DEFAULT_TARGET) -> pd.DataFrame:
    """Per factor and level (the placebo factor first): runs, seeds, mean with its t interval
    over seed means, test-set size and binomial SE, then the seed-level contrast with the
    reference level (Holm over every contrast of the table) and the mean of each ``extra``."""
    lv = study_factors(runs, levels)
    _check_factors(runs, lv)
    df = _complete(runs, metric)
    factors = list(lv)
    rows = []
    for factor in placebo_first(factors):
        labels = lv[factor]
        ref = labels[0] if labels else None
        for label in labels:
            sel = df[df[factor] == label]
            row: dict[str, Any] = {"factor": factor, "level": label, "reference": label == ref}
            row.update(level_stats(sel, metric))
            row.update(_test_set(sel, row["mean"]))
            if label == ref:
                row.update(no_contrast("reference"))
            else:
                row.update(summarize(contrast_values(df, factor, ref, label, metric, factors)))
            for m in extra:
                row[m] = _mean(sel[m]) if m in df else math.nan
            rows.append(row)
    columns = ["factor", "level", "reference", "runs", "seeds", "mean", "std", "ci_low",
               "ci_high", "test_samples", "binom_se", *extra, "n_seeds", "diff", "diff_ci_low",
               "diff_ci_high", "half_width", "sd_seed", "t", "p", "p_signflip", "test"]
    return finish_family(pd.DataFrame(rows, columns=columns), target=target)


def ablation(runs: pd.DataFrame, *, metric: str = "test_acc",
             levels: Mapping[str, Sequence[str]] | None = None,
             target: float = DEFAULT_TARGET) -> pd.DataFrame:
    """The one-at-a-time ablation: the baseline (every factor at its reference level), then each
    single change from it, compared with the baseline seed by seed (Holm over the changes).
    Works on a one-at-a-time study and on a factorial (which contains it)."""
    lv = study_factors(runs, levels)
    _check_factors(runs, lv)
    df = _complete(runs, metric)
    factors = list(lv)
    base = df[_baseline_mask(df, lv)]
    row0: dict[str, Any] = {"change": "baseline", "factor": "", "level": ""}
    row0.update(level_stats(base, metric))
    row0.update(no_contrast("baseline"))
    rows = [row0]
    for factor in placebo_first(factors):
        labels = lv[factor]
        for label in labels[1:]:
            sel = df[_baseline_mask(df, lv, factor) & (df[factor] == label)]
            row: dict[str, Any] = {"change": f"{factor} = {label}", "factor": factor,
                                   "level": label}
            row.update(level_stats(sel, metric))
            both = pd.concat([base, sel])
            row.update(summarize(contrast_values(both, factor, labels[0], label, metric,
                                                 factors)))
            rows.append(row)
    columns = ["change", "factor", "level", "runs", "seeds", "mean", "std", "ci_low", "ci_high",
               "n_seeds", "diff", "diff_ci_low", "diff_ci_high", "half_width", "sd_seed", "t",
               "p", "p_signflip", "test"]
    return finish_family(pd.DataFrame(rows, columns=columns), target=target)


def _group_levels(df: pd.DataFrame, lv: Mapping[str, Sequence[str]],
                  factors: Sequence[str]) -> list[tuple[str, str, pd.DataFrame]]:
    groups = [("all", "", df)]
    for f in factors:
        if f in lv:
            groups += [(f, label, df[df[f] == label]) for label in lv[f]]
    return groups


def bn_vs_shift_bn(runs: pd.DataFrame, *, metric: str = "test_acc",
                   shifted: str = "test_acc_shift_bn",
                   levels: Mapping[str, Sequence[str]] | None = None,
                   target: float = DEFAULT_TARGET) -> pd.DataFrame:
    """Accuracy lost by evaluating with power-of-two (shift) BN: ``diff = metric - shifted`` per
    run with BN (both recorded, normalization not ``none``), averaged within each seed, then
    over seeds; overall and per binarization / shift_bn level, Holm over the rows."""
    lv = study_factors(runs, levels)
    columns = ["group", "level", "runs", metric, shifted, "n_seeds", "diff", "diff_ci_low",
               "diff_ci_high", "half_width", "sd_seed", "t", "p", "p_signflip", "test"]
    if metric not in runs or shifted not in runs:
        return finish_family(pd.DataFrame(columns=columns), target=target)
    df = _complete(runs, metric)
    df = df[np.isfinite(df[shifted].astype(float))]
    if "normalization" in df:
        df = df[df["normalization"] != "none"]
    rows = []
    for group, label, sub in _group_levels(df, lv, ("binarization", "shift_bn")):
        loss = sub[metric].astype(float) - sub[shifted].astype(float)
        row: dict[str, Any] = {"group": group, "level": label, "runs": int(len(sub)),
                               metric: _mean(sub[metric]), shifted: _mean(sub[shifted])}
        row.update(summarize(seed_means(loss, sub["seed"]) if len(sub) else []))
        rows.append(row)
    return finish_family(pd.DataFrame(rows, columns=columns), target=target)


def optimizer_switch(runs: pd.DataFrame, *,
                     levels: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Per optimizer level that switched (hybrid, SWATS) and binarization level: how many runs
    switched, where (``switch_epoch``, 0-based), at which SGD rate (median, max of
    ``switch_lr``), and how many took their best-validation checkpoint (``best_epoch``, 0-based,
    the weights the test accuracy comes from) *before* the switch, i.e. were Adam runs stopped
    early rather than Adam-then-SGD runs."""
    columns = ["optimizer", "binarization", "runs", "switched", "switch_epoch",
               "switch_lr_median", "switch_lr_max", "best_epoch", "best_before_switch",
               "share_best_before_switch"]
    df = _complete(runs)
    if "switch_epoch" not in df or "optimizer" not in df:
        return pd.DataFrame(columns=columns)
    lv = study_factors(runs, levels)
    switched = df[np.isfinite(df["switch_epoch"].astype(float))]
    rows = []
    binz = lv.get("binarization") if "binarization" in df else None
    for opt in lv.get("optimizer", []):
        if not (switched["optimizer"] == opt).any():
            continue
        for b in binz or [""]:
            sub = df[(df["optimizer"] == opt) & ((df["binarization"] == b) if binz else True)]
            sw = sub[np.isfinite(sub["switch_epoch"].astype(float))]
            best = sw["best_epoch"].astype(float) if "best_epoch" in sw else pd.Series(
                math.nan, index=sw.index)
            known = np.isfinite(best.to_numpy())
            before = int((best[known] < sw["switch_epoch"].astype(float)[known]).sum())
            lr = sw["switch_lr"].astype(float) if "switch_lr" in sw else pd.Series(dtype=float)
            lr = lr[np.isfinite(lr)]
            rows.append({"optimizer": opt, "binarization": b, "runs": int(len(sub)),
                         "switched": int(len(sw)), "switch_epoch": _mean(sw["switch_epoch"]),
                         "switch_lr_median": float(lr.median()) if len(lr) else math.nan,
                         "switch_lr_max": float(lr.max()) if len(lr) else math.nan,
                         "best_epoch": _mean(best), "best_before_switch": before,
                         "share_best_before_switch": before / int(known.sum()) if known.any()
                         else math.nan})
    return pd.DataFrame(rows, columns=columns)
