"""Versioned ledger migrations: append a (version, step) pair, never edit an applied one."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

from ledger import tables as t


def _v1_initial(conn: Connection) -> None:
    t.metadata.create_all(conn, checkfirst=True)


def _v2_registry_diffs(conn: Connection) -> None:
    t.registry_diffs.create(conn, checkfirst=True)


def _v3_delivery_queue_index(conn: Connection) -> None:
    """Pending deliveries are read oldest first per registry: an index in that order, instead of one on
    (registry, state) that left SQLite sorting every pending delivery for each page it sent."""
    conn.execute(text("DROP INDEX IF EXISTS ix_deliveries_state"))
    queue = next(i for i in t.deliveries.indexes if i.name == "ix_deliveries_queue")
    queue.create(conn, checkfirst=True)


def _v4_broker_watermarks(conn: Connection) -> None:
    """Produced and reconciled offsets, and the pull's cursor history: what broker-loss detection compares."""
    t.kafka_watermarks.create(conn, checkfirst=True)
    t.pulled_pages.create(conn, checkfirst=True)


def _v5_hr_notices(conn: Connection) -> None:
    t.hr_notices.create(conn, checkfirst=True)


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_initial),
    (2, _v2_registry_diffs),
    (3, _v3_delivery_queue_index),
    (4, _v4_broker_watermarks),
    (5, _v5_hr_notices),
]
