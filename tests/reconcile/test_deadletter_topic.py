"""What `cme.deadletter.v1` carries, read back from the real embedded broker: the reference, reason code,
reason and position of each dead letter, and the original record (NPI, e-mail, names) only when
`[deadletters] publish_payload = true`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.schema_registry import SchemaRegistryClient
from deploy.sandbox.schema_registry import SchemaRegistrySandbox
from ledger.dead_letters import DeadLetterEntry, add_dead_letters
from ledger.store import Ledger
from pipeline.config import Settings
from pipeline.kafka.io import make_consumer, make_producer
from pipeline.kafka.topics import DEADLETTER_TOPIC
from pipeline.stages.publish import publish_dead_letters
from schemas.codec import AvroCodec, subject_for
from tests.reconcile.conftest import FAST_RETRY

pytestmark = pytest.mark.integration

# Made-up learner: the identifiers a payload holds and a consumer without clearance must not get.
NPI, EMAIL, FAMILY_NAME = "1234567893", "pat.quinn@example.org", "Quinn"
PAYLOAD = json.dumps({"npi": NPI, "email": EMAIL, "family_name": FAMILY_NAME}).encode()
ENTRY = DeadLetterEntry(
    "reconcile", "lms", "lms:c9", "UNKNOWN_ACTIVITY", "activity ref 'X-1' is not in the catalog (kafka 0:7)", PAYLOAD
)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        add_dead_letters(ledger, [ENTRY])
        yield ledger


@pytest.fixture
def codec(schema_registry: SchemaRegistrySandbox) -> AvroCodec:
    registry = SchemaRegistryClient(schema_registry.url, retry=FAST_RETRY)
    return AvroCodec("dead_letter", registry, subject_for(DEADLETTER_TOPIC))


def published(kafka_bootstrap: str, ledger: Ledger, codec: AvroCodec, **options: Any) -> list[tuple[bytes, Any]]:
    producer = make_producer(kafka_bootstrap)
    try:
        assert publish_dead_letters(ledger, producer, codec, **options) == 1
    finally:
        producer.close()
    consumer = make_consumer(kafka_bootstrap, DEADLETTER_TOPIC, f"test-{uuid.uuid4().hex}")
    try:
        return [(m.value, codec.decode(m.value)) for batch in consumer.batches() for m in batch]
    finally:
        consumer.close()


def test_given_a_dead_letter_when_published_by_default_then_the_topic_carries_no_payload(
    kafka_bootstrap: str, ledger: Ledger, codec: AvroCodec
) -> None:
    [(raw, letter)] = published(kafka_bootstrap, ledger, codec)

    assert letter["payload"] is None
    assert (letter["dead_letter_id"], letter["source_ref"], letter["reason_code"], letter["reason"]) == (
        ENTRY.dead_letter_id,
        ENTRY.source_ref,
        ENTRY.reason_code,
        ENTRY.reason,
    )
    assert not any(secret.encode() in raw for secret in (NPI, EMAIL, FAMILY_NAME))


def test_given_publish_payload_when_published_then_the_topic_carries_the_original_bytes(
    kafka_bootstrap: str, ledger: Ledger, codec: AvroCodec
) -> None:
    [(_, letter)] = published(kafka_bootstrap, ledger, codec, with_payload=True)

    assert letter["payload"] == PAYLOAD and letter["reason_code"] == "UNKNOWN_ACTIVITY"


def test_given_the_deadletters_table_when_the_config_loads_then_payloads_are_withheld_unless_asked(
    tmp_path: Path,
) -> None:
    config = tmp_path / "cmesync.toml"
    config.write_text("[deadletters]\npublish_payload = true\n")
    assert Settings.load(config).deadletters.publish_payload is True
    config.write_text("")
    assert Settings.load(config).deadletters.publish_payload is False
