"""Fast tier: every bad-input case through the real normalise path of its connector (no source server is
contacted: records and page bodies are fed to the same functions the page loop feeds), and pushed messages
through the reconcile stage's decode and validation. Each must come out as one rejection with the expected
reason code, a source position, and a reason text that quotes nothing from the payload."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from connectors.sources.base import RawRecord, Rejection, Source
from connectors.sources.csv_drop import CsvDropSource
from connectors.sources.http_source import read_page
from connectors.sources.provider_rest import ProviderRestSource
from connectors.sources.webinar import Registrants, WebinarSource
from connectors.sources.xapi import XapiSource
from deploy.sandbox.schema_registry import SchemaRegistrySandbox
from pipeline.config import SAMPLE_DIR, Settings, SourceConfig
from pipeline.factory import build_source, codec_for
from pipeline.kafka.interface import Consumed
from pipeline.stages.reconcile import _decode
from reconcile.catalog import load_catalog
from reconcile.engine import resolve_events
from reconcile.identity import IdentityIndex
from schemas.codec import AvroCodec
from tests.badinput.corpus import (
    CSV_HEADER,
    WEBINAR_ID,
    Case,
    Pushed,
    avro_body,
    corpus,
    csv_file,
    good_pushed_event,
    kind_as_int,
    source_config,
)

CASES = corpus()
PII_KEYS = ("mbox", "email", "npi", "name", "dob", "value")
CSV_PII = {"Email", "NPI", "First", "Last", "DOB"}
CATALOG = load_catalog(SAMPLE_DIR / "catalog.json")


def test_given_the_generator_when_run_twice_then_it_yields_over_a_thousand_identical_cases_in_every_category() -> None:
    again = corpus()
    assert len(CASES) >= 1000
    assert [(c.case_id, c.expected, repr(c.payload)[:200]) for c in CASES] == [
        (c.case_id, c.expected, repr(c.payload)[:200]) for c in again
    ]
    categories = {"truncated_json", "wrong_types", "huge_fields", "control_characters", "injection",
                  "impossible_dates", "durations", "invalid_npis", "mixed_encodings"}
    for kind in ("xapi", "webinar", "csv_drop", "provider_rest", "push"):
        assert categories <= {c.category for c in CASES if c.kind == kind}, kind
    assert {"unknown_enums"} <= {c.category for c in CASES if c.kind != "webinar"}


def pii_values(case: Case) -> set[str]:
    """The payload's identifying and hostile values: none may appear in a reason text."""
    found = set(case.secrets)

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for child_key, child in value.items():
                walk(child, child_key.rsplit("/", 1)[-1])
        elif isinstance(value, list):
            for child in value:
                walk(child, key)
        elif isinstance(value, str) and any(token in key for token in PII_KEYS):
            found.add(value.removeprefix("mailto:"))

    if case.kind == "csv_drop" and case.level == "record":
        cells = case.payload.decode("utf-8", "replace").split(",")
        found |= {cells[CSV_HEADER.index(c)] for c in CSV_PII if CSV_HEADER.index(c) < len(cells)}
    elif case.kind not in ("csv_drop", "push") and case.level == "record":
        walk(case.payload, "")
    return {value.strip() for value in found if len(value.strip()) >= 4}


@pytest.fixture(scope="module")
def codec() -> Iterator[AvroCodec]:
    with SchemaRegistrySandbox() as registry:
        settings = Settings(schema_registry_url=registry.url, kafka_bootstrap="127.0.0.1:9", sources=[], registries=[])
        yield codec_for(settings, "attendance_event")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Source]:
    """Each kind's connector as the factory builds it; its server is never contacted by these tests."""
    drop = tmp_path_factory.mktemp("drop")
    built = {kind: build_source(_config(kind, drop)) for kind in ("xapi", "webinar", "csv_drop", "provider_rest")}
    return built


def _config(kind: str, drop: Path) -> Any:
    config = source_config(kind, f"corpus-{kind}", "http://127.0.0.1:9", "unused")
    if kind == "csv_drop":
        config = {**config, "base_url": "", "directory": str(drop)}
    return TypeAdapter(SourceConfig).validate_python(config)


def outcome(case: Case, sources: dict[str, Source]) -> tuple[list[Rejection | dict[str, Any]], str]:
    """What the case's connector makes of it: its events or rejections, and the position it gave."""
    source = sources.get(case.kind)
    if case.kind == "xapi":
        assert isinstance(source, XapiSource)
        record = source.raw_record(case.payload, "statements page 1 item 1")
    elif case.kind == "provider_rest":
        assert isinstance(source, ProviderRestSource)
        record = source.raw_record(case.payload, "/api/v1/completions page 1 item 1")
    elif case.kind == "webinar":
        assert isinstance(source, WebinarSource)
        registration = case.payload["registrant"]
        registrants = Registrants({registration["id"]: registration} if registration else {}, {})
        row = case.payload["participant"]
        data = {"webinar_id": WEBINAR_ID, "instance": "i-1", "participant": row,
                "registrant": registrants.of(row) if isinstance(row, dict) else None}
        record = RawRecord(f"webinar {WEBINAR_ID} instance i-1 page 1 row 1", data)
    else:
        assert isinstance(source, CsvDropSource)
        content = case.payload if case.level == "file" else csv_file([case.payload])
        pages = list(source._file_pages("case.csv", content, 0))
        records = [r for page, _, _ in pages for r in page]
        assert len(records) == 1, f"{case.case_id}: {len(records)} records"
        record = records[0]
    return list(source.to_events(record)), record.source_ref


def reconcile_code(events: list[dict[str, Any]]) -> str | None:
    _, rejections = resolve_events(events, CATALOG, IdentityIndex(), {})
    return rejections[0].reason_code if rejections else None


RECORD_CASES = [c for c in CASES if c.level != "page" and c.kind != "push"]


@pytest.mark.parametrize("case", RECORD_CASES, ids=[c.case_id for c in RECORD_CASES])
def test_given_a_bad_record_when_normalised_then_one_rejection_with_its_code_position_and_no_pii(
    case: Case, sources: dict[str, Source]
) -> None:
    results, position = outcome(case, sources)

    assert position
    if case.stage == "reconcile":
        assert all(not isinstance(r, Rejection) for r in results)
        assert reconcile_code(results) == case.expected  # type: ignore[arg-type]
        return
    assert len(results) == 1 and isinstance(results[0], Rejection), results
    rejection = results[0]
    assert rejection.reason_code == case.expected, rejection.reason
    assert rejection.record.source_ref == position
    leaked = [value for value in pii_values(case) if value in rejection.reason]
    assert not leaked


PAGE_CASES = [c for c in CASES if c.level == "page"]


@pytest.mark.parametrize("case", PAGE_CASES, ids=[c.case_id for c in PAGE_CASES])
def test_given_a_broken_page_body_when_read_then_the_page_is_refused_with_its_code(case: Case) -> None:
    records_path = {"xapi": "statements", "webinar": "participants", "provider_rest": "data"}[case.kind]

    _, records, problem = read_page(case.payload, records_path, "/a/path")

    assert records is None and problem is not None
    assert problem.reason_code == case.expected
    assert "/a/path" in problem.reason


PUSH_CASES = [c for c in CASES if c.kind == "push"]


@pytest.mark.parametrize("case", PUSH_CASES, ids=[c.case_id for c in PUSH_CASES])
def test_given_a_bad_pushed_message_when_decoded_by_the_reconcile_stage_then_it_is_dead_lettered_with_its_code(
    case: Case, codec: AvroCodec
) -> None:
    assert isinstance(case.payload, Pushed)
    message = Consumed(0, 7, b"k", case.payload.value(codec.schema_id))

    decoded, dead = _decode([message], codec)

    if dead:
        assert [d.reason_code for d in dead] == [case.expected], dead[0].reason
        # The event's own position when it decodes (the builder numbers it as the case), else the message's.
        assert dead[0].source_ref in ("kafka 0:7", f"push bad-{int(case.case_id.split('-')[1]):05d}")
        assert not [value for value in case.secrets if value in dead[0].reason]
    else:
        assert reconcile_code([event for event, _ in decoded]) == case.expected


def test_given_json_payloads_when_dumped_for_a_dead_letter_then_lone_surrogates_do_not_crash() -> None:
    """A dead letter keeps its record's bytes: JSON escapes lone surrogates rather than failing to encode."""
    assert json.loads(RawRecord("x", {"a": "Ada\udc80"}).payload()) == {"a": "Ada\udc80"}


@pytest.mark.parametrize("index", [-1, -2])
def test_given_a_pushed_message_with_a_negative_enum_index_when_decoded_then_it_is_refused(
    index: int, codec: AvroCodec
) -> None:
    body = avro_body({**good_pushed_event(0), "kind": index}, kind_as_int)
    message = Consumed(0, 1, b"k", Pushed(body).value(codec.schema_id))

    _, dead = _decode([message], codec)

    assert [d.reason_code for d in dead] == ["SCHEMA_INVALID"]
