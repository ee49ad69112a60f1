"""``bsnn-bench migrate``: upgrade a results database written by an older bsnn-bench in place."""

from __future__ import annotations

import argparse
from typing import Any

from harness.commands import add_db_option


def register(sub: Any) -> None:
    p = sub.add_parser("migrate", help="upgrade an older results database's schema in place")
    add_db_option(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from harness.store import engine as store_engine

    url = args.db or store_engine.DEFAULT_DB
    old, new = store_engine.migrate(url)
    if old == new:
        print(f"{url}: already at results schema version {new}")
    else:
        print(f"{url}: results schema version {old} -> {new}")
    return 0
