"""Fixtures for the sandbox tests: started servers and authenticated `requests` sessions (real sockets)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests

from deploy.sandbox.ama_registry import AmaPraRegistry
from deploy.sandbox.lrs import XapiLrs

SAMPLE_STATEMENTS = Path(__file__).parents[2] / "deploy" / "sample" / "xapi_statements.json"
TODAY = date(2026, 11, 23)


@pytest.fixture
def sample_statements() -> list[dict[str, Any]]:
    return json.loads(SAMPLE_STATEMENTS.read_text(encoding="utf-8"))


@pytest.fixture
def sample_lrs() -> Iterator[XapiLrs]:
    with XapiLrs.from_file(SAMPLE_STATEMENTS) as lrs:
        yield lrs


@pytest.fixture
def empty_lrs() -> Iterator[XapiLrs]:
    with XapiLrs() as lrs:
        yield lrs


@pytest.fixture
def xapi() -> Iterator[requests.Session]:
    """A session an xAPI client would use: Basic auth and the version header on every request."""
    with requests.Session() as session:
        session.auth = ("lrs-demo", "lrs-demo-secret")
        session.headers["X-Experience-API-Version"] = "1.0.3"
        yield session


@pytest.fixture
def ama() -> Iterator[AmaPraRegistry]:
    with AmaPraRegistry(today=lambda: TODAY) as registry:
        yield registry


@pytest.fixture
def ama_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = "Bearer ama-demo-token"
        yield session


@pytest.fixture
def credit_item() -> Callable[..., dict[str, Any]]:
    """Build a valid credit item; keyword overrides replace fields (None removes one)."""

    def build(record_id: str = "rec-1", version: int = 1, **overrides: Any) -> dict[str, Any]:
        item: dict[str, Any] = {
            "idempotency_key": f"{record_id}:{version}",
            "record_id": record_id,
            "version": version,
            "status": "AWARDED",
            "npi": "1234567893",  # the CMS documentation's example NPI
            "first_name": "Test",
            "last_name": "Learner",
            "dob_month_day": "02-29",
            "activity_id": "ACT-001",
            "activity_title": "Sepsis Recognition in the ED",
            "credit_type": "AMA_PRA_1",
            "amount": "1.50",
            "completed_on": "2026-11-17",
        }
        item.update(overrides)
        return {key: value for key, value in item.items() if value is not None}

    return build
