"""Keyset paging over a registry's holdings, shared by the registry sandboxes: ordered by (change time, id),
an optional exclusive `since` on the change time, an opaque page token carrying the last position served."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import ItemsView, Iterator, Mapping, MutableMapping, ValuesView
from datetime import datetime
from typing import Any

from deploy.sandbox.base import HttpError, Request, decode_token, encode_token, parse_instant

_DIGITS = re.compile(r"[0-9]{1,6}")

Entry = dict[str, Any]
OrderKey = tuple[datetime, str]


class HoldingStore(MutableMapping[str, Entry]):
    """A registry's holdings by id, counting its mutations in `generation` so a pager can tell when the order it
    cached is stale. Entries are replaced, never edited in place (`amend`, or assignment): an in-place edit would
    go uncounted and the pager would keep serving the order from before it."""

    def __init__(self, entries: Mapping[str, Entry] | None = None) -> None:
        self._entries: dict[str, Entry] = {}
        self.generation = 0
        if entries:
            self.update(entries)

    def __getitem__(self, key: str) -> Entry:
        return self._entries[key]

    def __setitem__(self, key: str, entry: Entry) -> None:
        self._entries[key] = entry
        self.generation += 1

    def __delitem__(self, key: str) -> None:
        del self._entries[key]
        self.generation += 1

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    # The dict's own views, read-only like the mixin's but without a lookup per entry: a pager sorts them all.
    def items(self) -> ItemsView[str, Entry]:
        return self._entries.items()

    def values(self) -> ValuesView[Entry]:
        return self._entries.values()

    def amend(self, key: str, fields: Mapping[str, Any]) -> Entry:
        """Replace the entry at `key` by itself with `fields` applied, and return it; KeyError if not held."""
        self[key] = {**self._entries[key], **fields}
        return self._entries[key]


class KeysetPager:
    """Pages a `HoldingStore` by (`stamp_field`, `id_field`); the query parameter names are the registry's own.

    A nightly diff pages through every holding, so a pass over the whole store per page made the sandbox
    quadratic in the 1M-event benchmark. The pager keeps the store's order, sorted once, until the store's
    generation moves on: a page is then a bisect and a slice, O(log N + page). One order is cached, for the
    store last paged (each pager serves one store). Not thread-safe: callers hold their store's lock."""

    def __init__(
        self,
        stamp_field: str,
        id_field: str,
        *,
        since_param: str = "since",
        size_param: str = "page_size",
        token_param: str = "page_token",
        default_size: int = 100,
        max_size: int = 500,
    ) -> None:
        self.stamp_field = stamp_field
        self.id_field = id_field
        self.since_param = since_param
        self.size_param = size_param
        self.token_param = token_param
        self.default_size = default_size
        self.max_size = max_size
        self._ordered_store: HoldingStore | None = None
        self._ordered_generation = -1
        self._ordered: list[tuple[OrderKey, str]] = []

    def order(self, entry: Entry) -> OrderKey:
        return parse_instant(entry[self.stamp_field]), str(entry[self.id_field])

    def page(self, entries: HoldingStore, request: Request) -> tuple[list[Entry], str | None]:
        """One page of `entries` for `request` (copies), and the token of the next page (None on the last one)."""
        size = self._size(request.params.get(self.size_param))
        since, after = self._position(request)
        ordered = self._order_of(entries)
        start = 0
        if since is not None:
            start = bisect_right(ordered, since, key=lambda keyed: keyed[0][0])
        if after is not None:
            start = max(start, bisect_right(ordered, after, key=lambda keyed: keyed[0]))
        head = ordered[start : start + size]
        page = [dict(entries[key]) for _, key in head]
        if start + size >= len(ordered):
            return page, None
        last_at, last_id = head[-1][0]
        return page, encode_token(
            {"since": since.isoformat() if since else None, "after": [last_at.isoformat(), last_id]}
        )

    def _order_of(self, entries: HoldingStore) -> list[tuple[OrderKey, str]]:
        """`entries` as (order, key) sorted by order, re-sorted only when the store changed since the last page."""
        if entries is not self._ordered_store or entries.generation != self._ordered_generation:
            self._ordered = sorted((self.order(entry), key) for key, entry in entries.items())
            self._ordered_store = entries
            self._ordered_generation = entries.generation
        return self._ordered

    def _size(self, text: str | None) -> int:
        if text is None or text == "":
            return self.default_size
        if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= self.max_size:
            raise HttpError(400, f"{self.size_param} must be an integer from 1 to {self.max_size}")
        return int(text)

    def _position(self, request: Request) -> tuple[datetime | None, OrderKey | None]:
        token = request.params.get(self.token_param)
        if not token:
            text = request.params.get(self.since_param)
            if not text:
                return None, None
            try:
                return parse_instant(text), None
            except ValueError:
                raise HttpError(400, f"parameter {self.since_param} must be an ISO 8601 timestamp") from None
        state = decode_token(token)
        try:
            since = parse_instant(state["since"]) if state["since"] is not None else None
            after_at, after_id = state["after"]
            return since, (parse_instant(after_at), str(after_id))
        except (KeyError, TypeError, ValueError):
            raise HttpError(400, "invalid page token") from None
