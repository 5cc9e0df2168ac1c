"""Our wire format against confluent_kafka's own serde, with both talking to the sandbox registry over HTTP."""

from __future__ import annotations

import datetime as dt
import decimal
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from deploy.sandbox.schema_registry import SchemaRegistrySandbox
from schemas.codec import AvroCodec, schema_text, subject_for

authlib_deprecate = pytest.importorskip("authlib.deprecate")
with warnings.catch_warnings():
    # authlib (under confluent's registry client) warns on import about its own httpx integration, after
    # forcing an "always" filter for that warning; only a filter added after that one can silence it.
    warnings.simplefilter("ignore", authlib_deprecate.AuthlibDeprecationWarning)
    confluent_sr = pytest.importorskip("confluent_kafka.schema_registry")
    confluent_avro = pytest.importorskip("confluent_kafka.schema_registry.avro")
    serialization = pytest.importorskip("confluent_kafka.serialization")

TOPIC = "cme.credits.v1"
Samples = dict[str, Callable[..., dict[str, Any]]]


def _context() -> Any:
    return serialization.SerializationContext(TOPIC, serialization.MessageField.VALUE)


def test_given_a_credit_record_encoded_by_our_codec_when_confluent_deserializes_it_then_values_are_equal(
    samples: Samples, codec_for: Callable[[str], AvroCodec], sandbox: SchemaRegistrySandbox
) -> None:
    record = samples["credit_record"](amount=decimal.Decimal("12.50"), completed_on=dt.date(2024, 2, 29))
    data = codec_for("credit_record").encode(record)
    deserializer = confluent_avro.AvroDeserializer(confluent_sr.SchemaRegistryClient({"url": sandbox.url}))

    decoded = deserializer(data, _context())

    assert decoded == record
    assert decoded["amount"] == decimal.Decimal("12.50") and isinstance(decoded["amount"], decimal.Decimal)
    assert decoded["completed_on"] == dt.date(2024, 2, 29)


def test_given_a_confluent_deserializer_on_latest_version_when_reading_our_bytes_then_values_are_equal(
    samples: Samples, codec_for: Callable[[str], AvroCodec], sandbox: SchemaRegistrySandbox
) -> None:
    record = samples["credit_record"]()
    data = codec_for("credit_record").encode(record)
    deserializer = confluent_avro.AvroDeserializer(
        confluent_sr.SchemaRegistryClient({"url": sandbox.url}), conf={"use.latest.version": True}
    )

    assert deserializer(data, _context()) == record


def test_given_a_record_serialized_by_confluent_when_our_codec_decodes_it_then_bytes_and_values_match(
    samples: Samples, codec_for: Callable[[str], AvroCodec], sandbox: SchemaRegistrySandbox
) -> None:
    record = samples["credit_record"]()
    serializer = confluent_avro.AvroSerializer(
        confluent_sr.SchemaRegistryClient({"url": sandbox.url}), schema_text("credit_record")
    )
    codec = codec_for("credit_record")

    data = serializer(record, _context())

    assert codec.decode(data) == record
    assert data == codec.encode(record)
    assert codec.schema_id == sandbox_latest_id(sandbox)


def sandbox_latest_id(sandbox: SchemaRegistrySandbox) -> int:
    client = confluent_sr.SchemaRegistryClient({"url": sandbox.url})
    return int(client.get_latest_version(subject_for(TOPIC)).schema_id)
