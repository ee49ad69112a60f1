"""``bsnn-bench export``: a study run to NIR or to the bit-packed integer model, verified."""

from __future__ import annotations

import argparse
from typing import Any

from harness.commands import add_db_option


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export a study run to NIR or a packed integer model")
    add_db_option(p)
    p.add_argument("--study", required=True, help="study name")
    p.add_argument("--run", default="best",
                   help="run key, or 'best' (highest objective among runs with kept weights)")
    p.add_argument("--format", required=True, choices=("nir", "packed"), dest="fmt")
    p.add_argument("--out", required=True, help="output file (.nir / .npz)")
    p.add_argument("--samples", type=int, default=None,
                   help="nir: also write OUT.samples.npz with N test inputs and output spikes")
    p.add_argument("--nir-convention", choices=("standard", "norse"), default="standard",
                   help="standard NIR LIF (r = 1/(1-beta)); norse: r = 1, thresholds x (1-beta)")
    p.add_argument("--weights", default=None, metavar="DIR",
                   help="weights folder, if it moved since the study ran")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from harness.deploy.export import export_run

    report = export_run(args.db, args.study, args.run, fmt=args.fmt, out=args.out,
                        samples=args.samples, convention=args.nir_convention,
                        weights_dir=args.weights)
    print(report.summary())
    return 0 if report.verified else 1
