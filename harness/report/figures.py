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
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

__all__ = ["PNG_DPI", "acc_scale", "interaction_heatmap", "learning_curves", "pdf_bytes",
           "png_bytes"]

_MAX_LABEL = 40


def _text(label: object) -> str:
    """A level name as figure text: '$' would start mathtext (and a malformed name would raise
    at draw time), and very long names would squeeze the axes."""
    s = str(label).replace("\n", " ").replace("$", r"\$")
    return s if len(s) <= _MAX_LABEL else s[:_MAX_LABEL - 1] + "…"


#: Resolution of the PNG figures (journals ask for at least 200-300 dpi for line art).
PNG_DPI = 200


def acc_scale(metric: str) -> tuple[float, str]:
    """(factor, unit) to draw ``metric``: accuracies in percentage points, others as they are."""
    return (100.0, " (%)") if "acc" in metric else (1.0, "")


def _save(fig: Figure, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # Names in scripts the default font lacks draw as boxes; that is not worth a warning.
        warnings.filterwarnings("ignore", message=".*[Gg]lyph.*missing.*")
        fig.savefig(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_bytes(fig: Figure, *, dpi: int = PNG_DPI) -> bytes:
    """The figure as PNG at ``dpi``, with no software/time metadata (reproducible bytes)."""
    return _save(fig, "png", dpi=dpi, metadata={"Software": None})


def pdf_bytes(fig: Figure) -> bytes:
    """The figure as vector PDF, with no creation date (reproducible bytes)."""
    return _save(fig, "pdf", metadata={"Creator": None, "Producer": None,
                                       "CreationDate": None})


def _grid(n: int, ncols: int = 3) -> tuple[int, int]:
    cols = min(n, ncols)
    return math.ceil(n / cols), cols


def _best_epochs(curves: pd.DataFrame) -> pd.Series:
    """Per run, the curve index of its best validation value (the weights test_acc uses)."""
    idx = curves.groupby("run_id")["value"].idxmax()
    return curves.loc[idx.to_numpy(), ["run_id", "epoch"]].set_index("run_id")["epoch"]


def learning_curves(curves: pd.DataFrame, runs: pd.DataFrame, *, panel: str | None,
                    factor: str | None, levels: Mapping[str, Sequence[str]] | None = None,
                    metric: str = "val_acc") -> Figure | None:
    """Small multiples: one panel per level of ``panel`` (binarization), one mean curve per
    level of ``factor`` (the optimizer) with a ±1 std band over runs, each level's mean switch
    epoch (metric ``switch_epoch``) dashed in its colour, and a triangle on each curve at the
    median epoch whose weights the run kept (its best validation epoch). Accuracies in points.
    """
    curves = curves[np.isfinite(curves["value"].astype(float))]
    if curves.empty:
        return None
    levels = levels or {}

    def names(col: str | None, frame: pd.DataFrame) -> list[str | None]:
        if col is None or col not in frame:
            return [None]
        return list(levels.get(col) or dict.fromkeys(frame[col]))

    panels = names(panel, curves)
    groups = names(factor, curves)
    best = _best_epochs(curves)
    rows, cols = _grid(len(panels), 4)
    fig = Figure(figsize=(3.6 * cols + 1.6, 3.0 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    drawn = 0
    for ax, pname in zip(axes, panels):
        in_panel = curves if pname is None else curves[curves[panel] == pname]
        runs_panel = runs if pname is None else runs[runs[panel] == pname]
        for i, gname in enumerate(groups):
            sub = in_panel if gname is None else in_panel[in_panel[factor] == gname]
            sub_runs = runs_panel if gname is None else runs_panel[runs_panel[factor] == gname]
            if sub.empty:
                continue
            color = f"C{i % 10}"
            stats = sub.groupby("epoch")["value"].agg(["mean", "std"])
            # Curve index i is measured after i + 1 epochs of training.
            epochs = stats.index.to_numpy(float) + 1
            mean = 100 * stats["mean"].to_numpy(float)
            std = 100 * np.nan_to_num(stats["std"].to_numpy(float))
            ax.plot(epochs, mean, color=color, label=_text(gname) if gname else "all runs")
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15,
                            linewidth=0)
            kept = best.reindex(sub["run_id"].unique()).dropna()
            if len(kept):
                e = float(np.median(kept.to_numpy(float))) + 1
                ax.plot([e], [np.interp(e, epochs, mean)], marker="v", color=color,
                        markersize=7, markeredgecolor="black", linestyle="none")
            if "switch_epoch" in sub_runs:
                sw = sub_runs["switch_epoch"].astype(float)
                sw = sw[np.isfinite(sw)]
                if len(sw):
                    # switch_epoch k (0-based) switches before epoch k + 1 is trained, i.e.
                    # between the points measured after k and after k + 1 epochs.
                    ax.axvline(float(sw.mean()) + 0.5, color=color, linestyle="--",
                               linewidth=1.2)
            drawn += 1
        ax.set_title(f"{_text(panel)} = {_text(pname)}" if pname else "all runs",
                     fontsize="medium")
        ax.set_xlabel("epochs trained")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if not drawn:
        return None
    for r in range(rows):
        axes[r * cols].set_ylabel(f"{metric} (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles += [Line2D([], [], color="0.3", linestyle="--"),
                Line2D([], [], color="0.3", marker="v", linestyle="none",
                       markeredgecolor="black")]
    labels += ["optimizer switch (mean epoch)", "best-validation epoch (median)"]
    fig.legend(handles, labels, loc="outside right upper", fontsize="small",
               title=_text(factor) if factor else None)
    fig.suptitle(f"Learning curves: mean {metric} ± 1 SD over runs")
    return fig


def interaction_heatmap(grid: pd.DataFrame, *, metric: str = "test_acc",
                        marks: pd.DataFrame | None = None) -> Figure | None:
    """Heatmap of the mean ``metric`` (points) over two factors' levels (rows: first factor);
    ``marks`` (same shape, True/False) outlines the cells whose interaction is resolved."""
    scale, unit = acc_scale(metric)
    values = scale * grid.to_numpy(float)
    if values.size == 0 or not np.isfinite(values).any():
        return None
    fig = Figure(figsize=(2.4 + 1.3 * values.shape[1], 1.6 + 0.6 * values.shape[0]),
                 layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2
    marked = (marks.reindex(index=grid.index, columns=grid.columns).fillna(False)
              .to_numpy(bool) if marks is not None else np.zeros(values.shape, bool))
    for (r, c), v in np.ndenumerate(values):
        if math.isfinite(v):
            text = (f"{v:.1f}" if scale == 100 else f"{v:.3g}") + ("*" if marked[r, c] else "")
            ax.text(c, r, text, ha="center", va="center",
                    color="black" if v > middle else "white", fontsize="small",
                    fontweight="bold" if marked[r, c] else "normal")
        if marked[r, c]:
            ax.add_patch(Rectangle((c - 0.48, r - 0.48), 0.96, 0.96, fill=False,
                                   edgecolor="red", linewidth=2))
    ax.set_xticks(range(values.shape[1]), [_text(v) for v in grid.columns], rotation=30,
                  ha="right")
    ax.set_yticks(range(values.shape[0]), [_text(v) for v in grid.index])
    ax.set_xlabel(_text(grid.columns.name or ""))
    ax.set_ylabel(_text(grid.index.name or ""))
    fig.colorbar(image, ax=ax, label=f"mean {metric}{unit}")
    title = f"{_text(grid.index.name)} x {_text(grid.columns.name)}"
    if marks is not None:
        title += "\n(red box, *: interaction resolved)" if marked.any() else \
            "\n(no interaction resolved)"
    ax.set_title(title, fontsize="medium")
    return fig
