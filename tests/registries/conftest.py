"""Fixtures for the registry tests: the three registry sandboxes on real sockets, connectors pointed at them,
credit records shaped like `pipeline.stages.reconcile.credit_record` builds them, and a migrated ledger to deliver
from."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.http import HttpClient, RetryPolicy
from connectors.registries.ama_pra import AmaPraRegistry
from connectors.registries.base import Registry
from connectors.registries.cebroker import CeBrokerRegistry
from connectors.registries.cebroker_xml import Envelope
from connectors.registries.employer_hr import CsvExport, EmployerHrRegistry, HmacSigner, Roster
from deploy.sandbox.ama_registry import AmaPraRegistry as AmaSandbox
from deploy.sandbox.cebroker import CeBroker
from deploy.sandbox.hr_endpoint import HrEndpoint
from ledger.credits import store_credits
from ledger.store import Ledger
from reconcile.merge import CreditState

TODAY = date(2026, 11, 23)
FAST = RetryPolicy(max_attempts=4, initial_backoff_s=0.001, max_backoff_s=0.01, jitter_s=0.001)

PHYSICIAN = {
    "npi": "1493027167",
    "board_id": None,
    "licence_number": None,
    "licence_state": None,
    "profession": "MD",
    "given_name": "Amelia",
    "family_name": "Hart",
    "dob_month_day": "03-14",
}
NURSE = {
    "npi": None,
    "board_id": None,
    "licence_number": "RN4488120",
    "licence_state": "FL",
    "profession": "RN",
    "given_name": "Isabel",
    "family_name": "Moreno",
    "dob_month_day": "06-11",
}
NURSE_PRACTITIONER = NURSE | {"licence_number": "NP7731002", "profession": "NP", "given_name": "Jonah"}
ROSTER_CSV = "employee_id,npi,licence_number,licence_state\nEH-0001,1493027167,,\nEH-0104,,RN4488120,FL\n"


class Credits:
    """Credit records shaped as `pipeline.stages.reconcile.credit_record` builds them (amount Decimal, completed_on a
    date), and the ledger writes the reconcile stage would make for them. Tests get one from the `credits` fixture."""

    physician = PHYSICIAN
    nurse = NURSE
    nurse_practitioner = NURSE_PRACTITIONER

    @staticmethod
    def record(
        credit_type: str = "AMA_PRA_1",
        *,
        learner: dict[str, Any] | None = None,
        record_id: str | None = None,
        version: int = 1,
        status: str = "AWARDED",
        amount: str = "1.50",
        completed_on: date = date(2026, 11, 17),
        activity_id: str = "ACT-001",
        activity_title: str = "Sepsis Recognition in the ED",
    ) -> dict[str, Any]:
        learner = dict(learner or PHYSICIAN)
        learner_id = str(uuid.uuid5(uuid.NAMESPACE_URL, repr(sorted(learner.items()))))
        return {
            "record_id": record_id or str(uuid.uuid4()),
            "version": version,
            "status": status,
            "learner_id": learner_id,
            "learner": learner,
            "activity_id": activity_id,
            "activity_title": activity_title,
            "accreditor": "ACCME" if credit_type.startswith("AMA_PRA") else "ANCC",
            "credit_type": credit_type,
            "amount": Decimal(amount),
            "completed_on": completed_on,
            "evidence": [f"lms-xapi:{uuid.uuid4()}"],
            "reconciled_at": datetime(2026, 11, 23, 2, 0, tzinfo=UTC),
        }

    @staticmethod
    def next_version(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
        return {**record, "version": record["version"] + 1, **changes}

    @staticmethod
    def seed(ledger: Ledger, records: Sequence[dict[str, Any]], registries: Sequence[Registry]) -> None:
        """Write credit versions and their pending deliveries as the reconcile stage does."""
        states = [
            (
                CreditState(
                    r["record_id"],
                    r["version"],
                    r["status"],
                    r["learner_id"],
                    r["activity_id"],
                    r["credit_type"],
                    r["amount"],
                    r["completed_on"],
                    tuple(r["evidence"]),
                ),
                r,
            )
            for r in records
        ]
        routed = [(r["record_id"], r["version"], reg.name) for r in records for reg in registries if reg.accepts(r)]
        with ledger.transaction() as conn:
            store_credits(conn, {}, states, routed)


@pytest.fixture
def credits() -> Credits:
    return Credits()


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as store:
        store.migrate()
        yield store


@pytest.fixture
def ama_sandbox() -> Iterator[AmaSandbox]:
    with AmaSandbox(today=lambda: TODAY) as sandbox:
        yield sandbox


@pytest.fixture
def cebroker_sandbox() -> Iterator[CeBroker]:
    with CeBroker(today=lambda: TODAY) as sandbox:
        yield sandbox


@pytest.fixture
def hr_sandbox() -> Iterator[HrEndpoint]:
    with HrEndpoint() as sandbox:
        yield sandbox


@pytest.fixture
def roster_path(tmp_path: Path) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER_CSV, encoding="utf-8")
    return path


@pytest.fixture
def ama(ama_sandbox: AmaSandbox) -> AmaPraRegistry:
    client = HttpClient(ama_sandbox.url, headers={"Authorization": "Bearer ama-demo-token"}, retry=FAST)
    return AmaPraRegistry("ama-pra", client, page_size=2)


CEBROKER = Envelope("50-1001", "50-1001", "cebroker-demo-key")


@pytest.fixture
def cebroker(cebroker_sandbox: CeBroker) -> CeBrokerRegistry:
    return CeBrokerRegistry("cebroker", HttpClient(cebroker_sandbox.url, retry=FAST), CEBROKER, page_size=2)


@pytest.fixture
def hr(hr_sandbox: HrEndpoint, roster_path: Path, tmp_path: Path) -> EmployerHrRegistry:
    client = HttpClient(hr_sandbox.url, auth=HmacSigner("hr-demo-secret"), retry=FAST)
    export = CsvExport(tmp_path / "exports", "employer-hr", today=lambda: TODAY)
    return EmployerHrRegistry("employer-hr", client, Roster.load(roster_path), export, page_size=2)
