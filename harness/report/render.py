"""Assemble one study's report from the database and write it as Markdown, HTML, CSV, LaTeX, PNG.

Study, factor and level names are data: they are written verbatim (escaped for the format at
hand: HTML entities, LaTeX escapes, ``\\|`` inside Markdown table cells) and never become paths.
A study's folder is its name when that is already a plain file name, otherwise a slug of it plus
a short hash of the full name, and every file is checked to land inside the output folder.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import Engine

from harness.errors import StorageError
from harness.report import figures as figs
from harness.report import tables as tbl
from harness.report.stats import ALPHA, MIN_WILCOXON_PAIRS, N_BOOTSTRAP
from harness.results import curves_frame, runs_frame, study_info

__all__ = [
    "FORMATS",
    "ReportFigure",
    "ReportTable",
    "StudyReport",
    "build_report",
    "study_dirname",
    "write_report",
]

FORMATS = ("md", "html", "csv", "tex", "png")
_PENDING = ("pending", "running", "interrupted")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                     *(f"lpt{i}" for i in range(10))}

STATS_NOTE = (f"Means over complete runs; 95% CI: percentile bootstrap of the mean "
              f"({N_BOOTSTRAP} resamples, fixed seed). Differences are paired (same other levels "
              f"and seed): Wilcoxon signed-rank with at least {MIN_WILCOXON_PAIRS} pairs, "
              f"paired t below (the test column says which); p_holm: Holm-corrected over the "
              f"table; significant: p_holm < {ALPHA}. Means of the other metrics are over the runs "
              "where they are finite.")


@dataclasses.dataclass
class ReportTable:
    name: str
    title: str
    frame: pd.DataFrame
    note: str = ""
    #: Columns of the LaTeX version (a paper table must fit a column); None: all.
    tex_columns: Sequence[str] | None = None
    #: Written as .csv/.tex (grids of every factor pair are shown in the documents only).
    as_file: bool = True
    #: Shown in report.md / index.html.
    in_document: bool = True


@dataclasses.dataclass
class ReportFigure:
    name: str
    title: str
    png: bytes


@dataclasses.dataclass
class StudyReport:
    study: str
    info: dict[str, Any]
    runs: pd.DataFrame
    metric: str
    tables: list[ReportTable]
    figures: list[ReportFigure]
    #: Best practice in words (empty until a run is complete).
    summary: str = ""

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(self.runs["status"]))


def study_dirname(name: str) -> str:
    """A file-system-safe folder name for a study: the name itself when it is plain ASCII
    letters, digits, ``_.-`` (not starting with a dot), else a slug plus 10 hex of its SHA-256."""
    if _PLAIN_NAME.fullmatch(name) and name.lower().split(".")[0] not in _WINDOWS_RESERVED:
        return name
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-")[:40] or "study"
    return f"{slug}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:10]}"


# -- building -------------------------------------------------------------------------------

def _grid_frame(grid: pd.DataFrame) -> pd.DataFrame:
    corner = f"{grid.index.name} \\ {grid.columns.name}"
    out = grid.copy()
    out.index = out.index.rename(corner)
    out.columns = out.columns.rename(None)
    return out.reset_index()


def build_report(engine: Engine | str | None, study: str, *, metric: str = "test_acc",
                 top_k: int = 10, figures: bool = True) -> StudyReport:
    """Compute every table (and with ``figures``, every figure) of ``study``; nothing is
    written."""
    info = study_info(engine, study)
    runs = runs_frame(engine, study)
    report = StudyReport(study, info, runs, metric, [], [])
    complete = runs[runs["status"] == "complete"]
    if complete.empty:
        return report
    if metric not in runs.columns or not np.isfinite(complete[metric].astype(float)).any():
        known = ", ".join(runs.attrs.get("metrics", [])) or "none"
        raise tbl.ReportError(f"study {study!r}: no complete run recorded metric {metric!r} "
                              f"(metrics: {known})")
    lv = tbl.study_factors(runs)
    add = report.tables.append
    effects = tbl.main_effects(runs, metric=metric)
    add(ReportTable("main_effects", f"Main effects on {metric}", effects, STATS_NOTE,
                    ["factor", "level", "runs", "mean", "ci_low", "ci_high", "diff", "test",
                     "p_holm", *tbl.EXTRA_METRICS]))
    add(ReportTable("ablation", f"One-at-a-time ablation of {metric} (baseline = every "
                    f"reference level; one change at a time)",
                    tbl.ablation(runs, metric=metric),
                    "Differences are paired by seed with the baseline. " + STATS_NOTE,
                    ["change", "runs", "mean", "ci_low", "ci_high", "diff", "diff_ci_low",
                     "diff_ci_high", "p_holm"]))
    pairs = [(a, b) for i, a in enumerate(lv) for b in list(lv)[i + 1:]]
    callout = ("binarization", "optimizer") if {"binarization", "optimizer"} <= set(lv) else None
    grids = {pair: tbl.interaction_grid(runs, *pair, metric=metric)
             for pair in ([callout] if callout else []) + pairs}
    if callout:
        add(ReportTable("interaction_binarization_optimizer",
                        f"Binarization x optimizer: mean {metric}", _grid_frame(grids[callout]),
                        "The hybrid optimizer's claim is about binary weights: compare its "
                        "column across binarization rows."))
    if pairs:
        add(ReportTable("interactions", f"Interactions: mean {metric} over every pair of "
                        f"factors", tbl.interactions(runs, metric=metric), in_document=False))
        for a, b in pairs:
            if (a, b) != callout:
                add(ReportTable(f"interaction_{a}_{b}", f"{a} x {b}: mean {metric}",
                                _grid_frame(grids[a, b]), as_file=False))
    add(ReportTable("top_configurations", f"Top {top_k} configurations by mean {metric} "
                    f"(over seeds)", tbl.top_configurations(runs, metric=metric, k=top_k)))
    bn = tbl.bn_vs_shift_bn(runs)
    if len(bn) and bn["runs"].sum() > 0:
        add(ReportTable("bn_vs_shift_bn", "BN vs shift-BN at inference: test_acc - "
                        "test_acc_shift_bn over runs with BN", bn,
                        "loss > 0: power-of-two BN scales cost accuracy. Paired over runs; "
                        "CI: bootstrap of the mean loss."))
    add(ReportTable("cost", "Cost per binarization level and architecture",
                    tbl.cost(runs, metric=metric),
                    "Weight memory in bits and as a ratio of fp32; operations and energy per "
                    "inference sample."))
    practice = tbl.best_practice(runs, metric=metric)
    versus = tbl.recommended_vs_baseline(runs, practice, metric=metric)
    report.summary = tbl.best_practice_summary(practice, versus, metric=metric)
    add(ReportTable("best_practice", f"Best practice per factor ({metric})", practice,
                    report.summary + " The best level is recommended where it is "
                    "significantly better than every other level (paired tests, Holm over all "
                    "factors); otherwise the cheapest level among those not significantly "
                    "worse (weight memory, energy, synops, training time; then the "
                    "reference).",
                    ["factor", "recommended", "decision", "reference", "diff_vs_reference"]))
    add(ReportTable("recommended_vs_baseline", "Recommended combination against the baseline",
                    versus,
                    "Paired by seed. A combination the study never ran shows 0 runs."))

    if not figures:
        return report

    def add_figure(name: str, title: str, fig: Any) -> None:
        if fig is not None:
            report.figures.append(ReportFigure(name, title, figs.png_bytes(fig)))

    add_figure("main_effects", f"Main effects on {metric}",
               figs.main_effects_figure(effects, metric=metric))
    curves = curves_frame(engine, study, "val_acc", runs=complete)
    opt = "optimizer" if "optimizer" in lv else None
    add_figure("learning_curves", "Validation accuracy" + (" per optimizer level" if opt else ""),
               figs.learning_curves(curves, complete, factor=opt,
                                    levels=lv.get("optimizer"), metric="val_acc"))
    heat = callout or (pairs[0] if pairs else None)
    if heat:
        add_figure("interaction_heatmap", f"{heat[0]} x {heat[1]}: mean {metric}",
                   figs.interaction_heatmap(grids[heat], metric=metric))
    add_figure("pareto", f"{metric} against weight memory and synaptic operations",
               figs.pareto_figure(runs, lv, metric=metric))
    return report


# -- cell formatting --------------------------------------------------------------------------

def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if column.startswith("p_") or column == "p":
            return f"{v:.3g}"
        if abs(v) >= 1e4:
            return f"{v:,.0f}" if abs(v) < 1e12 else f"{v:.3e}"
        return f"{v:.4g}"
    return str(value)


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> Iterable[list[str]]:
    for _, row in frame[list(columns)].iterrows():
        yield [_cell(row[c], str(c)) for c in columns]


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    if not cols:
        return "_(empty)_\n"
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(
        frame[c]) for c in cols]
    lines = ["| " + " | ".join(_md_escape(str(c)) for c in cols) + " |",
             "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_md_escape(v) for v in r) + " |"
              for r in _rows(frame, [str(c) for c in cols])]
    if frame.empty:
        lines.append("| " + " | ".join("" for _ in cols) + " |")
    return "\n".join(lines) + "\n"


def html_table(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in frame.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>\n"
                   for r in _rows(frame, cols))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "\n": " ", "\r": " "}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def latex_table(frame: pd.DataFrame, title: str, columns: Sequence[str] | None = None) -> str:
    cols = [c for c in (columns or frame.columns) if c in frame.columns]
    align = "".join("r" if pd.api.types.is_numeric_dtype(frame[c])
                    and not pd.api.types.is_bool_dtype(frame[c]) else "l" for c in cols)
    lines = [r"% booktabs table generated by bsnn-bench report; needs \usepackage{booktabs}",
             r"\begin{table}[t]", r"\centering", rf"\caption{{{tex_escape(title)}}}",
             rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(tex_escape(str(c)) for c in cols) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(v) for v in r) + r" \\" for r in _rows(frame, cols)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


# -- header ---------------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d} ({seconds:.1f} s)"


def _status_line(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    pending = sum(counts.get(s, 0) for s in _PENDING)
    parts = [f"{counts.get('complete', 0)} complete", f"{counts.get('failed', 0)} failed",
             f"{pending} pending"]
    detail = [f"{counts[s]} {s}" for s in ("running", "interrupted") if counts.get(s)]
    others = [f"{n} {s}" for s, n in sorted(counts.items())
              if s not in ("complete", "failed", *_PENDING)]
    text = f"{total} runs: " + ", ".join(parts)
    if detail:
        text += f" (of which {', '.join(detail)})"
    if others:
        text += ", " + ", ".join(others)
    return text


def _machines(runs: pd.DataFrame) -> list[str]:
    have = runs[runs["host"].notna() | runs["device"].notna()]
    pairs = Counter(zip(have["host"].fillna("?"), have["device"].fillna("?")))
    return [f"{h} ({d}): {n} runs" for (h, d), n in sorted(pairs.items())]


def _versions(runs: pd.DataFrame) -> list[str]:
    seen: dict[str, Counter[str]] = {}
    for v in runs["versions"]:
        if isinstance(v, Mapping):
            for k, val in v.items():
                seen.setdefault(str(k), Counter())[json.dumps(val) if not isinstance(val, str)
                                                   else val] += 1
    return [f"{k} {', '.join(sorted(c))}" for k, c in seen.items()]


def _header(report: StudyReport) -> dict[str, Any]:
    runs, info = report.runs, report.info
    spec = info["spec"] if isinstance(info["spec"], Mapping) else {}
    counts = report.counts
    total = sum(counts.values())
    complete = counts.get("complete", 0)
    wall = runs["wall_time_s"].astype(float)
    partial = None
    pending = sum(counts.get(s, 0) for s in _PENDING)
    failed = counts.get("failed", 0)
    if pending or not total:
        partial = (f"Partial study: {complete} of {total} runs complete, {failed} failed, "
                   f"{pending} pending. Tables use the complete runs only.")
    elif complete < total:
        partial = (f"Finished with {total - complete} of {total} runs not complete ({failed} "
                   f"failed, listed at the end). Tables use the complete runs only.")
    finished = runs["finished_at"].dropna()
    return {
        "partial": partial,
        "items": [
            ("Study", info["name"]),
            ("Design", str(info["design"])),
            ("Dataset", _compact(spec.get("dataset"))),
            ("Model", _compact(spec.get("model"))),
            ("Runs", _status_line(counts)),
            ("Total compute time", _duration(float(wall[np.isfinite(wall)].sum()))),
            ("Compared metric", report.metric),
            ("Created", str(info["created_at"])),
            ("Last run finished", str(max(finished)) if len(finished) else "none yet"),
        ],
        "machines": _machines(runs),
        "versions": _versions(runs),
        "spec": yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100),
    }


def _compact(obj: Any) -> str:
    if obj is None:
        return "default"
    return json.dumps(obj, ensure_ascii=False, sort_keys=False, default=str)


def _failed(runs: pd.DataFrame) -> pd.DataFrame:
    failed = runs[runs["status"] == "failed"]
    return failed[["run_id", "run_key", "error"]].fillna({"error": ""})


# -- documents --------------------------------------------------------------------------------

def render_markdown(report: StudyReport, png_names: Mapping[str, str]) -> str:
    h = _header(report)
    out = [f"# Study report: {_md_escape(report.study)}", ""]
    if h["partial"]:
        out += [f"> **{h['partial']}**", ""]
    if report.summary:
        out += [f"**Best practice.** {_md_escape(report.summary)}", ""]
    out += [f"- **{k}:** {_md_escape(v)}" for k, v in h["items"]]
    out += ["- **Machines:** " + (_md_escape("; ".join(h["machines"])) or "not recorded"),
            "- **Package versions:** " + (_md_escape("; ".join(h["versions"])) or "not recorded"),
            "", "## Study spec", "", "```yaml", h["spec"].rstrip("\n").replace("```", "` ` `"),
            "```", ""]
    if not report.tables:
        out += ["_No complete runs yet: no tables or figures._", ""]
    for i, t in enumerate((t for t in report.tables if t.in_document), start=1):
        out += [f"## {i}. {_md_escape(t.title)}", ""]
        if t.note:
            out += [_md_escape(t.note), ""]
        out += [markdown_table(t.frame), ""]
    if report.figures:
        out += ["## Figures", ""]
        for f in report.figures:
            out += [f"### {_md_escape(f.title)}", ""]
            if f.name in png_names:
                out += [f"![{_md_escape(f.title)}]({png_names[f.name]})", ""]
            else:
                out += ["(PNG not written: see index.html, or report with --format png.)", ""]
    failed = _failed(report.runs)
    out += ["## Failed runs", ""]
    if failed.empty:
        out += ["None.", ""]
    for _, r in failed.iterrows():
        out += [f"### run {r['run_id']}: {_md_escape(str(r['run_key']))}", "", "```text",
                str(r["error"]).replace("```", "` ` `").rstrip("\n"), "```", ""]
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border-bottom:1px solid #ccc;padding:.2em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap}
.partial{background:#fff3cd;border:1px solid #e0c060;padding:.6em}
img{max-width:100%}"""


def render_html(report: StudyReport) -> str:
    h = _header(report)
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>Study report: {e(report.study)}</title>", f"<style>{_CSS}</style>",
           "</head>", "<body>", f"<h1>Study report: {e(report.study)}</h1>"]
    if h["partial"]:
        out.append(f'<p class="partial"><strong>{e(h["partial"])}</strong></p>')
    if report.summary:
        out.append(f"<p><strong>Best practice.</strong> {e(report.summary)}</p>")
    out.append("<ul>")
    out += [f"<li><strong>{e(k)}:</strong> {e(v)}</li>" for k, v in h["items"]]
    out.append("<li><strong>Machines:</strong> " + (e("; ".join(h["machines"]))
                                                    or "not recorded") + "</li>")
    out.append("<li><strong>Package versions:</strong> " + (e("; ".join(h["versions"]))
                                                            or "not recorded") + "</li>")
    out += ["</ul>", "<h2>Study spec</h2>", f"<pre>{e(h['spec'])}</pre>"]
    if not report.tables:
        out.append("<p><em>No complete runs yet: no tables or figures.</em></p>")
    for i, t in enumerate((t for t in report.tables if t.in_document), start=1):
        out.append(f"<h2>{i}. {e(t.title)}</h2>")
        if t.note:
            out.append(f"<p>{e(t.note)}</p>")
        out.append(html_table(t.frame))
    if report.figures:
        out.append("<h2>Figures</h2>")
        for f in report.figures:
            data = base64.b64encode(f.png).decode("ascii")
            out.append(f'<figure><img alt="{e(f.title)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{e(f.title)}</figcaption></figure>")
    out.append("<h2>Failed runs</h2>")
    failed = _failed(report.runs)
    if failed.empty:
        out.append("<p>None.</p>")
    for _, r in failed.iterrows():
        out.append(f"<h3>run {r['run_id']}: {e(str(r['run_key']))}</h3>")
        out.append(f"<pre>{e(str(r['error']))}</pre>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


# -- writing ----------------------------------------------------------------------------------

def _inside(root: Path, path: Path) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise StorageError(f"refusing to write {resolved}: outside the output folder {root}")
    return resolved


def write_report(report: StudyReport, out: str | Path, formats: Sequence[str] = FORMATS
                 ) -> list[Path]:
    """Write ``report`` into ``out/<study folder>/`` in the given formats; return the paths."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise tbl.ReportError(f"unknown report format {unknown[0]!r} (expected a subset of "
                              f"{','.join(FORMATS)})")
    root = Path(out).resolve()
    folder = _inside(root, root / study_dirname(report.study))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create report folder {folder}: {exc}") from None
    written: list[Path] = []

    def put(name: str, data: str | bytes) -> str:
        path = _inside(root, folder / name)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        written.append(path)
        return name

    png_names: dict[str, str] = {}
    if "png" in formats:
        png_names = {f.name: put(f"{f.name}.png", f.png) for f in report.figures}
    for t in report.tables:
        if not t.as_file:
            continue
        if "csv" in formats:
            put(f"{t.name}.csv", t.frame.to_csv(index=False))
        if "tex" in formats:
            put(f"{t.name}.tex", latex_table(t.frame, t.title, t.tex_columns))
    if "md" in formats:
        put("report.md", render_markdown(report, png_names))
    if "html" in formats:
        put("index.html", render_html(report))
    return written
