"""``bsnn-bench show``: one run of a study: its levels, status, metrics, curves and config."""

from __future__ import annotations

import argparse
import difflib
import math
from typing import Any

from harness.commands import add_db_option

#: Eight levels of a terminal sparkline, lowest to highest.
SPARKS = "▁▂▃▄▅▆▇█"


def register(sub: Any) -> None:
    p = sub.add_parser("show", help="one run of a study: levels, metrics, curves, config")
    add_db_option(p)
    p.add_argument("--study", required=True, help="study name")
    p.add_argument("--run", required=True, metavar="RUN_KEY",
                   help="the run's key (e.g. 'binarization=fp32|optimizer=adam|seed=0') "
                        "or its id")
    p.set_defaults(func=main)


def sparkline(values: list[float]) -> str:
    """Values as block characters scaled between their min and max; non-finite ones as ' '."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return " " * len(values)
    lo, hi = min(finite), max(finite)
    span = hi - lo
    return "".join(" " if not math.isfinite(v) else
                   SPARKS[0 if span == 0 else min(7, int((v - lo) / span * 8))] for v in values)


def _find(runs: Any, wanted: str) -> Any:
    from harness.errors import UserError

    hit = runs[runs["run_key"] == wanted]
    if hit.empty and wanted.isdigit():
        hit = runs[runs["run_id"] == int(wanted)]
    if hit.empty:
        close = difflib.get_close_matches(wanted, runs["run_key"].tolist(), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"study {runs.attrs['study']!r} has no run {wanted!r} "
                        f"({len(runs)} runs{hint})")
    return hit.iloc[0]


def _value(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def main(args: argparse.Namespace) -> int:
    import yaml

    from harness.results import run_curves, runs_frame

    runs = runs_frame(args.db, args.study)
    run = _find(runs, args.run)
    factors = runs.attrs["factors"]
    out = [f"run {run['run_id']} of study {args.study!r}: {run['run_key']}",
           f"status: {run['status']}" + (f" (error: {run['error']})" if run["error"] else "")]
    if isinstance(run["wall_time_s"], float) and math.isfinite(run["wall_time_s"]):
        out.append(f"ran: {run['wall_time_s']:.1f} s on {run['host']} ({run['device']}), "
                   f"finished {run['finished_at']}")
    out += ["", "levels:"] + [f"  {f:<24} {run[f]}" for f in factors] + [f"  {'seed':<24} "
                                                                           f"{run['seed']}"]
    metrics = [m for m in runs.attrs["metrics"] if isinstance(run[m], float)
               and not math.isnan(run[m])]
    out += ["", "metrics:" if metrics else "metrics: none recorded"]
    out += [f"  {m:<24} {_value(run[m])}" for m in metrics]
    curves = run_curves(args.db, args.study, int(run["run_id"]))
    if len(curves):
        out += ["", f"curves ({len(curves)} epochs; sparkline from min to max):"]
        for name in curves.columns:
            vals = curves[name].tolist()
            finite = [v for v in vals if math.isfinite(v)]
            span = f"{_value(finite[0])} -> {_value(finite[-1])}" if finite else ""
            out.append(f"  {name:<16} {sparkline(vals)}  {span}")
        out += ["", "  epoch " + " ".join(f"{c:>12}" for c in curves.columns)]
        out += [f"  {int(e) + 1:>5} " + " ".join(f"{_value(v):>12}" for v in row)
                for e, row in zip(curves.index, curves.to_numpy())]
    if isinstance(run["config"], dict):
        out += ["", "config:", yaml.safe_dump(run["config"], sort_keys=False).rstrip()]
    print("\n".join(out))
    return 0
