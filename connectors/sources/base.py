"""The Source protocol (DESIGN §6): pages of raw records in, AttendanceEvents or rejections out."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

SCHEMA_INVALID = "SCHEMA_INVALID"
UNSUPPORTED_VERB = "UNSUPPORTED_VERB"
IMPLAUSIBLE_DURATION = "IMPLAUSIBLE_DURATION"


@dataclass(frozen=True)
class RawRecord:
    source_ref: str
    data: Any

    def payload(self) -> bytes:
        """The record's original content, kept verbatim in its dead letter."""
        return self.data if isinstance(self.data, bytes) else json.dumps(self.data, sort_keys=True).encode()


@dataclass(frozen=True)
class Page:
    records: list[RawRecord]
    next_cursor: str | None


@dataclass(frozen=True)
class Rejection:
    """A raw record that cannot become an event; `reason` names the problem, never the values."""

    record: RawRecord
    reason_code: str
    reason: str


Event = dict[str, Any]


class Source(Protocol):
    name: str

    def pages(self, cursor: str | None) -> Iterator[Page]:
        """Pages after `cursor`; each page's `next_cursor` covers it and every page before it."""
        ...

    def to_events(self, record: RawRecord) -> Iterable[Event | Rejection]: ...
