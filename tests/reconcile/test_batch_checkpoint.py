"""One unit of work per reconcile batch (ledger/batch_checkpoint.py), on the embedded broker and both ledgers:
the batch's writes commit in one transaction and only then its offsets; a batch that fails commits neither, so
the group reads it again; the fault suite's three steps come in order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.http import HttpClient
from connectors.registries.ama_pra import AmaPraRegistry
from ledger import tables as t
from ledger.batch_checkpoint import BatchCheckpoint
from ledger.dead_letters import DeadLetterEntry
from ledger.store import Ledger, StoredEvent
from pipeline.config import PROFESSIONS_FILE
from pipeline.kafka.interface import Consumed, Consumer, publish
from pipeline.kafka.io import make_consumer, make_producer
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.stages.reconcile import offsets_of, reconcile_messages
from reconcile.catalog import parse_catalog
from reconcile.professions import load_professions
from schemas.codec import AvroCodec

pytestmark = [pytest.mark.integration, pytest.mark.dialect]

CATALOG = parse_catalog(
    {
        "activities": [
            {
                "id": "NURSING",
                "title": "Nursing module",
                "accreditors": ["ACCME", "ANCC"],
                "designations": {"AMA_PRA_1": "1.00", "ANCC_CH": "1.00"},
                "window": {"start": "2026-01-01", "end": "2026-12-31"},
            }
        ]
    }
)
PROFESSIONS = load_professions(PROFESSIONS_FILE)
REGISTRIES = [AmaPraRegistry("ama-pra", HttpClient("http://127.0.0.1:9"))]  # only `accepts` is called
WHEN = datetime(2026, 5, 4, 15, tzinfo=UTC)
GROUP = "checkpoint-test"
EVENTS = 60  # above ledger.bulk.BULK_ROWS: the batch's events go through COPY on PostgreSQL


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        yield ledger


@pytest.fixture
def produced(kafka_bootstrap: str, attendance_codec: AvroCodec, ev: Any) -> str:
    """EVENTS completions of one learner on the attendance topic, plus one message that does not decode."""
    events = [ev(f"c{i}", activity="NURSING", when=WHEN) for i in range(EVENTS)]
    producer = make_producer(kafka_bootstrap)
    try:
        publish(
            producer,
            ATTENDANCE_TOPIC,
            [(b"learner", attendance_codec.encode(e)) for e in events] + [(b"learner", b"not avro")],
        )
    finally:
        producer.close()
    return kafka_bootstrap


def consumer_of(bootstrap: str) -> Consumer:
    return make_consumer(bootstrap, ATTENDANCE_TOPIC, GROUP, max_records=1_000)


def whole_topic(consumer: Consumer) -> list[Consumed]:
    return [message for batch in consumer.batches(stall_timeout_s=10.0) for message in batch]


def rows(ledger: Ledger, table: Any) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def test_given_a_consumed_batch_when_reconciled_then_the_ledger_commits_before_the_offsets_and_both_hold_it(
    produced: str, attendance_codec: AvroCodec, ledger: Ledger
) -> None:
    consumer = consumer_of(produced)
    seen_at_offset_commit: dict[str, int] = {}
    try:
        batch = whole_topic(consumer)
        commit = offsets_of(consumer, batch)

        def commit_offsets() -> None:
            # Read on a connection of its own: only what the batch's transaction committed is visible.
            seen_at_offset_commit.update(
                events=rows(ledger, t.events), credits=rows(ledger, t.credits), dead=rows(ledger, t.dead_letters)
            )
            commit()

        stats = reconcile_messages(
            batch, attendance_codec, ledger, CATALOG, REGISTRIES, professions=PROFESSIONS, commit_offsets=commit_offsets
        )
    finally:
        consumer.close()

    assert (stats.consumed, stats.accepted, stats.rejected) == (EVENTS + 1, EVENTS, 1)
    assert seen_at_offset_commit == {"events": EVENTS, "credits": stats.credit_versions, "dead": 1}
    assert stats.credit_versions > 0
    again = consumer_of(produced)
    try:
        assert whole_topic(again) == []  # the group's offsets are past the batch
    finally:
        again.close()


def test_given_a_batch_that_fails_inside_its_checkpoint_when_consumed_again_then_nothing_was_kept(
    produced: str, ledger: Ledger
) -> None:
    consumer = consumer_of(produced)
    committed: list[str] = []
    try:
        batch = whole_topic(consumer)
        stored = [StoredEvent({**event_of(m), "event_id": str(m.offset)}, None, None) for m in batch]
        with (
            pytest.raises(RuntimeError, match="the batch fails"),
            BatchCheckpoint(ledger, lambda: committed.append("offsets")) as checkpoint,
        ):
            checkpoint.store_events(stored)
            checkpoint.add_dead_letters([DeadLetterEntry("reconcile", "lms", "x", "SCHEMA_INVALID", "why", b"")])
            raise RuntimeError("the batch fails")
    finally:
        consumer.close()

    assert committed == []
    assert (rows(ledger, t.events), rows(ledger, t.dead_letters)) == (0, 0)
    again = consumer_of(produced)
    try:
        assert [(m.partition, m.offset) for m in whole_topic(again)] == [(m.partition, m.offset) for m in batch]
    finally:
        again.close()


def event_of(message: Consumed) -> dict[str, Any]:
    """The fields `store_events` reads, for a message whose content this test does not care about."""
    return {"source": "lms", "source_ref": f"kafka {message.offset}", "kind": "COMPLETED", "occurred_at": WHEN}


def test_given_a_checkpoint_when_used_then_events_are_read_back_at_once_and_the_rest_lands_at_the_end(
    ledger: Ledger,
) -> None:
    steps: list[str] = []
    entry = DeadLetterEntry("reconcile", "lms", "lms:c1", "UNKNOWN_ACTIVITY", "not in the catalog", b"{}")
    event = {"source": "lms", "event_id": "c1", "source_ref": "lms:c1", "kind": "COMPLETED", "occurred_at": WHEN}

    with BatchCheckpoint(ledger, lambda: steps.append("offsets"), on_step=steps.append) as checkpoint:
        checkpoint.store_events([StoredEvent(event, "learner-1", "NURSING", 0, 7)])
        checkpoint.add_dead_letters([entry])
        checkpoint.record_reconciled(ATTENDANCE_TOPIC, {0: 8})
        conn = checkpoint.conn
        in_batch = (
            conn.scalar(select(func.count()).select_from(t.events)),
            conn.scalar(select(func.count()).select_from(t.dead_letters)),
        )
        assert steps == []

    assert in_batch == (1, 0)  # events at once, dead letters with the rest at the end
    assert steps == ["before_commit", "committed", "offsets", "offsets_committed"]
    assert (rows(ledger, t.events), rows(ledger, t.dead_letters)) == (1, 1)
    with ledger.engine.connect() as conn:
        marks = conn.execute(select(t.kafka_watermarks.c.kafka_partition, t.kafka_watermarks.c.reconciled_end)).all()
    assert [tuple(m) for m in marks] == [(0, 8)]


def test_given_no_offsets_to_commit_when_the_checkpoint_commits_then_only_the_ledger_step_is_reported(
    ledger: Ledger,
) -> None:
    steps: list[str] = []
    with BatchCheckpoint(ledger, on_step=steps.append):
        pass
    assert steps == ["before_commit"]
