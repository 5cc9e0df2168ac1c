"""The stream's poll loop on the configured Kafka backend (`kafka_backend`), on the embedded broker: events
published while it runs are reconciled into the ledger, their offsets committed only for what the ledger
holds, their credits published and delivered, and an idle stream neither stalls nor stops on either backend."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import get_args

import pytest

from deploy.sandbox.stack import SandboxStack
from ledger.store import Ledger
from pipeline.config import Settings
from pipeline.kafka.confluent import ConfluentBatchConsumer
from pipeline.kafka.interface import KafkaBackend
from pipeline.kafka.io import make_consumer
from pipeline.kafka.kafka_python import BatchConsumer
from pipeline.kafka.lag import consumer_lag
from pipeline.kafka.topics import CREDITS_TOPIC
from pipeline.stages import nightly
from pipeline.stages.stream import StreamStats, run_stream, stream_consumer
from tests.ops.conftest import Ops, credit_versions, events_taken, wait_for

pytestmark = pytest.mark.integration

CONSUMER_CLASS = {"kafka-python": BatchConsumer, "confluent-kafka": ConfluentBatchConsumer}


def settings_on(
    backend: KafkaBackend, tmp_path: Path, kafka_bootstrap: str, sandboxes: SandboxStack, ledger_url: str
) -> Settings:
    world = Ops(tmp_path, kafka_bootstrap, sandboxes, ledger_url, env={}, batch_size=7)
    settings = Settings.load(world.write_config()).model_copy(update={"kafka_backend": backend})
    nightly.prepare(settings)
    return settings


@pytest.mark.parametrize("backend", get_args(KafkaBackend))
def test_given_a_configured_backend_when_the_stream_starts_then_its_poll_loop_consumes_on_that_backend(
    backend: KafkaBackend, tmp_path: Path, kafka_bootstrap: str, sandboxes: SandboxStack
) -> None:
    settings = settings_on(backend, tmp_path, kafka_bootstrap, sandboxes, f"sqlite:///{tmp_path / 'ledger.db'}")
    consumer = stream_consumer(settings)
    try:
        assert type(consumer) is CONSUMER_CLASS[backend]
    finally:
        consumer.close()


@pytest.mark.parametrize("backend", get_args(KafkaBackend))
def test_given_a_running_stream_on_either_backend_when_events_arrive_then_they_are_reconciled_committed_and_delivered(
    backend: KafkaBackend, tmp_path: Path, kafka_bootstrap: str, sandboxes: SandboxStack, ledger_url: str
) -> None:
    settings = settings_on(backend, tmp_path, kafka_bootstrap, sandboxes, ledger_url)
    ledger = Ledger(settings.ledger_url)
    stop = threading.Event()
    batches: list[int] = []
    result: list[StreamStats] = []

    def on_batch(stats: StreamStats) -> None:
        batches.append(stats.consumed)

    stream = threading.Thread(
        target=lambda: result.append(
            run_stream(settings, stop, delivery_interval_s=0.2, idle_wait_s=0.1, on_batch=on_batch)
        )
    )
    stream.start()
    try:
        published = nightly.pull(settings, "lms-xapi").events
        assert published > settings.batch_size  # several poll batches
        wait_for(lambda: events_taken(ledger) == published, "every published event to be reconciled")
        wait_for(lambda: sandboxes.ama.accepted, "a credit to reach the registry")
        # Idle now: a second pull of nothing new must not stall or stop the loop, and it keeps taking events.
        assert nightly.pull(settings, "lms-xapi").events == 0
    finally:
        stop.set()
        stream.join(timeout=120)
    assert not stream.is_alive(), "the stream did not stop"
    [stats] = result

    assert stats.consumed == published == batches[-1]
    assert len(batches) >= published // settings.batch_size
    assert stats.credit_versions == credit_versions(ledger) > 0
    assert stats.pump_errors == 0
    # Offsets were committed for exactly what the ledger holds, under the configured group.
    [partition] = consumer_lag(settings.kafka_bootstrap, settings.consumer_group)
    assert partition.committed == events_taken(ledger) == published
    assert partition.lag == 0
    # Every credit version the stream reconciled is on the credit stream.
    credits = make_consumer(settings.kafka_bootstrap, CREDITS_TOPIC, "test-credits", backend=backend)
    on_topic = sum(len(batch) for batch in credits.batches())
    credits.close()
    assert on_topic == stats.credits_published == stats.credit_versions
    ledger.close()
