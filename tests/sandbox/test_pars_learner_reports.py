"""The sandbox PARS over real HTTP on the draft learner schema (`ACCMELearnerReports`): what it takes, and what
it refuses the way PARS does — an update, a record missing what the schema requires, a time in the completion
date — naming the schema's path and never the value."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from deploy.sandbox.ama_registry import AmaPraRegistry
from tests.sandbox.conftest import TODAY

NPI = "1234567893"


def report(record_id: str = "rec-1", version: int = 1, action: str = "add", **activity: Any) -> dict[str, Any]:
    """A learner report as the draft schema v0.5 shapes it (written out here, not by the connector's mapping)."""
    return {
        "ReportingOrganization": "1000001",
        "Member": {"Name": {"GivenName": "Test", "FamilyName": "Learner"}, "PersonalInfo": {"BirthDate": "--02-29"}},
        "Activity": {
            "ProviderOrganization": "1000001",
            "Module": {"ModuleName": {"value": "Sepsis Recognition in the ED", "moduleID": "ACT-001"}},
            "Status": "Completed",
            "CompletedDateTime": "2026-11-17",
            "CreditCertificate": [
                {
                    "UniqueID": [{"value": NPI, "domain": "NPI"}],
                    "CreditReceived": {
                        "activityCertification": "AMA PRA Category 1 Credit",
                        "creditUnit": "Point",
                        "numberOfCredits": 1.5,
                    },
                    "CreditID": f"ccid:{record_id}:{version}",
                }
            ],
        }
        | activity,
        "XtensibleInfo": {"ProviderID": "1000001", "LearnerRecordAction": action},
    }


def body(*reports: dict[str, Any]) -> dict[str, Any]:
    return {
        "ACCMELearnerReports": {
            "ActivityReports": {"DateTimeCreated": "2026-11-23T02:00:00Z", "ActivityReport": list(reports)}
        }
    }


@pytest.fixture
def pars() -> Iterator[tuple[AmaPraRegistry, requests.Session]]:
    with AmaPraRegistry(today=lambda: TODAY) as registry, requests.Session() as session:
        session.headers["Authorization"] = "Bearer ama-demo-token"
        activity = {"activities": [{"activity_id": "ACT-001", "title": "Sepsis Recognition in the ED"}]}
        session.post(f"{registry.url}/v1/activities", json=activity, timeout=5).raise_for_status()
        yield registry, session


def call(pars: tuple[AmaPraRegistry, requests.Session], operation: str, *reports: dict[str, Any]) -> list[dict]:
    registry, session = pars
    response = session.post(f"{registry.url}/v1/{operation}", json=body(*reports), timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_given_a_learner_report_when_saved_then_accepted_and_held_with_its_credit_and_date(pars: Any) -> None:
    [result] = call(pars, "saveLearnerActivity", report())

    assert (result["CreditID"], result["outcome"], result["error"]) == ("ccid:rec-1:1", "accepted", None)
    held = pars[0].holdings()["rec-1"]
    assert (held["version"], held["status"], held["amount"], held["completed_on"]) == (
        1,
        "AWARDED",
        "1.50",
        "2026-11-17",
    )
    assert (held["npi"], held["dob_month_day"]) == (NPI, "02-29")
    assert pars[0].learner_actions == [("add", "ccid:rec-1:1")]


def test_given_a_saved_report_when_saved_again_then_duplicate_and_held_once(pars: Any) -> None:
    [first] = call(pars, "saveLearnerActivity", report())
    [again] = call(pars, "saveLearnerActivity", report())

    assert (again["outcome"], again["receipt_id"]) == ("duplicate", first["receipt_id"])
    assert len(pars[0].accepted) == 1


@pytest.mark.parametrize("action", ["update", "Update", None])
def test_given_an_update_or_no_action_when_saved_then_refused_saying_records_are_never_updated(
    pars: Any, action: str | None
) -> None:
    sent = report(action="add")
    sent["XtensibleInfo"]["LearnerRecordAction"] = action

    [result] = call(pars, "saveLearnerActivity", sent)

    assert result["outcome"] == "rejected"
    assert result["error"].startswith("XtensibleInfo.LearnerRecordAction: must be add or delete")
    assert "never updated" in result["error"]
    assert pars[0].holdings() == {}


def test_given_a_delete_report_when_sent_to_save_then_refused(pars: Any) -> None:
    [result] = call(pars, "saveLearnerActivity", report(action="delete"))

    assert result["error"] == "XtensibleInfo.LearnerRecordAction: must be add on this operation"


def _without(path: tuple[str, ...]) -> dict[str, Any]:
    sent = report()
    parent = sent
    for key in path[:-1]:
        parent = parent[key][0] if isinstance(parent[key], list) else parent[key]
    del parent[path[-1]]
    return sent


@pytest.mark.parametrize(
    "path, error",
    [
        (("Member", "Name", "GivenName"), "Member.Name.GivenName: must be a non-empty string"),
        (("Member", "Name", "FamilyName"), "Member.Name.FamilyName: must be a non-empty string"),
        (("Activity", "Module"), "Activity.Module.ModuleName.moduleID: must be a non-empty string"),
        (
            ("Activity", "ProviderOrganization"),
            "Activity.ProviderOrganization: must be the provider's 7-digit ACCME id",
        ),
        (("Activity", "Status"), 'Activity.Status: must be "Completed"'),
        (("Activity", "CompletedDateTime"), "Activity.CompletedDateTime: must be a date YYYY-MM-DD"),
        (("Activity", "CreditCertificate", "CreditID"), "CreditID: must be 'ccid:<record>:<version>'"),
        (("Activity", "CreditCertificate", "UniqueID"), "CreditCertificate.UniqueID: at least one learner id"),
        (("Activity", "CreditCertificate", "CreditReceived"), 'CreditReceived.creditUnit: must be "Point"'),
    ],
)
def test_given_a_report_missing_a_required_field_when_saved_then_refused_naming_its_path(
    pars: Any, path: tuple[str, ...], error: str
) -> None:
    [result] = call(pars, "saveLearnerActivity", _without(path))

    assert result["outcome"] == "rejected"
    assert error in result["error"]
    assert pars[0].holdings() == {}


@pytest.mark.parametrize(
    "change, error",
    [
        ({"CompletedDateTime": "2026-11-17T23:30:00-06:00"}, "Activity.CompletedDateTime: must be a date YYYY-MM-DD"),
        ({"ProviderOrganization": "12345"}, "Activity.ProviderOrganization: must be the provider's 7-digit ACCME id"),
    ],
)
def test_given_a_time_or_a_short_provider_id_when_saved_then_refused(pars: Any, change: dict, error: str) -> None:
    [result] = call(pars, "saveLearnerActivity", report(**change))

    assert error in result["error"]


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("numberOfCredits", 1.3, "CreditReceived.numberOfCredits: must be a multiple of 0.25"),
        ("creditUnit", "Hour", 'CreditReceived.creditUnit: must be "Point"'),
        ("activityCertification", "ANCC Contact Hour", "CreditReceived.activityCertification:"),
    ],
)
def test_given_credit_not_in_points_of_a_quarter_when_saved_then_refused(
    pars: Any, field: str, value: Any, error: str
) -> None:
    sent = report()
    sent["Activity"]["CreditCertificate"][0]["CreditReceived"][field] = value

    [result] = call(pars, "saveLearnerActivity", sent)

    assert error in result["error"]


def test_given_a_bad_npi_or_birth_date_when_saved_then_refused_without_quoting_it(pars: Any) -> None:
    sent = report()
    sent["Activity"]["CreditCertificate"][0]["UniqueID"] = [{"value": "1234567890", "domain": "NPI"}]
    sent["Member"]["PersonalInfo"]["BirthDate"] = "1980-02-31"

    [result] = call(pars, "saveLearnerActivity", sent)

    assert "CreditCertificate.UniqueID[NPI]: fails the NPI check digit" in result["error"]
    assert "Member.PersonalInfo.BirthDate:" in result["error"]
    assert "1234567890" not in result["error"] and "1980" not in result["error"]


def test_given_a_held_record_when_saved_in_a_new_version_then_refused_until_deleted_then_taken(pars: Any) -> None:
    call(pars, "saveLearnerActivity", report())
    corrected = report(version=2)
    corrected["Activity"]["CreditCertificate"][0]["CreditReceived"]["numberOfCredits"] = 1.0

    [refused] = call(pars, "saveLearnerActivity", corrected)
    [deleted] = call(pars, "deleteLearnerActivity", report(action="delete"))
    [taken] = call(pars, "saveLearnerActivity", corrected)

    assert "already reported; records cannot be edited, delete it" in refused["error"]
    assert (deleted["outcome"], taken["outcome"]) == ("deleted", "accepted")
    assert (pars[0].holdings()["rec-1"]["version"], pars[0].holdings()["rec-1"]["amount"]) == (2, "1.00")
    assert [a for a, _ in pars[0].learner_actions] == ["add", "delete", "add"]


def test_given_a_held_record_when_deleted_at_a_later_version_then_listed_revoked_and_a_stale_add_refused(
    pars: Any,
) -> None:
    call(pars, "saveLearnerActivity", report())

    [revoked] = call(pars, "deleteLearnerActivity", report(version=2, action="delete"))
    [again] = call(pars, "deleteLearnerActivity", report(version=2, action="delete"))
    [stale] = call(pars, "saveLearnerActivity", report())

    assert (revoked["outcome"], again["outcome"], again["receipt_id"]) == (
        "deleted",
        "duplicate",
        revoked["receipt_id"],
    )
    assert (pars[0].holdings()["rec-1"]["status"], pars[0].holdings()["rec-1"]["version"]) == ("REVOKED", 2)
    assert "stale version" in stale["error"]


def test_given_an_add_report_when_sent_to_delete_then_refused_and_the_record_kept(pars: Any) -> None:
    call(pars, "saveLearnerActivity", report())

    [result] = call(pars, "deleteLearnerActivity", report(version=2))

    assert result["error"] == "XtensibleInfo.LearnerRecordAction: must be delete on this operation"
    assert pars[0].holdings()["rec-1"]["status"] == "AWARDED"


@pytest.mark.parametrize("sent", [{"ActivityReport": []}, {"ACCMELearnerReports": {"ActivityReport": []}}, []])
def test_given_a_body_not_shaped_as_learner_reports_when_posted_then_400(pars: Any, sent: Any) -> None:
    registry, session = pars

    response = session.post(f"{registry.url}/v1/saveLearnerActivity", json=sent, timeout=5)

    assert response.status_code == 400
    assert "ACCMELearnerReports" in response.json()["error"]


@pytest.mark.parametrize("operation", ["saveLearnerActivity", "deleteLearnerActivity", "getLearnerStatus"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token"])
def test_given_no_or_a_wrong_bearer_when_calling_a_learner_operation_then_401_and_nothing_changes(
    pars: Any, operation: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    sent = body(report(action="delete" if operation == "deleteLearnerActivity" else "add")) | {"CreditID": []}

    response = requests.post(f"{pars[0].url}/v1/{operation}", json=sent, headers=headers, timeout=5)

    assert response.status_code == 401
    assert (pars[0].holdings(), pars[0].status_polls) == ({}, 0)


def test_given_reports_of_two_learners_when_one_is_invalid_then_only_it_is_refused(pars: Any) -> None:
    broken = copy.deepcopy(report("rec-2"))
    del broken["Member"]["Name"]

    ok, refused = call(pars, "saveLearnerActivity", report("rec-1"), broken)

    assert (ok["outcome"], refused["outcome"], refused["CreditID"]) == ("accepted", "rejected", "ccid:rec-2:1")
    assert set(pars[0].holdings()) == {"rec-1"}


# -- the board's decision, after acceptance (getLearnerStatus) ------------------------------------------------


def status(pars: Any, *credit_ids: str) -> list[dict[str, Any]]:
    registry, session = pars
    response = session.post(f"{registry.url}/v1/getLearnerStatus", json={"CreditID": list(credit_ids)}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_given_an_accepted_report_whose_board_id_the_board_rejects_when_its_status_is_asked_then_rejected_with_reason(
    pars: Any,
) -> None:
    registry = pars[0]
    registry.decision_polls = 2
    registry.board_rejects[NPI] = "Learner name does not match the board's record"
    call(pars, "saveLearnerActivity", report("rec-1"))

    first = status(pars, "ccid:rec-1:1", "ccid:rec-9:1")
    second = status(pars, "ccid:rec-1:1")
    third = status(pars, "ccid:rec-1:1")

    assert [r["status"] for r in first] == ["Pending", "NotFound"]
    reason = "Learner name does not match the board's record"
    assert second == third == [{"CreditID": "ccid:rec-1:1", "status": "Rejected", "reason": reason}]
    assert registry.holdings()["rec-1"]["status"] == "REJECTED"


def test_given_a_rejected_report_when_sent_again_after_the_data_is_fixed_then_accepted_and_accepted_by_the_board(
    pars: Any,
) -> None:
    registry = pars[0]
    registry.board_rejects[NPI] = "Board ID not found"
    call(pars, "saveLearnerActivity", report())
    status(pars, "ccid:rec-1:1")
    registry.board_rejects.clear()  # the office corrected the learner's id with the board

    [again] = call(pars, "saveLearnerActivity", report())

    assert again["outcome"] == "accepted"
    assert status(pars, "ccid:rec-1:1") == [{"CreditID": "ccid:rec-1:1", "status": "Accepted", "reason": None}]
    assert registry.holdings()["rec-1"]["status"] == "AWARDED"


def test_given_a_report_the_board_does_not_reject_when_asked_then_accepted_and_a_deleted_one_says_deleted(
    pars: Any,
) -> None:
    call(pars, "saveLearnerActivity", report("rec-1"), report("rec-2"))
    call(pars, "deleteLearnerActivity", report("rec-2", version=2, action="delete"))

    results = status(pars, "ccid:rec-1:1", "ccid:rec-2:2")

    assert [r["status"] for r in results] == ["Accepted", "Deleted"]


@pytest.mark.parametrize("sent", [{}, {"CreditID": "ccid:rec-1:1"}, {"CreditID": [1]}, []])
def test_given_a_status_query_not_naming_credit_ids_when_posted_then_400(pars: Any, sent: Any) -> None:
    registry, session = pars

    response = session.post(f"{registry.url}/v1/getLearnerStatus", json=sent, timeout=5)

    assert response.status_code == 400
