"""A page as a person sees it, for the HTML tests: opened from disk in headless Chromium (Debian's package, driven
through Playwright, as tests/compliance/test_transcript_html_chromium.py does), with every console error or
warning, page error and request recorded and a full-page screenshot taken."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import pytest
from playwright.sync_api import ConsoleMessage, Error, Page, Request, sync_playwright

from tests.compliance.test_transcript_html_chromium import CHROMIUM, CHROMIUM_ARGS, PNG_SIGNATURE

T = TypeVar("T")


@dataclass
class Browsed(Generic[T]):
    seen: T
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshot: bytes = b""

    def assert_clean(self, page_file: Path) -> None:
        """No console error, no page error, no request beyond the page itself, a real screenshot."""
        assert self.problems == []
        assert self.requests == [page_file.as_uri()]  # self-contained: nothing fetched, online or not
        assert self.screenshot.startswith(PNG_SIGNATURE) and len(self.screenshot) > 10_000


def chromium_path() -> str:
    """Installed by `make chromium` (a prerequisite of `make test`); missing is a set-up failure, not a skip."""
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not found:
        pytest.fail("headless Chromium is missing: run `make chromium` (apt-get install chromium chromium-driver)")
    return found


def browse(
    chromium: str, page_file: Path, inspect: Callable[[Page], T], viewport: dict[str, int] | None = None
) -> Browsed[T]:
    """Open `page_file`, let it load, screenshot it, then `inspect` the page (in the same browser session)."""
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=viewport or {"width": 1280, "height": 900})

            def console(message: ConsoleMessage) -> None:
                if message.type in ("error", "warning"):
                    problems.append(f"console {message.type}: {message.text}")

            def page_error(error: Error) -> None:
                problems.append(f"page error: {error}")

            def request(sent: Request) -> None:
                requests.append(sent.url)

            page.on("console", console)
            page.on("pageerror", page_error)
            page.on("request", request)
            page.goto(page_file.as_uri(), wait_until="load")
            shot = page_file.with_suffix(".png")
            page.screenshot(path=str(shot), full_page=True)
            seen = inspect(page)
        finally:
            browser.close()
    return Browsed(seen, problems, requests, shot.read_bytes())


# What the chart tests read from an inline SVG chart: the ids of its series and the text it shows.
SERIES_JS = """(chart) => {
  const svg = document.querySelector(`svg.chart[data-chart="${chart}"]`);
  if (!svg) return null;
  const box = svg.getBoundingClientRect();
  return {
    // matplotlib's own ids (numbered groups, hashed markers and clip paths) left out
    ids: [...svg.querySelectorAll('[id]')].map(e => e.id).filter(id => !/_\\d+$|-[mp][0-9a-f]{8,}$/.test(id)),
    text: [...svg.querySelectorAll('text')].map(t => t.textContent),
    width: box.width,
    height: box.height,
    label: svg.getAttribute('aria-label'),
  };
}"""


def path_vertices(page: Page, element_id: str) -> int:
    """How many vertices the first path of an SVG group has (a line's points)."""
    d = page.evaluate(f"document.getElementById({element_id!r}).querySelector('path').getAttribute('d')")
    return sum(1 for token in d.split() if token in ("M", "L"))
