"""The report's figures, drawn with matplotlib's object API on the Agg canvas.

Figures are built as :class:`matplotlib.figure.Figure` objects without pyplot, so no global state
or GUI backend is involved and a long report run does not accumulate open figures. Every function
returns a Figure, or None when the study holds nothing to draw.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.report.stats import pareto_front

__all__ = [
    "learning_curves",
    "main_effects_figure",
    "interaction_heatmap",
    "pareto_figure",
    "png_bytes",
]

_MAX_LABEL = 40


def _text(label: object) -> str:
    """A level name as figure text: '$' would start mathtext (and a malformed name would raise
    at draw time), and very long names would squeeze the axes."""
    s = str(label).replace("\n", " ").replace("$", r"\$")
    return s if len(s) <= _MAX_LABEL else s[:_MAX_LABEL - 1] + "…"


def png_bytes(fig: Figure, *, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # Names in scripts the default font lacks draw as boxes; that is not worth a warning.
        warnings.filterwarnings("ignore", message=".*[Gg]lyph.*missing.*")
        fig.savefig(buf, format="png", dpi=dpi,
                    metadata={"Software": None})
    return buf.getvalue()


def _grid(n: int, ncols: int = 3) -> tuple[int, int]:
    cols = min(n, ncols)
    return math.ceil(n / cols), cols


def main_effects_figure(effects: pd.DataFrame, *, metric: str = "test_acc") -> Figure | None:
    """One panel per factor: each level's mean with its 95% bootstrap CI; the reference level
    hollow."""
    factors = list(dict.fromkeys(effects["factor"]))
    if not factors or not np.isfinite(effects["mean"].astype(float)).any():
        return None
    rows, cols = _grid(len(factors))
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, factor in zip(axes, factors):
        sub = effects[effects["factor"] == factor].reset_index(drop=True)
        x = np.arange(len(sub))
        mean = sub["mean"].to_numpy(float)
        lo = np.clip(mean - sub["ci_low"].to_numpy(float), 0, None)
        hi = np.clip(sub["ci_high"].to_numpy(float) - mean, 0, None)
        ax.errorbar(x, mean, yerr=np.vstack([np.nan_to_num(lo), np.nan_to_num(hi)]), fmt="none",
                    ecolor="0.3", capsize=4)
        ref = sub["reference"].to_numpy(bool)
        ax.scatter(x[~ref], mean[~ref], color="C0", zorder=3)
        ax.scatter(x[ref], mean[ref], facecolor="white", edgecolor="C0", zorder=3,
                   label="reference")
        ax.set_xticks(x, [_text(v) for v in sub["level"]], rotation=30, ha="right")
        ax.set_title(_text(factor))
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(factors):]:
        ax.set_visible(False)
    fig.suptitle(f"Main effects on {metric} (mean, 95% bootstrap CI; hollow: reference)")
    return fig


def learning_curves(curves: pd.DataFrame, runs: pd.DataFrame, *, factor: str | None,
                    levels: Sequence[str] | None = None, metric: str = "val_acc"
                    ) -> Figure | None:
    """Mean curve per level of ``factor`` (the optimizer) with a ±1 std band over runs; each
    level's mean switch epoch (metric ``switch_epoch``) as a dashed line of its colour."""
    curves = curves[np.isfinite(curves["value"].astype(float))]
    if curves.empty:
        return None
    if factor is None or factor not in curves:
        groups: list[tuple[str, pd.DataFrame, pd.DataFrame]] = [("all runs", curves, runs)]
    else:
        names = list(levels) if levels is not None else list(dict.fromkeys(curves[factor]))
        groups = [(n, curves[curves[factor] == n], runs[runs[factor] == n]) for n in names]
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    drawn = 0
    for i, (name, sub, sub_runs) in enumerate(groups):
        if sub.empty:
            continue
        color = f"C{i % 10}"
        stats = sub.groupby("epoch")["value"].agg(["mean", "std"])
        # Curve index i is measured after i + 1 epochs of training.
        epochs = stats.index.to_numpy(float) + 1
        mean = stats["mean"].to_numpy(float)
        std = np.nan_to_num(stats["std"].to_numpy(float))
        ax.plot(epochs, mean, color=color, label=_text(name))
        ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.18, linewidth=0)
        if "switch_epoch" in sub_runs:
            sw = sub_runs["switch_epoch"].astype(float)
            sw = sw[np.isfinite(sw)]
            if len(sw):
                # switch_epoch k (0-based) switches before epoch k + 1 is trained, i.e. between
                # the points measured after k and after k + 1 epochs.
                ax.axvline(float(sw.mean()) + 0.5, color=color, linestyle="--", linewidth=1)
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("epochs trained")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    title = f"{metric} per {_text(factor)} level" if factor else metric
    ax.set_title(f"{title} (mean ± std over runs; dashed: switch epoch)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def interaction_heatmap(grid: pd.DataFrame, *, metric: str = "test_acc") -> Figure | None:
    """Heatmap of the mean ``metric`` over two factors' levels (rows: first factor)."""
    values = grid.to_numpy(float)
    if values.size == 0 or not np.isfinite(values).any():
        return None
    fig = Figure(figsize=(1.6 + 1.3 * values.shape[1], 1.4 + 0.6 * values.shape[0]),
                 layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2
    for (r, c), v in np.ndenumerate(values):
        if math.isfinite(v):
            ax.text(c, r, f"{v:.3f}", ha="center", va="center",
                    color="black" if v > middle else "white", fontsize="small")
    ax.set_xticks(range(values.shape[1]), [_text(v) for v in grid.columns], rotation=30,
                  ha="right")
    ax.set_yticks(range(values.shape[0]), [_text(v) for v in grid.index])
    ax.set_xlabel(_text(grid.columns.name or ""))
    ax.set_ylabel(_text(grid.index.name or ""))
    fig.colorbar(image, ax=ax, label=f"mean {metric}")
    ax.set_title(f"{_text(grid.index.name)} x {_text(grid.columns.name)}")
    return fig


def pareto_figure(runs: pd.DataFrame, factors: Mapping[str, Sequence[str]], *,
                  metric: str = "test_acc") -> Figure | None:
    """``metric`` against weight memory and against energy per sample, one point per
    configuration (mean over seeds), the Pareto front (least cost, best accuracy) joined."""
    costs = [c for c in ("weight_memory_bits", "energy_uj_per_sample") if c in runs]
    df = runs[runs["status"] == "complete"] if "status" in runs else runs
    if not costs or metric not in df or df.empty:
        return None
    keys = [f for f in factors if f in df]
    points = (df.groupby(keys, dropna=False, sort=False)[[metric, *costs]].mean()
              if keys else df[[metric, *costs]].mean().to_frame().T)
    fig = Figure(figsize=(5.2 * len(costs), 4.2), layout="constrained")
    axes = fig.subplots(1, len(costs), squeeze=False).ravel()
    drawn = 0
    for ax, c in zip(axes, costs):
        x = points[c].to_numpy(float)
        y = points[metric].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            ax.set_visible(False)
            continue
        front = pareto_front(x, y)
        ax.scatter(x[ok & ~front], y[ok & ~front], color="0.6", s=18, label="configuration")
        order = np.argsort(x[front])
        ax.plot(x[front][order], y[front][order], color="C3", marker="o", drawstyle="steps-post",
                label="Pareto front")
        positive = x[ok] > 0
        if positive.all() and x[ok].max() > 10 * x[ok].min():
            ax.set_xscale("log")
        else:
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        ax.set_xlabel(c)
        ax.set_ylabel(f"mean {metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        drawn += 1
    if not drawn:
        return None
    fig.suptitle(f"{metric} against cost (one point per configuration)")
    return fig
