"""``bsnn-bench worker``: claim, train and record runs of one study until none is left.

What a Slurm task, a pod or a second machine runs; the study must have been registered and
enqueued by ``bsnn-bench run`` (``--launcher none`` only enqueues).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from harness.commands.run import add_checkpoint_options

    p = sub.add_parser("worker", help="work on an enqueued study until nothing is left")
    p.add_argument("--db", required=True, help="SQLAlchemy URL of the results database")
    p.add_argument("--study", required=True, help="study name (as registered by bsnn-bench run)")
    p.add_argument("--max-runs", type=int, default=None, help="stop after K runs")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:I (default: the runs')")
    add_checkpoint_options(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from harness.study.remote import worker_command_main

    return worker_command_main(db=args.db, study=args.study, max_runs=args.max_runs,
                               threads=args.threads, device=args.device,
                               checkpoints=args.checkpoints,
                               checkpoint_every_s=args.checkpoint_every,
                               keep_checkpoints=args.keep_checkpoints)
