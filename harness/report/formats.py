"""Table formatters: Markdown, HTML and booktabs LaTeX from a data frame, with escaping.

A table is shown through its *display columns* (:class:`Column`): which source column (or pair
of columns, for an interval), under which human-readable header, in which number format
(:mod:`harness.report.numbers`). Without display columns every column is shown with a header
derived from its name. The CSV files keep every column at full precision.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Sequence

import pandas as pd

from harness.report.numbers import column_kind, fmt, interval

__all__ = ["Column", "display", "html_table", "latex_table", "markdown_table", "tex_escape",
           "TEXT_WIDTH_PT"]

#: A4 with 2 cm margins: 210 mm - 40 mm = 170 mm of text width, 257 mm of text height.
TEXT_WIDTH_PT = 170 / 25.4 * 72.27
TEXT_HEIGHT_PT = 257 / 25.4 * 72.27

HEADERS = {
    "factor": "Factor", "level": "Level", "reference": "Reference", "runs": "Runs",
    "mean": "Mean", "std": "SD", "ci_low": "95% CI low", "ci_high": "95% CI high",
    "diff": "Δ vs reference", "diff_ci_low": "Δ CI low", "diff_ci_high": "Δ CI high",
    "n_pairs": "Pairs", "n_seeds": "Seeds", "test": "Test", "statistic": "Statistic",
    "p": "p", "p_holm": "p (Holm)", "significant": "Significant", "resolved": "Resolved",
    "half_width": "CI half-width", "mde": "Resolvable Δ", "epochs_to_95pct": "Epochs to 95%",
    "spike_rate": "Spike rate", "synops_per_sample": "SynOps / sample",
    "macs_per_sample": "MACs / sample", "acs_per_sample": "ACs / sample",
    "energy_uj_per_sample": "Energy (µJ / sample)", "weight_memory_bits": "Weight memory (bit)",
    "weight_memory_ratio": "Memory vs fp32", "params": "Parameters", "arch": "Architecture",
    "binarization": "Binarization", "change": "Change", "rank": "Rank", "min": "Min",
    "max": "Max", "recommended": "Recommended", "decision": "Decision", "best": "Best level",
    "tied_levels": "Tied levels", "p_holm_max": "Max p (Holm)", "configuration": "Configuration",
    "levels": "Levels", "group": "Group", "loss": "Loss", "diff_vs_reference": "Δ vs reference",
    "recommended_mean": "Recommended mean", "reference_mean": "Reference mean",
    "test_acc": "Test acc.", "test_acc_shift_bn": "Test acc. (shift-BN)",
    "factor_a": "Factor A", "level_a": "Level A", "factor_b": "Factor B", "level_b": "Level B",
    "train_time_s": "Training time (s)", "within": "Within", "contrast": "Contrast",
    "seed_diff": "Δ (seed t)", "seed_se": "SE (seed t)", "mixed_diff": "Δ (mixed model)",
    "mixed_se": "SE (mixed)", "mixed_p": "p (mixed)", "verdict": "Verdict",
    "switched": "Switched", "switch_epoch": "Switch epoch", "best_epoch": "Best epoch",
    "share_best_before_switch": "Best before switch", "non_inferior": "Non-inferior",
    "worse": "Worse", "unresolved": "Unresolved", "seeds": "Seeds",
}


@dataclasses.dataclass(frozen=True)
class Column:
    """One displayed column: ``source`` (a column, or a (low, high) pair shown as an interval),
    its ``header`` (default: from the name), ``kind`` (default: from the name), and for LaTeX a
    paragraph ``width`` (e.g. ``0.3\\linewidth``) for a text column that may wrap."""

    source: str | tuple[str, str]
    header: str | None = None
    kind: str | None = None
    width: str | None = None
    #: Shown instead of the value in rows whose ``reference`` column is true (e.g. "reference"
    #: for the difference of the reference level from itself).
    on_reference: str | None = None


def header_of(column: str) -> str:
    if column in HEADERS:
        return HEADERS[column]
    text = str(column).replace("_", " ")
    return text[:1].upper() + text[1:]


def display(frame: pd.DataFrame, columns: Sequence[Column | str] | None = None, *,
            accuracy: bool = True) -> tuple[list[str], list[list[str]], list[bool]]:
    """Headers, rows of formatted cells, and per column whether it is numeric (right-aligned)."""
    cols = [c if isinstance(c, Column) else Column(str(c))
            for c in (columns if columns is not None else list(frame.columns))]
    cols = [c for c in cols if all(s in frame.columns for s in _sources(c))]
    headers, numeric, cells = [], [], []
    ref = _reference_rows(frame)
    for c in cols:
        if isinstance(c.source, tuple):
            lo, hi = c.source
            kind = c.kind or column_kind(lo, accuracy=accuracy)
            headers.append(c.header or "95% CI")
            cells.append(_on_ref(c, ref, [interval(a, b, kind)
                                          for a, b in zip(frame[lo], frame[hi])]))
            numeric.append(True)
            continue
        series = frame[c.source]
        is_num = (pd.api.types.is_numeric_dtype(series)
                  and not pd.api.types.is_bool_dtype(series))
        kind = c.kind or ("bool" if pd.api.types.is_bool_dtype(series) else
                          column_kind(c.source, accuracy=accuracy) if is_num else "text")
        headers.append(c.header or header_of(c.source))
        cells.append(_on_ref(c, ref, [fmt(v, kind) for v in series]))
        numeric.append(is_num and kind not in ("text", "bool"))
    rows = [list(r) for r in zip(*cells)] if cells else []
    return headers, rows, numeric


def _reference_rows(frame: pd.DataFrame) -> list[bool]:
    """Rows every other row is compared with: a true ``reference`` column, else a ``test`` of
    'reference', 'baseline' or 'best'."""
    if "reference" in frame and pd.api.types.is_bool_dtype(frame["reference"]):
        return frame["reference"].fillna(False).astype(bool).tolist()
    if "test" in frame:
        return frame["test"].isin(["reference", "baseline", "best"]).tolist()
    return [False] * len(frame)


def _on_ref(c: Column, ref: list[bool], cells: list[str]) -> list[str]:
    if c.on_reference is None:
        return cells
    return [c.on_reference if r else v for v, r in zip(cells, ref)]


def _sources(c: Column) -> tuple[str, ...]:
    return c.source if isinstance(c.source, tuple) else (c.source,)


#: Characters with a meaning anywhere in (GitHub-flavoured) Markdown inline text, backslash-
#: escaped: code spans, emphasis, links and images (no link without "["), table cell borders,
#: strikethrough, math.
_MD_PUNCT = "\\`*_[]|~$"
#: Raw HTML passes through Markdown: written as entities, which render as the characters.
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md_escape(text: str) -> str:
    """``text`` (a study, factor or level name, any data) as literal Markdown inline text: no
    raw HTML (``<script>``, ``<img onerror>``), no code, emphasis, link, table cell border or
    math, on one line."""
    out = []
    for ch in str(text):
        if ch in _MD_ENTITIES:
            out.append(_MD_ENTITIES[ch])
        elif ch in _MD_PUNCT:
            out.append("\\" + ch)
        elif ch in "\r\n":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def markdown_table(frame: pd.DataFrame, columns: Sequence[Column | str] | None = None, *,
                   accuracy: bool = True) -> str:
    headers, rows, numeric = display(frame, columns, accuracy=accuracy)
    if not headers:
        return "_(empty)_\n"
    lines = ["| " + " | ".join(md_escape(h) for h in headers) + " |",
             "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(md_escape(v) for v in r) + " |" for r in rows]
    if not rows:
        lines.append("| " + " | ".join("" for _ in headers) + " |")
    return "\n".join(lines) + "\n"


def html_table(frame: pd.DataFrame, columns: Sequence[Column | str] | None = None, *,
               accuracy: bool = True) -> str:
    headers, rows, numeric = display(frame, columns, accuracy=accuracy)
    e = html.escape

    def cls(n: bool) -> str:
        return ' class="num"' if n else ""

    head = "".join(f"<th{cls(n)}>{e(h)}</th>" for h, n in zip(headers, numeric))
    body = "".join("<tr>" + "".join(f"<td{cls(n)}>{e(v)}</td>" for v, n in zip(r, numeric))
                   + "</tr>\n" for r in rows)
    return (f'<div class="table"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}'
            "</tbody>\n</table></div>\n")


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "\n": " ", "\r": " ", "Δ": r"$\Delta$",
                "µ": r"$\mu$", "±": r"$\pm$", "×": r"$\times$", "≥": r"$\geq$",
                "≤": r"$\leq$", "−": "-"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def tex_label(name: str) -> str:
    """A LaTeX label made of letters, digits and '-' only."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") or "table"


#: Average glyph width (pt) of Computer Modern at 10 pt and each smaller size (a little above
#: the true average, to be safe), and the padding of a tabular column (2 x \tabcolsep = 12 pt):
#: enough to choose a size; the test compiles every table and checks it fits.
_SIZES = (("", 5.6), (r"\small", 5.1), (r"\footnotesize", 4.6), (r"\scriptsize", 3.9))
_PAD = 12.0
_FRACTION = re.compile(r"([0-9.]+)\\linewidth")


def _fixed(width: str | None, limit: float) -> float | None:
    m = _FRACTION.fullmatch(width or "")
    return float(m.group(1)) * limit if m else None


def _width(headers: list[str], rows: list[list[str]], glyph: float,
           fixed: list[float | None]) -> float:
    cols = list(zip(headers, *rows))
    return sum((f if f is not None else max(len(v) for v in col) * glyph) + _PAD
               for col, f in zip(cols, fixed))


def latex_table(frame: pd.DataFrame, title: str, columns: Sequence[Column | str] | None = None,
                *, label: str = "table", note: str = "", accuracy: bool = True) -> str:
    """A booktabs table that fits A4 with 2 cm margins: the largest of normal, small,
    footnote and script size whose estimated width fits the text width, else landscape
    (pdflscape), with a caption and a label. Needs booktabs (and pdflscape when landscape)."""
    cols = [c if isinstance(c, Column) else Column(str(c))
            for c in (columns if columns is not None else list(frame.columns))]
    headers, rows, numeric = display(frame, cols, accuracy=accuracy)
    shown = [c for c in cols if all(s in frame.columns for s in _sources(c))]
    size, landscape, widths = _layout(headers, rows, [None if n else c.width
                                                      for c, n in zip(shown, numeric)])
    align = "".join(rf">{{\raggedright\arraybackslash}}p{{{w}}}" if w else ("r" if n else "l")
                    for w, n in zip(widths, numeric))
    needs = "booktabs, array" + (", pdflscape" if landscape else "")
    lines = [f"% booktabs table generated by bsnn-bench report; needs \\usepackage{{{needs}}}"]
    if landscape:
        lines.append(r"\begin{landscape}")
    lines += [r"\begin{table}[tbp]", r"\centering"]
    if size:
        lines.append(size)
    lines += [rf"\caption{{{tex_escape(title)}}}", rf"\label{{tab:{tex_label(label)}}}",
              rf"\begin{{tabular}}{{@{{}}{align}@{{}}}}", r"\toprule",
              " & ".join(tex_escape(h) for h in headers) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(v) for v in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if note:
        width = r"\linewidth"
        lines.append(rf"\par\smallskip\parbox{{{width}}}{{\footnotesize {tex_escape(note)}}}")
    lines.append(r"\end{table}")
    if landscape:
        lines.append(r"\end{landscape}")
    return "\n".join(lines) + "\n"


def _layout(headers: list[str], rows: list[list[str]], widths: list[str | None]
            ) -> tuple[str, bool, list[str | None]]:
    """(size command, landscape, column widths): the largest size at which the table fits
    the portrait text width, else the landscape text height; failing both, the text columns
    wrap in paragraph columns sharing what the numbers leave in landscape at script size."""
    for limit, landscape in ((TEXT_WIDTH_PT, False), (TEXT_HEIGHT_PT, True)):
        fixed = [_fixed(w, limit) for w in widths]
        for size, glyph in _SIZES:
            if _width(headers, rows, glyph, fixed) <= limit:
                return size, landscape, widths
    size, glyph = _SIZES[-1]
    cols = list(zip(headers, *rows))
    text = [i for i, w in enumerate(widths) if w is not None or not _is_number_col(cols[i])]
    numbers = sum(max(len(v) for v in cols[i]) * glyph + _PAD
                  for i in range(len(cols)) if i not in text)
    share = max(0.05, (TEXT_HEIGHT_PT - numbers) / max(1, len(text)) - _PAD) / TEXT_HEIGHT_PT
    return size, True, [f"{share:.3f}\\linewidth" if i in text else None
                        for i in range(len(cols))]


def _is_number_col(col: tuple[str, ...]) -> bool:
    return all(re.fullmatch(r"[-+0-9.,e\[\] ]*|inf|-inf", v) for v in col[1:])
