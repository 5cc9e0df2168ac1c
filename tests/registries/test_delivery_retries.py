"""Automatic retries of REGISTRY_UNAVAILABLE deliveries (pipeline/stages/deliver.py) over the ledger (SQLite and
PostgreSQL) and the AMA sandbox over real HTTP: due after each failure by `retry_delays`, capped at one retry
per delay, their dead letters resolved when they go through; REGISTRY_REJECTED ones are never retried."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from connectors.registries.ama_pra import AmaPraRegistry
from deploy.sandbox.ama_registry import AmaPraRegistry as AmaSandbox
from deploy.sandbox.base import Faults
from ledger import tables as t
from ledger.store import Ledger, utcnow
from pipeline.stages.deliver import deliver_with_retries, due_retries

Credits = Any  # the `credits` fixture: tests/registries/conftest.py Credits
DELAYS = [timedelta(0), timedelta(hours=1)]


def dead_letters(ledger: Ledger) -> list[tuple[str, int, bool]]:
    dl = t.dead_letters.c
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(dl.reason_code, dl.attempts, dl.resolved_at))
        return sorted((r.reason_code, r.attempts, r.resolved_at is not None) for r in rows)


def test_given_the_registry_unavailable_when_passes_follow_then_retries_come_by_the_delays_and_stop_at_the_cap(
    ledger: Ledger, ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    record = credits.record()
    key = (record["record_id"], 1, "ama-pra")
    credits.seed(ledger, [record], [ama])
    ama_sandbox.faults = Faults(server_error=1.0)

    first = deliver_with_retries(ledger, ama, DELAYS)
    second = deliver_with_retries(ledger, ama, DELAYS)  # delay 0: the next pass sends it again
    third = deliver_with_retries(ledger, ama, DELAYS)  # the next retry is an hour after the second failure

    assert [(s.retried, s.failed) for s in (first, second, third)] == [(0, 1), (1, 1), (0, 0)]
    assert dead_letters(ledger) == [("REGISTRY_UNAVAILABLE", 2, False)]
    now = utcnow()
    assert due_retries(ledger, "ama-pra", DELAYS, now) == []
    assert due_retries(ledger, "ama-pra", DELAYS, now + timedelta(hours=1, seconds=1)) == [key]
    assert due_retries(ledger, "ama-pra", DELAYS[:1], now + timedelta(days=365)) == [], "retries past the cap"


def test_given_an_unavailable_failure_when_the_registry_is_back_then_the_next_pass_delivers_and_resolves_it(
    ledger: Ledger, ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    unavailable, refused = credits.record(), credits.record(completed_on=date(2020, 1, 1))  # too old for PARS
    credits.seed(ledger, [unavailable], [ama])
    ama_sandbox.faults = Faults(server_error=1.0)
    deliver_with_retries(ledger, ama, DELAYS)
    ama_sandbox.faults = Faults()
    credits.seed(ledger, [refused], [ama])
    deliver_with_retries(ledger, ama, DELAYS)

    again = deliver_with_retries(ledger, ama, DELAYS)

    assert (again.retried, again.delivered, again.failed) == (0, 0, 0)
    assert set(ama_sandbox.holdings()) == {unavailable["record_id"]}
    assert dead_letters(ledger) == [("REGISTRY_REJECTED", 1, False), ("REGISTRY_UNAVAILABLE", 1, True)]
    assert due_retries(ledger, "ama-pra", DELAYS, utcnow() + timedelta(days=1)) == []
