"""What waits to go onto Kafka (DESIGN §1): the credit versions of the outbox and the dead letters not yet on
`cme.deadletter.v1`, read oldest first and marked published only once the broker has acknowledged them
(pipeline/stages/publish.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update

from ledger import tables as t
from ledger.store import Ledger, as_utc, chunks, record_from_json, utcnow


def unpublished_credits(ledger: Ledger, limit: int) -> list[tuple[int, dict[str, Any]]]:
    """Up to `limit` (outbox id, credit record) not yet published, in outbox order."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(t.outbox.c.id, t.credits.c.record)
            .join(
                t.credits,
                (t.credits.c.record_id == t.outbox.c.record_id) & (t.credits.c.version == t.outbox.c.version),
            )
            .where(t.outbox.c.published_at.is_(None))
            .order_by(t.outbox.c.id)
            .limit(limit)
        )
        return [(r.id, record_from_json(r.record)) for r in rows]


def mark_credits_published(ledger: Ledger, outbox_ids: Sequence[int]) -> None:
    with ledger.transaction() as conn:
        for chunk in chunks(list(outbox_ids)):
            conn.execute(update(t.outbox).where(t.outbox.c.id.in_(chunk)).values(published_at=utcnow()))


def unpublished_dead_letters(ledger: Ledger, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` dead letters not yet published, as rows (times in UTC)."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(t.dead_letters).where(t.dead_letters.c.published_at.is_(None)).limit(limit)
        ).mappings()
        return [{**r, "first_seen": as_utc(r["first_seen"]), "last_seen": as_utc(r["last_seen"])} for r in rows]


def mark_dead_letters_published(ledger: Ledger, ids: Sequence[str]) -> None:
    with ledger.transaction() as conn:
        for chunk in chunks(list(ids)):
            conn.execute(
                update(t.dead_letters).where(t.dead_letters.c.dead_letter_id.in_(chunk)).values(published_at=utcnow())
            )
