"""Our credit records as ACCME PARS learner reports: the one place that knows the draft learner schema
(`ACCMELearnerReports` v0.5, domain/registries.md §1), so that a change of the schema is an edit here only.

What goes where (the board parts need the learner's consent, ACCME FAQ 7921):
- an AMA PRA credit (CME) is reported with the learner's NPI and, when the source named the board, the board id
  under that board's domain; the state licence goes under its state's domain (state-board reporting) only with
  the learner's consent;
- MOC points (our credit type `ABIM_MOC`, whichever board counts them) are their own report, certified as
  "<board> MOC" and carrying the board id under the learner's certifying board (never a guessed one), the NPI
  when known, the birth month/day and the consent.

Choices where the public record is silent (README "Registries"):
- one report per credit record, one `CreditCertificate` per report; its `CreditID` is `ccid:<record_id>:<version>`,
  which is how a later delete or status query names the record;
- `BirthDate` carries only what offices collect, month and day, as ISO 8601's year-less `--MM-DD`;
- `moduleID` is our activity id; `CompletedDateTime` is a date only (a time shifts across zones);
- the consent travels as `XtensibleInfo.LearnerConsent` (true/false; the draft schema names no field for it);
- MOC is certified as "<board> MOC" (the draft lists no certification names for MOC).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.registries.base import CreditRecord
from reconcile.boards import certifying_board
from reconcile.credit_types import ABIM_MOC

ADD, DELETE = "add", "delete"
MOC = ABIM_MOC
CERTIFICATIONS = {"AMA_PRA_1": "AMA PRA Category 1 Credit", "AMA_PRA_2": "AMA PRA Category 2 Credit"}


def credit_id(record_id: str, version: int) -> str:
    return f"ccid:{record_id}:{version}"


def board_of(learner: Mapping[str, Any]) -> str | None:
    """The learner's certifying board as the source named it, in PARS's spelling; None if absent or unknown."""
    return certifying_board(learner.get("board"))


def consented(learner: Mapping[str, Any]) -> bool:
    return learner.get("moc_consent") is True


def is_moc(record: CreditRecord) -> bool:
    return record["credit_type"] == MOC


def unique_ids(record: CreditRecord) -> list[dict[str, str]]:
    """The learner's ids, one per domain: NPI, the certifying board's id, the state licence (see the module doc)."""
    learner = record["learner"]
    board = board_of(learner)
    ids = []
    if learner.get("npi"):
        ids.append({"value": learner["npi"], "domain": "NPI"})
    if board and learner.get("board_id"):
        ids.append({"value": learner["board_id"], "domain": board})
    if not is_moc(record) and consented(learner) and learner.get("licence_number") and learner.get("licence_state"):
        ids.append({"value": learner["licence_number"], "domain": learner["licence_state"]})
    return ids


def certification(record: CreditRecord) -> str:
    if is_moc(record):
        return f"{board_of(record['learner'])} MOC"
    return CERTIFICATIONS.get(record["credit_type"], record["credit_type"])


def learner_report(record: CreditRecord, action: str, provider_organization: str, version: int | None = None) -> dict:
    """One `ActivityReport`; `version` names another version of the record than its own (a delete of what is
    held before a correction)."""
    learner = dict(record["learner"])
    member: dict[str, Any] = {
        "Name": {"GivenName": learner.get("given_name"), "FamilyName": learner.get("family_name")}
    }
    if learner.get("dob_month_day"):
        member["PersonalInfo"] = {"BirthDate": f"--{learner['dob_month_day']}"}
    certificate = {
        "UniqueID": unique_ids(record),
        "CreditReceived": {
            "activityCertification": certification(record),
            "creditUnit": "Point",
            "numberOfCredits": float(record["amount"]),
        },
        "CreditID": credit_id(record["record_id"], record["version"] if version is None else version),
    }
    return {
        "ReportingOrganization": provider_organization,
        "Member": member,
        "Activity": {
            "ProviderOrganization": provider_organization,
            "Module": {"ModuleName": {"value": record["activity_title"], "moduleID": record["activity_id"]}},
            "Status": "Completed",
            "CompletedDateTime": record["completed_on"].isoformat(),
            "CreditCertificate": [certificate],
        },
        "XtensibleInfo": {
            "ProviderID": provider_organization,
            "LearnerRecordAction": action,
            "LearnerConsent": consented(learner),
        },
    }


def deletion_of(record_id: str, version: int, held_report: dict[str, Any] | None) -> dict[str, Any]:
    """The deletion of a holding: its own report with the delete action and the CreditID of the version held,
    or, for a record entered by hand at the registry (which lists no report of ours), a report naming only that."""
    report = held_report or {}
    activity = report.get("Activity", {})
    certificate = {**(activity.get("CreditCertificate") or [{}])[0], "CreditID": credit_id(record_id, version)}
    return {
        **report,
        "Activity": {**activity, "CreditCertificate": [certificate]},
        "XtensibleInfo": {**report.get("XtensibleInfo", {}), "LearnerRecordAction": DELETE},
    }


def learner_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The request body of `saveLearnerActivity` / `deleteLearnerActivity`."""
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    return {"ACCMELearnerReports": {"ActivityReports": {"DateTimeCreated": created, "ActivityReport": list(reports)}}}
