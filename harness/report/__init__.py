"""Reports: tables, statistics and figures of a study, computed from the results database alone.

``bsnn-bench report`` calls :func:`report_command`. In a notebook the same tables are plain
functions of :func:`harness.results.runs_frame`::

    from harness.results import runs_frame
    from harness.report import main_effects, best_practice
    runs = runs_frame("sqlite:///results.sqlite", "full_factorial")
    main_effects(runs, metric="test_acc")
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from harness.report.assemble import (
    FIGURE_FORMATS,
    FORMATS,
    build_report,
    study_dirname,
    write_report,
)
from harness.report.effects import ablation, bn_vs_shift_bn, main_effects, optimizer_switch
from harness.report.interaction import interaction_contrasts, simple_effects
from harness.report.pages import StudyReport
from harness.report.practice import (
    DEFAULT_DELTA,
    best_practice,
    best_practice_summary,
    comparisons_with_best,
    recommended_vs_baseline,
    recommended_vs_top,
)
from harness.report.stats import holm, pareto_front, seed_contrast, sign_flip_p
from harness.report.tables import (
    ReportError,
    cost,
    interaction_grid,
    interactions,
    top_configurations,
)
from harness.report.verdict import verdicts
from harness.results import connect, list_studies

__all__ = [
    "DEFAULT_DELTA",
    "FORMATS",
    "ReportError",
    "StudyReport",
    "ablation",
    "best_practice",
    "best_practice_summary",
    "bn_vs_shift_bn",
    "build_report",
    "comparisons_with_best",
    "cost",
    "holm",
    "interaction_contrasts",
    "interaction_grid",
    "interactions",
    "main_effects",
    "optimizer_switch",
    "pareto_front",
    "recommended_vs_baseline",
    "recommended_vs_top",
    "report_command",
    "seed_contrast",
    "sign_flip_p",
    "simple_effects",
    "study_dirname",
    "top_configurations",
    "verdicts",
    "write_report",
]


def report_command(db: str | None = None, studies: Sequence[str] | None = None,
                   out: str = "reports", metric: str = "test_acc",
                   formats: Sequence[str] = FORMATS, delta: float = DEFAULT_DELTA,
                   target: float | None = None) -> int:
    """Regenerate ``out/<study>/`` for each study (default: every study in the database)."""
    formats = list(dict.fromkeys(formats))
    if not 0 < delta < float("inf"):
        raise ReportError(f"--delta must be a positive margin (metric units; 0.01 = "
                          f"1 accuracy point), got {delta!r}")
    if target is not None and not target > 0:
        raise ReportError(f"--half-width must be positive, got {target!r}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        what = f"unknown report format {unknown[0]!r}" if unknown else "no report format given"
        raise ReportError(f"{what} (expected a comma-separated subset of {','.join(FORMATS)})")
    with connect(db) as engine:
        available = list_studies(engine)
        names = list(dict.fromkeys(studies)) if studies else available
        missing = [n for n in names if n not in available]
        if missing:
            listing = ", ".join(repr(n) for n in available) or "none"
            raise ReportError(f"no study named {missing[0]!r} in the database "
                              f"(studies: {listing})")
        if not names:
            print("bsnn-bench report: the database holds no studies yet", file=sys.stderr)
            return 0
        for name in names:
            # Drawing is most of a report's time: skip it when no format shows figures.
            report = build_report(engine, name, metric=metric,
                                  figures=bool(set(FIGURE_FORMATS) & set(formats)), delta=delta,
                                  target=target)
            paths = write_report(report, out, formats)
            folder = paths[0].parent if paths else out
            print(f"{name}: {len(paths)} files in {folder}")
    return 0
