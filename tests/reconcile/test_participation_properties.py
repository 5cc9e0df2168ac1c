"""Properties of the participation maths (domain/credit-rules.md, "Participation time") over arbitrary
segments, sessions and breaks in arbitrary time zones, clustered around 2026's daylight-saving changes.

The oracle counts whole UTC minutes as sets, independent of the span arithmetic under test: the minutes
credited are exactly |segments ∩ (sessions minus breaks)|, so never more than the union of the segments nor than
the schedule, and the same whatever the order, duplication or zone the segments are reported in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, reject, settings
from hypothesis import strategies as st

from reconcile.catalog import Activity, CatalogError, parse_catalog
from reconcile.participation import participation, scheduled_minutes

# Instants of 2026 changes: US (03-08, 11-01), EU (03-29, 10-25), southern hemisphere (04-05, 10-04).
CHANGES = [
    datetime(2026, 3, 8, 7, tzinfo=UTC),
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 4, 5, 3, tzinfo=UTC),
    datetime(2026, 10, 4, 16, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 11, 1, 6, tzinfo=UTC),
]
DST_ZONES = [
    ZoneInfo(name)
    for name in (
        "America/New_York",
        "Europe/Berlin",
        "Australia/Sydney",
        "Australia/Lord_Howe",  # a 30-minute change
        "America/Santiago",
        "America/Havana",  # changes at midnight
    )
]
ZONES = st.one_of(st.sampled_from(DST_ZONES), st.timezones())
Offsets = list[tuple[int, int]]  # (minutes from the change, length in minutes)
OFFSETS = st.tuples(st.integers(-720, 720), st.integers(1, 360))


def minutes_of(start: datetime, end: datetime) -> set[int]:
    """The whole UTC minutes from `start` to `end` (2026 offsets are whole minutes in every zone)."""
    first, last = start.timestamp() / 60, end.timestamp() / 60
    assert first.is_integer() and last.is_integer()
    return set(range(int(first), int(last)))


def local_activity(zone: tzinfo, change: datetime, sessions: Offsets, breaks: Offsets) -> Activity:
    """A live activity whose sessions and breaks are wall-clock times (no offset) in `zone`."""
    wall = change.astimezone(zone).replace(tzinfo=None)

    def local(items: Offsets) -> list[dict[str, str]]:
        spans = [(wall + timedelta(minutes=at), wall + timedelta(minutes=at + length)) for at, length in items]
        return [{"start": s.isoformat(), "end": e.isoformat()} for s, e in spans]

    raw = {
        "id": "P",
        "title": "Property activity",
        "format": "live",
        "timezone": str(zone),
        "sessions": local(sessions),
        "breaks": local(breaks),
    }
    try:
        return parse_catalog({"activities": [raw]}).activities["P"]
    except CatalogError:
        # A local span that ends before it starts once resolved (it starts in a spring-forward gap): the
        # catalog refuses it, which test_catalog covers; here it is no schedule at all.
        reject()


def attended(spans: list[tuple[datetime, datetime]]) -> list[dict[str, Any]]:
    return [{"started_at": s, "ended_at": e, "occurred_at": s} for s, e in spans]


@settings(deadline=None, max_examples=300, derandomize=True)
@given(
    zone=ZONES,
    change=st.sampled_from(CHANGES),
    sessions=st.lists(OFFSETS, min_size=1, max_size=3),
    breaks=st.lists(OFFSETS, max_size=3),
    segments=st.lists(OFFSETS, min_size=1, max_size=6),
    reported_in=st.lists(ZONES, min_size=1, max_size=3),
    order=st.randoms(use_true_random=False),
)
def test_participation_is_segments_within_the_schedule_in_elapsed_minutes(
    zone: tzinfo,
    change: datetime,
    sessions: Offsets,
    breaks: Offsets,
    segments: Offsets,
    reported_in: list[tzinfo],
    order: Any,
) -> None:
    activity = local_activity(zone, change, sessions, breaks)
    spans = [(change + timedelta(minutes=at), change + timedelta(minutes=at + length)) for at, length in segments]

    attended_minutes = set().union(*(minutes_of(s, e) for s, e in spans))
    session_minutes = set().union(*(minutes_of(i.start, i.end) for i in activity.sessions))
    break_minutes = set().union(*(minutes_of(i.start, i.end) for i in activity.breaks))
    schedule = session_minutes - break_minutes

    found = participation(activity, attended(spans), [f"k{i}" for i in range(len(spans))])
    assert found is not None
    assert found.minutes == len(attended_minutes & schedule)
    assert found.minutes <= len(attended_minutes)
    assert found.minutes <= len(schedule) == scheduled_minutes(activity)

    # The same evidence reordered, partly duplicated, and each segment given in some other zone's offset.
    again = spans + spans[: len(spans) // 2 + 1]
    order.shuffle(again)
    reported = [(s.astimezone(reported_in[i % len(reported_in)]), e.astimezone(zone)) for i, (s, e) in enumerate(again)]
    shuffled = participation(activity, attended(reported), [f"k{i}" for i in range(len(reported))])
    assert shuffled is not None and shuffled.minutes == found.minutes
