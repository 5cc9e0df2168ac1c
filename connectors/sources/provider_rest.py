"""A provider's REST API: generic paged JSON, incremental on an `updated_at`-style field, fields mapped by
dotted path in config. Pagination by opaque cursor (`meta.next_cursor` → `?cursor=`) or by page number.

The cursor is a watermark on the replication field (instant + ids read at it) and, during a walk, the
position reached, so a crash between pages resumes at the next page. The watermark is promoted when the
walk ends, capped at the pull's start so records written during the pull are read again next time (they
dedupe downstream by event id); the order the API returns records in does not matter.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.http import FatalAPIError, HttpClient
from connectors.sources import fields as f
from connectors.sources.base import Event, Page, RawRecord, RecordError
from connectors.sources.fields import dotted
from connectors.sources.http_source import HttpSource, NextToken, Pagination, Token
from connectors.sources.mapping import FieldMapping
from connectors.sources.watermark import EPOCH, Watermark, format_instant
from reconcile.vocabulary import SCHEMA_INVALID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestCursor:
    """`mark`: everything up to it is read. `token`/`high`/`pages`: the walk from `mark` in progress, if any
    (the next page's token, the furthest record seen, and how many pages were read before the token)."""

    mark: Watermark | None = None
    token: Token | None = None
    high: Watermark | None = None
    pages: int = 0

    def dump(self) -> str:
        return json.dumps(
            {
                "mark": self.mark.dump() if self.mark else None,
                "token": self.token,
                "high": self.high.dump() if self.high else None,
                "pages": self.pages,
            }
        )

    @classmethod
    def load(cls, text: str | None) -> RestCursor:
        if not text:
            return cls()
        data = json.loads(text)
        mark, high = Watermark.load(data.get("mark")), Watermark.load(data.get("high"))
        return cls(mark, data.get("token"), high, int(data.get("pages", 0)))


class ProviderRestSource(HttpSource):
    """Records changed since the watermark, mapped to events by `mapping` (dotted paths into each record)."""

    kind = "provider_rest"
    path = "/api/v1/completions"
    records_path = "data"
    pagination: Pagination = NextToken(field="meta.next_cursor", param="cursor")
    page_size_param = "limit"
    since_param = "updated_since"
    updated_at_path = "updated_at"

    def __init__(
        self,
        name: str,
        client: HttpClient,
        mapping: FieldMapping,
        *,
        page_size: int = 100,
        path: str | None = None,
        records_path: str | None = None,
        pagination: Pagination | None = None,
        page_size_param: str | None = None,
        since_param: str | None = None,
        updated_at_path: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(name, client, page_size)
        if "event_id" not in mapping.fields:
            raise ValueError("a provider REST mapping needs an event_id path: the watermark keys records by it")
        self.mapping = mapping
        self.path = path or self.path
        self.records_path = records_path or self.records_path
        self.pagination = pagination or self.pagination
        self.page_size_param = page_size_param or self.page_size_param
        self.since_param = since_param or self.since_param
        self.updated_at_path = updated_at_path or self.updated_at_path
        self._now = now

    def pages(self, cursor: str | None) -> Iterator[Page]:
        state = RestCursor.load(cursor)
        started = self._now()
        try:
            yield from self._walk(state, started)
        except FatalAPIError as err:
            if state.token is None or err.status != 400:
                raise
            # A saved page cursor can expire; walking again from the watermark repeats pages, never skips one.
            log.info("source %s: saved page cursor refused, walking again from the watermark", self.name)
            yield from self._walk(RestCursor(state.mark), started)
        self.log_pull()

    def _walk(self, state: RestCursor, started: datetime) -> Iterator[Page]:
        params = self.page_params()
        if state.mark:
            params[self.since_param] = format_instant(state.mark.at)
        high = state.high or state.mark or Watermark()
        cursor = state
        walk = f"{self.path} since {params[self.since_param]}" if state.mark else self.path
        for page in self.fetch(self.path, params, state.token):
            where = f"{walk} page {state.pages + page.number}"
            if page.problem:
                yield Page([RawRecord(where, page.raw, page.problem)], cursor.dump())
                return
            fresh = [r for r in page.records if not (state.mark and self._covered(r, state.mark))]
            seen = [(dotted(r, self.updated_at_path), self._id(r)) for r in fresh if self._id(r)]
            high = high.advance(seen)
            if page.next_token is None:
                cursor = RestCursor(high.capped(started) if high.at != EPOCH else state.mark)
            else:
                cursor = RestCursor(state.mark, page.next_token, high, state.pages + page.number)
            yield Page([self._raw(r) for r in fresh], cursor.dump())

    def _id(self, record: Any) -> str | None:
        value = dotted(record, self.mapping.fields["event_id"])
        return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None

    def _covered(self, record: Any, mark: Watermark) -> bool:
        record_id = self._id(record)
        try:
            updated_at = f.instant(dotted(record, self.updated_at_path), self.updated_at_path)
        except RecordError:
            return False
        return record_id is not None and mark.covers(updated_at, record_id)

    def _raw(self, record: Any) -> RawRecord:
        """Found again by id; a record without a usable id, by a digest of its content. Not by its position:
        such a record cannot be covered by the watermark, so it is read again on every pull, at a position
        that moves with the data, and each new position would be a new dead letter."""
        record_id = self._id(record)
        if record_id and len(record_id) <= 100 and record_id.isprintable():
            return RawRecord(f"{self.path} record {record_id}", record)
        content = json.dumps(record, sort_keys=True, default=str).encode("utf-8", "surrogatepass")
        return RawRecord(f"{self.path} record sha256:{hashlib.sha256(content).hexdigest()[:16]}", record)

    def parse(self, record: RawRecord) -> Iterable[Event]:
        if not isinstance(record.data, dict):
            raise RecordError(SCHEMA_INVALID, "record is not a JSON object")
        f.instant(dotted(record.data, self.updated_at_path), self.updated_at_path)
        values = {key: dotted(record.data, path) for key, path in self.mapping.fields.items()}
        if values.get("event_id") is None:
            raise RecordError(SCHEMA_INVALID, "event_id is missing")
        return [self.mapping.event(self, record, values)]
