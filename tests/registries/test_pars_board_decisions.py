"""PARS's asynchronous outcome over real HTTP, ledger on SQLite and PostgreSQL: a record PARS accepted and a
board later rejected becomes, on the next delivery pass, a failed delivery with a REGISTRY_REJECTED dead letter
carrying the board's reason (no PII), and goes through when replayed after the learner's data is fixed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from connectors.registries.ama_pra import AmaPraRegistry
from connectors.registries.base import REGISTRY_REJECTED
from deploy.sandbox.ama_registry import AmaPraRegistry as AmaSandbox
from ledger import tables as t
from ledger.ops import requeue_deliveries
from ledger.store import Ledger, utcnow
from pipeline.stages.deliver import deliver_with_retries, settle_dead_letters

Credits = Any  # the `credits` fixture: tests/registries/conftest.py Credits
REASON = "Learner name and date of birth do not match the board's record"


@pytest.fixture(autouse=True)
def ask_every_pass(ama: AmaPraRegistry) -> None:
    """The passes here stand for nightly runs, a day apart: the board is asked on each."""
    ama.decision_poll_interval = timedelta(0)


def open_dead_letters(ledger: Ledger) -> list[tuple[str, str, str]]:
    dl = t.dead_letters.c
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(dl.reason_code, dl.reason, dl.source_ref).where(dl.resolved_at.is_(None)))
        return sorted((r.reason_code, r.reason, r.source_ref) for r in rows)


def delivery_state(ledger: Ledger, record_id: str) -> str:
    d = t.deliveries.c
    with ledger.engine.connect() as conn:
        return conn.scalar(select(d.state).where(d.record_id == record_id))


def test_given_a_board_rejects_what_pars_accepted_when_the_next_pass_runs_then_a_dead_letter_with_the_reason(
    ledger: Ledger, ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    doubtful = credits.record(learner=credits.physician | {"npi": "1234567893", "family_name": "Hartt"})
    fine = credits.record()
    credits.seed(ledger, [doubtful, fine], [ama])
    ama_sandbox.board_rejects["1234567893"] = REASON

    first = deliver_with_retries(ledger, ama, [])
    assert (first.delivered, first.failed) == (2, 0)  # PARS took both; the board has not decided yet
    second = deliver_with_retries(ledger, ama, [])

    assert second.failed == 1
    assert (delivery_state(ledger, doubtful["record_id"]), delivery_state(ledger, fine["record_id"])) == (
        "failed",
        "sent",
    )
    [(code, reason, source_ref)] = open_dead_letters(ledger)
    assert (code, source_ref) == (REGISTRY_REJECTED, f"credit {doubtful['record_id']} v1")
    assert reason == f"rejected by the board: {REASON}"
    assert "Hartt" not in reason and "1234567893" not in reason
    assert deliver_with_retries(ledger, ama, []).failed == 0  # asked once: a failed delivery is not asked again
    assert len(open_dead_letters(ledger)) == 1


def test_given_a_board_rejection_when_replayed_after_the_data_is_fixed_then_delivered_once_and_the_dead_letter_resolved(
    ledger: Ledger, ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    record = credits.record(learner=credits.physician | {"npi": "1234567893"})
    credits.seed(ledger, [record], [ama])
    ama_sandbox.board_rejects["1234567893"] = REASON
    deliver_with_retries(ledger, ama, [])
    deliver_with_retries(ledger, ama, [])
    assert delivery_state(ledger, record["record_id"]) == "failed"
    ama_sandbox.board_rejects.clear()  # the office fixed the learner's data with the board

    started = utcnow()
    key = (record["record_id"], 1, "ama-pra")
    requeue_deliveries(ledger, [key])  # what `cmesync replay` does, then a delivery pass and the settling
    deliver_with_retries(ledger, ama, [])
    sent, failed = settle_dead_letters(ledger, [key], started)
    after = deliver_with_retries(ledger, ama, [])  # the next run asks the board again: accepted

    assert (sent, failed, after.failed) == ([key], [], 0)
    assert delivery_state(ledger, record["record_id"]) == "sent"
    assert open_dead_letters(ledger) == []
    adds = [credit_id for action, credit_id in ama_sandbox.learner_actions if action == "add"]
    assert adds == [f"ccid:{record['record_id']}:1"] * 2  # sent, rejected, sent once more: never doubled
    assert ama_sandbox.holdings()[record["record_id"]]["status"] == "AWARDED"


def test_given_records_sent_before_the_decision_window_when_the_pass_runs_then_the_board_is_not_asked_about_them(
    ledger: Ledger, ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    record = credits.record()
    credits.seed(ledger, [record], [ama])
    deliver_with_retries(ledger, ama, [])
    ama.decision_window = timedelta(0)

    deliver_with_retries(ledger, ama, [])

    assert ama_sandbox.status_polls == 0


def test_given_passes_minutes_apart_when_the_poll_interval_has_not_passed_then_the_board_is_asked_once(
    ledger: Ledger, ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    record = credits.record(learner=credits.physician | {"npi": "1234567893"})
    credits.seed(ledger, [record, credits.record()], [ama])  # the second stays sent: the board accepts it
    ama.decision_poll_interval = timedelta(hours=1)  # the stream's delivery passes come every few seconds
    deliver_with_retries(ledger, ama, [])
    ama_sandbox.board_rejects["1234567893"] = REASON

    first, second, third = (deliver_with_retries(ledger, ama, []) for _ in range(3))

    assert ama_sandbox.status_polls == 1
    assert (first.failed, second.failed, third.failed) == (1, 0, 0)
    assert len(open_dead_letters(ledger)) == 1
