"""The activity catalog: which provider activity refs are which accredited activity, for which credits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path


class CatalogError(ValueError):
    """The catalog file is unusable; the message names the activity and field."""


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

    def in_window(self, day: date) -> bool:
        return (self.window_start is None or day >= self.window_start) and (
            self.window_end is None or day <= self.window_end
        )


@dataclass(frozen=True)
class Catalog:
    activities: Mapping[str, Activity]
    by_ref: Mapping[str, Activity]

    def resolve(self, activity_ref: str) -> Activity | None:
        """An activity by its catalog id or by any provider ref listed for it."""
        return self.by_ref.get(activity_ref) or self.activities.get(activity_ref)


def _activity(raw: Mapping[str, object]) -> Activity:
    activity_id = str(raw.get("id") or "")
    if not activity_id:
        raise CatalogError("an activity has no id")
    try:
        window = raw.get("window") or {}
        assert isinstance(window, dict)
        designations = raw.get("designations") or {}
        assert isinstance(designations, dict)
        return Activity(
            activity_id=activity_id,
            title=str(raw["title"]),
            provider=str(raw.get("provider", "")),
            format=str(raw.get("format", "enduring")),
            accreditors=tuple(raw.get("accreditors", ())),  # type: ignore[arg-type]
            designations={str(k): Decimal(str(v)) for k, v in designations.items()},
            window_start=date.fromisoformat(window["start"]) if window.get("start") else None,
            window_end=date.fromisoformat(window["end"]) if window.get("end") else None,
            refs=tuple(raw.get("refs", ())),  # type: ignore[arg-type]
            tags=tuple(raw.get("tags", ())),  # type: ignore[arg-type]
        )
    except (KeyError, ValueError, AssertionError, ArithmeticError) as err:
        raise CatalogError(f"activity {activity_id}: {type(err).__name__} {err}") from err


def parse_catalog(data: Mapping[str, object]) -> Catalog:
    raw_activities = data.get("activities")
    if not isinstance(raw_activities, list):
        raise CatalogError("the catalog needs an 'activities' list")
    activities = [_activity(raw) for raw in raw_activities]
    return Catalog(
        activities={a.activity_id: a for a in activities},
        by_ref={ref: a for a in activities for ref in a.refs},
    )


def load_catalog(path: Path) -> Catalog:
    try:
        return parse_catalog(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise CatalogError(f"{path}: {err}") from err
