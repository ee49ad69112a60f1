"""The contrasts figure: every level-vs-reference contrast with its 95% CI on one shared axis.

A forest plot in accuracy points: one row per non-reference level, grouped by factor, the
difference from its factor's reference level as a dot with its confidence interval and zero as
a solid line. Filled dots are established (significant after Holm), dark rings ruled out (not
significant, CI resolved), grey rings unresolved. The resolution target is a grey band ±target
around zero; the placebo factor's rows (a comparison whose true effect is zero) are orange and
come first, so a reader sees at once how wide "nothing" is.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.report.figures import _text

__all__ = ["contrasts_figure"]

_EST, _OUT, _UNRES, _PLACEBO = "C0", "0.15", "0.6", "C1"


def _flag(rows: pd.DataFrame, name: str) -> np.ndarray:
    return rows[name].fillna(False).astype(bool).to_numpy() if name in rows else \
        np.zeros(len(rows), bool)


def contrasts_figure(effects: pd.DataFrame, *, metric: str = "test_acc",
                     threshold: float | None = None,
                     placebo_factor: str | None = "placebo") -> Figure | None:
    """Forest plot of ``effects`` (a main-effects frame: factor, level, reference, diff,
    diff_ci_low, diff_ci_high, significant, resolved). ``threshold``: the resolution target
    (a difference, as a fraction) drawn as a band ±threshold; rows of ``placebo_factor`` are
    drawn first, in orange."""
    rows = effects[~effects["reference"].astype(bool)] if "reference" in effects else effects
    rows = rows[np.isfinite(rows["diff"].astype(float))]
    if rows.empty:
        return None
    is_placebo = (rows["factor"] == placebo_factor).to_numpy()
    rows = pd.concat([rows[is_placebo], rows[~is_placebo]]).reset_index(drop=True)
    placebo = (rows["factor"] == placebo_factor).to_numpy()
    scale = 100.0 if "acc" in metric else 1.0
    unit = " (points)" if scale == 100 else ""
    fig = Figure(figsize=(8.0, 1.5 + 0.3 * len(rows) + 0.15 * rows["factor"].nunique()),
                 layout="constrained")
    ax = fig.subplots()
    y, labels, gap, last = [], [], 0.0, None
    for i, r in rows.iterrows():
        if last is not None and r["factor"] != last:
            gap += 0.6
        last = r["factor"]
        y.append(-(i + gap))
        labels.append(f"{_text(r['factor'])}: {_text(r['level'])}")
    yv = np.array(y)
    diff = scale * rows["diff"].to_numpy(float)
    lo = scale * rows["diff_ci_low"].to_numpy(float)
    hi = scale * rows["diff_ci_high"].to_numpy(float)
    sig, res = _flag(rows, "significant"), _flag(rows, "resolved")
    color = np.where(placebo, _PLACEBO, np.where(sig, _EST, np.where(res, _OUT, _UNRES)))
    band = threshold is not None and math.isfinite(threshold) and threshold > 0
    if band:
        ax.axvspan(-scale * threshold, scale * threshold, color="0.9", zorder=0)
    ax.axvline(0, color="black", linewidth=1, zorder=1)
    has_ci = np.isfinite(lo) & np.isfinite(hi)
    ax.hlines(yv[has_ci], lo[has_ci], hi[has_ci], colors=color[has_ci], linewidth=2.2,
              zorder=2)
    filled = sig | placebo
    ax.scatter(diff[filled], yv[filled], color=color[filled], s=38, zorder=3)
    ax.scatter(diff[~filled], yv[~filled], facecolor="white", edgecolor=color[~filled],
               linewidth=1.6, s=38, zorder=3)
    ax.set_yticks(yv, labels, fontsize="small")
    ax.set_ylim(yv.min() - 0.8, 0.8)
    ax.set_xlabel(f"difference from the reference level in {metric}{unit}, 95% CI over seeds")
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], color=_EST, marker="o", linewidth=2, label="established"),
               Line2D([], [], color=_OUT, marker="o", markerfacecolor="white", linewidth=2,
                      label="ruled out (resolved)"),
               Line2D([], [], color=_UNRES, marker="o", markerfacecolor="white", linewidth=2,
                      label="unresolved")]
    if band:
        handles.append(Patch(color="0.9", label=f"resolution target ±{scale * threshold:.1f}"))
    if placebo.any():
        handles.append(Line2D([], [], color=_PLACEBO, marker="o", linewidth=2,
                              label="placebo (true effect 0)"))
    fig.legend(handles=handles, fontsize="small", loc="outside upper center",
               ncols=min(3, len(handles)), frameon=False)
    return fig
