"""The at-risk notices each employer HR endpoint received (table `hr_notices`), keyed by idempotency key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, select

from ledger import tables as t
from ledger.bulk import insert_new
from ledger.store import Ledger, chunks, utcnow


def _received(conn: Connection, registry: str, notice_ids: Iterable[str]) -> set[str]:
    n = t.hr_notices.c
    found: set[str] = set()
    for chunk in chunks(sorted(set(notice_ids))):
        found.update(conn.scalars(select(n.notice_id).where(n.registry == registry, n.notice_id.in_(chunk))))
    return found


def sent_notices(ledger: Ledger, registry: str, notice_ids: Iterable[str]) -> set[str]:
    """Which of `notice_ids` the registry already received."""
    with ledger.engine.connect() as conn:
        return _received(conn, registry, notice_ids)


def record_notices(ledger: Ledger, registry: str, receipts: Mapping[str, str]) -> None:
    """Record received notices (notice id → receipt id); one already recorded is left as it is."""
    if not receipts:
        return
    now = utcnow()
    rows = [{"registry": registry, "notice_id": n, "receipt_id": r, "sent_at": now} for n, r in receipts.items()]
    with ledger.transaction() as conn:
        insert_new(conn, t.hr_notices, rows, ("registry", "notice_id"))
