"""The codec against a real sandbox registry: round trips, strict bad-input reasons, framing errors, evolution."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.schema_registry import SchemaRegistryClient
from deploy.sandbox.schema_registry import SchemaRegistrySandbox
from schemas.avro_check import explain
from schemas.avro_types import Schema
from schemas.avro_writer import Unsupported, compile_writer
from schemas.codec import (
    SCHEMA_NAMES,
    AvroCodec,
    SchemaInvalid,
    parsed_schema,
    schema_text,
    subject_for,
)

Samples = dict[str, Callable[..., dict[str, Any]]]
CodecFor = Callable[[str], AvroCodec]


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_given_a_valid_record_when_encoded_and_decoded_then_it_comes_back_equal(
    name: str, samples: Samples, codec_for: CodecFor
) -> None:
    codec = codec_for(name)
    record = samples[name]()

    data = codec.encode(record)

    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == codec.schema_id
    assert codec.decode(data) == record


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_given_a_valid_record_when_encoded_then_the_body_is_byte_identical_to_fastavro(
    name: str, samples: Samples, codec_for: CodecFor
) -> None:
    record = samples[name]()
    reference = io.BytesIO()
    schemaless_writer(reference, parsed_schema(name), record)

    assert codec_for(name).encode(record)[5:] == reference.getvalue()


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": decimal.Decimal("0")},
        {"amount": decimal.Decimal("-0.01")},
        {"amount": decimal.Decimal("-1.28")},
        {"amount": decimal.Decimal("128")},
        {"amount": decimal.Decimal("999999.99")},
        {"amount": decimal.Decimal("-999999.99")},
        {"version": -64},
        {"version": 64},
        {"version": 2**31 - 1},
        {"version": -(2**31)},
        {"activity_title": "é" * 200},
        {"evidence": [f"src:{i}" for i in range(300)]},
        {"evidence": []},
        {"completed_on": dt.date(1901, 1, 1)},
        {"reconciled_at": dt.datetime(1960, 1, 1, 0, 0, 0, 999999, tzinfo=dt.UTC)},
        {"reconciled_at": dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=-5)))},
    ],
)
def test_given_edge_values_when_encoded_then_the_body_matches_fastavro_and_round_trips(
    changes: dict[str, Any], samples: Samples, codec_for: CodecFor
) -> None:
    record = samples["credit_record"](**changes)
    reference = io.BytesIO()
    schemaless_writer(reference, parsed_schema("credit_record"), record)
    codec = codec_for("credit_record")

    data = codec.encode(record)

    assert data[5:] == reference.getvalue()
    stamp = record["reconciled_at"]  # timestamp-millis keeps whole milliseconds
    whole_millis = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
    assert codec.decode(data) == {**record, "reconciled_at": whole_millis}


def test_given_optional_fields_left_out_when_encoded_then_they_decode_as_their_defaults(
    samples: Samples, codec_for: CodecFor
) -> None:
    codec = codec_for("attendance_event")
    record = samples["attendance_event"](learner={"npi": "1234567893"})
    for optional in ("started_at", "ended_at", "minutes", "claimed", "voids_event_id"):
        del record[optional]

    decoded = codec.decode(codec.encode(record))

    assert decoded["started_at"] is None and decoded["claimed"] is None
    assert decoded["learner"] == {
        "npi": "1234567893", "email": None, "licence": None, "board_id": None,
        "given_name": None, "family_name": None, "dob_month_day": None, "profession": None,
        "board": None, "moc_consent": None,
    }


def test_given_an_amount_with_trailing_zeros_when_encoded_then_it_is_exact_and_accepted(
    samples: Samples, codec_for: CodecFor
) -> None:
    codec = codec_for("credit_record")

    decoded = codec.decode(codec.encode(samples["credit_record"](amount=decimal.Decimal("1.2500"))))

    assert decoded["amount"] == decimal.Decimal("1.25")


BAD_CREDITS: list[tuple[str, dict[str, Any], str, Any]] = [
    # (id, top-level changes, expected reason, the bad value that must not leak)
    ("npi-int", {"learner": {"npi": 1234567893}}, "learner.npi: expected string or null", 1234567893),
    ("version-float", {"version": 1.5}, "version: expected int", 1.5),
    ("version-str", {"version": "3"}, "version: expected int", "'3'"),
    ("version-bool", {"version": True}, "version: expected int", "True"),
    ("version-range", {"version": 2**40}, "version: expected int (32-bit range)", 2**40),
    ("status", {"status": "GRANTED"}, "status: expected one of AWARDED, REVOKED", "GRANTED"),
    ("amount-float", {"amount": 1.25}, "amount: expected decimal(8,2)", 1.25),
    ("amount-places", {"amount": decimal.Decimal("1.234")},
     "amount: expected decimal(8,2) (more than 2 decimal places)", "1.234"),
    ("amount-digits", {"amount": decimal.Decimal("1234567.5")}, "amount: expected decimal(8,2) (more than 8 digits)",
     "1234567"),
    ("amount-nan", {"amount": decimal.Decimal("NaN")}, "amount: expected a finite decimal(8,2)", "NaN"),
    ("date-str", {"completed_on": "2024-03-14"}, "completed_on: expected date", "2024-03-14"),
    ("date-datetime", {"completed_on": dt.datetime(2024, 3, 14, tzinfo=dt.UTC)}, "completed_on: expected date", "2024"),
    ("evidence-str", {"evidence": "lrs:stmt-1"}, "evidence: expected array", "stmt-1"),
    ("evidence-item", {"evidence": ["lrs:stmt-1", 7]}, "evidence[1]: expected string", "stmt-1"),
    ("naive-ts", {"reconciled_at": dt.datetime(2024, 5, 6, 7, 8, 9)},
     "reconciled_at: expected timestamp-millis as a timezone-aware datetime", "2024"),
    ("learner-str", {"learner": "Zoë Example"}, "learner: expected record CreditLearner", "Zoë"),
    ("unknown-field", {"learner": {"npi": "1234567893", "licence_no": "A123456"}},
     "learner: unexpected field licence_no (not in CreditLearner)", "A123456"),
    ("odd-key", {"learner": {"npi": "1234567893", "Zoë Example": 1}},
     "learner: unexpected field (unnamed) (not in CreditLearner)", "Zoë"),
]


@pytest.mark.parametrize(("changes", "reason", "bad"), [c[1:] for c in BAD_CREDITS], ids=[c[0] for c in BAD_CREDITS])
def test_given_a_record_with_a_wrong_value_when_encoded_then_schema_invalid_names_the_path_not_the_value(
    changes: dict[str, Any], reason: str, bad: Any, samples: Samples, codec_for: CodecFor
) -> None:
    codec = codec_for("credit_record")
    record = samples["credit_record"](**changes)

    with pytest.raises(SchemaInvalid) as caught:
        codec.encode(record)

    assert caught.value.reason == reason
    assert str(caught.value) == reason
    assert str(bad) not in caught.value.reason
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(SchemaInvalid, match=f"^{re.escape(reason)}$"):
        codec.validate(record)


def test_given_a_missing_required_field_when_encoded_then_the_reason_says_which(
    samples: Samples, codec_for: CodecFor
) -> None:
    record = samples["credit_record"]()
    del record["activity_id"]

    with pytest.raises(SchemaInvalid) as caught:
        codec_for("credit_record").encode(record)

    assert caught.value.reason == "activity_id: missing required field (string)"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r["learner"]["licence"].update(number=998877), "learner.licence.number: expected string"),
        (lambda r: r["claimed"][0].update(amount="1.25"), "claimed[0].amount: expected double"),
        (lambda r: r.update(kind="attended"), "kind: expected one of ATTENDED, COMPLETED, CLAIMED, VOIDED"),
        (lambda r: r.update(minutes="75"), "minutes: expected double or null"),
        (lambda r: r.update(started_at="2024-05-06T07:00:00Z"), "started_at: expected timestamp-millis or null"),
        (lambda r: r["learner"].update(licence="RN998877"), "learner.licence: expected record Licence or null"),
    ],
)
def test_given_a_bad_nested_value_when_encoded_then_the_reason_has_the_full_path(
    mutate: Callable[[dict[str, Any]], None], reason: str, samples: Samples, codec_for: CodecFor
) -> None:
    record = copy.deepcopy(samples["attendance_event"]())
    mutate(record)

    with pytest.raises(SchemaInvalid) as caught:
        codec_for("attendance_event").encode(record)

    assert caught.value.reason == reason
    assert "998877" not in reason and "zoe@" not in reason


def test_given_a_batch_with_one_bad_record_when_encoded_many_then_the_error_carries_its_index(
    samples: Samples, codec_for: CodecFor
) -> None:
    batch = [samples["credit_record"](), samples["credit_record"](), samples["credit_record"](version="x")]

    with pytest.raises(SchemaInvalid) as caught:
        codec_for("credit_record").encode_many(batch)

    assert caught.value.index == 2
    assert caught.value.reason == "version: expected int"


def test_given_a_batch_when_encoded_many_then_each_message_equals_a_single_encode(
    samples: Samples, codec_for: CodecFor
) -> None:
    codec = codec_for("credit_record")
    batch = [samples["credit_record"](version=v) for v in range(1, 6)]

    assert codec.encode_many(batch) == [codec.encode(r) for r in batch]
    assert codec.encode_many(iter(batch)) == [codec.encode(r) for r in batch]


def test_given_a_valid_record_when_validated_then_nothing_is_raised(samples: Samples, codec_for: CodecFor) -> None:
    for name in SCHEMA_NAMES:
        codec_for(name).validate(samples[name]())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not Confluent Avro framing"),
        (b"\x00\x00\x00", "not Confluent Avro framing"),
        (b"\x01\x00\x00\x00\x01\x02", "not Confluent Avro framing"),
        (b"{\"record_id\": \"x\"}", "not Confluent Avro framing"),
        (b"\x00\x00\x00\x03\xe7\x02", "unknown schema id 999"),
    ],
)
def test_given_bytes_that_are_not_our_framing_when_decoded_then_schema_invalid(
    data: bytes, reason: str, codec_for: CodecFor
) -> None:
    with pytest.raises(SchemaInvalid) as caught:
        codec_for("credit_record").decode(data)

    assert caught.value.reason == reason


def test_given_a_truncated_or_padded_body_when_decoded_then_it_does_not_match_its_schema_id(
    samples: Samples, codec_for: CodecFor
) -> None:
    codec = codec_for("credit_record")
    data = codec.encode(samples["credit_record"]())

    for broken in (data[:-3], data + b"\x00", data[:5] + b"\xff" * 12):
        with pytest.raises(SchemaInvalid, match=rf"^Avro body does not match schema id {codec.schema_id}"):
            codec.decode(broken)


def test_given_a_message_of_another_schema_when_decoded_then_it_cannot_be_read(
    samples: Samples, codec_for: CodecFor
) -> None:
    other = codec_for("dead_letter")
    data = other.encode(samples["dead_letter"]())

    with pytest.raises(SchemaInvalid) as caught:
        codec_for("credit_record").decode(data)

    assert caught.value.reason == f"schema id {other.schema_id} cannot be read as credit_record"


def test_given_a_newer_writer_with_an_extra_field_when_decoded_then_our_reader_schema_drops_it(
    samples: Samples, codec_for: CodecFor, registry: SchemaRegistryClient
) -> None:
    newer = json.loads(schema_text("credit_record"))
    newer["fields"].append({"name": "cycle", "type": ["null", "string"], "default": None})
    newer_id = registry.register("evolution-newer-value", json.dumps(newer))
    record = samples["credit_record"]()
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(newer), {**record, "cycle": "2024-2026"})

    decoded = codec_for("credit_record").decode(b"\x00" + newer_id.to_bytes(4, "big") + body.getvalue())

    assert decoded == record


def test_given_an_older_writer_without_an_optional_field_when_decoded_then_the_default_fills_in(
    samples: Samples, codec_for: CodecFor, registry: SchemaRegistryClient
) -> None:
    older = json.loads(schema_text("attendance_event"))
    older["fields"] = [f for f in older["fields"] if f["name"] != "voids_event_id"]
    older_id = registry.register("evolution-older-value", json.dumps(older))
    record = samples["attendance_event"](voids_event_id="stmt-0")
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(older), record)

    decoded = codec_for("attendance_event").decode(b"\x00" + older_id.to_bytes(4, "big") + body.getvalue())

    assert decoded == {**record, "voids_event_id": None}


def test_given_a_codec_when_encoding_many_times_then_the_schema_is_registered_once(
    samples: Samples, sandbox: SchemaRegistrySandbox
) -> None:
    codec = AvroCodec("credit_record", SchemaRegistryClient(sandbox.url), subject_for("cme.credits.v1"))
    codec.encode(samples["credit_record"]())
    seen = sandbox.requests_seen

    for _ in range(5):
        codec.encode(samples["credit_record"]())

    assert sandbox.requests_seen == seen


def test_given_the_same_schema_under_two_subjects_when_registered_then_both_get_the_same_id(
    registry: SchemaRegistryClient,
) -> None:
    text = schema_text("dead_letter")

    assert registry.register("a-value", text) == registry.register("b-value", text)
    assert json.loads(registry.schema_by_id(registry.register("a-value", text))) == json.loads(text)


def test_given_schema_names_when_asked_then_files_parse_and_unknown_names_are_refused() -> None:
    for name in SCHEMA_NAMES:
        assert parsed_schema(name) is parsed_schema(name)
        assert json.loads(schema_text(name))["namespace"] == "org.cmesync.v1"
    with pytest.raises(ValueError, match="unknown schema"):
        schema_text("../pyproject")
    assert subject_for("cme.credits.v1") == "cme.credits.v1-value"


_TEXT = st.text(max_size=80)
_OPTIONAL_TEXT = st.none() | _TEXT
_STAMPS = st.datetimes(timezones=st.just(dt.UTC))
_CREDITS = st.fixed_dictionaries({
    "record_id": _TEXT,
    "version": st.integers(-(2**31), 2**31 - 1),
    "status": st.sampled_from(["AWARDED", "REVOKED"]),
    "learner_id": _TEXT,
    "learner": st.fixed_dictionaries({}, optional={k: _OPTIONAL_TEXT for k in (
        "npi", "board_id", "licence_number", "licence_state", "profession", "given_name", "family_name",
        "dob_month_day")}),
    "activity_id": _TEXT,
    "activity_title": _TEXT,
    "accreditor": _TEXT,
    "credit_type": _TEXT,
    "amount": st.decimals(min_value="-999999.99", max_value="999999.99", places=2, allow_nan=False),
    "completed_on": st.dates(),
    "evidence": st.lists(_TEXT, max_size=70),
    "reconciled_at": _STAMPS,
})
_EVENTS = st.fixed_dictionaries(
    {
        "event_id": _TEXT,
        "source": _TEXT,
        "source_ref": _TEXT,
        "kind": st.sampled_from(["ATTENDED", "COMPLETED", "CLAIMED", "VOIDED"]),
        "occurred_at": _STAMPS,
        "learner": st.fixed_dictionaries({"email": _OPTIONAL_TEXT, "licence": st.none() | st.fixed_dictionaries(
            {"number": _TEXT, "state": _TEXT, "profession": _TEXT})}),
    },
    optional={
        "started_at": st.none() | _STAMPS,
        "minutes": st.none() | st.floats(allow_nan=False),
        "claimed": st.none() | st.lists(st.fixed_dictionaries(
            {"credit_type": _TEXT, "amount": st.floats(allow_nan=False)}), max_size=3),
    },
)


@pytest.mark.parametrize(("name", "records"), [("credit_record", _CREDITS), ("attendance_event", _EVENTS)])
def test_given_generated_valid_records_when_encoded_then_bytes_equal_fastavros_and_validation_agrees(
    name: str, records: st.SearchStrategy[dict[str, Any]]
) -> None:
    resolved = Schema(schema_text(name))
    write = compile_writer(resolved)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(records)
    def check(record: dict[str, Any]) -> None:
        ours = bytearray()
        write(ours, record)
        reference = io.BytesIO()
        schemaless_writer(reference, parsed_schema(name), record)
        assert bytes(ours) == reference.getvalue()
        assert explain(resolved, record) is None

    check()


_KITCHEN_SINK = {
    "type": "record", "name": "Sink", "namespace": "t", "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "ratio", "type": "float"},
        {"name": "big", "type": "long"},
        {"name": "raw", "type": "bytes"},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        {"name": "price", "type": {"type": "fixed", "name": "Price", "size": 3, "logicalType": "decimal",
                                   "precision": 6, "scale": 1}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "tags", "type": {"type": "map", "values": ["null", "int", "string"]}},
        {"name": "choice", "type": ["int", "string", "Hash", {"type": "array", "items": "double"}]},
        {"name": "note", "type": "string", "default": "none"},
    ],
}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"choice": "text", "tags": {}, "note": "set"},
        {"choice": b"abcd", "price": decimal.Decimal("-12.5"), "big": -(2**63)},
        {"choice": [1.5, -2.0], "tags": {"a": None, "b": 7, "c": "x"}, "flag": False},
    ],
)
def test_given_other_avro_types_when_compiled_then_the_encoder_matches_fastavro(changes: dict[str, Any]) -> None:
    record: dict[str, Any] = {
        "flag": True, "ratio": 0.5, "big": 2**40, "raw": b"\x00\x01", "hash": b"wxyz",
        "price": decimal.Decimal("99999.9"), "id": "6f1c2a4e-0000-5000-8000-000000000001",
        "at": dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC), "tags": {"k": 1}, "choice": 3,
        **changes,
    }
    ours = bytearray()
    compile_writer(Schema(_KITCHEN_SINK))(ours, record)
    reference = io.BytesIO()
    schemaless_writer(reference, parse_schema(_KITCHEN_SINK), record)

    assert bytes(ours) == reference.getvalue()


def test_given_a_bytes_default_when_the_field_is_left_out_then_the_json_default_is_written_as_bytes() -> None:
    # fastavro's own writer passes such a default through as a str and fails; the spec says ISO-8859-1 code points.
    schema = {"type": "record", "name": "B", "fields": [{"name": "blob", "type": "bytes", "default": "\u00ff\u0000"}]}
    ours = bytearray()

    compile_writer(Schema(schema))(ours, {})

    assert schemaless_reader(io.BytesIO(bytes(ours)), parse_schema(schema)) == {"blob": b"\xff\x00"}


def test_given_a_recursive_schema_when_compiled_then_it_is_unsupported_and_the_codec_would_use_fastavro() -> None:
    linked = {"type": "record", "name": "Node", "fields": [
        {"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"], "default": None}]}

    with pytest.raises(Unsupported):
        compile_writer(Schema(linked))
