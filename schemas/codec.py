"""The Avro contract in code: our schema files, and records to/from Confluent wire format.

Wire format (DESIGN §3): byte 0 = 0, bytes 1-4 = schema id (big-endian), then the Avro binary body, so any
Kafka consumer with a schema-registry deserializer reads our topics. Decoding looks up the writer's schema by
id and resolves it into our (reader) schema, so records from older and newer writers both read.

Bad input raises `SchemaInvalid`, whose reason names the field path and the expected type, never a value.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas.avro_check import explain
from schemas.avro_types import Schema
from schemas.avro_writer import Unsupported, Writer, compile_writer
from schemas.compat import check_backward

__all__ = [
    "SCHEMA_NAMES",
    "AvroCodec",
    "SchemaInvalid",
    "SchemaNotFound",
    "SchemaRegistry",
    "parsed_schema",
    "schema_text",
    "subject_for",
]

SCHEMA_DIR = Path(__file__).resolve().parent
SCHEMA_NAMES = ("attendance_event", "credit_record", "dead_letter")
MAGIC = 0
HEADER_SIZE = 5


class SchemaNotFound(LookupError):
    """The registry has no schema with that id (or it is not an Avro schema)."""


class SchemaRegistry(Protocol):
    """What the codec needs of a schema registry (`connectors.schema_registry.SchemaRegistryClient`)."""

    def register(self, subject: str, schema_text: str) -> int: ...

    def schema_by_id(self, schema_id: int) -> str: ...


class SchemaInvalid(ValueError):
    """A record or message that does not fit the contract; `reason` is safe to log and to store."""

    def __init__(self, reason: str, index: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index


def subject_for(topic: str) -> str:
    """Confluent's TopicNameStrategy subject for a topic's values."""
    return f"{topic}-value"


@cache
def schema_text(name: str) -> str:
    if name not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r}; expected one of {', '.join(SCHEMA_NAMES)}")
    return (SCHEMA_DIR / f"{name}.avsc").read_text(encoding="utf-8")


@cache
def parsed_schema(name: str) -> Any:
    return parse_schema(json.loads(schema_text(name)))


@cache
def _resolved(name: str) -> Schema:
    return Schema(schema_text(name))


@cache
def _writer(name: str) -> Writer:
    try:
        return compile_writer(_resolved(name))
    except Unsupported:
        return _fastavro_writer(parsed_schema(name))


def _fastavro_writer(schema: Any) -> Writer:
    def write(out: bytearray, datum: Any) -> None:
        buffer = io.BytesIO()
        schemaless_writer(buffer, schema, datum)
        out += buffer.getvalue()

    return write


class AvroCodec:
    """Encode/decode one of our schemas in Confluent framing, with ids from `registry` under `subject`."""

    def __init__(self, name: str, registry: SchemaRegistry, subject: str) -> None:
        self.name = name
        self.subject = subject
        self._registry = registry
        self._text = schema_text(name)
        self._resolved = _resolved(name)
        self._reader = parsed_schema(name)
        self._write = _writer(name)
        self._header: bytes | None = None
        self._schema_id = 0
        # schema id → parsed writer schema; None when it equals ours, so fastavro skips resolution.
        self._writers: dict[int, Any] = {}

    @property
    def schema_id(self) -> int:
        """Our schema's id in the registry; registering it under `subject` on first use."""
        if self._header is None:
            self._register()
        return self._schema_id

    def _register(self) -> bytes:
        self._schema_id = self._registry.register(self.subject, self._text)
        self._writers[self._schema_id] = None
        self._header = bytes([MAGIC]) + self._schema_id.to_bytes(4, "big")
        return self._header

    def encode(self, record: Any) -> bytes:
        out = bytearray(self._header or self._register())
        try:
            self._write(out, record)
        except Exception:
            # The encoder's own exception can quote the value; only the explainer's reason leaves this module.
            raise SchemaInvalid(self._reason(record)) from None
        return bytes(out)

    def encode_many(self, records: Iterable[Any]) -> list[bytes]:
        """Encode a batch; the first bad record raises SchemaInvalid with its position in `index`."""
        header, write = self._header or self._register(), self._write
        encoded: list[bytes] = []
        append = encoded.append
        for index, record in enumerate(records):
            out = bytearray(header)
            try:
                write(out, record)
            except Exception:
                raise SchemaInvalid(self._reason(record), index) from None
            append(bytes(out))
        return encoded

    def validate(self, record: Any) -> None:
        reason = explain(self._resolved, record)
        if reason is None:
            try:
                self._write(bytearray(), record)
            except Exception:
                reason = self._reason(record)
        if reason is not None:
            raise SchemaInvalid(reason)

    def decode(self, data: bytes) -> dict[str, Any]:
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < HEADER_SIZE or data[0] != MAGIC:
            raise SchemaInvalid("not Confluent Avro framing")
        schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
        writer = self._writer_schema(schema_id)
        buffer = io.BytesIO(data)
        buffer.seek(HEADER_SIZE)
        try:
            if writer is None:
                record = schemaless_reader(buffer, self._reader)
            else:
                record = schemaless_reader(buffer, writer, self._reader)
        except Exception:
            raise SchemaInvalid(f"Avro body does not match schema id {schema_id}") from None
        if buffer.tell() != len(data):
            raise SchemaInvalid(f"Avro body does not match schema id {schema_id} (trailing bytes)")
        if writer is None:
            self._check_canonical(record, data)
        return record

    def _check_canonical(self, record: dict[str, Any], data: bytes) -> None:
        """Written with our schema, a record re-encodes to the same bytes. fastavro reads some invalid bodies
        without complaint (a negative enum index picks a symbol from the end of the list), so this is what
        stops such a message from entering the ledger as something its producer never wrote."""
        out = bytearray(data[:HEADER_SIZE])
        try:
            self._write(out, record)
        except Exception:
            raise SchemaInvalid("Avro body decodes to a record that does not fit the schema") from None
        if out != data:
            raise SchemaInvalid("Avro body is not canonically encoded (e.g. a negative enum index)")

    def _writer_schema(self, schema_id: int) -> Any:
        if schema_id in self._writers:
            return self._writers[schema_id]
        try:
            text = self._registry.schema_by_id(schema_id)
        except SchemaNotFound:
            raise SchemaInvalid(f"unknown schema id {schema_id}") from None
        try:
            writer = json.loads(text)
            parsed = parse_schema(writer)
        except Exception:
            raise SchemaInvalid(f"schema id {schema_id} is not a valid Avro schema") from None
        if check_backward(json.loads(self._text), writer):
            raise SchemaInvalid(f"schema id {schema_id} cannot be read as {self.name}")
        self._writers[schema_id] = None if parsed == self._reader else parsed
        return self._writers[schema_id]

    def _reason(self, record: Any) -> str:
        return explain(self._resolved, record) or f"record does not match {self.name}"


def decode_with_shipped_schema(name: str, data: bytes) -> dict[str, Any]:
    """A Confluent-framed message read with the shipped schema `name` as the writer's, for when the registry that
    knows the writer's schema is gone (a dead letter shown after `run --embedded`); exact only while the shipped
    schema is the one the message was written with."""
    if len(data) < HEADER_SIZE or data[0] != MAGIC:
        raise SchemaInvalid("not Confluent Avro framing")
    buffer = io.BytesIO(data)
    buffer.seek(HEADER_SIZE)
    record: dict[str, Any] = schemaless_reader(buffer, parsed_schema(name))  # type: ignore[assignment]
    if buffer.tell() != len(data):
        raise SchemaInvalid(f"Avro body does not match the shipped {name} schema (trailing bytes)")
    return record
