"""How the sandbox PARS reads a learner report in the shape of ACCME's draft learner schema (`ACCMELearnerReports`
v0.5, domain/registries.md §1) into the flat item its rules judge, and what it refuses on the way.

The sandbox's rules (`ama_registry.CreditItemValidator`) name flat fields; `report_errors` names the schema's
paths instead, so a refusal reads like PARS's own ("Member.Name.GivenName: …"), never quoting a value.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

ADD, DELETE = "add", "delete"
CREDIT_TYPES = {"AMA PRA Category 1 Credit": "AMA_PRA_1", "AMA PRA Category 2 Credit": "AMA_PRA_2"}
MOC = "MOC"  # the flat credit type of a report certified "<board> MOC"
BOARD_DOMAINS = ("ABA", "ABIM", "ABOS", "ABOHNS", "ABPath", "ABP", "ABS", "ABTS")
ONCE_ONLY_BOARDS = frozenset({"ABP"})  # ABP: one report per learner and activity (ACCME MOC tips)
STEP = Decimal("0.25")

_CREDIT_ID = re.compile(r"ccid:(?P<record_id>[^:]+):(?P<version>[1-9][0-9]*)")
_PROVIDER = re.compile(r"[0-9]{7}")
_BIRTH_MONTH_DAY = re.compile(r"--(?P<month_day>[0-9]{2}-[0-9]{2})")
_STATE = re.compile(r"[A-Z]{2}")
# The sandbox's board-id rule (the boards' own formats are not public): 4 to 20 letters, digits or dashes, with
# at least one digit.
_BOARD_ID = re.compile(r"(?=[^0-9]*[0-9])[A-Za-z0-9-]{4,20}")

# The flat field the sandbox's rules check → where it sits in a learner report.
PATHS = {
    "first_name": "Member.Name.GivenName",
    "last_name": "Member.Name.FamilyName",
    "dob_month_day": "Member.PersonalInfo.BirthDate",
    "activity_id": "Activity.Module.ModuleName.moduleID",
    "activity_title": "Activity.Module.ModuleName.value",
    "completed_on": "Activity.CompletedDateTime",
    "npi": "CreditCertificate.UniqueID[NPI]",
    "board_id": "CreditCertificate.UniqueID[board]",
    "board": "CreditCertificate.UniqueID[board]",
    "consent": "XtensibleInfo.LearnerConsent",
    "credit_type": "CreditReceived.activityCertification",
    "amount": "CreditReceived.numberOfCredits",
    "record_id": "CreditID",
    "version": "CreditID",
    "idempotency_key": "CreditID",
}


def renamed(errors: list[str]) -> list[str]:
    """The flat rules' "field: rule" errors under the report's paths."""
    out = []
    for error in errors:
        name, _, rule = error.partition(": ")
        out.append(f"{PATHS.get(name, name)}: {rule}")
    return out


def credit_id_of(report: Any) -> str | None:
    certificate = _certificate(report)
    credit_id = certificate.get("CreditID") if certificate else None
    return credit_id if isinstance(credit_id, str) else None


def action_of(report: Any) -> Any:
    info = report.get("XtensibleInfo") if isinstance(report, dict) else None
    return info.get("LearnerRecordAction") if isinstance(info, dict) else None


def flat_item(report: Any, action: str) -> tuple[dict[str, Any], list[str]]:
    """The report as the sandbox's flat item, and the refusals found while reading it (schema paths)."""
    if not isinstance(report, dict):
        return {}, ["ActivityReport: must be a JSON object"]
    errors: list[str] = []
    if action_of(report) != action:
        if action_of(report) in (ADD, DELETE):
            errors.append(f"XtensibleInfo.LearnerRecordAction: must be {action} on this operation")
        else:
            errors.append(
                "XtensibleInfo.LearnerRecordAction: must be add or delete (learner records are never "
                "updated: delete the record, then add the corrected one)"
            )
    member = _object(report, "Member")
    name = _object(member, "Name")
    activity = _object(report, "Activity")
    module = _object(_object(activity, "Module"), "ModuleName")
    item: dict[str, Any] = {
        "first_name": name.get("GivenName"),
        "last_name": name.get("FamilyName"),
        "activity_id": module.get("moduleID"),
        "activity_title": module.get("value"),
        "status": "AWARDED" if action == ADD else "REVOKED",
        "completed_on": activity.get("CompletedDateTime"),
    }
    if not (
        isinstance(activity.get("ProviderOrganization"), str) and _PROVIDER.fullmatch(activity["ProviderOrganization"])
    ):
        errors.append("Activity.ProviderOrganization: must be the provider's 7-digit ACCME id")
    if activity.get("Status") != "Completed":
        errors.append('Activity.Status: must be "Completed"')
    birth = _object(member, "PersonalInfo").get("BirthDate")
    if birth is not None:
        match = _BIRTH_MONTH_DAY.fullmatch(birth) if isinstance(birth, str) else None
        item["dob_month_day"] = match["month_day"] if match else "invalid"
    certificates = activity.get("CreditCertificate")
    if not (isinstance(certificates, list) and len(certificates) == 1 and isinstance(certificates[0], dict)):
        return item, [*errors, "Activity.CreditCertificate: must hold exactly one certificate per report"]
    errors += _certificate_fields(certificates[0], item)
    item["consent"] = _object(report, "XtensibleInfo").get("LearnerConsent") is True
    if action == ADD:
        errors += board_errors(item)
    return item, errors


def board_errors(item: dict[str, Any]) -> list[str]:
    """What the boards refuse at once (ACCME: a record that does not match the board is refused when it is
    submitted): MOC to a board that is not one of the eight, without the learner's id at that board, with an
    ill-formed id, without the birth month/day or without the learner's consent; a state-licence id without
    consent or birth month/day (state boards match on licence or NPI and birth month/day)."""
    errors: list[str] = []
    if item.get("board_id") is not None and not (
        isinstance(item["board_id"], str) and _BOARD_ID.fullmatch(item["board_id"])
    ):
        errors.append("CreditCertificate.UniqueID[board]: not a well-formed board id")
    if item.get("credit_type") == MOC:
        board = item.get("moc_board")
        if board not in BOARD_DOMAINS:
            errors.append(f"CreditReceived.activityCertification: MOC goes to one of {', '.join(BOARD_DOMAINS)}")
        elif item.get("board") != board or item.get("board_id") is None:
            errors.append(f"CreditCertificate.UniqueID[board]: MOC needs the learner's {board} id")
    if item.get("credit_type") == MOC or item.get("licence") is not None:
        who = "MOC" if item.get("credit_type") == MOC else "a state board"
        if item.get("dob_month_day") is None:
            errors.append(f"Member.PersonalInfo.BirthDate: {who} needs the birth month and day")
        if not item["consent"]:
            errors.append(f"XtensibleInfo.LearnerConsent: {who} needs the learner's consent")
    return errors


def _certificate_fields(certificate: dict[str, Any], item: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    credit_id = certificate.get("CreditID")
    match = _CREDIT_ID.fullmatch(credit_id) if isinstance(credit_id, str) and len(credit_id) <= 300 else None
    if match is None:
        errors.append("CreditID: must be 'ccid:<record>:<version>', at most 300 characters")
    else:
        version = int(match["version"])
        item |= {
            "record_id": match["record_id"],
            "version": version,
            "idempotency_key": f"{match['record_id']}:{version}",
        }
    unique_ids = certificate.get("UniqueID")
    if not isinstance(unique_ids, list) or not unique_ids:
        errors.append("CreditCertificate.UniqueID: at least one learner id (NPI, board id, state licence) is required")
        unique_ids = []
    for unique_id in unique_ids:
        domain = unique_id.get("domain") if isinstance(unique_id, dict) else None
        value = unique_id.get("value") if isinstance(unique_id, dict) else None
        if domain == "NPI":
            item["npi"] = value
        elif domain in BOARD_DOMAINS:
            item["board_id"], item["board"] = value, domain
        elif isinstance(domain, str) and _STATE.fullmatch(domain):
            item["licence"] = {"state": domain, "number": value}
        else:
            errors.append("CreditCertificate.UniqueID.domain: must be NPI, a certifying board or a state code")
    received = _object(certificate, "CreditReceived")
    certification = received.get("activityCertification")
    if isinstance(certification, str) and certification.endswith(" MOC"):
        item["credit_type"], item["moc_board"] = MOC, certification.removesuffix(" MOC")
    else:
        item["credit_type"] = CREDIT_TYPES.get(certification, certification)
    if received.get("creditUnit") != "Point":
        errors.append('CreditReceived.creditUnit: must be "Point"')
    item["amount"] = _amount(received.get("numberOfCredits"))
    if item["amount"] is not None and Decimal(item["amount"]) % STEP:
        errors.append("CreditReceived.numberOfCredits: must be a multiple of 0.25")
    return errors


def _amount(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return f"{Decimal(str(value)):.2f}"
    except InvalidOperation:
        return None


def _object(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def _certificate(report: Any) -> dict[str, Any] | None:
    certificates = _object(report, "Activity").get("CreditCertificate")
    if isinstance(certificates, list) and certificates and isinstance(certificates[0], dict):
        return certificates[0]
    return None
