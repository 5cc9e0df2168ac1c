"""The delivery queue (table `deliveries`): per (record, registry, version) its state, attempts, receipt and
last error; read oldest first per registry (index `ix_deliveries_queue`) and settled by the deliver stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from ledger import tables as t
from ledger.bulk import insert_rows
from ledger.store import Ledger, chunks, record_from_json, utcnow
from reconcile.vocabulary import DeliveryState


@dataclass(frozen=True)
class DeliveryOutcome:
    record_id: str
    version: int
    state: str
    receipt: str | None = None
    error: str | None = None


def pending_deliveries(
    ledger: Ledger, registry: str, limit: int, states: tuple[str, ...] = (DeliveryState.PENDING,)
) -> list[dict[str, Any]]:
    """Up to `limit` credit records waiting for `registry` in one of `states`, oldest first."""
    d = t.deliveries.c
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(t.credits.c.record)
            .join(t.credits, (t.credits.c.record_id == d.record_id) & (t.credits.c.version == d.version))
            .where((d.registry == registry) & d.state.in_(states))
            .order_by(d.updated_at, d.record_id)
            .limit(limit)
        )
        return [record_from_json(r.record) for r in rows]


def record_deliveries(ledger: Ledger, registry: str, outcomes: Sequence[DeliveryOutcome]) -> None:
    """Each outcome's state, receipt and error on its delivery, one more attempt counted."""
    d = t.deliveries.c
    now = utcnow()
    if not outcomes:
        return
    with ledger.transaction() as conn:
        conn.execute(
            update(t.deliveries)
            .where(
                (d.record_id == bindparam("b_record_id"))
                & (d.registry == registry)
                & (d.version == bindparam("b_version"))
            )
            .values(attempts=d.attempts + 1, updated_at=now),
            [
                {
                    "b_record_id": o.record_id,
                    "b_version": o.version,
                    "state": o.state,
                    "receipt": o.receipt,
                    "last_error": o.error,
                }
                for o in outcomes
            ],
        )


def queue_deliveries(conn: Connection, deliveries: Sequence[tuple[str, int, str]], now: datetime) -> None:
    """New credit versions routed to registries, as (record_id, version, registry): pending deliveries, the
    earlier versions still waiting for the same registry superseded (caller's transaction)."""
    _supersede(conn, deliveries, now)
    rows = [
        {
            "record_id": record_id,
            "registry": registry,
            "version": version,
            "state": DeliveryState.PENDING,
            "attempts": 0,
            "updated_at": now,
        }
        for record_id, version, registry in deliveries
    ]
    insert_rows(conn, t.deliveries, rows)


def _supersede(conn: Connection, deliveries: Sequence[tuple[str, int, str]], now: datetime) -> None:
    """Earlier versions still waiting to go to a registry are superseded by the new one. Found by primary
    key, then updated by primary key: with the state in the WHERE clause SQLite picks the (registry, state)
    index and walks every pending delivery once per row."""
    wanted = {(record_id, registry) for record_id, version, registry in deliveries if version > 1}
    if not wanted:
        return  # a first version has no earlier delivery
    d = t.deliveries.c
    waiting: list[dict[str, Any]] = []
    for chunk in chunks(sorted({record_id for record_id, _ in wanted})):
        rows = conn.execute(select(d.record_id, d.registry, d.version, d.state).where(d.record_id.in_(chunk)))
        waiting += [
            {"b_record_id": r.record_id, "b_registry": r.registry, "b_version": r.version}
            for r in rows
            if (r.record_id, r.registry) in wanted and r.state in (DeliveryState.PENDING, DeliveryState.FAILED)
        ]
    if waiting:
        conn.execute(
            update(t.deliveries)
            .where(
                (d.record_id == bindparam("b_record_id"))
                & (d.registry == bindparam("b_registry"))
                & (d.version == bindparam("b_version"))
            )
            .values(state=DeliveryState.SUPERSEDED, updated_at=now),
            waiting,
        )
