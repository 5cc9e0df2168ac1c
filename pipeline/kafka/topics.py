"""Our Kafka topics as objects: name, the Avro schema its values are written with, and topic configs; and the
admin call that creates them. Every stage, the embedded-broker launcher (`deploy/broker.py`) and the tests take
topics from here, so a topic is named in one place."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    configs: tuple[tuple[str, str], ...] = ()
    schema: str | None = None  # the schema of schemas/ its values are written with; None for ad-hoc topics


ATTENDANCE = TopicSpec("cme.attendance.v1", schema="attendance_event")
# Compacted: a registry reading the credit stream from the start sees the latest version of every record.
CREDITS = TopicSpec("cme.credits.v1", configs=(("cleanup.policy", "compact"),), schema="credit_record")
DEADLETTER = TopicSpec("cme.deadletter.v1", schema="dead_letter")
TOPICS = (ATTENDANCE, CREDITS, DEADLETTER)

ATTENDANCE_TOPIC = ATTENDANCE.name
CREDITS_TOPIC = CREDITS.name
DEADLETTER_TOPIC = DEADLETTER.name


def topic_of(schema: str) -> TopicSpec:
    """The topic whose values are written with `schema`."""
    for topic in TOPICS:
        if topic.schema == schema:
            return topic
    raise ValueError(f"no topic carries schema {schema!r}")


def ensure_topics(
    bootstrap: str,
    topics: tuple[TopicSpec, ...] = TOPICS,
    partitions: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Create our topics if missing; existing topics are left as they are. `options`: kafka-python TLS/SASL
    keyword arguments (`pipeline.kafka.security.kafka_python_options`)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="cmesync-admin", **(options or {}))
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(t.name, partitions or t.partitions, 1, topic_configs=dict(t.configs))
            for t in topics
            if t.name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
    finally:
        admin.close()
