"""One number format for everything a reader sees (documents, LaTeX, terminal).

Accuracies are shown in percentage points with one decimal (``84.6``), differences of accuracies
with their sign (``+1.2``), p-values in scientific notation with two significant digits
(``2.9e-14``), counts as integers, costs and other quantities with three significant digits.
CSV files keep full-precision fractions: only what a reader sees is rounded.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["ACCURACY_NOTE", "KINDS", "column_kind", "fmt", "interval"]

ACCURACY_NOTE = ("Accuracies and their differences in percentage points, one decimal; "
                 "p-values with two significant digits.")

#: Display kinds: text, acc (fraction -> points), diff (signed points), p, count, num.
KINDS = ("text", "acc", "diff", "p", "count", "num", "bool")

_ACC = {"mean", "std", "ci_low", "ci_high", "min", "max", "recommended_mean", "reference_mean",
        "best_mean"}
_DIFF = {"diff", "diff_ci_low", "diff_ci_high", "diff_vs_reference", "loss", "loss_ci_low",
         "loss_ci_high", "half_width", "mde", "placebo", "threshold", "margin", "sd_seed",
         "binom_se", "seed_diff", "seed_se", "mixed_diff", "mixed_se", "mixed_ci_low",
         "mixed_ci_high", "delta"}
_P = {"p", "p_holm", "p_holm_max", "p_raw", "p_signflip", "seed_p", "mixed_p"}
_COUNT = {"runs", "n_pairs", "n_seeds", "rank", "seeds", "params"}


def column_kind(column: str, *, accuracy: bool = True) -> str:
    """The display kind of a report column by its name; ``accuracy``: the compared metric is an
    accuracy (else its means and differences are shown as plain numbers)."""
    c = str(column)
    if c in _P:
        return "p"
    if c in _COUNT:
        return "count"
    if c in _DIFF:
        return "diff" if accuracy else "num"
    if c in _ACC or c.endswith("_acc") or "_acc_" in c or c.startswith("acc"):
        return "acc" if accuracy else "num"
    return "num"


def _finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(value: Any, kind: str) -> str:
    """``value`` as text of display ``kind``; '' for a missing value, 'inf' for infinity."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if kind == "text" or isinstance(value, str):
        return str(value)
    if kind == "bool" or isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if bool(value) else "no"
    v = _finite(value)
    if v is None:
        try:
            f = float(value)
        except (TypeError, ValueError):
            return str(value)
        return "" if math.isnan(f) else ("inf" if f > 0 else "-inf")
    if kind == "acc":
        return f"{100 * v:.1f}"
    if kind == "diff":
        text = f"{100 * v:+.1f}"
        return "0.0" if text in ("+0.0", "-0.0") else text
    if kind == "p":
        return f"{v:.1e}"
    if kind == "count":
        return f"{int(round(v)):d}"
    if v == 0:
        return "0"
    if abs(v) >= 1e6:
        return f"{v:.2e}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def interval(low: Any, high: Any, kind: str = "diff") -> str:
    """'[-1.5, +0.3]' in ``kind``; '' when either end is missing."""
    lo, hi = fmt(low, kind), fmt(high, kind)
    return f"[{lo}, {hi}]" if lo and hi else ""
