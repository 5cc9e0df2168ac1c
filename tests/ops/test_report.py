"""The run report (pipeline/reports/run_report.py) as plain functions over a real ledger, SQLite and PostgreSQL,
no Prefect."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from ledger import tables as t
from ledger.dead_letters import DeadLetterEntry, add_dead_letters
from ledger.registry_diffs import save_registry_diff
from ledger.runs import finish_run, start_run
from ledger.store import Ledger, StoredEvent, store_events, utcnow
from pipeline.reports.run_report import (
    REGISTRY_DIFF_TITLE,
    build_run_report,
    publish_run_report,
    render_html,
    render_markdown,
)

pytestmark = [pytest.mark.integration, pytest.mark.dialect]


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        yield ledger


def event(source: str, event_id: str) -> StoredEvent:
    body = {"source": source, "event_id": event_id, "source_ref": f"row {event_id}", "kind": "COMPLETED"}
    return StoredEvent({**body, "occurred_at": utcnow()}, None, None)


def dead(stage: str, source: str, ref: str, reason_code: str, registry: str | None = None) -> DeadLetterEntry:
    return DeadLetterEntry(stage, source, ref, reason_code, "why, without values", b"{}", registry)


def delivery(ledger: Ledger, record_id: str, registry: str, state: str) -> None:
    with ledger.transaction() as conn:
        conn.execute(
            insert(t.deliveries).values(
                record_id=record_id, registry=registry, version=1, state=state, attempts=1, updated_at=utcnow()
            )
        )


def a_night(ledger: Ledger, run_id: str = "run-1") -> None:
    """A run that took 3 events from two sources, rejected 3 records and delivered to two registries; plus a
    dead letter from before the run, which its report must not count."""
    add_dead_letters(ledger, [dead("normalise", "lms-xapi", "statement:old", "SCHEMA_INVALID")])
    with ledger.transaction() as conn:
        earlier = utcnow() - timedelta(days=1)
        conn.execute(update(t.dead_letters).values(first_seen=earlier, last_seen=earlier))
    start_run(ledger, run_id, "nightly")
    with ledger.transaction() as conn:
        store_events(conn, [event("lms-xapi", "a"), event("lms-xapi", "b"), event("csv-drop", "c")])
    add_dead_letters(ledger,
        [
            dead("normalise", "lms-xapi", "statement:1", "SCHEMA_INVALID"),
            dead("reconcile", "csv-drop", "file.csv:4", "UNKNOWN_ACTIVITY"),
            dead("deliver", "ledger", "credit r3 v1", "REGISTRY_UNAVAILABLE", "ancc"),
        ]
    )
    delivery(ledger, "r1", "ama-pra", "sent")
    delivery(ledger, "r2", "ama-pra", "pending")
    delivery(ledger, "r3", "ancc", "failed")
    finish_run(ledger, run_id, "succeeded", {"records_read": 6, "delivered": 1, "delivery_failed": 1})


def test_given_a_nights_ledger_when_its_report_is_built_then_it_counts_per_source_registry_and_reason(
    ledger: Ledger,
) -> None:
    a_night(ledger)

    report = build_run_report(ledger, "run-1", "Nightly reconciliation")

    assert report.run.status == "succeeded"
    assert report.totals.rows == [
        ("source records read", "6"),
        ("deliveries to registries", "1"),
        (
            "deliveries failed (dead letters)",
            "1",
        ),
    ]
    assert report.sources.rows == [("csv-drop", "1", "0", "1"), ("lms-xapi", "2", "1", "0")]
    assert report.registries.rows == [("ama-pra", "1", "0", "1", "0"), ("ancc", "0", "1", "0", "1")]
    assert report.dead_letters.rows == [
        ("deliver", "REGISTRY_UNAVAILABLE", "1"),
        ("normalise", "SCHEMA_INVALID", "1"),
        ("reconcile", "UNKNOWN_ACTIVITY", "1"),
    ]


def test_given_a_report_when_rendered_then_markdown_and_html_carry_the_same_tables(ledger: Ledger) -> None:
    a_night(ledger)
    report = build_run_report(ledger, "run-1", "Nightly <reconciliation>")

    markdown = render_markdown(report, Path("var/reports/x.html"))
    page = render_html(report)

    for table in report.tables:
        assert f"## {table.title}" in markdown
    assert "| lms-xapi | 2 | 1 | 0 |" in markdown
    assert "`var/reports/x.html`" in markdown
    assert "<td>lms-xapi</td>" in page and '<td class="n">2</td>' in page
    assert "<reconciliation>" not in page and "Nightly &lt;reconciliation&gt;" in page


def test_given_a_stored_registry_diff_when_reported_then_it_fills_the_registry_diff_section(ledger: Ledger) -> None:
    a_night(ledger)
    without = render_markdown(build_run_report(ledger, "run-1", "Nightly"))
    counts = {"expected": 9, "drift": 3, "missing": 2, "stale": 1, "repaired": 3, "repair_failed": 0}
    save_registry_diff(ledger, "run-1", "ama-pra", counts, {"missing": ["r1", "r2"], "stale": ["r3"]})
    save_registry_diff(ledger, "run-1", "ancc", {"expected": 4, "drift": 0}, {})

    with_diff = render_markdown(build_run_report(ledger, "run-1", "Nightly"))

    assert f"## {REGISTRY_DIFF_TITLE}\n\n_this run did not reach the registry diff_" in without
    assert (
        "| registry | records in step | missing there | older version or other amount | extra there "
        "| repaired tonight | outcome |" in with_diff
    )
    assert "| ama-pra | 6 | 2 | 1 | 0 | 3 | repaired |" in with_diff
    assert "| ancc | 4 | 0 | 0 | 0 | 0 | in step with the ledger |" in with_diff


def test_given_an_unavailable_registry_when_reported_then_its_row_says_so_instead_of_zero_counts(
    ledger: Ledger,
) -> None:
    a_night(ledger)
    save_registry_diff(ledger, "run-1", "ama-pra", {"expected": 0, "drift": 0, "unavailable": 1}, {})

    markdown = render_markdown(build_run_report(ledger, "run-1", "Nightly"))

    assert "| ama-pra | - | - | - | - | - | unavailable: its holdings could not be read, not compared |" in markdown


def test_given_a_run_when_its_report_is_published_then_an_html_file_is_written_under_the_reports_dir(
    ledger: Ledger, tmp_path: Path
) -> None:
    a_night(ledger, "0f9e8d7c-run")

    markdown, path = publish_run_report(ledger.url, "0f9e8d7c-run", "Nightly reconciliation", tmp_path / "reports")

    assert path.parent == tmp_path / "reports" and path.name.startswith("nightly-") and path.suffix == ".html"
    assert "<h2>Per registry</h2>" in path.read_text(encoding="utf-8")
    assert str(path) in markdown


def test_given_an_unknown_run_when_a_report_is_asked_for_then_it_says_so(ledger: Ledger) -> None:
    with pytest.raises(LookupError, match="no run nope"):
        build_run_report(ledger, "nope", "Nightly")


def test_given_a_night_with_a_failed_delivery_when_reported_later_then_the_headline_is_partial_with_the_replay(
    ledger: Ledger,
) -> None:
    a_night(ledger)  # one ancc delivery failed in the run's window
    save_registry_diff(ledger, "run-1", "ama-pra", {"expected": 1, "drift": 0, "unavailable": 1}, {})

    report = build_run_report(ledger, "run-1", "Nightly")
    markdown, page = render_markdown(report), render_html(report)

    assert report.outcome.status == "partial" and report.outcome.failing_registries == ["ama-pra", "ancc"]
    assert "Run `run-1` **partial**" in markdown
    assert "- **ancc: 1 deliveries failed**" in markdown
    assert "- **ama-pra: registry diff unavailable (holdings not read)**" in markdown
    assert "- re-deliver: `cmesync replay --registry ancc`" in markdown
    assert '<strong class="status-partial">partial</strong>' in page
    assert "<code>cmesync replay --registry ancc</code>" in page


def test_given_a_run_that_stopped_when_reported_then_the_headline_is_red(ledger: Ledger) -> None:
    start_run(ledger, "run-2", "nightly")
    finish_run(ledger, "run-2", "failed", {"records_read": 0})

    page = render_html(build_run_report(ledger, "run-2", "Nightly"))

    assert '<strong class="status-failed">failed</strong>' in page and "run stopped:" in page
