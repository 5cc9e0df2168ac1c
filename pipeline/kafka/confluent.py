"""The optional confluent-kafka (librdkafka) backend behind the same producer and consumer interface as
`pipeline/kafka/io.py` (`kafka_backend = "confluent-kafka"`, extra `cmesync[confluent]`, never required).

kafka-python does its protocol work in Python; librdkafka does it in C, which the benchmark shows is what
bounds the pull and reconcile stages' Kafka share. Same guarantees: acks=all, idempotence, every delivery
report checked before the caller records anything; offsets committed only by `commit(batch)`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from pipeline.kafka.interface import STALL_TIMEOUT_S, Consumed, ConsumerStalled, Ends, Message, PublishError


class ConfluentProducer:
    """`publish(producer, topic, messages)` accepts this as it accepts a KafkaProducer."""

    def __init__(self, bootstrap: str, client_id: str, options: dict[str, Any] | None = None) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": client_id,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                **(options or {}),
            }
        )

    def publish(self, topic: str, messages: Sequence[Message], timeout_s: float) -> Ends:
        failures: list[str] = []
        ends: Ends = {}

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(err.name())
            else:
                ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)

        for key, value in messages:
            while True:
                try:
                    self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
                    break
                except BufferError:
                    self._producer.poll(0.05)  # the local queue is full: let deliveries drain it
            self._producer.poll(0)
        remaining = self._producer.flush(timeout_s)
        if remaining or failures:
            reason = failures[0] if failures else f"{remaining} messages unacknowledged after {timeout_s} s"
            raise PublishError(f"{topic}: broker did not acknowledge a message: {reason}")
        return ends

    def close(self) -> None:
        self._producer.flush(30)


class ConfluentBatchConsumer:
    """`BatchConsumer`'s interface on librdkafka. The end of a partition is librdkafka's partition-EOF event,
    which comes from fetch high watermarks, so Tansu's short ListOffsets(latest) answer does not matter."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        max_records: int = 500,
        join_group: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.max_records = max_records
        # librdkafka reports a partition's end once per arrival there, so a consumer that calls `batches()` again
        # and again (the stream) must remember which partitions are still at their end between the calls.
        self._at_end: set[int] = set()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,
                **(options or {}),
            }
        )
        if join_group:
            self._consumer.subscribe([topic])
        else:
            partitions = sorted(self._consumer.list_topics(topic, timeout=30).topics[topic].partitions)
            committed = self._consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
            starts = [TopicPartition(topic, tp.partition, max(tp.offset, OFFSET_BEGINNING)) for tp in committed]
            self._consumer.assign(starts)

    def batches(self, stall_timeout_s: float = STALL_TIMEOUT_S) -> Iterator[list[Consumed]]:
        """Batches up to the end of every assigned partition (librdkafka's partition-EOF events). A broker that
        answers nothing for `stall_timeout_s` before every partition reached its end raises ConsumerStalled."""
        at_end = self._at_end
        progress = time.monotonic()
        while True:
            records: list[Consumed] = []
            for message in self._consumer.consume(num_messages=self.max_records, timeout=0.3):
                error = message.error()
                if error is None:
                    at_end.discard(message.partition())
                    records.append(Consumed(message.partition(), message.offset(), message.key(), message.value()))
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                elif not error.retriable():
                    raise RuntimeError(f"{self.topic}: consumer error {error.name()}")
            if records:
                progress = time.monotonic()
                yield records
                continue
            assigned = {tp.partition for tp in self._consumer.assignment()}
            if assigned and assigned <= at_end:
                return
            if time.monotonic() - progress > stall_timeout_s:
                raise ConsumerStalled(f"{self.topic}: partitions {sorted(assigned - at_end)} not read to the end")

    def lag_by_partition(self) -> dict[int, int]:
        """Messages behind the high watermark, per assigned partition where a fetch has told us the watermark
        and this consumer holds a position (the same partitions `BatchConsumer.lag_by_partition` reports)."""
        lag: dict[int, int] = {}
        for tp in self._consumer.position(self._consumer.assignment()):
            _, highwater = self._consumer.get_watermark_offsets(tp, cached=True)
            if highwater >= 0 and tp.offset >= 0:
                lag[tp.partition] = max(highwater - tp.offset, 0)
        return lag

    def commit(self, batch: Sequence[Consumed]) -> None:
        """Commit past the highest offset per partition of a batch the ledger has already committed."""
        highest: dict[int, int] = {}
        for record in batch:
            highest[record.partition] = max(highest.get(record.partition, -1), record.offset)
        if highest:
            offsets = [TopicPartition(self.topic, p, o + 1) for p, o in highest.items()]
            self._consumer.commit(offsets=offsets, asynchronous=False)

    def close(self) -> None:
        self._consumer.close()
