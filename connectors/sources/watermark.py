"""A time watermark that neither skips nor repeats records sharing one instant (xAPI `stored`, REST `updated_at`).

The watermark is the latest instant fully read plus the ids already read at exactly that instant. Resuming
at (or just before) the instant and skipping those ids is exact even when a page boundary or a crash falls
between two records with the same timestamp.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, TypeAdapter

from connectors.sources import fields as f
from connectors.sources.base import RecordError


def format_instant(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the millisecond unless the instant is finer (no precision is lost)."""
    precision = "microseconds" if moment.microsecond % 1000 else "milliseconds"
    return moment.astimezone(UTC).isoformat(timespec=precision).replace("+00:00", "Z")


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else f.instant(value, "cursor")


def _ids(value: Any) -> Any:
    return () if value is None else value


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How cursors (`cursor.py`) write what they hold: instants as `format_instant` does, id sets sorted.
Instant = Annotated[datetime, BeforeValidator(_instant), PlainSerializer(format_instant)]
Ids = Annotated[frozenset[str], BeforeValidator(_ids), PlainSerializer(sorted)]


@dataclass(frozen=True)
class Watermark:
    at: Instant = EPOCH
    ids: Ids = frozenset()

    def dump(self) -> dict[str, object]:
        return _WATERMARK.dump_python(self, mode="json")  # type: ignore[no-any-return]

    @classmethod
    def load(cls, data: dict[str, object] | None) -> Watermark | None:
        return _WATERMARK.validate_python(data) if data else None

    def covers(self, at: datetime, record_id: str) -> bool:
        return at == self.at and record_id in self.ids

    def advance(self, seen: Iterable[tuple[object, object]]) -> Watermark:
        """Moved past every (instant, id) seen; unparseable instants cannot move it."""
        mark = self
        for raw_at, record_id in seen:
            try:
                at = f.instant(raw_at, "watermark")
            except RecordError:
                continue
            if at == mark.at:
                mark = Watermark(mark.at, mark.ids | {str(record_id)})
            elif at > mark.at:
                mark = Watermark(at, frozenset({str(record_id)}))
        return mark

    def capped(self, limit: datetime) -> Watermark:
        """Never beyond `limit` (the pull's start): records written during a pull are read again next time."""
        return self if self.at <= limit else Watermark(limit)


_WATERMARK = TypeAdapter(Watermark)
