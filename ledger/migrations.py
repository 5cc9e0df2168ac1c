"""Versioned ledger migrations: append a (version, step) pair, never edit an applied one."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from ledger import tables as t


def _v1_initial(conn: Connection) -> None:
    t.metadata.create_all(conn, checkfirst=True)


def _v2_registry_diffs(conn: Connection) -> None:
    t.registry_diffs.create(conn, checkfirst=True)


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_initial),
    (2, _v2_registry_diffs),
]
