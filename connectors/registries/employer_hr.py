"""Employer HR: every credit of the employer's staff, whatever its type, to the employer's HR system.

Staff come from a roster file (employee id with NPI and/or licence number + state). Credits go two ways:
a signed webhook (HMAC-SHA256, see `HmacSigner`), which is also where the nightly diff reads holdings back, and
a nightly CSV export file for HR systems that import files. Each event carries `<record_id>:<version>` as its
event id, so a retried webhook is a duplicate, and the export holds each event id once.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import hmac
import io
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field
from requests import PreparedRequest
from requests.auth import AuthBase

from connectors.config import SAMPLE_DIR, ConfigError, RegistryBaseConfig, Wiring, registry_kind, secret
from connectors.http import APIError, HttpClient
from connectors.registries.base import (
    CreditRecord,
    Failure,
    HttpRegistry,
    Receipt,
    RegistryEntry,
    failures,
    idempotency_key,
    rejected,
)
from connectors.registries.hr_at_risk import AtRiskNotice, NoticeResult, send_notices
from reconcile.certificate_ids import certificate_id
from reconcile.vocabulary import AWARDED, REGISTRY_UNAVAILABLE, REVOKED

WEBHOOK_PATH = "/v1/webhooks/cme-credits"
EVENT_TYPES = {AWARDED: "credit.awarded", REVOKED: "credit.revoked"}
ROSTER_COLUMNS = ("employee_id", "npi", "licence_number", "licence_state")


class RosterError(ValueError):
    """The roster file is unusable; the message names the file, line and column, never a value."""


@dataclass(frozen=True)
class Roster:
    """Who the employer's staff are: employee ids by NPI and by (licence number, licence state)."""

    by_npi: Mapping[str, str]
    by_licence: Mapping[tuple[str, str], str]

    @classmethod
    def load(cls, path: Path) -> Roster:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise RosterError(f"roster {path}: cannot be read ({type(err).__name__})") from None
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in ROSTER_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise RosterError(f"roster {path}: missing column(s) {', '.join(missing)}")
        by_npi: dict[str, str] = {}
        by_licence: dict[tuple[str, str], str] = {}
        for row in reader:
            employee_id = (row["employee_id"] or "").strip()
            npi = (row["npi"] or "").strip()
            licence = ((row["licence_number"] or "").strip(), (row["licence_state"] or "").strip().upper())
            if not employee_id or not (npi or all(licence)):
                raise RosterError(f"roster {path} line {reader.line_num}: needs employee_id and an NPI or a licence")
            if npi:
                by_npi[npi] = employee_id
            if all(licence):
                by_licence[licence] = employee_id
        return cls(by_npi, by_licence)

    def employee_id(self, learner: Mapping[str, Any]) -> str | None:
        if learner.get("npi") in self.by_npi:
            return self.by_npi[learner["npi"]]
        licence = (learner.get("licence_number") or "", (learner.get("licence_state") or "").upper())
        return self.by_licence.get(licence)

    @property
    def employee_ids(self) -> frozenset[str]:
        return frozenset(self.by_npi.values()) | frozenset(self.by_licence.values())


class HmacSigner(AuthBase):
    """Signs every attempt afresh (requests calls auth per send, so a retry gets a new timestamp):
    `X-CME-Timestamp` = Unix seconds, `X-CME-Signature` = "sha256=" + HMAC-SHA256(secret,
    "<timestamp>.<METHOD>.<path>." + body). The timestamp is signed, so the receiver can refuse replays."""

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret.encode()
        self._clock = clock

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        timestamp = str(int(self._clock()))
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        path = urlsplit(request.url or "").path
        signed = f"{timestamp}.{request.method}.{path}.".encode() + body
        request.headers["X-CME-Timestamp"] = timestamp
        request.headers["X-CME-Signature"] = "sha256=" + hmac.new(self._secret, signed, hashlib.sha256).hexdigest()
        return request


class CsvExport:
    """One CSV file per night in `directory`; rows are added once per event id, the file replaced atomically,
    so a rerun of the night (or a retried batch) never writes a row twice."""

    columns = (
        "event_id",
        "employee_id",
        "record_id",
        "version",
        "status",
        "credit_type",
        "amount",
        "completed_on",
        "activity_id",
        "activity_title",
        "accreditor",
    )

    def __init__(self, directory: Path, prefix: str, today: Callable[[], date] = lambda: datetime.now(UTC).date()):
        self.directory = directory
        self.prefix = prefix
        self._today = today

    def path(self) -> Path:
        return self.directory / f"{self.prefix}-{self._today().isoformat()}.csv"

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        path = self.path()
        self.directory.mkdir(parents=True, exist_ok=True)
        # Read, merge and replace under an exclusive lock on a file beside it: two writers (the stream's
        # delivery pump and a nightly run, say) would otherwise each drop the other's new rows.
        with open(path.with_name(f"{path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._merge(path, rows)

    def _merge(self, path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
        existing: list[dict[str, str]] = []
        if path.exists():
            existing = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
        seen = {row["event_id"] for row in existing}
        fresh: dict[str, Mapping[str, Any]] = {}
        for row in rows:
            if row["event_id"] not in seen:
                fresh.setdefault(row["event_id"], row)
        if not fresh and path.exists():
            return
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows([*existing, *({c: row[c] for c in self.columns} for row in fresh.values())])
        # A temporary name of this writer's own, so no other writer can replace or remove it under us.
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(handle, 0o644)  # mkstemp makes it private; the HR import reads it as the old file was read
            with os.fdopen(handle, "w", encoding="utf-8") as tmp:
                tmp.write(out.getvalue())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class EmployerHrRegistry(HttpRegistry):
    holdings_path = "/v1/credits"
    holdings_key = "credits"

    def __init__(
        self, name: str, client: HttpClient, roster: Roster, export: CsvExport | None = None, page_size: int = 200
    ) -> None:
        super().__init__(name, client, page_size)
        self.roster = roster
        self.export = export

    def accepts(self, record: CreditRecord) -> bool:
        return self.roster.employee_id(record["learner"]) is not None

    def withdraw(self, entries: Sequence[RegistryEntry]) -> list[Receipt | Failure]:
        records = [e.as_record() for e in entries]
        try:
            results = self._post([_withdrawal(e.record_id) for e in entries])
        except APIError as err:
            return failures(records, err)
        return [
            Receipt(r["record_id"], r["version"], result["outcome"])
            if result["outcome"] in ("withdrawn", "nothing_held")
            else rejected(r, str(result.get("error")))
            for r, result in zip(records, results, strict=True)
        ]

    def send_at_risk(self, notices: Sequence[AtRiskNotice], batch_size: int) -> list[NoticeResult]:
        """At-risk notices of this employer's staff (`hr_at_risk`), signed like the credit events."""
        return send_notices(self.client, notices, batch_size)

    def _send(self, batch: Sequence[CreditRecord], replace: bool) -> list[Receipt | Failure]:
        events = [self.event(record) for record in batch]
        # Withdrawals first, in the same request: the HR system applies events in order.
        clearing = [_withdrawal(r["record_id"]) for r in batch] if replace else []
        try:
            results = self._post([*clearing, *events])[len(clearing) :]
        except APIError as err:
            return failures(batch, err)
        outcomes: list[Receipt | Failure] = []
        for record, result in zip(batch, results, strict=True):
            if result["outcome"] in ("applied", "duplicate"):
                outcomes.append(Receipt(record["record_id"], record["version"], result["receipt_id"]))
            else:
                outcomes.append(rejected(record, f"{result['outcome']}: {result.get('error')}"))
        return self._exported(batch, events, outcomes)

    def _exported(
        self, batch: Sequence[CreditRecord], events: list[dict[str, Any]], outcomes: list[Receipt | Failure]
    ) -> list[Receipt | Failure]:
        """Receipts stand only once the export file holds the event too; a failed write makes them
        REGISTRY_UNAVAILABLE, which the next run sends again by itself (`retry_delays`, pipeline/stages/deliver.py)."""
        if self.export is None:
            return outcomes
        delivered = [event for event, outcome in zip(events, outcomes, strict=True) if isinstance(outcome, Receipt)]
        try:
            self.export.add(delivered)
        except OSError as err:
            message = f"export file: {type(err).__name__}"
            return [
                Failure(r["record_id"], r["version"], REGISTRY_UNAVAILABLE, message) if isinstance(o, Receipt) else o
                for r, o in zip(batch, outcomes, strict=True)
            ]
        return outcomes

    def event(self, record: CreditRecord) -> dict[str, Any]:
        # The certificate `cmesync certificates` renders for an awarded credit, by reference (no PII in it).
        certificate = (
            {"certificate_id": certificate_id(record["learner_id"], record["activity_id"], record["credit_type"])}
            if record["status"] == AWARDED
            else {}
        )
        return {
            "event_id": idempotency_key(record),
            "type": EVENT_TYPES[record["status"]],
            "employee_id": self.roster.employee_id(record["learner"]),
            "record_id": record["record_id"],
            "version": record["version"],
            "status": record["status"],
            "credit_type": record["credit_type"],
            "amount": f"{record['amount']:.2f}",
            "completed_on": record["completed_on"].isoformat(),
            "activity_id": record["activity_id"],
            "activity_title": record["activity_title"],
            "accreditor": record["accreditor"],
        } | certificate

    def _post(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = self.client.post_json(WEBHOOK_PATH, {"events": events})["results"]
        if len(results) != len(events):
            raise ValueError(f"HR endpoint answered {len(results)} results for {len(events)} events")
        return results


def _withdrawal(record_id: str) -> dict[str, Any]:
    return {"type": "credit.withdrawn", "record_id": record_id}


@registry_kind
class EmployerHrConfig(RegistryBaseConfig):
    kind: Literal["employer_hr"] = "employer_hr"
    # A repair sends a withdrawal and the credit per record, and the endpoint takes 500 events per request.
    batch_size: int = Field(100, ge=1, le=250, description="Credit records per webhook call.")
    hmac_secret: str = ""
    hmac_secret_env: str | None = None
    roster_path: Path = Field(SAMPLE_DIR / "hr_roster.csv", description="employee_id,npi,licence_number,licence_state")
    export_dir: Path | None = Field(None, description="Where the nightly CSV export files go; unset = no export.")
    at_risk_notices: bool = Field(
        False, description="Send the nightly at-risk compliance list of the roster's staff as signed notices."
    )

    def secret(self) -> str:
        return secret(self.hmac_secret_env, self.hmac_secret, f"registry {self.name} HMAC secret")

    def build(self, wiring: Wiring) -> EmployerHrRegistry:
        try:
            roster = Roster.load(self.roster_path)
        except RosterError as err:
            raise ConfigError(f"registry {self.name}: {err}") from None
        export = CsvExport(self.export_dir, self.name) if self.export_dir else None
        client = self.client(wiring, auth=HmacSigner(self.secret()))
        return EmployerHrRegistry(self.name, client, roster, export, self.page_size)
