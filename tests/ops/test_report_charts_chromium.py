"""The run report read in ten seconds, in headless Chromium: the outcome is the first line of the page (red for a
run that stopped), the charts are inline SVG with the series they should have — deliveries per registry (sent,
failed, pending), dead letters by reason, the trend of the last runs — the page loads nothing and logs no error,
on SQLite and PostgreSQL ledgers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page
from sqlalchemy import update

from ledger import tables as t
from ledger.runs import finish_run, start_run
from ledger.store import Ledger, utcnow
from pipeline.reports.run_glance import TREND_SERIES
from pipeline.reports.run_report import build_run_report, render_html
from tests.browser import SERIES_JS, browse, chromium_path, path_vertices
from tests.ops.test_report import a_night

pytestmark = pytest.mark.integration

RED = "rgb(180, 35, 24)"  # .headline.status-failed
EARLIER_NIGHTS = 4


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path()


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        yield ledger


def nights_then_a_stop(ledger: Ledger) -> None:
    """Earlier nights, one a day, then `a_night` (deliveries to two registries, three dead letters), which is
    recorded as having stopped part-way."""
    for n in range(EARLIER_NIGHTS):
        run_id = f"earlier-{n}"
        start_run(ledger, run_id, "nightly")
        finish_run(ledger, run_id, "succeeded", {"records_read": 10 + n, "credit_versions": n})
        with ledger.transaction() as conn:
            day = utcnow() - timedelta(days=EARLIER_NIGHTS + 1 - n)
            conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(started_at=day, finished_at=day))
    a_night(ledger)
    finish_run(ledger, "run-1", "failed", {"records_read": 6, "delivery_failed": 1})


def read_report(page: Page) -> dict[str, Any]:
    first = page.locator("body > *").first
    headline = page.locator(".headline")
    return {
        "first_class": first.get_attribute("class"),
        "headline": headline.inner_text(),
        "headline_background": headline.evaluate("e => getComputedStyle(e).backgroundColor"),
        "headline_above_title": headline.bounding_box()["y"] < page.locator("h1").bounding_box()["y"],
        "charts": {c: page.evaluate(SERIES_JS, c) for c in ("deliveries", "dead-letters", "trend")},
        "trend_points": {s: path_vertices(page, f"trend-{s}") for s in ("records_read", "credits")},
        "scroll_width": page.evaluate("document.documentElement.scrollWidth"),
    }


def test_given_a_run_that_stopped_when_its_report_is_read_in_chromium_then_red_headline_first_and_svg_charts(
    ledger: Ledger, chromium: str, tmp_path: Path
) -> None:
    nights_then_a_stop(ledger)
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(build_run_report(ledger, "run-1", "Nightly")), encoding="utf-8")

    browsed = browse(chromium, page_file, read_report)

    browsed.assert_clean(page_file)
    seen = browsed.seen
    assert seen["first_class"] == "headline status-failed" and seen["headline_above_title"]
    assert seen["headline"].startswith("FAILED: run stopped:")
    assert seen["headline_background"] == RED
    deliveries, dead_letters, trend = (seen["charts"][c] for c in ("deliveries", "dead-letters", "trend"))
    bars = {f"deliveries-{s}-{r}" for s in ("sent", "failed", "pending") for r in ("ama-pra", "ancc")}
    assert bars <= set(deliveries["ids"])
    assert {"sent", "failed", "pending", "ama-pra", "ancc"} <= set(deliveries["text"])
    assert {
        "dead-letters-REGISTRY_UNAVAILABLE",
        "dead-letters-SCHEMA_INVALID",
        "dead-letters-UNKNOWN_ACTIVITY",
    } <= set(dead_letters["ids"])
    assert {"trend-records_read", "trend-credits", "trend-dead_letters", "trend-duration_s"} <= set(trend["ids"])
    assert set(TREND_SERIES) <= set(trend["text"])
    assert "trend-records_read-flagged" in trend["ids"] and "partial or failed" in trend["text"]  # this run, red
    assert trend["label"] == f"The last {EARLIER_NIGHTS + 1} runs (by start, UTC)"
    # One point per run in the trend: the earlier nights and this one.
    assert seen["trend_points"] == {"records_read": EARLIER_NIGHTS + 1, "credits": EARLIER_NIGHTS + 1}
    assert all(0 < chart["width"] <= 1280 for chart in seen["charts"].values())
    assert seen["scroll_width"] <= 1280


def test_given_a_run_without_deliveries_or_dead_letters_when_read_then_it_says_so_and_still_shows_the_trend(
    ledger: Ledger, chromium: str, tmp_path: Path
) -> None:
    start_run(ledger, "quiet", "nightly")
    finish_run(ledger, "quiet", "succeeded", {"records_read": 0})
    page_file = tmp_path / "quiet.html"
    page_file.write_text(render_html(build_run_report(ledger, "quiet", "Nightly")), encoding="utf-8")

    browsed = browse(
        chromium,
        page_file,
        lambda page: (
            page.locator(".headline").evaluate("e => getComputedStyle(e).backgroundColor"),
            page.inner_text(".glance"),
            page.evaluate(SERIES_JS, "deliveries"),
            page.evaluate(SERIES_JS, "trend"),
        ),
    )

    browsed.assert_clean(page_file)
    background, glance, deliveries, trend = browsed.seen
    assert background != RED and background == "rgb(23, 128, 61)"  # green
    assert "No registry deliveries." in glance and "No dead letters in this run." in glance
    assert deliveries is None and trend is not None and "trend-records_read" in trend["ids"]
    assert "trend-records_read-flagged" not in trend["ids"]  # nothing to flag: it succeeded
