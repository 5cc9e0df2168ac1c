"""The nightly registry diff & repair against each sandbox over real HTTP, with the ledger on SQLite and
PostgreSQL: entries removed, altered, made stale, re-activated and added directly in the sandbox are found,
exactly those, and the repair restores equality with the ledger."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from connectors.http import APIError
from connectors.registries.base import AWARDED, Registry, RegistryEntry
from deploy.sandbox.ama_registry import AmaPraRegistry as AmaSandbox
from deploy.sandbox.cebroker import CeBroker
from deploy.sandbox.hr_endpoint import HrEndpoint
from ledger import tables as t
from ledger.holdings import beside_expectations
from ledger.registry_diffs import save_registry_diff
from ledger.store import Expectation, Ledger
from pipeline.stages.deliver import deliver_pending
from pipeline.stages.registry_diff import compare, diff_and_repair

pytestmark = pytest.mark.dialect

Credits = Any  # the `credits` fixture: tests/registries/conftest.py Credits
Held = dict[str, tuple[int, Decimal, date]]


@dataclass
class Harness:
    """One registry kind: its connector, a learner it takes, and what an operator could do in its sandbox."""

    registry: Registry
    credit_type: str
    learner: dict[str, Any]
    active: Callable[[], Held]  # read straight from the sandbox, not through the connector
    remove: Callable[[str], None]
    alter_amount: Callable[[str], None]
    set_version: Callable[[str, int], None]
    reactivate: Callable[[str], None]
    add_unknown: Callable[[], str]


def _ama(sandbox: AmaSandbox, registry: Registry, credits: Credits) -> Harness:
    def active() -> Held:
        return {
            rid: (h["version"], Decimal(h["amount"]), date.fromisoformat(h["completed_on"]))
            for rid, h in sandbox.holdings().items()
            if h["status"] == AWARDED
        }

    def add_unknown() -> str:
        record_id = str(uuid.uuid4())
        sandbox.put(
            {"record_id": record_id, "version": 1, "status": AWARDED, "amount": "4.00", "completed_on": "2026-11-02"}
        )
        return record_id

    return Harness(
        registry,
        "AMA_PRA_1",
        credits.physician,
        active,
        sandbox.remove,
        lambda rid: sandbox.alter(rid, amount="9.75"),
        lambda rid, version: sandbox.alter(rid, version=version, idempotency_key=f"{rid}:{version}"),
        lambda rid: sandbox.alter(rid, status=AWARDED),
        add_unknown,
    )


def _cebroker(sandbox: CeBroker, registry: Registry, credits: Credits) -> Harness:
    def row_id(record_id: str) -> str:
        rows = [r for r in sandbox.rows().values() if r["external_ref"].startswith(f"{record_id}:")]
        return max(rows, key=lambda r: r["id_attendee"])["id_attendee"]

    def active() -> Held:
        held: Held = {}
        for ref, row in sandbox.active_rows().items():
            record_id, _, version = ref.rpartition(":")
            hours = Decimal(row["hours"]).quantize(Decimal("0.01"))
            held[record_id] = (int(version), hours, datetime.strptime(row["date_completed"], "%m/%d/%Y").date())
        return held

    def add_unknown() -> str:
        record_id = str(uuid.uuid4())
        row = {
            "external_ref": f"{record_id}:1",
            "id_course": "20-999999",
            "license": "RN4488120",
            "cebroker_state": "FL",
            "licensee_profession": "RN",
            "first_name": "Isabel",
            "last_name": "Moreno",
            "cd_subject_area": "GENERAL",
            "hours": "4.00",
            "date_completed": "11/02/2026",
        }
        sandbox.put(row)
        return record_id

    return Harness(
        registry,
        "ANCC_CH",
        credits.nurse,
        active,
        lambda rid: sandbox.remove(row_id(rid)),
        lambda rid: sandbox.alter(row_id(rid), hours="9.75"),
        lambda rid, version: sandbox.alter(row_id(rid), external_ref=f"{rid}:{version}"),
        lambda rid: sandbox.alter(row_id(rid), status="ACTIVE"),
        add_unknown,
    )


def _hr(sandbox: HrEndpoint, registry: Registry, credits: Credits) -> Harness:
    def active() -> Held:
        return {
            rid: (h["version"], Decimal(h["amount"]), date.fromisoformat(h["completed_on"]))
            for rid, h in sandbox.holdings().items()
            if h["status"] == AWARDED
        }

    def add_unknown() -> str:
        record_id = str(uuid.uuid4())
        holding = {"record_id": record_id, "version": 1, "status": AWARDED, "amount": "4.00"}
        sandbox.put(holding | {"completed_on": "2026-11-02", "employee_id": "EH-0001"})
        return record_id

    return Harness(
        registry,
        "AMA_PRA_1",
        credits.physician,
        active,
        sandbox.remove,
        lambda rid: sandbox.alter(rid, amount="9.75"),
        lambda rid, version: sandbox.alter(rid, version=version, event_id=f"{rid}:{version}"),
        lambda rid: sandbox.alter(rid, status=AWARDED),
        add_unknown,
    )


@pytest.fixture(params=["ama_pra", "cebroker", "employer_hr"])
def harness(request: pytest.FixtureRequest, credits: Credits) -> Iterator[Harness]:
    if request.param == "ama_pra":
        yield _ama(request.getfixturevalue("ama_sandbox"), request.getfixturevalue("ama"), credits)
    elif request.param == "cebroker":
        yield _cebroker(request.getfixturevalue("cebroker_sandbox"), request.getfixturevalue("cebroker"), credits)
    else:
        yield _hr(request.getfixturevalue("hr_sandbox"), request.getfixturevalue("hr"), credits)


def expected_active(ledger: Ledger, registry: str) -> Held:
    return {
        e.record_id: (e.version, e.amount, e.completed_on)
        for e in ledger.registry_expectations(registry).values()
        if e.status == AWARDED and e.delivery_state == "sent"
    }


@dataclass
class Delivered:
    untouched: list[str]
    removed: str
    altered: str
    stale: str
    revoked: str


def deliver_history(ledger: Ledger, harness: Harness, credits: Credits) -> Delivered:
    """Six awards delivered, one of them corrected to v2 and one revoked in v2, all delivered."""
    records = [
        credits.record(harness.credit_type, learner=harness.learner, activity_id=f"ACT-{n}", amount=f"{n}.25")
        for n in range(1, 7)
    ]
    credits.seed(ledger, records, [harness.registry])
    deliver_pending(ledger, harness.registry, batch_size=4)
    corrected = credits.next_version(records[2], amount=Decimal("0.50"))
    revoked = credits.next_version(records[3], status="REVOKED")
    credits.seed(ledger, [corrected, revoked], [harness.registry])
    stats = deliver_pending(ledger, harness.registry, batch_size=4)
    assert stats.failed == 0
    ids = [r["record_id"] for r in records]
    return Delivered(ids[4:], ids[0], ids[1], ids[2], ids[3])


def test_given_registry_delivered_from_the_ledger_when_diffed_then_no_drift_and_nothing_repaired(
    ledger: Ledger, harness: Harness, credits: Credits
) -> None:
    deliver_history(ledger, harness, credits)

    diff = diff_and_repair(ledger, harness.registry, "revoke", batch_size=2)

    assert diff.findings.drift == 0
    assert diff.counts()["expected"] == diff.counts()["held"] == 5
    assert (diff.repaired, diff.repair_failed) == ([], [])
    assert harness.active() == expected_active(ledger, harness.registry.name)


def test_given_entries_removed_altered_staled_reactivated_and_added_when_diffed_then_exactly_those_found_and_repaired(
    ledger: Ledger, harness: Harness, credits: Credits
) -> None:
    delivered = deliver_history(ledger, harness, credits)
    before = harness.active()
    harness.remove(delivered.removed)
    harness.alter_amount(delivered.altered)
    harness.set_version(delivered.stale, 1)
    harness.reactivate(delivered.revoked)
    unknown = harness.add_unknown()
    assert harness.active() != before

    diff = diff_and_repair(ledger, harness.registry, "revoke", batch_size=2)

    ids = diff.findings.ids
    assert {name: found for name, found in ids.items() if found} == {
        "missing": [delivered.removed],
        "altered": [delivered.altered],
        "stale": [delivered.stale],
        "revoked_in_ledger": [delivered.revoked],
        "unknown": [unknown],
    }
    assert diff.repaired == sorted([delivered.removed, delivered.altered, delivered.stale, delivered.revoked, unknown])
    assert diff.repair_failed == []
    assert harness.active() == expected_active(ledger, harness.registry.name) == before
    assert diff_and_repair(ledger, harness.registry, "revoke").findings.drift == 0


def test_given_report_policy_when_extra_holdings_are_found_then_they_are_reported_and_left_in_place(
    ledger: Ledger, harness: Harness, credits: Credits
) -> None:
    delivered = deliver_history(ledger, harness, credits)
    harness.remove(delivered.removed)
    harness.reactivate(delivered.revoked)
    unknown = harness.add_unknown()

    diff = diff_and_repair(ledger, harness.registry, "report")

    assert diff.reported == sorted([delivered.revoked, unknown])
    assert diff.repaired == [delivered.removed]
    assert set(harness.active()) - set(expected_active(ledger, harness.registry.name)) == {delivered.revoked, unknown}
    again = diff_and_repair(ledger, harness.registry, "report")
    assert (again.findings.ids["missing"], again.reported) == ([], sorted([delivered.revoked, unknown]))


def test_given_a_diff_report_when_saved_with_the_run_then_counts_and_ids_are_stored_and_replaced_on_a_rerun(
    ledger: Ledger, harness: Harness, credits: Credits
) -> None:
    delivered = deliver_history(ledger, harness, credits)
    harness.remove(delivered.removed)
    diff = diff_and_repair(ledger, harness.registry, "report")

    save_registry_diff(ledger, "run-1", harness.registry.name, diff.counts(), diff.record_ids())
    save_registry_diff(ledger, "run-1", harness.registry.name, diff.counts(), diff.record_ids())

    with ledger.engine.connect() as conn:
        [row] = conn.execute(select(t.registry_diffs)).mappings()
    counts, ids = json.loads(row["counts"]), json.loads(row["record_ids"])
    assert (row["run_id"], row["registry"]) == ("run-1", harness.registry.name)
    assert (counts["missing"], counts["drift"], counts["repaired"], counts["unavailable"]) == (1, 1, 1, 0)
    assert ids["missing"] == ids["repaired"] == [delivered.removed]


def test_given_a_record_whose_delivery_failed_when_diffed_then_it_is_left_to_replay_not_redelivered(
    ledger: Ledger, ama: Registry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    too_old = credits.record(completed_on=date(2024, 1, 5))
    credits.seed(ledger, [too_old, credits.record(activity_id="ACT-2")], [ama])
    deliver_pending(ledger, ama)
    requests_before = ama_sandbox.requests_seen

    diff = diff_and_repair(ledger, ama, "revoke")

    assert diff.findings.ids["unsettled"] == [too_old["record_id"]]
    assert diff.findings.drift == 0
    assert ama_sandbox.requests_seen == requests_before + 1  # the one holdings page, no delivery


def test_given_the_registry_down_when_diffed_then_reported_as_unavailable_without_failing(
    ledger: Ledger, ama: Registry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    credits.seed(ledger, [credits.record()], [ama])
    deliver_pending(ledger, ama)
    ama_sandbox.faults.server_error = 1.0

    diff = diff_and_repair(ledger, ama, "revoke")

    assert diff.counts()["unavailable"] == 1 and diff.findings.drift == 0
    assert diff.unavailable is not None and "gave up after" in diff.unavailable


def test_given_a_board_holding_two_active_rows_for_one_record_when_compared_then_the_extra_one_is_a_duplicate() -> None:
    expected = Expectation("r", 2, AWARDED, Decimal("1.00"), date(2026, 11, 1), "sent")
    right = RegistryEntry("r", 2, AWARDED, {"row_id": "R2"}, Decimal("1.00"), date(2026, 11, 1))
    old = RegistryEntry("r", 1, AWARDED, {"row_id": "R1"}, Decimal("1.00"), date(2026, 11, 1))

    findings = compare([("r", expected, [old, right])])

    assert findings.ids["duplicate"] == ["r"]
    assert findings.unwanted == {"r": [old]}


def test_given_holdings_breaking_midway_when_diffed_then_unavailable_and_the_next_diff_finds_exactly_the_drift(
    ledger: Ledger, harness: Harness, credits: Credits, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivered = deliver_history(ledger, harness, credits)
    harness.remove(delivered.removed)
    registry = harness.registry
    read_all = registry.holdings

    def broken(since: datetime | None = None) -> Iterator[RegistryEntry]:
        yield next(iter(read_all(since)))
        raise APIError("connection reset")

    monkeypatch.setattr(registry, "holdings", broken)
    first = diff_and_repair(ledger, registry, "revoke")
    monkeypatch.setattr(registry, "holdings", read_all)
    second = diff_and_repair(ledger, registry, "revoke")

    assert first.unavailable == "connection reset" and first.repaired == []
    assert second.findings.ids["missing"] == [delivered.removed] and second.findings.drift == 1
    assert harness.active() == expected_active(ledger, harness.registry.name)


def test_given_records_routed_or_only_held_when_compared_in_the_ledger_then_each_comes_back_once_with_its_holdings(
    ledger: Ledger, harness: Harness, credits: Credits
) -> None:
    delivered = deliver_history(ledger, harness, credits)
    unknown = harness.add_unknown()
    kept = delivered.untouched[0]
    harness.set_version(kept, 7)
    held = [(e.record_id, json.dumps([e.version])) for e in harness.registry.holdings() if e.active]
    held.append((kept, json.dumps(["again"])))

    beside = {
        rid: (expectation, entries)
        for rid, expectation, entries in beside_expectations(ledger, harness.registry.name, held)
    }

    routed = set(ledger.registry_expectations(harness.registry.name))
    assert set(beside) == routed | {unknown}
    assert beside[unknown] == (None, [json.dumps([1])])
    assert beside[kept][1] == [json.dumps([7]), json.dumps(["again"])]
    assert beside[delivered.revoked][1] == []
    assert all(beside[rid][0] is not None for rid in routed)
