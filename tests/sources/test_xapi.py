"""The xAPI source against the sandbox LRS over real HTTP: auth (Basic and bearer), verbs and their TinCan
spellings, actor identification, durations, voiding, and `check()`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from connectors.http import RetryPolicy
from connectors.sources.base import Rejection, Source, SourceCheckError
from connectors.sources.xapi import XapiSourceConfig
from deploy.sandbox.lrs import XapiLrs
from pipeline.factory import build_source

FAST = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, max_backoff_s=0.01, jitter_s=0.001)
NPPES = "https://nppes.cms.hhs.gov"


class BearerLrs(XapiLrs):
    """The sandbox LRS behind an OAuth bearer token instead of Basic auth (LRSs offer either)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def _authorised(self, header: str) -> bool:
        return header == f"Bearer {self.token}"


def source_for(lrs: XapiLrs, **config: Any) -> Source:
    settings = {"name": "lrs", "base_url": lrs.url, "password": lrs.password, "max_attempts": 2, **config}
    source = build_source(XapiSourceConfig(**settings))
    source.client.retry = FAST  # type: ignore[attr-defined]
    return source


def pull(source: Source) -> tuple[list[dict[str, Any]], list[Rejection]]:
    events: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    for page in source.pages(None):
        for record in page.records:
            for item in source.to_events(record):
                (rejections if isinstance(item, Rejection) else events).append(item)
    return events, rejections


def statement(verb: Any, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "mbox": "mailto:ada.lovelace@example.org"},
        "verb": verb,
        "object": {"objectType": "Activity", "id": "https://lms.example.org/activities/ACT-001"},
        "timestamp": "2026-11-17T10:00:00.000Z",
        **fields,
    }


@pytest.fixture
def lrs() -> Iterator[XapiLrs]:
    with XapiLrs() as server:
        yield server


def test_given_activity_streams_and_bare_tincan_verbs_when_pulled_then_they_map_like_the_adl_verbs(
    lrs: XapiLrs,
) -> None:
    lrs.add(
        [
            statement({"id": "http://activitystrea.ms/schema/1.0/complete"}),
            statement({"id": "http://activitystrea.ms/schema/1.0/attend"}, result={"duration": "PT45M"}),
            statement("passed"),
            statement({"id": "http://adlnet.gov/expapi/verbs/attended"}, result={"duration": "P0DT1H30M"}),
        ]
    )

    events, rejections = pull(source_for(lrs))

    assert rejections == []
    assert [(e["kind"], e["minutes"]) for e in events] == [
        ("COMPLETED", None),
        ("ATTENDED", 45.0),
        ("COMPLETED", None),
        ("ATTENDED", 90.0),
    ]


def test_given_account_actor_on_a_mapped_homepage_when_pulled_then_its_name_is_that_identifier(
    lrs: XapiLrs,
) -> None:
    account = {"objectType": "Agent", "account": {"homePage": f"{NPPES}/", "name": "1493027167"}}
    hashed = {"objectType": "Agent", "mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"}
    lrs.add([statement("completed", actor=account), statement("completed", actor=hashed)])

    events, rejections = pull(source_for(lrs, account_identities={NPPES: "npi"}))

    assert [e["learner"]["npi"] for e in events] == ["1493027167"]
    assert [r.reason_code for r in rejections] == ["MISSING_IDENTITY"]


def test_given_voiding_statement_when_pulled_then_a_voided_event_names_the_voided_statement(lrs: XapiLrs) -> None:
    [target] = lrs.add(statement("completed"))
    voided = {"id": "http://adlnet.gov/expapi/verbs/voided"}
    lrs.add(statement(voided, object={"objectType": "StatementRef", "id": target}))

    events, _ = pull(source_for(lrs))

    assert [(e["kind"], e["voids_event_id"]) for e in events] == [("VOIDED", target)]


def test_given_bearer_auth_configured_when_pulled_then_the_lrs_accepts_the_token() -> None:
    with BearerLrs("lrs-oauth-token") as lrs:
        lrs.add(statement("completed"))
        source = source_for(lrs, auth="bearer", token="lrs-oauth-token")

        source.check()
        events, _ = pull(source)

    assert len(events) == 1


def test_given_wrong_password_when_checked_then_a_clear_error_without_the_secret(
    lrs: XapiLrs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    source = source_for(lrs, password="not-the-password-s3cret")

    with pytest.raises(SourceCheckError) as raised:
        source.check()

    assert "refused our credentials (401)" in str(raised.value)
    assert "s3cret" not in str(raised.value) and "s3cret" not in caplog.text


def test_given_nothing_listening_when_checked_then_the_error_says_unreachable(lrs: XapiLrs) -> None:
    url = lrs.url
    lrs.stop()
    source = build_source(XapiSourceConfig(name="lrs", base_url=url, password="x", max_attempts=2))
    source.client.retry = FAST  # type: ignore[attr-defined]

    with pytest.raises(SourceCheckError, match="unreachable"):
        source.check()


def test_given_statements_sharing_a_stored_instant_across_pages_when_resumed_from_each_cursor_then_none_is_lost(
    lrs: XapiLrs,
) -> None:
    at = "2026-11-17T11:22:51.339Z"
    ids = lrs.add([statement("completed", stored=at) for _ in range(5)])
    source = source_for(lrs, page_size=2)

    cursors = [page.next_cursor for page in source.pages(None)]
    resumed = [
        {r.data["id"] for page in source_for(lrs, page_size=2).pages(cursor) for r in page.records}
        for cursor in cursors
    ]

    read_before = [set(ids[: min(2 * (n + 1), 5)]) for n in range(len(cursors))]
    assert [before | after for before, after in zip(read_before, resumed, strict=True)] == [set(ids)] * len(cursors)
    assert all(not before & after for before, after in zip(read_before, resumed, strict=True))


def test_given_duration_written_in_days_when_pulled_then_minutes_count_the_days(lrs: XapiLrs) -> None:
    lrs.add(statement("completed", result={"duration": "P1DT2H"}, timestamp="2026-11-17T10:00:00Z"))

    events, _ = pull(source_for(lrs))

    assert events[0]["minutes"] == timedelta(days=1, hours=2).total_seconds() / 60
