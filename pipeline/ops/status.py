"""`cmesync status`: what an operator needs at 9 am — the last runs, how far the reconciler is behind on Kafka,
what is waiting for each registry, and the oldest dead letter nobody has dealt with."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from ledger.queries import (
    DeadLetterRow,
    RunRow,
    delivery_backlog,
    oldest_unresolved_dead_letter,
    recent_runs,
    unresolved_dead_letter_counts,
)
from ledger.store import Ledger
from pipeline.config import Settings
from pipeline.kafka.security import kafka_python_options
from pipeline.kafka.topics import ATTENDANCE_TOPIC

BROKER_ANSWER_S = 10.0


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


@dataclass
class Status:
    runs: list[RunRow]
    backlog: dict[str, dict[str, int]]
    unresolved: list[tuple[str, str, int]]
    oldest_unresolved: DeadLetterRow | None
    lag: list[PartitionLag] = field(default_factory=list)
    lag_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": [
                {
                    **asdict(r),
                    "started_at": _iso(r.started_at),
                    "finished_at": _iso(r.finished_at),
                    "duration_s": r.duration_s,
                }
                for r in self.runs
            ],
            "deliveries": self.backlog,
            "unresolved_dead_letters": [
                {"stage": stage, "reason_code": code, "count": n} for stage, code, n in self.unresolved
            ],
            "oldest_unresolved_dead_letter": (
                {
                    "dead_letter_id": self.oldest_unresolved.dead_letter_id,
                    "stage": self.oldest_unresolved.stage,
                    "reason_code": self.oldest_unresolved.reason_code,
                    "source": self.oldest_unresolved.source,
                    "source_ref": self.oldest_unresolved.source_ref,
                    "first_seen": _iso(self.oldest_unresolved.first_seen),
                }
                if self.oldest_unresolved
                else None
            ),
            "consumer_lag": [{**asdict(p), "lag": p.lag} for p in self.lag],
            "consumer_lag_error": self.lag_error,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def collect_status(settings: Settings, runs: int = 5) -> Status:
    ledger = Ledger(settings.ledger_url)
    try:
        status = Status(
            recent_runs(ledger, runs),
            delivery_backlog(ledger),
            unresolved_dead_letter_counts(ledger),
            oldest_unresolved_dead_letter(ledger),
        )
    finally:
        ledger.close()
    if not settings.kafka_bootstrap:
        status.lag_error = "no kafka_bootstrap configured"
        return status
    options = kafka_python_options(settings.kafka_security)
    answers: list[list[PartitionLag] | Exception] = []

    def measure() -> None:
        try:
            answers.append(consumer_lag(settings.kafka_bootstrap, settings.consumer_group, options=options))
        except (KafkaError, OSError, TimeoutError) as err:
            answers.append(err)

    # kafka-python keeps retrying an unreachable bootstrap for ~30 s: a daemon thread bounds the wait.
    probe = threading.Thread(target=measure, name="cmesync-status-lag", daemon=True)
    probe.start()
    probe.join(BROKER_ANSWER_S)
    if not answers:
        status.lag_error = f"broker {settings.kafka_bootstrap} did not answer within {BROKER_ANSWER_S:.0f} s"
    elif isinstance(answers[0], Exception):
        status.lag_error = f"broker {settings.kafka_bootstrap} did not answer: {type(answers[0]).__name__}"
    else:
        status.lag = answers[0]
    return status


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
