"""``bsnn-bench tricks``: every factor, level and parameter."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("tricks", help="list every factor, level and parameter")
    p.add_argument("factor", nargs="*", help="only these factors")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
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
