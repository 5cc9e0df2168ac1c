"""The walking skeleton end to end: sandbox LRS → Kafka → ledger → cme.credits.v1 → AMA sandbox registry,
over the real broker, real HTTP and both ledger databases, through the Prefect flow."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from confluent_kafka import KafkaError
from sqlalchemy import func, select

from deploy.sandbox.stack import SandboxStack
from flows.nightly import nightly_reconciliation
from ledger import tables as t
from ledger.store import Ledger
from pipeline.config import Settings
from pipeline.kafka.interface import KafkaBackend
from pipeline.kafka.topics import CREDITS_TOPIC
from tests.final_state import latest_per_key, ledger_latest, stream_messages

pytestmark = pytest.mark.integration

CONFIG_PATH = Path(__file__).with_name("cmesync.toml")
CONFIG = str(CONFIG_PATH)


def endpoints(kafka_bootstrap: str, sandboxes: SandboxStack) -> dict[str, str]:
    return {
        "kafka_bootstrap": kafka_bootstrap,
        "schema_registry_url": sandboxes.schema_registry.url,
        "lms-xapi.base_url": sandboxes.lrs.url,
        "ama-pra.base_url": sandboxes.ama.url,
    }


def confluent_stream(bootstrap: str, schema_registry_url: str) -> list[dict[str, Any]]:
    """cme.credits.v1 as any standard consumer reads it: confluent-kafka with the registry's Avro deserializer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from confluent_kafka import OFFSET_BEGINNING, Consumer
        from confluent_kafka import TopicPartition as ConfluentPartition
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.serialization import MessageField, SerializationContext

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": schema_registry_url}))
    context = SerializationContext(CREDITS_TOPIC, MessageField.VALUE)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "interop",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([ConfluentPartition(CREDITS_TOPIC, 0, OFFSET_BEGINNING)])
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                break
            raise AssertionError(f"confluent consumer error: {message.error()}")
        records.append(deserialize(message.value(), context))
    consumer.close()
    return records


def summary(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["version"], record["status"], f"{record['amount']:.2f}", record["completed_on"].isoformat())


@pytest.fixture
def ledger(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    monkeypatch.setenv("CMESYNC_LEDGER_URL", ledger_url)
    with Ledger(ledger_url) as ledger:
        yield ledger


@pytest.mark.parametrize("backend", get_args(KafkaBackend))
def test_given_sample_statements_when_the_nightly_flow_runs_twice_then_registry_and_stream_equal_the_ledger(
    prefect_harness: None,
    kafka_bootstrap: str,
    sandboxes: SandboxStack,
    ledger: Ledger,
    backend: KafkaBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CMESYNC_KAFKA_BACKEND", backend)
    urls = endpoints(kafka_bootstrap, sandboxes)
    settings = Settings.load(CONFIG_PATH).with_endpoints(urls)

    first = nightly_reconciliation(config_path=CONFIG, endpoints=urls)

    expected = ledger_latest(ledger)
    assert first["credits_awarded"] > 0
    assert first["delivered"] == len(expected) == first["credit_versions"]
    assert first["rejected_at_normalise"] == 1  # the statement without an actor
    assert first["rejected_at_reconcile"] == 1  # the completion of an activity missing from the catalog
    with ledger.engine.connect() as conn:
        reasons = sorted(conn.scalars(select(t.dead_letters.c.reason_code)))
    assert reasons == ["SCHEMA_INVALID", "UNKNOWN_ACTIVITY"]

    holdings = sandboxes.ama.holdings()
    assert {rid: summary_of_holding(h) for rid, h in holdings.items()} == {
        rid: summary(r) for rid, r in expected.items()
    }
    stream = stream_messages(kafka_bootstrap, settings)
    assert {rid: summary(r) for rid, r in latest_per_key(stream).items()} == {
        rid: summary(r) for rid, r in expected.items()
    }

    interop = confluent_stream(kafka_bootstrap, sandboxes.schema_registry.url)
    assert {rid: summary(r) for rid, r in latest_per_key(interop).items()} == {
        rid: summary(r) for rid, r in expected.items()
    }

    second = nightly_reconciliation(config_path=CONFIG, endpoints=urls)

    assert (second["records_read"], second["credit_versions"], second["delivered"]) == (0, 0, 0)
    assert len(stream_messages(kafka_bootstrap, settings)) == len(stream)
    assert len(sandboxes.ama.accepted) == len(expected)
    assert ledger_latest(ledger) == expected


def summary_of_holding(holding: dict[str, Any]) -> tuple[Any, ...]:
    return (holding["version"], holding["status"], holding["amount"], holding["completed_on"])


def test_given_the_cursor_is_lost_when_everything_is_pulled_again_then_nothing_is_duplicated(
    prefect_harness: None, kafka_bootstrap: str, sandboxes: SandboxStack, ledger: Ledger
) -> None:
    urls = endpoints(kafka_bootstrap, sandboxes)
    first = nightly_reconciliation(config_path=CONFIG, endpoints=urls)
    with ledger.engine.begin() as conn:
        conn.execute(t.checkpoints.delete())

    again = nightly_reconciliation(config_path=CONFIG, endpoints=urls)

    assert again["records_read"] == first["records_read"]
    # Events rejected at reconcile are not kept as accepted, so a replay judges them again.
    assert again["duplicates"] == first["events_published"] - first["rejected_at_reconcile"]
    assert (again["credit_versions"], again["delivered"]) == (0, 0)
    with ledger.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(t.dead_letters)) == 2
        attempts = sorted(conn.scalars(select(t.dead_letters.c.attempts)))
    assert attempts == [2, 2]
    assert len(sandboxes.ama.accepted) == first["delivered"]
