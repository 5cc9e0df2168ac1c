"""An xAPI 1.0.3 Learning Record Store subset: the statements resource, paged and voided like a real LRS.

Only what the xAPI source connector relies on is modelled (credit-rules.md, "Source quirks"): Basic auth,
the `X-Experience-API-Version` header, `since`/`until` on *stored* time, newest first unless
`ascending=true`, `more` links, voided statements hidden while their voiding statements stay visible.
Statements are never validated: demo data may be malformed on purpose and must reach the connector as-is.
"""

from __future__ import annotations

import base64
import bisect
import copy
import hmac
import itertools
import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Self

from deploy.sandbox.base import (
    HttpError,
    Request,
    Response,
    SandboxServer,
    decode_token,
    encode_token,
    instant_param,
    parse_instant,
    utc_now_ms,
)

XAPI_VERSION = "1.0.3"
VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"
STATEMENTS_PATH = "/xapi/statements"
MORE_PATH = "/xapi/statements/more"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
# Filters of the real resource that this subset does not implement: refusing them beats silently ignoring them.
UNSUPPORTED_PARAMS = (
    "statementId",
    "voidedStatementId",
    "agent",
    "verb",
    "activity",
    "registration",
    "related_activities",
    "related_agents",
)

Statement = dict[str, Any]


class StatementConflict(ValueError):
    """A statement id already stored with different content (xAPI answers 409)."""


class _Indexed(NamedTuple):
    stored: datetime
    seq: int  # arrival order: breaks ties between statements sharing one stored instant
    statement_id: str


def _stored_key(entry: _Indexed) -> datetime:
    return entry.stored


def _position_key(entry: _Indexed) -> tuple[datetime, int]:
    return entry.stored, entry.seq


@dataclass(frozen=True)
class StatementQuery:
    """One GET /xapi/statements query; `after` is the keyset position of the last statement already served."""

    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    ascending: bool = False
    after: tuple[datetime, int] | None = None

    @classmethod
    def from_request(cls, request: Request) -> StatementQuery:
        for name in UNSUPPORTED_PARAMS:
            if name in request.params:
                raise HttpError(400, f"parameter {name} is not supported by this sandbox LRS")
        return cls(
            since=instant_param(request, "since"),
            until=instant_param(request, "until"),
            limit=_limit_param(request.params.get("limit")),
            ascending=_ascending_param(request.params.get("ascending")),
        )

    @classmethod
    def from_token(cls, token: str) -> StatementQuery:
        state = decode_token(token)
        try:
            after = state["after"]
            query = cls(
                since=_optional_instant(state["since"]),
                until=_optional_instant(state["until"]),
                limit=int(state["limit"]),
                ascending=bool(state["ascending"]),
                after=(parse_instant(after[0]), int(after[1])),
            )
        except (KeyError, IndexError, TypeError, ValueError):
            raise HttpError(400, "invalid more token") from None
        if not 1 <= query.limit <= MAX_LIMIT:
            raise HttpError(400, "invalid more token")
        return query

    def to_token(self) -> str:
        assert self.after is not None, "only a query positioned after a statement has a next page"
        return encode_token(
            {
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "limit": self.limit,
                "ascending": self.ascending,
                "after": [self.after[0].isoformat(), self.after[1]],
            }
        )

    def continued_after(self, entry: _Indexed) -> StatementQuery:
        return replace(self, after=_position_key(entry))


def _optional_instant(text: str | None) -> datetime | None:
    return parse_instant(text) if text is not None else None


def _limit_param(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise HttpError(400, "parameter limit must be a non-negative integer") from None
    if limit < 0:
        raise HttpError(400, "parameter limit must be a non-negative integer")
    # xAPI: 0 means "the server's maximum", and a server may return fewer than asked.
    return MAX_LIMIT if limit == 0 else min(limit, MAX_LIMIT)


def _ascending_param(text: str | None) -> bool:
    if text is None or text == "" or text.lower() == "false":
        return False
    if text.lower() == "true":
        return True
    raise HttpError(400, "parameter ascending must be true or false")


def voided_target(statement: Statement) -> str | None:
    """The id a voiding statement voids, or None; tolerant of malformed statements."""
    verb, target = statement.get("verb"), statement.get("object")
    if not isinstance(verb, dict) or verb.get("id") != VOIDED_VERB or not isinstance(target, dict):
        return None
    target_id = target.get("id")
    return target_id if target.get("objectType") == "StatementRef" and isinstance(target_id, str) else None


def _same_statement(a: Statement, b: Statement) -> bool:
    return {k: v for k, v in a.items() if k != "stored"} == {k: v for k, v in b.items() if k != "stored"}


class XapiLrs(SandboxServer):
    """In-memory LRS serving GET/POST /xapi/statements behind HTTP Basic auth."""

    name = "xapi-lrs"

    def __init__(
        self,
        statements: list[Statement] | None = None,
        username: str = "lrs-demo",
        password: str = "lrs-demo-secret",
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.username = username
        self.password = password
        self._lock = threading.Lock()
        self._statements: dict[str, Statement] = {}
        self._index: list[_Indexed] = []
        self._voided: set[str] = set()
        self._seq = itertools.count()
        # Fault option: this many statements of each full page are served again at the start of the next one.
        self.repeated_per_page = 0
        self.route("GET", STATEMENTS_PATH, self._get_statements)
        self.route("GET", f"{MORE_PATH}/(?P<token>[A-Za-z0-9_-]+)", self._get_more)
        self.route("POST", STATEMENTS_PATH, self._post_statements)
        if statements:
            self.add(statements)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Self:
        """An LRS holding the JSON array of statements in `path`, served exactly as written."""
        statements = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(statements, list):
            raise ValueError(f"{path}: expected a JSON array of statements")
        return cls(statements, **kwargs)

    def add(self, statements: Statement | Iterable[Statement]) -> list[str]:
        """Store statements as POST does (id and stored filled in when missing); returns their ids.

        All or nothing: a conflicting id (StatementConflict) or an unusable id/stored (ValueError) stores none.
        """
        batch = [statements] if isinstance(statements, dict) else list(statements)
        with self._lock:
            prepared = self._prepare(batch)
            for statement in prepared:
                self._store(statement)
        return [statement["id"] for statement in prepared]

    def statement_count(self) -> int:
        """Every statement held, voided ones and voiding ones included."""
        with self._lock:
            return len(self._statements)

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _get_statements(self, request: Request) -> Response:
        self._check_headers(request)
        return self._page_response(StatementQuery.from_request(request))

    def _get_more(self, request: Request) -> Response:
        self._check_headers(request)
        return self._page_response(StatementQuery.from_token(request.match["token"]))

    def _post_statements(self, request: Request) -> Response:
        self._check_headers(request)
        body = request.json()
        batch = [body] if isinstance(body, dict) else body
        if not isinstance(batch, list) or not batch or not all(isinstance(s, dict) for s in batch):
            raise HttpError(400, "body must be a statement object or a non-empty array of statement objects")
        try:
            ids = self.add(batch)
        except StatementConflict as err:
            raise HttpError(409, str(err)) from None
        except ValueError as err:
            raise HttpError(400, str(err)) from None
        return Response(200, ids, self._xapi_headers())

    def _check_headers(self, request: Request) -> None:
        if not self._authorised(request.headers.get("authorization", "")):
            raise HttpError(401, "HTTP Basic authentication required", {"WWW-Authenticate": 'Basic realm="xapi"'})
        if not request.headers.get("x-experience-api-version", "").startswith("1.0"):
            raise HttpError(400, "X-Experience-API-Version header missing or unsupported (expected 1.0.x)")

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded, validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(given, f"{self.username}:{self.password}".encode())

    def _page_response(self, query: StatementQuery) -> Response:
        statements, next_query = self._page(query)
        more = f"{MORE_PATH}/{next_query.to_token()}" if next_query else ""
        return Response(200, {"statements": statements, "more": more}, self._xapi_headers())

    @staticmethod
    def _xapi_headers() -> dict[str, str]:
        return {"X-Experience-API-Version": XAPI_VERSION, "X-Experience-API-Consistent-Through": utc_now_ms()}

    # -- storage --------------------------------------------------------------------------------------------

    def _prepare(self, batch: list[Statement]) -> list[Statement]:
        prepared: list[Statement] = []
        seen_in_batch: set[str] = set()
        for raw in batch:
            statement = copy.deepcopy(raw)
            if not statement.get("id"):
                statement["id"] = str(uuid.uuid4())
            if not statement.get("stored"):
                statement["stored"] = utc_now_ms()
            statement_id = statement["id"]
            if not isinstance(statement_id, str) or not isinstance(statement["stored"], str):
                raise ValueError("statement id and stored must be strings")
            parse_instant(statement["stored"])  # a statement the LRS cannot index is refused
            held = self._statements.get(statement_id)
            if statement_id in seen_in_batch or (held is not None and not _same_statement(held, statement)):
                raise StatementConflict(f"statement id {statement_id} already exists with different content")
            seen_in_batch.add(statement_id)
            prepared.append(statement)
        return prepared

    def _store(self, statement: Statement) -> None:
        if statement["id"] in self._statements:
            return  # identical resubmission: xAPI treats it as a no-op
        self._statements[statement["id"]] = statement
        bisect.insort(self._index, _Indexed(parse_instant(statement["stored"]), next(self._seq), statement["id"]))
        target = voided_target(statement)
        if target is not None:
            self._voided.add(target)

    def _page(self, query: StatementQuery) -> tuple[list[Statement], StatementQuery | None]:
        """One page of the query, and the query for the next page if any statement remains."""
        with self._lock:
            low, high = self._window(query)
            positions = range(low, high) if query.ascending else range(high - 1, low - 1, -1)
            served: list[_Indexed] = []
            for position in positions:
                entry = self._index[position]
                if entry.statement_id in self._voided:
                    continue
                if len(served) == query.limit:
                    resume = served[max(0, len(served) - 1 - self.repeated_per_page)]
                    return self._bodies(served), query.continued_after(resume)
                served.append(entry)
            return self._bodies(served), None

    def _window(self, query: StatementQuery) -> tuple[int, int]:
        """Index bounds [low, high) of the statements matching the query's filters and position."""
        low = 0 if query.since is None else bisect.bisect_right(self._index, query.since, key=_stored_key)
        high = len(self._index)
        if query.until is not None:
            high = bisect.bisect_right(self._index, query.until, key=_stored_key)
        if query.after is not None and query.ascending:
            low = max(low, bisect.bisect_right(self._index, query.after, key=_position_key))
        elif query.after is not None:
            high = min(high, bisect.bisect_left(self._index, query.after, key=_position_key))
        return low, high

    def _bodies(self, entries: list[_Indexed]) -> list[Statement]:
        return [self._statements[entry.statement_id] for entry in entries]
