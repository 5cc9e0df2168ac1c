"""The kafka-python backend: an acknowledged producer and a consumer that reads to the end and commits only
what the ledger has committed (DESIGN §1, §10)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pipeline.kafka.interface import STALL_TIMEOUT_S, Consumed, ConsumerStalled, Ends, Message, PublishError


def kafka_python_producer(
    bootstrap: str, client_id: str = "cmesync", options: dict[str, Any] | None = None
) -> KafkaProducer:
    return KafkaProducer(
        **(options or {}),
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        compression_type=None,
    )


class KafkaPythonProducer:
    def __init__(self, bootstrap: str, client_id: str = "cmesync", options: dict[str, Any] | None = None) -> None:
        self.client = kafka_python_producer(bootstrap, client_id, options)

    def publish(self, topic: str, messages: Sequence[Message], timeout_s: float = 30.0) -> Ends:
        # A failed send shows only on its future (kafka-python #1667): check every one.
        futures = [self.client.send(topic, key=key, value=value) for key, value in messages]
        self.client.flush(timeout=timeout_s)
        ends: Ends = {}
        for future in futures:
            try:
                acked = future.get(timeout=timeout_s)
            except KafkaError as err:
                raise PublishError(f"{topic}: broker did not acknowledge a message: {type(err).__name__}") from err
            ends[acked.partition] = max(ends.get(acked.partition, 0), acked.offset + 1)
        return ends

    def close(self) -> None:
        self.client.close()


class BatchConsumer:
    """Reads a topic from the group's committed offsets up to the end seen at the start, in bounded batches.

    By default partitions are assigned directly, not through a group join, so a nightly run starts at once;
    offsets are still committed under the group id. With `join_group`, several reconciler processes share
    the partitions through the group protocol (scale-out). The end is taken from fetch high-watermarks:
    Tansu answers ListOffsets(latest) with the last batch's base offset, which would stop us early.
    """

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
        self._consumer = KafkaConsumer(
            **(options or {}),
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_records,
            fetch_max_wait_ms=100,
        )
        if join_group:
            self._consumer.subscribe([topic])
        else:
            partitions = self._consumer.partitions_for_topic(topic) or set()
            self._consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])

    def wait_for_assignment(self, size: int = 1, timeout_s: float = 60.0) -> set[TopicPartition]:
        """Poll until this member holds `size` partitions (the group has settled) and return them."""
        deadline = time.monotonic() + timeout_s
        while len(self._consumer.assignment()) != size and time.monotonic() < deadline:
            # Polling is what joins the group; a record fetched on the way is sought back, not lost.
            for tp, records in self._consumer.poll(timeout_ms=200, max_records=1).items():
                self._consumer.seek(tp, records[0].offset)
        return set(self._consumer.assignment())

    def batches(
        self, stall_timeout_s: float = STALL_TIMEOUT_S, idle_polls_to_stop: int = 3
    ) -> Iterator[list[Consumed]]:
        """Batches up to the end. Empty polls end the stage only when no partition is known to be behind:
        a broker that stalls mid-backlog raises ConsumerStalled after `stall_timeout_s`, so a run never
        reports success with events left unread."""
        idle = 0
        progress = time.monotonic()
        while True:
            polled = self._consumer.poll(timeout_ms=300, max_records=self.max_records)
            records = [Consumed(r.partition, r.offset, r.key, r.value) for batch in polled.values() for r in batch]
            if records:
                idle = 0
                progress = time.monotonic()
                yield records
                continue
            idle += 1
            behind, unknown = self._lag()
            if not behind and (not unknown or idle >= idle_polls_to_stop):
                return
            if behind and time.monotonic() - progress > stall_timeout_s:
                raise ConsumerStalled(
                    f"{self.topic}: {behind} messages behind and none fetched in {stall_timeout_s:.0f} s"
                )

    def _lag(self) -> tuple[int, bool]:
        """Messages between our position and the high watermark over partitions whose watermark is known,
        and whether some partition's watermark is not known yet (no fetch answered for it)."""
        behind, unknown = 0, False
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                unknown = True
            else:
                behind += max(highwater - self._consumer.position(tp), 0)
        return behind, unknown

    def lag_by_partition(self) -> dict[int, int]:
        """Messages behind the high watermark, per assigned partition whose watermark a fetch has told us."""
        lag: dict[int, int] = {}
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                lag[tp.partition] = max(highwater - self._consumer.position(tp), 0)
        return lag

    def commit(self, batch: Sequence[Consumed]) -> None:
        """Commit past the highest offset per partition of a batch the ledger has already committed."""
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in batch:
            tp = TopicPartition(self.topic, record.partition)
            if tp not in offsets or offsets[tp].offset <= record.offset:
                offsets[tp] = OffsetAndMetadata(record.offset + 1, None, -1)
        if offsets:
            self._consumer.commit(offsets)

    def close(self) -> None:
        self._consumer.close(autocommit=False)
