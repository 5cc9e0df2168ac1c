"""A provider's REST API: generic paged JSON, incremental on an `updated_at`-style field, fields mapped by
dotted path in config. Pagination by opaque cursor (`meta.next_cursor` → `?cursor=`) or by page number.

The cursor is `IncrementalHttpSource`'s for an unsorted API: a watermark on the replication field (instant
+ ids read at it) promoted when the walk ends and capped at the pull's start, and during a walk the position
reached; the order the API returns records in does not matter.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import model_validator

from connectors.config import Wiring, source_kind
from connectors.http import HttpClient
from connectors.sources import fields as f
from connectors.sources.base import Event, RawRecord, RecordError
from connectors.sources.fields import dotted
from connectors.sources.http_source import NextToken, PageNumber, Pagination
from connectors.sources.mapping import FieldMapping, MappedSourceConfig
from connectors.sources.streams import IncrementalHttpSource
from reconcile.vocabulary import SCHEMA_INVALID


class ProviderRestSource(IncrementalHttpSource):
    """Records changed since the watermark, mapped to events by `mapping` (dotted paths into each record)."""

    kind = "provider_rest"
    path = "/api/v1/completions"
    records_path = "data"
    pagination: Pagination = NextToken(field="meta.next_cursor", param="cursor")
    page_size_param = "limit"
    since_param = "updated_since"
    replication_key = "updated_at"

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
        self.replication_key = updated_at_path or self.replication_key
        self.tie_breaker = mapping.fields["event_id"]

    def raw_record(self, record: Any, position: str) -> RawRecord:
        """Found again by id; a record without a usable id, by a digest of its content. Not by its position:
        such a record cannot be covered by the watermark, so it is read again on every pull, at a position
        that moves with the data, and each new position would be a new dead letter."""
        record_id = self.record_id(record)
        if record_id and len(record_id) <= 100 and record_id.isprintable():
            return RawRecord(f"{self.path} record {record_id}", record)
        content = json.dumps(record, sort_keys=True, default=str).encode("utf-8", "surrogatepass")
        return RawRecord(f"{self.path} record sha256:{hashlib.sha256(content).hexdigest()[:16]}", record)

    def parse(self, record: RawRecord) -> Iterable[Event]:
        if not isinstance(record.data, dict):
            raise RecordError(SCHEMA_INVALID, "record is not a JSON object")
        f.instant(dotted(record.data, self.replication_key), self.replication_key)
        values = {key: dotted(record.data, path) for key, path in self.mapping.fields.items()}
        if values.get("event_id") is None:
            raise RecordError(SCHEMA_INVALID, "event_id is missing")
        return [self.mapping.event(self, record, values)]


@source_kind
class ProviderRestSourceConfig(MappedSourceConfig):
    kind: Literal["provider_rest"] = "provider_rest"
    path: str = "/api/v1/completions"
    records_path: str = "data"
    pagination: Literal["cursor", "page"] = "cursor"
    next_cursor_path: str = "meta.next_cursor"
    cursor_param: str = "cursor"
    page_param: str = "page"
    total_pages_path: str | None = "meta.total_pages"
    page_size_param: str = "limit"
    since_param: str = "updated_since"
    updated_at_path: str = "updated_at"

    @model_validator(mode="after")
    def _records_have_ids(self) -> ProviderRestSourceConfig:
        self.fields.setdefault("event_id", "id")
        return self

    def build(self, wiring: Wiring) -> ProviderRestSource:
        pagination: Pagination = (
            NextToken(self.next_cursor_path, self.cursor_param)
            if self.pagination == "cursor"
            else PageNumber(self.page_param, self.total_pages_path)
        )
        return ProviderRestSource(
            self.name,
            self.client(self.bearer()),
            self.mapping(),
            page_size=self.page_size,
            path=self.path,
            records_path=self.records_path,
            pagination=pagination,
            page_size_param=self.page_size_param,
            since_param=self.since_param,
            updated_at_path=self.updated_at_path,
        )
