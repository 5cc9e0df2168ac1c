"""How far a consumer group is behind: committed offsets against each partition's start and end, read the
way Tansu answers them (DESIGN §10)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from pipeline.kafka.topics import ATTENDANCE_TOPIC


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group has never committed here, so it starts at `start`
    start: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - (self.start if self.committed is None else self.committed))


def consumer_lag(
    bootstrap: str,
    group: str,
    topics: tuple[str, ...] = (ATTENDANCE_TOPIC,),
    timeout_s: float = 10.0,
    options: Mapping[str, Any] | None = None,
) -> list[PartitionLag]:
    """Committed offset of `group` against the end of each partition of `topics` (and of any other topic the
    group has committed on). `options`: kafka-python TLS/SASL keyword arguments."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="cmesync-status", request_timeout_ms=5000, **(options or {})
    )
    try:
        committed = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    wanted = sorted({tp.topic for tp in committed} | set(topics))
    bounds = log_bounds(bootstrap, wanted, timeout_s, options)
    return [
        PartitionLag(tp.topic, tp.partition, committed[tp].offset if tp in committed else None, start, end)
        for tp, (start, end) in sorted(bounds.items())
    ]


def log_bounds(
    bootstrap: str, topics: list[str], timeout_s: float = 10.0, options: Mapping[str, Any] | None = None
) -> dict[TopicPartition, tuple[int, int]]:
    """(start, end) of every partition of `topics`; the end is the next offset to be written.

    ListOffsets(latest) is not enough: Tansu answers it with the base offset of the last record batch, not the
    end. A Fetch response carries the partition's high watermark, which is the end on every broker, so we seek
    to ListOffsets' answer (never past the end, and at most one batch before it), fetch once, and read the high
    watermark kafka-python records from that response. Nothing is committed: this consumer has no group.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100, **(options or {})
    )
    try:
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return {}
        consumer.assign(partitions)
        listed = consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, listed[tp])
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError("no fetch response carried a high watermark")
            consumer.poll(timeout_ms=200, max_records=1)
        starts = consumer.beginning_offsets(partitions)
        return {tp: (starts[tp], max(int(consumer.highwater(tp) or 0), listed[tp])) for tp in partitions}
    finally:
        consumer.close(autocommit=False)
