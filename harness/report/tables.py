"""The report's descriptive tables (cell means, top configurations, cost) and the helpers every
table shares: each table is a function from a runs frame (:func:`harness.results.runs_frame`) to a
pandas DataFrame, so a notebook gets exactly the numbers the report shows.

Every table uses the complete runs only, and a run whose compared metric is not finite is left out
of that comparison. Levels come from ``runs.attrs["levels"]`` (spec order, reference first) unless
``levels`` is passed. The comparing tables live in :mod:`harness.report.effects`,
:mod:`harness.report.interaction` and :mod:`harness.report.practice`; their statistics in
:mod:`harness.report.contrasts` and :mod:`harness.report.stats`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import UserError

__all__ = [
    "COST_METRICS",
    "EXTRA_METRICS",
    "ReportError",
    "combination_label",
    "cost",
    "interaction_grid",
    "interactions",
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


def _arch(runs: pd.DataFrame) -> pd.Series:
    if "model.arch" in runs:
        return runs["model.arch"].astype(str)
    return runs["config"].map(
        lambda c: str(((c or {}).get("model") or {}).get("arch", "?")) if isinstance(c, dict)
        else "?") if "config" in runs else pd.Series("?", index=runs.index)


def _binarization(runs: pd.DataFrame) -> pd.Series:
    if "binarization" in runs:
        return runs["binarization"].astype(str)

    # Not varied: the one level the study's base configuration sets, as the database stores it.
    label = (runs.attrs.get("constant_levels") or {}).get("binarization", "?")
    return pd.Series(label, index=runs.index, dtype=object)


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


