"""A CME provider's completions API: paged JSON, incremental on `updated_at`, bearer-token auth.

`GET /api/v1/completions?updated_since=&limit=` ordered by (`updated_at`, arrival), `updated_since` inclusive,
paged either by opaque cursor (`cursor=` / `meta.next_cursor`) or by page number (`page=` / `meta.total_pages`),
chosen per sandbox so one connector can be tested against both. Records are served exactly as loaded,
malformed ones included (a record without a usable `updated_at` sorts by the time it was added); chosen
pages can be switched to a truncated (non-JSON) body.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, Self

from deploy.sandbox.base import (
    HttpError,
    Request,
    Response,
    SandboxServer,
    decode_token,
    encode_token,
    format_instant,
    instant_param,
    parse_instant,
    require_bearer,
    utc_now_ms,
)

COMPLETIONS_PATH = "/api/v1/completions"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Record = Any


class _Held(NamedTuple):
    stamp: datetime
    seq: int
    record: Record


def _stamp(record: Record, fallback: datetime) -> datetime:
    try:
        return parse_instant(record["updated_at"])
    except (TypeError, KeyError, ValueError):
        return fallback


class ProviderRestApi(SandboxServer):
    name = "provider-rest"

    def __init__(
        self,
        records: list[Record] | None = None,
        token: str = "provider-demo-token",
        pagination: Literal["cursor", "page"] = "cursor",
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.token = token
        self.pagination = pagination
        self.truncated_pages: set[int] = set()
        # Fault options of numbered pages: records in a seeded random order instead of by `updated_at`, and
        # the last `repeated_per_page` records of each page served again at the start of the next.
        self.shuffle_seed: int | None = None
        self.repeated_per_page = 0
        self._lock = threading.Lock()
        self._held: dict[int, _Held] = {}
        self._seq = itertools.count()
        self.route("GET", COMPLETIONS_PATH, self._get_completions)
        if records:
            self.add(records)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Self:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON array of records")
        return cls(data, **kwargs)

    def add(self, records: list[Record]) -> None:
        now = parse_instant(utc_now_ms())
        with self._lock:
            for record in records:
                seq = next(self._seq)
                self._held[seq] = _Held(_stamp(record, now), seq, copy.deepcopy(record))

    def update(self, record_id: str, **changes: Any) -> None:
        """Change a record as the provider would: the fields given, and `updated_at` to now."""
        with self._lock:
            seq = next(
                s for s, h in self._held.items() if isinstance(h.record, dict) and h.record.get("id") == record_id
            )
            record = {**self._held[seq].record, **changes, "updated_at": utc_now_ms()}
            self._held[seq] = _Held(parse_instant(record["updated_at"]), seq, record)

    def record_count(self) -> int:
        with self._lock:
            return len(self._held)

    def _get_completions(self, request: Request) -> Response:
        require_bearer(request, self.token)
        limit = self._limit(request.params.get("limit"))
        since = instant_param(request, "updated_since")
        with self._lock:
            ordered = sorted(self._held.values(), key=lambda h: (h.stamp, h.seq))
        if since is not None:
            ordered = [h for h in ordered if h.stamp >= since]
        if self.pagination == "page":
            if self.shuffle_seed is not None:
                random.Random(self.shuffle_seed).shuffle(ordered)
            body, number = self._numbered_page(ordered, request, limit)
        else:
            body, number = self._cursor_page(ordered, request, limit, since)
        if number in self.truncated_pages:
            return Response(200, json.dumps(body).encode()[:-20])
        return Response(200, body)

    def _numbered_page(self, ordered: list[_Held], request: Request, limit: int) -> tuple[dict[str, Any], int]:
        text = request.params.get("page", "1")
        if not text.isdigit() or int(text) < 1:
            raise HttpError(400, "page must be an integer >= 1")
        number = int(text)
        page = ordered[max(0, (number - 1) * limit - self.repeated_per_page) : number * limit]
        total_pages = max(1, -(-len(ordered) // limit))
        meta = {"page": number, "per_page": limit, "total_pages": total_pages, "total": len(ordered)}
        return {"data": [copy.deepcopy(h.record) for h in page], "meta": meta}, number

    def _cursor_page(
        self, ordered: list[_Held], request: Request, limit: int, since: datetime | None
    ) -> tuple[dict[str, Any], int]:
        number = 1
        token = request.params.get("cursor")
        if token:
            state = decode_token(token)
            try:
                after = (parse_instant(state["after"][0]), int(state["after"][1]))
                number = int(state["n"])
                same_query = state["since"] == (format_instant(since) if since else None)
            except (KeyError, IndexError, TypeError, ValueError):
                raise HttpError(400, "invalid cursor") from None
            if not same_query:
                raise HttpError(400, "cursor belongs to a different query")
            ordered = [h for h in ordered if (h.stamp, h.seq) > after]
        page, rest = ordered[:limit], ordered[limit:]
        next_cursor = None
        if rest:
            next_cursor = encode_token(
                {
                    "since": format_instant(since) if since else None,
                    "after": [page[-1].stamp.isoformat(), page[-1].seq],
                    "n": number + 1,
                }
            )
        return {"data": [copy.deepcopy(h.record) for h in page], "meta": {"next_cursor": next_cursor}}, number

    @staticmethod
    def _limit(text: str | None) -> int:
        if text is None or text == "":
            return DEFAULT_LIMIT
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise HttpError(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
        return int(text)
