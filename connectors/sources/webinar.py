"""Zoom-style webinar attendance reports: one ATTENDED event per join/leave segment.

Why one event per segment rather than one per participant: the report pages over rows, not participants,
so one participant's segments can sit on different pages (and a kill between pages must not lose half of
them); the reconcile core already unions segments (overlaps count once), clips them to the activity and
subtracts breaks, which needs the segments themselves; and every segment keeps its own source position.

Minutes come from leave - join, never from `duration` (its unit differs between report APIs). A guest with
an empty `user_email` is identified through their registration (registrant id), else dead-lettered.
Each configured webinar id maps to one catalog activity; every ended instance of it is read once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field

from connectors.config import SourceBaseConfig, Wiring, source_kind
from connectors.http import FatalAPIError, HttpClient
from connectors.sources import fields as f
from connectors.sources.base import Event, RawRecord, RecordError
from connectors.sources.http_source import NextToken, check_http, listed
from connectors.sources.streams import Child, ChildStreamSource
from reconcile.vocabulary import SCHEMA_INVALID

EVENT_NAMESPACE = uuid.UUID("0b8a4f57-3c1e-4e0a-9d61-2f7c5a9e8b13")
REGISTRANT_FIELDS = ("npi", "profession", "dob_month_day", "board_id", "licence_number", "licence_state")


def instance_in_path(instance: str) -> str:
    """Instance UUIDs are base64 and may hold `/`; one that starts with `/` or holds `//` must be encoded
    twice (Zoom's report API rule), any other once."""
    once = quote(instance, safe="")
    return quote(once, safe="") if instance.startswith("/") or "//" in instance else once


@dataclass(frozen=True)
class Registrants:
    """A webinar's registrations, for identifiers the participant rows lack (guests, NPI, profession)."""

    by_id: Mapping[str, Mapping[str, Any]]
    by_email: Mapping[str, Mapping[str, Any]]

    def of(self, row: Mapping[str, Any]) -> Mapping[str, Any] | None:
        registrant_id, email = row.get("registrant_id"), row.get("user_email")
        if isinstance(registrant_id, str) and registrant_id in self.by_id:
            return self.by_id[registrant_id]
        return self.by_email.get(email.strip().lower()) if isinstance(email, str) else None


class WebinarSource(ChildStreamSource):
    """Participants of every ended instance of the configured webinars, page by page: the instances are the
    parent stream, each instance's participant report a child walk read with the webinar's registrations."""

    kind = "webinar"
    instances_path = "/v2/past_webinars/{webinar_id}/instances"
    path = "/v2/report/webinars/{instance}/participants"
    registrants_path = "/v2/webinars/{webinar_id}/registrants"
    records_path = "participants"
    pagination = NextToken(field="next_page_token", param="next_page_token")
    page_size_param = "page_size"

    def __init__(
        self,
        name: str,
        client: HttpClient,
        webinars: Mapping[str, str],
        page_size: int = 300,
        registrant_questions: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, client, page_size)
        if not webinars:
            raise ValueError("a webinar source needs at least one webinar id → activity mapping")
        self.webinars = dict(webinars)
        self.registrant_questions = {q.strip().lower(): key for q, key in (registrant_questions or {}).items()}
        unknown = set(self.registrant_questions.values()) - set(REGISTRANT_FIELDS)
        if unknown:
            raise ValueError(f"registrant_questions can map to {', '.join(REGISTRANT_FIELDS)}, not {sorted(unknown)}")

    def check(self) -> None:
        check_http(self.name, self.client, self.instances_path.format(webinar_id=next(iter(self.webinars))))

    def children(self, done: frozenset[str]) -> Iterator[Child]:
        for webinar_id in self.webinars:
            pending = [i for i in self._instances(webinar_id) if i not in done]
            if not pending:
                continue
            registrants = self._registrants(webinar_id)
            for instance in pending:
                path = self.path.format(instance=instance_in_path(instance))
                context = {"webinar_id": webinar_id, "registrants": registrants}
                yield Child(instance, path, f"webinar {webinar_id} instance {instance}", context)

    def child_record(self, child: Child, row: Any) -> Any:
        registrants: Registrants = child.context["registrants"]
        return {
            "webinar_id": child.context["webinar_id"],
            "instance": child.key,
            "participant": row,
            "registrant": registrants.of(row) if isinstance(row, dict) else None,
        }

    def _instances(self, webinar_id: str) -> list[str]:
        body = self.client.get_json(self.instances_path.format(webinar_id=webinar_id))
        found = body.get("webinars") if isinstance(body, dict) else None
        if not isinstance(found, list):
            raise FatalAPIError(f"instances of webinar {webinar_id}: response has no 'webinars' list")
        instances = [i for i in found if isinstance(i, dict) and isinstance(i.get("uuid"), str)]
        return [i["uuid"] for i in sorted(instances, key=lambda i: (str(i.get("start_time")), i["uuid"]))]

    def _registrants(self, webinar_id: str) -> Registrants:
        by_id: dict[str, Mapping[str, Any]] = {}
        by_email: dict[str, Mapping[str, Any]] = {}
        path = self.registrants_path.format(webinar_id=webinar_id)
        # Without the registrations, guests and identifiers would silently go missing: `listed` stops instead.
        pages = self.fetch(path, self.page_params(), records_path="registrants")
        for registrant in listed(pages, f"registrants of webinar {webinar_id}"):
            if not isinstance(registrant, dict):
                continue
            if isinstance(registrant.get("id"), str):
                by_id[registrant["id"]] = registrant
            if isinstance(registrant.get("email"), str):
                by_email[registrant["email"].strip().lower()] = registrant
        return Registrants(by_id, by_email)

    def parse(self, record: RawRecord) -> Iterable[Event]:
        row, registrant = record.data["participant"], record.data["registrant"] or {}
        if not isinstance(row, dict):
            raise RecordError(SCHEMA_INVALID, "participant row is not a JSON object")
        joined = f.instant(row.get("join_time"), "join_time")
        left = f.instant(row.get("leave_time"), "leave_time")
        minutes = f.segment_minutes(joined, left, "segment")
        answers = self._answers(registrant)
        learner = f.learner(
            answers
            | {
                "email": row.get("user_email") or registrant.get("email"),
                "given_name": registrant.get("first_name"),
                "family_name": registrant.get("last_name"),
            }
        )
        participant = "|".join(str(row.get(k) or "") for k in ("id", "user_id", "registrant_id", "user_email", "name"))
        identity = f"{record.data['instance']}|{participant}|{joined.isoformat()}|{left.isoformat()}"
        return [
            self.new_event(
                record,
                event_id=str(uuid.uuid5(EVENT_NAMESPACE, identity)),
                kind="ATTENDED",
                occurred_at=left,
                started_at=joined,
                ended_at=left,
                minutes=minutes,
                activity_ref=self.webinars[record.data["webinar_id"]],
                learner=learner,
            )
        ]

    def _answers(self, registrant: Mapping[str, Any]) -> dict[str, Any]:
        questions = registrant.get("custom_questions")
        answers: dict[str, Any] = {}
        for question in questions if isinstance(questions, list) else ():
            if isinstance(question, dict) and isinstance(question.get("title"), str):
                key = self.registrant_questions.get(question["title"].strip().lower())
                if key:
                    answers[key] = question.get("value")
        return answers


@source_kind
class WebinarSourceConfig(SourceBaseConfig):
    kind: Literal["webinar"] = "webinar"
    page_size: int = Field(300, ge=1, le=300)
    webinars: dict[str, str] = Field(
        min_length=1, description="Webinar id → catalog activity (catalog id or a ref listed for it)."
    )
    registrant_questions: dict[
        str, Literal["npi", "profession", "dob_month_day", "board_id", "licence_number", "licence_state"]
    ] = Field(default_factory=dict, description="Registration question title → the learner field it answers.")

    def build(self, wiring: Wiring) -> WebinarSource:
        return WebinarSource(
            self.name, self.client(self.bearer()), self.webinars, self.page_size, self.registrant_questions
        )
