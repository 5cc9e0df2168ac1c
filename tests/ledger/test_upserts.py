"""Writes two writers can race on are single upserts (ledger/store.py): many writers saving the same checkpoint,
dead letter, registry diff, Kafka watermark and HR notice at the same moment on a fresh ledger all succeed, and
the rows add up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from ledger import tables as t
from ledger.checkpoints import save_checkpoint
from ledger.dead_letters import DeadLetterEntry, add_dead_letters
from ledger.notices import record_notices, sent_notices
from ledger.registry_diffs import save_registry_diff
from ledger.store import Ledger
from ledger.watermarks import Watermark, record_produced, record_reconciled, set_watermark, watermarks

pytestmark = pytest.mark.dialect

WRITERS = 8


def all_at_once(work: Callable[[int], None]) -> None:
    start = threading.Barrier(WRITERS)

    def one(n: int) -> None:
        start.wait()
        work(n)

    with ThreadPoolExecutor(WRITERS) as pool:
        for future in [pool.submit(one, n) for n in range(WRITERS)]:
            future.result()  # re-raises a writer's IntegrityError, if any


def test_given_writers_racing_on_one_key_when_they_write_then_every_write_lands_once(ledger_url: str) -> None:
    entry = DeadLetterEntry("deliver", "ledger", "credit r-1 v1", "REGISTRY_UNAVAILABLE", "down", b"r-1:1", "ama-pra")
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        all_at_once(lambda n: save_checkpoint(ledger, "lms-xapi", f"cursor-{n}"))
        all_at_once(lambda n: add_dead_letters(ledger, [entry]))
        all_at_once(lambda n: save_registry_diff(ledger, "run-1", "ama-pra", {"drift": n}, {"missing": [f"r-{n}"]}))
        with ledger.engine.connect() as conn:
            cursors = conn.execute(select(t.checkpoints.c.cursor)).scalars().all()
            attempts = conn.execute(select(t.dead_letters.c.attempts)).scalars().all()
            diffs = conn.execute(select(t.registry_diffs.c.counts)).scalars().all()
    assert len(cursors) == 1 and cursors[0] in {f"cursor-{n}" for n in range(WRITERS)}
    assert attempts == [WRITERS]
    assert len(diffs) == 1


def test_given_writers_racing_on_watermarks_when_they_raise_them_then_each_mark_is_the_highest_and_never_lowered(
    ledger_url: str,
) -> None:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        all_at_once(lambda n: record_produced(ledger, "topic", {0: 10 + n, 1: 20 - n}))
        produced = watermarks(ledger, "topic")
        with ledger.transaction() as conn:
            record_reconciled(conn, "topic", {0: 5, 1: 3})
        with ledger.transaction() as conn:
            record_reconciled(conn, "topic", {0: 4, 2: 7})  # a late acknowledgement never lowers a mark
        reconciled = watermarks(ledger, "topic")
        with ledger.transaction() as conn:
            set_watermark(conn, "topic", 0, 2, 1)  # a new epoch: the marks restart, lower
        restarted = watermarks(ledger, "topic")
    assert produced == {0: Watermark(10 + WRITERS - 1, 0), 1: Watermark(20, 0)}
    assert reconciled == {0: Watermark(17, 5), 1: Watermark(20, 3), 2: Watermark(0, 7)}
    assert restarted[0] == Watermark(2, 1) and restarted[1] == Watermark(20, 3)


def test_given_writers_racing_on_notices_when_they_record_them_then_the_first_receipt_stays(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        all_at_once(lambda n: record_notices(ledger, "hr", {"notice-1": f"receipt-{n}", f"notice-{n + 2}": "r"}))
        record_notices(ledger, "hr", {"notice-1": "later"})
        with ledger.engine.connect() as conn:
            receipts = conn.execute(select(t.hr_notices.c.receipt_id).where(t.hr_notices.c.notice_id == "notice-1"))
            first = receipts.scalars().all()
        sent = sent_notices(ledger, "hr", ["notice-1", "notice-2", f"notice-{WRITERS + 2}"])
    assert len(first) == 1 and first[0] in {f"receipt-{n}" for n in range(WRITERS)}
    assert sent == {"notice-1", "notice-2"}
