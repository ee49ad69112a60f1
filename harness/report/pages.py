"""The report's pages: report.md and the self-contained index.html of one study.

Both open with what a reader needs first: the verdict, the recommendation with its
justification, the contrasts figure and the main-effects table; then the other figures, the
other tables (long ones collapsed), the study's details and its failed runs.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from harness.report.formats import Column, html_table, markdown_table, md_escape
from harness.report.header import failed_runs, header

#: Tables longer than this are collapsed (<details>) in both documents.
COLLAPSE_ROWS = 12

_CSS = """*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:64em;padding:0 1em;
line-height:1.4;color:#222}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em}
.meta{color:#555;margin-top:0}
.verdict{border-left:4px solid #2a6f97;background:#f1f7fb;padding:.4em 1em;margin:1em 0}
.verdict h3{margin:.5em 0 .2em;font-size:1em}.verdict ul{margin:.2em 0 .6em}
.recommend{border-left:4px solid #3a7d44;background:#f2f8f2;padding:.5em 1em;margin:1em 0}
.table{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:.9em}
th,td{border-bottom:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{border-bottom:2px solid #666}.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
.partial{background:#fff3cd;border:1px solid #e0c060;padding:.6em}
.note{color:#444;font-size:.9em}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{color:#444;font-size:.9em}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600}"""


def _tables(report: StudyReport) -> tuple[ReportTable | None, list[ReportTable]]:
    shown = [t for t in report.tables if t.in_document]
    lead = next((t for t in shown if t.name == report.lead_table), None)
    return lead, [t for t in shown if t is not lead]


def _figures(report: StudyReport) -> tuple[ReportFigure | None, list[ReportFigure]]:
    lead = next((f for f in report.figures if f.name == report.lead_figure), None)
    return lead, [f for f in report.figures if f is not lead]


def _meta(report: StudyReport, h: Mapping[str, Any]) -> str:
    items = dict(h["items"])
    return " · ".join(v for v in (report.study, items.get("Design"), items.get("Runs"),
                                  f"compared metric: {report.metric}") if v)


def render_markdown(report: StudyReport, png_names: Mapping[str, str]) -> str:
    h = header(report)
    m = md_escape
    out = [f"# Study report: {m(report.study)}", "", m(_meta(report, h)), ""]
    if h["partial"]:
        out += [f"> **{m(h['partial'])}**", ""]
    if report.verdicts:
        out += ["## What this study shows", ""] + [f"- {m(v)}" for v in report.verdicts] + [""]
    if report.summary:
        out += [f"**Recommendation.** {m(report.summary)}", ""]
    if report.justification:
        out += [m(report.justification), ""]
    lead_fig, figures = _figures(report)
    lead, tables = _tables(report)

    def figure(f: ReportFigure) -> list[str]:
        if f.name not in png_names:
            return [f"{m(f.title)}: PNG not written (see index.html, or --format png).", ""]
        return [f"![{m(f.title)}]({png_names[f.name]})", "", f"Figure: {m(f.caption or f.title)}",
                ""]

    def table(t: ReportTable, level: str = "##", collapse: bool = True) -> list[str]:
        body = [markdown_table(t.frame, t.columns, accuracy=report.accuracy)]
        if t.note:
            body = [m(t.note), "", *body]
        if collapse and len(t.frame) > COLLAPSE_ROWS:
            return [f"<details><summary>{html.escape(t.title)} ({len(t.frame)} rows)"
                    "</summary>", "", *body, "</details>", ""]
        return [f"{level} {m(t.title)}", "", *body, ""]

    if lead_fig:
        out += figure(lead_fig)
    if lead:
        out += table(lead, collapse=False)  # the first screen is never folded away
    if report.design:
        out += ["## Design", ""] + [f"  - {m(x.strip())}" if x.startswith("  ") else
                                    f"- {m(x)}" for x in report.design] + [""]
    if not report.tables:
        out += ["_No complete runs yet: no tables or figures._", ""]
    if figures:
        out += ["## Figures", ""]
        for f in figures:
            out += [f"### {m(f.title)}", "", *figure(f)]
    if tables:
        out += ["## More tables", ""]
        for t in tables:
            out += table(t, "###")
    out += ["## Study details", "", "<details><summary>Study, machines, versions, spec"
            "</summary>", ""]
    out += [f"- **{k}:** {m(v)}" for k, v in h["items"]]
    out += ["- **Machines:** " + (m("; ".join(h["machines"])) or "not recorded"),
            "- **Package versions:** " + (m("; ".join(h["versions"])) or "not recorded"),
            "", "```yaml", h["spec"].rstrip("\n").replace("```", "` ` `"), "```", "",
            "</details>", ""]
    failed = failed_runs(report.runs)
    out += ["## Failed runs", ""]
    if failed.empty:
        out += ["None.", ""]
    for _, r in failed.iterrows():
        out += [f"### run {r['run_id']}: {m(str(r['run_key']))}", "", "```text",
                str(r["error"]).replace("```", "` ` `").rstrip("\n"), "```", ""]
    return "\n".join(out)


def render_html(report: StudyReport) -> str:
    h = header(report)
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>Study report: {e(report.study)}</title>", f"<style>{_CSS}</style>",
           "</head>", "<body>", f"<h1>Study report: {e(report.study)}</h1>",
           f'<p class="meta">{e(_meta(report, h))}</p>']
    if h["partial"]:
        out.append(f'<p class="partial"><strong>{e(h["partial"])}</strong></p>')
    if report.verdicts:
        out.append('<section class="verdict"><h2>What this study shows</h2><ul>'
                   + "".join(f"<li>{e(v)}</li>" for v in report.verdicts) + "</ul></section>")
    if report.summary:
        out.append(f'<div class="recommend"><p><strong>Recommendation.</strong> '
                   f"{e(report.summary)}</p>"
                   + (f"<p>{e(report.justification)}</p>" if report.justification else "")
                   + "</div>")
    lead_fig, figures = _figures(report)
    lead, tables = _tables(report)

    def figure(f: ReportFigure) -> str:
        data = base64.b64encode(f.png).decode("ascii")
        return (f'<figure><img alt="{e(f.title)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(f.caption or f.title)}</figcaption></figure>")

    def table(t: ReportTable, tag: str = "h2", collapse: bool = True) -> str:
        body = ((f'<p class="note">{e(t.note)}</p>' if t.note else "")
                + html_table(t.frame, t.columns, accuracy=report.accuracy))
        if collapse and len(t.frame) > COLLAPSE_ROWS:
            return (f"<details><summary>{e(t.title)} ({len(t.frame)} rows)</summary>{body}"
                    "</details>")
        return f"<{tag}>{e(t.title)}</{tag}>{body}"

    if lead_fig:
        out.append(figure(lead_fig))
    if lead:
        out.append(table(lead, collapse=False))
    if report.design:
        out.append("<h2>Design</h2>" + _html_lines(report.design))
    if not report.tables:
        out.append("<p><em>No complete runs yet: no tables or figures.</em></p>")
    if figures:
        out.append("<h2>Figures</h2>")
        out += [f"<h3>{e(f.title)}</h3>{figure(f)}" for f in figures]
    if tables:
        out.append("<h2>More tables</h2>")
        out += [table(t, "h3") for t in tables]
    out += ["<h2>Study details</h2>", "<details><summary>Study, machines, versions, spec"
            "</summary>", "<ul>"]
    out += [f"<li><strong>{e(k)}:</strong> {e(v)}</li>" for k, v in h["items"]]
    out.append("<li><strong>Machines:</strong> " + (e("; ".join(h["machines"]))
                                                    or "not recorded") + "</li>")
    out.append("<li><strong>Package versions:</strong> " + (e("; ".join(h["versions"]))
                                                            or "not recorded") + "</li>")
    out += ["</ul>", f"<pre>{e(h['spec'])}</pre>", "</details>", "<h2>Failed runs</h2>"]
    failed = failed_runs(report.runs)
    if failed.empty:
        out.append("<p>None.</p>")
    for _, r in failed.iterrows():
        out.append(f"<h3>run {r['run_id']}: {e(str(r['run_key']))}</h3>")
        out.append(f"<pre>{e(str(r['error']))}</pre>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)

def _html_lines(lines: Sequence[str]) -> str:
    """A list of lines, those indented by two spaces nested under the line above."""
    out, nested = ["<ul>"], False
    for x in lines:
        sub = x.startswith("  ")
        if sub and not nested:
            out[-1] = out[-1].removesuffix("</li>")
            out.append("<ul>")
        elif nested and not sub:
            out.append("</ul></li>")
        nested = sub
        out.append(f"<li>{html.escape(x.strip())}</li>")
    return "".join(out + (["</ul></li>"] if nested else []) + ["</ul>"])


_PENDING = ("pending", "running", "interrupted")


@dataclasses.dataclass
class ReportTable:
    name: str
    title: str
    frame: pd.DataFrame
    note: str = ""
    #: What the documents and the LaTeX file show (the CSV keeps every column); None: all.
    columns: Sequence[Column | str] | None = None
    #: Written as .csv/.tex (grids of every factor pair are shown in the documents only).
    as_file: bool = True
    #: Shown in report.md / index.html.
    in_document: bool = True


@dataclasses.dataclass
class ReportFigure:
    name: str
    title: str
    png: bytes
    #: The same figure as vector PDF (b"" when not drawn).
    pdf: bytes = b""
    #: What the figure shows and how to read it (default: the title).
    caption: str = ""


@dataclasses.dataclass
class StudyReport:
    study: str
    info: dict[str, Any]
    runs: pd.DataFrame
    metric: str
    tables: list[ReportTable]
    figures: list[ReportFigure]
    #: The recommendation in words (empty until a run is complete).
    summary: str = ""
    #: Why that recommendation (the evidence behind it).
    justification: str = ""
    #: The first screen: one sentence per factor (harness.report.verdict).
    verdicts: list[str] = dataclasses.field(default_factory=list)
    #: The design section's lines (a fractional design's alias structure; a line indented by
    #: two spaces belongs to the one above); empty: no section.
    design: list[str] = dataclasses.field(default_factory=list)
    #: Names of the figure and the table shown first.
    lead_figure: str = "contrasts"
    lead_table: str = "main_effects"

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(self.runs["status"]))

    @property
    def accuracy(self) -> bool:
        """Whether the compared metric is an accuracy (shown in percentage points)."""
        return "acc" in self.metric
