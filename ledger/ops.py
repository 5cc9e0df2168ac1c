"""The two writes an operator's tools make besides the pipeline's own: put deliveries back in the queue for a
replay, and mark dead letters resolved (or open again when a retried item fails anew)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update

from ledger import tables as t
from ledger.queries import DeliveryKey
from ledger.store import Ledger, utcnow
from reconcile.vocabulary import DeliveryState


def requeue_deliveries(ledger: Ledger, keys: Sequence[DeliveryKey]) -> int:
    """Set the given deliveries back to pending (a superseded version stays superseded); return how many."""
    d = t.deliveries.c
    now = utcnow()
    changed = 0
    with ledger.transaction() as conn:
        for record_id, version, registry in keys:
            result = conn.execute(
                update(t.deliveries)
                .where(
                    (d.record_id == record_id)
                    & (d.version == version)
                    & (d.registry == registry)
                    & (d.state != DeliveryState.SUPERSEDED)
                )
                .values(state=DeliveryState.PENDING, updated_at=now)
            )
            changed += result.rowcount
    return changed


def set_dead_letters_resolved(ledger: Ledger, ids: Sequence[str], resolved: bool = True) -> int:
    """Mark dead letters resolved now, or open again (`resolved=False`); return how many changed."""
    dl = t.dead_letters.c
    changed = 0
    with ledger.transaction() as conn:
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            condition = dl.dead_letter_id.in_(chunk) & (
                dl.resolved_at.is_(None) if resolved else dl.resolved_at.is_not(None)
            )
            result = conn.execute(
                update(t.dead_letters).where(condition).values(resolved_at=utcnow() if resolved else None)
            )
            changed += result.rowcount
    return changed
