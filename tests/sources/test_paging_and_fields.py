"""Pure units shared by every source: paginators (loop detection included), the time watermark and the
field parsers with their reason codes. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.sources import fields as f
from connectors.sources.base import RecordError
from connectors.sources.http_source import NextLink, NextToken, PageNumber, PaginationLoopError, Paginator
from connectors.sources.watermark import Watermark

AT = datetime(2026, 11, 17, 11, 22, 51, 339000, tzinfo=UTC)


def walk(paginator: Paginator, bodies: list[tuple[Any, list[Any]]]) -> list[Any]:
    requested = []
    for body, records in bodies:
        requested.append(paginator.request("/r", {"limit": 2}))
        paginator.advance(body, records)
        if paginator.finished:
            break
    return requested


def test_given_page_numbers_when_walked_then_stop_at_total_pages_or_an_empty_page() -> None:
    with_total = walk(Paginator(PageNumber("page", "meta.total")), [({"meta": {"total": 2}}, [1])] * 5)
    without_total = walk(Paginator(PageNumber("page")), [({}, [1]), ({}, [1]), ({}, [])])

    assert with_total == [("/r", {"limit": 2, "page": 1}), ("/r", {"limit": 2, "page": 2})]
    assert [params["page"] for _, params in without_total] == [1, 2, 3]


def test_given_next_token_when_walked_then_sent_back_as_its_parameter_until_none() -> None:
    bodies = [({"next": "t1"}, [1]), ({"next": "t2"}, [1]), ({"next": ""}, [1])]

    requested = walk(Paginator(NextToken("next", "cursor")), bodies)

    assert [params.get("cursor") for _, params in requested] == [None, "t1", "t2"]


def test_given_next_link_when_walked_then_the_link_replaces_path_and_query() -> None:
    requested = walk(Paginator(NextLink("more")), [({"more": "/r/more/abc"}, [1]), ({"more": ""}, [])])

    assert requested == [("/r", {"limit": 2}), ("/r/more/abc", {})]


@pytest.mark.parametrize(
    "tokens",
    [["t1", "t1"], ["t1", "t2", "t1"]],
    ids=["same token twice", "token seen earlier in the walk"],
)
def test_given_a_token_already_followed_when_advancing_then_the_loop_is_refused(tokens: list[str]) -> None:
    paginator = Paginator(NextToken("next", "cursor"))

    with pytest.raises(PaginationLoopError):
        for token in tokens:
            paginator.advance({"next": token}, [1])


def test_given_a_walk_resumed_from_a_token_when_it_links_back_to_it_then_the_loop_is_refused() -> None:
    paginator = Paginator(NextToken("next", "cursor"), start="t5")

    with pytest.raises(PaginationLoopError):
        paginator.advance({"next": "t5"}, [1])


def test_given_records_at_and_after_the_watermark_when_advanced_then_ties_keep_their_ids() -> None:
    mark = Watermark(AT, frozenset({"a"}))

    moved = mark.advance([("2026-11-17T11:22:51.339Z", "b"), ("not a time", "c"), ("2026-11-17T11:22:51Z", "d")])
    later = moved.advance([("2026-11-17T12:00:00Z", "e")])

    assert moved == Watermark(AT, frozenset({"a", "b"}))
    assert later == Watermark(datetime(2026, 11, 17, 12, tzinfo=UTC), frozenset({"e"}))
    assert Watermark.load(moved.dump()) == moved
    assert later.capped(AT) == Watermark(AT)


@pytest.mark.parametrize(
    ("parse", "value", "reason_code"),
    [
        (f.npi, "1234567890", "INVALID_NPI"),
        (f.npi, "12345", "INVALID_NPI"),
        (f.email, "not-an-address", "SCHEMA_INVALID"),
        (f.dob_month_day, "13-01", "SCHEMA_INVALID"),
        (lambda v: f.text(v, "name"), {"nested": "object"}, "SCHEMA_INVALID"),
        (lambda v: f.text(v, "name"), "x" * 2000, "FIELD_TOO_LARGE"),
        (lambda v: f.iso_duration_minutes(v, "d"), "-PT1H", "IMPLAUSIBLE_DURATION"),
        (lambda v: f.iso_duration_minutes(v, "d"), "PT", "SCHEMA_INVALID"),
        (lambda v: f.instant(v, "t"), "2026-11-17T10:00:00", "SCHEMA_INVALID"),
        (lambda v: f.number(v, "n"), "NaN", "SCHEMA_INVALID"),
    ],
)
def test_given_bad_value_when_parsed_then_record_error_with_a_stable_code(
    parse: Any, value: Any, reason_code: str
) -> None:
    with pytest.raises(RecordError) as raised:
        parse(value)

    assert raised.value.reason_code == reason_code
    assert str(value)[:20] not in str(raised.value)


@pytest.mark.parametrize(
    ("parse", "value", "expected"),
    [
        (f.npi, " 1493027167 ", "1493027167"),
        (f.email, "mailto:Ada@Example.org", "Ada@Example.org"),
        (f.profession, "m.d.", "MD"),
        (f.profession, "D O", "DO"),
        (lambda v: f.iso_duration_minutes(v, "d"), "PT1H30M", 90.0),
        (lambda v: f.iso_duration_minutes(v, "d"), "P1DT30S", 1440.5),
        (lambda v: f.instant(v, "t", default_tz=UTC, formats=("%m/%d/%Y %I:%M %p",)), "11/18/2026 09:05 AM", None),
    ],
)
def test_given_usual_spellings_when_parsed_then_canonical_values(parse: Any, value: Any, expected: Any) -> None:
    parsed = parse(value)

    assert parsed == (expected if expected is not None else datetime(2026, 11, 18, 9, 5, tzinfo=UTC))
