"""The activity catalog (DESIGN §4.2): JSON and CSV, from a file or over HTTP, and the checks that stop a bad
catalog before it costs a learner credit."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
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
