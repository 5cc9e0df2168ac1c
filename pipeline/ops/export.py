"""File channels for offices that upload by hand: the pending deliveries of a PARS or CE Broker registry as a
learner file (PARS) or roster file (CE Broker), xlsx (openpyxl) or tab-delimited, built by the connector's own
mapping (`pars_mapping.learner_report`, `CeBrokerRegistry.attendee`) so that the file says what the API would.

Exported deliveries are recorded `sent` with the receipt `export:<file name>`, through the ledger's own
delivery recording, so a later delivery pass never sends them again. A record the registry would refuse
before sending (not routed to it any more, a PARS award in a closed year) is not exported and stays pending:
the next delivery pass settles it as it always does."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from openpyxl import Workbook

from connectors.registries.ama_pra import AmaPraRegistry, reported_once
from connectors.registries.base import CreditRecord, Registry
from connectors.registries.cebroker import CeBrokerRegistry
from connectors.registries.pars_mapping import ADD, DELETE, learner_report
from ledger.deliveries import DeliveryOutcome, pending_deliveries, record_deliveries
from ledger.store import Ledger
from reconcile.vocabulary import REVOKED, DeliveryState

FileFormat = Literal["xlsx", "tsv"]
# pending_deliveries pages by a limit; a file holds every pending delivery at once.
ALL = 2**31 - 1

PARS_COLUMNS = (
    "LearnerRecordAction",
    "CreditID",
    "GivenName",
    "FamilyName",
    "BirthDate",
    "NPI",
    "BoardID",
    "Board",
    "LicenceNumber",
    "LicenceState",
    "ModuleID",
    "ModuleName",
    "CompletedDate",
    "ActivityCertification",
    "CreditUnit",
    "NumberOfCredits",
)
CEBROKER_COLUMNS = (
    "Action",
    "ExternalRef",
    "ActivityID",
    "CourseTitle",
    "License",
    "State",
    "Profession",
    "FirstName",
    "LastName",
    "DateCompleted",
    "SubjectArea",
    "Hours",
)


class ExportError(ValueError):
    """An export that cannot be made as asked (wrong kind of registry); exit code 2."""


@dataclass(frozen=True)
class Export:
    path: Path
    records: int  # credit versions marked exported
    rows: int  # rows in the file (a PARS correction is a delete row and an add row)


def export_pending(
    ledger: Ledger,
    registry: Registry,
    path: Path,
    file_format: FileFormat,
    activity: str | None = None,
    dry_run: bool = False,
) -> Export | None:
    """Write the file of `registry`'s pending deliveries (of `activity` only, when given) and mark them sent;
    None when there is nothing to export (no file written)."""
    records = [
        r
        for r in pending_deliveries(ledger, registry.name, ALL)
        if registry.accepts(r) and (activity is None or r["activity_id"] == activity) and _sendable(registry, r)
    ]
    if not records:
        return None
    columns, rows = file_rows(registry, records)
    path.parent.mkdir(parents=True, exist_ok=True)
    (_write_xlsx if file_format == "xlsx" else _write_tsv)(path, columns, rows)
    if not dry_run:
        receipt = f"export:{path.name}"
        record_deliveries(
            ledger,
            registry.name,
            [DeliveryOutcome(r["record_id"], r["version"], DeliveryState.SENT, receipt=receipt) for r in records],
        )
    return Export(path, len(records), len(rows))


def file_rows(registry: Registry, records: Sequence[CreditRecord]) -> tuple[tuple[str, ...], list[list[Any]]]:
    if isinstance(registry, AmaPraRegistry):
        return PARS_COLUMNS, [_pars_row(report) for r in records for report in _pars_reports(registry, r)]
    if isinstance(registry, CeBrokerRegistry):
        return CEBROKER_COLUMNS, [_cebroker_row(registry, r) for r in records]
    raise ExportError(f"registry {registry.name} has no file channel (PARS and CE Broker registries have)")


def _sendable(registry: Registry, record: CreditRecord) -> bool:
    return not (isinstance(registry, AmaPraRegistry) and (registry.year_closed(record) or registry.board_hold(record)))


def _pars_reports(registry: AmaPraRegistry, record: CreditRecord) -> list[dict[str, Any]]:
    """What the connector sends for it: a revocation deletes; a later version deletes the one held, then adds,
    except for a board that takes one report per learner and activity (ABP), whose report held stands."""
    org = registry.provider_organization
    if record["status"] == REVOKED:
        return [learner_report(record, DELETE, org)]
    replaces = record["version"] > 1 and not reported_once(record)
    earlier = [learner_report(record, DELETE, org, record["version"] - 1)] if replaces else []
    return [*earlier, learner_report(record, ADD, org)]


def _pars_row(report: Mapping[str, Any]) -> list[Any]:
    activity = report["Activity"]
    certificate = activity["CreditCertificate"][0]
    credit = certificate["CreditReceived"]
    ids: dict[str, str] = {}
    for unique in certificate["UniqueID"]:
        # PARS domains: NPI, a certifying board (ABIM, ABP…: three letters or more) or a state (two letters).
        if unique["domain"] == "NPI":
            ids["npi"] = unique["value"]
        elif len(unique["domain"]) == 2:
            ids |= {"licence": unique["value"], "state": unique["domain"]}
        else:
            ids |= {"board_id": unique["value"], "board": unique["domain"]}
    module = activity["Module"]["ModuleName"]
    return [
        report["XtensibleInfo"]["LearnerRecordAction"],
        certificate["CreditID"],
        report["Member"]["Name"]["GivenName"],
        report["Member"]["Name"]["FamilyName"],
        report["Member"].get("PersonalInfo", {}).get("BirthDate", ""),
        ids.get("npi", ""),
        ids.get("board_id", ""),
        ids.get("board", ""),
        ids.get("licence", ""),
        ids.get("state", ""),
        module["moduleID"],
        module["value"],
        activity["CompletedDateTime"],
        credit["activityCertification"],
        credit["creditUnit"],
        credit["numberOfCredits"],
    ]


def _cebroker_row(registry: CeBrokerRegistry, record: CreditRecord) -> list[Any]:
    # CE Broker numbers its courses (`20-…`) when they are created; the office uploading by hand picks the
    # course, so the file names our activity and its title instead.
    entry = registry.attendee(record, course_id="")
    return [
        "delete" if record["status"] == REVOKED else "report",
        entry.external_ref,
        record["activity_id"],
        record["activity_title"],
        entry.license,
        entry.cebroker_state,
        entry.licensee_profession,
        entry.first_name,
        entry.last_name,
        entry.date_completed,
        entry.cd_subject_area,
        entry.hours,
    ]


def _write_xlsx(path: Path, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("records")
    sheet.append(list(columns))
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)


def _write_tsv(path: Path, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, delimiter="\t", lineterminator="\r\n")
        writer.writerow(columns)
        writer.writerows(rows)
