"""A registry's holdings side by side with the ledger's expectations, compared in the database.

The nightly diff looks at every holding of every registry; at a million records neither the holdings nor the
expectations fit comfortably in memory (the 1M benchmark grew from 330 MB to 880 MB holding both). So the
holdings are staged page by page in a temporary table and the two sides stream back together, grouped by
record id: memory stays at one page whatever the size of the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import groupby, islice

from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text, exists, insert, select
from sqlalchemy.schema import DropTable

from ledger import tables as t
from ledger.store import Expectation, Ledger, expectation_of, expectations_select

PAGE = 1000

_staged = Table(
    "staged_holdings",
    MetaData(),
    Column("record_id", Text, nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("entry", Text, nullable=False),
    prefixes=["TEMPORARY"],
)

Staged = tuple[str, str]  # (record_id, the holding as the caller serialised it)
Beside = tuple[str, Expectation | None, list[str]]  # (record_id, the ledger's expectation, staged holdings)


def beside_expectations(ledger: Ledger, registry: str, holdings: Iterable[Staged]) -> Iterator[Beside]:
    """Every record the ledger ever routed to `registry` or that `holdings` names, once, with its expectation
    (None when the ledger never routed it there) and its holdings in the order given. All of `holdings` is
    staged before the first record comes back, so an error while reading them surfaces before any finding."""
    with ledger.engine.connect() as conn:
        try:
            _staged.create(conn)
            _stage(conn, holdings)
            expected = expectations_select(registry).subquery()
            h, d = _staged.c, t.deliveries.c
            routed = (
                select(expected, h.entry)
                .select_from(expected.outerjoin(_staged, h.record_id == expected.c.record_id))
                .order_by(expected.c.record_id, h.seq)
                .execution_options(yield_per=PAGE)
            )
            unrouted = (
                select(h.record_id, h.entry)
                .where(~exists().where(d.record_id == h.record_id, d.registry == registry))
                .order_by(h.record_id, h.seq)
                .execution_options(yield_per=PAGE)
            )
            for record_id, rows in groupby(conn.execute(routed), key=lambda row: row.record_id):
                group = list(rows)
                yield record_id, expectation_of(group[0]), [row.entry for row in group if row.entry is not None]
            for record_id, rows in groupby(conn.execute(unrouted), key=lambda row: row.record_id):
                yield record_id, None, [row.entry for row in rows]
        finally:
            conn.rollback()
            conn.execute(DropTable(_staged, if_exists=True))
            conn.commit()


def _stage(conn: Connection, holdings: Iterable[Staged]) -> None:
    numbered = ({"record_id": rid, "seq": seq, "entry": entry} for seq, (rid, entry) in enumerate(holdings))
    while page := list(islice(numbered, PAGE)):
        conn.execute(insert(_staged), page)
