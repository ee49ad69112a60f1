"""The contrasts figure: every level-vs-reference contrast with its 95% CI on one shared axis.

A forest plot in accuracy points: one row per non-reference level, grouped by factor, the
difference from its factor's reference level as a dot with its confidence interval, zero as a
solid line, the resolution threshold as a grey band around zero (a contrast inside it cannot be
told from noise at this number of seeds), and the placebo contrast (a comparison that by
construction has no effect) as its own row and dotted lines, so a reader sees at once how wide
"nothing" is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from harness.report.figures import _text

__all__ = ["contrasts_figure"]


def _interval(value: float | Sequence[float] | None) -> tuple[float, float, float] | None:
    """(centre, low, high) of a placebo given as (diff, low, high), (low, high) or a number."""
    if value is None:
        return None
    if isinstance(value, int | float):
        v = float(value)
        return (0.0, -abs(v), abs(v)) if math.isfinite(v) else None
    vals = [float(v) for v in value]
    if len(vals) == 2:
        vals = [(vals[0] + vals[1]) / 2, *vals]
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        return None
    return vals[0], vals[1], vals[2]


def contrasts_figure(effects: pd.DataFrame, *, metric: str = "test_acc",
                     threshold: float | None = None,
                     placebo: float | Sequence[float] | None = None,
                     resolved: str = "resolved") -> Figure | None:
    """Forest plot of ``effects`` (a main-effects frame: factor, level, reference, diff,
    diff_ci_low, diff_ci_high, and a boolean ``resolved`` or ``significant`` column).

    ``threshold``: the resolution threshold (a difference, as a fraction) drawn as a band
    ±threshold; ``placebo``: the placebo contrast as (diff, low, high) or (low, high).
    """
    rows = effects[~effects["reference"].astype(bool)] if "reference" in effects else effects
    rows = rows[np.isfinite(rows["diff"].astype(float))].reset_index(drop=True)
    if rows.empty:
        return None
    scale = 100.0 if "acc" in metric else 1.0
    unit = " (points)" if scale == 100 else ""
    flag = resolved if resolved in rows else ("significant" if "significant" in rows else None)
    placebo_ci = _interval(placebo)
    n = len(rows) + (1 if placebo_ci else 0)
    fig = Figure(figsize=(8.0, 1.3 + 0.32 * n + 0.12 * rows["factor"].nunique()),
                 layout="constrained")
    ax = fig.subplots()
    y, labels, gap, last = [], [], 0.0, None
    for i, r in rows.iterrows():
        if last is not None and r["factor"] != last:
            gap += 0.5
        last = r["factor"]
        y.append(-(i + gap))
        labels.append(f"{_text(r['factor'])}: {_text(r['level'])}")
    yv = np.array(y)
    diff = scale * rows["diff"].to_numpy(float)
    lo = scale * rows["diff_ci_low"].to_numpy(float)
    hi = scale * rows["diff_ci_high"].to_numpy(float)
    has_ci = np.isfinite(lo) & np.isfinite(hi)
    ok = rows[flag].fillna(False).to_numpy(bool) if flag else np.zeros(len(rows), bool)
    if threshold is not None and math.isfinite(threshold) and threshold > 0:
        t = scale * threshold
        ax.axvspan(-t, t, color="0.88", zorder=0)
    ax.axvline(0, color="black", linewidth=1, zorder=1)
    ax.hlines(yv[has_ci], lo[has_ci], hi[has_ci], color=np.where(ok[has_ci], "C0", "0.55"),
              linewidth=2, zorder=2)
    ax.scatter(diff[ok], yv[ok], color="C0", s=36, zorder=3)
    ax.scatter(diff[~ok], yv[~ok], facecolor="white", edgecolor="0.4", s=36, zorder=3)
    ticks, names = list(yv), labels
    if placebo_ci:
        py = yv.min() - 1.5
        c, plo, phi = (scale * v for v in placebo_ci)
        ax.hlines([py], [plo], [phi], color="C1", linewidth=2, zorder=2)
        ax.scatter([c], [py], color="C1", marker="D", s=30, zorder=3)
        for v in (plo, phi):
            ax.axvline(v, color="C1", linestyle=":", linewidth=1, zorder=1)
        ticks, names = [*ticks, py], [*names, "placebo (no effect by design)"]
    ax.set_yticks(ticks, names, fontsize="small")
    ax.set_xlabel(f"difference from the reference level in {metric}{unit}, 95% CI")
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], color="C0", marker="o", linewidth=2,
                      label=f"{flag or 'resolved'}"),
               Line2D([], [], color="0.55", marker="o", markerfacecolor="white", linewidth=2,
                      label=f"not {flag or 'resolved'}")]
    if threshold is not None and math.isfinite(threshold) and threshold > 0:
        from matplotlib.patches import Patch

        handles.append(Patch(color="0.88", label=f"resolution threshold "
                                                 f"±{scale * threshold:.1f}"))
    if placebo_ci:
        handles.append(Line2D([], [], color="C1", marker="D", linewidth=2, label="placebo"))
    fig.legend(handles=handles, fontsize="small", loc="outside upper center",
               ncols=len(handles), frameon=False)
    return fig
