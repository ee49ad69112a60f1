"""``bsnn-bench train``: one run from a configuration file and overrides."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train one run and print its metrics")
    p.add_argument("--config", help="a run configuration YAML (dataset/model/train/factors)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one setting, e.g. --set train.epochs=3 "
                        "--set factors.binarization=ste-clip")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from harness.config import RunConfig, apply_overrides, load_config_file
    from harness.errors import DatasetMissingError
    from harness.run.train import format_metrics, train_run

    data = load_config_file(args.config) if args.config else {}
    data = apply_overrides(data, args.set or [])
    cfg = RunConfig.from_dict(data)
    try:
        result = train_run(cfg, progress=not args.quiet)
    except DatasetMissingError as exc:
        raise DatasetMissingError(f"{exc} (--set dataset.download=true)") from None
    print(format_metrics(result))
    if result.status != "complete":
        print(f"bsnn-bench: run failed: {result.error}", file=sys.stderr)
        return 1
    return 0
