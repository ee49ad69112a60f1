"""Draw a report's figures (PNG for the pages, PDF for papers) from its tables and runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.report import effects as eff
from harness.report import figures as figs
from harness.report import figures_contrasts, figures_cost
from harness.report.pages import ReportFigure, StudyReport
from harness.results import curves_frame

__all__ = ["draw_figures"]


def draw_figures(report: StudyReport, engine: Any, complete: pd.DataFrame,
                 lv: Mapping[str, list[str]], *, effects: pd.DataFrame,
                 grids: Mapping[tuple[str, str], pd.DataFrame], heat: tuple[str, str] | None,
                 contrasts: pd.DataFrame | None, target: float) -> None:
    """Append the contrasts figure (shown first), the learning curves, the interaction
    heatmap and the Pareto figure to ``report.figures``."""
    metric, study, runs = report.metric, report.study, report.runs

    def add_figure(name: str, title: str, fig: Any, caption: str = "") -> None:
        if fig is not None:
            report.figures.append(ReportFigure(name, title, figs.png_bytes(fig),
                                               figs.pdf_bytes(fig), caption))

    add_figure("contrasts", f"Every level against its reference: difference in {metric}",
               figures_contrasts.contrasts_figure(effects, metric=metric, threshold=target,
                                                  placebo_factor=eff.PLACEBO),
               f"Difference of each level's mean {metric} from its factor's reference level, "
               "seed by seed, with its 95% t interval over seeds, all on one axis. Filled: "
               "established (significant after Holm); dark ring: ruled out (resolved, not "
               "significant); grey ring: unresolved. Grey band: the resolution target "
               f"(±{_pts(target, report.accuracy)}, the CI half-width a contrast must reach). "
               "Orange: the placebo factor, whose true effect is zero.")
    curves = curves_frame(engine, study, "val_acc", runs=complete)
    panel = "binarization" if "binarization" in lv else None
    opt = "optimizer" if "optimizer" in lv else None
    add_figure("learning_curves", "Validation accuracy per epoch"
               + (f", one panel per {panel} level" if panel else ""),
               figs.learning_curves(curves, complete, panel=panel, factor=opt, levels=lv,
                                    metric="val_acc"))
    if heat:
        add_figure("interaction_heatmap", f"{heat[0]} x {heat[1]}: mean {metric}",
                   figs.interaction_heatmap(grids[heat], metric=metric,
                                            marks=_resolved_cells(contrasts, *heat)),
                   f"Mean {metric} per cell; a red box marks a cell whose interaction contrast "
                   "(how much the column factor's effect changes in this row, against the "
                   "reference row and column) is established.")
    add_figure("pareto", f"{metric} against energy and weight memory",
               figures_cost.pareto_figure(runs, lv, metric=metric))


def _pts(x: float, accuracy: bool) -> str:
    return f"{100 * x:.1f} points" if accuracy else f"{x:.3g}"


def _resolved_cells(contrasts: pd.DataFrame | None, fa: str, fb: str) -> pd.DataFrame | None:
    """(level_a x level_b) True where the interaction contrast of fa x fb is significant."""
    if contrasts is None or contrasts.empty:
        return None
    sub = contrasts[(contrasts["factor_a"] == fa) & (contrasts["factor_b"] == fb)]
    if sub.empty:
        return None
    marks = sub.assign(mark=sub["significant"].fillna(False).astype(bool))
    return marks.pivot_table(index="level_a", columns="level_b", values="mark",
                             aggfunc="any").astype(bool)
