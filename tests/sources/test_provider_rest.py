"""The provider REST source over real HTTP: a malformed page, a pagination loop, the watermark capped at the
pull's start, records changed after a pull, and `check()`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.http import HttpClient, RetryPolicy
from connectors.sources.base import SourceCheckError
from connectors.sources.http_source import NextToken, PaginationLoopError
from connectors.sources.mapping import FieldMapping
from connectors.sources.provider_rest import ProviderRestSource, ProviderRestSourceConfig
from deploy.sandbox.base import Request, Response, SandboxServer, format_instant
from deploy.sandbox.provider_rest import ProviderRestApi
from pipeline.factory import build_source

START = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, max_backoff_s=0.01, jitter_s=0.001)
FIELDS = {
    "event_id": "id",
    "occurred_at": "completed_at",
    "activity": "course",
    "email": "learner.email",
    "profession": "learner.credential",
}


def record(n: int, minutes: int | None = None) -> dict[str, Any]:
    at = START + timedelta(minutes=n if minutes is None else minutes)
    return {
        "id": f"rec-{n}",
        "updated_at": format_instant(at),
        "completed_at": format_instant(at),
        "course": "ACT-001",
        "learner": {"email": f"l{n}@example.org", "credential": "MD"},
    }


def config_for(api: ProviderRestApi, **config: Any) -> dict[str, Any]:
    return {
        "kind": "provider_rest",
        "name": "provider",
        "base_url": api.url,
        "token": api.token,
        "page_size": 5,
        "default_kind": "COMPLETED",
        "fields": FIELDS,
        **config,
    }


@pytest.fixture
def api() -> Iterator[ProviderRestApi]:
    with ProviderRestApi([record(n) for n in range(12)]) as server:
        yield server


def test_given_a_page_that_is_not_json_when_pulled_then_dead_lettered_and_the_next_run_reads_on_from_it(
    api: ProviderRestApi, pipeline_for: Callable[[dict[str, Any]], Any]
) -> None:
    api.truncated_pages = {2}
    pipeline = pipeline_for(config_for(api))

    first = pipeline.pull()
    stuck_at = pipeline.checkpoint()
    api.truncated_pages = set()
    pipeline.pull()

    assert (first.events, first.rejected) == (5, 1)
    assert pipeline.dead_letters() == {"/api/v1/completions page 2": "MALFORMED_PAGE"}
    assert json.loads(stuck_at or "{}")["token"] is not None
    ids = [e["event_id"] for e in pipeline.topic_events()]
    assert sorted(ids) == sorted(f"rec-{n}" for n in range(12))


class LoopingApi(SandboxServer):
    """A broken API that hands back the same cursor forever."""

    name = "looping"

    def __init__(self) -> None:
        super().__init__()
        self.route("GET", "/api/v1/completions", self._page)

    def _page(self, request: Request) -> Response:
        return Response(200, {"data": [record(1)], "meta": {"next_cursor": "the-same-cursor"}})


def test_given_api_repeating_a_page_cursor_when_pulled_then_the_loop_is_refused() -> None:
    with LoopingApi() as looping:
        source = ProviderRestSource(
            "provider",
            HttpClient(looping.url, retry=FAST),
            FieldMapping(FIELDS, default_kind="COMPLETED"),
            pagination=NextToken("meta.next_cursor", "cursor"),
        )
        pages = source.pages(None)
        first = next(pages)

        with pytest.raises(PaginationLoopError, match="already read"):
            next(pages)

    assert [r.data["id"] for r in first.records] == ["rec-1"]
    assert json.loads(first.next_cursor or "{}")["token"] == "the-same-cursor"


def test_given_records_newer_than_the_pull_start_when_pulled_then_the_watermark_stops_at_the_start(
    api: ProviderRestApi,
) -> None:
    config = ProviderRestSourceConfig(**config_for(api))
    source = build_source(config)
    source._now = lambda: START + timedelta(minutes=7, seconds=30)  # type: ignore[attr-defined]
    pages = list(source.pages(None))

    again = [r.data["id"] for p in build_source(config).pages(pages[-1].next_cursor) for r in p.records]

    assert json.loads(pages[-1].next_cursor or "{}")["mark"]["at"] == "2026-11-10T08:07:30.000Z"
    assert again == [f"rec-{n}" for n in range(8, 12)]


def test_given_a_record_changed_after_a_pull_when_pulled_again_then_only_it_comes_back(api: ProviderRestApi) -> None:
    config = ProviderRestSourceConfig(**config_for(api))
    pages = list(build_source(config).pages(None))

    api.update("rec-3", course="ACT-003")
    again = [r.data for p in build_source(config).pages(pages[-1].next_cursor) for r in p.records]

    assert [(r["id"], r["course"]) for r in again] == [("rec-3", "ACT-003")]


def test_given_page_number_pagination_when_pulled_then_pages_stop_at_total_pages(api: ProviderRestApi) -> None:
    api.pagination = "page"
    source = build_source(ProviderRestSourceConfig(**config_for(api, pagination="page")))

    pages = list(source.pages(None))

    assert [len(p.records) for p in pages] == [5, 5, 2]
    assert api.requests_seen == 3


def test_given_wrong_token_when_checked_then_a_clear_error(api: ProviderRestApi) -> None:
    source = build_source(ProviderRestSourceConfig(**config_for(api, token="wrong")))
    source.client.retry = FAST  # type: ignore[attr-defined]

    with pytest.raises(SourceCheckError, match="refused our credentials"):
        source.check()
