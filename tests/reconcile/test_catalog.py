"""The activity catalog (DESIGN §4.2): JSON and CSV, from a file or over HTTP, and the checks that stop a bad
catalog before it costs a learner credit."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from deploy.sandbox.base import Request, Response, SandboxServer
from pipeline.catalog import fetch_catalog
from pipeline.config import SAMPLE_DIR, Settings
from reconcile.catalog import CatalogError, Interval, load_catalog, parse_catalog, parse_catalog_csv
from reconcile.participation import scheduled_minutes

LIVE: dict[str, Any] = {
    "id": "LIVE-1",
    "title": "Live workshop",
    "provider": "P",
    "format": "live",
    "refs": ["https://lms/LIVE-1", "webinar:881"],
    "accreditors": ["ACCME", "ANCC"],
    "designations": {"AMA_PRA_1": "2.75", "ANCC_CH": "3.00", "ANCC_PHARM": "0.50"},
    "increments": {"ANCC_CH": "0.50"},
    "window": {"start": "2026-03-01", "end": "2026-03-31"},
    "timezone": "America/Chicago",
    "sessions": [{"start": "2026-03-10T09:00:00", "end": "2026-03-10T12:00:00"}],
    "breaks": [{"start": "2026-03-10T10:25:00-05:00", "end": "2026-03-10T10:40:00-05:00"}],
    "evaluation_minutes": 10,
    "tags": ["Opioids", "ethics"],
}

CSV_HEADER = (
    "id,title,provider,format,refs,accreditors,window_start,window_end,timezone,sessions,breaks,"
    "evaluation_minutes,tags,designation:AMA_PRA_1,designation:ANCC_CH,designation:ANCC_PHARM,increment:ANCC_CH"
)
CSV_ROW = (
    "LIVE-1,Live workshop,P,live,https://lms/LIVE-1;webinar:881,ACCME;ANCC,2026-03-01,2026-03-31,America/Chicago,"
    "2026-03-10T09:00:00/2026-03-10T12:00:00,2026-03-10T10:25:00-05:00/2026-03-10T10:40:00-05:00,10,Opioids;ethics,"
    "2.75,3.00,0.50,0.50"
)


def with_changes(**changes: Any) -> dict[str, Any]:
    activity = copy.deepcopy(LIVE)
    activity.update(changes)
    return {"activities": [activity]}


def test_given_a_live_activity_when_parsed_then_every_field_typed_and_local_times_placed_in_its_zone() -> None:
    activity = parse_catalog({"activities": [LIVE]}).activities["LIVE-1"]
    assert activity.designations == {
        "AMA_PRA_1": Decimal("2.75"),
        "ANCC_CH": Decimal("3.00"),
        "ANCC_PHARM": Decimal("0.50"),
    }
    assert activity.increment("ANCC_CH") == Decimal("0.50") and activity.increment("ANCC_PHARM") == Decimal("0.25")
    # 09:00 in Chicago in March (CDT, UTC-5) is 14:00 UTC; the break was given with an explicit offset.
    assert activity.sessions == (
        Interval(datetime(2026, 3, 10, 14, tzinfo=UTC), datetime(2026, 3, 10, 17, tzinfo=UTC)),
    )
    assert scheduled_minutes(activity) == 165
    assert (activity.tags, activity.evaluation_minutes, activity.scheduled) == (("opioids", "ethics"), 10, True)


def test_given_the_same_activity_as_csv_when_parsed_then_equal_to_the_json_one() -> None:
    assert parse_catalog_csv(f"{CSV_HEADER}\n{CSV_ROW}\n") == parse_catalog({"activities": [LIVE]})


def test_given_the_sample_catalog_when_loaded_as_json_and_as_csv_then_identical() -> None:
    from_json = load_catalog(SAMPLE_DIR / "catalog.json")
    assert load_catalog(SAMPLE_DIR / "catalog.csv") == from_json
    # Other helpers' sample data maps to these refs: they must keep resolving.
    for n in (1, 2, 3):
        assert from_json.resolve(f"https://lms.example.org/activities/ACT-00{n}").activity_id == f"ACT-00{n}"


def test_given_a_ref_or_an_id_when_resolved_then_the_activity_and_unknown_is_none() -> None:
    catalog = parse_catalog({"activities": [LIVE]})
    assert catalog.resolve("webinar:881") is catalog.resolve("LIVE-1") is catalog.activities["LIVE-1"]
    assert catalog.resolve("webinar:999") is None


def test_given_a_completion_late_in_chicago_when_dated_then_the_providers_local_day_counts() -> None:
    activity = parse_catalog({"activities": [LIVE]}).activities["LIVE-1"]
    evening = datetime(2026, 4, 1, 3, 30, tzinfo=UTC)  # 22:30 on 31 March in Chicago
    assert activity.local_day(evening) == date(2026, 3, 31) and activity.in_window(activity.local_day(evening))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"designations": {"AMA_PRA1": "1.00"}, "increments": {}}, "not a credit type"),
        ({"designations": {"AMA_PRA_2": "1.00"}, "increments": {}}, "self-claimed"),
        ({"accreditors": ["ACCME"]}, "needs ANCC"),
        ({"designations": {"ANCC_CH": "1.00", "ANCC_PHARM": "1.50"}}, "cannot exceed"),
        ({"designations": {"ANCC_PHARM": "0.50"}, "increments": {}}, "cannot exceed"),
        ({"designations": {"AMA_PRA_1": "1.10"}, "increments": {}}, "multiple of its increment 0.25"),
        ({"designations": {"ANCC_CH": "1.25"}}, "multiple of its increment 0.50"),
        ({"designations": {"AMA_PRA_1": "-1"}}, "positive amount"),
        ({"designations": {"AMA_PRA_1": "1.001"}}, "at most 2 decimals"),
        ({"increments": {"AMA_PRA_1": "0.50"}}, "round-down credit type"),
        ({"timezone": "Mars/Olympus"}, "IANA"),
        ({"format": "podcast"}, "must be one of"),
        ({"format": "enduring"}, "only to live and rss"),
        ({"window": {"start": "2026-03-31", "end": "2026-03-01"}}, "ends before it starts"),
        ({"window": {"start": "March"}}, "ISO date"),
        ({"breaks": [{"start": "2026-03-10T10:40:00", "end": "2026-03-10T10:25:00"}]}, "ends before it starts"),
        ({"sessions": [{"start": "2026-03-10T09:00:00"}]}, "start and an end"),
        ({"evaluation_minutes": 15.5}, "whole minutes"),
        ({"title": ""}, "title"),
    ],
)
def test_given_a_bad_activity_when_parsed_then_catalog_error_names_activity_and_field(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CatalogError, match="activity LIVE-1") as raised:
        parse_catalog(with_changes(**changes))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"activities": [LIVE, LIVE]}, "listed twice"),
        ({"activities": [LIVE, {**LIVE, "id": "LIVE-2"}]}, "listed for LIVE-1 and LIVE-2"),
        ({"activities": [LIVE, {**LIVE, "id": "webinar:881", "refs": []}]}, "another activity's id"),
        ({"items": []}, "'activities' list"),
    ],
)
def test_given_an_ambiguous_catalog_when_parsed_then_catalog_error(data: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{CSV_HEADER},colour\n{CSV_ROW},red\n", "unknown column colour"),
        (f"{CSV_HEADER}\n{CSV_ROW},extra\n", "line 2: more values than columns"),
        ("title\nx\n", "'id' column"),
    ],
)
def test_given_a_bad_csv_when_parsed_then_catalog_error(text: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog_csv(text)


def test_given_a_missing_file_when_loaded_then_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"nope\.json"):
        load_catalog(tmp_path / "nope.json")


class CatalogServer(SandboxServer):
    """A provider's catalog endpoint, over a real socket."""

    name = "catalog"

    def __init__(self) -> None:
        super().__init__()
        json_body = json.dumps({"activities": [LIVE]}).encode()
        csv_body = f"\ufeff{CSV_HEADER}\r\n{CSV_ROW}\r\n".encode()
        self.route("GET", r"/catalog\.json", lambda _: Response(200, json_body))
        self.route("GET", r"/export", lambda _: Response(200, csv_body, content_type="text/csv; charset=utf-8"))
        self.route("GET", r"/broken", self._broken)

    @staticmethod
    def _broken(_: Request) -> Response:
        return Response(200, b"{not json")


@pytest.fixture
def catalog_server() -> Iterator[CatalogServer]:
    with CatalogServer() as server:
        yield server


@pytest.mark.parametrize("path", ["/catalog.json", "/export"], ids=["json", "csv-by-media-type"])
def test_given_a_catalog_url_when_fetched_then_parsed_by_its_kind(catalog_server: CatalogServer, path: str) -> None:
    settings = Settings(catalog_url=catalog_server.url + path)
    assert fetch_catalog(settings) == parse_catalog({"activities": [LIVE]})


def test_given_a_catalog_url_serving_garbage_when_fetched_then_catalog_error(catalog_server: CatalogServer) -> None:
    with pytest.raises(CatalogError, match="not valid JSON"):
        fetch_catalog(Settings(catalog_url=catalog_server.url + "/broken"))


def test_given_no_catalog_url_when_fetched_then_the_catalog_path_file() -> None:
    assert fetch_catalog(Settings()) == load_catalog(SAMPLE_DIR / "catalog.json")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def dst_activity(zone: str, sessions: list[tuple[str, str]], breaks: list[tuple[str, str]]) -> dict[str, Any]:
    return with_changes(
        timezone=zone,
        window={"start": "2026-01-01", "end": "2026-12-31"},
        sessions=[{"start": s, "end": e} for s, e in sessions],
        breaks=[{"start": s, "end": e} for s, e in breaks],
    )


# Local times on the 2026 daylight-saving days: New York 03-08 02:00 EST -> 03:00 EDT (07:00Z) and 11-01 02:00
# EDT -> 01:00 EST (06:00Z); Berlin 03-29 02:00 CET -> 03:00 CEST (01:00Z) and 10-25 03:00 CEST -> 02:00 CET
# (01:00Z). Expected instants worked out by hand from those offsets.
DST_TABLE = [
    # (row id, zone, local sessions, local breaks, sessions as UTC instants, scheduled minutes)
    (
        "ny-spring-4-wall-hours-are-3",
        "America/New_York",
        [("2026-03-08T00:00", "2026-03-08T04:00")],
        [],
        [("2026-03-08T05:00", "2026-03-08T08:00")],
        180,
    ),
    (
        "ny-fall-4-wall-hours-are-5",
        "America/New_York",
        [("2026-11-01T00:00", "2026-11-01T04:00")],
        [],
        [("2026-11-01T04:00", "2026-11-01T09:00")],
        300,
    ),
    (
        "ny-spring-gap-time-takes-the-offset-before-the-gap",
        "America/New_York",
        [("2026-03-08T02:30", "2026-03-08T05:00")],
        [],
        [("2026-03-08T07:30", "2026-03-08T09:00")],
        90,
    ),
    (
        "ny-fall-ambiguous-time-is-the-first-occurrence",
        "America/New_York",
        [("2026-11-01T01:30", "2026-11-01T03:00")],
        [],
        [("2026-11-01T05:30", "2026-11-01T08:00")],
        150,
    ),
    (
        "ny-fall-explicit-offset-picks-the-second-occurrence",
        "America/New_York",
        [("2026-11-01T01:30-05:00", "2026-11-01T03:00")],
        [],
        [("2026-11-01T06:30", "2026-11-01T08:00")],
        90,
    ),
    (
        "ny-fall-break-before-the-change",
        "America/New_York",
        [("2026-11-01T00:00", "2026-11-01T04:00")],
        [("2026-11-01T00:30", "2026-11-01T01:30")],
        [("2026-11-01T04:00", "2026-11-01T09:00")],
        240,
    ),
    (
        "ny-fall-break-straddling-the-repeated-hour",
        "America/New_York",
        [("2026-11-01T00:00", "2026-11-01T04:00")],
        [("2026-11-01T01:45", "2026-11-01T02:15")],
        [("2026-11-01T04:00", "2026-11-01T09:00")],
        210,
    ),
    (
        "ny-spring-break-straddling-the-gap",
        "America/New_York",
        [("2026-03-08T00:00", "2026-03-08T04:00")],
        [("2026-03-08T01:45", "2026-03-08T03:15")],
        [("2026-03-08T05:00", "2026-03-08T08:00")],
        150,
    ),
    (
        "berlin-spring-4-wall-hours-are-3",
        "Europe/Berlin",
        [("2026-03-29T00:00", "2026-03-29T04:00")],
        [],
        [("2026-03-28T23:00", "2026-03-29T02:00")],
        180,
    ),
    (
        "berlin-spring-gap-time-takes-the-offset-before-the-gap",
        "Europe/Berlin",
        [("2026-03-29T02:30", "2026-03-29T04:00")],
        [],
        [("2026-03-29T01:30", "2026-03-29T02:00")],
        30,
    ),
    (
        "berlin-fall-4-wall-hours-are-5",
        "Europe/Berlin",
        [("2026-10-25T00:00", "2026-10-25T04:00")],
        [],
        [("2026-10-24T22:00", "2026-10-25T03:00")],
        300,
    ),
    (
        "berlin-fall-break-straddling-the-repeated-hour",
        "Europe/Berlin",
        [("2026-10-25T00:00", "2026-10-25T04:00")],
        [("2026-10-25T02:30", "2026-10-25T03:30")],
        [("2026-10-24T22:00", "2026-10-25T03:00")],
        180,
    ),
    (
        "two-sessions-across-the-night-of-the-change",
        "Europe/Berlin",
        [("2026-10-24T22:00", "2026-10-24T23:00"), ("2026-10-25T01:00", "2026-10-25T04:00")],
        [],
        [("2026-10-24T20:00", "2026-10-24T21:00"), ("2026-10-24T23:00", "2026-10-25T03:00")],
        300,
    ),
]


@pytest.mark.parametrize(
    ("zone", "sessions", "breaks", "instants", "minutes"),
    [row[1:] for row in DST_TABLE],
    ids=[row[0] for row in DST_TABLE],
)
def test_given_local_sessions_and_breaks_across_a_dst_change_when_parsed_then_utc_instants_and_real_minutes(
    zone: str,
    sessions: list[tuple[str, str]],
    breaks: list[tuple[str, str]],
    instants: list[tuple[str, str]],
    minutes: int,
) -> None:
    activity = parse_catalog(dst_activity(zone, sessions, breaks)).activities["LIVE-1"]
    assert [(i.start, i.end) for i in activity.sessions] == [(utc(s), utc(e)) for s, e in instants]
    assert all(i.start.tzinfo is UTC and i.end.tzinfo is UTC for i in (*activity.sessions, *activity.breaks))
    assert scheduled_minutes(activity) == minutes


def test_given_a_local_session_ending_in_the_spring_gap_before_it_starts_when_parsed_then_catalog_error() -> None:
    """02:30 in the gap is 07:30Z (offset before the gap); 03:15 EDT is 07:15Z: the session ends before it starts."""
    data = dst_activity("America/New_York", [("2026-03-08T02:30", "2026-03-08T03:15")], [])
    with pytest.raises(CatalogError, match=r"activity LIVE-1: sessions\[0\] ends before it starts"):
        parse_catalog(data)


WINDOW_TABLE = [
    # (row id, zone, window start, window end, first instant inside, first instant after)
    (
        "ny-window-opening-on-the-spring-day",
        "America/New_York",
        "2026-03-08",
        "2026-03-08",
        "2026-03-08T05:00",
        "2026-03-09T04:00",
    ),
    (
        "ny-window-closing-on-the-fall-day",
        "America/New_York",
        "2026-11-01",
        "2026-11-01",
        "2026-11-01T04:00",
        "2026-11-02T05:00",
    ),
    (
        "berlin-window-of-the-spring-day",
        "Europe/Berlin",
        "2026-03-29",
        "2026-03-29",
        "2026-03-28T23:00",
        "2026-03-29T22:00",
    ),
    (
        "berlin-window-of-the-fall-day",
        "Europe/Berlin",
        "2026-10-25",
        "2026-10-25",
        "2026-10-24T22:00",
        "2026-10-25T23:00",
    ),
    (
        "havana-midnight-lost-to-the-gap-opens-at-the-gaps-end",
        "America/Havana",
        "2026-03-08",
        "2026-03-08",
        "2026-03-08T05:00",
        "2026-03-09T04:00",
    ),
]


@pytest.mark.parametrize(
    ("zone", "start", "end", "opens", "closes"),
    [row[1:] for row in WINDOW_TABLE],
    ids=[row[0] for row in WINDOW_TABLE],
)
def test_given_a_window_on_a_dst_day_when_parsed_then_its_day_boundaries_are_utc_instants(
    zone: str, start: str, end: str, opens: str, closes: str
) -> None:
    activity = parse_catalog(with_changes(timezone=zone, window={"start": start, "end": end})).activities["LIVE-1"]
    assert (activity.window_opens, activity.window_closes) == (utc(opens), utc(closes))
    millisecond = timedelta(milliseconds=1)
    inside = [utc(opens), utc(closes) - millisecond]
    outside = [utc(opens) - millisecond, utc(closes)]
    assert [activity.open_at(m) for m in inside + outside] == [True, True, False, False]
    # The instant check agrees with the provider's local calendar day.
    assert [activity.in_window(activity.local_day(m)) for m in inside + outside] == [True, True, False, False]
