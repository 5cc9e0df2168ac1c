"""Fixtures for the schema tests: a real sandbox registry over HTTP and sample records for each schema."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors.http import RetryPolicy
from connectors.schema_registry import SchemaRegistryClient
from deploy.sandbox.schema_registry import SchemaRegistrySandbox
from schemas.codec import AvroCodec, subject_for

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05, jitter_s=0.01)
TOPICS = {
    "attendance_event": "cme.attendance.v1",
    "credit_record": "cme.credits.v1",
    "dead_letter": "cme.deadletter.v1",
}
NOW = dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.UTC)


def credit_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "record_id": "0b6f3f0e-5d2a-5e7c-9a55-3f1d0c0c0001",
        "version": 2,
        "status": "AWARDED",
        "learner_id": "learner-0001",
        "learner": {
            "npi": "1234567893",
            "board_id": None,
            "licence_number": "A123456",
            "licence_state": "CA",
            "profession": "MD",
            "given_name": "Zoë",
            "family_name": "Example",
            "dob_month_day": "02-29",
            "board": None,
            "moc_consent": True,
        },
        "activity_id": "ACT-42",
        "activity_title": "Anticoagulation update 2024 — live webinar",
        "accreditor": "ACCME",
        "credit_type": "AMA_PRA_CAT1",
        "amount": decimal.Decimal("1.25"),
        "completed_on": dt.date(2024, 3, 14),
        "evidence": ["lrs:stmt-1", "webinar:p-9"],
        "reconciled_at": NOW,
    }
    record.update(changes)
    return record


def attendance_event(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "stmt-1",
        "source": "lrs-main",
        "source_ref": "xapi:statements?since=2024-05-01T00:00:00Z#3",
        "kind": "COMPLETED",
        "occurred_at": NOW,
        "started_at": NOW - dt.timedelta(minutes=75),
        "ended_at": NOW,
        "minutes": 75.0,
        "activity_ref": "provider-act-42",
        "learner": {
            "npi": None,
            "email": "zoe@example.org",
            "licence": {"number": "RN998877", "state": "NY", "profession": "RN"},
            "board_id": None,
            "given_name": "Zoë",
            "family_name": "Example",
            "dob_month_day": "02-29",
            "profession": "RN",
            "board": None,
            "moc_consent": False,
        },
        "claimed": [{"credit_type": "ANCC_CONTACT_HOURS", "amount": 1.25}],
        "voids_event_id": None,
    }
    record.update(changes)
    return record


def dead_letter(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "dead_letter_id": "dl-1",
        "stage": "normalise",
        "source": "csv-drop",
        "source_ref": "drops/2024-05-06.csv:17",
        "reason_code": "SCHEMA_INVALID",
        "reason": "learner.npi: expected string or null",
        "payload": b"\x00\x01raw bytes\xff",
        "attempts": 1,
        "first_seen": NOW,
        "last_seen": NOW,
        "registry": None,
    }
    record.update(changes)
    return record


SAMPLES: dict[str, Callable[..., dict[str, Any]]] = {
    "attendance_event": attendance_event,
    "credit_record": credit_record,
    "dead_letter": dead_letter,
}


@pytest.fixture
def samples() -> dict[str, Callable[..., dict[str, Any]]]:
    """Builders of valid records, one per schema; keyword arguments replace top-level fields."""
    return SAMPLES


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SchemaRegistrySandbox]:
    server = SchemaRegistrySandbox()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def registry(sandbox: SchemaRegistrySandbox) -> SchemaRegistryClient:
    return SchemaRegistryClient(sandbox.url, retry=FAST_RETRY)


@pytest.fixture
def codec_for(registry: SchemaRegistryClient) -> Callable[[str], AvroCodec]:
    def build(name: str) -> AvroCodec:
        return AvroCodec(name, registry, subject_for(TOPICS[name]))

    return build
