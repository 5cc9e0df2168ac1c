"""The learner's consent (and board) from each source kind that carries it — xAPI context extensions, the
sign-in sheet's CSV column, the provider API's JSON field — pulled over real HTTP from the sample sandboxes,
through the Avro AttendanceEvent contract and the learner profile into the credit record and the PARS report.
Expectations come from the sample data files, not from the connectors."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from connectors.registries.pars_mapping import learner_report
from connectors.sources.base import Event
from deploy.embedded import embedded_endpoints
from deploy.sandbox.stack import SandboxStack
from pipeline.config import SAMPLE_DIR, Settings
from pipeline.factory import build_source
from pipeline.stages.reconcile import credit_record
from reconcile.learners import learner_profile
from reconcile.merge import CreditState

SCHEMAS = SAMPLE_DIR.parents[1] / "schemas"
EXT = "https://cmesync.org/xapi/ext/"
ANSWERS = {"yes": True, "y": True, "no": False, "n": False}


def expected_xapi() -> dict[str, tuple[bool, str | None]]:
    statements = json.loads((SAMPLE_DIR / "xapi_statements.json").read_text(encoding="utf-8"))
    found = {}
    for s in statements:
        extensions = s.get("context", {}).get("extensions", {})
        if f"{EXT}moc-consent" in extensions:
            found[s["id"]] = (extensions[f"{EXT}moc-consent"], extensions.get(f"{EXT}board"))
    return found


def expected_csv() -> set[tuple[str, bool]]:
    """(e-mail, answer) of every row that answers the consent column (a learner may sign in on several days)."""
    found = set()
    for path in sorted((SAMPLE_DIR / "csv_drops").glob("*.csv")):
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
        for row in csv.DictReader(io.StringIO(text)):
            if answer := (row.get("MOC Consent") or "").strip():
                found.add((row["Email"], ANSWERS[answer.lower()]))
    return found


def expected_rest() -> dict[str, bool]:
    records = json.loads((SAMPLE_DIR / "provider_completions.json").read_text(encoding="utf-8"))
    return {r["id"]: ANSWERS[r["learner"]["moc_consent"]] for r in records if "moc_consent" in r["learner"]}


@pytest.fixture(scope="module")
def pulled() -> dict[str, list[Event]]:
    """Every event each sample source yields, by source kind, pulled over HTTP from its sandbox."""
    with SandboxStack(SAMPLE_DIR / "xapi_statements.json") as stack:
        settings = Settings.load(SAMPLE_DIR / "cmesync.toml")
        settings = settings.with_endpoints(
            {k: v for k, v in embedded_endpoints(settings, "127.0.0.1:1", stack.urls()).items() if "." in k}
        )
        events: dict[str, list[Event]] = {}
        for config in settings.sources:
            source = build_source(config)
            records = [r for page in source.pages(None) for r in page.records]
            events[config.kind] = [e for r in records for e in source.to_events(r) if isinstance(e, dict)]
        return events


def through_avro(event: Event) -> dict[str, Any]:
    schema = parse_schema(json.loads((SCHEMAS / "attendance_event.avsc").read_text(encoding="utf-8")))
    buffer = io.BytesIO()
    schemaless_writer(buffer, schema, event)
    buffer.seek(0)
    return schemaless_reader(buffer, schema, schema)  # type: ignore[return-value]


def pars_report(event: dict[str, Any]) -> dict[str, Any]:
    profile = learner_profile(None, event["learner"], datetime(2026, 11, 20, tzinfo=UTC))
    state = CreditState("r-1", 1, "AWARDED", "l-1", "ACT-005", "ABIM_MOC", Decimal("1.00"), date(2026, 11, 20), ())
    record = credit_record(state, "Atrial Fibrillation", profile, datetime(2026, 11, 21, tzinfo=UTC))
    assert record["learner"]["moc_consent"] == event["learner"]["moc_consent"]
    return learner_report(record, "add", "1000001")


def test_given_the_sample_lrs_when_pulled_then_each_statements_consent_and_board_reach_the_pars_report(
    pulled: dict[str, list[Event]],
) -> None:
    expected = expected_xapi()
    by_id = {e["event_id"]: through_avro(e) for e in pulled["xapi"] if e["event_id"] in expected}

    assert {i: (e["learner"]["moc_consent"], e["learner"]["board"]) for i, e in by_id.items()} == expected
    assert {True, False} <= {consent for consent, _ in expected.values()}  # the sample holds a mix
    consenting = next(e for e in by_id.values() if e["learner"]["moc_consent"] and e["learner"]["board"])
    report = pars_report(consenting)
    assert report["XtensibleInfo"]["LearnerConsent"] is True
    assert report["Activity"]["CreditCertificate"][0]["CreditReceived"]["activityCertification"] == "ABIM MOC"


def test_given_the_sample_sign_in_sheets_when_pulled_then_the_consent_column_reaches_the_profile_and_report(
    pulled: dict[str, list[Event]],
) -> None:
    expected = expected_csv()
    events = [through_avro(e) for e in pulled["csv_drop"]]
    answered = {(e["learner"]["email"], e["learner"]["moc_consent"]) for e in events}

    assert {pair for pair in answered if pair[1] is not None} == expected
    assert {True, False} <= {answer for _, answer in expected}
    assert any(consent is None for _, consent in answered)  # a blank cell is no answer, not a "no"
    declined = next(e for e in pulled["csv_drop"] if e["learner"]["moc_consent"] is False)
    assert pars_report(through_avro(declined))["XtensibleInfo"]["LearnerConsent"] is False


def test_given_the_sample_provider_api_when_pulled_then_the_consent_field_reaches_the_pars_report(
    pulled: dict[str, list[Event]],
) -> None:
    expected = expected_rest()
    seen = {e["event_id"]: through_avro(e)["learner"]["moc_consent"] for e in pulled["provider_rest"]}

    assert {i: seen[i] for i in expected} == expected
    assert {True, False} <= set(expected.values())
    consenting = next(e for e in pulled["provider_rest"] if e["learner"]["moc_consent"])
    assert pars_report(through_avro(consenting))["XtensibleInfo"]["LearnerConsent"] is True


def test_given_an_event_written_before_the_consent_field_when_decoded_then_consent_and_board_are_null() -> None:
    old = parse_schema(
        json.loads((SCHEMAS / "history" / "attendance_event.v1.avsc").read_text(encoding="utf-8")), named_schemas={}
    )
    new = parse_schema(json.loads((SCHEMAS / "attendance_event.avsc").read_text(encoding="utf-8")), named_schemas={})
    event = {
        "event_id": "e1",
        "source": "lms",
        "source_ref": "statement:e1",
        "kind": "COMPLETED",
        "occurred_at": datetime(2026, 11, 20, tzinfo=UTC),
        "activity_ref": "ACT-005",
        "learner": {"npi": "1493027167"},
    }
    buffer = io.BytesIO()
    schemaless_writer(buffer, old, event)
    buffer.seek(0)

    decoded: Any = schemaless_reader(buffer, old, new)

    assert (decoded["learner"]["moc_consent"], decoded["learner"]["board"]) == (None, None)
