"""Bulk writes (ledger/bulk.py): on PostgreSQL, from BULK_ROWS rows on, COPY into the table or into a staging
table moved with one INSERT … SELECT … ON CONFLICT; below that and on SQLite, executemany. Either way the same
rows land: NULLs, bytes, time zones, JSON, decimals and text that COPY has to escape, in the order given, with
the same conflict rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    select,
)

from ledger.bulk import BULK_ROWS, insert_new, insert_rows, upsert
from ledger.store import Ledger

pytestmark = pytest.mark.dialect

metadata = MetaData()
samples = Table(
    "bulk_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(32), nullable=False),
    Column("note", Text),
    Column("payload", LargeBinary),
    Column("at", DateTime(timezone=True)),
    Column("doc", JSON),
    Column("amount", Numeric(8, 2)),
    Column("day", Date),
    UniqueConstraint("key", name="uq_bulk_samples_key"),
)
MANY = BULK_ROWS * 2
AWKWARD = ["tab\there", "new\nline", "back\\slash", "\\N", "quote \" and ' ", "ünïcødé ✓", ""]


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as ledger:
        metadata.create_all(ledger.engine)
        yield ledger


@pytest.fixture
def statements(ledger: Ledger) -> list[str]:
    """Every statement SQLAlchemy sends (COPY goes to psycopg directly, so it never shows here)."""
    sent: list[str] = []
    event.listen(ledger.engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    return sent


def sample(n: int, ledger: Ledger) -> dict[str, Any]:
    # SQLite keeps a datetime's wall time, not its offset (the ledger stores UTC there): offsets on PostgreSQL only.
    zone = timezone(timedelta(hours=5, minutes=30)) if ledger.dialect == "postgresql" else UTC
    return {
        "key": f"k{n:04d}",
        "note": None if n % 5 == 0 else AWKWARD[n % len(AWKWARD)],
        "payload": None if n % 7 == 0 else bytes([0, 92, 10, 9, n % 256]) + b"\xff\x00",
        "at": None if n % 11 == 0 else datetime(2026, 3, 8, 1, 30, n % 60, tzinfo=zone),
        "doc": None if n % 13 == 0 else {"n": n, "text": AWKWARD[n % len(AWKWARD)], "list": [1, None, "x"]},
        "amount": None if n % 3 == 0 else Decimal(n) / 4,
        "day": date(2026, 1, 1) + timedelta(days=n),
    }


def stored(ledger: Ledger) -> list[dict[str, Any]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(samples).order_by(samples.c.id)).mappings().all()
    return [
        {**row, "at": row["at"] if row["at"] is None or row["at"].tzinfo else row["at"].replace(tzinfo=UTC)}
        for row in rows
    ]


def without_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "id"} for row in rows]


def copied(ledger: Ledger, statements: list[str]) -> bool:
    """Whether the rows went by COPY: no INSERT … VALUES reached SQLAlchemy."""
    return not any(s.lstrip().upper().startswith("INSERT") and "SELECT" not in s.upper() for s in statements)


def test_given_many_rows_when_inserted_then_they_round_trip_in_order_by_copy_on_postgresql(
    ledger: Ledger, statements: list[str]
) -> None:
    rows = [sample(n, ledger) for n in range(MANY)]

    with ledger.transaction() as conn:
        insert_rows(conn, samples, rows)

    assert without_id(stored(ledger)) == rows
    assert [row["id"] for row in stored(ledger)] == sorted(row["id"] for row in stored(ledger))
    assert copied(ledger, statements) == (ledger.dialect == "postgresql")


def test_given_few_rows_when_inserted_then_executemany_carries_them_on_either_dialect(
    ledger: Ledger, statements: list[str]
) -> None:
    rows = [sample(n, ledger) for n in range(BULK_ROWS - 1)]

    with ledger.transaction() as conn:
        insert_rows(conn, samples, rows)

    assert without_id(stored(ledger)) == rows
    assert not copied(ledger, statements)


def test_given_rows_some_already_stored_when_inserted_if_new_then_the_stored_ones_stay_and_order_is_kept(
    ledger: Ledger, statements: list[str]
) -> None:
    first = [sample(n, ledger) for n in range(0, MANY, 2)]
    with ledger.transaction() as conn:
        insert_new(conn, samples, first, ("key",))
    changed = [{**sample(n, ledger), "note": "changed"} for n in range(MANY)]
    with ledger.transaction() as conn:
        insert_new(conn, samples, changed, ("key",))

    rows = stored(ledger)
    assert without_id(rows) == first + [row for n, row in enumerate(changed) if n % 2]
    assert copied(ledger, statements) == (ledger.dialect == "postgresql")
    if ledger.dialect == "postgresql":
        assert sum("CREATE TEMPORARY TABLE" in s for s in statements) == 2
        assert all("ORDER BY ctid" in s for s in statements if s.startswith("INSERT"))


def test_given_stored_rows_when_upserted_with_a_condition_then_only_the_rows_it_holds_for_change(
    ledger: Ledger,
) -> None:
    with ledger.transaction() as conn:
        insert_rows(conn, samples, [sample(n, ledger) for n in range(MANY)])
    proposed = [{**sample(n, ledger), "note": f"v2-{n}", "amount": Decimal(n)} for n in range(MANY + 10)]

    with ledger.transaction() as conn:
        # Two staged writes to one table in one transaction: their staging tables must not clash.
        upsert(
            conn,
            samples,
            proposed[: MANY // 2 + 5],
            ("key",),
            update=lambda excluded: {"note": excluded.note},
            where=lambda excluded: excluded.amount > 10,
        )
        upsert(conn, samples, proposed[MANY // 2 + 5 :], ("key",))

    by_key = {row["key"]: row for row in stored(ledger)}
    assert len(by_key) == MANY + 10
    for n, row in enumerate(proposed):
        original = sample(n, ledger)
        in_first_write = n < MANY // 2 + 5
        expected = row if not in_first_write else {**original, "note": row["note"]} if n > 10 else original
        assert without_id([by_key[row["key"]]]) == [expected], n
