"""Outbox stage: credit versions and dead letters from the ledger onto their Kafka topics, marked as
published only once the broker has acknowledged them."""

from __future__ import annotations

from ledger.outbox import (
    mark_credits_published,
    mark_dead_letters_published,
    unpublished_credits,
    unpublished_dead_letters,
)
from ledger.store import Ledger
from ledger.watermarks import record_produced
from pipeline import metrics
from pipeline.kafka.interface import Producer, publish
from pipeline.kafka.topics import CREDITS_TOPIC, DEADLETTER_TOPIC
from pipeline.stages.faults import crash_point
from schemas.codec import AvroCodec


def publish_credits(ledger: Ledger, producer: Producer, codec: AvroCodec, batch_size: int = 500) -> int:
    published = 0
    while rows := unpublished_credits(ledger, batch_size):
        ends = publish(
            producer, CREDITS_TOPIC, [(record["record_id"].encode(), codec.encode(record)) for _, record in rows]
        )
        record_produced(ledger, CREDITS_TOPIC, ends)
        crash_point("publish.sent")
        mark_credits_published(ledger, [outbox_id for outbox_id, _ in rows])
        crash_point("publish.marked")
        metrics.CREDITS_PUBLISHED.inc(len(rows))
        published += len(rows)
    return published


DEAD_LETTER_FIELDS = (
    "dead_letter_id",
    "stage",
    "source",
    "source_ref",
    "reason_code",
    "reason",
    "attempts",
    "first_seen",
    "last_seen",
    "registry",
)


def publish_dead_letters(
    ledger: Ledger, producer: Producer, codec: AvroCodec, batch_size: int = 500, *, with_payload: bool = False
) -> int:
    """Dead letters onto their topic: the reference, reason code, reason and position, and the original record
    only `with_payload` (it holds the learner's NPI, e-mail and names; the ledger keeps it either way, and
    `cmesync deadletters show --reveal` shows it to an operator)."""
    published = 0
    while rows := unpublished_dead_letters(ledger, batch_size):
        messages = [
            (
                row["dead_letter_id"].encode(),
                codec.encode(
                    {**{f: row[f] for f in DEAD_LETTER_FIELDS}, "payload": row["payload"] if with_payload else None}
                ),
            )
            for row in rows
        ]
        publish(producer, DEADLETTER_TOPIC, messages)
        mark_dead_letters_published(ledger, [row["dead_letter_id"] for row in rows])
        published += len(rows)
    return published
