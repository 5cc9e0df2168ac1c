"""SIGKILL of `cmesync run` at each named crash point (pipeline/stages/faults.py), then a rerun: the final state equals
the clean reference run's, with nothing lost and nothing held twice (DESIGN §1)."""

from __future__ import annotations

import pytest

from tests.faults.conftest import Outcome, World

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.dialect]

# Each gap of DESIGN §1, and the how-many-th time it is reached: mid-stage, with work done before and after.
CRASH_POINTS = (
    "pull.page_pulled:3",  # a page read and normalised, not yet on Kafka
    "pull.produced:5",  # a page acknowledged by the broker, its cursor not saved
    "pull.cursor_saved:7",  # a cursor saved, the next page not read
    "intake.before_commit:2",  # a batch written to the ledger transaction, not committed
    "intake.committed:2",  # a batch committed to the ledger, its offsets not committed
    "intake.offsets_committed:2",  # offsets committed, the next batch not polled
    "publish.sent:2",  # outbox rows acknowledged on cme.credits.v1, not marked published
    "publish.marked:2",  # outbox rows marked, the next ones not sent
    "deliver.accepted:3",  # a registry accepted a batch, its receipts not stored
)


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_given_a_run_killed_at_a_crash_point_when_rerun_then_the_state_equals_the_clean_run(
    world: World, reference: Outcome, crash_at: str
) -> None:
    assert world.run(crash_at=crash_at).killed, f"the run never reached {crash_at}"

    world.run().counts()

    assert world.settle() == reference


def test_given_a_run_killed_while_the_registry_diff_repairs_when_rerun_then_the_repair_lands_once(
    world: World, reference: Outcome
) -> None:
    world.run().counts()
    victim = sorted(world.stack.ama.holdings())[0]
    world.stack.ama.remove(victim)
    world.removed_by_hand.add(victim)

    assert world.run(crash_at="diff.redelivered").killed
    assert victim in world.stack.ama.holdings(), "the registry took the repair before the kill"
    rerun = world.run().counts()

    assert (rerun["registry_drift"], rerun["credit_versions"], rerun["delivered"]) == (0, 0, 0)
    assert world.settle() == reference


def test_given_a_run_killed_after_a_cebroker_message_accepted_when_rerun_then_no_entry_is_sent_twice(
    world: World, reference: Outcome
) -> None:
    assert world.run(crash_at="cebroker.message_accepted:3").killed
    sent = {
        f"{e.record_id}:{e.version}"
        for e in world.ledger.registry_expectations("cebroker").values()
        if e.delivery_state == "sent"
    }
    unrecorded = set(world.stack.cebroker.active_rows()) - sent
    assert unrecorded, "the kill fell where the ledger already knew what CE Broker took"

    world.run().counts()

    assert world.stack.cebroker.refused_duplicates == 0, "an entry already reported was sent again"
    assert world.settle() == reference


def test_given_a_run_killed_after_pars_accepted_adds_when_rerun_then_no_learner_report_is_added_twice(
    world: World, reference: Outcome
) -> None:
    assert world.run(crash_at="pars.add_accepted:2").killed
    sent = {
        f"ccid:{e.record_id}:{e.version}"
        for e in world.ledger.registry_expectations("ama-pra").values()
        if e.delivery_state == "sent"
    }
    taken = {credit_id for action, credit_id in world.stack.ama.learner_actions if action == "add"}
    assert taken - sent, "the kill fell where the ledger already knew what PARS took"

    world.run().counts()

    adds = [credit_id for action, credit_id in world.stack.ama.learner_actions if action == "add"]
    assert len(adds) == len(set(adds)), "a learner report PARS had taken was added again"
    assert world.settle() == reference
