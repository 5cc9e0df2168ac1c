"""Connector cursors (table `checkpoints`): where each source's next pull starts, saved only once what it covers
is safely downstream (DESIGN §9); also a registry's last board-decision poll. One row per name, one upsert per
save, so two writers never race between an UPDATE and an INSERT."""

from __future__ import annotations

from sqlalchemy import Connection, delete, select

from ledger import tables as t
from ledger.bulk import upsert
from ledger.store import Ledger, utcnow


def checkpoint(ledger: Ledger, source: str) -> str | None:
    with ledger.engine.connect() as conn:
        return conn.scalar(select(t.checkpoints.c.cursor).where(t.checkpoints.c.source == source))


def save_checkpoint(ledger: Ledger, source: str, cursor: str, conn: Connection | None = None) -> None:
    """Save `source`'s cursor, in `conn`'s transaction when given (with the page's history row)."""
    if conn is None:
        with ledger.transaction() as own:
            save_checkpoint(ledger, source, cursor, own)
        return
    upsert(conn, t.checkpoints, [{"source": source, "cursor": cursor, "updated_at": utcnow()}], ("source",))


def rewind_checkpoint(ledger: Ledger, conn: Connection, source: str, cursor: str | None) -> None:
    """Set `source`'s cursor back to `cursor` (None: its beginning), in `conn`'s transaction."""
    if cursor is None:
        conn.execute(delete(t.checkpoints).where(t.checkpoints.c.source == source))
    else:
        save_checkpoint(ledger, source, cursor, conn)
