"""Writes of many rows in one statement per table: executemany on SQLite and for small batches; on PostgreSQL,
from BULK_ROWS rows on, psycopg 3's `COPY … FROM STDIN` on the same connection and transaction.

Why COPY: a reconcile batch of 2,000 events writes a few thousand rows, and psycopg's executemany sends them
one INSERT at a time (pipelined, but each parsed and planned). Measured per 2,000-row batch on the bench's
PostgreSQL ledger: executemany ~188 ms, one multi-row VALUES ~310 ms, INSERT … SELECT unnest(arrays) ~255 ms,
COPY ~120 ms. COPY cannot say ON CONFLICT, so an upsert or an insert-if-new copies its rows into a temporary
staging table (dropped at commit) and moves them with one `INSERT … SELECT … ORDER BY ctid ON CONFLICT …`: the
same statement, the same conflict rules and the same row order as the executemany it replaces.

Two writers racing on a key stay safe either way: the conflict is the database's, in one statement.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from psycopg import sql
from sqlalchemy import ColumnElement, Connection, Table, column, insert, literal_column, select, table
from sqlalchemy.dialects import postgresql, sqlite

BULK_ROWS = 50  # below this, COPY's setup (and a staging table's) costs more than it saves

Row = Mapping[str, Any]
Excluded = Any  # the row an INSERT … ON CONFLICT proposed (`excluded.<column>` in SQL)

_staging_names = itertools.count(1)  # one temporary table per staged write: names never clash in a transaction


def upsert_statement(conn: Connection, target: Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (PostgreSQL and SQLite alike): writes that two writers can
    race on are one statement, never UPDATE-then-INSERT (the second INSERT would hit the primary key)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(target)


def _copies(conn: Connection, rows: Sequence[Row]) -> bool:
    return conn.dialect.name == "postgresql" and len(rows) >= BULK_ROWS


def insert_rows(conn: Connection, target: Table, rows: Sequence[Row]) -> None:
    """Insert `rows` (all with the same columns), in their order: rows that may already be there need
    `insert_new` or `upsert`."""
    if not rows:
        return
    if _copies(conn, rows):
        _copy(conn, target, target.name, list(rows[0]), rows)
    else:
        conn.execute(insert(target), rows)


def insert_new(conn: Connection, target: Table, rows: Sequence[Row], keys: Sequence[str]) -> None:
    """Insert the `rows` whose `keys` are not there yet; the others stay as they are (ON CONFLICT DO NOTHING)."""
    if not rows:
        return
    statement, source = _insert_from(conn, target, rows)
    statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(statement, *source)


def upsert(
    conn: Connection,
    target: Table,
    rows: Sequence[Row],
    keys: Sequence[str],
    update: Callable[[Excluded], Mapping[str, Any]] | None = None,
    where: Callable[[Excluded], ColumnElement[bool]] | None = None,
) -> None:
    """Insert `rows`; a row whose `keys` are already there updates it instead: one INSERT … ON CONFLICT DO UPDATE
    (see `upsert_statement`). `update(excluded)` gives the columns to set (default: every column of the row
    but the keys, as proposed); with `where(excluded)`, only the rows it holds for are updated, the others stay.
    A statement may not update a row twice: `rows` hold each key once."""
    if not rows:
        return
    statement, source = _insert_from(conn, target, rows)
    excluded = statement.excluded
    values = update(excluded) if update else {c: excluded[c] for c in rows[0] if c not in keys}
    condition = where(excluded) if where else None
    conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=values, where=condition), *source)


def _insert_from(conn: Connection, target: Table, rows: Sequence[Row]) -> tuple[Any, tuple[Any, ...]]:
    """The dialect's INSERT of `rows` and its execute arguments: the rows themselves (executemany), or none when
    they were copied into a staging table the statement selects from, in the order they came."""
    if not _copies(conn, rows):
        return upsert_statement(conn, target), (rows,)
    columns = list(rows[0])
    name = f"staged_{target.name}_{next(_staging_names)}"
    quoted = conn.dialect.identifier_preparer.quote_identifier
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {quoted(name)} ON COMMIT DROP AS "
        f"SELECT {', '.join(map(quoted, columns))} FROM {quoted(target.name)} WITH NO DATA"
    )
    _copy(conn, target, name, columns, rows)
    staged = table(name, *(column(c) for c in columns))
    in_order = select(*staged.c).order_by(literal_column("ctid"))
    return upsert_statement(conn, target).from_select(columns, in_order), ()


def _copy(conn: Connection, target: Table, into: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """COPY `rows` into table `into` through the SQLAlchemy connection's own psycopg connection (so in its
    transaction), each value first through the column's SQLAlchemy bind processing, as an INSERT would."""
    processors = [target.c[c].type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for c in columns]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(into), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    dbapi_connection: Any = conn.connection.dbapi_connection
    with dbapi_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                [
                    process(row[c]) if process and row[c] is not None else row[c]
                    for c, process in zip(columns, processors, strict=True)
                ]
            )
