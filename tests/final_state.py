"""What a run leaves behind, read back from the real parts: the ledger's latest credit versions, cme.credits.v1
latest per key, and what each registry sandbox actively holds — shared by the end-to-end and fault suites, which
all prove the same promise: registries == stream == ledger."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import select

from deploy.sandbox.stack import SandboxStack
from ledger import tables as t
from ledger.store import Ledger, record_from_json
from pipeline.config import Settings
from pipeline.factory import codec_for
from pipeline.kafka.topics import CREDITS_TOPIC

Held = dict[str, tuple[int, Decimal, date]]


def ledger_latest(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """The latest version of every credit record in the ledger, by record_id."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(t.credits.c.record).order_by(t.credits.c.record_id, t.credits.c.version))
        return {r["record_id"]: r for r in (record_from_json(row.record) for row in rows)}


def stream_messages(bootstrap: str, settings: Settings) -> list[dict[str, Any]]:
    """Every message on cme.credits.v1, decoded; the key must be the record_id."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    tp = TopicPartition(CREDITS_TOPIC, 0)
    consumer.assign([tp])
    codec = codec_for(settings, "credit_record")
    messages: list[dict[str, Any]] = []
    idle = 0
    while idle < 3:
        polled = consumer.poll(timeout_ms=300)
        batch = [r for records in polled.values() for r in records]
        idle = 0 if batch else idle + 1
        for record in batch:
            decoded = codec.decode(record.value)
            assert record.key == decoded["record_id"].encode()
            messages.append(decoded)
    consumer.close()
    return messages


def latest_per_key(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A compacted topic's view: the highest version per record_id."""
    latest: dict[str, dict[str, Any]] = {}
    for message in messages:
        if message["record_id"] not in latest or latest[message["record_id"]]["version"] < message["version"]:
            latest[message["record_id"]] = message
    return latest


def ama_active(stack: SandboxStack) -> Held:
    return {
        rid: (h["version"], Decimal(h["amount"]), date.fromisoformat(h["completed_on"]))
        for rid, h in stack.ama.holdings().items()
        if h["status"] == "AWARDED"
    }


def cebroker_active(stack: SandboxStack) -> Held:
    held: Held = {}
    for ref, row in stack.cebroker.active_rows().items():
        record_id, _, version = ref.rpartition(":")
        hours = Decimal(row["hours"]).quantize(Decimal("0.01"))
        held[record_id] = (int(version), hours, datetime.strptime(row["date_completed"], "%m/%d/%Y").date())
    return held


def hr_active(stack: SandboxStack) -> Held:
    return {
        rid: (h["version"], Decimal(h["amount"]), date.fromisoformat(h["completed_on"]))
        for rid, h in stack.hr.holdings().items()
        if h["status"] == "AWARDED"
    }


def ledger_expects(ledger: Ledger, registry: str) -> Held:
    """The active holdings the ledger expects; every latest version routed to the registry must be sent."""
    expectations = ledger.registry_expectations(registry).values()
    assert {e.delivery_state for e in expectations} <= {"sent"}, f"{registry}: undelivered versions"
    return {e.record_id: (e.version, e.amount, e.completed_on) for e in expectations if e.status == "AWARDED"}
