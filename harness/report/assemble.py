"""Assemble one study's report from the database and write it as Markdown, HTML, CSV, LaTeX, PNG.

Study, factor and level names are data: they are written verbatim (escaped for the format at
hand: HTML entities, LaTeX escapes, ``\\|`` inside Markdown table cells) and never become paths.
A study's folder is its name when that is already a plain file name, otherwise a slug of it plus
a short hash of the full name, and every file is checked to land inside the output folder.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from harness.errors import StorageError
from harness.report import figures as figs
from harness.report import figures_contrasts, figures_cost
from harness.report import tables as tbl
from harness.report.formats import Column, latex_table
from harness.report.numbers import ACCURACY_NOTE
from harness.report.pages import (
    ReportFigure,
    ReportTable,
    StudyReport,
    render_html,
    render_markdown,
)
from harness.report.stats import ALPHA, MIN_WILCOXON_PAIRS, N_BOOTSTRAP
from harness.results import curves_frame, runs_frame, study_info

__all__ = [
    "FORMATS",
    "ReportFigure",
    "ReportTable",
    "StudyReport",
    "build_report",
    "study_dirname",
    "write_report",
]

FORMATS = ("md", "html", "csv", "tex", "png", "pdf")
#: Formats that need the figures drawn.
FIGURE_FORMATS = ("html", "png", "pdf")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                     *(f"lpt{i}" for i in range(10))}

STATS_NOTE = (f"Means over complete runs; 95% CI: percentile bootstrap of the mean "
              f"({N_BOOTSTRAP} resamples, fixed seed). Differences from the reference are "
              f"paired (same other levels and seed): Wilcoxon signed-rank with at least "
              f"{MIN_WILCOXON_PAIRS} pairs, paired t below; p (Holm): Holm-corrected over the "
              f"table; significant: p (Holm) < {ALPHA}. " + ACCURACY_NOTE + " Every column, "
              "at full precision, is in the table's CSV file.")

C = Column
#: What the documents and LaTeX files show of each table (the CSV keeps every column).
SHOWN: dict[str, list[Column]] = {
    "main_effects": [C("factor"), C("level"), C("runs"), C("mean", "Mean"),
                     C("diff", "Δ vs ref.", on_reference="reference"),
                     C(("diff_ci_low", "diff_ci_high"), "95% CI"),
                     C("p_holm"), C("significant", on_reference="")],
    "ablation": [C("change", width="0.3\\linewidth"), C("runs"), C("mean"), C("diff", "Δ"),
                 C(("diff_ci_low", "diff_ci_high"), "95% CI"), C("test"), C("p_holm"),
                 C("significant")],
    "bn_vs_shift_bn": [C("group"), C("level"), C("runs"), C("test_acc", "BN"),
                       C("test_acc_shift_bn", "Shift-BN"), C("loss", "Loss"),
                       C(("loss_ci_low", "loss_ci_high"), "95% CI of loss"), C("p_holm")],
    "cost": [C("binarization"), C("arch"), C("runs"), C("weight_memory_bits"),
             C("weight_memory_ratio"), C("energy_uj_per_sample"), C("synops_per_sample")],
    "best_practice": [C("factor"), C("recommended", width="0.2\\linewidth"),
                      C("decision", width="0.3\\linewidth"), C("reference"),
                      C("diff_vs_reference")],
    "recommended_vs_baseline": [C("configuration"), C("levels", width="0.35\\linewidth"),
                                C("runs"), C("mean"), C("diff", "Δ"),
                                C(("diff_ci_low", "diff_ci_high"), "95% CI"), C("p")],
}


def study_dirname(name: str) -> str:
    """A file-system-safe folder name for a study: the name itself when it is plain ASCII
    letters, digits, ``_.-`` (not starting with a dot), else a slug plus 10 hex of its SHA-256."""
    if _PLAIN_NAME.fullmatch(name) and name.lower().split(".")[0] not in _WINDOWS_RESERVED:
        return name
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-")[:40] or "study"
    return f"{slug}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:10]}"


# -- building -------------------------------------------------------------------------------

def _grid_frame(grid: pd.DataFrame) -> pd.DataFrame:
    corner = f"{grid.index.name} \\ {grid.columns.name}"
    out = grid.copy()
    out.index = out.index.rename(corner)
    out.columns = out.columns.rename(None)
    return out.reset_index()


def _grid_columns(frame: pd.DataFrame, accuracy: bool) -> list[Column]:
    corner, *levels = [str(c) for c in frame.columns]
    return [Column(corner, kind="text"), *(Column(c, kind="acc" if accuracy else "num")
                                           for c in levels)]


def build_report(engine: Engine | str | None, study: str, *, metric: str = "test_acc",
                 top_k: int = 10, figures: bool = True) -> StudyReport:
    """Compute every table (and with ``figures``, every figure) of ``study``; nothing is
    written."""
    info = study_info(engine, study)
    runs = runs_frame(engine, study)
    report = StudyReport(study, info, runs, metric, [], [])
    complete = runs[runs["status"] == "complete"]
    if complete.empty:
        return report
    if metric not in runs.columns or not np.isfinite(complete[metric].astype(float)).any():
        known = ", ".join(runs.attrs.get("metrics", [])) or "none"
        raise tbl.ReportError(f"study {study!r}: no complete run recorded metric {metric!r} "
                              f"(metrics: {known})")
    lv = tbl.study_factors(runs)
    acc = report.accuracy
    add = report.tables.append
    effects = tbl.main_effects(runs, metric=metric)
    add(ReportTable("main_effects", f"Main effects on {metric}", effects, STATS_NOTE,
                    SHOWN["main_effects"]))
    add(ReportTable("ablation", f"One-at-a-time ablation of {metric} (baseline = every "
                    f"reference level; one change at a time)",
                    tbl.ablation(runs, metric=metric),
                    "Differences are paired by seed with the baseline. " + STATS_NOTE,
                    SHOWN["ablation"]))
    pairs = [(a, b) for i, a in enumerate(lv) for b in list(lv)[i + 1:]]
    callout = ("binarization", "optimizer") if {"binarization", "optimizer"} <= set(lv) else None
    grids = {pair: tbl.interaction_grid(runs, *pair, metric=metric)
             for pair in ([callout] if callout else []) + pairs}
    if callout:
        frame = _grid_frame(grids[callout])
        add(ReportTable("interaction_binarization_optimizer",
                        f"Binarization x optimizer: mean {metric}", frame,
                        "The hybrid optimizer's claim is about binary weights: compare its "
                        "column across binarization rows.", _grid_columns(frame, acc)))
    if pairs:
        add(ReportTable("interactions", f"Interactions: mean {metric} over every pair of "
                        f"factors", tbl.interactions(runs, metric=metric), in_document=False))
        for a, b in pairs:
            if (a, b) != callout:
                frame = _grid_frame(grids[a, b])
                add(ReportTable(f"interaction_{a}_{b}", f"{a} x {b}: mean {metric}", frame,
                                columns=_grid_columns(frame, acc), as_file=False))
    top = tbl.top_configurations(runs, metric=metric, k=top_k)
    add(ReportTable("top_configurations", f"Top {top_k} configurations by mean {metric} "
                    f"(over seeds)", top, ACCURACY_NOTE,
                    [Column("rank"), *(Column(f, kind="text") for f in lv),
                     Column("runs"), Column("mean"), Column("std")]))
    bn = tbl.bn_vs_shift_bn(runs)
    if len(bn) and bn["runs"].sum() > 0:
        add(ReportTable("bn_vs_shift_bn", "BN vs shift-BN at inference: test accuracy lost "
                        "by power-of-two BN scales, over runs with BN", bn,
                        "Loss > 0: power-of-two BN scales cost accuracy. Paired over runs; "
                        "CI: bootstrap of the mean loss. " + ACCURACY_NOTE,
                        SHOWN["bn_vs_shift_bn"]))
    add(ReportTable("cost", "Cost per binarization level and architecture",
                    tbl.cost(runs, metric=metric),
                    "Weight memory in bits and as a ratio of fp32; operations and energy per "
                    "inference sample. MACs, ACs, parameters and accuracy are in cost.csv.",
                    SHOWN["cost"]))
    practice = tbl.best_practice(runs, metric=metric)
    versus = tbl.recommended_vs_baseline(runs, practice, metric=metric)
    report.summary = tbl.best_practice_summary(practice, versus, metric=metric)
    report.justification = (
        "The best level of a factor is recommended where it is significantly better than "
        "every other level (paired tests, Holm over all factors); otherwise the cheapest "
        "level among those not significantly worse (weight memory, energy, synaptic "
        "operations, training time; then the reference).")
    add(ReportTable("best_practice", f"Best practice per factor ({metric})", practice,
                    report.justification, SHOWN["best_practice"]))
    add(ReportTable("recommended_vs_baseline", "Recommended combination against the baseline",
                    versus, "Paired by seed. A combination the study never ran shows 0 runs. "
                    + ACCURACY_NOTE, SHOWN["recommended_vs_baseline"]))

    if not figures:
        return report

    def add_figure(name: str, title: str, fig: Any, caption: str = "") -> None:
        if fig is not None:
            report.figures.append(ReportFigure(name, title, figs.png_bytes(fig),
                                               figs.pdf_bytes(fig), caption))

    add_figure("contrasts", f"Every level against its reference: difference in {metric}",
               figures_contrasts.contrasts_figure(effects, metric=metric),
               f"Difference of each level's mean {metric} from its factor's reference level, "
               "paired by seed and the other levels, with its 95% bootstrap CI, all on one "
               "axis; filled: significant after Holm correction.")
    curves = curves_frame(engine, study, "val_acc", runs=complete)
    panel = "binarization" if "binarization" in lv else None
    opt = "optimizer" if "optimizer" in lv else None
    add_figure("learning_curves", "Validation accuracy per epoch"
               + (f", one panel per {panel} level" if panel else ""),
               figs.learning_curves(curves, complete, panel=panel, factor=opt, levels=lv,
                                    metric="val_acc"))
    heat = callout or (pairs[0] if pairs else None)
    if heat:
        add_figure("interaction_heatmap", f"{heat[0]} x {heat[1]}: mean {metric}",
                   figs.interaction_heatmap(grids[heat], metric=metric))
    add_figure("pareto", f"{metric} against energy and weight memory",
               figures_cost.pareto_figure(runs, lv, metric=metric))
    return report


# -- cell formatting --------------------------------------------------------------------------


# -- header ---------------------------------------------------------------------------------


# -- documents --------------------------------------------------------------------------------


# -- writing ----------------------------------------------------------------------------------

def _inside(root: Path, path: Path) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise StorageError(f"refusing to write {resolved}: outside the output folder {root}")
    return resolved


def write_report(report: StudyReport, out: str | Path, formats: Sequence[str] = FORMATS
                 ) -> list[Path]:
    """Write ``report`` into ``out/<study folder>/`` in the given formats; return the paths."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise tbl.ReportError(f"unknown report format {unknown[0]!r} (expected a subset of "
                              f"{','.join(FORMATS)})")
    root = Path(out).resolve()
    folder = _inside(root, root / study_dirname(report.study))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create report folder {folder}: {exc}") from None
    written: list[Path] = []

    def put(name: str, data: str | bytes) -> str:
        path = _inside(root, folder / name)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        written.append(path)
        return name

    png_names: dict[str, str] = {}
    if "png" in formats:
        png_names = {f.name: put(f"{f.name}.png", f.png) for f in report.figures}
    if "pdf" in formats:
        for f in report.figures:
            put(f"{f.name}.pdf", f.pdf)
    for t in report.tables:
        if not t.as_file:
            continue
        if "csv" in formats:
            put(f"{t.name}.csv", t.frame.to_csv(index=False))
        if "tex" in formats:
            put(f"{t.name}.tex", latex_table(
                t.frame, t.title, t.columns, label=f"{report.study}-{t.name}", note=t.note,
                accuracy=report.accuracy))
    if "md" in formats:
        put("report.md", render_markdown(report, png_names))
    if "html" in formats:
        put("index.html", render_html(report))
    return written
