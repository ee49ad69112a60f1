"""``bsnn-bench datasets``: every dataset, its expected layout and whether it is found here."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("datasets", help="list the datasets, their layout and whether each is "
                                        "found on this machine")
    p.add_argument("name", nargs="*", help="only these datasets")
    p.add_argument("--root", default=None,
                   help="data root to look in (default: $BSNN_DATA_DIR or "
                        "~/.cache/bsnn-bench/data)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from harness.data.catalogue import CATALOGUE, record
    from harness.data.real import data_root

    for name in args.name:
        record(name)  # an unknown name is a user error naming the known ones
    root = data_root(args.root)
    print(f"data root: {root}")
    print()
    for name, rec in CATALOGUE.items():
        if args.name and name not in args.name:
            continue
        w, h, p = rec.sensor_size
        shape = "x".join(str(d) for d in rec.input_shape)
        if rec.embedded:
            status = "embedded (generated on first use)"
        else:
            status = f"found in {root}" if rec.found(root) else "not found"
        print(f"{name}  [{status}]")
        print(f"  reader:        {rec.reader}")
        print(f"  source:        {rec.source}")
        print(f"  sensor:        {w}x{h}, {p} polarit{'y' if p == 1 else 'ies'}; "
              f"{rec.num_classes} classes")
        print(f"  default:       T={rec.time_steps}, input {shape}")
        print(f"  preprocessing: {rec.preprocessing}")
        print(f"  split:         {rec.split}")
        if rec.layout:
            print(f"  layout:        {rec.layout}")
        print()
    return 0
