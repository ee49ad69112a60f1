"""``bsnn-bench run``: a study, resumable, into the results database."""

from __future__ import annotations

import argparse
from typing import Any

from harness.commands import add_db_option


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run a study (resumable) into the results database")
    p.add_argument("spec", help="study YAML, e.g. studies/full_factorial.yaml")
    add_db_option(p)
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes on this machine (slurm: array tasks)")
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
    p.add_argument("--launcher", default="local", choices=("local", "none", "slurm"),
                   help="where workers run: local processes (default), none (enqueue and print "
                        "the worker command), slurm (a job array through submitit)")
    p.add_argument("--workers-per-gpu", type=int, default=None, metavar="K",
                   help="local: K workers per visible GPU, each pinned to it with 1/K memory")
    add_checkpoint_options(p)
    g = p.add_argument_group("slurm (--launcher slurm)")
    g.add_argument("--slurm-partition", default=None)
    g.add_argument("--slurm-time", type=int, default=60, metavar="MIN",
                   help="time limit of each task, minutes (default 60)")
    g.add_argument("--slurm-gpus-per-task", type=int, default=None, metavar="G")
    g.add_argument("--slurm-cpus-per-task", type=int, default=None, metavar="C")
    g.add_argument("--slurm-mem", type=int, default=None, metavar="MB")
    g.add_argument("--slurm-array-parallelism", type=int, default=None, metavar="K")
    g.add_argument("--slurm-logs", default=None, metavar="DIR",
                   help="submitit's logs (default slurm-logs/ next to the checkpoints)")
    g.add_argument("--detach", action="store_true", help="return once the array is queued")
    p.set_defaults(func=main)


def add_checkpoint_options(p: Any) -> None:
    p.add_argument("--checkpoints", default=None, metavar="DIR",
                   help="preemption checkpoints (default: checkpoints/ next to a SQLite "
                        "database, else in the current folder; shared storage on a cluster)")
    p.add_argument("--checkpoint-every", type=float, default=None, metavar="SECONDS",
                   help="also checkpoint a run after this much training (default 300); "
                        "a signal always checkpoints at the end of the epoch")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep a run's checkpoint after it completes")


def main(args: argparse.Namespace) -> int:
    import os

    from harness.deploy.weights import WEIGHTS_ENV
    from harness.study.coordinator import run_study_command

    # Through the environment, so that spawned workers (and other launchers) see it too.
    if args.no_weights:
        os.environ[WEIGHTS_ENV] = "off"
    elif args.weights:
        os.environ[WEIGHTS_ENV] = os.path.abspath(os.path.expanduser(args.weights))

    slurm = None
    if args.launcher == "slurm":
        slurm = {"partition": args.slurm_partition, "time_min": args.slurm_time,
                 "gpus_per_task": args.slurm_gpus_per_task,
                 "cpus_per_task": args.slurm_cpus_per_task, "mem_mb": args.slurm_mem,
                 "array_parallelism": args.slurm_array_parallelism,
                 "logs": args.slurm_logs, "detach": args.detach}
    return run_study_command(args.spec, db=args.db, workers=args.workers,
                             max_runs=args.max_runs, dry_run=args.dry_run,
                             progress=not args.quiet, retry_failed=args.retry_failed,
                             launcher=args.launcher, workers_per_gpu=args.workers_per_gpu,
                             checkpoints=args.checkpoints,
                             checkpoint_every_s=args.checkpoint_every,
                             keep_checkpoints=args.keep_checkpoints, slurm=slurm)
