"""Pull stage: source pages → normalised AttendanceEvents on Kafka, rejections to dead letters, cursor saved
only after the page is acknowledged (DESIGN §6)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

from connectors.sources.base import Page, Rejection, Source
from ledger.checkpoints import checkpoint
from ledger.dead_letters import DeadLetterEntry, add_dead_letters
from ledger.store import Ledger
from ledger.watermarks import record_page
from pipeline import metrics
from pipeline.kafka.interface import Message, Producer, publish
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.stages.faults import crash_point
from reconcile.identity import identity_keys
from reconcile.vocabulary import SCHEMA_INVALID
from schemas.codec import AvroCodec, SchemaInvalid

log = logging.getLogger(__name__)


@dataclass
class PullStats:
    pages: int = 0
    records: int = 0
    events: int = 0
    rejected: int = 0


def learner_key(learner: dict[str, object]) -> bytes | None:
    """A partition key per learner that carries no identifier in clear text."""
    keys = identity_keys(learner)
    if not keys:
        return None
    kind, value = keys[0]
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:32].encode()


def normalise_page(source: Source, page: Page, codec: AvroCodec) -> tuple[list[Message], list[DeadLetterEntry]]:
    """Every record of a page becomes an encoded event or a dead letter; one bad record never stops a page."""
    messages: list[Message] = []
    dead: list[DeadLetterEntry] = []
    for record in page.records:
        for item in source.to_events(record):
            if isinstance(item, Rejection):
                dead.append(
                    DeadLetterEntry(
                        "normalise", source.name, record.source_ref, item.reason_code, item.reason, record.payload()
                    )
                )
                continue
            try:
                messages.append((learner_key(item["learner"]), codec.encode(item)))
            except SchemaInvalid as err:
                dead.append(
                    DeadLetterEntry(
                        "normalise", source.name, record.source_ref, SCHEMA_INVALID, err.reason, record.payload()
                    )
                )
    return messages, dead


def pull_source(
    source: Source,
    codec: AvroCodec,
    producer: Producer,
    ledger: Ledger,
    on_page: Callable[[PullStats], None] | None = None,
) -> PullStats:
    stats = PullStats()
    cursor = checkpoint(ledger, source.name)
    for page in source.pages(cursor):
        messages, dead = normalise_page(source, page, codec)
        crash_point("pull.page_pulled")
        ends = publish(producer, ATTENDANCE_TOPIC, messages)
        crash_point("pull.produced")
        if dead:
            add_dead_letters(ledger, dead)
        record_page(ledger, source.name, cursor, page.next_cursor, ATTENDANCE_TOPIC, ends)
        cursor = page.next_cursor or cursor
        crash_point("pull.cursor_saved")
        stats.pages += 1
        stats.records += len(page.records)
        stats.events += len(messages)
        stats.rejected += len(dead)
        metrics.count_page(source.name, len(page.records), len(messages))
        metrics.count_rejections("normalise", ((d.source, d.reason_code) for d in dead))
        if on_page:
            on_page(stats)
    log.info(
        "source %s: %d pages, %d records, %d events, %d rejected",
        source.name,
        stats.pages,
        stats.records,
        stats.events,
        stats.rejected,
        extra={"stage": "pull", "source": source.name, "counts": asdict(stats)},
    )
    return stats
