"""The employer HR connector against the HR sandbox over real HTTP: roster routing, HMAC-signed webhooks the
sandbox verifies (tampered and stale requests refused), idempotent events, the nightly CSV export."""

from __future__ import annotations

import csv
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.http import HttpClient, RetryPolicy
from connectors.registries.base import REGISTRY_UNAVAILABLE, Failure, Receipt, RegistryCheckError, RegistryEntry
from connectors.registries.employer_hr import CsvExport, EmployerHrRegistry, HmacSigner, Roster, RosterError
from deploy.sandbox.hr_endpoint import HrEndpoint
from reconcile.merge import record_id_for

Credits = Any  # the `credits` fixture: tests/registries/conftest.py Credits
NOW = 1_795_000_000.0
ONE_ATTEMPT = RetryPolicy(max_attempts=1)


def export_rows(hr: EmployerHrRegistry) -> list[dict[str, str]]:
    assert hr.export is not None
    with hr.export.path().open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def clocked_hr() -> Any:
    with HrEndpoint(clock=lambda: NOW, window_s=300) as sandbox:
        yield sandbox


def test_given_staff_credits_when_delivered_then_held_by_the_hr_system_under_their_employee_ids(
    hr: EmployerHrRegistry, hr_sandbox: HrEndpoint, credits: Credits
) -> None:
    physician = credits.record()
    nurse = credits.record("ANCC_CH", learner=credits.nurse, amount="2.00")

    results = hr.deliver([physician, nurse])

    assert all(isinstance(r, Receipt) for r in results)
    held = hr_sandbox.holdings()
    assert {rid: (h["employee_id"], h["credit_type"], h["amount"], h["status"]) for rid, h in held.items()} == {
        physician["record_id"]: ("EH-0001", "AMA_PRA_1", "1.50", "AWARDED"),
        nurse["record_id"]: ("EH-0104", "ANCC_CH", "2.00", "AWARDED"),
    }
    assert "npi" not in json.dumps(held)


def test_given_delivered_events_when_delivered_again_then_duplicates_and_the_export_keeps_one_row_each(
    hr: EmployerHrRegistry, hr_sandbox: HrEndpoint, credits: Credits
) -> None:
    batch = [credits.record(), credits.record(amount="0.50")]
    first = hr.deliver(batch)

    again = hr.deliver(batch)

    assert again == first
    assert len(hr_sandbox.applied) == 2
    rows = export_rows(hr)
    assert sorted((r["event_id"], r["employee_id"], r["amount"]) for r in rows) == sorted(
        (f"{r['record_id']}:1", "EH-0001", f"{r['amount']:.2f}") for r in batch
    )
    assert hr.export is not None and hr.export.path().name == "employer-hr-2026-11-23.csv"


def test_given_held_credit_when_corrected_and_then_revoked_then_the_hr_system_follows_in_place(
    hr: EmployerHrRegistry, hr_sandbox: HrEndpoint, credits: Credits
) -> None:
    v1 = credits.record(amount="1.00")
    hr.deliver([v1])
    v2 = credits.next_version(v1, amount=Decimal("1.75"))
    hr.deliver([v2])
    corrected = hr_sandbox.holdings()[v1["record_id"]]

    hr.deliver([credits.next_version(v2, status="REVOKED")])

    assert (corrected["version"], corrected["amount"]) == (2, "1.75")
    revoked = hr_sandbox.holdings()[v1["record_id"]]
    assert (revoked["version"], revoked["status"]) == (3, "REVOKED")
    assert [(r["version"], r["status"]) for r in export_rows(hr)] == [
        ("1", "AWARDED"),
        ("2", "AWARDED"),
        ("3", "REVOKED"),
    ]


def test_given_an_older_version_when_delivered_after_a_newer_one_then_refused_as_stale(
    hr: EmployerHrRegistry, hr_sandbox: HrEndpoint, credits: Credits
) -> None:
    v1 = credits.record()
    hr.deliver([credits.next_version(v1)])

    [result] = hr.deliver([v1])

    assert isinstance(result, Failure) and result.message == "stale: version: not above the version held"
    assert hr_sandbox.holdings()[v1["record_id"]]["version"] == 2


def test_given_a_signed_request_when_its_body_is_changed_in_transit_then_refused_and_nothing_applied(
    hr_sandbox: HrEndpoint, credits: Credits, hr: EmployerHrRegistry
) -> None:
    event = hr.event(credits.record())
    signed = requests.Request("POST", f"{hr_sandbox.url}/v1/webhooks/cme-credits", json={"events": [event]}).prepare()
    HmacSigner("hr-demo-secret")(signed)
    tampered = json.dumps({"events": [event | {"amount": "99.00"}]}).encode()
    signed.body = tampered
    signed.headers["Content-Length"] = str(len(tampered))

    with requests.Session() as session:
        response = session.send(signed, timeout=5)

    assert response.status_code == 401
    assert response.json() == {"error": "signature does not match"}
    assert hr_sandbox.refused_signatures == 1
    assert hr_sandbox.holdings() == {}


def test_given_an_untouched_signed_request_when_sent_as_is_then_applied(
    hr_sandbox: HrEndpoint, credits: Credits, hr: EmployerHrRegistry
) -> None:
    event = hr.event(credits.record())
    signed = requests.Request("POST", f"{hr_sandbox.url}/v1/webhooks/cme-credits", json={"events": [event]}).prepare()
    HmacSigner("hr-demo-secret")(signed)

    with requests.Session() as session:
        response = session.send(signed, timeout=5)

    assert response.status_code == 200
    assert response.json()["results"][0]["outcome"] == "applied"


@pytest.mark.parametrize("skew_s, accepted", [(-301, False), (-299, True), (299, True), (301, False)])
def test_given_signature_timestamp_when_outside_the_replay_window_then_refused(
    clocked_hr: HrEndpoint, roster_path: Path, credits: Credits, skew_s: float, accepted: bool
) -> None:
    signer = HmacSigner("hr-demo-secret", clock=lambda: NOW + skew_s)
    hr = EmployerHrRegistry(
        "employer-hr", HttpClient(clocked_hr.url, auth=signer, retry=ONE_ATTEMPT), Roster.load(roster_path)
    )

    [result] = hr.deliver([credits.record()])

    assert isinstance(result, Receipt) is accepted
    if not accepted:
        assert isinstance(result, Failure) and result.reason_code == REGISTRY_UNAVAILABLE
        assert "401" in result.message and "timestamp outside the replay window" in result.message


def test_given_a_retried_request_when_each_attempt_is_sent_then_each_is_signed_afresh(
    clocked_hr: HrEndpoint, roster_path: Path, credits: Credits
) -> None:
    # The first attempt is throttled (429, retried); it was signed far outside the window, so the retry is
    # accepted only if it carries a signature of its own.
    clocked_hr.faults.rate_limited = 1.0
    stamps = [NOW - 1000, NOW]
    signed: list[float] = []

    def clock() -> float:
        if len(signed) == 1:
            clocked_hr.faults.rate_limited = 0.0
        signed.append(stamps[len(signed)])
        return signed[-1]

    client = HttpClient(
        clocked_hr.url, auth=HmacSigner("hr-demo-secret", clock=clock), retry=RetryPolicy(max_attempts=2)
    )
    hr = EmployerHrRegistry("employer-hr", client, Roster.load(roster_path))

    [result] = hr.deliver([credits.record()])

    assert isinstance(result, Receipt)
    assert signed == stamps
    assert clocked_hr.refused_signatures == 0


def test_given_wrong_secret_when_checked_then_credentials_refused(hr_sandbox: HrEndpoint, roster_path: Path) -> None:
    client = HttpClient(hr_sandbox.url, auth=HmacSigner("not-the-secret"), retry=ONE_ATTEMPT)

    with pytest.raises(RegistryCheckError, match=r"registry employer-hr: credentials refused \(401\)"):
        EmployerHrRegistry("employer-hr", client, Roster.load(roster_path)).check()


def test_given_right_secret_when_checked_then_it_passes(hr: EmployerHrRegistry) -> None:
    hr.check()


def test_given_the_roster_when_routing_then_staff_by_npi_or_licence_are_accepted_and_others_not(
    hr: EmployerHrRegistry, credits: Credits
) -> None:
    assert hr.accepts(credits.record())
    assert hr.accepts(credits.record("ANCC_CH", learner=credits.nurse | {"licence_state": "fl"}))
    assert not hr.accepts(credits.record(learner=credits.physician | {"npi": "1278459031"}))
    assert not hr.accepts(credits.record("ANCC_CH", learner=credits.nurse | {"licence_state": "GA"}))


@pytest.mark.parametrize(
    "text, message",
    [
        ("employee_id,npi\nEH-1,1493027167\n", "missing column(s) licence_number, licence_state"),
        ("employee_id,npi,licence_number,licence_state\n,1493027167,,\n", "line 2: needs employee_id and an NPI"),
        ("employee_id,npi,licence_number,licence_state\nEH-1,,RN1,\n", "line 2: needs employee_id and an NPI"),
    ],
)
def test_given_a_malformed_roster_when_loaded_then_a_clear_error_without_values(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(RosterError, match=re.escape(message)) as caught:
        Roster.load(path)

    assert "1493027167" not in str(caught.value) and "RN1" not in str(caught.value)


def test_given_an_unwritable_export_when_delivering_then_unavailable_and_a_rerun_completes_the_export(
    hr_sandbox: HrEndpoint, roster_path: Path, tmp_path: Path, credits: Credits
) -> None:
    blocked = tmp_path / "exports"
    blocked.write_text("a file where the export directory should be", encoding="utf-8")
    client = HttpClient(hr_sandbox.url, auth=HmacSigner("hr-demo-secret"), retry=ONE_ATTEMPT)
    hr = EmployerHrRegistry("employer-hr", client, Roster.load(roster_path), CsvExport(blocked, "employer-hr"))
    record = credits.record()

    [failed] = hr.deliver([record])
    blocked.unlink()
    [delivered] = hr.deliver([record])

    assert isinstance(failed, Failure) and failed.reason_code == REGISTRY_UNAVAILABLE
    assert failed.message.startswith("export file: ")
    assert isinstance(delivered, Receipt)
    assert len(hr_sandbox.applied) == 1
    assert [row["event_id"] for row in export_rows(hr)] == [f"{record['record_id']}:1"]


def test_given_an_altered_holding_when_redelivered_then_the_ledger_version_replaces_it(
    hr: EmployerHrRegistry, hr_sandbox: HrEndpoint, credits: Credits
) -> None:
    record = credits.record()
    hr.deliver([record])
    hr_sandbox.alter(record["record_id"], amount="9.00")

    [result] = hr.redeliver([record])

    assert isinstance(result, Receipt)
    assert hr_sandbox.holdings()[record["record_id"]]["amount"] == "1.50"


def test_given_a_holding_nobody_delivered_when_withdrawn_then_it_is_gone(
    hr: EmployerHrRegistry, hr_sandbox: HrEndpoint
) -> None:
    hr_sandbox.put({"record_id": "manual-1", "version": 1, "status": "AWARDED", "amount": "3.00"})

    [result] = hr.withdraw([RegistryEntry("manual-1", 1, "AWARDED", {})])

    assert result == Receipt("manual-1", 1, "withdrawn")
    assert hr_sandbox.holdings() == {}


def test_given_awarded_credits_when_delivered_then_events_name_the_certificate_and_revocations_do_not(
    hr: EmployerHrRegistry, hr_sandbox: HrEndpoint, credits: Credits
) -> None:
    nurse = credits.record("ANCC_CH", learner=credits.nurse, amount="4.00", activity_id="ACT-004")
    learner_id, activity_id = nurse["learner_id"], nurse["activity_id"]
    contact_hours = nurse | {"record_id": record_id_for(learner_id, activity_id, "ANCC_CH")}
    pharmacology = contact_hours | {
        "record_id": record_id_for(learner_id, activity_id, "ANCC_PHARM"),
        "credit_type": "ANCC_PHARM",
        "amount": Decimal("1.50"),
    }

    results = hr.deliver([contact_hours, pharmacology])

    assert all(isinstance(r, Receipt) for r in results)
    held = hr_sandbox.holdings()
    # The pharmacology portion is printed on its contact hours' certificate, named after that record.
    assert held[contact_hours["record_id"]]["certificate_id"] == f"CERT-{contact_hours['record_id']}"
    assert held[pharmacology["record_id"]]["certificate_id"] == f"CERT-{contact_hours['record_id']}"
    assert "certificate_id" not in hr.event(contact_hours | {"version": 2, "status": "REVOKED"})
