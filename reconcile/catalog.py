"""The activity catalog: which provider activity refs are which accredited activity, for which credits.

The same catalog reads from JSON (`{"activities": [...]}`) or CSV (one row per activity, see `CSV_COLUMNS`).
Everything a rule depends on is checked here, once, so a bad catalog fails the run with a message naming the
activity and the field instead of silently costing learners their credit.

Time zones: every catalog time (sessions, breaks, and the first and last instant of the accreditation window)
is resolved here, at load, to a UTC instant, so that durations and comparisons downstream are real elapsed
time. Python subtracts two datetimes sharing one `ZoneInfo` on the wall clock, which would credit a 00:00-04:00
session on a daylight-saving day as 4 hours when it lasts 3 or 5. A time without an offset is the activity's
local time, read as RFC 5545 (iCalendar, 3.3.5) reads a local DTSTART, which is zoneinfo's `fold=0`: an
ambiguous time (fall-back, it occurs twice) is its first occurrence; a nonexistent time (spring-forward gap)
takes the UTC offset in force before the gap, so 02:30 on 2026-03-08 in New York is 07:30Z (03:30 EDT). A
catalog needing the other reading gives an explicit offset.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconcile.credit_types import CREDIT_TYPES, QUARTER, Rounding

LIVE = "live"
ENDURING = "enduring"
RSS = "rss"  # regularly scheduled series (grand rounds): scheduled sessions, credited like live
FORMATS = (LIVE, ENDURING, RSS)
CENT = Decimal("0.01")

CSV_LIST_FIELDS = ("refs", "accreditors", "tags", "sessions", "breaks")
CSV_COLUMNS = (
    "id",
    "title",
    "provider",
    "format",
    "refs",
    "accreditors",
    "window_start",
    "window_end",
    "timezone",
    "sessions",
    "breaks",
    "evaluation_minutes",
    "tags",
)
DESIGNATION_COLUMN = "designation:"  # + credit type, e.g. designation:AMA_PRA_1
INCREMENT_COLUMN = "increment:"  # + credit type, e.g. increment:ANCC_CH


class CatalogError(ValueError):
    """The catalog is unusable; the message names the activity and the field."""


@dataclass(frozen=True)
class Interval:
    """A span between two UTC instants."""

    start: datetime
    end: datetime


def local_instant(local: datetime, zone: tzinfo) -> datetime:
    """The UTC instant of a wall-clock time in `zone` (the module's rule: `fold=0`, RFC 5545)."""
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


@lru_cache(maxsize=64)  # looked up for every local day the rules take, a handful of zones in a catalog
def _zone_named(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


@dataclass(frozen=True)
class Activity:
    activity_id: str
    title: str
    provider: str
    format: str
    accreditors: tuple[str, ...]
    designations: Mapping[str, Decimal]
    window_start: date | None = None
    window_end: date | None = None
    refs: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())
    increments: Mapping[str, Decimal] = field(default_factory=dict)
    sessions: tuple[Interval, ...] = ()
    breaks: tuple[Interval, ...] = ()
    evaluation_minutes: int = 0
    timezone: str = "UTC"
    # The window's day boundaries as UTC instants: the first instant of `window_start` and of the day after
    # `window_end` in the activity's zone (a local day is 23 or 25 hours on a daylight-saving change).
    window_opens: datetime | None = None
    window_closes: datetime | None = None

    @property
    def scheduled(self) -> bool:
        """Live and RSS activities credit participation time; enduring ones credit completion."""
        return self.format in (LIVE, RSS)

    def zone(self) -> tzinfo:
        return _zone_named(self.timezone)

    @cached_property
    def designated_types(self) -> frozenset[str]:
        """The credit types of `designations`, once per activity (the credit rules ask for every decided pair)."""
        return frozenset(self.designations)

    def local_day(self, moment: datetime) -> date:
        """The calendar day of `moment` where the activity takes place: windows and completion dates are
        the provider's dates, not UTC's (a 20:00 completion in Chicago on 31 Dec is still in December)."""
        return moment.astimezone(_zone_named(self.timezone)).date()

    def in_window(self, day: date) -> bool:
        return (self.window_start is None or day >= self.window_start) and (
            self.window_end is None or day <= self.window_end
        )

    def open_at(self, moment: datetime) -> bool:
        """Whether the accreditation window holds the instant `moment` (compared in UTC)."""
        instant = moment.astimezone(UTC)
        return (self.window_opens is None or instant >= self.window_opens) and (
            self.window_closes is None or instant < self.window_closes
        )

    def increment(self, credit_type: str) -> Decimal:
        return self.increments.get(credit_type, QUARTER)

    def activity_days(self) -> int:
        """Distinct local days with a scheduled session; an unscheduled activity counts as one day."""
        return max(1, len({self.local_day(s.start) for s in self.sessions}))


@dataclass(frozen=True)
class Catalog:
    activities: Mapping[str, Activity]
    by_ref: Mapping[str, Activity]

    def resolve(self, activity_ref: str) -> Activity | None:
        """An activity by any provider ref listed for it, or by its catalog id."""
        return self.by_ref.get(activity_ref) or self.activities.get(activity_ref)


class _Fields:
    """Typed reads of one raw activity, raising CatalogError that names the activity and field."""

    def __init__(self, raw: Mapping[str, Any], activity_id: str) -> None:
        self.raw = raw
        self.activity_id = activity_id

    def fail(self, name: str, problem: str) -> CatalogError:
        return CatalogError(f"activity {self.activity_id}: {name} {problem}")

    def text(self, name: str, default: str | None = None) -> str:
        value = self.raw.get(name, default)
        if not isinstance(value, str) or (default is None and not value.strip()):
            raise self.fail(name, "must be a non-empty string")
        return value.strip()

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.raw.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(name, "must be a list of non-empty strings")
        return tuple(v.strip() for v in value)

    def amount(self, name: str, value: Any) -> Decimal:
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise self.fail(name, "is not a number") from None
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT):
            raise self.fail(name, "must be a positive amount with at most 2 decimals")
        return amount

    def amounts(self, name: str) -> dict[str, Decimal]:
        value = self.raw.get(name) or {}
        if not isinstance(value, dict):
            raise self.fail(name, "must map credit types to amounts")
        return {str(k): self.amount(f"{name}.{k}", v) for k, v in value.items()}

    def day(self, name: str, value: Any) -> date | None:
        if value in (None, ""):
            return None
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise self.fail(name, "is not an ISO date (YYYY-MM-DD)") from None

    def moment(self, name: str, value: Any, zone: tzinfo) -> datetime:
        """The UTC instant of an ISO 8601 date-time; without an offset it is local to `zone`, ambiguous and
        nonexistent local times resolved by `local_instant` (the module docstring's rule)."""
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise self.fail(name, "is not an ISO 8601 date-time") from None
        return moment.astimezone(UTC) if moment.tzinfo else local_instant(moment, zone)

    def intervals(self, name: str, zone: tzinfo) -> tuple[Interval, ...]:
        value = self.raw.get(name) or []
        if not isinstance(value, list):
            raise self.fail(name, "must be a list of {start, end}")
        intervals = []
        for index, item in enumerate(value):
            where = f"{name}[{index}]"
            if not isinstance(item, dict) or "start" not in item or "end" not in item:
                raise self.fail(where, "must have a start and an end")
            interval = Interval(
                self.moment(f"{where}.start", item["start"], zone), self.moment(f"{where}.end", item["end"], zone)
            )
            if interval.end <= interval.start:
                raise self.fail(where, "ends before it starts")
            intervals.append(interval)
        return tuple(sorted(intervals, key=lambda i: (i.start, i.end)))


def _zone(fields: _Fields) -> tuple[str, tzinfo]:
    name = fields.text("timezone", "UTC") or "UTC"
    if name == "UTC":
        return name, UTC
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise fields.fail("timezone", "is not an IANA time zone name") from None


def _day_start(day: date, zone: tzinfo) -> datetime:
    """The first instant of a local day; a midnight lost to a spring-forward gap resolves to the gap's end."""
    return local_instant(datetime.combine(day, time()), zone)


def _check_designations(fields: _Fields, activity: Activity) -> None:
    for credit_type in activity.increments:
        spec = CREDIT_TYPES.get(credit_type)
        if credit_type not in activity.designations or spec is None or spec.rounding is not Rounding.DOWN_TO_INCREMENT:
            raise fields.fail(f"increments.{credit_type}", "applies only to a designated round-down credit type")
    for credit_type, amount in activity.designations.items():
        spec = CREDIT_TYPES.get(credit_type)
        where = f"designations.{credit_type}"
        if spec is None:
            raise fields.fail(where, f"is not a credit type we issue ({', '.join(CREDIT_TYPES)})")
        if not spec.designated:
            raise fields.fail(where, "is self-claimed by learners; providers cannot designate it")
        if spec.accreditor not in activity.accreditors:
            raise fields.fail(where, f"needs {spec.accreditor} among the activity's accreditors")
        if amount % activity.increment(credit_type):
            raise fields.fail(where, f"must be a multiple of its increment {activity.increment(credit_type)}")
        if spec.portion_of and amount > activity.designations.get(spec.portion_of, Decimal(0)):
            raise fields.fail(where, f"is a portion of {spec.portion_of} and cannot exceed its designation")


def _activity(raw: Mapping[str, Any]) -> Activity:
    if not isinstance(raw, dict):
        raise CatalogError("an activity is not an object")
    activity_id = str(raw.get("id") or "").strip()
    if not activity_id:
        raise CatalogError("an activity has no id")
    fields = _Fields(raw, activity_id)
    timezone, zone = _zone(fields)
    activity_format = fields.text("format", ENDURING).lower()
    if activity_format not in FORMATS:
        raise fields.fail("format", f"must be one of {', '.join(FORMATS)}")
    window = raw.get("window") or {}
    if not isinstance(window, dict):
        raise fields.fail("window", "must be {start, end}")
    evaluation = raw.get("evaluation_minutes") or 0
    if not isinstance(evaluation, int) or isinstance(evaluation, bool) or not 0 <= evaluation <= 600:
        raise fields.fail("evaluation_minutes", "must be whole minutes between 0 and 600")
    window_start = fields.day("window.start", window.get("start"))
    window_end = fields.day("window.end", window.get("end"))
    activity = Activity(
        activity_id=activity_id,
        title=fields.text("title"),
        provider=fields.text("provider", ""),
        format=activity_format,
        accreditors=tuple(a.upper() for a in fields.strings("accreditors")),
        designations=fields.amounts("designations"),
        window_start=window_start,
        window_end=window_end,
        refs=fields.strings("refs"),
        tags=tuple(t.lower() for t in fields.strings("tags")),
        increments=fields.amounts("increments"),
        sessions=fields.intervals("sessions", zone),
        breaks=fields.intervals("breaks", zone),
        evaluation_minutes=evaluation,
        timezone=timezone,
        window_opens=_day_start(window_start, zone) if window_start else None,
        window_closes=_day_start(window_end + timedelta(days=1), zone) if window_end else None,
    )
    if activity.window_start and activity.window_end and activity.window_end < activity.window_start:
        raise fields.fail("window", "ends before it starts")
    if not activity.scheduled and (activity.sessions or activity.breaks):
        raise fields.fail("sessions", "and breaks apply only to live and rss activities")
    _check_designations(fields, activity)
    return activity


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    raw_activities = data.get("activities") if isinstance(data, dict) else None
    if not isinstance(raw_activities, list):
        raise CatalogError("the catalog needs an 'activities' list")
    activities: dict[str, Activity] = {}
    by_ref: dict[str, Activity] = {}
    for activity in map(_activity, raw_activities):
        if activity.activity_id in activities:
            raise CatalogError(f"activity {activity.activity_id} is listed twice")
        activities[activity.activity_id] = activity
        for ref in activity.refs:
            if by_ref.setdefault(ref, activity) is not activity:
                raise CatalogError(f"ref {ref} is listed for {by_ref[ref].activity_id} and {activity.activity_id}")
    for ref, activity in by_ref.items():
        if ref in activities and activities[ref] is not activity:
            raise CatalogError(f"ref {ref} of {activity.activity_id} is another activity's id")
    return Catalog(activities=activities, by_ref=by_ref)


def _csv_interval(text: str) -> dict[str, str]:
    start, _, end = text.partition("/")
    return {"start": start.strip(), "end": end.strip()}


def _csv_row(row: Mapping[str, str], line: int) -> dict[str, Any]:
    raw: dict[str, Any] = {"designations": {}, "increments": {}, "window": {}}
    for column, value in row.items():
        if column is None:
            raise CatalogError(f"catalog CSV line {line}: more values than columns")
        value = (value or "").strip()
        if column.startswith(DESIGNATION_COLUMN):
            if value:
                raw["designations"][column.removeprefix(DESIGNATION_COLUMN)] = value
        elif column.startswith(INCREMENT_COLUMN):
            if value:
                raw["increments"][column.removeprefix(INCREMENT_COLUMN)] = value
        elif column in ("window_start", "window_end"):
            raw["window"][column.removeprefix("window_")] = value or None
        elif column in CSV_LIST_FIELDS:
            items = [item.strip() for item in value.split(";") if item.strip()]
            raw[column] = [_csv_interval(i) for i in items] if column in ("sessions", "breaks") else items
        elif column == "evaluation_minutes":
            try:
                raw[column] = int(value or 0)
            except ValueError:
                raise CatalogError(f"catalog CSV line {line}: evaluation_minutes is not whole minutes") from None
        elif column in CSV_COLUMNS:
            if value:
                raw[column] = value
        else:
            raise CatalogError(f"catalog CSV line {line}: unknown column {column}")
    return raw


def parse_catalog_csv(text: str) -> Catalog:
    """One activity per row; lists separated by ';'; sessions and breaks as ISO 8601 intervals `start/end`."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "id" not in reader.fieldnames:
        raise CatalogError("the catalog CSV needs a header row with an 'id' column")
    return parse_catalog({"activities": [_csv_row(row, reader.line_num) for row in reader]})


def parse_catalog_text(text: str, kind: str) -> Catalog:
    """`kind` is "json" or "csv"."""
    if kind == "csv":
        return parse_catalog_csv(text)
    try:
        return parse_catalog(json.loads(text))
    except json.JSONDecodeError as err:
        raise CatalogError(f"the catalog is not valid JSON: {err}") from err


def catalog_kind(name: str, content_type: str = "") -> str:
    """CSV when the name or the media type says so; JSON otherwise."""
    return "csv" if name.lower().endswith(".csv") or "csv" in content_type.lower() else "json"


def load_catalog(path: Path | str) -> Catalog:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise CatalogError(f"{path}: {err.strerror}") from err
    return parse_catalog_text(text, catalog_kind(path.name))
