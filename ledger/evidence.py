"""The stored evidence of the (learner, activity) pairs a reconcile batch decides, read in O(batch).

A batch used to read and decode the body of every stored event of every learner it touched. Event bodies never
change once stored (`events` is insert-only, unique by source and event id), so the reconcile stage keeps the
decoded bodies it has seen in a bounded cache, one per Ledger, and a batch reads only which events each pair has
(id, source, event id: the pair index, no bodies) and the bodies the cache does not hold. The ledger stays the only
source of truth: the list of a pair's events always comes from it, so another reconciler's writes, a restart or a
rebalance cost only cache misses, never a wrong decision.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, select

from ledger import tables as t
from ledger.store import Ledger, Pair, StoredEvent, chunks, event_from_json, event_to_json

CACHED_EVENTS = 200_000  # decoded bodies kept per ledger: ~1 KB each


class EventCache:
    """Decoded event bodies by "source:event_id", least recently used dropped beyond `size`."""

    def __init__(self, size: int = CACHED_EVENTS) -> None:
        self.size = size
        self._bodies: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, key: str) -> dict[str, Any] | None:
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
        return body

    def put(self, key: str, body: dict[str, Any]) -> None:
        self._bodies[key] = body
        self._bodies.move_to_end(key)
        while len(self._bodies) > self.size:
            self._bodies.popitem(last=False)

    def remember(self, stored: Iterable[StoredEvent]) -> None:
        """A batch's own events, as the ledger will hand them back (through their JSON body)."""
        for s in stored:
            if s.learner_id is not None:
                self.put(f"{s.event['source']}:{s.event['event_id']}", event_from_json(event_to_json(s.event)))


_CACHES: WeakKeyDictionary[Ledger, EventCache] = WeakKeyDictionary()


def event_cache(ledger: Ledger) -> EventCache:
    """The cache of this Ledger (a new Ledger, e.g. after a restart, starts empty and fills from the ledger)."""
    if ledger not in _CACHES:
        _CACHES[ledger] = EventCache()
    return _CACHES[ledger]


def stored_pairs(conn: Connection, learner_ids: Iterable[str]) -> dict[Pair, list[tuple[int, str]]]:
    """Per (learner, activity) of these learners, its stored events as (id, "source:event_id"), in id order."""
    e = t.events.c
    found: dict[Pair, list[tuple[int, str]]] = {}
    for chunk in chunks(sorted(set(learner_ids))):
        rows = conn.execute(
            select(e.id, e.source, e.event_id, e.learner_id, e.activity_id)
            .where(e.learner_id.in_(chunk) & e.activity_id.is_not(None))
            .order_by(e.id)
        )
        for r in rows:
            found.setdefault((r.learner_id, r.activity_id), []).append((r.id, f"{r.source}:{r.event_id}"))
    return found


def pair_evidence(
    conn: Connection, cache: EventCache, pairs: Iterable[Pair], stored: Mapping[Pair, Sequence[tuple[int, str]]]
) -> dict[Pair, list[dict[str, Any]]]:
    """The stored events of `pairs` (those that have any), in id order: cached bodies, the rest read by id."""
    wanted = {pair: stored[pair] for pair in pairs if pair in stored}
    bodies: dict[str, dict[str, Any]] = {}  # this batch's, whatever the cache drops meanwhile
    missing: list[int] = []
    for events in wanted.values():
        for event_id, key in events:
            if (body := cache.get(key)) is not None:
                bodies[key] = body
            else:
                missing.append(event_id)
    e = t.events.c
    for chunk in chunks(missing):
        for r in conn.execute(select(e.source, e.event_id, e.body).where(e.id.in_(chunk))):
            key = f"{r.source}:{r.event_id}"
            bodies[key] = event_from_json(r.body)
            cache.put(key, bodies[key])
    return {pair: [bodies[key] for _, key in events] for pair, events in wanted.items()}
