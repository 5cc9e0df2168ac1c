"""Writes two writers can race on are single upserts (ledger/store.py): many writers saving the same checkpoint,
dead letter and registry diff at the same moment on a fresh ledger all succeed, and the rows add up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from ledger import tables as t
from ledger.store import DeadLetterEntry, Ledger

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
        all_at_once(lambda n: ledger.save_checkpoint("lms-xapi", f"cursor-{n}"))
        all_at_once(lambda n: ledger.add_dead_letters([entry]))
        all_at_once(lambda n: ledger.save_registry_diff("run-1", "ama-pra", {"drift": n}, {"missing": [f"r-{n}"]}))
        with ledger.engine.connect() as conn:
            cursors = conn.execute(select(t.checkpoints.c.cursor)).scalars().all()
            attempts = conn.execute(select(t.dead_letters.c.attempts)).scalars().all()
            diffs = conn.execute(select(t.registry_diffs.c.counts)).scalars().all()
    assert len(cursors) == 1 and cursors[0] in {f"cursor-{n}" for n in range(WRITERS)}
    assert attempts == [WRITERS]
    assert len(diffs) == 1
