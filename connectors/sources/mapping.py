"""Config-driven records (CSV drops, provider REST): which provider field feeds which event field, and the
one function that turns the looked-up values into an AttendanceEvent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from connectors.config import SourceBaseConfig
from connectors.sources import fields as f
from connectors.sources.base import BaseSource, Event, RawRecord, RecordError
from reconcile.vocabulary import SCHEMA_INVALID, UNSUPPORTED_KIND

EVENT_NAMESPACE = uuid.UUID("5d0e7c1a-94b2-4f3e-8a57-c2d16e0b9f48")
MAPPABLE_FIELDS = (
    "event_id",
    "kind",
    "occurred_at",
    "started_at",
    "ended_at",
    "minutes",
    "activity",
    "npi",
    "email",
    "given_name",
    "family_name",
    "dob_month_day",
    "profession",
    "board_id",
    "licence_number",
    "licence_state",
    "board",
    "moc_consent",
    "claimed_amount",
)
MAPPABLE_KINDS = ("ATTENDED", "COMPLETED", "CLAIMED")
# What sign-in sheets and provider exports write besides ISO 8601; tried in this order.
DEFAULT_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
)


@dataclass(frozen=True)
class FieldMapping:
    """Where each event field comes from. `fields` maps our field names (MAPPABLE_FIELDS) to the provider's
    column name or dotted JSON path; `kinds` maps the provider's status values to event kinds; `activities`
    maps the provider's activity values to catalog refs (unmapped values pass through, so the catalog
    decides); `activity` is the one activity of every record when no activity field is mapped."""

    fields: Mapping[str, str]
    kinds: Mapping[str, str] = field(default_factory=dict)
    default_kind: str = "ATTENDED"
    activities: Mapping[str, str] = field(default_factory=dict)
    activity: str | None = None
    timezone: tzinfo = UTC
    time_formats: tuple[str, ...] = DEFAULT_TIME_FORMATS
    claimed_credit_type: str = "AMA_PRA_1"

    def __post_init__(self) -> None:
        unknown = set(self.fields) - set(MAPPABLE_FIELDS)
        if unknown:
            raise ValueError(f"unknown mapped fields {sorted(unknown)}; expected some of {', '.join(MAPPABLE_FIELDS)}")
        bad_kinds = {*self.kinds.values(), self.default_kind} - set(MAPPABLE_KINDS)
        if bad_kinds:
            raise ValueError(f"mapped kinds must be among {', '.join(MAPPABLE_KINDS)}, not {sorted(bad_kinds)}")
        if "activity" not in self.fields and not self.activity:
            raise ValueError("map an activity field or name the one activity of every record")
        object.__setattr__(self, "kinds", {k.strip().lower(): v for k, v in self.kinds.items()})

    def event(self, source: BaseSource, record: RawRecord, values: Mapping[str, Any]) -> Event:
        """The event of one record, from `values` (our field name → the provider's raw value)."""
        kind = self._kind(values.get("kind"))
        started_at = self._optional_time(values, "started_at")
        ended_at = self._optional_time(values, "ended_at")
        minutes = f.number(values.get("minutes"), "minutes")
        if started_at and ended_at:
            minutes = f.segment_minutes(started_at, ended_at, "attendance")
        elif minutes is not None:
            minutes = f.plausible_minutes(minutes, "minutes")
        occurred_at = self._optional_time(values, "occurred_at") or ended_at or started_at
        if occurred_at is None:
            raise RecordError(SCHEMA_INVALID, "no occurred_at, ended_at or started_at time")
        claimed = f.number(values.get("claimed_amount"), "claimed_amount")
        if claimed is not None and claimed <= 0:
            raise RecordError(SCHEMA_INVALID, "claimed_amount must be more than 0")
        learner = f.learner(values)
        return source.new_event(
            record,
            event_id=f.text(values.get("event_id"), "event_id") or content_id(values),
            kind=kind,
            occurred_at=occurred_at,
            started_at=started_at if started_at and ended_at else None,
            ended_at=ended_at if started_at and ended_at else None,
            minutes=minutes,
            activity_ref=self._activity(values.get("activity")),
            learner=learner,
            claimed=[{"credit_type": self.claimed_credit_type, "amount": claimed}] if claimed is not None else None,
        )

    def _kind(self, raw: Any) -> str:
        if "kind" not in self.fields:
            return self.default_kind
        value = f.text(raw, "kind", required=True)
        assert value is not None
        kind = self.kinds.get(value.lower())
        if kind is None:
            raise RecordError(UNSUPPORTED_KIND, f"kind value is not one of {', '.join(sorted(self.kinds))}")
        return kind

    def _optional_time(self, values: Mapping[str, Any], name: str) -> Any:
        return f.optional_instant(values.get(name), name, default_tz=self.timezone, formats=self.time_formats)

    def _activity(self, raw: Any) -> str:
        value = f.text(raw, "activity") if "activity" in self.fields else self.activity
        if not value:
            raise RecordError(SCHEMA_INVALID, "activity is missing")
        return self.activities.get(value, value)


def content_id(values: Mapping[str, Any]) -> str:
    """A stable event id from a record's mapped content, for providers that give none: the same row sent
    again (in a re-sent or corrected file) is the same event, so it dedupes instead of counting twice."""
    canonical = json.dumps({k: values[k] for k in sorted(values)}, sort_keys=True, default=str)
    return str(uuid.uuid5(EVENT_NAMESPACE, canonical))


class MappedSourceConfig(SourceBaseConfig):
    """Sources whose records are mapped field by field from config (CSV drops, provider REST)."""

    fields: dict[str, str] = Field(description="Event field → the provider's column name or dotted JSON path.")
    kinds: dict[str, Literal["ATTENDED", "COMPLETED", "CLAIMED"]] = Field(
        default_factory=dict, description="Provider status value → event kind (when a kind field is mapped)."
    )
    default_kind: Literal["ATTENDED", "COMPLETED", "CLAIMED"] = "ATTENDED"
    activities: dict[str, str] = Field(
        default_factory=dict, description="Provider activity value → catalog activity; others pass as they are."
    )
    activity: str | None = Field(None, description="The one activity of every record, when none is mapped.")
    timezone: str = Field("UTC", description="IANA zone of times written without an offset.")
    time_formats: list[str] = Field(default_factory=list, description="strptime formats; empty = the defaults.")
    claimed_credit_type: str = "AMA_PRA_1"

    @model_validator(mode="after")
    def _mapping_is_usable(self) -> MappedSourceConfig:
        unknown = set(self.fields) - set(MAPPABLE_FIELDS)
        if unknown:
            raise ValueError(f"source {self.name}: unknown fields {sorted(unknown)}; use {', '.join(MAPPABLE_FIELDS)}")
        if "activity" not in self.fields and not self.activity:
            raise ValueError(f"source {self.name}: map an `activity` field or set `activity`")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"source {self.name}: unknown timezone {self.timezone!r}") from None
        return self

    def mapping(self) -> FieldMapping:
        return FieldMapping(
            fields=self.fields,
            kinds=self.kinds,
            default_kind=self.default_kind,
            activities=self.activities,
            activity=self.activity,
            timezone=ZoneInfo(self.timezone),
            time_formats=tuple(self.time_formats) or DEFAULT_TIME_FORMATS,
            claimed_credit_type=self.claimed_credit_type,
        )
