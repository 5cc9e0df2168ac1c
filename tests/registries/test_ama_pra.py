"""The AMA PRA-style connector against its PARS-like sandbox over real HTTP: activity registration,
idempotent delivery, corrections as delete-then-add, revocation as its own call, holdings paging, check."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connectors.http import HttpClient, RetryPolicy
from connectors.registries.ama_pra import AmaPraRegistry
from connectors.registries.base import REGISTRY_REJECTED, REGISTRY_UNAVAILABLE, Failure, Receipt, RegistryCheckError
from deploy.sandbox.ama_registry import AmaPraRegistry as AmaSandbox

ONE_ATTEMPT = RetryPolicy(max_attempts=1)
Credits = Any  # the `credits` fixture: tests/registries/conftest.py Credits


def test_given_new_activity_when_delivering_then_it_is_registered_before_the_learners_and_credits_are_held(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    batch = [credits.record(), credits.record(activity_id="ACT-002", activity_title="Opioid Prescribing Safety")]

    results = ama.deliver(batch)

    assert all(isinstance(r, Receipt) for r in results)
    assert set(ama_sandbox.activities()) == {"ACT-001", "ACT-002"}
    held = ama_sandbox.holdings()
    assert {rid: (h["version"], h["amount"], h["completed_on"]) for rid, h in held.items()} == {
        r["record_id"]: (1, "1.50", "2026-11-17") for r in batch
    }
    assert [held[r.record_id]["receipt_id"] for r in results] == [r.receipt_id for r in results]


def test_given_activity_registered_by_an_earlier_run_when_a_new_connector_delivers_then_it_registers_again_harmlessly(
    ama_sandbox: AmaSandbox, ama: AmaPraRegistry, credits: Credits
) -> None:
    ama.deliver([credits.record()])
    next_night = AmaPraRegistry("ama-pra", ama.client)

    [result] = next_night.deliver([credits.record()])

    assert isinstance(result, Receipt)
    assert list(ama_sandbox.activities()) == ["ACT-001"]


def test_given_the_registry_restarted_empty_when_the_same_connector_delivers_and_redelivers_then_it_registers_again(
    ama_sandbox: AmaSandbox, ama: AmaPraRegistry, credits: Credits
) -> None:
    first = credits.record()
    ama.deliver([first])
    ama_sandbox.lose_everything()  # the connector still remembers ACT-001 as registered

    delivered = ama.deliver([credits.record(amount="0.75")])
    repaired = ama.redeliver([first])

    assert all(isinstance(r, Receipt) for r in [*delivered, *repaired]), [*delivered, *repaired]
    assert list(ama_sandbox.activities()) == ["ACT-001"]
    assert len(ama_sandbox.holdings()) == 2


def test_given_a_delivered_batch_when_delivered_again_then_same_receipts_and_nothing_accepted_twice(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    batch = [credits.record(), credits.record(amount="0.75")]
    first = ama.deliver(batch)

    again = AmaPraRegistry("ama-pra", ama.client).deliver(batch)

    assert again == first
    assert len(ama_sandbox.accepted) == 2
    assert len(ama_sandbox.holdings()) == 2


def test_given_held_v1_when_v2_changes_the_amount_then_v1_is_deleted_and_v2_added_never_edited(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    v1 = credits.record(amount="1.00")
    ama.deliver([v1])
    v2 = credits.next_version(v1, amount=Decimal("1.50"), completed_on=date(2026, 11, 18))

    [result] = ama.deliver([v2])

    assert isinstance(result, Receipt)
    holding = ama_sandbox.holdings()[v1["record_id"]]
    assert (holding["version"], holding["amount"], holding["completed_on"]) == (2, "1.50", "2026-11-18")
    assert [a["idempotency_key"] for a in ama_sandbox.accepted] == [f"{v1['record_id']}:1", f"{v1['record_id']}:2"]


def test_given_a_correction_delivered_when_it_is_delivered_again_then_the_new_version_stays(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    v1 = credits.record(amount="1.00")
    ama.deliver([v1])
    v2 = credits.next_version(v1, amount=Decimal("1.25"))
    [first] = ama.deliver([v2])

    [again] = ama.deliver([v2])

    assert again == first
    assert ama_sandbox.holdings()[v1["record_id"]]["version"] == 2
    assert len(ama_sandbox.accepted) == 2


def test_given_held_award_when_its_revocation_is_delivered_then_the_holding_is_marked_revoked(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    v1 = credits.record()
    ama.deliver([v1])

    [result] = ama.deliver([credits.next_version(v1, status="REVOKED")])

    assert isinstance(result, Receipt)
    holding = ama_sandbox.holdings()[v1["record_id"]]
    assert (holding["status"], holding["version"], holding["amount"]) == ("REVOKED", 2, "1.50")


def test_given_a_batch_with_one_invalid_record_when_delivered_then_only_that_one_fails_naming_the_rule_not_the_value(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    too_old = credits.record(completed_on=date(2024, 12, 31))
    batch = [credits.record(), too_old, credits.record(amount="2.00")]

    results = ama.deliver(batch)

    assert [type(r) for r in results] == [Receipt, Failure, Receipt]
    failure = results[1]
    assert isinstance(failure, Failure)
    assert failure.reason_code == REGISTRY_REJECTED
    assert failure.message == "Activity.CompletedDateTime: must not be before 1 January of the previous calendar year"
    assert too_old["record_id"] not in ama_sandbox.holdings()


def test_given_activity_the_registry_refuses_when_delivering_then_its_learners_fail_and_others_go_through(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    untitled = credits.record(activity_id="ACT-009", activity_title=" ")

    results = ama.deliver([untitled, credits.record()])

    assert isinstance(results[0], Failure) and isinstance(results[1], Receipt)
    assert results[0].message == "activity registration: title: must be a non-empty string"
    assert "ACT-009" not in ama_sandbox.activities()


def test_given_registry_answering_500_when_delivering_then_every_record_fails_as_unavailable(
    ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    ama_sandbox.faults.server_error = 1.0
    connector = AmaPraRegistry("ama-pra", HttpClient(ama_sandbox.url, retry=ONE_ATTEMPT))

    results = connector.deliver([credits.record(), credits.record()])

    assert [r.reason_code if isinstance(r, Failure) else r for r in results] == [REGISTRY_UNAVAILABLE] * 2
    assert ama_sandbox.holdings() == {}


def test_given_five_holdings_when_listed_two_per_page_then_each_once_with_amount_and_date(
    ama: AmaPraRegistry, credits: Credits
) -> None:
    batch = [credits.record(amount=f"{n}.25") for n in range(1, 6)]
    ama.deliver(batch)

    entries = list(ama.holdings())

    assert sorted((e.record_id, e.version, e.status, e.amount, e.completed_on) for e in entries) == sorted(
        (r["record_id"], 1, "AWARDED", r["amount"], r["completed_on"]) for r in batch
    )


def test_given_a_physician_credit_when_asked_then_accepted_and_others_refused(
    ama: AmaPraRegistry, credits: Credits
) -> None:
    board_only = credits.physician | {"npi": None, "board_id": "ABIM-123456"}
    no_identity = credits.physician | {"npi": None}

    assert ama.accepts(credits.record())
    assert ama.accepts(credits.record("AMA_PRA_2", learner=board_only))
    assert not ama.accepts(credits.record(learner=no_identity))
    assert not ama.accepts(credits.record("ANCC_CH", learner=credits.nurse))


def test_given_reachable_registry_and_right_token_when_checked_then_it_passes(ama: AmaPraRegistry) -> None:
    ama.check()


def test_given_wrong_token_when_checked_then_credentials_refused(ama_sandbox: AmaSandbox) -> None:
    client = HttpClient(ama_sandbox.url, headers={"Authorization": "Bearer wrong"}, retry=ONE_ATTEMPT)

    with pytest.raises(RegistryCheckError, match=r"registry ama-pra: credentials refused \(401\)") as caught:
        AmaPraRegistry("ama-pra", client).check()

    assert "wrong" not in str(caught.value)


def test_given_nothing_listening_when_checked_then_unreachable_is_named() -> None:
    with AmaSandbox() as sandbox:
        url = sandbox.url

    with pytest.raises(RegistryCheckError, match=r"registry ama-pra: unreachable at http://127\.0\.0\.1"):
        AmaPraRegistry("ama-pra", HttpClient(url, retry=ONE_ATTEMPT)).check()


# -- the PARS learner report shape (draft ACCMELearnerReports v0.5) ---------------------------------------------


def test_given_a_physician_credit_when_delivered_then_the_registry_holds_a_pars_learner_report_of_it(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    record = credits.record(amount="1.25")

    [receipt] = ama.deliver([record])

    report = ama_sandbox.holdings()[receipt.record_id]["report"]
    assert report["Member"] == {
        "Name": {"GivenName": "Amelia", "FamilyName": "Hart"},
        "PersonalInfo": {"BirthDate": "--03-14"},
    }
    activity = report["Activity"]
    assert (activity["Module"]["ModuleName"]["moduleID"], activity["Status"], activity["CompletedDateTime"]) == (
        "ACT-001",
        "Completed",
        "2026-11-17",
    )
    [certificate] = activity["CreditCertificate"]
    assert certificate["UniqueID"] == [{"value": "1493027167", "domain": "NPI"}]
    assert certificate["CreditReceived"] == {
        "activityCertification": "AMA PRA Category 1 Credit",
        "creditUnit": "Point",
        "numberOfCredits": 1.25,
    }
    assert certificate["CreditID"] == f"ccid:{record['record_id']}:1"
    assert report["XtensibleInfo"]["LearnerRecordAction"] == "add"


def test_given_a_learner_with_board_id_and_state_licence_when_delivered_then_each_id_goes_under_its_domain(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    learner = credits.physician | {
        "npi": None,
        "board_id": "ABIM-204518",
        "licence_number": "A123456",
        "licence_state": "CA",
        "board": "ABIM",
        "moc_consent": True,
    }

    [receipt] = ama.deliver([credits.record(learner=learner)])

    [certificate] = ama_sandbox.holdings()[receipt.record_id]["report"]["Activity"]["CreditCertificate"]
    assert certificate["UniqueID"] == [
        {"value": "ABIM-204518", "domain": "ABIM"},
        {"value": "A123456", "domain": "CA"},
    ]


def test_given_held_v1_when_v2_and_then_a_revocation_are_delivered_then_pars_saw_adds_and_deletes_only(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    v1 = credits.record()
    v2 = credits.next_version(v1, amount=Decimal("0.50"))
    v3 = credits.next_version(v2, status="REVOKED")

    for record in (v1, v2, v3):
        assert all(isinstance(r, Receipt) for r in ama.deliver([record]))

    rid = v1["record_id"]
    assert ama_sandbox.learner_actions == [
        ("add", f"ccid:{rid}:1"),
        ("delete", f"ccid:{rid}:1"),
        ("add", f"ccid:{rid}:2"),
        ("delete", f"ccid:{rid}:3"),
    ]
    assert (ama_sandbox.holdings()[rid]["status"], ama_sandbox.holdings()[rid]["version"]) == ("REVOKED", 3)
