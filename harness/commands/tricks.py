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
    from harness.errors import UserError

    table = tricks.registry()
    unknown = [f for f in args.factor if f not in table]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(table), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UserError(f"unknown factor {unknown[0]!r}; {hint}known factors: "
                        f"{', '.join(table)}")
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
