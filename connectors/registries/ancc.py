"""ANCC nursing contact hours to a CE Broker-style board: RN/NP/CNS learners by licence number + state +
profession code; one roster row per licensee, course and subject area (GENERAL for ANCC_CH, PHARMACOLOGY for
the pharmacotherapeutic portion ANCC_PHARM), hours as numbers, completion date MM/DD/YYYY.

The board refuses a row already reported. The connector treats that refusal as delivered when the row was
reported under this very `<record_id>:<version>` (a retry), and as a correction otherwise: withdraw the row
reported earlier, then report the new version. A revocation withdraws the row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.http import APIError, HttpClient
from connectors.registries.base import (
    AWARDED,
    REVOKED,
    CreditRecord,
    Failure,
    Receipt,
    RegistryEntry,
    check_call,
    failures,
    idempotency_key,
    rejected,
)

SUBJECT_AREAS = {"ANCC_CH": "GENERAL", "ANCC_PHARM": "PHARMACOLOGY"}
KEY_FIELDS = ("license_number", "license_state", "profession_code", "course_id", "subject_area")
ALREADY_REPORTED = "ALREADY_REPORTED"
NOTHING_HELD = "nothing-held"

Outcomes = dict[str, Receipt | Failure]
Row = dict[str, Any]


def row_for(record: CreditRecord) -> Row:
    learner = record["learner"]
    return {
        "external_ref": idempotency_key(record),
        "course_id": record["activity_id"],
        "course_name": record["activity_title"],
        "license_number": learner.get("licence_number"),
        "license_state": learner.get("licence_state"),
        "profession_code": learner.get("profession"),
        "first_name": learner.get("given_name"),
        "last_name": learner.get("family_name"),
        "subject_area": SUBJECT_AREAS.get(record["credit_type"]),
        "hours": float(record["amount"]),
        "completion_date": record["completed_on"].strftime("%m/%d/%Y"),
    }


def row_key(row: Mapping[str, Any]) -> Row:
    return {field: row.get(field) for field in KEY_FIELDS}


class AnccRegistry:
    professions = frozenset({"RN", "NP", "CNS"})

    def __init__(self, name: str, client: HttpClient, provider_id: str, page_size: int = 200) -> None:
        self.name = name
        self.client = client
        self.page_size = page_size
        self.base_path = f"/api/v1/providers/{provider_id}"

    def check(self) -> None:
        check_call(
            self.name, self.client.base_url, lambda: self.client.get_json(f"{self.base_path}/rows", {"limit": 1})
        )

    def accepts(self, record: CreditRecord) -> bool:
        learner = record["learner"]
        return (
            record["credit_type"] in SUBJECT_AREAS
            and learner.get("profession") in self.professions
            and bool(learner.get("licence_number") and learner.get("licence_state"))
        )

    def deliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]:
        return self._send(batch, replace=False)

    def redeliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]:
        return self._send(batch, replace=True)

    def withdraw(self, entries: Sequence[RegistryEntry]) -> list[Receipt | Failure]:
        records = [{"record_id": e.record_id, "version": e.version} for e in entries]
        rows = [row_key(e.raw) | {"external_ref": e.raw.get("external_ref")} for e in entries]
        outcomes = self._withdraw(records, rows)
        return [outcomes[idempotency_key(r)] for r in records]

    def holdings(self, since: datetime | None = None) -> Iterator[RegistryEntry]:
        params: dict[str, Any] = {"limit": self.page_size}
        if since is not None:
            params["changed_since"] = since.isoformat()
        while True:
            body = self.client.get_json(f"{self.base_path}/rows", params=params)
            for row in body["rows"]:
                yield _entry(row)
            if not body.get("next_cursor"):
                return
            params["cursor"] = body["next_cursor"]

    # -- the steps of one batch ----------------------------------------------------------------------------

    def _send(self, batch: Sequence[CreditRecord], replace: bool) -> list[Receipt | Failure]:
        revocations = [r for r in batch if r["status"] == REVOKED]
        awards = [r for r in batch if r["status"] == AWARDED]
        outcomes = self._withdraw(revocations, [row_for(r) for r in revocations])
        if replace:
            outcomes |= self._withdraw_then_report(awards)
        else:
            reported, corrections = self._report(awards)
            outcomes |= reported | self._withdraw_then_report(corrections)
        return [outcomes[idempotency_key(r)] for r in batch]

    def _withdraw_then_report(self, records: Sequence[CreditRecord]) -> Outcomes:
        """A correction: the row reported earlier is withdrawn, then this version is reported."""
        withdrawn = self._withdraw(records, [row_for(r) for r in records])
        outcomes = {key: outcome for key, outcome in withdrawn.items() if isinstance(outcome, Failure)}
        reported, refused = self._report([r for r in records if idempotency_key(r) not in outcomes])
        refusals = {idempotency_key(r): rejected(r, "row: still reported after its withdrawal") for r in refused}
        return outcomes | reported | refusals

    def _report(self, records: Sequence[CreditRecord]) -> tuple[Outcomes, list[CreditRecord]]:
        """Outcomes of reporting `records`, and the records refused because an earlier version is reported."""
        if not records:
            return {}, []
        try:
            results = self._post("rosters", [row_for(r) for r in records])
        except APIError as err:
            return {idempotency_key(r): f for r, f in zip(records, failures(records, err), strict=True)}, []
        outcomes: Outcomes = {}
        corrections: list[CreditRecord] = []
        for index, record in enumerate(records):
            result = results.get(index)
            key = idempotency_key(record)
            if result is None:
                outcomes[key] = rejected(record, "no result returned")
            elif result["status"] == "ACCEPTED" or _reported_as(result, key):
                outcomes[key] = Receipt(record["record_id"], record["version"], result["row_id"])
            elif result.get("code") == ALREADY_REPORTED:
                corrections.append(record)
            else:
                outcomes[key] = rejected(record, "; ".join(result.get("errors") or ["refused"]))
        return outcomes, corrections

    def _withdraw(self, records: Sequence[Mapping[str, Any]], rows: Sequence[Row]) -> Outcomes:
        if not records:
            return {}
        try:
            results = self._post(
                "withdrawals", [row_key(row) | {"external_ref": row.get("external_ref")} for row in rows]
            )
        except APIError as err:
            return {idempotency_key(r): f for r, f in zip(records, failures(records, err), strict=True)}
        outcomes: Outcomes = {}
        for index, record in enumerate(records):
            result = results.get(index) or {"status": "INVALID", "errors": ["no result returned"]}
            if result["status"] in ("WITHDRAWN", "NOT_FOUND"):
                receipt = result.get("row_id") or NOTHING_HELD
                outcomes[idempotency_key(record)] = Receipt(record["record_id"], record["version"], receipt)
            else:
                outcomes[idempotency_key(record)] = rejected(record, "withdrawal: " + "; ".join(result["errors"]))
        return outcomes

    def _post(self, resource: str, rows: list[Row]) -> dict[int, dict[str, Any]]:
        body = self.client.post_json(f"{self.base_path}/{resource}", {"rows": rows})
        return {result["index"]: result for result in body["results"]}


def _reported_as(result: Mapping[str, Any], key: str) -> bool:
    """A refusal of a row already reported under this very reference: a retry, so delivered."""
    return result.get("code") == ALREADY_REPORTED and result.get("reported_ref") == key


def _entry(row: Mapping[str, Any]) -> RegistryEntry:
    """A row in our terms; a row not reported under a `<record_id>:<version>` reference is nobody we know."""
    record_id, _, version = str(row.get("external_ref") or "").rpartition(":")
    if not (record_id and version.isdigit()):
        record_id, version = f"row:{row['row_id']}", "0"
    return RegistryEntry(
        record_id,
        int(version),
        AWARDED if row["status"] == "ACTIVE" else REVOKED,
        row,
        Decimal(str(row["hours"])).quantize(Decimal("0.01")),
        datetime.strptime(row["completion_date"], "%m/%d/%Y").date(),
    )
