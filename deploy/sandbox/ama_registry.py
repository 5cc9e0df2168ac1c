"""An AMA PRA-style physician credit registry, modelled on ACCME PARS where it matters (DESIGN §7).

- An activity must be registered (`POST /v1/activities`) before learners are reported against it.
- Learner records arrive as PARS learner reports in the draft `ACCMELearnerReports` shape (`pars_reports`):
  `POST /v1/saveLearnerActivity` adds, `POST /v1/deleteLearnerActivity` deletes; there is no update. Each report
  is idempotent on its `CreditID` (`ccid:<record_id>:<version>`), so a retried batch never creates a second one.
- The board decides later: `POST /v1/getLearnerStatus` answers Pending, Accepted, Rejected (with the board's
  reason), Deleted or NotFound per CreditID; a rejected record no longer counts and may be added again.
- The flat routes below (`/v1/credits`, `/v1/revocations`, `/v1/deletions`) are the sandbox's earlier invented
  protocol, kept for the tests of the shared rules; the connector no longer uses them.
- Flat credits (`POST /v1/credits`): each item is idempotent on its own key `<record_id>:<version>`.
- Records cannot be edited: a record already held and awarded is refused until it is deleted
  (`POST /v1/deletions`); a correction is delete + resubmit.
- A revocation is its own call (`POST /v1/revocations`): the holding is kept on record, marked REVOKED.
- Completion dates are dates; reports older than the previous calendar year are refused (`years_back`), and
  with `year_close` ("MM-DD") the previous year too once that day of the current year has passed.

Rejections name the field and the rule, never the value (it may be PII). The registry keeps one holding per
record and serves the holdings back, paged, for the nightly diff.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from deploy.sandbox import pars_reports
from deploy.sandbox.base import HttpError, Request, Response, SandboxServer, require_bearer, utc_now_ms
from deploy.sandbox.paging import HoldingStore, KeysetPager

CREDIT_TYPES = ("AMA_PRA_1", "AMA_PRA_2", pars_reports.MOC)
MAX_BATCH = 500
MAX_AMOUNT = Decimal("999.99")
NPI_PREFIX = "80840"  # CMS: the check digit is computed as if the NPI carried the card-issuer prefix 80840

_AMOUNT = re.compile(r"[0-9]{1,3}(\.[0-9]{1,2})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH_DAY = re.compile(r"[0-9]{2}-[0-9]{2}")
_NPI = re.compile(r"[0-9]{10}")

Item = dict[str, Any]
# What a delete report must carry: the action and the CreditID naming the learner record.
_DELETE_FIELDS = frozenset({"XtensibleInfo.LearnerRecordAction", "CreditID", "ActivityReport"})


def luhn_check_digit(digits: str) -> int:
    """The Luhn digit to append to `digits` (every second digit doubled, counting from the right)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return (10 - total % 10) % 10


def npi_is_valid(npi: str) -> bool:
    return bool(_NPI.fullmatch(npi)) and luhn_check_digit(NPI_PREFIX + npi[:9]) == int(npi[9])


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_version(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _keyed_errors(item: Item) -> list[str]:
    """Rules shared by credits and revocations: record id, version and the `<record_id>:<version>` key."""
    errors = [] if _is_text(item.get("record_id")) else ["record_id: must be a non-empty string"]
    if not _is_version(item.get("version")):
        errors.append("version: must be an integer >= 1")
    key = item.get("idempotency_key")
    if not _is_text(key):
        errors.append("idempotency_key: must be a non-empty string")
    elif key != f"{item.get('record_id')}:{item.get('version')}":
        errors.append("idempotency_key: must be '<record_id>:<version>'")
    return errors


class CreditItemValidator:
    """The registry's per-item rules; `errors` returns "field: rule" strings, empty when the item is valid."""

    def __init__(self, today: Callable[[], date], years_back: int = 1, year_close: str | None = None) -> None:
        self._today = today
        self._years_back = years_back
        self._year_close = year_close  # "MM-DD": the previous year is refused after that day (ACCME FAQ: 03-31)

    def errors(self, item: Any) -> list[str]:
        if not isinstance(item, dict):
            return ["item: must be a JSON object"]
        errors = [
            f"{name}: must be a non-empty string"
            for name in ("first_name", "last_name", "activity_id", "activity_title")
            if not _is_text(item.get(name))
        ]
        errors += _keyed_errors(item)
        if item.get("status") != "AWARDED":
            errors.append("status: must be AWARDED (revocations go to /v1/revocations)")
        errors += self._identity(item)
        errors += self._dob(item.get("dob_month_day"))
        if item.get("credit_type") not in CREDIT_TYPES:
            errors.append("credit_type: must be AMA_PRA_1 or AMA_PRA_2")
        errors += self._amount(item.get("amount"))
        errors += self._completed_on(item.get("completed_on"))
        return errors

    @staticmethod
    def _identity(item: Item) -> list[str]:
        npi, board_id = item.get("npi"), item.get("board_id")
        errors: list[str] = []
        if npi is None and board_id is None:
            errors.append("npi: npi or board_id is required")
        if npi is not None and not (isinstance(npi, str) and _NPI.fullmatch(npi)):
            errors.append("npi: must be 10 digits")
        elif npi is not None and not npi_is_valid(npi):
            errors.append("npi: fails the NPI check digit")
        if board_id is not None and not _is_text(board_id):
            errors.append("board_id: must be a non-empty string")
        return errors

    @staticmethod
    def _dob(month_day: Any) -> list[str]:
        if month_day is None:
            return []
        if isinstance(month_day, str) and _MONTH_DAY.fullmatch(month_day):
            try:
                date.fromisoformat(f"2000-{month_day}")  # a leap year, so 02-29 is a real birthday
                return []
            except ValueError:
                pass
        return ["dob_month_day: must be a real month and day as MM-DD"]

    @staticmethod
    def _amount(amount: Any) -> list[str]:
        if not (isinstance(amount, str) and _AMOUNT.fullmatch(amount)):
            return ["amount: must be a decimal string with at most 2 decimals"]
        if not Decimal(0) < Decimal(amount) <= MAX_AMOUNT:
            return [f"amount: must be > 0 and <= {MAX_AMOUNT}"]
        return []

    def _completed_on(self, completed_on: Any) -> list[str]:
        if not (isinstance(completed_on, str) and _DATE.fullmatch(completed_on)):
            return ["completed_on: must be a date YYYY-MM-DD"]
        try:
            completed = date.fromisoformat(completed_on)
        except ValueError:
            return ["completed_on: must be a date YYYY-MM-DD"]
        today = self._today()
        if completed > today:
            return ["completed_on: must not be in the future"]
        if (
            self._year_close
            and completed.year == today.year - 1
            and today > date.fromisoformat(f"{today.year}-{self._year_close}")
        ):
            return [f"completed_on: reporting year {completed.year} closed on {self._year_close} of the next year"]
        if completed < date(today.year - self._years_back, 1, 1):
            if self._years_back == 1:
                return ["completed_on: must not be before 1 January of the previous calendar year"]
            return [f"completed_on: must not be before 1 January, {self._years_back} calendar years ago"]
        return []


def revocation_errors(item: Any) -> list[str]:
    if not isinstance(item, dict):
        return ["item: must be a JSON object"]
    return _keyed_errors(item)


def deletion_errors(item: Any) -> list[str]:
    if not isinstance(item, dict):
        return ["item: must be a JSON object"]
    errors = [] if _is_text(item.get("record_id")) else ["record_id: must be a non-empty string"]
    if not _is_version(item.get("versions_below")):
        errors.append("versions_below: must be an integer >= 1")
    return errors


def activity_errors(item: Any) -> list[str]:
    if not isinstance(item, dict):
        return ["item: must be a JSON object"]
    return [f"{name}: must be a non-empty string" for name in ("activity_id", "title") if not _is_text(item.get(name))]


def _outcome(key: Any, outcome: str, receipt_id: str | None = None, error: str | None = None) -> dict[str, Any]:
    return {
        "idempotency_key": key if isinstance(key, str) else None,
        "outcome": outcome,
        "receipt_id": receipt_id,
        "error": error,
    }


def _report_outcome(
    credit_id: str | None, outcome: str, receipt_id: str | None = None, error: str | None = None
) -> dict[str, Any]:
    return {"CreditID": credit_id, "outcome": outcome, "receipt_id": receipt_id, "error": error}


def _learner_reports(request: Request) -> list[Any]:
    """The `ActivityReport` list of an `ACCMELearnerReports` body; any other shape is refused whole (400)."""
    body = request.json()
    wrapper = body.get("ACCMELearnerReports") if isinstance(body, dict) else None
    batch = wrapper.get("ActivityReports") if isinstance(wrapper, dict) else None
    reports = batch.get("ActivityReport") if isinstance(batch, dict) else None
    if not isinstance(reports, list):
        raise HttpError(400, 'body must be {"ACCMELearnerReports": {"ActivityReports": {"ActivityReport": [...]}}}')
    if len(reports) > MAX_BATCH:
        raise HttpError(400, f"at most {MAX_BATCH} learner reports per request")
    return reports


def _items(request: Request, field: str) -> list[Any]:
    body = request.json()
    items = body.get(field) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise HttpError(400, f'body must be {{"{field}": [item, ...]}}')
    if len(items) > MAX_BATCH:
        raise HttpError(400, f"at most {MAX_BATCH} {field} per request")
    return items


class AmaPraRegistry(SandboxServer):
    """Activities, credits, revocations and deletions (batched, bearer token) and paged holdings."""

    name = "ama-pra-registry"
    state_attrs = (
        "accepted",
        "learner_actions",
        "status_polls",
        "_activities",
        "_holdings",
        "_receipts",
        "_keys_by_record",
        "_undecided",
    )

    def __init__(
        self,
        token: str = "ama-demo-token",
        port: int = 0,
        today: Callable[[], date] = date.today,
        years_back: int = 1,
        decision_polls: int = 1,
        year_close: str | None = None,
    ) -> None:
        super().__init__(port)
        self.token = token
        # The board decides on the `decision_polls`-th status query of a record (until then it is pending):
        # PARS's "within 24 hours", made deterministic. It rejects the ids in `board_rejects` (id → reason).
        self.decision_polls = decision_polls
        self.board_rejects: dict[str, str] = {}
        self.status_polls = 0
        self._undecided: dict[str, int] = {}  # CreditID → status queries seen while pending
        self.accepted: list[Item] = []  # every accepted credit and revocation, in order: nothing accepted twice
        self.learner_actions: list[tuple[str, str]] = []  # (add | delete, CreditID) of every report taken, in order
        self._validator = CreditItemValidator(today, years_back, year_close)
        self._pager = KeysetPager("received_at", "record_id")
        self._lock = threading.Lock()
        self._activities: dict[str, Item] = {}
        self._holdings = HoldingStore()
        self._receipts: dict[str, str] = {}  # idempotency key -> receipt id of its first acceptance
        self._keys_by_record: defaultdict[str, set[str]] = defaultdict(set)
        self.route("POST", "/v1/activities", self._post_activities)
        self.route("POST", "/v1/credits", self._post_credits)
        self.route("POST", "/v1/revocations", self._post_revocations)
        self.route("POST", "/v1/deletions", self._post_deletions)
        self.route("POST", "/v1/saveLearnerActivity", self._save_learner_activity)
        self.route("POST", "/v1/deleteLearnerActivity", self._delete_learner_activity)
        self.route("POST", "/v1/getLearnerStatus", self._get_learner_status)
        self.route("GET", "/v1/holdings", self._get_holdings)

    # -- helpers for tests -----------------------------------------------------------------------------------

    def holdings(self) -> dict[str, Item]:
        """A copy of what the registry holds, by record_id."""
        with self._lock:
            return {record_id: dict(holding) for record_id, holding in self._holdings.items()}

    def activities(self) -> dict[str, Item]:
        with self._lock:
            return {activity_id: dict(activity) for activity_id, activity in self._activities.items()}

    def lose_everything(self) -> None:
        """Come back from a restart empty (no backup restored): activities, holdings and receipts are gone, so
        are the test's records of what was accepted (nothing accepted before counts twice after)."""
        with self._lock:
            self.accepted.clear()
            self.learner_actions.clear()
            self._undecided.clear()
            self._activities.clear()
            self._holdings.clear()
            self._receipts.clear()
            self._keys_by_record.clear()

    def remove(self, record_id: str) -> None:
        """Delete a holding as a registry operator would: its keys are forgotten, so a resubmission is accepted."""
        with self._lock:
            self._delete(record_id)

    def alter(self, record_id: str, **fields: Any) -> None:
        """Tamper with a holding in place (drift for the nightly diff to find); KeyError if not held."""
        with self._lock:
            self._holdings.amend(record_id, fields)

    def put(self, holding: Item) -> None:
        """Hold an entry nobody delivered (an operator's manual entry), stamped as received now."""
        with self._lock:
            self._holdings[holding["record_id"]] = {"received_at": utc_now_ms(), **holding}

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _post_activities(self, request: Request) -> Response:
        require_bearer(request, self.token)
        items = _items(request, "activities")
        with self._lock:
            results = [self._register(item) for item in items]
        return Response(200, {"results": results})

    def _post_credits(self, request: Request) -> Response:
        items = self._keyed_batch(request, "credits")
        with self._lock:
            results = [self._submit(item) for item in items]
        return Response(200, {"results": results})

    def _post_revocations(self, request: Request) -> Response:
        items = self._keyed_batch(request, "revocations")
        with self._lock:
            results = [self._revoke(item) for item in items]
        return Response(200, {"results": results})

    def _post_deletions(self, request: Request) -> Response:
        items = self._keyed_batch(request, "deletions")
        with self._lock:
            results = [self._delete_below(item) for item in items]
        return Response(200, {"results": results})

    def _save_learner_activity(self, request: Request) -> Response:
        require_bearer(request, self.token)
        reports = _learner_reports(request)
        with self._lock:
            results = [self._add_report(report) for report in reports]
        return Response(200, {"results": results})

    def _delete_learner_activity(self, request: Request) -> Response:
        require_bearer(request, self.token)
        reports = _learner_reports(request)
        with self._lock:
            results = [self._delete_report(report) for report in reports]
        return Response(200, {"results": results})

    def _get_learner_status(self, request: Request) -> Response:
        require_bearer(request, self.token)
        body = request.json()
        credit_ids = body.get("CreditID") if isinstance(body, dict) else None
        if not (isinstance(credit_ids, list) and all(isinstance(c, str) for c in credit_ids)):
            raise HttpError(400, 'body must be {"CreditID": ["ccid:…", ...]}')
        if len(credit_ids) > MAX_BATCH:
            raise HttpError(400, f"at most {MAX_BATCH} CreditIDs per request")
        with self._lock:
            self.status_polls += 1
            results = [self._status(credit_id) for credit_id in credit_ids]
        return Response(200, {"results": results})

    def _keyed_batch(self, request: Request, field: str) -> list[Any]:
        require_bearer(request, self.token)
        if not request.headers.get("idempotency-key"):
            raise HttpError(400, "Idempotency-Key header is required")
        return _items(request, field)

    def _get_holdings(self, request: Request) -> Response:
        require_bearer(request, self.token)
        with self._lock:
            page, next_token = self._pager.page(self._holdings, request)
        return Response(200, {"entries": page, "next_page_token": next_token})

    # -- per-item semantics (called with the lock held) ---------------------------------------------------------

    def _register(self, item: Any) -> dict[str, Any]:
        activity_id = item.get("activity_id") if isinstance(item, dict) else None
        result: dict[str, Any] = {"activity_id": activity_id if isinstance(activity_id, str) else None}
        if errors := activity_errors(item):
            return result | {"outcome": "rejected", "error": "; ".join(errors)}
        if activity_id in self._activities:
            return result | {"outcome": "already_registered", "error": None}
        self._activities[activity_id] = {"activity_id": activity_id, "title": item["title"]}
        return result | {"outcome": "registered", "error": None}

    def _submit(self, item: Any) -> dict[str, Any]:
        key = item.get("idempotency_key") if isinstance(item, dict) else None
        if isinstance(key, str) and key in self._receipts:
            return _outcome(key, "duplicate", receipt_id=self._receipts[key])
        errors = self._validator.errors(item)
        if not errors and item["activity_id"] not in self._activities:
            errors.append("activity_id: activity is not registered; register it before reporting learners")
        if errors:
            return _outcome(key, "rejected", error="; ".join(errors))
        held = self._holdings.get(item["record_id"])
        # A deleted entry at this very version is the first half of a correction or repair: the add may follow.
        if held is not None and (
            item["version"] < held["version"] or (item["version"] == held["version"] and held["status"] == "AWARDED")
        ):
            return _outcome(key, "rejected", error="version: stale version, must be above the version held")
        if held is not None and held["status"] == "AWARDED":
            return _outcome(key, "rejected", error="record_id: already reported; records cannot be edited, delete it")
        return _outcome(key, "accepted", receipt_id=self._accept(item, dict(item)))

    def _add_report(self, report: Any) -> dict[str, Any]:
        credit_id = pars_reports.credit_id_of(report)
        item, errors = pars_reports.flat_item(report, pars_reports.ADD)
        if errors:
            named = {e.partition(":")[0] for e in errors}
            rules = pars_reports.renamed(self._validator.errors(item))
            errors += [e for e in dict.fromkeys(rules) if e.partition(":")[0] not in named]
            return _report_outcome(credit_id, "rejected", error="; ".join(errors))
        if once := self._already_reported(item):
            return _report_outcome(credit_id, "rejected", error=once)
        result = self._submit(item | {"report": report})
        if result["outcome"] == "accepted":
            self.learner_actions.append((pars_reports.ADD, credit_id))
            self._undecided[str(credit_id)] = 0
        error = result["error"] and "; ".join(pars_reports.renamed(result["error"].split("; ")))
        return _report_outcome(credit_id, result["outcome"], result["receipt_id"], error)

    def _already_reported(self, item: Item) -> str | None:
        """ABP takes one report per learner and activity: another report of the same learner's MOC for the same
        activity, while one counts, is refused (a retry of the same report is a duplicate, not a second one)."""
        board = item.get("moc_board")
        if board not in pars_reports.ONCE_ONLY_BOARDS or item["idempotency_key"] in self._receipts:
            return None
        for held in self._holdings.values():
            if (held.get("moc_board"), held.get("board_id"), held.get("activity_id"), held.get("status")) == (
                board,
                item.get("board_id"),
                item["activity_id"],
                "AWARDED",
            ):
                return f"CreditCertificate.UniqueID[board]: {board} takes one report per learner and activity"
        return None

    def _delete_report(self, report: Any) -> dict[str, Any]:
        """PARS deletes learner records (revocations and the first half of a correction alike). The record the
        CreditID names, or an older version of it, is deleted and its keys forgotten; what is left is a deleted
        entry at that version (listed as REVOKED), so a stale add is still refused and a corrected one taken."""
        credit_id = pars_reports.credit_id_of(report)
        item, errors = pars_reports.flat_item(report, pars_reports.DELETE)
        errors = [e for e in errors if e.partition(":")[0] in _DELETE_FIELDS]
        if errors:
            return _report_outcome(credit_id, "rejected", error="; ".join(errors))
        held = self._holdings.get(item["record_id"])
        if held is not None and held["version"] > item["version"]:
            return _report_outcome(credit_id, "nothing_to_delete")
        if held is not None and held["status"] == "REVOKED" and held["version"] == item["version"]:
            return _report_outcome(credit_id, "duplicate", held.get("receipt_id"))
        if held is not None:
            self._delete(item["record_id"])
        deleted = (held or {}) | {k: item[k] for k in ("record_id", "version", "idempotency_key")}
        deleted |= {"status": "REVOKED", "report": report}
        receipt_id = str(uuid.uuid4())
        self.learner_actions.append((pars_reports.DELETE, credit_id))
        self._holdings[item["record_id"]] = {**deleted, "receipt_id": receipt_id, "received_at": utc_now_ms()}
        # Only an active record revoked by a later version counts as accepted; a deletion of what is held (a
        # correction, a repair) or of nothing registers no key, so the add that follows it is taken.
        if held is not None and held["status"] == "AWARDED" and held["version"] < item["version"]:
            self.accepted.append({**item, "receipt_id": receipt_id, "received_at": utc_now_ms()})
        return _report_outcome(credit_id, "deleted", receipt_id)

    def _status(self, credit_id: str) -> dict[str, Any]:
        """Where the board stands on one learner record; pending ones are decided on their `decision_polls`-th query."""
        record_id, _, version = credit_id.removeprefix("ccid:").rpartition(":")
        held = self._holdings.get(record_id)
        if held is None or str(held["version"]) != version:
            return {"CreditID": credit_id, "status": "NotFound", "reason": None}
        if held["status"] != "AWARDED":
            status = {"REVOKED": "Deleted", "REJECTED": "Rejected"}[held["status"]]
            return {"CreditID": credit_id, "status": status, "reason": held.get("rejection_reason")}
        if credit_id in self._undecided:
            self._undecided[credit_id] += 1
            if self._undecided[credit_id] < self.decision_polls:
                return {"CreditID": credit_id, "status": "Pending", "reason": None}
            del self._undecided[credit_id]
            reason = self._board_reason(held)
            if reason is not None:
                self._reject(record_id, reason)
                return {"CreditID": credit_id, "status": "Rejected", "reason": reason}
        return {"CreditID": credit_id, "status": "Accepted", "reason": None}

    def _board_reason(self, held: Item) -> str | None:
        ids = [held.get("npi"), held.get("board_id"), (held.get("licence") or {}).get("number")]
        return next((self.board_rejects[i] for i in ids if i in self.board_rejects), None)

    def _reject(self, record_id: str, reason: str) -> None:
        """The board's rejection: the record no longer counts (listed REJECTED) and its keys are forgotten, so
        the report can be sent again once the learner's data is fixed."""
        held = self._holdings[record_id]
        self._delete(record_id)
        self._holdings[record_id] = {**held, "status": "REJECTED", "rejection_reason": reason}

    def _revoke(self, item: Any) -> dict[str, Any]:
        key = item.get("idempotency_key") if isinstance(item, dict) else None
        if isinstance(key, str) and key in self._receipts:
            return _outcome(key, "duplicate", receipt_id=self._receipts[key])
        if errors := revocation_errors(item):
            return _outcome(key, "rejected", error="; ".join(errors))
        held = self._holdings.get(item["record_id"])
        if held is not None and item["version"] <= held["version"]:
            return _outcome(key, "rejected", error="version: stale version, must be above the version held")
        # What was awarded stays on record, marked REVOKED; with nothing held, a bare tombstone keeps the
        # revocation (the award may never have been delivered), so registry and ledger still converge.
        revocation = {"record_id": item["record_id"], "version": item["version"], "idempotency_key": key}
        holding = (held or {}) | revocation | {"status": "REVOKED"}
        return _outcome(key, "accepted", receipt_id=self._accept(item, holding))

    def _delete_below(self, item: Any) -> dict[str, Any]:
        record_id = item.get("record_id") if isinstance(item, dict) else None
        result: dict[str, Any] = {"record_id": record_id if isinstance(record_id, str) else None}
        if errors := deletion_errors(item):
            return result | {"outcome": "rejected", "error": "; ".join(errors)}
        held = self._holdings.get(record_id)
        if held is None or held["version"] >= item["versions_below"]:
            return result | {"outcome": "nothing_to_delete", "error": None}
        self._delete(record_id)
        return result | {"outcome": "deleted", "error": None}

    def _delete(self, record_id: str) -> None:
        del self._holdings[record_id]
        for key in self._keys_by_record.pop(record_id, set()):
            self._receipts.pop(key, None)

    def _accept(self, item: Item, holding: Item) -> str:
        receipt_id = str(uuid.uuid4())
        stamp = {"receipt_id": receipt_id, "received_at": utc_now_ms()}
        self._holdings[item["record_id"]] = {**holding, **stamp}
        self._receipts[item["idempotency_key"]] = receipt_id
        self._keys_by_record[item["record_id"]].add(item["idempotency_key"])
        self.accepted.append({**item, **stamp})
        return receipt_id
