"""The nightly flow end to end with all three registries (own config, `cmesync.toml` next to this file):
after each run every registry holds exactly what the ledger expects, corrections and revocations included,
and drift made in a registry between runs is found and repaired by the next run's diff."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from deploy.sandbox.stack import DEFAULT_STATEMENTS, SandboxStack
from flows.nightly import nightly_reconciliation
from ledger import tables as t
from ledger.store import Ledger
from tests.final_state import ama_active, cebroker_active, hr_active, ledger_expects

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).with_name("cmesync.toml")
VOIDING_STATEMENT = "973b8974-5cbb-54fb-970c-da4cf4c7908b"


def assert_registries_equal_the_ledger(stack: SandboxStack, ledger: Ledger) -> None:
    assert ama_active(stack) == ledger_expects(ledger, "ama-pra")
    assert cebroker_active(stack) == ledger_expects(ledger, "cebroker")
    assert hr_active(stack) == ledger_expects(ledger, "employer-hr")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[SandboxStack]:
    """The sample statements without the voiding one, which the test adds between runs."""
    statements = [s for s in json.loads(DEFAULT_STATEMENTS.read_text()) if s["id"] != VOIDING_STATEMENT]
    path = tmp_path / "statements.json"
    path.write_text(json.dumps(statements), encoding="utf-8")
    with SandboxStack(path, today=lambda: date(2026, 11, 23)) as sandboxes:
        yield sandboxes


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "cmesync.toml"
    path.write_text(TEMPLATE.read_text().replace("{export_dir}", str(tmp_path / "exports")), encoding="utf-8")
    return str(path)


@pytest.fixture
def ledger(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    monkeypatch.setenv("CMESYNC_LEDGER_URL", ledger_url)
    with Ledger(ledger_url) as store:
        yield store


def endpoints(kafka_bootstrap: str, stack: SandboxStack) -> dict[str, str]:
    return {
        "kafka_bootstrap": kafka_bootstrap,
        "schema_registry_url": stack.schema_registry.url,
        "lms-xapi.base_url": stack.lrs.url,
        "ama-pra.base_url": stack.ama.url,
        "cebroker.base_url": stack.cebroker.url,
        "employer-hr.base_url": stack.hr.url,
    }


def later_statements() -> list[dict[str, Any]]:
    """The voiding of a completion already credited, and a live attendance that changes an earned amount."""
    sample = {s["id"]: s for s in json.loads(DEFAULT_STATEMENTS.read_text())}
    voiding = {k: v for k, v in sample[VOIDING_STATEMENT].items() if k != "stored"}
    hart_act_002 = next(
        s
        for s in sample.values()
        if s["object"].get("id", "").endswith("/ACT-002") and s["actor"].get("name") == "Amelia Hart"
    )
    attended = {k: v for k, v in hart_act_002.items() if k not in ("id", "stored")}
    attended |= {
        "id": str(uuid.uuid4()),
        "verb": {"id": "http://adlnet.gov/expapi/verbs/attended", "display": {"en-US": "attended"}},
        "result": {"duration": "PT1H"},
        "timestamp": "2026-11-21T10:00:00.000Z",
    }
    return [voiding, attended]


def diff_rows(ledger: Ledger) -> list[dict[str, Any]]:
    with ledger.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.registry_diffs)).mappings()]


def test_given_three_registries_when_the_nightly_flow_runs_then_every_registry_holds_what_the_ledger_expects(
    prefect_harness: None, kafka_bootstrap: str, stack: SandboxStack, config: str, ledger: Ledger, tmp_path: Path
) -> None:
    urls = endpoints(kafka_bootstrap, stack)

    first = nightly_reconciliation(config_path=config, endpoints=urls)

    assert first["delivered"] > 0 and first["delivery_failed"] == 0
    assert (first["registry_drift"], first["registry_repaired"]) == (0, 0)
    assert_registries_equal_the_ledger(stack, ledger)
    assert ama_active(stack) and hr_active(stack)
    assert set(hr_active(stack)) < set(ama_active(stack)), "HR gets the credits of its staff only"

    stack.lrs.add(later_statements())
    second = nightly_reconciliation(config_path=config, endpoints=urls)

    assert second["credit_versions"] >= 2 and second["delivery_failed"] == 0
    with ledger.engine.connect() as conn:
        latest = conn.execute(select(t.credits).where(t.credits.c.version == 2)).mappings().all()
    revoked = [r["record_id"] for r in latest if r["status"] == "REVOKED"]
    corrected = [r["record_id"] for r in latest if r["status"] == "AWARDED"]
    assert revoked and corrected
    assert {stack.ama.holdings()[rid]["status"] for rid in revoked} == {"REVOKED"}
    assert {stack.ama.holdings()[rid]["version"] for rid in corrected} == {2}
    assert_registries_equal_the_ledger(stack, ledger)

    victim = sorted(ama_active(stack))[0]
    stack.ama.remove(victim)
    stack.hr.alter(sorted(hr_active(stack))[0], amount="42.00")
    third = nightly_reconciliation(config_path=config, endpoints=urls)

    assert (third["credit_versions"], third["delivered"]) == (0, 0)
    assert (third["registry_drift"], third["registry_repaired"]) == (2, 2)
    assert_registries_equal_the_ledger(stack, ledger)
    reports = diff_rows(ledger)
    assert len(reports) == 9  # three runs x three registries
    assert sorted(json.loads(r["record_ids"])["missing"] for r in reports if r["registry"] == "ama-pra") == [
        [],
        [],
        [victim],
    ]
    exports = sorted((tmp_path / "exports").glob("employer-hr-*.csv"))  # one per night; a run may cross midnight
    exported = [row for path in exports for row in csv.DictReader(path.open(encoding="utf-8"))]
    assert {row["event_id"] for row in exported} == {f"{h['record_id']}:{h['version']}" for h in stack.hr.applied}
    assert len(exported) == len({row["event_id"] for row in exported})
