"""Dead letters (table `dead_letters`): what a stage refused, with its position and a stable reason code; added
or seen again in one upsert, resolved one by one or by kind (stage and reason codes). They stay on record."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from ledger import tables as t
from ledger.bulk import upsert
from ledger.store import Ledger, chunks, utcnow

DEAD_LETTER_NAMESPACE = uuid.UUID("3c2b1a09-5e4d-4f6a-8b7c-9d0e1f2a3b4c")


@dataclass(frozen=True)
class DeadLetterEntry:
    stage: str
    source: str
    source_ref: str
    reason_code: str
    reason: str
    payload: bytes
    registry: str | None = None

    @property
    def dead_letter_id(self) -> str:
        identity = "|".join((self.stage, self.source, self.source_ref, self.reason_code, self.registry or ""))
        return str(uuid.uuid5(DEAD_LETTER_NAMESPACE, identity))


def upsert_dead_letters(conn: Connection, entries: Sequence[DeadLetterEntry], now: datetime | None = None) -> None:
    """New dead letters inserted, known ones seen again (one more attempt): one upsert, so two writers
    failing the same item at once both count instead of one hitting the primary key (caller's transaction)."""
    if not entries:
        return
    now = now or utcnow()
    # One row per id (a statement may not touch a row twice); an id seen n times in the batch counts n.
    seen = Counter(entry.dead_letter_id for entry in entries)
    unique = {entry.dead_letter_id: entry for entry in entries}.values()
    rows = [
        {
            "dead_letter_id": entry.dead_letter_id,
            "stage": entry.stage,
            "source": entry.source,
            "source_ref": entry.source_ref,
            "reason_code": entry.reason_code,
            "reason": entry.reason,
            "payload": entry.payload,
            "attempts": seen[entry.dead_letter_id],
            "first_seen": now,
            "last_seen": now,
            "registry": entry.registry,
        }
        for entry in unique
    ]
    upsert(
        conn,
        t.dead_letters,
        rows,
        ("dead_letter_id",),
        update=lambda excluded: {
            "attempts": t.dead_letters.c.attempts + excluded.attempts,
            "last_seen": excluded.last_seen,
            "reason": excluded.reason,
            "published_at": None,
        },
    )


def add_dead_letters(ledger: Ledger, entries: Sequence[DeadLetterEntry]) -> None:
    """`upsert_dead_letters` in a transaction of its own."""
    with ledger.transaction() as conn:
        upsert_dead_letters(conn, entries)


def resolve_dead_letters(conn: Connection, dead_letter_ids: Iterable[str]) -> None:
    """Mark open dead letters resolved, e.g. a held credit issued once its gap was filled (caller's transaction)."""
    d = t.dead_letters.c
    now = utcnow()
    for chunk in chunks(list(set(dead_letter_ids))):
        conn.execute(
            update(t.dead_letters).where(d.dead_letter_id.in_(chunk) & d.resolved_at.is_(None)).values(resolved_at=now)
        )


def resolve_open(ledger: Ledger, stage: str, reason_codes: Sequence[str]) -> int:
    """Mark resolved every open dead letter of `stage` with one of `reason_codes`; return how many. They stay on
    record, resolved."""
    d = t.dead_letters.c
    with ledger.transaction() as conn:
        ids = list(
            conn.scalars(
                select(d.dead_letter_id).where(
                    (d.stage == stage) & d.reason_code.in_(reason_codes) & d.resolved_at.is_(None)
                )
            )
        )
        resolve_dead_letters(conn, ids)
    return len(ids)
