"""An AMA PRA-style physician credit registry, modelled on ACCME PARS where it matters (DESIGN §7).

Credits arrive in batches; each item is idempotent on its own key `<record_id>:<version>`, so a retried batch
never creates a second credit. Rejections name the field and the rule, never the value (it may be PII).
The registry keeps one holding per record and serves the holdings back for the nightly diff.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from deploy.sandbox.base import (
    HttpError,
    Request,
    Response,
    SandboxServer,
    decode_token,
    encode_token,
    instant_param,
    parse_instant,
    require_bearer,
    utc_now_ms,
)

CREDIT_TYPES = ("AMA_PRA_1", "AMA_PRA_2")
STATUSES = ("AWARDED", "REVOKED")
MAX_BATCH = 500
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_AMOUNT = Decimal("999.99")
NPI_PREFIX = "80840"  # CMS: the check digit is computed as if the NPI carried the card-issuer prefix 80840

_AMOUNT = re.compile(r"[0-9]{1,3}(\.[0-9]{1,2})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH_DAY = re.compile(r"[0-9]{2}-[0-9]{2}")
_NPI = re.compile(r"[0-9]{10}")
_DIGITS = re.compile(r"[0-9]{1,6}")

Item = dict[str, Any]


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


class CreditItemValidator:
    """The registry's per-item rules; `errors` returns "field: rule" strings, empty when the item is valid."""

    def __init__(self, today: Callable[[], date]) -> None:
        self._today = today

    def errors(self, item: Any) -> list[str]:
        if not isinstance(item, dict):
            return ["item: must be a JSON object"]
        errors = [
            f"{name}: must be a non-empty string"
            for name in ("record_id", "first_name", "last_name", "activity_id", "activity_title")
            if not _is_text(item.get(name))
        ]
        errors += self._version(item.get("version"))
        errors += self._key(item)
        if item.get("status") not in STATUSES:
            errors.append("status: must be AWARDED or REVOKED")
        errors += self._identity(item)
        errors += self._dob(item.get("dob_month_day"))
        if item.get("credit_type") not in CREDIT_TYPES:
            errors.append("credit_type: must be AMA_PRA_1 or AMA_PRA_2")
        errors += self._amount(item.get("amount"))
        errors += self._completed_on(item.get("completed_on"))
        return errors

    @staticmethod
    def _version(version: Any) -> list[str]:
        valid = isinstance(version, int) and not isinstance(version, bool) and version >= 1
        return [] if valid else ["version: must be an integer >= 1"]

    @staticmethod
    def _key(item: Item) -> list[str]:
        key = item.get("idempotency_key")
        if not _is_text(key):
            return ["idempotency_key: must be a non-empty string"]
        if key != f"{item.get('record_id')}:{item.get('version')}":
            return ["idempotency_key: must be '<record_id>:<version>'"]
        return []

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
        if completed < date(today.year - 1, 1, 1):
            return ["completed_on: must not be before 1 January of the previous calendar year"]
        return []


def _outcome(key: Any, outcome: str, receipt_id: str | None = None, error: str | None = None) -> dict[str, Any]:
    return {
        "idempotency_key": key if isinstance(key, str) else None,
        "outcome": outcome,
        "receipt_id": receipt_id,
        "error": error,
    }


def _holding_order(holding: Item) -> tuple[datetime, str]:
    return parse_instant(holding["received_at"]), holding["record_id"]


class AmaPraRegistry(SandboxServer):
    """POST /v1/credits (batched, idempotent per item) and GET /v1/holdings (paged), behind a bearer token."""

    name = "ama-pra-registry"

    def __init__(self, token: str = "ama-demo-token", port: int = 0, today: Callable[[], date] = date.today) -> None:
        super().__init__(port)
        self.token = token
        self.accepted: list[Item] = []  # every accepted item, in order: proves nothing was accepted twice
        self._validator = CreditItemValidator(today)
        self._lock = threading.Lock()
        self._holdings: dict[str, Item] = {}
        self._receipts: dict[str, str] = {}  # idempotency key -> receipt id of its first acceptance
        self._keys_by_record: defaultdict[str, set[str]] = defaultdict(set)
        self.route("POST", "/v1/credits", self._post_credits)
        self.route("GET", "/v1/holdings", self._get_holdings)

    # -- helpers for tests -----------------------------------------------------------------------------------

    def holdings(self) -> dict[str, Item]:
        """A copy of what the registry holds, by record_id."""
        with self._lock:
            return {record_id: dict(holding) for record_id, holding in self._holdings.items()}

    def remove(self, record_id: str) -> None:
        """Delete a holding as a registry operator would: its keys are forgotten, so a resubmission is accepted."""
        with self._lock:
            del self._holdings[record_id]
            for key in self._keys_by_record.pop(record_id, set()):
                self._receipts.pop(key, None)

    def alter(self, record_id: str, **fields: Any) -> None:
        """Tamper with a holding in place (drift for the nightly diff to find); KeyError if not held."""
        with self._lock:
            self._holdings[record_id].update(fields)

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _post_credits(self, request: Request) -> Response:
        require_bearer(request, self.token)
        if not request.headers.get("idempotency-key"):
            raise HttpError(400, "Idempotency-Key header is required")
        body = request.json()
        credits = body.get("credits") if isinstance(body, dict) else None
        if not isinstance(credits, list):
            raise HttpError(400, 'body must be {"credits": [item, ...]}')
        if len(credits) > MAX_BATCH:
            raise HttpError(400, f"at most {MAX_BATCH} credits per request")
        with self._lock:
            results = [self._submit(item) for item in credits]
        return Response(200, {"results": results})

    def _get_holdings(self, request: Request) -> Response:
        require_bearer(request, self.token)
        page_size = self._page_size(request.params.get("page_size"))
        since, after = self._position(request)
        with self._lock:
            entries = sorted((dict(h) for h in self._holdings.values()), key=_holding_order)
        if since is not None:
            entries = [entry for entry in entries if parse_instant(entry["received_at"]) > since]
        if after is not None:
            entries = [entry for entry in entries if _holding_order(entry) > after]
        page, rest = entries[:page_size], entries[page_size:]
        next_token = None
        if rest:
            last_at, last_id = _holding_order(page[-1])
            next_token = encode_token(
                {"since": since.isoformat() if since else None, "after": [last_at.isoformat(), last_id]}
            )
        return Response(200, {"entries": page, "next_page_token": next_token})

    @staticmethod
    def _page_size(text: str | None) -> int:
        if text is None or text == "":
            return DEFAULT_PAGE_SIZE
        if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_PAGE_SIZE:
            raise HttpError(400, f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}")
        return int(text)

    @staticmethod
    def _position(request: Request) -> tuple[datetime | None, tuple[datetime, str] | None]:
        """The `since` filter and the keyset position after which this page starts."""
        token = request.params.get("page_token")
        if not token:
            return instant_param(request, "since"), None
        state = decode_token(token)
        try:
            since = parse_instant(state["since"]) if state["since"] is not None else None
            after_at, after_id = state["after"]
            return since, (parse_instant(after_at), str(after_id))
        except (KeyError, TypeError, ValueError):
            raise HttpError(400, "invalid page token") from None

    # -- per-item semantics (called with the lock held) ---------------------------------------------------------

    def _submit(self, item: Any) -> dict[str, Any]:
        key = item.get("idempotency_key") if isinstance(item, dict) else None
        if isinstance(key, str) and key in self._receipts:
            return _outcome(key, "duplicate", receipt_id=self._receipts[key])
        errors = self._validator.errors(item)
        if errors:
            return _outcome(key, "rejected", error="; ".join(errors))
        held = self._holdings.get(item["record_id"])
        if held is not None and item["version"] <= held["version"]:
            return _outcome(key, "rejected", error="version: stale version, must be above the version held")
        return _outcome(key, "accepted", receipt_id=self._accept(item, held))

    def _accept(self, item: Item, held: Item | None) -> str:
        receipt_id = str(uuid.uuid4())
        stamp = {"receipt_id": receipt_id, "received_at": utc_now_ms()}
        if item["status"] == "REVOKED" and held is not None:
            # A revocation keeps what was awarded on record, marked REVOKED under the new version.
            holding = held | {field: item[field] for field in ("status", "version", "idempotency_key")}
        else:
            holding = dict(item)
        self._holdings[item["record_id"]] = {**holding, **stamp}
        self._receipts[item["idempotency_key"]] = receipt_id
        self._keys_by_record[item["record_id"]].add(item["idempotency_key"])
        self.accepted.append({**item, **stamp})
        return receipt_id
