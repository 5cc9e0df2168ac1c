"""An employer's HR endpoint receiving its staff's CME credits by signed webhook (DESIGN §7).

Every request is signed: header `X-CME-Timestamp` (Unix seconds) and `X-CME-Signature: sha256=<hex>`, the
HMAC-SHA256 with the shared secret over `<timestamp>.<METHOD>.<path>.` followed by the raw body. The timestamp
is inside the signed text, so an old request cannot be replayed with a fresh timestamp: requests signed
outside the replay window, or whose body, path or timestamp was changed after signing, are refused with 401.

    POST /v1/webhooks/cme-credits  {"events": [event, ...]}  credit.awarded / credit.revoked / credit.withdrawn
    GET  /v1/credits               ?since=&page_size=&page_token=   what the HR system holds, for the nightly diff
    POST /v1/webhooks/compliance-at-risk  {"notices": [notice, ...]}  staff whose licence cycle is at risk

A notice is keyed by its `notice_id`, the sender's idempotency key (one per learner, cycle and day): a key
already received is answered `duplicate` with the first receipt and changes nothing, as a receiver that
de-duplicates on an idempotency key does. An event or notice may name a certificate (`certificate_id`).

An HR system, unlike PARS, updates in place: a higher version replaces the holding, an event id already applied
is a duplicate, a version not above the one held is stale. `credit.withdrawn` removes a holding altogether.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from deploy.sandbox.base import HttpError, Request, Response, SandboxServer, utc_now_ms
from deploy.sandbox.paging import HoldingStore, KeysetPager

MAX_EVENTS = 500
EVENT_TYPES = ("credit.awarded", "credit.revoked", "credit.withdrawn")
NOTICE_TYPE = "compliance.at_risk"
STANDINGS = ("at risk", "overdue")
_AMOUNT = re.compile(r"[0-9]{1,3}(\.[0-9]{1,2})?")

Event = dict[str, Any]


def signature(secret: bytes, timestamp: str, method: str, path: str, body: bytes) -> str:
    signed = f"{timestamp}.{method}.{path}.".encode() + body
    return "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def event_errors(event: Any) -> list[str]:
    if not isinstance(event, dict):
        return ["event: must be a JSON object"]
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        return [f"type: must be one of {', '.join(EVENT_TYPES)}"]
    errors = [] if _is_text(event.get("record_id")) else ["record_id: must be a non-empty string"]
    if kind == "credit.withdrawn":
        return errors
    version = event.get("version")
    if not (isinstance(version, int) and not isinstance(version, bool) and version >= 1):
        errors.append("version: must be an integer >= 1")
    if event.get("event_id") != f"{event.get('record_id')}:{version}":
        errors.append("event_id: must be '<record_id>:<version>'")
    if not _is_text(event.get("employee_id")):
        errors.append("employee_id: must be a non-empty string")
    if kind == "credit.revoked":
        return errors
    for name in ("credit_type", "activity_id", "activity_title"):
        if not _is_text(event.get(name)):
            errors.append(f"{name}: must be a non-empty string")
    amount = event.get("amount")
    if not (isinstance(amount, str) and _AMOUNT.fullmatch(amount) and Decimal(amount) > 0):
        errors.append("amount: must be a positive decimal string with at most 2 decimals")
    try:
        date.fromisoformat(event.get("completed_on"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        errors.append("completed_on: must be a date YYYY-MM-DD")
    return errors


def _is_date(value: Any) -> bool:
    try:
        date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def notice_errors(notice: Any) -> list[str]:
    if not isinstance(notice, dict):
        return ["notice: must be a JSON object"]
    errors = [
        f"{name}: must be a non-empty string"
        for name in ("notice_id", "employee_id", "profile")
        if not _is_text(notice.get(name))
    ]
    if notice.get("type") != NOTICE_TYPE:
        errors.append(f"type: must be {NOTICE_TYPE}")
    errors += [
        f"{name}: must be a date YYYY-MM-DD"
        for name in ("cycle_start", "deadline", "as_of")
        if not _is_date(notice.get(name))
    ]
    if notice.get("standing") not in STANDINGS:
        errors.append(f"standing: must be one of {', '.join(STANDINGS)}")
    missing = notice.get("missing")
    if not (
        isinstance(missing, list)
        and missing
        and all(isinstance(m, dict) and _is_text(m.get("requirement")) for m in missing)
    ):
        errors.append("missing: must list the unmet requirements")
    return errors


class HrEndpoint(SandboxServer):
    """Signed webhook in, signed holdings listing out; per-record holdings kept in memory."""

    name = "hr-endpoint"
    state_attrs = ("applied", "_holdings", "_receipts", "_events_by_record", "notices")

    def __init__(
        self,
        secret: str = "hr-demo-secret",
        port: int = 0,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(port)
        self.secret = secret
        self.window_s = window_s
        self.applied: list[Event] = []  # every applied award/revocation, in order: nothing applied twice
        self.refused_signatures = 0
        self._clock = clock
        self._pager = KeysetPager("received_at", "record_id")
        self._lock = threading.Lock()
        self._holdings = HoldingStore()
        self._receipts: dict[str, str] = {}  # event id -> receipt id
        self._events_by_record: defaultdict[str, set[str]] = defaultdict(set)
        self.notices: dict[str, Event] = {}  # notice id -> the notice first received under it, with its receipt
        self.route("POST", "/v1/webhooks/cme-credits", self._post_events)
        self.route("POST", "/v1/webhooks/compliance-at-risk", self._post_notices)
        self.route("GET", "/v1/credits", self._get_credits)

    # -- helpers for tests -----------------------------------------------------------------------------------

    def holdings(self) -> dict[str, Event]:
        with self._lock:
            return {record_id: dict(holding) for record_id, holding in self._holdings.items()}

    def remove(self, record_id: str) -> None:
        with self._lock:
            self._withdraw(record_id)

    def alter(self, record_id: str, **fields: Any) -> None:
        with self._lock:
            self._holdings.amend(record_id, fields)

    def put(self, holding: Event) -> None:
        with self._lock:
            self._holdings[holding["record_id"]] = {"received_at": utc_now_ms(), **holding}

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _verify(self, request: Request) -> None:
        timestamp = request.headers.get("x-cme-timestamp", "")
        given = request.headers.get("x-cme-signature", "")
        if not timestamp.isdigit() or not given:
            self._refuse("X-CME-Timestamp and X-CME-Signature headers are required")
        if abs(self._clock() - int(timestamp)) > self.window_s:
            self._refuse("timestamp outside the replay window")
        expected = signature(self.secret.encode(), timestamp, request.method, request.path, request.body)
        if not hmac.compare_digest(expected, given):
            self._refuse("signature does not match")

    def _refuse(self, message: str) -> None:
        with self._lock:
            self.refused_signatures += 1
        raise HttpError(401, message)

    def _post_events(self, request: Request) -> Response:
        self._verify(request)
        body = request.json()
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list):
            raise HttpError(400, 'body must be {"events": [event, ...]}')
        if len(events) > MAX_EVENTS:
            raise HttpError(400, f"at most {MAX_EVENTS} events per request")
        with self._lock:
            results = [self._apply(event) for event in events]
        return Response(200, {"results": results})

    def _post_notices(self, request: Request) -> Response:
        self._verify(request)
        body = request.json()
        notices = body.get("notices") if isinstance(body, dict) else None
        if not isinstance(notices, list):
            raise HttpError(400, 'body must be {"notices": [notice, ...]}')
        if len(notices) > MAX_EVENTS:
            raise HttpError(400, f"at most {MAX_EVENTS} notices per request")
        with self._lock:
            results = [self._receive(notice) for notice in notices]
        return Response(200, {"results": results})

    def _get_credits(self, request: Request) -> Response:
        self._verify(request)
        with self._lock:
            page, next_token = self._pager.page(self._holdings, request)
        return Response(200, {"credits": page, "next_page_token": next_token})

    # -- per-event semantics (called with the lock held) ----------------------------------------------------------

    def _apply(self, event: Any) -> dict[str, Any]:
        event_id = event.get("event_id") if isinstance(event, dict) else None
        result: dict[str, Any] = {"event_id": event_id if isinstance(event_id, str) else None, "receipt_id": None}
        if errors := event_errors(event):
            return result | {"outcome": "rejected", "error": "; ".join(errors)}
        record_id = event["record_id"]
        if event["type"] == "credit.withdrawn":
            found = self._withdraw(record_id)
            return result | {"outcome": "withdrawn" if found else "nothing_held", "error": None}
        if event_id in self._receipts:
            return result | {"outcome": "duplicate", "receipt_id": self._receipts[event_id], "error": None}
        held = self._holdings.get(record_id)
        if held is not None and event["version"] <= held["version"]:
            return result | {"outcome": "stale", "error": "version: not above the version held"}
        receipt_id = str(uuid.uuid4())
        status = "AWARDED" if event["type"] == "credit.awarded" else "REVOKED"
        holding = (held or {}) | event | {"status": status, "receipt_id": receipt_id, "received_at": utc_now_ms()}
        self._holdings[record_id] = holding
        self._receipts[event_id] = receipt_id
        self._events_by_record[record_id].add(event_id)
        self.applied.append(dict(holding))
        return result | {"outcome": "applied", "receipt_id": receipt_id, "error": None}

    def _receive(self, notice: Any) -> dict[str, Any]:
        notice_id = notice.get("notice_id") if isinstance(notice, dict) else None
        result: dict[str, Any] = {"notice_id": notice_id if isinstance(notice_id, str) else None, "receipt_id": None}
        if errors := notice_errors(notice):
            return result | {"outcome": "rejected", "error": "; ".join(errors)}
        if (held := self.notices.get(notice_id)) is not None:
            return result | {"outcome": "duplicate", "receipt_id": held["receipt_id"], "error": None}
        receipt_id = str(uuid.uuid4())
        self.notices[notice_id] = {**notice, "receipt_id": receipt_id, "received_at": utc_now_ms()}
        return result | {"outcome": "received", "receipt_id": receipt_id, "error": None}

    def _withdraw(self, record_id: str) -> bool:
        for event_id in self._events_by_record.pop(record_id, set()):
            self._receipts.pop(event_id, None)
        return self._holdings.pop(record_id, None) is not None
