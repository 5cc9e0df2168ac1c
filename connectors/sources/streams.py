"""The two shapes of HTTP source that own their cursor (after Singer SDK's RESTStream: a stream declares its
`replication_key` and `is_sorted`, or its `parent_stream_type` and `get_child_context`; the framework keeps
the bookmark). A connector declares and overrides a few hooks; the walk, the cursor and its text, the
malformed page and the pull log are here.

- `IncrementalHttpSource`: records changed since a watermark on a replication key, with an id as the
  tie-breaker between records sharing one instant, a lookback on resume, and the cap at the pull's start.
- `ChildStreamSource`: parent records (a webinar's instances), each with a child walk (its participants);
  the cursor is the parents whose child walk ended and the position inside the one being read.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from connectors.http import FatalAPIError, HttpClient
from connectors.sources import fields as f
from connectors.sources.base import Page, RawRecord, RecordError
from connectors.sources.cursor import Cursor
from connectors.sources.fields import dotted
from connectors.sources.http_source import Fetched, HttpSource, Token
from connectors.sources.watermark import EPOCH, Ids, Watermark, format_instant

log = logging.getLogger(__name__)


class IncrementalCursor(Cursor):
    """`mark`: everything up to it is read. `token`/`high`/`pages`: the walk from `mark` in progress, if any
    (the next page's token, the furthest record seen, and how many pages were read before the token)."""

    mark: Watermark | None = None
    token: Token | None = None
    high: Watermark | None = None
    pages: int = 0


class IncrementalHttpSource(HttpSource):
    """Records after the watermark on `replication_key`, oldest first when `is_sorted`.

    A sorted source's watermark moves with every page, so its cursor is the watermark alone, written as
    `{<replication_key>: instant, "ids": [...]}`. An unsorted one keeps the position of the walk in progress
    (so a crash between pages resumes at the next page) and promotes the watermark when the walk ends,
    capped at the pull's start: records written during the pull are read again next time and dedupe
    downstream by event id. A saved page token the API refuses (400: expired) means walking again from the
    watermark, which repeats pages and never skips one.
    """

    # Declarations.
    replication_key: str
    since_param: str
    tie_breaker: str = "id"
    is_sorted: ClassVar[bool] = False
    lookback: ClassVar[timedelta] = timedelta(0)
    walk_name: ClassVar[str | None] = None  # what source refs call the walk; None = the path

    def __init__(
        self,
        name: str,
        client: HttpClient,
        page_size: int = 100,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(name, client, page_size)
        self._now = now

    # -- hooks ---------------------------------------------------------------------------------------------

    def url_params(self) -> dict[str, Any]:
        """The query of the walk's first page, besides the watermark's `since_param`."""
        return self.page_params()

    def record_id(self, record: Any) -> str | None:
        """The tie-breaker: the record's id, None when it has no usable one (it is then never covered)."""
        value = dotted(record, self.tie_breaker)
        usable = isinstance(value, str | int) and not isinstance(value, bool) and value != ""
        return str(value) if usable else None

    @abstractmethod
    def raw_record(self, record: Any, position: str) -> RawRecord:
        """The record with the source ref it is found again by; `position` is its place in this walk."""

    # -- the walk ------------------------------------------------------------------------------------------

    def read(self, cursor: str | None) -> Iterator[Page]:
        state = self.load_cursor(cursor)
        started = self._now()
        try:
            yield from self._walk(state, started)
        except FatalAPIError as err:
            if state.token is None or err.status != 400:
                raise
            log.info("source %s: saved page cursor refused, walking again from the watermark", self.name)
            yield from self._walk(IncrementalCursor(mark=state.mark), started)

    def _walk(self, state: IncrementalCursor, started: datetime) -> Iterator[Page]:
        params = self.url_params()
        walk = self.walk_name or self.path
        if state.mark:
            params[self.since_param] = format_instant(state.mark.at - self.lookback)
            walk = f"{walk} since {params[self.since_param]}"
        high = state.high or state.mark or Watermark()
        cursor = self.dump_cursor(state)
        for page in self.fetch(self.path, params, state.token):
            where = f"{walk} page {state.pages + page.number}"
            if page.problem:
                yield Page([RawRecord(where, page.raw, page.problem)], cursor)
                return
            fresh = [r for r in page.records if not (state.mark and self._covered(r, state.mark))]
            ids = [(r, self.record_id(r)) for r in fresh]
            high = high.advance((dotted(r, self.replication_key), i) for r, i in ids if i is not None)
            cursor = self.dump_cursor(self._after(state, page, high, started))
            yield Page([self.raw_record(r, f"{where} item {n + 1}") for n, r in enumerate(fresh)], cursor)

    def _after(self, state: IncrementalCursor, page: Fetched, high: Watermark, started: datetime) -> IncrementalCursor:
        if self.is_sorted:
            return IncrementalCursor(mark=high) if high.at != EPOCH else state
        if page.next_token is None:
            return IncrementalCursor(mark=high.capped(started) if high.at != EPOCH else state.mark)
        return IncrementalCursor(mark=state.mark, token=page.next_token, high=high, pages=state.pages + page.number)

    def _covered(self, record: Any, mark: Watermark) -> bool:
        record_id = self.record_id(record)
        if record_id is None:
            return False
        try:
            at = f.instant(dotted(record, self.replication_key), self.replication_key)
        except RecordError:
            return False
        return mark.covers(at, record_id)

    # -- the cursor's text ---------------------------------------------------------------------------------

    def load_cursor(self, text: str | None) -> IncrementalCursor:
        if not self.is_sorted or not text:
            return IncrementalCursor.load(text)
        data = json.loads(text)
        return IncrementalCursor(mark=Watermark.load({"at": data[self.replication_key], "ids": data.get("ids", [])}))

    def dump_cursor(self, cursor: IncrementalCursor) -> str | None:
        if not self.is_sorted:
            return cursor.dump()
        if cursor.mark is None:
            return None
        mark = cursor.mark.dump()
        return json.dumps({self.replication_key: mark["at"], "ids": mark["ids"]})


class Position(BaseModel):
    """Where an unfinished child walk was left: its parent, the next page's token and how many pages came
    before. (`instance`: the parent's key, named after the first such source's parents, webinar instances;
    the name is part of the cursor text kept in checkpoints.)"""

    model_config = ConfigDict(frozen=True)

    instance: str
    pages: int
    token: str


class ChildStreamCursor(Cursor):
    """Parents whose child walk was read to the end, and the position inside the one being read."""

    done: Ids = frozenset()
    at: Position | None = None


@dataclass(frozen=True)
class Child:
    """One parent record's child walk (Singer SDK's child context): `key` goes into the cursor once the walk
    ends, `where` names it in source refs and logs, `context` is what each child record is read with."""

    key: str
    path: str
    where: str
    context: Mapping[str, Any] = field(default_factory=dict)


class ChildStreamSource(HttpSource):
    """Child records of every parent not yet done. A child walk's saved page token the API refuses (400:
    expired) means reading that parent's children again from the first page (events dedupe downstream); a
    child resource not there yet (404) is skipped, not done, and read on a later pull."""

    @abstractmethod
    def children(self, done: frozenset[str]) -> Iterator[Child]:
        """The parent stream: a child walk for each parent not in `done`, in a stable order."""

    def child_record(self, child: Child, row: Any) -> Any:
        """What one child row is kept as (by default the row itself)."""
        return row

    def read(self, cursor: str | None) -> Iterator[Page]:
        state = ChildStreamCursor.load(cursor)
        for child in self.children(state.done):
            for page in self._child_pages(child, state):
                state = ChildStreamCursor.load(page.next_cursor)
                yield page

    def _child_pages(self, child: Child, state: ChildStreamCursor) -> Iterator[Page]:
        resume = state.at if state.at and state.at.instance == child.key else None
        try:
            yield from self._child_walk(child, state, resume)
        except FatalAPIError as err:
            if resume is not None and err.status == 400:
                log.info("source %s: page token of %s expired, rereading it", self.name, child.where)
                yield from self._child_walk(child, ChildStreamCursor(done=state.done), None)
            elif err.status == 404:
                log.info("source %s: %s is not available yet", self.name, child.where)
            else:
                raise

    def _child_walk(self, child: Child, state: ChildStreamCursor, resume: Position | None) -> Iterator[Page]:
        before = resume.pages if resume else 0
        for page in self.fetch(child.path, self.page_params(), resume.token if resume else None):
            number = before + page.number
            where = f"{child.where} page {number}"
            if page.problem:
                yield Page([RawRecord(where, page.raw, page.problem)], state.dump())
                return
            if page.next_token is None:
                state = ChildStreamCursor(done=state.done | {child.key})
            else:
                at = Position(instance=child.key, pages=number, token=str(page.next_token))
                state = ChildStreamCursor(done=state.done, at=at)
            records = [
                RawRecord(f"{where} row {n + 1}", self.child_record(child, row)) for n, row in enumerate(page.records)
            ]
            yield Page(records, state.dump())
