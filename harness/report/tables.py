"""The report's tables, each a function from a runs frame (:func:`harness.results.runs_frame`) to a
pandas DataFrame, so a notebook gets exactly the numbers the report shows.

Every table uses the complete runs only, and a run whose compared metric is not finite is left out
of that comparison. Levels come from ``runs.attrs["levels"]`` (spec order, reference first) unless
``levels`` is passed. Statistics are described in :mod:`harness.report.stats`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import UserError
from harness.report.stats import ALPHA, bootstrap_ci, holm, paired_test
from harness.results import level_label

__all__ = [
    "COST_METRICS",
    "EXTRA_METRICS",
    "ReportError",
    "ablation",
    "best_practice",
    "best_practice_summary",
    "bn_vs_shift_bn",
    "combination_label",
    "cost",
    "interaction_grid",
    "interactions",
    "main_effects",
    "recommended_vs_baseline",
    "study_factors",
    "top_configurations",
]

#: Means shown beside the compared metric in the main-effects table.
EXTRA_METRICS = ("epochs_to_95pct", "spike_rate", "synops_per_sample")
#: Per-run costs, cheapest first in this order of importance (best practice breaks ties by them).
COST_METRICS = ("weight_memory_bits", "energy_uj_per_sample", "synops_per_sample",
                "train_time_s")


class ReportError(UserError):
    """A report cannot be computed as asked (unknown metric, no such factor)."""


def study_factors(runs: pd.DataFrame, levels: Mapping[str, Sequence[str]] | None = None
                  ) -> dict[str, list[str]]:
    """``{factor: [levels]}``, reference first: ``levels`` if given, else the frame's attrs, else
    the factor columns in order of appearance."""
    if levels is not None:
        return {f: list(v) for f, v in levels.items()}
    attrs_levels = runs.attrs.get("levels")
    factors = runs.attrs.get("factors")
    if attrs_levels is not None:
        names = factors if factors is not None else list(attrs_levels)
        return {f: list(attrs_levels[f]) for f in names if f in attrs_levels}
    raise ReportError("the runs frame carries no factor levels (attrs['levels']); pass levels="
                      "{factor: [reference, ...]} or use harness.results.runs_frame")


def _complete(runs: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    df = runs[runs["status"] == "complete"] if "status" in runs else runs
    if metric is not None:
        if metric not in runs.columns:
            known = ", ".join(runs.attrs.get("metrics", [])) or "none"
            raise ReportError(f"metric {metric!r} is not recorded by any run (metrics: {known})")
        df = df[np.isfinite(df[metric].astype(float))]
    return df


def _check_factors(runs: pd.DataFrame, levels: Mapping[str, Sequence[str]]) -> None:
    missing = [f for f in levels if f not in runs.columns]
    if missing:
        raise ReportError(f"factor {missing[0]!r} is not a column of the runs frame")


def combination_label(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _mean(x: pd.Series) -> float:
    x = x.astype(float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else math.nan


def _std(x: pd.Series) -> float:
    x = x.astype(float)
    x = x[np.isfinite(x)]
    return float(x.std(ddof=1)) if len(x) > 1 else math.nan


def _paired(df: pd.DataFrame, factor: str, a: str, b: str, metric: str,
            factors: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Metric values of level ``a`` and ``b`` of ``factor`` on runs that share the seed and every
    other factor's level: two aligned arrays."""
    keys = [f for f in factors if f != factor] + ["seed"]
    sub = df[df[factor].isin([a, b])]
    if sub.empty:
        return np.array([]), np.array([])
    table = (sub.groupby(keys + [factor], dropna=False, sort=False)[metric].mean()
             .unstack(factor))
    if a not in table or b not in table:
        return np.array([]), np.array([])
    both = table[[a, b]].dropna()
    return both[a].to_numpy(float), both[b].to_numpy(float)


def _level_stats(values: pd.Series) -> dict[str, Any]:
    lo, hi = bootstrap_ci(values.to_numpy(float))
    return {"runs": int(len(values)), "mean": _mean(values), "std": _std(values),
            "ci_low": lo, "ci_high": hi}


def _diff_stats(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    t = paired_test(a, b)
    lo, hi = bootstrap_ci(b - a) if t.n else (math.nan, math.nan)
    return {"diff": t.mean_diff, "diff_ci_low": lo, "diff_ci_high": hi, "n_pairs": t.n,
            "test": t.test, "statistic": t.statistic, "p": t.p}


def _no_diff(test: str) -> dict[str, Any]:
    """The difference columns of the row every other row is compared with."""
    return {"diff": 0.0, "diff_ci_low": math.nan, "diff_ci_high": math.nan, "n_pairs": 0,
            "test": test, "statistic": math.nan, "p": math.nan}


def _seed_diff(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> dict[str, Any]:
    """:func:`_diff_stats` of ``b`` against ``a``, paired by seed (means over each seed's runs)."""
    both = pd.concat([a.groupby("seed")[metric].mean().rename("a"),
                      b.groupby("seed")[metric].mean().rename("b")], axis=1).dropna()
    return _diff_stats(both["a"].to_numpy(float), both["b"].to_numpy(float))


def main_effects(runs: pd.DataFrame, *, metric: str = "test_acc",
                 levels: Mapping[str, Sequence[str]] | None = None,
                 extra: Sequence[str] = EXTRA_METRICS) -> pd.DataFrame:
    """Per factor and level: runs, mean, std, 95% bootstrap CI of the mean, the paired difference
    from the reference level (mean, bootstrap CI, test, p, Holm-adjusted p over the whole table,
    significant at 0.05) and the mean of each ``extra`` metric."""
    lv = study_factors(runs, levels)
    _check_factors(runs, lv)
    df = _complete(runs, metric)
    factors = list(lv)
    rows = []
    for factor, labels in lv.items():
        ref = labels[0] if labels else None
        for label in labels:
            sel = df[df[factor] == label]
            row: dict[str, Any] = {"factor": factor, "level": label, "reference": label == ref}
            row.update(_level_stats(sel[metric]))
            if label == ref:
                row.update(_no_diff("reference"))
            else:
                a, b = _paired(df, factor, ref, label, metric, factors)
                row.update(_diff_stats(a, b))
                if row["n_pairs"] == 0:
                    ref_mean = _mean(df.loc[df[factor] == ref, metric])
                    row.update({"diff": row["mean"] - ref_mean, "test": "none (no pairs)"})
            for m in extra:
                row[m] = _mean(sel[m]) if m in df else math.nan
            rows.append(row)
    out = pd.DataFrame(rows, columns=["factor", "level", "reference", "runs", "mean", "std",
                                      "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high",
                                      "n_pairs", "test", "statistic", "p", *extra])
    out.insert(out.columns.get_loc("p") + 1, "p_holm", holm(out["p"].to_numpy(float)))
    out.insert(out.columns.get_loc("p_holm") + 1, "significant",
               out["p_holm"].to_numpy(float) < ALPHA)
    return out


def _combo_mask(df: pd.DataFrame, combo: Mapping[str, str]) -> pd.Series:
    """Rows at every ``factor: level`` of ``combo``."""
    mask = pd.Series(True, index=df.index)
    for factor, label in combo.items():
        mask &= df[factor] == label
    return mask


def _baseline_mask(df: pd.DataFrame, lv: Mapping[str, Sequence[str]],
                   except_factor: str | None = None) -> pd.Series:
    return _combo_mask(df, {factor: labels[0] for factor, labels in lv.items()
                            if factor != except_factor and labels})


def ablation(runs: pd.DataFrame, *, metric: str = "test_acc",
             levels: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """The one-at-a-time ablation table: the baseline (every factor at its reference level), then
    each single change from it with its paired difference (by seed), bootstrap CI, test and
    Holm-adjusted p. Works on a one-at-a-time study and on a factorial (which contains it)."""
    lv = study_factors(runs, levels)
    _check_factors(runs, lv)
    df = _complete(runs, metric)
    base = df[_baseline_mask(df, lv)]
    row0: dict[str, Any] = {"change": "baseline", "factor": "", "level": ""}
    row0.update(_level_stats(base[metric]))
    row0.update(_no_diff("baseline"))
    rows = [row0]
    for factor, labels in lv.items():
        for label in labels[1:]:
            sel = df[_baseline_mask(df, lv, factor) & (df[factor] == label)]
            row: dict[str, Any] = {"change": f"{factor} = {label}", "factor": factor,
                                   "level": label}
            row.update(_level_stats(sel[metric]))
            row.update(_seed_diff(base, sel, metric))
            rows.append(row)
    out = pd.DataFrame(rows, columns=["change", "factor", "level", "runs", "mean", "std",
                                      "ci_low", "ci_high", "diff", "diff_ci_low",
                                      "diff_ci_high", "n_pairs", "test", "statistic", "p"])
    out["p_holm"] = holm(out["p"].to_numpy(float))
    out["significant"] = out["p_holm"].to_numpy(float) < ALPHA
    return out


def interactions(runs: pd.DataFrame, *, metric: str = "test_acc",
                 levels: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """For every pair of factors, the mean (and std, runs) over the grid of their levels."""
    lv = study_factors(runs, levels)
    _check_factors(runs, lv)
    df = _complete(runs, metric)
    rows = []
    for fa, fb in itertools.combinations(lv, 2):
        for la in lv[fa]:
            for lb in lv[fb]:
                sel = df.loc[(df[fa] == la) & (df[fb] == lb), metric]
                rows.append({"factor_a": fa, "level_a": la, "factor_b": fb, "level_b": lb,
                             "runs": int(len(sel)), "mean": _mean(sel), "std": _std(sel)})
    return pd.DataFrame(rows, columns=["factor_a", "level_a", "factor_b", "level_b", "runs",
                                       "mean", "std"])


def interaction_grid(runs: pd.DataFrame, factor_a: str, factor_b: str, *,
                     metric: str = "test_acc",
                     levels: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Mean ``metric`` with ``factor_a``'s levels as rows and ``factor_b``'s as columns."""
    lv = study_factors(runs, levels)
    for f in (factor_a, factor_b):
        if f not in lv:
            raise ReportError(f"factor {f!r} is not a factor of this study "
                              f"(factors: {', '.join(lv)})")
    df = _complete(runs, metric)
    grid = pd.DataFrame(index=pd.Index(lv[factor_a], name=factor_a),
                        columns=pd.Index(lv[factor_b], name=factor_b), dtype=float)
    for la in lv[factor_a]:
        for lb in lv[factor_b]:
            grid.loc[la, lb] = _mean(df.loc[(df[factor_a] == la) & (df[factor_b] == lb), metric])
    return grid


def top_configurations(runs: pd.DataFrame, *, metric: str = "test_acc", k: int = 10,
                       levels: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """The ``k`` combinations of levels with the highest mean over seeds (mean ± std, runs)."""
    lv = study_factors(runs, levels)
    _check_factors(runs, lv)
    df = _complete(runs, metric)
    factors = list(lv)
    if df.empty or not factors:
        return pd.DataFrame(columns=["rank", *factors, "runs", "mean", "std", "min", "max",
                                     "exported and verified"])
    grouped = df.groupby(factors, dropna=False, sort=False)[metric]
    table = pd.DataFrame({"runs": grouped.size(), "mean": grouped.mean(),
                          "std": grouped.std(ddof=1), "min": grouped.min(),
                          "max": grouped.max()}).reset_index()
    # Equal means: fewer-spread first, then spec order, so the ranking is deterministic.
    order = {f: {lab: i for i, lab in enumerate(lv[f])} for f in factors}
    table["_order"] = [tuple(order[f].get(r[f], len(order[f])) for f in factors)
                       for _, r in table.iterrows()]
    table["_std"] = table["std"].fillna(math.inf)
    table = table.sort_values(["mean", "_std", "_order"], ascending=[False, True, True],
                              kind="stable").head(k).drop(columns=["_order", "_std"])
    table.insert(0, "rank", range(1, len(table) + 1))
    table["exported and verified"] = _exported(df, factors, table)
    return table.reset_index(drop=True)


#: Formats ``bsnn-bench export`` verifies, and the run metric it records for each.
EXPORT_FORMATS = {"nir": "export_nir_verified", "packed": "export_packed_verified"}


def _exported(df: pd.DataFrame, factors: list[str], table: pd.DataFrame) -> list[str]:
    """Per row of ``table``: the formats that some run of the combination was exported to and
    verified in (``bsnn-bench export`` records ``export_<format>_verified``), else ``no``."""
    out = []
    for _, row in table.iterrows():
        runs = df[_combo_mask(df, {f: row[f] for f in factors})]
        done = [fmt for fmt, col in EXPORT_FORMATS.items()
                if col in runs and (runs[col] == 1.0).any()]
        out.append(", ".join(done) if done else "no")
    return out


def _group_levels(df: pd.DataFrame, lv: Mapping[str, Sequence[str]],
                  factors: Sequence[str]) -> list[tuple[str, str, pd.DataFrame]]:
    groups = [("all", "", df)]
    for f in factors:
        if f in lv:
            groups += [(f, label, df[df[f] == label]) for label in lv[f]]
    return groups


def bn_vs_shift_bn(runs: pd.DataFrame, *, metric: str = "test_acc",
                   shifted: str = "test_acc_shift_bn",
                   levels: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Accuracy lost by evaluating with power-of-two (shift) BN: paired ``metric`` vs ``shifted``
    over every complete run with BN (both recorded, normalization not ``none``), overall and per
    binarization / shift_bn level. ``loss = metric - shifted``, with bootstrap CI and a paired
    test; Holm over the rows."""
    lv = study_factors(runs, levels)
    columns = ["group", "level", "runs", metric, shifted, "loss", "loss_ci_low", "loss_ci_high",
               "test", "statistic", "p", "p_holm"]
    if metric not in runs or shifted not in runs:
        return pd.DataFrame(columns=columns)
    df = _complete(runs, metric)
    df = df[np.isfinite(df[shifted].astype(float))]
    if "normalization" in df:
        df = df[df["normalization"] != "none"]
    rows = []
    for group, label, sub in _group_levels(df, lv, ("binarization", "shift_bn")):
        d = _diff_stats(sub[shifted].to_numpy(float), sub[metric].to_numpy(float))
        rows.append({"group": group, "level": label, "runs": d["n_pairs"],
                     metric: _mean(sub[metric]), shifted: _mean(sub[shifted]),
                     "loss": d["diff"], "loss_ci_low": d["diff_ci_low"],
                     "loss_ci_high": d["diff_ci_high"], "test": d["test"],
                     "statistic": d["statistic"], "p": d["p"]})
    out = pd.DataFrame(rows, columns=columns[:-1])
    out["p_holm"] = holm(out["p"].to_numpy(float))
    return out


def _arch(runs: pd.DataFrame) -> pd.Series:
    if "model.arch" in runs:
        return runs["model.arch"].astype(str)
    return runs["config"].map(
        lambda c: str(((c or {}).get("model") or {}).get("arch", "?")) if isinstance(c, dict)
        else "?") if "config" in runs else pd.Series("?", index=runs.index)


def _binarization(runs: pd.DataFrame) -> pd.Series:
    if "binarization" in runs:
        return runs["binarization"].astype(str)

    def from_config(c: Any) -> str:
        level = ((c or {}).get("factors") or {}).get("binarization") if isinstance(c, dict) \
            else None
        return level_label("binarization", level) if level is not None else "?"

    return runs["config"].map(from_config) if "config" in runs else pd.Series(
        "?", index=runs.index)


def cost(runs: pd.DataFrame, *, metric: str = "test_acc",
         levels: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Per binarization level and architecture: weight memory (bits, ratio vs fp32), parameters,
    synaptic operations, energy per sample, and the mean ``metric`` (means over complete runs)."""
    lv = study_factors(runs, levels)
    df = _complete(runs).copy()
    df["binarization"] = _binarization(df)
    df["arch"] = _arch(df)
    wanted = ["weight_memory_bits", "weight_memory_ratio", "params", "synops_per_sample",
              "macs_per_sample", "acs_per_sample", "energy_uj_per_sample", metric]
    present = [m for m in wanted if m in df]
    columns = ["binarization", "arch", "runs", *present]
    if df.empty:
        return pd.DataFrame(columns=columns)
    order = {lab: i for i, lab in enumerate(lv.get("binarization", []))}
    rows = []
    for (binz, arch), sub in df.groupby(["binarization", "arch"], sort=False):
        row: dict[str, Any] = {"binarization": binz, "arch": arch, "runs": int(len(sub))}
        row.update({m: _mean(sub[m]) for m in present})
        rows.append(row)
    out = pd.DataFrame(rows, columns=columns)
    out["_o"] = out["binarization"].map(lambda b: order.get(b, len(order)))
    return out.sort_values(["_o", "arch"], kind="stable").drop(columns="_o").reset_index(
        drop=True)


def _cost_key(df: pd.DataFrame, factor: str, label: str, rank: int) -> tuple[float, ...]:
    sub = df[df[factor] == label]
    key = []
    for m in COST_METRICS:
        v = _mean(sub[m]) if m in sub else math.nan
        # Three significant digits: run-to-run noise in a cost must not decide a tie.
        key.append(float(f"{v:.3g}") if math.isfinite(v) else math.inf)
    return (*key, float(rank))


def best_practice(runs: pd.DataFrame, *, metric: str = "test_acc",
                  levels: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Per factor the recommended level.

    The best level (highest mean) is compared with every other level of its factor (paired test;
    Holm over all factors). If it is significantly better than all of them it is recommended;
    otherwise the table says "no significant difference" and recommends the cheapest level among
    those not significantly worse than the best (least weight memory, then energy per sample,
    synaptic operations, training time; then spec order, reference first).
    """
    lv = study_factors(runs, levels)
    _check_factors(runs, lv)
    df = _complete(runs, metric)
    factors = list(lv)
    tests: list[tuple[str, str, Any]] = []
    best: dict[str, str | None] = {}
    for factor, labels in lv.items():
        means = {lab: _mean(df.loc[df[factor] == lab, metric]) for lab in labels}
        observed = [lab for lab in labels if math.isfinite(means[lab])]
        best[factor] = max(observed, key=lambda lab: means[lab]) if observed else None
        if best[factor] is None:
            continue
        for other in observed:
            if other != best[factor]:
                a, b = _paired(df, factor, other, best[factor], metric, factors)
                tests.append((factor, other, paired_test(a, b)))
    adjusted = holm([t.p for _, _, t in tests])
    worse: dict[str, dict[str, float]] = {f: {} for f in lv}
    untested: dict[str, set[str]] = {f: set() for f in lv}
    for (factor, other, t), p_adj in zip(tests, adjusted):
        worse[factor][other] = p_adj if t.mean_diff > 0 else math.nan
        if not math.isfinite(t.p):
            untested[factor].add(other)
    rows = []
    for factor, labels in lv.items():
        ref = labels[0] if labels else ""
        b = best[factor]
        row: dict[str, Any] = {"factor": factor, "reference": ref}
        if b is None:
            row.update({"recommended": "", "decision": "no complete runs", "best": "",
                        "tied_levels": "", "p_holm_max": math.nan})
        else:
            p_adj = worse[factor]
            tied = [b] + [o for o in p_adj if not (p_adj[o] < ALPHA)]
            if len(tied) == 1 and p_adj:
                rec, decision = b, "significantly best"
            elif not p_adj:
                rec, decision = b, "only level with runs"
            else:
                rank = {lab: i for i, lab in enumerate(labels)}
                rec = min(tied, key=lambda lab: _cost_key(df, factor, lab, rank[lab]))
                decision = "no significant difference"
                if untested[factor] & set(tied):
                    decision += "; some levels untested (fewer than 2 paired runs)"
            finite = [v for v in p_adj.values() if math.isfinite(v)]
            row.update({"recommended": rec, "decision": decision, "best": b,
                        "tied_levels": "; ".join(sorted(tied, key=labels.index)),
                        "p_holm_max": max(finite) if finite else math.nan})
        rec_mean = _mean(df.loc[df[factor] == row["recommended"], metric]) if b else math.nan
        ref_mean = _mean(df.loc[df[factor] == ref, metric])
        row.update({"recommended_mean": rec_mean, "reference_mean": ref_mean,
                    "diff_vs_reference": rec_mean - ref_mean})
        rows.append(row)
    return pd.DataFrame(rows, columns=["factor", "recommended", "decision", "reference", "best",
                                       "tied_levels", "p_holm_max", "recommended_mean",
                                       "reference_mean", "diff_vs_reference"])


def recommended_vs_baseline(runs: pd.DataFrame, practice: pd.DataFrame | None = None, *,
                            metric: str = "test_acc",
                            levels: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """The recommended combination (from :func:`best_practice`) against the baseline (every
    reference level): runs, mean, CI, and the paired difference by seed. A combination the study
    never ran (one-at-a-time designs) shows zero runs."""
    lv = study_factors(runs, levels)
    if practice is None:
        practice = best_practice(runs, metric=metric, levels=lv)
    df = _complete(runs, metric)
    base = {f: labels[0] for f, labels in lv.items() if labels}
    rec = dict(zip(practice["factor"], practice["recommended"]))
    rec = {f: rec.get(f) or base.get(f, "") for f in lv}
    rows = []
    sels = []
    for name, combo in (("baseline", base), ("recommended", rec)):
        sel = df[_combo_mask(df, combo)]
        sels.append(sel)
        row: dict[str, Any] = {"configuration": name, "levels": combination_label(combo)}
        row.update(_level_stats(sel[metric]))
        rows.append(row)
    diff = _seed_diff(*sels, metric)
    if rec == base:
        diff.update({"test": "same as baseline", "p": math.nan})
    rows[0].update(_no_diff("baseline"))
    rows[1].update(diff)
    return pd.DataFrame(rows, columns=["configuration", "levels", "runs", "mean", "std",
                                       "ci_low", "ci_high", "diff", "diff_ci_low",
                                       "diff_ci_high", "n_pairs", "test", "statistic", "p"])


def best_practice_summary(practice: pd.DataFrame, versus: pd.DataFrame, *,
                          metric: str = "test_acc") -> str:
    """The best-practice tables in two sentences, for the top of a report or a README."""
    parts = [f"{r.factor} = {r.recommended} ({r.decision})" for r in practice.itertuples()
             if r.recommended]
    text = "Recommended: " + ("; ".join(parts) if parts else "nothing yet (no complete runs)")
    base, rec = versus.iloc[0], versus.iloc[1]
    if rec["test"] == "same as baseline":
        return text + ". The recommended combination is the baseline."
    if rec["runs"] == 0:
        return text + (f". The recommended combination was not run in this study (baseline "
                       f"mean {metric} {base['mean']:.4g}).")
    sig = (f"p = {rec['p']:.3g}, {rec['test']}" if math.isfinite(rec["p"])
           else f"not tested: {str(rec['test']).removeprefix('none ').strip('()')}")
    return text + (f". Recommended combination: mean {metric} {rec['mean']:.4g} over "
                   f"{_count(rec['runs'], 'run')} against the baseline's {base['mean']:.4g}; "
                   f"paired difference {rec['diff']:+.4g} over {_count(rec['n_pairs'], 'seed')} "
                   f"({sig}).")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
