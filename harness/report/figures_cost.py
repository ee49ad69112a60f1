"""The Pareto figure: accuracy against energy and against weight memory, fronts labelled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.report.figures import _text, acc_scale
from harness.report.stats import pareto_front

__all__ = ["COST_AXES", "pareto_figure", "short_label"]

#: Cost axes of the Pareto figure, in order, with their axis labels.
COST_AXES = (("energy_uj_per_sample", "energy per inference sample (µJ)"),
             ("weight_memory_bits", "weight memory (bit)"))


def short_label(combo: Mapping[str, str], factors: Mapping[str, Sequence[str]]) -> str:
    """A combination named by the levels where it differs from the reference ('baseline' when
    it does not)."""
    changed = [str(v) for f, v in combo.items() if factors.get(f) and v != factors[f][0]]
    return ", ".join(changed) if changed else "baseline"


def pareto_figure(runs: pd.DataFrame, factors: Mapping[str, Sequence[str]], *,
                  metric: str = "test_acc", max_labels: int = 8) -> Figure | None:
    """``metric`` against each cost of :data:`COST_AXES` that the runs recorded, one point per
    configuration (mean over seeds); the Pareto front (least cost, best accuracy) joined and its
    points labelled by how they differ from the reference (at most ``max_labels`` per panel,
    the most accurate first)."""
    costs = [(c, label) for c, label in COST_AXES if c in runs]
    df = runs[runs["status"] == "complete"] if "status" in runs else runs
    if not costs or metric not in df or df.empty:
        return None
    keys = [f for f in factors if f in df]
    cols = [metric, *(c for c, _ in costs)]
    points = (df.groupby(keys, dropna=False, sort=False)[cols].mean().reset_index()
              if keys else df[cols].mean().to_frame().T)
    scale, unit = acc_scale(metric)
    fig = Figure(figsize=(6.0 * len(costs), 4.8), layout="constrained")
    axes = fig.subplots(1, len(costs), squeeze=False).ravel()
    drawn = 0
    for ax, (c, xlabel) in zip(axes, costs):
        x = points[c].to_numpy(float)
        y = scale * points[metric].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            ax.set_visible(False)
            continue
        front = pareto_front(x, y)
        ax.scatter(x[ok & ~front], y[ok & ~front], color="0.65", s=16, label="configuration")
        order = np.argsort(x[front])
        ax.plot(x[front][order], y[front][order], color="C3", marker="o",
                drawstyle="steps-post", label="Pareto front")
        on_front = np.flatnonzero(front)
        labelled = on_front[np.argsort(-y[on_front])][:max_labels]
        for n, i in enumerate(sorted(labelled, key=lambda j: x[j])):
            text = short_label({k: points.iloc[i][k] for k in keys}, factors) if keys else ""
            ax.annotate(_text(text), (x[i], y[i]), xytext=(6, -12 if n % 2 else 6),
                        textcoords="offset points", fontsize="x-small", color="C3")
        if (x[ok] > 0).all() and x[ok].max() > 10 * x[ok].min():
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"mean {metric}{unit}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")
        drawn += 1
    if not drawn:
        return None
    fig.suptitle(f"{metric} against cost: one point per configuration (mean over seeds); "
                 "front points named by what differs from the reference")
    return fig
