"""An ANCC nursing contact-hour registry in the manner of a CE Broker-style state board (DESIGN §7).

Its own vocabulary, on purpose a different shape from the AMA registry: a provider reports roster *rows*, one
per licensee, course and subject area, keyed by licence number + state + profession code; hours are JSON
numbers by subject area (GENERAL contact hours, PHARMACOLOGY for the pharmacotherapeutic portion); the
completion date is US style MM/DD/YYYY. A row already reported (an ACTIVE row with the same key) is refused
with ALREADY_REPORTED and the reference it was reported under; a correction withdraws the row and reports again.
Rows carry the provider's `external_ref`, which the registry echoes back in its listing.

Routes (header `X-Api-Key`; the key is valid for one provider id):
    POST /api/v1/providers/{provider}/rosters       {"rows": [row, ...]}
    POST /api/v1/providers/{provider}/withdrawals   {"rows": [row key + external_ref, ...]}
    GET  /api/v1/providers/{provider}/rows          ?changed_since=&limit=&cursor=
Refusals name the field and the rule, never the value.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from deploy.sandbox.base import HttpError, Request, Response, SandboxServer, utc_now_ms
from deploy.sandbox.paging import HoldingStore, KeysetPager

PROFESSION_CODES = ("RN", "NP", "CNS")
SUBJECT_AREAS = {"GENERAL": PROFESSION_CODES, "PHARMACOLOGY": ("NP", "CNS")}
_STATE_CODES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI"
)
STATES = frozenset(_STATE_CODES.split())
MAX_ROWS = 500
MAX_HOURS = Decimal("99.99")
KEY_FIELDS = ("license_number", "license_state", "profession_code", "course_id", "subject_area")
ROW_FIELDS = ("external_ref", "course_name", "first_name", "last_name", "hours", "completion_date", *KEY_FIELDS)
ACTIVE = "ACTIVE"
WITHDRAWN = "WITHDRAWN"

_LICENCE = re.compile(r"[A-Z0-9][A-Z0-9-]{2,19}")
_US_DATE = re.compile(r"[0-9]{2}/[0-9]{2}/[0-9]{4}")

Row = dict[str, Any]
RowKey = tuple[str, ...]


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def key_errors(row: Row) -> list[str]:
    """The rules on the fields that identify a row (reporting and withdrawal both need them)."""
    errors = []
    if not (isinstance(row.get("license_number"), str) and _LICENCE.fullmatch(row["license_number"])):
        errors.append("license_number: must be 3-20 upper-case letters, digits or '-' as the board lists it")
    if row.get("license_state") not in STATES:
        errors.append("license_state: must be a US state or territory code")
    if row.get("profession_code") not in PROFESSION_CODES:
        errors.append(f"profession_code: must be one of {', '.join(PROFESSION_CODES)}")
    if not _is_text(row.get("course_id")):
        errors.append("course_id: must be a non-empty string")
    if row.get("subject_area") not in SUBJECT_AREAS:
        errors.append(f"subject_area: must be one of {', '.join(SUBJECT_AREAS)}")
    return errors


class RowValidator:
    def __init__(self, today: Callable[[], date]) -> None:
        self._today = today

    def errors(self, row: Any) -> list[str]:
        if not isinstance(row, dict):
            return ["row: must be a JSON object"]
        errors = [
            f"{name}: must be a non-empty string"
            for name in ("external_ref", "course_name", "first_name", "last_name")
            if not _is_text(row.get(name))
        ]
        errors += key_errors(row)
        if not errors and row["profession_code"] not in SUBJECT_AREAS[row["subject_area"]]:
            errors.append("subject_area: PHARMACOLOGY hours are reported for NP and CNS only")
        errors += self._hours(row.get("hours"))
        errors += self._completion_date(row.get("completion_date"))
        return errors

    @staticmethod
    def _hours(hours: Any) -> list[str]:
        if not isinstance(hours, int | float) or isinstance(hours, bool):
            return ["hours: must be a number"]
        try:
            value = Decimal(str(hours))
        except InvalidOperation:
            return ["hours: must be a number"]
        if value != value.quantize(Decimal("0.01")) or not Decimal(0) < value <= MAX_HOURS:
            return [f"hours: must be > 0 and <= {MAX_HOURS} with at most 2 decimals"]
        return []

    def _completion_date(self, text: Any) -> list[str]:
        if not (isinstance(text, str) and _US_DATE.fullmatch(text)):
            return ["completion_date: must be MM/DD/YYYY"]
        try:
            completed = datetime.strptime(text, "%m/%d/%Y").date()
        except ValueError:
            return ["completion_date: must be MM/DD/YYYY"]
        if completed > self._today():
            return ["completion_date: must not be in the future"]
        return []


def row_key(row: Row) -> RowKey:
    return tuple(str(row[field]) for field in KEY_FIELDS)


def _rows(request: Request) -> list[Any]:
    body = request.json()
    rows = body.get("rows") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise HttpError(400, 'body must be {"rows": [row, ...]}')
    if len(rows) > MAX_ROWS:
        raise HttpError(400, f"at most {MAX_ROWS} rows per request")
    return rows


class AnccRegistry(SandboxServer):
    """Roster rows reported, withdrawn and listed per provider, behind an API key."""

    name = "ancc-registry"
    state_attrs = ("reported", "_rows", "_active", "_ids")

    def __init__(
        self,
        api_key: str = "ancc-demo-key",
        provider_id: str = "CEP-1001",
        port: int = 0,
        today: Callable[[], date] = date.today,
    ) -> None:
        super().__init__(port)
        self.api_key = api_key
        self.provider_id = provider_id
        self.reported: list[Row] = []  # every accepted row, in order: proves nothing was reported twice
        self._validator = RowValidator(today)
        self._pager = KeysetPager(
            "changed_at", "row_id", since_param="changed_since", size_param="limit", token_param="cursor"
        )
        self._lock = threading.Lock()
        self._rows = HoldingStore()
        self._active: dict[RowKey, str] = {}  # row key -> id of its ACTIVE row
        self._ids = itertools.count(1)
        base = r"/api/v1/providers/(?P<provider>[^/]+)"
        self.route("POST", f"{base}/rosters", self._post_rosters)
        self.route("POST", f"{base}/withdrawals", self._post_withdrawals)
        self.route("GET", f"{base}/rows", self._get_rows)

    # -- helpers for tests -----------------------------------------------------------------------------------

    def rows(self) -> dict[str, Row]:
        """A copy of every row, withdrawn ones included, by row id."""
        with self._lock:
            return {row_id: dict(row) for row_id, row in self._rows.items()}

    def active_rows(self) -> dict[str, Row]:
        """A copy of the ACTIVE rows by the external reference they were reported under."""
        with self._lock:
            return {row["external_ref"]: dict(row) for row in self._rows.values() if row["status"] == ACTIVE}

    def remove(self, row_id: str) -> None:
        """Delete a row outright, as a board operator would."""
        with self._lock:
            row = self._rows.pop(row_id)
            if self._active.get(row_key(row)) == row_id:
                del self._active[row_key(row)]

    def alter(self, row_id: str, **fields: Any) -> None:
        """Tamper with a row in place (drift for the nightly diff to find); KeyError if unknown. A changed
        status or key is indexed as the board would: the row is then found (or not) by its new key."""
        with self._lock:
            row = self._rows[row_id]
            if self._active.get(row_key(row)) == row_id:
                del self._active[row_key(row)]
            row = self._rows.amend(row_id, fields)
            if row["status"] == ACTIVE:
                self._active[row_key(row)] = row_id

    def put(self, row: Row) -> str:
        """Hold an ACTIVE row nobody reported through the API (a manual entry at the board)."""
        with self._lock:
            return self._store(dict(row))

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _authorise(self, request: Request) -> None:
        if request.headers.get("x-api-key") != self.api_key:
            raise HttpError(401, "missing or wrong X-Api-Key")
        if request.match["provider"] != self.provider_id:
            raise HttpError(403, "this API key is not valid for that provider")

    def _post_rosters(self, request: Request) -> Response:
        self._authorise(request)
        rows = _rows(request)
        with self._lock:
            results = [self._report(index, row) for index, row in enumerate(rows)]
        return Response(200, {"results": results})

    def _post_withdrawals(self, request: Request) -> Response:
        self._authorise(request)
        rows = _rows(request)
        with self._lock:
            results = [self._withdraw(index, row) for index, row in enumerate(rows)]
        return Response(200, {"results": results})

    def _get_rows(self, request: Request) -> Response:
        self._authorise(request)
        with self._lock:
            page, cursor = self._pager.page(self._rows, request)
        return Response(200, {"rows": page, "next_cursor": cursor})

    # -- per-row semantics (called with the lock held) ----------------------------------------------------------

    def _report(self, index: int, row: Any) -> dict[str, Any]:
        ref = row.get("external_ref") if isinstance(row, dict) else None
        result: dict[str, Any] = {"index": index, "external_ref": ref if isinstance(ref, str) else None}
        if errors := self._validator.errors(row):
            return result | {"status": "REFUSED", "code": "INVALID", "errors": errors}
        active_id = self._active.get(row_key(row))
        if active_id is not None:
            reported = self._rows[active_id]
            return result | {
                "status": "REFUSED",
                "code": "ALREADY_REPORTED",
                "errors": ["row: already reported for this licensee, course and subject area"],
                "row_id": active_id,
                "reported_ref": reported["external_ref"],
            }
        row_id = self._store({name: row[name] for name in ROW_FIELDS})
        self.reported.append(dict(self._rows[row_id]))
        return result | {"status": "ACCEPTED", "row_id": row_id}

    def _withdraw(self, index: int, row: Any) -> dict[str, Any]:
        result: dict[str, Any] = {"index": index}
        if not isinstance(row, dict):
            return result | {"status": "INVALID", "errors": ["row: must be a JSON object"]}
        if errors := key_errors(row):
            return result | {"status": "INVALID", "errors": errors}
        active_id = self._active.pop(row_key(row), None)
        if active_id is None:
            return result | {"status": "NOT_FOUND"}
        withdrawn = {"status": WITHDRAWN, "changed_at": utc_now_ms(), "withdrawn_ref": row.get("external_ref")}
        self._rows.amend(active_id, withdrawn)
        return result | {"status": WITHDRAWN, "row_id": active_id}

    def _store(self, row: Row) -> str:
        row_id = f"R{next(self._ids):07d}"
        now = utc_now_ms()
        self._rows[row_id] = {"status": ACTIVE, **row, "row_id": row_id, "reported_at": now, "changed_at": now}
        self._active[row_key(self._rows[row_id])] = row_id
        return row_id
