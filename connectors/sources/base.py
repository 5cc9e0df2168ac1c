"""The Source protocol (DESIGN §6) and what every source shares: pages of raw records in, AttendanceEvents or
reason-coded rejections out, each rejection keeping the record's source position.

A connector subclasses `BaseSource` (or `HttpSource`, which adds the paged HTTP loop) and declares how one
raw record becomes events in `parse`, raising `RecordError` with a stable reason code when it cannot.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from reconcile.vocabulary import FIELD_TOO_LARGE

log = logging.getLogger(__name__)

# No identifier, ref or timestamp we carry comes near this; a longer value is a broken or hostile record.
MAX_FIELD_CHARS = 1024
# Dead letters travel on Kafka: an oversized record keeps its first bytes, and its reason says so.
MAX_PAYLOAD_BYTES = 64 * 1024

LEARNER_FIELDS = (
    "npi",
    "email",
    "licence",
    "board_id",
    "given_name",
    "family_name",
    "dob_month_day",
    "profession",
    "board",
    "moc_consent",
)


@dataclass(frozen=True)
class Problem:
    """Why a raw record is unusable, found while reading it (a malformed page or row, undecodable bytes)."""

    reason_code: str
    reason: str


@dataclass(frozen=True)
class RawRecord:
    source_ref: str
    data: Any
    problem: Problem | None = None

    def payload(self) -> bytes:
        """The record's original content, kept in its dead letter (at most MAX_PAYLOAD_BYTES of it)."""
        return self._full_payload()[:MAX_PAYLOAD_BYTES]

    def payload_size(self) -> int:
        return len(self._full_payload())

    def _full_payload(self) -> bytes:
        if isinstance(self.data, bytes):
            return self.data
        return json.dumps(self.data, sort_keys=True, default=str).encode()


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

    def check(self) -> None:
        """Raise SourceCheckError if the source is unreachable or refuses our credentials."""
        ...

    def pages(self, cursor: str | None) -> Iterator[Page]:
        """Pages after `cursor`; each page's `next_cursor` covers it and every page before it."""
        ...

    def to_events(self, record: RawRecord) -> Iterable[Event | Rejection]: ...


class RecordError(ValueError):
    """One raw record cannot become an event; the message names fields, never their values."""

    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(reason)
        self.reason_code = reason_code


class SourceCheckError(RuntimeError):
    """`check()` failed: the message says which source, what was tried and what to fix (no secrets)."""


@dataclass
class SourceMetrics:
    """What the source read since it was built (the pipeline builds a source per pull). HTTP sources add
    their client's request counts when they log."""

    pages: int = 0
    records: int = 0
    malformed_pages: int = 0


class BaseSource(ABC):
    """What every source shares: naming, metrics and the record → events/rejection boundary."""

    kind: ClassVar[str]

    def __init__(self, name: str) -> None:
        self.name = name
        self.metrics = SourceMetrics()

    @abstractmethod
    def check(self) -> None: ...

    def pages(self, cursor: str | None) -> Iterator[Page]:
        """The pages `read` yields, then the pull log (once the last page is read: a pull cut short by an
        error or a kill logs nothing it did not finish)."""
        yield from self.read(cursor)
        m = self.metrics
        log.info(
            "source %s read %d pages, %d records, %d malformed pages%s",
            self.name,
            m.pages,
            m.records,
            m.malformed_pages,
            self.pull_summary(),
        )

    @abstractmethod
    def read(self, cursor: str | None) -> Iterator[Page]:
        """Pages after `cursor` (see `Source.pages`)."""

    def pull_summary(self) -> str:
        """What the pull log adds after the page and record counts."""
        return ""

    @abstractmethod
    def parse(self, record: RawRecord) -> Iterable[Event]:
        """The events of one raw record; raise RecordError when it cannot yield any."""

    def to_events(self, record: RawRecord) -> list[Event | Rejection]:
        if record.problem is not None:
            return [self._reject(record, record.problem.reason_code, record.problem.reason)]
        try:
            events = list(self.parse(record))
            for event in events:
                _check_sizes(event, "")
        except RecordError as err:
            return [self._reject(record, err.reason_code, str(err))]
        return list(events)

    def new_event(
        self,
        record: RawRecord,
        *,
        event_id: str,
        kind: str,
        occurred_at: datetime,
        learner: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Event:
        """An AttendanceEvent with every optional field present (None unless given)."""
        event: Event = {
            "event_id": event_id,
            "source": self.name,
            "source_ref": record.source_ref,
            "kind": kind,
            "occurred_at": occurred_at,
            "started_at": None,
            "ended_at": None,
            "minutes": None,
            "activity_ref": None,
            "learner": {key: (learner or {}).get(key) for key in LEARNER_FIELDS},
            "claimed": None,
            "voids_event_id": None,
        }
        unknown = set(fields) - set(event)
        if unknown:
            raise TypeError(f"not AttendanceEvent fields: {', '.join(sorted(unknown))}")
        event.update(fields)
        return event

    def _reject(self, record: RawRecord, reason_code: str, reason: str) -> Rejection:
        size = record.payload_size()
        if size > MAX_PAYLOAD_BYTES:
            reason = f"{reason} (payload cut to its first {MAX_PAYLOAD_BYTES} of {size} bytes)"
        return Rejection(record, reason_code, reason)


def _check_sizes(value: Any, path: str) -> None:
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        raise RecordError(FIELD_TOO_LARGE, f"{path or 'a field'} is longer than {MAX_FIELD_CHARS} characters")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_sizes(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            _check_sizes(item, path)
