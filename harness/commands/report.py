"""``bsnn-bench report``: reports/ regenerated from the results database."""

from __future__ import annotations

import argparse
from typing import Any

from harness.commands import add_db_option


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="regenerate reports/ from the results database")
    add_db_option(p)
    p.add_argument("--study", action="append", help="study name (repeatable; default: all)")
    p.add_argument("--out", default="reports", help="output folder (default reports/)")
    p.add_argument("--metric", default="test_acc", help="metric the tables compare")
    p.add_argument("--delta", type=float, default=0.01,
                   help="non-inferiority margin of best practice, in metric units "
                        "(default 0.01 = 1 accuracy point)")
    p.add_argument("--half-width", type=float, default=None, dest="half_width",
                   help="CI half-width a contrast must reach to count as resolved (default: "
                        "the study's seed rule's half_width, else 0.02)")
    p.add_argument("--format", default="md,html,csv,tex,png,pdf",
                   help="comma-separated subset of md,html,csv,tex,png,pdf")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from harness.report import report_command

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    return report_command(db=args.db, studies=args.study or None, out=args.out,
                          metric=args.metric, formats=formats, delta=args.delta,
                          target=args.half_width)
