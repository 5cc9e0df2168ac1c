"""A broker that stalls while the reconcile consumer is still behind must not end the stage as if the topic
were read: the consumer raises ConsumerStalled, so the nightly run fails and its rerun reads the rest."""

from __future__ import annotations

import os
import signal
from typing import get_args

import pytest

from deploy.broker import EmbeddedBroker
from pipeline.kafka.interface import ConsumerStalled, KafkaBackend, publish
from pipeline.kafka.io import make_consumer, make_producer
from pipeline.kafka.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration

TOPIC = "test.stall"


@pytest.mark.parametrize("backend", get_args(KafkaBackend))
def test_given_a_paused_broker_when_the_consumer_is_behind_then_it_raises_instead_of_ending(
    backend: KafkaBackend,
) -> None:
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, (TopicSpec(TOPIC),))
        producer = make_producer(broker.bootstrap)
        # 20 MB: far more than one fetch returns, so the consumer must go back to the broker for the rest.
        publish(producer, TOPIC, [(None, os.urandom(10_000)) for _ in range(2_000)])
        producer.close()
        consumer = make_consumer(broker.bootstrap, TOPIC, "stall-test", max_records=50, backend=backend)
        batches = consumer.batches(stall_timeout_s=3.0)
        read = len(next(batches))
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            with pytest.raises(ConsumerStalled):
                for batch in batches:
                    read += len(batch)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
            consumer.close()
        assert 0 < read < 2_000
