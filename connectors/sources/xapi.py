"""xAPI 1.0.3 Learning Record Store source: statements since the stored-time watermark, `more` paging."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.http import HttpClient
from connectors.sources.base import (
    IMPLAUSIBLE_DURATION,
    SCHEMA_INVALID,
    UNSUPPORTED_VERB,
    Event,
    Page,
    RawRecord,
    Rejection,
)

VERB_KINDS = {
    "http://adlnet.gov/expapi/verbs/completed": "COMPLETED",
    "http://adlnet.gov/expapi/verbs/passed": "COMPLETED",
    "http://adlnet.gov/expapi/verbs/attended": "ATTENDED",
    "http://adlnet.gov/expapi/verbs/voided": "VOIDED",
}
MAX_MINUTES = 24 * 60 * 14
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


class StatementError(ValueError):
    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(reason)
        self.reason_code = reason_code


def parse_duration_minutes(text: str) -> float:
    """ISO 8601 duration (the subset xAPI uses) in minutes."""
    match = _DURATION.match(text)
    if not match or text in ("P", "PT"):
        raise StatementError(SCHEMA_INVALID, "result.duration is not an ISO 8601 duration")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 1440 + parts["h"] * 60 + parts["m"] + parts["s"] / 60


def parse_time(text: object, field: str) -> datetime:
    if not isinstance(text, str):
        raise StatementError(SCHEMA_INVALID, f"{field} is missing or not a string")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise StatementError(SCHEMA_INVALID, f"{field} is not an ISO 8601 timestamp") from err
    if moment.tzinfo is None:
        raise StatementError(SCHEMA_INVALID, f"{field} has no time zone")
    return moment


@dataclass(frozen=True)
class XapiCursor:
    """The last `stored` instant fully read, and the ids already read at exactly that instant.

    Several statements can share one stored instant, and `since` is exclusive: resuming just before the
    instant and skipping the ids already read neither skips nor repeats a statement.
    """

    stored: str
    ids: tuple[str, ...] = ()

    def dump(self) -> str:
        return json.dumps({"stored": self.stored, "ids": list(self.ids)})

    @classmethod
    def load(cls, text: str | None) -> XapiCursor | None:
        if not text:
            return None
        data = json.loads(text)
        return cls(data["stored"], tuple(data.get("ids", ())))

    def advance(self, statements: Iterable[Mapping[str, Any]]) -> XapiCursor:
        cursor = self
        for statement in statements:
            stored = statement.get("stored")
            if not isinstance(stored, str):
                continue
            if stored == cursor.stored:
                cursor = XapiCursor(stored, (*cursor.ids, str(statement.get("id"))))
            elif parse_time(stored, "stored") > parse_time(cursor.stored, "stored"):
                cursor = XapiCursor(stored, (str(statement.get("id")),))
        return cursor


class XapiSource:
    """Reads statements oldest-first from an xAPI LRS; learner details come from context extensions."""

    version_header = "1.0.3"

    def __init__(
        self,
        name: str,
        client: HttpClient,
        page_size: int = 100,
        extension_prefix: str = "https://cmesync.org/xapi/ext/",
    ) -> None:
        self.name = name
        self.client = client
        self.page_size = page_size
        self.extension_prefix = extension_prefix
        # An LRS answers 400 to any request without it (xAPI 1.0.3).
        self.client.headers["X-Experience-API-Version"] = self.version_header

    def check(self) -> None:
        """Raise if the LRS is unreachable or refuses our credentials."""
        self.client.get_json("/xapi/statements", params={"limit": 1})

    def pages(self, cursor: str | None) -> Iterator[Page]:
        start = XapiCursor.load(cursor)
        params: dict[str, Any] = {"limit": self.page_size, "ascending": "true"}
        if start:
            since = parse_time(start.stored, "cursor") - timedelta(milliseconds=1)
            params["since"] = since.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        current = start or XapiCursor("1970-01-01T00:00:00.000Z")
        body = self.client.get_json("/xapi/statements", params=params)
        while True:
            statements = [s for s in body.get("statements", []) if not (start and self._already_read(s, start))]
            current = current.advance(statements)
            yield Page(
                [RawRecord(f"statement:{s.get('id')}", s) for s in statements],
                current.dump() if current.stored != "1970-01-01T00:00:00.000Z" else cursor,
            )
            more = body.get("more")
            if not more:
                return
            body = self.client.get_json(more)

    @staticmethod
    def _already_read(statement: Mapping[str, Any], start: XapiCursor) -> bool:
        return statement.get("stored") == start.stored and str(statement.get("id")) in start.ids

    def to_events(self, record: RawRecord) -> Iterable[Event | Rejection]:
        try:
            return [self._event(record)]
        except StatementError as err:
            return [Rejection(record, err.reason_code, str(err))]

    def _event(self, record: RawRecord) -> Event:
        s = record.data
        if not isinstance(s, dict):
            raise StatementError(SCHEMA_INVALID, "statement is not a JSON object")
        if not isinstance(s.get("id"), str):
            raise StatementError(SCHEMA_INVALID, "statement has no id")
        verb = (s.get("verb") or {}).get("id") if isinstance(s.get("verb"), dict) else None
        kind = VERB_KINDS.get(verb or "")
        if kind is None:
            raise StatementError(UNSUPPORTED_VERB, "verb is not one of completed, passed, attended, voided")
        target = s.get("object")
        if not isinstance(target, dict) or not isinstance(target.get("id"), str):
            raise StatementError(SCHEMA_INVALID, "statement has no object id")
        occurred_at = parse_time(s.get("timestamp") or s.get("stored"), "timestamp")
        event: Event = {
            "event_id": s["id"],
            "source": self.name,
            "source_ref": record.source_ref,
            "kind": kind,
            "occurred_at": occurred_at,
            "started_at": None,
            "ended_at": None,
            "minutes": None,
            "activity_ref": None,
            "learner": {},
            "claimed": None,
            "voids_event_id": None,
        }
        if kind == "VOIDED":
            event["voids_event_id"] = target["id"]
            return event
        event["activity_ref"] = target["id"]
        event["learner"] = self._learner(s)
        duration = (s.get("result") or {}).get("duration") if isinstance(s.get("result"), dict) else None
        if duration is not None:
            minutes = parse_duration_minutes(str(duration))
            if not 0 < minutes <= MAX_MINUTES:
                raise StatementError(IMPLAUSIBLE_DURATION, "result.duration is zero or longer than 14 days")
            event["minutes"] = minutes
        return event

    def _learner(self, statement: Mapping[str, Any]) -> dict[str, Any]:
        actor = statement.get("actor")
        if not isinstance(actor, dict):
            raise StatementError(SCHEMA_INVALID, "statement has no actor")
        context = statement.get("context") if isinstance(statement.get("context"), dict) else {}
        extensions = context.get("extensions") if isinstance(context.get("extensions"), dict) else {}

        def ext(name: str) -> str | None:
            value = extensions.get(self.extension_prefix + name)
            return str(value) if value is not None else None

        mbox = actor.get("mbox")
        email = mbox.removeprefix("mailto:") if isinstance(mbox, str) else None
        learner = {
            "npi": ext("npi"),
            "email": email,
            "licence": None,
            "board_id": ext("board-id"),
            "given_name": ext("given-name"),
            "family_name": ext("family-name"),
            "dob_month_day": ext("dob-month-day"),
            "profession": ext("profession"),
        }
        if not any(learner[k] for k in ("npi", "email", "board_id")):
            raise StatementError(SCHEMA_INVALID, "actor has no usable identifier (mbox, NPI or board id)")
        return learner
