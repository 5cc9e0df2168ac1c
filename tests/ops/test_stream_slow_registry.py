"""The stream's credit stream does not wait for the registries: with the registry hanging on a delivery request,
credit versions reconciled after that request went out still reach cme.credits.v1, each once; the deliveries go
through once the registry answers. Ordering, not timing: the registry answers only when the test lets it."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from deploy.sandbox.base import Faults
from deploy.sandbox.stack import SandboxStack
from ledger import tables as t
from ledger.outbox import unpublished_credits
from ledger.store import Ledger
from pipeline.config import Settings
from pipeline.factory import build_sources, codec_for
from pipeline.kafka.interface import Message, publish
from pipeline.kafka.io import make_consumer, make_producer
from pipeline.kafka.topics import ATTENDANCE_TOPIC, CREDITS_TOPIC
from pipeline.stages import nightly
from pipeline.stages.pull import normalise_page
from pipeline.stages.stream import StreamStats, run_stream
from tests.ops.conftest import Ops, credit_versions, events_taken, wait_for

pytestmark = pytest.mark.integration


def attendance_messages(settings: Settings) -> list[Message]:
    """The sample statements as the xAPI connector normalises them, encoded for cme.attendance.v1."""
    source = build_sources(settings)[0]
    codec = codec_for(settings, "attendance_event")
    return [message for page in source.pages(None) for message in normalise_page(source, page, codec)[0]]


def deliveries_by_state(ledger: Ledger) -> dict[str, set[str]]:
    d = t.deliveries.c
    found: dict[str, set[str]] = {}
    with ledger.engine.connect() as conn:
        for row in conn.execute(select(d.state, d.record_id, d.version)):
            found.setdefault(row.state, set()).add(f"{row.record_id}:{row.version}")
    return found


def on_credit_topic(settings: Settings) -> int:
    credits = make_consumer(settings.kafka_bootstrap, CREDITS_TOPIC, "test-credits", backend=settings.kafka_backend)
    try:
        return sum(len(batch) for batch in credits.batches())
    finally:
        credits.close()


def test_given_a_registry_hanging_on_a_delivery_when_more_events_are_reconciled_then_their_credits_reach_the_topic(
    tmp_path: Path, kafka_bootstrap: str, sandboxes: SandboxStack, ledger_url: str
) -> None:
    world = Ops(tmp_path, kafka_bootstrap, sandboxes, ledger_url, env={}, batch_size=7)
    settings = Settings.load(world.write_config())
    nightly.prepare(settings)
    messages = attendance_messages(settings)
    first, second = messages[: len(messages) // 2], messages[len(messages) // 2 :]
    hold = threading.Event()
    sandboxes.ama.faults = Faults(hold=hold)
    ledger = Ledger(settings.ledger_url)
    stop = threading.Event()
    result: list[StreamStats] = []
    stream = threading.Thread(
        target=lambda: result.append(run_stream(settings, stop, delivery_interval_s=0.2, idle_wait_s=0.1))
    )
    producer = make_producer(settings.kafka_bootstrap, backend=settings.kafka_backend)
    stream.start()
    try:
        publish(producer, ATTENDANCE_TOPIC, first)
        wait_for(lambda: events_taken(ledger) == len(first), "the first events to be reconciled")
        wait_for(lambda: sandboxes.ama.requests_seen, "a delivery request to be waiting at the registry")
        versions_before = credit_versions(ledger)

        publish(producer, ATTENDANCE_TOPIC, second)
        wait_for(lambda: events_taken(ledger) == len(messages), "every event to be reconciled")
        assert credit_versions(ledger) > versions_before  # the second events made credit versions of their own
        wait_for(lambda: not unpublished_credits(ledger, 1), "every credit version to be published")

        # All of it on the credit stream while the registry has not answered the request it holds.
        assert on_credit_topic(settings) == credit_versions(ledger)
        assert not sandboxes.ama.accepted
        assert "pending" in deliveries_by_state(ledger)
        assert not {"sent", "failed"} & set(deliveries_by_state(ledger))
        hold.set()
        wait_for(lambda: not {"pending", "failed"} & set(deliveries_by_state(ledger)), "every credit to be delivered")
    finally:
        hold.set()
        stop.set()
        stream.join(timeout=120)
        producer.close()
    assert not stream.is_alive(), "the stream did not stop"
    [stats] = result

    assert stats.pump_errors == 0
    # Each credit version once on the topic, each delivery once at the registry.
    assert on_credit_topic(settings) == stats.credits_published == stats.credit_versions == credit_versions(ledger)
    accepted = Counter(item["idempotency_key"] for item in sandboxes.ama.accepted)
    assert set(accepted) == deliveries_by_state(ledger)["sent"]
    assert max(accepted.values()) == 1
    assert stats.delivered == len(accepted)
    ledger.close()
