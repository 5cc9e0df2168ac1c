"""Rebuild `cme.credits.v1` from the ledger: the latest published version of every credit record, re-emitted
with the same key, version and encoding as the outbox (`pipeline.stages.publish`). Compaction keeps the latest per
key, so a rebuild over a stream that still holds them changes no consumer's view; over a stream the broker
lost, it restores it. Versions the outbox has not published yet are left to the outbox, which publishes them
after (in version order), so the stream never goes back to an older version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger.credits import latest_published
from ledger.store import Ledger
from ledger.watermarks import record_produced
from pipeline.kafka.interface import Producer, publish
from pipeline.kafka.topics import CREDITS_TOPIC
from schemas.codec import AvroCodec


@dataclass(frozen=True)
class RepublishResult:
    records: int  # credit records re-emitted (or, dry run, that would be)
    dry_run: bool


def count_latest_published(ledger: Ledger, since: datetime | None) -> int:
    return sum(len(batch) for batch in latest_published(ledger, since, 5000))


def republish_credits(
    ledger: Ledger, producer: Producer, codec: AvroCodec, since: datetime | None = None, batch_size: int = 500
) -> int:
    """Re-emit; record where the stream now ends, so loss detection measures against the rebuilt stream."""
    sent = 0
    for batch in latest_published(ledger, since, batch_size):
        ends = publish(producer, CREDITS_TOPIC, [(r["record_id"].encode(), codec.encode(r)) for r in batch])
        record_produced(ledger, CREDITS_TOPIC, ends)
        sent += len(batch)
    return sent
