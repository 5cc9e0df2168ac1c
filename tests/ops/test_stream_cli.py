"""The stream flow as it runs in production: `cmesync stream` in its own process, events published to
cme.attendance.v1 while it runs, SIGTERM while a slow registry is still being delivered to."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from deploy.sandbox.base import Faults
from ledger import tables as t
from ledger.run_lock import run_lock
from ledger.store import Ledger
from pipeline.config import Settings
from pipeline.kafka.lag import consumer_lag
from pipeline.stages import nightly
from tests.ops.conftest import Ops, wait_for

pytestmark = pytest.mark.integration


def stream_runs(ledger: Ledger) -> list[str]:
    try:
        with ledger.engine.connect() as conn:
            return list(conn.scalars(select(t.runs.c.status).where(t.runs.c.flow == "stream")))
    except SQLAlchemyError:  # the stream has not created the ledger's tables yet
        return []


def deliveries_by_state(ledger: Ledger) -> dict[str, set[str]]:
    d = t.deliveries.c
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(d.state, d.record_id, d.version))
        found: dict[str, set[str]] = {}
        for row in rows:
            found.setdefault(row.state, set()).add(f"{row.record_id}:{row.version}")
        return found


def messages_accounted_for(ledger: Ledger) -> int:
    """Attendance messages the ledger has taken: accepted events plus those rejected at reconcile."""
    with ledger.engine.connect() as conn:
        events = conn.scalar(select(func.count()).select_from(t.events))
        rejected = conn.scalar(
            select(func.count()).select_from(t.dead_letters).where(t.dead_letters.c.stage == "reconcile")
        )
    return int(events or 0) + int(rejected or 0)


def accepted(ops: Ops) -> Counter[str]:
    return Counter(item["idempotency_key"] for item in ops.sandboxes.ama.accepted)


def test_given_a_running_stream_when_sigterm_arrives_mid_delivery_then_the_batch_in_hand_is_finished_not_lost(
    ops: Ops,
) -> None:
    ops.batch_size = 5  # several poll batches for the sample's events
    ops.ama_batch_size = 1  # and many slow registry calls
    ops.write_config()
    ops.sandboxes.ama.faults = Faults(slow=1.0, slow_s=0.3)
    ledger = Ledger(ops.ledger_url)
    stream = ops.start("stream", "--delivery-interval", "0.2", "--json")
    try:
        wait_for(lambda: stream_runs(ledger) == ["running"], "the stream to start")
        published = nightly.pull(Settings.load(ops.config_path), "lms-xapi").events
        wait_for(lambda: deliveries_by_state(ledger).get("sent"), "a first credit to reach the registry")
        pending_at_sigterm = len(deliveries_by_state(ledger).get("pending", ()))

        stream.send_signal(signal.SIGTERM)
        stdout, stderr = stream.communicate(timeout=180)
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.communicate()

    assert stream.returncode == 0, stderr
    assert pending_at_sigterm > 0  # the signal did land while deliveries were in flight
    counts = json.loads(stdout)
    states = deliveries_by_state(ledger)
    # Every credit the registry took has its receipt in the ledger, and nothing was taken twice.
    assert set(accepted(ops)) == states["sent"]
    assert max(accepted(ops).values()) == 1
    assert counts["delivered"] == len(states["sent"])
    # Offsets were committed only for what the ledger holds.
    [partition] = consumer_lag(ops.kafka_bootstrap, "reconciler")
    assert partition.committed == messages_accounted_for(ledger) == counts["consumed"]
    assert stream_runs(ledger) == ["stopped"]

    ops.sandboxes.ama.faults = Faults()
    restarted = ops.start("stream", "--delivery-interval", "0.2", "--json")
    try:
        wait_for(lambda: stream_runs(ledger).count("running") == 1, "the second stream to start")
        wait_for(lambda: messages_accounted_for(ledger) == published, "every published event to be reconciled")
        wait_for(lambda: not {"pending", "failed"} & set(deliveries_by_state(ledger)), "every credit to be delivered")
        restarted.send_signal(signal.SIGTERM)
        _, stderr = restarted.communicate(timeout=120)
    finally:
        if restarted.poll() is None:
            restarted.kill()
            restarted.communicate()

    assert restarted.returncode == 0, stderr
    assert set(accepted(ops)) == deliveries_by_state(ledger)["sent"]
    assert max(accepted(ops).values()) == 1
    assert all(p.lag == 0 for p in consumer_lag(ops.kafka_bootstrap, "reconciler"))
    ledger.close()


@pytest.mark.dialect
def test_given_a_nightly_run_holding_the_ledger_when_the_stream_reconciles_then_it_delivers_only_once_released(
    ops: Ops,
) -> None:
    ops.batch_size = 5  # several poll batches, each waking the delivery pump
    ops.write_config()
    ledger = Ledger(ops.ledger_url)
    stream = ops.start("stream", "--delivery-interval", "0.2", "--json")
    try:
        wait_for(lambda: stream_runs(ledger) == ["running"], "the stream to start")
        with run_lock(ops.ledger_url, "run-nightly-elsewhere", "nightly"):
            published = nightly.pull(Settings.load(ops.config_path), "lms-xapi").events
            wait_for(lambda: messages_accounted_for(ledger) == published, "every published event to be reconciled")
            wait_for(lambda: deliveries_by_state(ledger).get("pending"), "credits waiting for delivery")
            requests_while_held = ops.sandboxes.ama.requests_seen
        wait_for(lambda: not {"pending", "failed"} & set(deliveries_by_state(ledger)), "every credit to be delivered")
        stream.send_signal(signal.SIGTERM)
        stdout, stderr = stream.communicate(timeout=120)
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.communicate()

    assert stream.returncode == 0, stderr
    assert requests_while_held == 0, "the stream delivered while another writer held the ledger"
    assert set(accepted(ops)) == deliveries_by_state(ledger)["sent"]
    assert json.loads(stdout)["delivered"] == len(deliveries_by_state(ledger)["sent"])
    ledger.close()
