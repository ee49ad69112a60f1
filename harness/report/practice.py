"""Best practice as non-inferiority at the seed level, and the recommended combination compared
with the baseline and the top configuration.

Per factor, every level is compared with the best one (highest mean of seed means): a seed-level
contrast ``level - best`` (comparison with the best, Holm over all of these comparisons of every
factor). A level is

* *non-inferior* when the lower 95% bound of ``level - best`` is above ``-delta``
  (default 1 accuracy point),
* *worse* when the comparison is significant (Holm) and negative,
* *unresolved* otherwise (neither within ``delta`` nor shown worse).

The cheapest of the best and its non-inferior levels is recommended (least weight memory, then
energy per sample, synaptic operations, training time; then spec order). If any level is
unresolved the table says ``no recommendation: unresolved at ±X`` (X: the widest half-width of
those comparisons) instead of choosing: low power must not favour the cheap level. When a
two-factor interaction between factors is significant and resolved
(:func:`harness.report.interaction.interaction_contrasts`), the two are decided jointly, on
their cell means.
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
    summarize,
)
from harness.report.effects import PLACEBO
from harness.report.interaction import interaction_contrasts
from harness.report.tables import (
    COST_METRICS,
    _check_factors,
    _combo_mask,
    _complete,
    _mean,
    combination_label,
    study_factors,
    top_configurations,
)

__all__ = ["DEFAULT_DELTA", "JOINT", "best_practice", "best_practice_summary",
           "comparisons_with_best", "recommended_vs_baseline", "recommended_vs_top"]

DEFAULT_DELTA = 0.01
#: Separator of a joint factor's name and of its levels' labels.
JOINT = " x "
_CONTRAST = ["n_seeds", "diff", "diff_ci_low", "diff_ci_high", "half_width", "sd_seed", "t",
             "p", "p_signflip", "test"]


def _joint(df: pd.DataFrame, fa: str, fb: str) -> pd.Series:
    return df[fa].astype(str) + JOINT + df[fb].astype(str)


def _units(df: pd.DataFrame, lv: Mapping[str, Sequence[str]], joint: Sequence[tuple[str, str]]
           ) -> tuple[pd.DataFrame, dict[str, list[str]], list[str]]:
    """The decision units: single factors, with each interacting pair replaced by one joint
    factor whose levels are the pair's cells. Returns the frame (joint columns added), the
    units' levels and the cell factors contrasts pair on."""
    df = df.copy()
    units: dict[str, list[str]] = {}
    paired = {f for pair in joint for f in pair}
    for fa, fb in joint:
        name = fa + JOINT + fb
        df[name] = _joint(df, fa, fb)
        units[name] = [a + JOINT + b for a in lv[fa] for b in lv[fb]]
    for f, labels in lv.items():
        if f not in paired:
            units[f] = list(labels)
    return df, units, [f for f in lv if f not in paired] + [fa + JOINT + fb for fa, fb in joint]


def _cost_key(sub: pd.DataFrame, rank: int) -> tuple[float, ...]:
    key = []
    for m in COST_METRICS:
        v = _mean(sub[m]) if m in sub else math.nan
        # Three significant digits: run-to-run noise in a cost must not decide a tie.
        key.append(float(f"{v:.3g}") if math.isfinite(v) else math.inf)
    return (*key, float(rank))


def _interacting(runs: pd.DataFrame, lv: Mapping[str, Sequence[str]], metric: str,
                 target: float) -> list[tuple[str, str]]:
    """Pairs of factors with a significant, resolved interaction contrast; a factor joins at
    most one pair (the one with the largest such contrast)."""
    if len(lv) < 2:
        return []
    inter = interaction_contrasts(runs, metric=metric, levels=lv, target=target)
    hits = inter[inter["significant"] & inter["resolved"]
                 & (inter["factor_a"] != PLACEBO) & (inter["factor_b"] != PLACEBO)]
    hits = hits.reindex(hits["diff"].abs().sort_values(ascending=False).index)
    used: set[str] = set()
    pairs = []
    for r in hits.itertuples():
        if r.factor_a not in used and r.factor_b not in used:
            pairs.append((r.factor_a, r.factor_b))
            used |= {r.factor_a, r.factor_b}
    return pairs


def comparisons_with_best(runs: pd.DataFrame, *, metric: str = "test_acc",
                          levels: Mapping[str, Sequence[str]] | None = None,
                          target: float = DEFAULT_TARGET,
                          joint: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Every level against the best level of its unit (``diff = level - best``), seed-level,
    Holm over all rows. ``joint``: factor pairs decided on their cells (default: the pairs with
    a significant, resolved interaction)."""
    lv = study_factors(runs, levels)
    _check_factors(runs, lv)
    df0 = _complete(runs, metric)
    if joint is None:
        joint = _interacting(runs, lv, metric, target)
    df, units, cell_factors = _units(df0, lv, joint)
    rows = []
    for unit, labels in units.items():
        if unit == PLACEBO:
            continue  # an A/A check, not a trick: nothing to recommend
        stats = {lab: level_stats(df[df[unit] == lab], metric) for lab in labels}
        observed = [lab for lab in labels if math.isfinite(stats[lab]["mean"])]
        if not observed:
            continue
        best = max(observed, key=lambda lab: stats[lab]["mean"])
        for lab in observed:
            row: dict[str, Any] = {"factor": unit, "level": lab, "best": best}
            row.update({k: stats[lab][k] for k in ("runs", "seeds", "mean")})
            row.update(no_contrast("best") if lab == best else summarize(
                contrast_values(df, unit, best, lab, metric, cell_factors)))
            rows.append(row)
    columns = ["factor", "level", "best", "runs", "seeds", "mean", *_CONTRAST]
    return finish_family(pd.DataFrame(rows, columns=columns), target=target)


def best_practice(runs: pd.DataFrame, *, metric: str = "test_acc",
                  levels: Mapping[str, Sequence[str]] | None = None,
                  delta: float = DEFAULT_DELTA, target: float = DEFAULT_TARGET,
                  comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per decision unit (a factor, or an interacting pair) the recommended level; see the
    module docstring for the rule."""
    lv = study_factors(runs, levels)
    cmp = comparisons if comparisons is not None else comparisons_with_best(
        runs, metric=metric, levels=lv, target=target)
    df = _complete(runs, metric)
    units = list(dict.fromkeys(cmp["factor"])) if len(cmp) else []
    rows = []
    for unit in units:
        sub = cmp[cmp["factor"] == unit]
        best = str(sub["best"].iloc[0])
        others = sub[sub["level"] != best]
        lower = others["diff_ci_low"].to_numpy(float)
        ok = (others["n_seeds"].to_numpy(int) >= 3) & np.isfinite(lower)
        noninf = list(others["level"][ok & (lower > -delta)])
        worse = list(others["level"][others["significant"].to_numpy(bool)
                                     & (others["diff"].to_numpy(float) < 0)])
        unresolved = [lab for lab in others["level"] if lab not in noninf and lab not in worse]
        parts = unit.split(JOINT)
        ref = JOINT.join(lv[p][0] for p in parts) if all(p in lv for p in parts) else ""
        order = list(sub["level"])
        if unresolved:
            open_ = others[others["level"].isin(unresolved) & (others["n_seeds"] >= 3)]
            wide = float(open_["half_width"].max()) if len(open_) else math.nan
            x = f"±{100 * wide:.1f} points" if math.isfinite(wide) else "fewer than 3 seeds"
            rec, decision = "", f"no recommendation: unresolved at {x}"
        else:
            cand = [best, *noninf]

            def key(lab: str, unit: str = unit, order: list[str] = order
                    ) -> tuple[float, ...]:
                return _cost_key(_unit_rows(df, unit, lab), order.index(lab))

            rec = min(cand, key=key)
            if rec != best:
                decision = (f"non-inferior to the best ({best}) within {100 * delta:g} "
                            f"points, and cheaper")
            elif not noninf and worse:
                decision = "best: significantly better than every other level"
            elif not others.empty:
                decision = "best; the non-inferior levels are not cheaper"
            else:
                decision = "only level with runs"
        rec_sub = _unit_rows(df, unit, rec or best)
        rows.append({"factor": unit, "recommended": rec, "decision": decision,
                     "reference": ref, "best": best,
                     "non_inferior": "; ".join(noninf), "worse": "; ".join(worse),
                     "unresolved": "; ".join(unresolved), "delta": delta,
                     "recommended_mean": _mean(rec_sub[metric]) if rec else math.nan,
                     "best_mean": float(sub.loc[sub["level"] == best, "mean"].iloc[0])})
    return pd.DataFrame(rows, columns=["factor", "recommended", "decision", "reference", "best",
                                       "non_inferior", "worse", "unresolved", "delta",
                                       "recommended_mean", "best_mean"])


def _unit_rows(df: pd.DataFrame, unit: str, label: str) -> pd.DataFrame:
    parts, labels = unit.split(JOINT), label.split(JOINT)
    if len(parts) != len(labels):
        return df.iloc[0:0]
    return df[_combo_mask(df, dict(zip(parts, labels)))]


def _combination(practice: pd.DataFrame, lv: Mapping[str, Sequence[str]]
                 ) -> tuple[dict[str, str], list[str]]:
    """The recommended level per factor; a unit without a recommendation uses its best by mean
    (named in the second value)."""
    combo = {f: labels[0] for f, labels in lv.items() if labels}
    fallback = []
    for r in practice.itertuples():
        label = r.recommended or r.best
        if not r.recommended:
            fallback.append(str(r.factor))
        for f, lab in zip(str(r.factor).split(JOINT), str(label).split(JOINT)):
            if f in combo:
                combo[f] = lab
    return combo, fallback


def _versus(df: pd.DataFrame, name: str, combo: Mapping[str, str], rec: Mapping[str, str],
            metric: str, target: float, note: str = "") -> pd.DataFrame:
    """Two rows: ``name`` and the recommended combination, ``diff = recommended - name``."""
    base = df[_combo_mask(df, combo)]
    mine = df[_combo_mask(df, rec)]
    rows = []
    for label, c, sel in ((name, combo, base), ("recommended", rec, mine)):
        row: dict[str, Any] = {"configuration": label, "levels": combination_label(c)}
        row.update(level_stats(sel, metric))
        rows.append(row)
    rows[0].update(no_contrast(name))
    if dict(rec) == dict(combo):
        rows[1].update(no_contrast(f"same as {name}"))
    else:
        a = base.groupby("seed")[metric].mean()
        b = mine.groupby("seed")[metric].mean()
        both = pd.concat([a.rename("a"), b.rename("b")], axis=1).dropna()
        rows[1].update(summarize((both["b"] - both["a"]).tolist()))
    if note:
        rows[1]["levels"] += f" ({note})"
    columns = ["configuration", "levels", "runs", "seeds", "mean", "ci_low", "ci_high",
               *_CONTRAST]
    return finish_family(pd.DataFrame(rows, columns=columns), target=target)


def recommended_vs_baseline(runs: pd.DataFrame, practice: pd.DataFrame | None = None, *,
                            metric: str = "test_acc",
                            levels: Mapping[str, Sequence[str]] | None = None,
                            target: float = DEFAULT_TARGET) -> pd.DataFrame:
    """The recommended combination against the baseline (every reference level), seed by seed.
    A combination the study never ran (one-at-a-time designs) shows zero runs."""
    lv = study_factors(runs, levels)
    if practice is None:
        practice = best_practice(runs, metric=metric, levels=lv, target=target)
    rec, fallback = _combination(practice, lv)
    base = {f: labels[0] for f, labels in lv.items() if labels}
    note = f"best by mean for unresolved {', '.join(fallback)}" if fallback else ""
    return _versus(_complete(runs, metric), "baseline", base, rec, metric, target, note)


def recommended_vs_top(runs: pd.DataFrame, practice: pd.DataFrame | None = None, *,
                       metric: str = "test_acc",
                       levels: Mapping[str, Sequence[str]] | None = None,
                       target: float = DEFAULT_TARGET) -> pd.DataFrame:
    """The recommended combination against the top configuration (highest mean over seeds),
    seed by seed: what following the recommendation costs against the best cell run."""
    lv = study_factors(runs, levels)
    if practice is None:
        practice = best_practice(runs, metric=metric, levels=lv, target=target)
    rec, fallback = _combination(practice, lv)
    top = top_configurations(runs, metric=metric, k=1, levels=lv)
    combo = {f: str(top.iloc[0][f]) for f in lv} if len(top) else dict(rec)
    note = f"best by mean for unresolved {', '.join(fallback)}" if fallback else ""
    return _versus(_complete(runs, metric), "top configuration", combo, rec, metric, target,
                   note)


def best_practice_summary(practice: pd.DataFrame, versus: pd.DataFrame, *,
                          metric: str = "test_acc") -> str:
    """The best-practice tables in two sentences, for the top of a report or a README."""
    parts = [f"{r.factor} = {r.recommended}" if r.recommended else f"{r.factor}: {r.decision}"
             for r in practice.itertuples()]
    text = "Recommended: " + ("; ".join(parts) if parts else "nothing yet (no complete runs)")
    base, rec = versus.iloc[0], versus.iloc[1]
    if str(rec["test"]).startswith("same as"):
        return text + f". The recommended combination is the {base['configuration']}."
    if base["runs"] == 0:  # a fractional design need not run the baseline
        return text + (f". The {base['configuration']} was not run in this study"
                       + (" (nor the recommended combination)" if rec["runs"] == 0 else "")
                       + ": the two are not compared.")
    if rec["runs"] == 0:
        return text + (f". The recommended combination was not run in this study "
                       f"({base['configuration']} mean {metric} {base['mean']:.4g}).")
    if math.isfinite(rec["p"]):
        sig = (f"95% CI [{rec['diff_ci_low']:+.4g}, {rec['diff_ci_high']:+.4g}], "
               f"p = {rec['p']:.3g}")
    else:
        sig = str(rec["test"])
    return text + (f". Recommended combination: mean {metric} {rec['mean']:.4g} against the "
                   f"{base['configuration']}'s {base['mean']:.4g}; difference "
                   f"{rec['diff']:+.4g} over {int(rec['n_seeds'])} seeds ({sig}).")
