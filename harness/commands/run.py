"""``bsnn-bench run``: a study, resumable, into the results database."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run a study (resumable) into the results database")
    p.add_argument("spec", help="study YAML, e.g. studies/full_factorial.yaml")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default sqlite:///results.sqlite)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--max-runs", type=int, default=None, help="stop after K runs (this command)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and an estimate only")
    p.add_argument("--quiet", action="store_true", help="no live progress display")
    p.add_argument("--retry-failed", action="store_true",
                   help="run failed runs again (by default a failed run stays failed)")
    p.add_argument("--weights", metavar="DIR", default=None,
                   help="keep each complete run's best weights here (default: "
                        "<db stem>-weights/ next to a SQLite database)")
    p.add_argument("--no-weights", action="store_true",
                   help="keep no weights (runs cannot be exported)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import os

    from harness.deploy.weights import WEIGHTS_ENV
    from harness.study.coordinator import run_study_command

    # Through the environment, so that spawned workers (and other launchers) see it too.
    if args.no_weights:
        os.environ[WEIGHTS_ENV] = "off"
    elif args.weights:
        os.environ[WEIGHTS_ENV] = os.path.abspath(os.path.expanduser(args.weights))

    return run_study_command(args.spec, db=args.db, workers=args.workers,
                             max_runs=args.max_runs, dry_run=args.dry_run,
                             progress=not args.quiet, retry_failed=args.retry_failed)
