"""The transcript's timeline and requirement bars in headless Chromium: inline SVG with the series they should have
(credits counted, needed, deadline; per requirement counted and needed), nothing loaded, no console error; and
the page printed on A4 and Letter: PDFs come out, and in print media every chart and table fits the printable
width and is kept whole on a page, no heading left at the foot of one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from pipeline.reports.transcript_render import as_html
from tests.browser import SERIES_JS, browse, chromium_path, path_vertices
from tests.compliance.test_transcript_html_chromium import BOARD, CHROMIUM_ARGS, a_transcript

# The printable width of A4 (210 mm) less the page's 12 mm side margins, at 96 px per inch; Letter is wider.
A4_PRINTABLE_PX = round((210 - 2 * 12) / 25.4 * 96)


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path()


def read_charts(page: Page) -> dict[str, Any]:
    return {
        "timeline": page.evaluate(SERIES_JS, "cycle1-timeline"),
        "requirements": page.evaluate(SERIES_JS, "cycle1-requirements"),
        "counted_vertices": path_vertices(page, "cycle1-timeline-counted"),
    }


def test_given_a_transcript_when_chromium_renders_it_then_timeline_and_requirement_bars_are_svg_with_their_series(
    chromium: str, tmp_path: Path
) -> None:
    page_file = tmp_path / "transcript.html"
    page_file.write_text(as_html(a_transcript()), encoding="utf-8")

    browsed = browse(chromium, page_file, read_charts, viewport={"width": 1000, "height": 800})

    browsed.assert_clean(page_file)
    timeline, requirements = browsed.seen["timeline"], browsed.seen["requirements"]
    assert {"cycle1-timeline-counted", "cycle1-timeline-needed", "cycle1-timeline-deadline"} <= set(timeline["ids"])
    assert {"credits counted", "needed: 20", "deadline 31 Jan 2027"} <= set(timeline["text"])
    assert timeline["label"] == "CME credits per cycle: credits counted over the cycle"
    # A step line from the cycle start: 0, then a step on each of the 4 days a credit counted, held to as-of.
    assert browsed.seen["counted_vertices"] == 2 * (1 + 4 + 1) - 1
    expected = {f"cycle1-requirements-{r.id}-{part}" for r in BOARD.requirements for part in ("counted", "needed")}
    assert expected <= set(requirements["ids"])
    assert {"8.5 of 20", "2 of 2", "1 of 1"} <= set(requirements["text"])
    assert {r.name for r in BOARD.requirements} <= set(requirements["text"])


PRINT_CHECK_JS = """() => [...document.querySelectorAll('svg.chart, table')].map(e => ({
  tag: e.tagName.toLowerCase(),
  right: e.getBoundingClientRect().right,
  breakInside: getComputedStyle(e).breakInside,
}))"""

HEADINGS_JS = "[...document.querySelectorAll('h2, h3')].map(h => getComputedStyle(h).breakAfter)"


@pytest.mark.parametrize("paper", ["A4", "Letter"])
def test_given_a_transcript_when_printed_then_a_pdf_and_every_chart_and_table_fits_and_stays_whole(
    chromium: str, tmp_path: Path, paper: str
) -> None:
    page_file = tmp_path / "transcript.html"
    page_file.write_text(as_html(a_transcript()), encoding="utf-8")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": A4_PRINTABLE_PX, "height": 1000})
            page.goto(page_file.as_uri(), wait_until="load")
            page.emulate_media(media="print")
            blocks = page.evaluate(PRINT_CHECK_JS)
            headings = page.evaluate(HEADINGS_JS)
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            pdf = page.pdf(format=paper, print_background=True)
        finally:
            browser.close()

    assert pdf.startswith(b"%PDF-") and len(pdf) > 10_000
    assert {b["tag"] for b in blocks} == {"svg", "table"}
    assert scroll_width <= A4_PRINTABLE_PX
    assert all(b["right"] <= A4_PRINTABLE_PX for b in blocks), blocks
    assert all(b["breakInside"] == "avoid" for b in blocks), blocks
    assert headings and set(headings) == {"avoid"}  # a heading is never left alone at the foot of a page
