"""Assemble one study's report from the database; write it as Markdown, HTML, CSV, LaTeX, PNG, PDF.

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
from harness.report import design as dsg
from harness.report import effects as eff
from harness.report import interaction as inter
from harness.report import mixed
from harness.report import practice as prac
from harness.report import tables as tbl
from harness.report.contrasts import DEFAULT_TARGET, family_note
from harness.report.draw import _pts, draw_figures
from harness.report.formats import latex_table
from harness.report.layout import columns_for, verdict_labels
from harness.report.numbers import ACCURACY_NOTE
from harness.report.pages import (
    ReportFigure,
    ReportTable,
    StudyReport,
    render_html,
    render_markdown,
)
from harness.report.verdict import PLACEBO_MEANING, verdicts
from harness.results import runs_frame, study_info

__all__ = [
    "FIGURE_FORMATS",
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

LEVEL_NOTE = ("Level means are means of seed means; their 95% CI (ci_low, ci_high in the "
              "CSV): t interval over the seed means (df = seeds - 1). test_samples: test-set "
              "size per run; binom_se: the binomial standard error sqrt(p(1-p)/n) of one "
              "run's accuracy on it, a floor under any single-run comparison. Verdict: "
              "established = significant after Holm; ruled out = not significant with a "
              "resolved CI (effects beyond its bounds are excluded); unresolved = neither. "
              + ACCURACY_NOTE)


def study_target(info: dict[str, Any]) -> float:
    """The study's precision target: its seed rule's ``half_width``, else the default."""
    spec = info.get("spec") if isinstance(info.get("spec"), dict) else {}
    seeds = (spec.get("train") or {}).get("seeds") if isinstance(spec, dict) else None
    hw = seeds.get("half_width") if isinstance(seeds, dict) else None
    return float(hw) if isinstance(hw, int | float) and hw > 0 else DEFAULT_TARGET


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
                 top_k: int = 10, figures: bool = True, delta: float = prac.DEFAULT_DELTA,
                 target: float | None = None) -> StudyReport:
    """Compute every table (and with ``figures``, every figure) of ``study``; nothing is
    written. ``delta``: the non-inferiority margin of best practice; ``target``: the CI
    half-width a contrast must reach to count as resolved (default: the study's seed rule's
    ``half_width``, else 0.02)."""
    info = study_info(engine, study)
    runs = runs_frame(engine, study)
    report = StudyReport(study, info, runs, metric, [], [],
                         design=dsg.design_lines(str(info["design"]), tbl.study_factors(runs)))
    complete = runs[runs["status"] == "complete"]
    if complete.empty:
        return report
    if metric not in runs.columns or not np.isfinite(complete[metric].astype(float)).any():
        known = ", ".join(runs.attrs.get("metrics", [])) or "none"
        raise tbl.ReportError(f"study {study!r}: no complete run recorded metric {metric!r} "
                              f"(metrics: {known})")
    if target is None:
        target = study_target(info)
    lv = tbl.study_factors(runs)
    add = report.tables.append
    effects = eff.main_effects(runs, metric=metric, target=target)
    effects = effects.assign(verdict=verdict_labels(effects))
    report.verdicts = verdicts(effects, metric=metric, target=target)
    placebo = (" The placebo factor's rows come first. " + PLACEBO_MEANING
               if eff.PLACEBO in lv else "")
    add(ReportTable("main_effects", f"Main effects on {metric} (seed-level contrasts with the "
                    f"reference level)", effects,
                    family_note("every level-vs-reference contrast of this table", target,
                                extra=LEVEL_NOTE + placebo),
                    ["factor", "level", "seeds", "mean", "ci_low", "ci_high", "diff",
                     "diff_ci_low", "diff_ci_high", "p_holm", "resolved"]))
    if mixed.AVAILABLE:
        check = mixed.mixed_model_check(runs, effects, metric=metric)
        if len(check):
            bad = mixed.disagreements(check)
            if bad:
                report.verdicts.append("Cross-check: the mixed model (seed random intercept "
                                       "and slopes) disagrees sharply with the seed-level t "
                                       "on " + "; ".join(bad) + ".")
            add(ReportTable("mixed_model_check", f"Cross-check of the main effects with a "
                            f"linear mixed model ({metric})", check,
                            "MixedLM (statsmodels, REML) of the paired differences level - "
                            "reference within each cell of the other factors and seed, the "
                            "seed a random block (its random intercept on the differences is "
                            "the seed x factor random slope); Wald SE and 95% interval. "
                            "seed_se: the "
                            "seed-level contrast's standard error. verdict 'disagrees': "
                            "different significance at 0.05 or SEs differing by more than 2x. "
                            "The seed-level t is the primary test."
                            + (" Disagreements: " + "; ".join(bad) + "." if bad else
                               " No sharp disagreement.")))
    add(ReportTable("ablation", f"One-at-a-time ablation of {metric} (baseline = every "
                    f"reference level; one change at a time)",
                    eff.ablation(runs, metric=metric, target=target),
                    family_note("every single change from the baseline", target,
                                extra=LEVEL_NOTE),
                    ["change", "seeds", "mean", "ci_low", "ci_high", "diff", "diff_ci_low",
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
        add(ReportTable("simple_effects", f"Optimizer levels against {lv['optimizer'][0]} "
                        f"within each binarization level ({metric})",
                        inter.simple_effects(runs, "binarization", "optimizer", metric=metric,
                                             target=target),
                        family_note("every optimizer-vs-reference contrast within every "
                                    "binarization level", target)))
    contrasts = inter.interaction_contrasts(runs, metric=metric, target=target) if pairs \
        else None
    if pairs:
        add(ReportTable("interaction_contrasts", f"Two-factor interaction contrasts of "
                        f"{metric}", contrasts,
                        family_note("every interaction contrast of this table", target,
                                    extra="diff: how much factor_b's effect changes when "
                                    "factor_a moves from its reference to level_a.")))
        add(ReportTable("interactions", f"Interactions: mean {metric} over every pair of "
                        f"factors", tbl.interactions(runs, metric=metric), in_document=False))
        for a, b in pairs:
            if (a, b) != callout:
                add(ReportTable(f"interaction_{a}_{b}", f"{a} x {b}: mean {metric}",
                                _grid_frame(grids[a, b]), as_file=False))
    add(ReportTable("top_configurations", f"Top {top_k} configurations by mean {metric} "
                    f"(over seeds)", tbl.top_configurations(runs, metric=metric, k=top_k)))
    bn = eff.bn_vs_shift_bn(runs, target=target)
    if len(bn) and bn["runs"].sum() > 0:
        add(ReportTable("bn_vs_shift_bn", "BN vs shift-BN at inference: diff = test_acc - "
                        "test_acc_shift_bn over runs with BN", bn,
                        "diff > 0: power-of-two BN scales cost accuracy. Per run the loss, "
                        "averaged within each seed, then over seeds. " + family_note(
                            "the rows of this table", target)))
    switch = eff.optimizer_switch(runs)
    if len(switch):
        add(ReportTable("optimizer_switch", "Optimizer switch: where it happened and whether "
                        "the best checkpoint came before it", switch,
                        "switch_epoch and best_epoch are 0-based; a run whose best-validation "
                        "checkpoint (the weights tested) precedes the switch is an Adam run "
                        "stopped early, not an Adam-then-SGD run. switch_lr: the SGD rate the "
                        "switch took (sgd_lr=auto: the SWATS projection of Adam's step)."))
    add(ReportTable("cost", "Cost per binarization level and architecture",
                    tbl.cost(runs, metric=metric),
                    "Weight memory in bits and as a ratio of fp32; operations and energy per "
                    "inference sample."))
    cmp = prac.comparisons_with_best(runs, metric=metric, target=target)
    practice = prac.best_practice(runs, metric=metric, delta=delta, target=target,
                                  comparisons=cmp)
    versus = prac.recommended_vs_baseline(runs, practice, metric=metric, target=target)
    top = prac.recommended_vs_top(runs, practice, metric=metric, target=target)
    report.summary = prac.best_practice_summary(practice, versus, metric=metric)
    report.justification = (
        "Why: every level is compared with its factor's best level seed by seed; the cheapest "
        "of the best and the levels whose lower 95% bound of (level - best) is above "
        f"-{_pts(delta, report.accuracy)} (the non-inferiority margin) is recommended (weight "
        "memory, energy, synops, training time; then spec order). A level neither within the "
        "margin nor significantly worse leaves the factor without a recommendation. Factors "
        "with a significant, resolved interaction are decided jointly on their cells.")
    add(ReportTable("best_practice", f"Best practice per factor ({metric}, non-inferiority "
                    f"margin {100 * delta:g} points)", practice,
                    report.summary + " " + report.justification,
                    ["factor", "recommended", "decision", "best"]))
    add(ReportTable("best_practice_vs_best", f"Every level against its factor's best level "
                    f"({metric}; diff = level - best)", cmp,
                    family_note("every comparison with the best, over all factors", target)))
    add(ReportTable("recommended_vs_baseline", "Recommended combination against the baseline",
                    versus, "diff = recommended - baseline, seed by seed (t interval over "
                    "seeds). A combination the study never ran shows 0 runs."))
    add(ReportTable("recommended_vs_top", "Recommended combination against the top "
                    "configuration", top, "diff = recommended - top configuration (highest "
                    "mean over seeds), seed by seed. The top cell's mean is biased upwards "
                    "(it was selected as the maximum), so a small negative diff is expected."))
    dsg.annotate(report, lv)  # a fractional design: its captions, verdict and alias table

    heat = callout or (pairs[0] if pairs else None)
    if not figures:
        for t in report.tables:
            t.columns = columns_for(t.name, t.frame, list(lv), accuracy=report.accuracy)
        return report

    draw_figures(report, engine, complete, lv, effects=effects, grids=grids, heat=heat,
                 contrasts=contrasts, target=target)
    for t in report.tables:
        t.columns = columns_for(t.name, t.frame, list(lv), accuracy=report.accuracy)
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
