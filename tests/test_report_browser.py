"""index.html in a real browser (headless Chromium) at 1,280 px: no horizontal overflow, every
image decodes, no script or console errors, and the contrasts figure comes first. Skipped, with
the reason, where no Chromium is installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from _browser import find_browser, probe
from _report_study import make_wide_study
from test_report import HOSTILE_LEVELS, HOSTILE_STUDY
from test_results import FULL_SPEC, make_study

from harness.report import report_command, study_dirname

pytestmark = pytest.mark.skipif(
    find_browser() is None,
    reason="no Chromium installed (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{root / 'results.sqlite'}"
    make_wide_study(url)
    make_study(url, dict(FULL_SPEC, study=HOSTILE_STUDY, factors={
        "binarization": ["fp32", "ste-clip"], "dataset.name": HOSTILE_LEVELS}), create=False)
    out = root / "reports"
    assert report_command(db=url, out=str(out), formats=["html"]) == 0
    return {name: out / study_dirname(name) / "index.html"
            for name in ("full_factorial", HOSTILE_STUDY)}


@pytest.mark.parametrize("study", ["full_factorial", HOSTILE_STUDY])
def test_index_html_fits_1280_px_with_every_image_and_no_errors(
        pages: dict[str, Path], study: str) -> None:
    seen = probe(pages[study], width=1280)
    assert seen["innerWidth"] == 1280
    assert seen["scrollWidth"] <= 1280, f"page is {seen['scrollWidth']} px wide: {seen['wide']}"
    assert seen["wide"] == []
    assert seen["images"] == 4 and seen["broken"] == []
    assert seen["errors"] == []
    # The first screen: the contrasts figure is the first image, within 1,000 px of the top.
    assert seen["firstFigureTop"] is not None and seen["firstFigureTop"] < 1000


def test_the_probe_sees_overflow_broken_images_and_errors(tmp_path: Path) -> None:
    """The check itself can fail: a page with a 2,000 px table, a broken image and an error."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
                    "<details><summary>s</summary><div style='width:2000px'>wide</div></details>"
                    "<img alt='broken' src='data:image/png;base64,AAAA'>"
                    "<script>console.error('boom'); undefinedFunction();</script>"
                    "</body></html>", encoding="utf-8")
    seen = probe(page, width=1280)
    assert seen["scrollWidth"] > 1280 and seen["wide"]
    assert seen["broken"] == ["broken"]
    assert any("boom" in e for e in seen["errors"])
    assert any("undefinedFunction" in e for e in seen["errors"])
