"""The report's pages: report.md and the self-contained index.html of one study."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import yaml

from harness.report.formats import _md_escape, html_table, markdown_table


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


def render_markdown(report: StudyReport, png_names: Mapping[str, str]) -> str:
    h = _header(report)
    out = [f"# Study report: {_md_escape(report.study)}", ""]
    if h["partial"]:
        out += [f"> **{h['partial']}**", ""]
    if report.verdicts:
        out += ["## What this study shows", ""]
        out += [f"- {_md_escape(v)}" for v in report.verdicts]
        out += [""]
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
    if report.verdicts:
        out.append("<h2>What this study shows</h2>")
        out.append("<ul>" + "".join(f"<li>{e(v)}</li>" for v in report.verdicts) + "</ul>")
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


_PENDING = ("pending", "running", "interrupted")


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
    #: The first screen: one sentence per factor (harness.report.verdict).
    verdicts: list[str] = dataclasses.field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(self.runs["status"]))
