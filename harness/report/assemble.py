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
from harness.fileio import write_atomic
from harness.report import figures as figs
from harness.report import tables as tbl
from harness.report.formats import latex_table
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

FORMATS = ("md", "html", "csv", "tex", "png")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                     *(f"lpt{i}" for i in range(10))}

STATS_NOTE = (f"Means over complete runs; 95% CI: percentile bootstrap of the mean "
              f"({N_BOOTSTRAP} resamples, fixed seed). Differences are paired (same other levels "
              f"and seed): Wilcoxon signed-rank with at least {MIN_WILCOXON_PAIRS} pairs, "
              f"paired t below (the test column says which); p_holm: Holm-corrected over the "
              f"table; significant: p_holm < {ALPHA}. Means of the other metrics are over the runs "
              "where they are finite.")


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
    add = report.tables.append
    effects = tbl.main_effects(runs, metric=metric)
    add(ReportTable("main_effects", f"Main effects on {metric}", effects, STATS_NOTE,
                    ["factor", "level", "runs", "mean", "ci_low", "ci_high", "diff", "test",
                     "p_holm", *tbl.EXTRA_METRICS]))
    add(ReportTable("ablation", f"One-at-a-time ablation of {metric} (baseline = every "
                    f"reference level; one change at a time)",
                    tbl.ablation(runs, metric=metric),
                    "Differences are paired by seed with the baseline. " + STATS_NOTE,
                    ["change", "runs", "mean", "ci_low", "ci_high", "diff", "diff_ci_low",
                     "diff_ci_high", "p_holm"]))
    pairs = [(a, b) for i, a in enumerate(lv) for b in list(lv)[i + 1:]]
    callout = ("binarization", "optimizer") if {"binarization", "optimizer"} <= set(lv) else None
    grids = {pair: tbl.interaction_grid(runs, *pair, metric=metric)
             for pair in ([callout] if callout else []) + pairs}
    if callout:
        add(ReportTable("interaction_binarization_optimizer",
                        f"Binarization x optimizer: mean {metric}", _grid_frame(grids[callout]),
                        "The hybrid optimizer's claim is about binary weights: compare its "
                        "column across binarization rows."))
    if pairs:
        add(ReportTable("interactions", f"Interactions: mean {metric} over every pair of "
                        f"factors", tbl.interactions(runs, metric=metric), in_document=False))
        for a, b in pairs:
            if (a, b) != callout:
                add(ReportTable(f"interaction_{a}_{b}", f"{a} x {b}: mean {metric}",
                                _grid_frame(grids[a, b]), as_file=False))
    add(ReportTable("top_configurations", f"Top {top_k} configurations by mean {metric} "
                    f"(over seeds)", tbl.top_configurations(runs, metric=metric, k=top_k)))
    bn = tbl.bn_vs_shift_bn(runs)
    if len(bn) and bn["runs"].sum() > 0:
        add(ReportTable("bn_vs_shift_bn", "BN vs shift-BN at inference: test_acc - "
                        "test_acc_shift_bn over runs with BN", bn,
                        "loss > 0: power-of-two BN scales cost accuracy. Paired over runs; "
                        "CI: bootstrap of the mean loss."))
    add(ReportTable("cost", "Cost per binarization level and architecture",
                    tbl.cost(runs, metric=metric),
                    "Weight memory in bits and as a ratio of fp32; operations and energy per "
                    "inference sample."))
    practice = tbl.best_practice(runs, metric=metric)
    versus = tbl.recommended_vs_baseline(runs, practice, metric=metric)
    report.summary = tbl.best_practice_summary(practice, versus, metric=metric)
    add(ReportTable("best_practice", f"Best practice per factor ({metric})", practice,
                    report.summary + " The best level is recommended where it is "
                    "significantly better than every other level (paired tests, Holm over all "
                    "factors); otherwise the cheapest level among those not significantly "
                    "worse (weight memory, energy, synops, training time; then the "
                    "reference).",
                    ["factor", "recommended", "decision", "reference", "diff_vs_reference"]))
    add(ReportTable("recommended_vs_baseline", "Recommended combination against the baseline",
                    versus,
                    "Paired by seed. A combination the study never ran shows 0 runs."))

    if not figures:
        return report

    def add_figure(name: str, title: str, fig: Any) -> None:
        if fig is not None:
            report.figures.append(ReportFigure(name, title, figs.png_bytes(fig)))

    add_figure("main_effects", f"Main effects on {metric}",
               figs.main_effects_figure(effects, metric=metric))
    curves = curves_frame(engine, study, "val_acc", runs=complete)
    opt = "optimizer" if "optimizer" in lv else None
    add_figure("learning_curves", "Validation accuracy" + (" per optimizer level" if opt else ""),
               figs.learning_curves(curves, complete, factor=opt,
                                    levels=lv.get("optimizer"), metric="val_acc"))
    heat = callout or (pairs[0] if pairs else None)
    if heat:
        add_figure("interaction_heatmap", f"{heat[0]} x {heat[1]}: mean {metric}",
                   figs.interaction_heatmap(grids[heat], metric=metric))
    add_figure("pareto", f"{metric} against weight memory and synaptic operations",
               figs.pareto_figure(runs, lv, metric=metric))
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
        write_atomic(path, data)  # a full disk leaves the old file, never a 0-byte one
        written.append(path)
        return name

    png_names: dict[str, str] = {}
    if "png" in formats:
        png_names = {f.name: put(f"{f.name}.png", f.png) for f in report.figures}
    for t in report.tables:
        if not t.as_file:
            continue
        if "csv" in formats:
            put(f"{t.name}.csv", t.frame.to_csv(index=False))
        if "tex" in formats:
            put(f"{t.name}.tex", latex_table(t.frame, t.title, t.tex_columns))
    if "md" in formats:
        put("report.md", render_markdown(report, png_names))
    if "html" in formats:
        put("index.html", render_html(report))
    return written
