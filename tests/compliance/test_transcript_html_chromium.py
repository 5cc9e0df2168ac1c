"""The HTML transcript as a person sees it: rendered by headless Chromium (Debian's package, driven through
Playwright), screenshot taken, no console error, no request beyond the page itself, every value escaped."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Error, Request, sync_playwright

from pipeline.reports.transcript import LearnerTranscripts, LicenceTranscript
from pipeline.reports.transcript_render import as_html
from reconcile.compliance.evaluate import evaluate
from reconcile.compliance.roster import RosterEntry
from tests.compliance.builders import credit, profile

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOSTILE_TITLE = "<script>console.error('injected')</script>Ethics & <b>Bias</b>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

BOARD = profile(
    """
    cycle_months = 24

    [[requirements]]
    id = "total"
    name = "CME credits per cycle"
    credit_types = ["AMA_PRA_1", "AMA_PRA_2"]
    minimum = 20
    caps = { AMA_PRA_2 = 1 }

    [[requirements]]
    id = "ethics"
    name = "Ethics and professional responsibility"
    credit_types = ["AMA_PRA_1"]
    topics = ["ethics"]
    minimum = 2

    [[requirements]]
    id = "bias"
    name = "Implicit bias"
    credit_types = ["AMA_PRA_1"]
    topics = ["implicit-bias"]
    minimum = 1
    """
)


def a_transcript() -> LearnerTranscripts:
    expires = date(2027, 1, 31)
    credits = [
        credit(date(2026, 3, 2), "2.00", tags=("ethics",)),
        credit(date(2026, 6, 9), "4.50", tags=("cardiology",)),
        credit(date(2026, 9, 1), "2.00", "AMA_PRA_2"),
    ]
    credits.append(replace(credit(date(2026, 10, 1), "1.00", tags=("implicit-bias",)), activity_title=HOSTILE_TITLE))
    entry = RosterEntry(line=2, profession="MD", licence_expires=expires, licence_state="CA", employee_id="E-7")
    transcript = evaluate(BOARD, expires, credits, date(2026, 11, 23))
    return LearnerTranscripts("b2c4bbaa-5eec-56cf-ba9f-e6a976654b17", [LicenceTranscript(entry, transcript)])


@pytest.fixture(scope="module")
def chromium() -> str:
    """Installed by `make test` (its `chromium` prerequisite). Missing here is a set-up failure, not a skip."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("headless Chromium is missing: run `make chromium` (apt-get install chromium chromium-driver)")
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))


def test_given_a_transcript_page_when_chromium_renders_it_then_it_shows_every_requirement_without_errors(
    chromium: str, tmp_path: Path
) -> None:
    learner = a_transcript()
    page_file = tmp_path / "transcript.html"
    page_file.write_text(as_html(learner), encoding="utf-8")
    screenshot = tmp_path / "transcript.png"
    problems: list[str] = []
    requests: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})

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
            page.screenshot(path=str(screenshot), full_page=True)
            text = page.inner_text("body")
            bars = page.locator("[role=progressbar]")
            progress = [bars.nth(i).get_attribute("aria-valuenow") for i in range(bars.count())]
            scripts = page.locator("script").count()
        finally:
            browser.close()

    assert problems == []
    assert requests == [page_file.as_uri()]  # self-contained: no stylesheet, font, image or script fetched
    shot = screenshot.read_bytes()
    assert shot.startswith(PNG_SIGNATURE) and len(shot) > 10_000
    for requirement in BOARD.requirements:
        assert requirement.name in text
    assert progress == ["42", "100", "100"]  # 8.5 of 20 (2 + 4.5 + Category 2 capped at 1 + 1), then met
    assert HOSTILE_TITLE in text and scripts == 0
    assert "Example profile: verify against the board's current rules" in text
    assert "at risk" in text and "69 days to the deadline" in text
