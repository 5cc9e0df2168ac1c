"""The ledger's memory of Kafka (tables `kafka_watermarks`, `pulled_pages`): what it produced and reconciled
per partition, and the pull's cursor history. `pipeline.stages.broker_loss` compares it with what the broker holds."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from ledger import tables as t
from ledger.bulk import upsert
from ledger.checkpoints import save_checkpoint
from ledger.store import Ledger, utcnow

Ends = Mapping[int, int]
KEYS = ("topic", "kafka_partition")


@dataclass(frozen=True)
class Watermark:
    produced_end: int
    reconciled_end: int


@dataclass(frozen=True)
class PulledPage:
    page_id: int
    source: str
    from_cursor: str | None
    ends: dict[int, int]


def _raise(conn: Connection, topic: str, ends: Ends, column: str) -> None:
    """Move `column` of each partition up to `ends` (never down: acknowledgements may arrive out of order)."""
    now = utcnow()
    rows = [
        {"topic": topic, "kafka_partition": p, "produced_end": 0, "reconciled_end": 0, column: end, "updated_at": now}
        for p, end in ends.items()
    ]
    upsert(
        conn,
        t.kafka_watermarks,
        rows,
        KEYS,
        update=lambda excluded: {column: excluded[column], "updated_at": excluded.updated_at},
        where=lambda excluded: excluded[column] > t.kafka_watermarks.c[column],
    )


def record_produced(ledger: Ledger, topic: str, ends: Ends) -> None:
    with ledger.transaction() as conn:
        _raise(conn, topic, ends, "produced_end")


def record_reconciled(conn: Connection, topic: str, ends: Ends) -> None:
    """In the reconcile batch's own transaction: the ledger holds these offsets exactly when it holds the batch."""
    _raise(conn, topic, ends, "reconciled_end")


def record_page(
    ledger: Ledger, source: str, from_cursor: str | None, next_cursor: str | None, topic: str, ends: Ends
) -> None:
    """One acknowledged page: its produced ends, its place in the cursor history and the source's new cursor,
    in one transaction, so the history never misses a page whose cursor was saved."""
    with ledger.transaction() as conn:
        _raise(conn, topic, ends, "produced_end")
        if ends:
            conn.execute(
                insert(t.pulled_pages).values(
                    source=source,
                    from_cursor=from_cursor,
                    ends=json.dumps({str(p): e for p, e in ends.items()}),
                    created_at=utcnow(),
                )
            )
        if next_cursor:
            save_checkpoint(ledger, source, next_cursor, conn)


def watermarks(ledger: Ledger, topic: str) -> dict[int, Watermark]:
    w = t.kafka_watermarks.c
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(w.kafka_partition, w.produced_end, w.reconciled_end).where(w.topic == topic))
        return {r.kafka_partition: Watermark(r.produced_end, r.reconciled_end) for r in rows}


def pulled_pages(ledger: Ledger) -> list[PulledPage]:
    p = t.pulled_pages.c
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(p.id, p.source, p.from_cursor, p.ends).order_by(p.id))
        return [
            PulledPage(r.id, r.source, r.from_cursor, {int(k): v for k, v in json.loads(r.ends).items()}) for r in rows
        ]


def forget_pages(conn: Connection, page_ids: list[int]) -> None:
    for start in range(0, len(page_ids), 500):
        conn.execute(delete(t.pulled_pages).where(t.pulled_pages.c.id.in_(page_ids[start : start + 500])))


def set_watermark(conn: Connection, topic: str, partition: int, produced_end: int, reconciled_end: int) -> None:
    """A new epoch of a partition the broker lost: the ledger's marks restart from what the broker now holds."""
    mark = {"produced_end": produced_end, "reconciled_end": reconciled_end, "updated_at": utcnow()}
    upsert(conn, t.kafka_watermarks, [{"topic": topic, "kafka_partition": partition, **mark}], KEYS)


def prune_pages(ledger: Ledger, topic: str) -> int:
    """Forget history rows whose events are all reconciled: no rewind ever goes back past them."""
    marks = watermarks(ledger, topic)
    done = [
        page.page_id
        for page in pulled_pages(ledger)
        if all(p in marks and end <= marks[p].reconciled_end for p, end in page.ends.items())
    ]
    with ledger.transaction() as conn:
        forget_pages(conn, done)
    return len(done)
