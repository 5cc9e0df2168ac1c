"""Participation time of one learner in one scheduled (live or RSS) activity (domain/credit-rules.md,
"Participation time").

Minutes = the union of the learner's join/leave segments (overlaps and duplicate rows count once), clipped to
the activity's scheduled sessions when the catalog lists them, minus the catalog's breaks.

All of it is done on UTC instants: `union` converts every bound to UTC first, because Python compares and
subtracts two datetimes of one `ZoneInfo` on the wall clock, which gains or loses an hour across a
daylight-saving change (the catalog already resolves its local times to UTC, see `reconcile.catalog`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from reconcile.catalog import Activity, Interval

Span = tuple[datetime, datetime]
_MS = timedelta(milliseconds=1)


def union(spans: Iterable[Span]) -> list[Span]:
    """Sorted, non-overlapping spans of UTC instants covering exactly what the (aware) `spans` cover."""
    merged: list[Span] = []
    for start, end in sorted([(start.astimezone(UTC), end.astimezone(UTC)) for start, end in spans]):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersect(spans: Sequence[Span], within: Sequence[Span]) -> list[Span]:
    """The parts of `spans` inside `within` (both unions)."""
    return union((max(a_start, b_start), min(a_end, b_end)) for a_start, a_end in spans for b_start, b_end in within)


def subtract(spans: Sequence[Span], holes: Sequence[Span]) -> list[Span]:
    """The parts of `spans` outside `holes` (both unions)."""
    result: list[Span] = []
    for start, end in spans:
        cursor = start
        for hole_start, hole_end in holes:
            if hole_end <= cursor or hole_start >= end:
                continue
            if hole_start > cursor:
                result.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
        if cursor < end:
            result.append((cursor, end))
    return result


def total_minutes(spans: Iterable[Span]) -> Decimal:
    return sum((Decimal((end - start) // _MS) / 60000 for start, end in spans), Decimal(0))


@lru_cache(maxsize=1024)  # a catalog's schedules, asked for by every decided pair of their activity
def _spans(intervals: tuple[Interval, ...]) -> tuple[Span, ...]:
    return tuple(union((i.start, i.end) for i in intervals))


@lru_cache(maxsize=1024)
def _offered(sessions: tuple[Interval, ...], breaks: tuple[Interval, ...]) -> Decimal:
    return total_minutes(subtract(_spans(sessions), _spans(breaks)))


def scheduled_minutes(activity: Activity) -> Decimal | None:
    """Creditable minutes the schedule offers (sessions minus breaks), or None without a schedule."""
    if not activity.sessions:
        return None
    return _offered(activity.sessions, activity.breaks)


@dataclass(frozen=True, slots=True)
class Participation:
    minutes: Decimal
    last_day: date
    evidence: tuple[str, ...]


def participation(activity: Activity, events: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> Participation | None:
    """Creditable participation from the timed events (`keys[i]` names `events[i]`), or None if none is timed.

    Events reporting only a duration (`minutes`, no join/leave times) cannot be placed on the clock, so
    breaks cannot be cut out of them: our choice is to take them as net minutes, capped at what the schedule
    offers, and to count the largest such report rather than their sum, because duplicate attendance
    reports of one session must not add up. A learner's minutes are the larger of that and the segments'.
    """
    segments: list[Span] = []
    bare: list[Decimal] = []
    timed_keys: list[str] = []
    days: list[date] = []
    for e, k in zip(events, keys, strict=True):  # one pass: this runs for every decided pair of the activity
        started, ended = e.get("started_at"), e.get("ended_at")
        if started and ended:
            segments.append((started, ended))
        elif e.get("minutes"):
            bare.append(Decimal(str(e["minutes"])))
        else:
            continue  # neither join/leave times nor a duration: not timed
        timed_keys.append(k)
        days.append(activity.local_day(ended or e["occurred_at"]))
    if not timed_keys:
        return None
    spans = union(segments)
    if activity.sessions:
        spans = intersect(spans, _spans(activity.sessions))
    if activity.breaks:
        spans = subtract(spans, _spans(activity.breaks))
    minutes = total_minutes(spans)
    if bare:
        offered = scheduled_minutes(activity)
        minutes = max(minutes, min(max(bare), offered) if offered is not None else max(bare))
    return Participation(minutes, max(days), tuple(sorted(timed_keys)))
