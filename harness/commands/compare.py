"""``bsnn-bench compare STUDY_A STUDY_B``: two studies' main contrasts side by side."""

from __future__ import annotations

import argparse
from typing import Any

from harness.commands import add_db_option


def register(sub: Any) -> None:
    p = sub.add_parser("compare", help="two studies' main contrasts (level vs reference) "
                                       "side by side")
    p.add_argument("study_a", metavar="STUDY_A")
    p.add_argument("study_b", metavar="STUDY_B")
    add_db_option(p)
    p.add_argument("--db-b", default=None, metavar="URL",
                   help="database of STUDY_B when it is another one (default: --db)")
    p.add_argument("--metric", default="test_acc", help="metric the contrasts compare")
    p.set_defaults(func=main)


def contrasts_side_by_side(a: Any, b: Any, *, names: tuple[str, str] = ("A", "B"),
                           accuracy: bool = True) -> Any:
    """One row per (factor, level) of either main-effects frame, outer-joined: for each study
    the difference from its reference level, its 95% CI and whether it is established."""
    import pandas as pd

    from harness.report.numbers import fmt, interval

    kind = "diff" if accuracy else "num"

    def side(effects: Any) -> Any:
        flag = "resolved" if "resolved" in effects else "significant"
        rows = {}
        for r in effects.itertuples():
            key = (r.factor, r.level)
            if r.reference:
                rows[key] = ("reference", "", "")
            else:
                rows[key] = (fmt(r.diff, kind), interval(r.diff_ci_low, r.diff_ci_high, kind),
                             "yes" if getattr(r, flag) else "no")
        return rows, flag

    (ra, fa), (rb, fb) = side(a), side(b)
    # Grouped by factor (A's order, then B's new factors), levels in order of appearance.
    order = {f: i for i, f in enumerate(dict.fromkeys(f for f, _ in [*ra, *rb]))}
    keys = sorted(dict.fromkeys([*ra, *rb]), key=lambda k: order[k[0]])
    blank = ("", "", "")
    table = [(f, lv, *ra.get((f, lv), blank), *rb.get((f, lv), blank)) for f, lv in keys]
    na, nb = names
    return pd.DataFrame(table, columns=["factor", "level", f"{na} Δ", f"{na} 95% CI",
                                        f"{na} {fa}", f"{nb} Δ", f"{nb} 95% CI", f"{nb} {fb}"])


def _text_table(frame: Any) -> str:
    cols = [str(c) for c in frame.columns]
    cells = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c)
              for i, c in enumerate(cols)]
    right = [i >= 2 for i in range(len(cols))]

    def line(vals: list[str]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w)
                         for v, w, r in zip(vals, widths, right)).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths]), *map(line, cells)])


def main(args: argparse.Namespace) -> int:
    from harness.report import main_effects
    from harness.results import runs_frame

    a = main_effects(runs_frame(args.db, args.study_a), metric=args.metric)
    b = main_effects(runs_frame(args.db_b or args.db, args.study_b), metric=args.metric)
    accuracy = "acc" in args.metric
    table = contrasts_side_by_side(a, b, accuracy=accuracy)
    unit = " in percentage points" if accuracy else ""
    print(f"A = {args.study_a}, B = {args.study_b}: difference of each level from its "
          f"factor's reference in mean {args.metric}{unit}, 95% CI; blank: not in that study")
    print(_text_table(table))
    return 0
