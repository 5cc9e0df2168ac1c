"""One unit of work per reconcile batch (DESIGN §5), after Quix Streams' checkpoint: the batch's ledger writes
and the Kafka offsets to commit after them, in that order.

Inside `with BatchCheckpoint(ledger, commit_offsets) as checkpoint:` the batch reads through
`checkpoint.conn` and hands its writes to the checkpoint. Events and identities are written at once, since the
batch's later reads in the same transaction (a pair's evidence) need them; everything else — dead letters and
those resolved, learner profiles, credit versions, outbox, deliveries, reconciled watermarks — is collected and
written at the end, one statement per table (`ledger/bulk.py`). Then the transaction commits, and only then
`commit_offsets` runs: a crash between the two leaves the batch in the ledger and its messages to be consumed
again, which the ledger's unique keys make a no-op (DESIGN §1). An exception inside the block rolls everything
back and commits no offset.

`on_step(name)` is called at the three moments the fault suite aims at — "before_commit" (every write done,
not committed), and, when there are offsets to commit, "committed" (ledger committed, offsets not) and
"offsets_committed" — so `pipeline/` can put its crash points there without the ledger knowing of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from sqlalchemy import Connection

from ledger.credits import store_credits
from ledger.dead_letters import DeadLetterEntry, resolve_dead_letters, upsert_dead_letters
from ledger.store import Ledger, StoredEvent, store_events, store_identities
from ledger.watermarks import record_reconciled
from reconcile.identity import IdentityKey
from reconcile.merge import CreditState


def _no_step(_name: str) -> None:
    return None


class BatchCheckpoint:
    """The writes of one reconcile batch, and the commit of its offsets once the ledger holds them."""

    def __init__(
        self,
        ledger: Ledger,
        commit_offsets: Callable[[], None] | None = None,
        *,
        on_step: Callable[[str], None] = _no_step,
    ) -> None:
        self.ledger = ledger
        self.commit_offsets = commit_offsets
        self.on_step = on_step
        self._conn: Connection | None = None
        self._dead_letters: list[DeadLetterEntry] = []
        self._resolved: list[str] = []
        self._profiles: dict[str, Mapping[str, Any]] = {}
        self._credits: list[tuple[CreditState, Mapping[str, Any]]] = []
        self._deliveries: list[tuple[str, int, str]] = []
        self._reconciled: dict[str, dict[int, int]] = {}

    @property
    def conn(self) -> Connection:
        """The batch's connection, in its transaction: reads see the events and identities already stored."""
        if self._conn is None:
            raise RuntimeError("a BatchCheckpoint is used inside its `with` block")
        return self._conn

    def __enter__(self) -> BatchCheckpoint:
        self._conn = self.ledger.engine.connect()
        self._conn.begin()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conn = self.conn
        try:
            if exc_type is not None:
                conn.rollback()
                return
            self._flush(conn)
            self.on_step("before_commit")
            conn.commit()
        finally:
            conn.close()
            self._conn = None
        if self.commit_offsets is not None:
            self.on_step("committed")
            self.commit_offsets()
            self.on_step("offsets_committed")

    # -- written at once: the batch reads them back --------------------------------------------------
    def store_events(self, events: Sequence[StoredEvent]) -> None:
        store_events(self.conn, events)

    def store_identities(self, identities: Mapping[IdentityKey, str]) -> None:
        store_identities(self.conn, identities)

    # -- written at the end, one statement per table ------------------------------------------------
    def add_dead_letters(self, entries: Sequence[DeadLetterEntry]) -> None:
        self._dead_letters += entries

    def resolve_dead_letters(self, dead_letter_ids: Sequence[str]) -> None:
        """Settled after this batch's own dead letters are written, as their upsert never reopens one."""
        self._resolved += dead_letter_ids

    def store_credits(
        self,
        profiles: Mapping[str, Mapping[str, Any]],
        credits: Sequence[tuple[CreditState, Mapping[str, Any]]],
        deliveries: Sequence[tuple[str, int, str]],
    ) -> None:
        self._profiles.update(profiles)
        self._credits += credits
        self._deliveries += deliveries

    def record_reconciled(self, topic: str, ends: Mapping[int, int]) -> None:
        """The offsets the ledger holds once the batch commits, per partition (only ever raised)."""
        marks = self._reconciled.setdefault(topic, {})
        for partition, end in ends.items():
            marks[partition] = max(marks.get(partition, end), end)

    def _flush(self, conn: Connection) -> None:
        upsert_dead_letters(conn, self._dead_letters)
        resolve_dead_letters(conn, self._resolved)
        store_credits(conn, self._profiles, self._credits, self._deliveries)
        for topic, ends in self._reconciled.items():
            record_reconciled(conn, topic, ends)
