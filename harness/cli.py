"""The ``bsnn-bench`` command: train | run | report | tricks.

User errors print one line and exit 2 (never a traceback); bugs still show their traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from harness.errors import UserError
from tricks._registry import TrickError

__all__ = ["main"]


def _cmd_train(args: argparse.Namespace) -> int:
    from harness.config import RunConfig, apply_overrides, load_config_file
    from harness.run.train import format_metrics, train_run

    data = load_config_file(args.config) if args.config else {}
    data = apply_overrides(data, args.set or [])
    cfg = RunConfig.from_dict(data)
    result = train_run(cfg, progress=not args.quiet)
    print(format_metrics(result))
    if result.status != "complete":
        print(f"bsnn-bench: run failed: {result.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.study.coordinator import run_study_command

    return run_study_command(args.spec, db=args.db, workers=args.workers,
                             max_runs=args.max_runs, dry_run=args.dry_run,
                             progress=not args.quiet, retry_failed=args.retry_failed)


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.report import report_command

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    return report_command(db=args.db, studies=args.study or None, out=args.out,
                          metric=args.metric, formats=formats)


def _cmd_tricks(args: argparse.Namespace) -> int:
    import tricks

    table = tricks.registry()
    for factor, levels in table.items():
        if args.factor and factor not in args.factor:
            continue
        print(f"{factor}")
        for name, cls in levels.items():
            print(f"  {name:<16} {cls.summary}")
            for p in cls.params():
                help_ = f"  {p.help}" if p.help else ""
                print(f"      {p.name}: {p.type} = {tricks.format_value(p.default)}{help_}")
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bsnn-bench", description="Ablation studies of binary spiking neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run and print its metrics")
    p.add_argument("--config", help="a run configuration YAML (dataset/model/train/factors)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one setting, e.g. --set train.epochs=3 "
                        "--set factors.binarization=ste-clip")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("run", help="run a study (resumable) into the results database")
    p.add_argument("spec", help="study YAML, e.g. studies/full_factorial.yaml")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default sqlite:///results.sqlite)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--max-runs", type=int, default=None, help="stop after K runs (this command)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and an estimate only")
    p.add_argument("--quiet", action="store_true", help="no live progress display")
    p.add_argument("--retry-failed", action="store_true",
                   help="run failed runs again (by default a failed run stays failed)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", help="regenerate reports/ from the results database")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default sqlite:///results.sqlite)")
    p.add_argument("--study", action="append", help="study name (repeatable; default: all)")
    p.add_argument("--out", default="reports", help="output folder (default reports/)")
    p.add_argument("--metric", default="test_acc", help="metric the tables compare")
    p.add_argument("--format", default="md,html,csv,tex,png",
                   help="comma-separated subset of md,html,csv,tex,png")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("tricks", help="list every factor, level and parameter")
    p.add_argument("factor", nargs="*", help="only these factors")
    p.set_defaults(func=_cmd_tricks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.func in (_cmd_train, _cmd_run):
        # Training in this process: start it again with the allocator keeping freed memory
        # (harness.run.memory); returns at once when that is already so, or turned off.
        from harness.run.memory import reexec_with_retained_memory

        reexec_with_retained_memory(["-m", "harness.cli", *sys.argv[1:]])
    try:
        return int(args.func(args) or 0)
    except (UserError, TrickError) as exc:
        print(f"bsnn-bench: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print("bsnn-bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`bsnn-bench tricks | head`): not an error. Point stdout at
        # /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
