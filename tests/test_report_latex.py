"""Every .tex table of a report compiles with pdflatex in an A4 document with 2 cm margins and
fits its text width: no overfull box wider than 2 pt. Skipped, with the reason, without pdflatex.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _report_study import make_wide_study
from test_results import FULL_SPEC, make_study

from harness.report import report_command

pytestmark = pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="pdflatex is not installed (Debian: apt-get install texlive-latex-recommended)")

#: Overfull boxes up to this many points are invisible in print; wider ones stick out.
TOLERANCE_PT = 2.0

DOCUMENT = r"""\documentclass[10pt]{article}
\usepackage[a4paper,margin=2cm]{geometry}
\usepackage[T1]{fontenc}
\usepackage{booktabs,array,pdflscape}
\begin{document}
\input{%s}
\end{document}
"""


@pytest.fixture(scope="module")
def tex_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("latex")
    url = f"sqlite:///{root / 'results.sqlite'}"
    make_wide_study(url)
    long_names = dict(FULL_SPEC, study="long_names", factors={
        "binarization": ["fp32", {"name": "ste-clip", "keep_first_last_fp": True}],
        "optimizer": ["adam", {"name": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": True},
                      {"name": "hybrid", "switch_at": 0.33, "sgd_lr": 0.05, "momentum": 0.9}],
    })
    make_study(url, long_names, create=False)
    assert report_command(db=url, out=str(root / "reports"), formats=["tex"]) == 0
    files = sorted((root / "reports").rglob("*.tex"))
    assert len(files) >= 28  # 14 tables or more per study
    return files


def _compile(tex: Path) -> str:
    doc = tex.with_name(f"_doc_{tex.stem}.tex")
    doc.write_text(DOCUMENT % tex.name, encoding="utf-8")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                          cwd=tex.parent, capture_output=True, text=True, timeout=120)
    log = doc.with_suffix(".log").read_text(encoding="latin-1")
    assert proc.returncode == 0, f"{tex.name} does not compile:\n{proc.stdout[-2000:]}"
    return log


def test_every_table_compiles_and_fits_a4(tex_files: list[Path]) -> None:
    too_wide: list[str] = []
    for tex in tex_files:
        text = tex.read_text(encoding="utf-8")
        assert r"\caption{" in text and r"\label{tab:" in text and r"\toprule" in text, tex
        assert r"\_" not in text.split(r"\toprule")[1].split(r"\midrule")[0], tex  # headers
        log = _compile(tex)
        for m in re.finditer(r"Overfull \\[hv]box \(([\d.]+)pt too (wide|high)\)", log):
            if float(m.group(1)) > TOLERANCE_PT:
                too_wide.append(f"{tex.parent.name}/{tex.name}: {m.group(0)}")
    assert not too_wide, "\n".join(too_wide)


def test_labels_are_unique_across_a_report(tex_files: list[Path]) -> None:
    labels: list[Any] = [re.search(r"\\label\{([^}]*)\}", t.read_text()).group(1)
                         for t in tex_files]
    assert len(set(labels)) == len(labels)
