"""The run report and a transcript as a person reads them in a browser (headless Chromium through Playwright, as
tests/compliance/test_transcript_html_chromium.py does): at 1280 px nothing of the registry diff is off-screen,
an unavailable registry says so in words, and overdue learners are told apart from those at risk."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from ledger.registry_diffs import save_registry_diff
from ledger.store import Ledger
from pipeline.reports.run_report import build_run_report, compliance_table, render_html
from pipeline.reports.transcript import AtRisk, ComplianceSummary, LearnerTranscripts, LicenceTranscript
from pipeline.reports.transcript_render import as_html
from reconcile.compliance.evaluate import evaluate
from reconcile.compliance.roster import RosterEntry
from tests.compliance.builders import credit, profile
from tests.compliance.test_transcript_html_chromium import CHROMIUM, CHROMIUM_ARGS
from tests.ops.test_report import a_night

pytestmark = pytest.mark.integration

VIEWPORT = {"width": 1280, "height": 900}
AS_OF = date(2026, 12, 1)
BOARD = profile(
    """
    cycle_months = 24

    [[requirements]]
    id = "total"
    name = "CME credits per cycle"
    credit_types = ["AMA_PRA_1"]
    minimum = 20
    """
)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Installed by `make chromium`, as for the transcript page test; missing is a set-up failure, not a skip."""
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not found:
        pytest.fail("headless Chromium is missing: run `make chromium` (apt-get install chromium chromium-driver)")
    return found


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        yield ledger


def licence(line: int, employee: str, expires: date) -> LicenceTranscript:
    entry = RosterEntry(
        line=line, profession="MD", licence_expires=expires, licence_state="CA", employee_id=employee, employer="Acme"
    )
    return LicenceTranscript(entry, evaluate(BOARD, expires, [credit(date(2026, 3, 2), "4.00")], AS_OF))


def rendered(chromium_path: str, page_file: Path) -> tuple[str, int, list[str]]:
    """The page's text, its scroll width at 1280 px, and the text of the cells off-screen to the right."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(page_file.as_uri(), wait_until="load")
            width = int(page.evaluate("document.documentElement.scrollWidth"))
            hidden = page.evaluate(
                "[...document.querySelectorAll('th, td')]"
                ".filter(c => c.getBoundingClientRect().right > window.innerWidth).map(c => c.innerText)"
            )
            return page.inner_text("body"), width, list(hidden)
        finally:
            browser.close()


def test_given_an_unavailable_registry_and_an_overdue_learner_when_the_report_is_read_at_1280px_then_both_show(
    ledger: Ledger,
    chromium: str,
    tmp_path: Path,
) -> None:
    a_night(ledger)
    counts = {"expected": 9, "drift": 3, "missing": 2, "stale": 1, "repaired": 3, "repair_failed": 0}
    save_registry_diff(ledger, "run-1", "ama-pra", counts, {"missing": ["r1", "r2"], "stale": ["r3"]})
    save_registry_diff(ledger, "run-1", "ancc", {"expected": 0, "drift": 0, "unavailable": 1}, {})
    overdue, at_risk = licence(2, "E-1", date(2026, 11, 30)), licence(3, "E-2", date(2027, 1, 31))
    summary = ComplianceSummary(
        AS_OF,
        2,
        [
            AtRisk(c.entry, f"{n}7907e6d-f49d-5752-8c14-d4a5a26e1dde", c.transcript)
            for n, c in ((2, overdue), (3, at_risk))
        ],  # type: ignore[arg-type]
        [],
    )
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(build_run_report(ledger, "run-1", "Nightly", compliance_table(summary))))

    text, width, hidden = rendered(chromium, page_file)

    assert width <= VIEWPORT["width"] and hidden == []
    assert "unavailable: its holdings could not be read, not compared" in text
    assert "records in step" in text and "missing there" in text
    assert "OVERDUE, 1 days past the deadline" in text and "at risk, 61 days left" in text


def test_given_an_overdue_learner_with_a_name_when_the_transcript_is_read_then_the_name_and_overdue_show(
    chromium: str,
    tmp_path: Path,
) -> None:
    learner = LearnerTranscripts(
        "27907e6d-f49d-5752-8c14-d4a5a26e1dde", [licence(2, "E-1", date(2026, 11, 30))], "Carmen Delgado"
    )
    page_file = tmp_path / "transcript.html"
    page_file.write_text(as_html(learner), encoding="utf-8")

    text, width, _ = rendered(chromium, page_file)

    assert "CME transcript — Carmen Delgado" in text
    assert "overdue" in text and "1 days past the deadline" in text and "at risk" not in text
    assert width <= VIEWPORT["width"]
