"""The delivery queue (table `deliveries`): per (record, registry, version) its state, attempts, receipt and
last error; read oldest first per registry (index `ix_deliveries_queue`) and settled by the deliver stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update

from ledger import tables as t
from ledger.store import Ledger, record_from_json, utcnow
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
