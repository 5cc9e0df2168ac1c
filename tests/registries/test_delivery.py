"""The delivery stage over the ledger (SQLite and PostgreSQL) and the three sandboxes over real HTTP:
receipts stored, rejections and outages dead-lettered without PII, one failure never stopping the rest,
routing changes skipped, and injected faults retried until everything is delivered once."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from connectors.http import HttpClient, RetryPolicy
from connectors.registries.ama_pra import AmaPraRegistry
from connectors.registries.base import REGISTRY_REJECTED, REGISTRY_UNAVAILABLE
from connectors.registries.cebroker import LICENCE_INVALID, CeBrokerRegistry
from connectors.registries.employer_hr import EmployerHrRegistry, HmacSigner, Roster
from deploy.sandbox.ama_registry import AmaPraRegistry as AmaSandbox
from deploy.sandbox.base import Faults
from deploy.sandbox.cebroker import CeBroker
from deploy.sandbox.hr_endpoint import HrEndpoint
from ledger import tables as t
from ledger.store import Ledger
from pipeline.stages.deliver import deliver_pending
from tests.registries.conftest import CEBROKER

Credits = Any  # the `credits` fixture: tests/registries/conftest.py Credits
PII = ("1493027167", "RN4488120", "Amelia", "Hart", "Isabel", "Moreno", "03-14", "06-11")


def deliveries(ledger: Ledger, registry: str) -> dict[tuple[str, int], dict[str, Any]]:
    d = t.deliveries.c
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(t.deliveries).where(d.registry == registry)).mappings()
        return {(r["record_id"], r["version"]): dict(r) for r in rows}


def dead_letters(ledger: Ledger) -> list[dict[str, Any]]:
    with ledger.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.dead_letters)).mappings()]


def test_given_pending_deliveries_when_delivered_then_each_registry_gets_what_it_accepts_with_receipts_stored(
    ledger: Ledger,
    ama: AmaPraRegistry,
    cebroker: CeBrokerRegistry,
    hr: EmployerHrRegistry,
    ama_sandbox: AmaSandbox,
    cebroker_sandbox: CeBroker,
    hr_sandbox: HrEndpoint,
    credits: Credits,
) -> None:
    physician = credits.record()
    nurse = credits.record("ANCC_CH", learner=credits.nurse)
    credits.seed(ledger, [physician, nurse], [ama, cebroker, hr])

    stats = [deliver_pending(ledger, registry, batch_size=1) for registry in (ama, cebroker, hr)]

    assert [(s.delivered, s.failed, s.skipped) for s in stats] == [(1, 0, 0), (1, 0, 0), (2, 0, 0)]
    assert set(ama_sandbox.holdings()) == {physician["record_id"]}
    assert set(cebroker_sandbox.active_rows()) == {f"{nurse['record_id']}:1"}
    assert set(hr_sandbox.holdings()) == {physician["record_id"], nurse["record_id"]}
    ama_row = deliveries(ledger, "ama-pra")[(physician["record_id"], 1)]
    assert (ama_row["state"], ama_row["attempts"], ama_row["last_error"]) == ("sent", 1, None)
    assert ama_row["receipt"] == ama_sandbox.holdings()[physician["record_id"]]["receipt_id"]
    assert (
        deliveries(ledger, "cebroker")[(nurse["record_id"], 1)]["receipt"]
        == cebroker_sandbox.active_rows()[f"{nurse['record_id']}:1"]["id_attendee"]
    )


def test_given_a_record_the_registry_rejects_when_delivered_then_dead_letter_without_pii_and_the_rest_delivered(
    ledger: Ledger, ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    too_old = credits.record(completed_on=date(2024, 6, 1))
    fine = [credits.record(activity_id=f"ACT-{n}") for n in range(3)]
    credits.seed(ledger, [fine[0], too_old, *fine[1:]], [ama])

    stats = deliver_pending(ledger, ama, batch_size=2)

    assert (stats.delivered, stats.failed) == (3, 1)
    assert set(ama_sandbox.holdings()) == {r["record_id"] for r in fine}
    rejected = deliveries(ledger, "ama-pra")[(too_old["record_id"], 1)]
    assert rejected["state"] == "failed"
    assert (
        rejected["last_error"]
        == "Activity.CompletedDateTime: must not be before 1 January of the previous calendar year"
    )
    [dead] = dead_letters(ledger)
    assert (dead["stage"], dead["reason_code"], dead["registry"]) == ("deliver", REGISTRY_REJECTED, "ama-pra")
    assert dead["source_ref"] == f"credit {too_old['record_id']} v1"
    assert dead["payload"] == f"{too_old['record_id']}:1".encode()
    assert not any(value in dead["reason"] or value in rejected["last_error"] for value in PII)


def test_given_a_licence_cebroker_calls_invalid_when_delivered_then_a_licence_invalid_dead_letter_never_sent(
    ledger: Ledger, cebroker: CeBrokerRegistry, cebroker_sandbox: CeBroker, credits: Credits
) -> None:
    cebroker_sandbox.unlisted.add(credits.nurse["licence_number"])
    invalid = credits.record("ANCC_CH", learner=credits.nurse)
    valid = credits.record("ANCC_CH", learner=credits.nurse_practitioner)
    credits.seed(ledger, [invalid, valid], [cebroker])

    stats = deliver_pending(ledger, cebroker)
    again = deliver_pending(ledger, cebroker)

    assert (stats.delivered, stats.failed, again.delivered, again.failed) == (1, 1, 0, 0)
    assert set(cebroker_sandbox.active_rows()) == {f"{valid['record_id']}:1"}
    assert credits.nurse["licence_number"] not in {row["license"] for row in cebroker_sandbox.reported}
    [dead] = dead_letters(ledger)
    assert (dead["stage"], dead["reason_code"], dead["registry"]) == ("deliver", LICENCE_INVALID, "cebroker")
    assert dead["reason"] == "CE Broker License Validation: ErrorCode 80: Invalid license Number"
    assert deliveries(ledger, "cebroker")[(invalid["record_id"], 1)]["state"] == "failed"
    assert not any(value in dead["reason"] for value in PII)


def test_given_one_registry_down_when_delivering_then_it_is_dead_lettered_as_unavailable_and_the_other_delivers(
    ledger: Ledger, ama_sandbox: AmaSandbox, hr: EmployerHrRegistry, hr_sandbox: HrEndpoint, credits: Credits
) -> None:
    ama_sandbox.faults = Faults(server_error=1.0)
    retry = RetryPolicy(max_attempts=3, initial_backoff_s=0.001, max_backoff_s=0.002, jitter_s=0)
    down = AmaPraRegistry("ama-pra", HttpClient(ama_sandbox.url, retry=retry))
    records = [credits.record(activity_id=f"ACT-{n}") for n in range(3)]
    credits.seed(ledger, records, [down, hr])

    down_stats = deliver_pending(ledger, down, batch_size=2)
    hr_stats = deliver_pending(ledger, hr, batch_size=2)

    assert (down_stats.delivered, down_stats.failed, hr_stats.delivered) == (0, 3, 3)
    assert set(hr_sandbox.holdings()) == {r["record_id"] for r in records}
    assert ama_sandbox.requests_seen == 2 * retry.max_attempts  # two batches, each tried to the limit
    letters = dead_letters(ledger)
    assert {(d["reason_code"], d["registry"]) for d in letters} == {(REGISTRY_UNAVAILABLE, "ama-pra")}
    assert len(letters) == 3
    assert all("gave up after 3 attempts" in d["reason"] for d in letters)


def test_given_a_learner_who_left_the_roster_when_delivering_then_the_delivery_is_skipped_not_failed(
    ledger: Ledger, hr: EmployerHrRegistry, hr_sandbox: HrEndpoint, roster_path: Any, credits: Credits
) -> None:
    staying, leaving = credits.record(), credits.record("ANCC_CH", learner=credits.nurse)
    credits.seed(ledger, [staying, leaving], [hr])
    roster_path.write_text("employee_id,npi,licence_number,licence_state\nEH-0001,1493027167,,\n", encoding="utf-8")
    hr.roster = Roster.load(roster_path)

    stats = deliver_pending(ledger, hr)

    assert (stats.delivered, stats.failed, stats.skipped) == (1, 0, 1)
    assert deliveries(ledger, "employer-hr")[(leaving["record_id"], 1)]["state"] == "skipped"
    assert set(hr_sandbox.holdings()) == {staying["record_id"]}
    assert dead_letters(ledger) == []


def test_given_faults_on_30_percent_of_requests_when_delivering_then_everything_arrives_exactly_once(
    ledger: Ledger,
    ama_sandbox: AmaSandbox,
    cebroker_sandbox: CeBroker,
    hr_sandbox: HrEndpoint,
    roster_path: Any,
    credits: Credits,
) -> None:
    retry = RetryPolicy(max_attempts=12, initial_backoff_s=0.001, max_backoff_s=0.01, jitter_s=0.001)
    registries = [
        AmaPraRegistry(
            "ama-pra", HttpClient(ama_sandbox.url, headers={"Authorization": "Bearer ama-demo-token"}, retry=retry)
        ),
        CeBrokerRegistry("cebroker", HttpClient(cebroker_sandbox.url, retry=retry), CEBROKER),
        EmployerHrRegistry(
            "employer-hr",
            HttpClient(hr_sandbox.url, auth=HmacSigner("hr-demo-secret"), retry=retry),
            Roster.load(roster_path),
        ),
    ]
    for seed, sandbox in enumerate((ama_sandbox, cebroker_sandbox, hr_sandbox)):
        sandbox.faults = Faults(rate_limited=0.1, retry_after_s=0.01, server_error=0.1, dropped=0.1, seed=seed)
    physicians = [credits.record(activity_id=f"ACT-{n}") for n in range(20)]
    nurses = [credits.record("ANCC_CH", learner=credits.nurse, activity_id=f"ACT-{n}") for n in range(20)]
    corrections = [credits.next_version(r, amount=r["amount"] + 1) for r in (physicians[0], nurses[0])]
    credits.seed(ledger, physicians + nurses, registries)

    stats = [deliver_pending(ledger, registry, batch_size=7) for registry in registries]
    credits.seed(ledger, corrections, registries)
    stats += [deliver_pending(ledger, registry, batch_size=7) for registry in registries]

    assert sum(s.failed for s in stats) == 0
    assert dead_letters(ledger) == []
    assert sum(sandbox.requests_seen for sandbox in (ama_sandbox, cebroker_sandbox, hr_sandbox)) > sum(
        registry.client.stats.calls for registry in registries
    ), "faults were injected and retried"
    latest = {r["record_id"]: r for r in physicians + nurses + corrections}
    physician_ids = {r["record_id"] for r in physicians}
    ama_held = {rid: (h["version"], h["amount"]) for rid, h in ama_sandbox.holdings().items()}
    assert ama_held == {rid: (r["version"], f"{r['amount']:.2f}") for rid, r in latest.items() if rid in physician_ids}
    assert len(ama_sandbox.accepted) == 21
    cebroker_held = {ref: row["hours"] for ref, row in cebroker_sandbox.active_rows().items()}
    assert cebroker_held == {
        f"{rid}:{r['version']}": f"{r['amount']:.2f}" for rid, r in latest.items() if r["credit_type"] == "ANCC_CH"
    }
    assert len(cebroker_sandbox.reported) == 21
    assert {rid: h["version"] for rid, h in hr_sandbox.holdings().items()} == {
        rid: r["version"] for rid, r in latest.items()
    }
    assert len(hr_sandbox.applied) == 42
