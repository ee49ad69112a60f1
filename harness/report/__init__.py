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
from harness.report.pages import StudyReport
from harness.report.stats import bootstrap_ci, holm, paired_test, pareto_front
from harness.report.tables import (
    ReportError,
    ablation,
    best_practice,
    best_practice_summary,
    bn_vs_shift_bn,
    cost,
    interaction_grid,
    interactions,
    main_effects,
    recommended_vs_baseline,
    top_configurations,
)
from harness.results import connect, list_studies

__all__ = [
    "FORMATS",
    "ReportError",
    "StudyReport",
    "ablation",
    "best_practice",
    "best_practice_summary",
    "bn_vs_shift_bn",
    "bootstrap_ci",
    "build_report",
    "cost",
    "holm",
    "interaction_grid",
    "interactions",
    "main_effects",
    "paired_test",
    "pareto_front",
    "recommended_vs_baseline",
    "report_command",
    "study_dirname",
    "top_configurations",
    "write_report",
]


def report_command(db: str | None = None, studies: Sequence[str] | None = None,
                   out: str = "reports", metric: str = "test_acc",
                   formats: Sequence[str] = FORMATS) -> int:
    """Regenerate ``out/<study>/`` for each study (default: every study in the database)."""
    formats = list(dict.fromkeys(formats))
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
                                  figures=bool(set(FIGURE_FORMATS) & set(formats)))
            paths = write_report(report, out, formats)
            folder = paths[0].parent if paths else out
            print(f"{name}: {len(paths)} files in {folder}")
    return 0
