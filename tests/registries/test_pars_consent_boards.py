"""PARS over real HTTP: MOC goes to the learner's certifying board with that board's fields and only with the
learner's consent; the CME credit goes regardless; the sandbox refuses a record that does not match the board at
once; ABP takes one report per learner and activity."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.registries.ama_pra import AmaPraRegistry
from connectors.registries.base import Failure, Receipt
from connectors.registries.pars_mapping import learner_report, learner_reports
from deploy.sandbox.ama_registry import AmaPraRegistry as AmaSandbox
from reconcile.vocabulary import BOARD_REPORTED_ONCE, CONSENT_MISSING, REGISTRY_REJECTED, UNKNOWN_BOARD

Credits = Any  # the `credits` fixture: tests/registries/conftest.py Credits

DIPLOMATE = {
    "board_id": "204518",
    "board": "ABIM",
    "moc_consent": True,
    "licence_number": "A123456",
    "licence_state": "CA",
}


def physician(credits: Credits, **changes: Any) -> dict[str, Any]:
    return credits.physician | DIPLOMATE | changes


def certificate(sandbox: AmaSandbox, record_id: str) -> dict[str, Any]:
    return sandbox.holdings()[record_id]["report"]["Activity"]["CreditCertificate"][0]


def test_given_no_consent_when_cme_and_moc_are_delivered_then_cme_goes_without_the_state_id_and_moc_is_held(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    learner = physician(credits, moc_consent=None)
    cme, moc = credits.record(learner=learner), credits.record("ABIM_MOC", learner=learner, amount="1.00")

    results = ama.deliver([cme, moc])

    assert isinstance(results[0], Receipt)
    assert isinstance(results[1], Failure) and results[1].reason_code == CONSENT_MISSING
    assert set(ama_sandbox.holdings()) == {cme["record_id"]}
    assert certificate(ama_sandbox, cme["record_id"])["UniqueID"] == [
        {"value": "1493027167", "domain": "NPI"},
        {"value": "204518", "domain": "ABIM"},
    ]
    assert ama_sandbox.holdings()[cme["record_id"]]["report"]["XtensibleInfo"]["LearnerConsent"] is False


def test_given_consent_when_moc_is_delivered_then_it_goes_to_the_learners_board_with_its_fields(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    learner = physician(credits, board="abp", board_id="ABP-88120")
    cme, moc = credits.record(learner=learner), credits.record("ABIM_MOC", learner=learner, amount="1.50")

    results = ama.deliver([cme, moc])

    assert all(isinstance(r, Receipt) for r in results), results
    moc_certificate = certificate(ama_sandbox, moc["record_id"])
    assert moc_certificate["CreditReceived"]["activityCertification"] == "ABP MOC"
    assert moc_certificate["UniqueID"] == [
        {"value": "1493027167", "domain": "NPI"},
        {"value": "ABP-88120", "domain": "ABP"},
    ]
    report = ama_sandbox.holdings()[moc["record_id"]]["report"]
    assert report["Member"]["PersonalInfo"] == {"BirthDate": "--03-14"}
    assert report["XtensibleInfo"]["LearnerConsent"] is True
    # With consent, the CME report also names the state licence for the state board.
    assert {"value": "A123456", "domain": "CA"} in certificate(ama_sandbox, cme["record_id"])["UniqueID"]


def test_given_moc_of_a_learner_whose_board_is_not_known_when_delivered_then_held_and_never_sent(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    [result] = ama.deliver([credits.record("ABIM_MOC", learner=physician(credits, board="AOBIM"), amount="1.00")])

    assert isinstance(result, Failure) and result.reason_code == UNKNOWN_BOARD
    assert ama_sandbox.learner_actions == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"board_id": "??"}, "CreditCertificate.UniqueID[board]: not a well-formed board id"),
        ({"dob_month_day": None}, "Member.PersonalInfo.BirthDate: MOC needs the birth month and day"),
    ],
    ids=["ill-formed-board-id", "no-dob"],
)
def test_given_moc_that_does_not_match_the_board_when_delivered_then_refused_at_once_with_the_registrys_reason(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits, changes: dict[str, Any], reason: str
) -> None:
    [result] = ama.deliver([credits.record("ABIM_MOC", learner=physician(credits, **changes), amount="1.00")])

    assert isinstance(result, Failure) and result.reason_code == REGISTRY_REJECTED
    assert reason in result.message
    assert ama_sandbox.holdings() == {}


def test_given_a_report_to_an_unknown_board_or_without_consent_when_posted_then_the_sandbox_refuses_it(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    """What another client (or a bug in ours) would send: the sandbox refuses it, it does not trust the sender."""
    moc = credits.record("ABIM_MOC", learner=physician(credits), amount="1.00")
    unknown_board = learner_report(moc, "add", "1000001")
    unknown_board["Activity"]["CreditCertificate"][0]["CreditReceived"]["activityCertification"] = "AOBIM MOC"
    no_consent = learner_report(credits.record("ABIM_MOC", learner=physician(credits), amount="1.00"), "add", "1000001")
    no_consent["XtensibleInfo"]["LearnerConsent"] = False
    ama.deliver([credits.record(learner=physician(credits))])  # registers the activity

    body = ama.client.post_json("/v1/saveLearnerActivity", learner_reports([unknown_board, no_consent]))

    errors = [r["error"] for r in body["results"]]
    assert [r["outcome"] for r in body["results"]] == ["rejected", "rejected"]
    assert "CreditReceived.activityCertification: MOC goes to one of ABA, ABIM" in errors[0]
    assert "XtensibleInfo.LearnerConsent: MOC needs the learner's consent" in errors[1]


def test_given_abp_moc_reported_when_a_new_version_comes_then_no_second_report_is_sent(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    v1 = credits.record("ABIM_MOC", learner=physician(credits, board="ABP"), amount="1.00")
    assert isinstance(ama.deliver([v1])[0], Receipt)

    [again] = ama.deliver([credits.next_version(v1)])

    assert isinstance(again, Failure) and again.reason_code == BOARD_REPORTED_ONCE
    assert ama_sandbox.learner_actions == [("add", f"ccid:{v1['record_id']}:1")]  # no delete, no second add
    assert ama_sandbox.holdings()[v1["record_id"]]["version"] == 1


def test_given_abp_moc_of_another_record_for_the_same_learner_and_activity_when_sent_then_the_sandbox_refuses_it(
    ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits
) -> None:
    learner = physician(credits, board="ABP")
    first = ama.deliver([credits.record("ABIM_MOC", learner=learner, amount="1.00")])

    [second] = ama.deliver([credits.record("ABIM_MOC", learner=learner, amount="1.00")])

    assert isinstance(first[0], Receipt)
    assert isinstance(second, Failure) and second.reason_code == BOARD_REPORTED_ONCE
    assert "ABP takes one report per learner and activity" in second.message
    assert len(ama_sandbox.holdings()) == 1
