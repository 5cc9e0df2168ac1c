"""Push intake: providers that publish AttendanceEvents straight to `cme.attendance.v1` get the same
validation and dedupe as pulled events, because the reconcile stage is the one door into the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from deploy.sandbox.schema_registry import SchemaRegistrySandbox
from ledger import tables as t
from ledger.store import Ledger
from pipeline.config import SAMPLE_DIR, Settings
from pipeline.factory import codec_for
from pipeline.kafka.interface import publish
from pipeline.kafka.io import make_producer
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.stages import nightly

pytestmark = pytest.mark.integration


def pushed_event(event_id: str, activity_ref: str = "ACT-001") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source": "provider-push",
        "source_ref": f"push {event_id}",
        "kind": "COMPLETED",
        "occurred_at": datetime(2026, 11, 18, 15, 0, tzinfo=UTC),
        "started_at": None,
        "ended_at": None,
        "minutes": None,
        "activity_ref": activity_ref,
        "learner": {
            "npi": "1493027167",
            "email": "ada@example.org",
            "licence": None,
            "board_id": None,
            "given_name": "Ada",
            "family_name": "Lovelace",
            "dob_month_day": "12-10",
            "profession": "MD",
        },
        "claimed": None,
        "voids_event_id": None,
    }


@pytest.fixture
def settings(kafka_bootstrap: str, ledger_url: str, tmp_path: Path) -> Iterator[Settings]:
    with SchemaRegistrySandbox() as registry:
        configured = Settings(
            kafka_bootstrap=kafka_bootstrap,
            schema_registry_url=registry.url,
            ledger_url=ledger_url,
            catalog_path=SAMPLE_DIR / "catalog.json",
            sources=[],
            registries=[],
        )
        nightly.prepare(configured)
        yield configured


def test_given_valid_duplicate_and_undecodable_messages_pushed_when_reconciled_then_one_event_and_dead_letters(
    settings: Settings,
) -> None:
    codec = codec_for(settings, "attendance_event")
    valid = codec.encode(pushed_event("push-1"))
    producer = make_producer(settings.kafka_bootstrap)
    try:
        publish(
            producer,
            ATTENDANCE_TOPIC,
            [
                (b"k", valid),
                (b"k", valid),  # the provider retried its send
                (b"k", b"not avro at all"),
                (b"k", b"\x00\x00\x00\x7f\xffgarbage"),  # framed, but no such schema id
                (b"k", codec.encode(pushed_event("push-2", activity_ref="ACT-999"))),
            ],
        )
    finally:
        producer.close()

    first = nightly.reconcile(settings)
    second = nightly.reconcile(settings)

    assert (first.consumed, first.duplicates) == (5, 1)
    assert second.consumed == 0
    with Ledger(settings.ledger_url) as ledger, ledger.engine.connect() as conn:
        events = list(conn.scalars(select(t.events.c.event_id)))
        letters = conn.execute(select(t.dead_letters.c.reason_code, t.dead_letters.c.source_ref))
        dead = sorted(tuple(r) for r in letters)
        credits = [tuple(r) for r in conn.execute(select(t.credits.c.credit_type, t.credits.c.amount))]
    assert events == ["push-1"]
    assert dead == [
        ("SCHEMA_INVALID", "kafka 0:2"),
        ("SCHEMA_INVALID", "kafka 0:3"),
        ("UNKNOWN_ACTIVITY", "push push-2"),
    ]
    assert [(credit_type, f"{float(amount):.2f}") for credit_type, amount in credits] == [("AMA_PRA_1", "1.50")]
