"""The webinar source against the Zoom-style sandbox over real HTTP: segments, minutes from leave - join,
guests identified through their registration, expired page tokens, reports not ready yet, `check()`; and
the reconcile stage crediting the union of a learner's segments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from connectors.http import RetryPolicy
from connectors.sources.base import Page, Rejection, Source, SourceCheckError
from connectors.sources.webinar import WebinarSourceConfig
from deploy.sandbox.webinar import WebinarReports
from ledger import tables as t
from pipeline.factory import build_source

FAST = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, max_backoff_s=0.01, jitter_s=0.001)
WEBINAR = "84512340001"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def row(email: str, join: str, leave: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": email.split("@")[0],
        "name": "Participant",
        "user_email": email,
        "join_time": join,
        "leave_time": leave,
        "duration": 1,  # the report's own figure, in a unit we do not trust
        "registrant_id": "",
        **fields,
    }


REGISTRANTS = [
    {
        "id": "rg-ada",
        "email": "ada@example.org",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "custom_questions": [{"title": "NPI", "value": "1493027167"}, {"title": "Credential", "value": "m.d."}],
    }
]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reports(clock: Clock) -> Iterator[WebinarReports]:
    with WebinarReports([{"id": WEBINAR, "registrants": REGISTRANTS}], clock=clock) as server:
        yield server


def config_for(reports: WebinarReports, **config: Any) -> dict[str, Any]:
    return {
        "kind": "webinar",
        "name": "webinars",
        "base_url": reports.url,
        "token": reports.token,
        "webinars": {WEBINAR: "ACT-002"},
        "registrant_questions": {"NPI": "npi", "Credential": "profession"},
        **config,
    }


def source_for(reports: WebinarReports, **config: Any) -> Source:
    source = build_source(WebinarSourceConfig(**config_for(reports, **config)))
    source.client.retry = FAST  # type: ignore[attr-defined]
    return source


def events_of(source: Source, pages: list[Page]) -> tuple[list[dict[str, Any]], list[Rejection]]:
    events: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    for page in pages:
        for record in page.records:
            for item in source.to_events(record):
                (rejections if isinstance(item, Rejection) else events).append(item)
    return events, rejections


def instance(uuid: str, rows: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"uuid": uuid, "start_time": "2026-11-18T17:00:00Z", "participants": rows, **fields}


def test_given_rejoining_participant_when_pulled_then_one_event_per_segment_with_minutes_from_leave_minus_join(
    reports: WebinarReports,
) -> None:
    reports.add_instance(
        WEBINAR,
        instance(
            "i-1",
            [
                row("ada@example.org", "2026-11-18T17:00:00Z", "2026-11-18T18:00:00Z", registrant_id="rg-ada"),
                row("ada@example.org", "2026-11-18T17:30:00Z", "2026-11-18T18:15:00Z", registrant_id="rg-ada"),
            ],
        ),
    )
    source = source_for(reports)

    events, rejections = events_of(source, list(source.pages(None)))

    assert rejections == []
    assert [(e["kind"], e["minutes"]) for e in events] == [("ATTENDED", 60.0), ("ATTENDED", 45.0)]
    assert [e["ended_at"] - e["started_at"] for e in events] == [timedelta(minutes=60), timedelta(minutes=45)]
    assert {e["activity_ref"] for e in events} == {"ACT-002"}
    assert events[0]["learner"]["npi"] == "1493027167" and events[0]["learner"]["profession"] == "MD"


def test_given_guest_with_empty_email_when_registered_then_identified_from_the_registration_else_dead_lettered(
    reports: WebinarReports,
) -> None:
    reports.add_instance(
        WEBINAR,
        instance(
            "i-1",
            [
                row("", "2026-11-18T17:00:00Z", "2026-11-18T18:00:00Z", registrant_id="rg-ada", id=""),
                row("", "2026-11-18T17:00:00Z", "2026-11-18T18:00:00Z", id=""),
            ],
        ),
    )
    source = source_for(reports)

    events, rejections = events_of(source, list(source.pages(None)))

    assert [(e["learner"]["email"], e["learner"]["npi"]) for e in events] == [("ada@example.org", "1493027167")]
    assert [(r.reason_code, r.record.source_ref) for r in rejections] == [
        ("MISSING_IDENTITY", f"webinar {WEBINAR} instance i-1 page 1 row 2")
    ]


def test_given_saved_page_token_expired_when_resumed_then_the_instance_is_read_again_from_its_first_page(
    reports: WebinarReports, clock: Clock
) -> None:
    rows = [row(f"l{n}@example.org", f"2026-11-18T17:{n:02d}:00Z", f"2026-11-18T18:{n:02d}:00Z") for n in range(5)]
    reports.add_instance(WEBINAR, instance("i-1", rows))
    first = next(iter(source_for(reports, page_size=2).pages(None)))
    clock.now += reports.token_ttl_s + 1

    source = source_for(reports, page_size=2)
    resumed = list(source.pages(first.next_cursor))

    events, _ = events_of(source, resumed)
    assert sorted(e["learner"]["email"] for e in events) == sorted(r["user_email"] for r in rows)
    assert '"at": null' in (resumed[-1].next_cursor or "")


def test_given_report_not_ready_when_pulled_then_skipped_and_read_by_a_later_pull_once_ready(
    reports: WebinarReports,
) -> None:
    reports.add_instance(WEBINAR, instance("i-1", [row("a@example.org", "2026-11-18T17:00Z", "2026-11-18T18:00Z")]))
    reports.add_instance(
        WEBINAR,
        instance("i-2", [row("b@example.org", "2026-11-19T17:00Z", "2026-11-19T18:00Z")], ready=False),
    )
    source = source_for(reports)
    first = list(source.pages(None))

    reports.set_ready("i-2")
    second = list(source.pages(first[-1].next_cursor))

    assert [r.data["participant"]["user_email"] for p in first for r in p.records] == ["a@example.org"]
    assert [r.data["participant"]["user_email"] for p in second for r in p.records] == ["b@example.org"]


def test_given_unknown_webinar_or_wrong_token_when_checked_then_clear_errors(reports: WebinarReports) -> None:
    with pytest.raises(SourceCheckError, match="refused the request"):
        source_for(reports, webinars={"999": "ACT-002"}).check()
    with pytest.raises(SourceCheckError, match="refused our credentials"):
        source_for(reports, token="wrong").check()


def test_given_overlapping_segments_when_pulled_and_reconciled_then_the_credit_counts_the_overlap_once(
    reports: WebinarReports, pipeline_for: Callable[[dict[str, Any]], Any]
) -> None:
    """09:00-10:00 and 09:30-10:15 are 75 minutes together (1.25 credits), not 105 (1.75)."""
    reports.add_instance(
        WEBINAR,
        instance(
            "i-1",
            [
                row("ada@example.org", "2026-11-18T09:00:00Z", "2026-11-18T10:00:00Z", registrant_id="rg-ada"),
                row("ada@example.org", "2026-11-18T09:30:00Z", "2026-11-18T10:15:00Z", registrant_id="rg-ada"),
            ],
        ),
    )
    pipeline = pipeline_for(config_for(reports))

    pipeline.pull()
    pipeline.reconcile()

    ledger = pipeline.ledger()
    try:
        with ledger.engine.connect() as conn:
            amounts = [f"{float(a):.2f}" for a in conn.scalars(select(t.credits.c.amount))]
    finally:
        ledger.close()
    assert amounts == ["1.25"]


@pytest.mark.parametrize("uuid", ["/Xy//zQ+w==", "aB+c/d==", "plain"])
def test_given_instance_uuid_with_slashes_or_plus_when_pulled_then_its_report_is_found(
    reports: WebinarReports, uuid: str
) -> None:
    reports.add_instance(WEBINAR, instance(uuid, [row("a@example.org", "2026-11-18T17:00Z", "2026-11-18T18:00Z")]))
    source = source_for(reports)

    events, rejections = events_of(source, list(source.pages(None)))

    assert (len(events), rejections) == (1, [])


def test_given_token_only_in_the_named_environment_variable_when_checked_then_it_is_used(
    reports: WebinarReports, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_WEBINAR_TOKEN", reports.token)

    source_for(reports, token="", token_env="TEST_WEBINAR_TOKEN").check()
