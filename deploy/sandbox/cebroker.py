"""A CE Broker stand-in (DESIGN §7, domain/registries.md §2): XML messages over HTTP, as its web services take.

What it enforces, as the real system does: every message names the parent provider (`50-…`) and carries its
upload key; a message over `max_message_bytes` (16 MB) is refused whole; courses come before rosters (a roster
for a course number (`20-…`) not created is refused); License Validation answers valid/invalid with an
`ErrorCode` for profession + state + the full licence number as the state lists it; a roster entry already
reported for that licensee, course and subject area is refused; partial credit is a subject-area code and
hours. The return receipt mirrors the request, and each node's `Message` is empty when accepted and holds that
record's error otherwise.

Where the public record is silent this sandbox makes a choice (README "Registries"): the element names of the
roster (`attendee`, `partial_credit`), the provider's `external_ref` echoed in listings, the roster lookup and
listing messages (the nightly diff needs them) and a roster deletion message (at the real CE Broker a posted
entry is corrected by hand). Error codes other than 80 ("Invalid license Number") are ours.

Routes (POST, body `text/xml`):
    /ws/license-validation   <licensees>      -> <licensees> with valid/ErrorCode/Message per licensee
    /ws/courses              <courses>        -> receipt; a course's `id_course` (20-…), the same on a repeat
    /ws/rosters              <rosters>        -> receipt; `id_attendee` on accepted attendees
    /ws/roster-deletions     <roster_deletions> -> receipt; Message empty = deleted, "not found" otherwise
    /ws/roster-lookup        <roster_lookup>  -> <roster_entries> held for the given keys
    /ws/roster-query         <roster_query changed_since= cursor= limit=> -> <roster_entries next_cursor=>
A wrong upload key is answered 401, another provider's id 403; messages that are not XML 400.
"""

from __future__ import annotations

import itertools
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from deploy.sandbox.base import HttpError, Request, Response, SandboxServer, utc_now_ms
from deploy.sandbox.paging import HoldingStore, KeysetPager

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
PROFESSIONS = ("RN", "NP", "CNS")
SUBJECT_AREAS = {"GENERAL": PROFESSIONS, "PHARMACOLOGY": ("NP", "CNS")}
_STATE_CODES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI"
)
STATES = frozenset(_STATE_CODES.split())
MAX_HOURS = Decimal("99.99")
KEY_FIELDS = ("id_course", "license", "cebroker_state", "licensee_profession", "cd_subject_area")
ACTIVE = "ACTIVE"
DELETED = "DELETED"
# The state databases list a licence in full, with its profession prefix (a 2021 change made CE Broker take
# exactly that string): "RN4488120" is a licence, "4488120" is not.
FULL_LICENCE = re.compile(r"[A-Z]{2,4}[0-9]{4,10}")
INVALID_LICENSE = ("80", "Invalid license Number")
INVALID_PROFESSION = ("81", "Invalid profession")
INVALID_STATE = ("82", "Invalid state")
ALREADY_REPORTED = "Already reported: this licensee has this course and subject area on record"
_US_DATE = re.compile(r"[0-9]{2}/[0-9]{2}/[0-9]{4}")

Row = dict[str, Any]
RowKey = tuple[str, ...]


def row_key(row: Row) -> RowKey:
    return tuple(str(row.get(field) or "") for field in KEY_FIELDS)


def xml_response(root: ET.Element) -> Response:
    return Response(200, ET.tostring(root, encoding="utf-8", xml_declaration=True), content_type="text/xml")


class CeBroker(SandboxServer):
    """Courses, roster entries and licence validation for one parent provider, behind its upload key."""

    name = "cebroker"
    state_attrs = ("reported", "_rows", "_active", "_ids", "_courses")

    def __init__(
        self,
        upload_key: str = "cebroker-demo-key",
        provider_id: str = "50-1001",
        port: int = 0,
        today: Callable[[], date] = date.today,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        super().__init__(port)
        self.upload_key = upload_key
        self.provider_id = provider_id
        self.max_message_bytes = max_message_bytes
        self.reported: list[Row] = []  # every accepted entry, in order: proves nothing was reported twice
        self.refused_duplicates = 0  # entries sent again after being reported: the connector must never do it
        self.message_sizes: dict[str, list[int]] = {}  # bytes of each message received, by root element
        self.unlisted: set[str] = set()  # licence numbers the state database does not hold
        self._today = today
        self._pager = KeysetPager(
            "changed_at", "id_attendee", since_param="changed_since", size_param="limit", token_param="cursor"
        )
        self._lock = threading.Lock()
        self._rows = HoldingStore()
        self._active: dict[RowKey, str] = {}  # row key -> id of its ACTIVE entry
        self._ids = itertools.count(1)
        self._courses: dict[str, Row] = {}  # id_course -> course
        self.route("POST", "/ws/license-validation", self._post("licensees", self._validate))
        self.route("POST", "/ws/courses", self._post("courses", self._create_courses))
        self.route("POST", "/ws/rosters", self._post("rosters", self._report))
        self.route("POST", "/ws/roster-deletions", self._post("roster_deletions", self._delete))
        self.route("POST", "/ws/roster-lookup", self._post("roster_lookup", self._lookup))
        self.route("POST", "/ws/roster-query", self._post("roster_query", self._query))

    # -- helpers for tests -----------------------------------------------------------------------------------

    def rows(self) -> dict[str, Row]:
        """A copy of every entry, deleted ones included, by attendee id."""
        with self._lock:
            return {row_id: dict(row) for row_id, row in self._rows.items()}

    def active_rows(self) -> dict[str, Row]:
        """A copy of the ACTIVE entries by the external reference they were reported under."""
        with self._lock:
            return {row["external_ref"]: dict(row) for row in self._rows.values() if row["status"] == ACTIVE}

    def courses(self) -> dict[str, Row]:
        with self._lock:
            return {course_id: dict(course) for course_id, course in self._courses.items()}

    def remove(self, row_id: str) -> None:
        """Delete an entry outright, as a board operator would."""
        with self._lock:
            row = self._rows.pop(row_id)
            if self._active.get(row_key(row)) == row_id:
                del self._active[row_key(row)]

    def alter(self, row_id: str, **fields: Any) -> None:
        """Tamper with an entry in place (drift for the nightly diff to find); KeyError if unknown."""
        with self._lock:
            row = self._rows[row_id]
            if self._active.get(row_key(row)) == row_id:
                del self._active[row_key(row)]
            row = self._rows.amend(row_id, fields)
            if row["status"] == ACTIVE:
                self._active[row_key(row)] = row_id

    def put(self, row: Row) -> str:
        """Hold an ACTIVE entry nobody reported through the web services (a manual entry at the board)."""
        with self._lock:
            return self._store(dict(row))

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _post(
        self, root_tag: str, handle: Callable[[ET.Element, Request], ET.Element]
    ) -> Callable[[Request], Response]:
        def route(request: Request) -> Response:
            if len(request.body) > self.max_message_bytes:
                raise HttpError(413, f"message exceeds {self.max_message_bytes} bytes")
            try:
                root = ET.fromstring(request.body)
            except ET.ParseError:
                raise HttpError(400, "message is not well-formed XML") from None
            if root.tag != root_tag:
                raise HttpError(400, f"root element must be <{root_tag}>")
            if root.get("upload_key") != self.upload_key:
                raise HttpError(401, "missing or wrong upload_key")
            if root.get("id_parent_provider") != self.provider_id:
                raise HttpError(403, "this upload key is not valid for that parent provider")
            with self._lock:
                self.message_sizes.setdefault(root_tag, []).append(len(request.body))
                return xml_response(handle(root, request))

        return route

    # -- per-message semantics (called with the lock held) -------------------------------------------------

    def _validate(self, request: ET.Element, _http: Request) -> ET.Element:
        answer = ET.Element("licensees")
        for licensee in request.iter("licensee"):
            profession = licensee.findtext("licensee_profession") or ""
            state = licensee.findtext("cebroker_state") or ""
            number = licensee.findtext("license") or ""
            error = _licence_error(profession, state, number, self.unlisted)
            ET.SubElement(
                answer,
                "licensee",
                valid="false" if error else "true",
                State=state,
                licensee_profession=profession,
                licensee_number=number,
                state_license_format=f"{profession}9999999",
                ErrorCode=error[0] if error else "",
                Message=error[1] if error else "",
            )
        return answer

    def _create_courses(self, request: ET.Element, _http: Request) -> ET.Element:
        receipt = ET.Element("courses")
        for course in request.iter("course"):
            node = ET.SubElement(receipt, "course", dict(course.attrib))
            own_id, title = course.get("cd_course") or "", course.get("nm_course") or ""
            if course.get("id_provider") != self.provider_id:
                node.set("Message", "id_provider: not a provider under this parent provider")
            elif not (own_id.strip() and title.strip()):
                node.set("Message", "cd_course and nm_course are required")
            else:
                node.set("id_course", self._course_id(own_id, title))
                node.set("Message", "")
        return receipt

    def _course_id(self, own_id: str, title: str) -> str:
        for course_id, course in self._courses.items():
            if course["cd_course"] == own_id:
                return course_id
        course_id = f"20-{len(self._courses) + 1:06d}"
        self._courses[course_id] = {"id_course": course_id, "cd_course": own_id, "nm_course": title}
        return course_id

    def _report(self, request: ET.Element, _http: Request) -> ET.Element:
        receipt = ET.Element("rosters")
        for roster in request.iter("roster"):
            roster_node = ET.SubElement(receipt, "roster", dict(roster.attrib))
            course_id = roster.get("id_course") or ""
            course_error = self._roster_error(roster)
            roster_node.set("Message", course_error)
            for attendee in roster.iter("attendee"):
                node = ET.SubElement(roster_node, "attendee", dict(attendee.attrib))
                for credit in attendee.iter("partial_credit"):
                    ET.SubElement(node, "partial_credit", dict(credit.attrib))
                row = _row(course_id, attendee)
                message = course_error or "; ".join(self._attendee_errors(row))
                if not message and row_key(row) in self._active:
                    self.refused_duplicates += 1
                    message = ALREADY_REPORTED
                if not message:
                    node.set("id_attendee", self._store(row))
                    self.reported.append(dict(self._rows[node.get("id_attendee", "")]))
                node.set("Message", message)
        return receipt

    def _roster_error(self, roster: ET.Element) -> str:
        if roster.get("id_provider") != self.provider_id:
            return "id_provider: not a provider under this parent provider"
        if roster.get("id_course") not in self._courses:
            return "id_course: no such course; create the course before its roster"
        return ""

    def _attendee_errors(self, row: Row) -> list[str]:
        errors = []
        if error := _licence_error(row["licensee_profession"], row["cebroker_state"], row["license"], self.unlisted):
            errors.append(f"license: {error[1]}")
        for name in ("first_name", "last_name", "external_ref"):
            if not str(row.get(name) or "").strip():
                errors.append(f"{name}: required")
        subject = row["cd_subject_area"]
        if subject not in SUBJECT_AREAS:
            errors.append(f"cd_subject_area: must be one of {', '.join(SUBJECT_AREAS)}")
        elif row["licensee_profession"] not in SUBJECT_AREAS[subject]:
            errors.append(f"cd_subject_area: {subject} hours are reported for {', '.join(SUBJECT_AREAS[subject])}")
        errors += _hours_errors(row["hours"])
        errors += self._date_errors(row["date_completed"])
        return errors

    def _date_errors(self, text: str) -> list[str]:
        if not _US_DATE.fullmatch(text):
            return ["date_completed: must be MM/DD/YYYY"]
        try:
            completed = datetime.strptime(text, "%m/%d/%Y").date()
        except ValueError:
            return ["date_completed: must be MM/DD/YYYY"]
        return ["date_completed: must not be in the future"] if completed > self._today() else []

    def _delete(self, request: ET.Element, _http: Request) -> ET.Element:
        receipt = ET.Element("roster_deletions")
        for attendee in request.iter("attendee"):
            node = ET.SubElement(receipt, "attendee", dict(attendee.attrib))
            active_id = self._active.pop(row_key(dict(attendee.attrib)), None)
            if active_id is None:
                node.set("Message", "not found")
                continue
            self._rows.amend(active_id, {"status": DELETED, "changed_at": utc_now_ms()})
            node.set("id_attendee", active_id)
            node.set("Message", "")
        return receipt

    def _lookup(self, request: ET.Element, _http: Request) -> ET.Element:
        answer = ET.Element("roster_entries")
        for attendee in request.iter("attendee"):
            active_id = self._active.get(row_key(dict(attendee.attrib)))
            if active_id is not None:
                ET.SubElement(answer, "attendee", _attributes(self._rows[active_id]))
        return answer

    def _query(self, request: ET.Element, http: Request) -> ET.Element:
        params = {name: request.get(name, "") for name in ("changed_since", "cursor", "limit")}
        page, cursor = self._pager.page(self._rows, replace(http, params=params))
        answer = ET.Element("roster_entries", next_cursor=cursor or "")
        for row in page:
            ET.SubElement(answer, "attendee", _attributes(row))
        return answer

    def _store(self, row: Row) -> str:
        row_id = f"A{next(self._ids):07d}"
        now = utc_now_ms()
        self._rows[row_id] = {"status": ACTIVE, **row, "id_attendee": row_id, "reported_at": now, "changed_at": now}
        self._active[row_key(self._rows[row_id])] = row_id
        return row_id


def _row(course_id: str, attendee: ET.Element) -> Row:
    credit = attendee.find("partial_credit")
    return {
        "id_course": course_id,
        "external_ref": attendee.get("external_ref", ""),
        "license": attendee.get("license", ""),
        "cebroker_state": attendee.get("cebroker_state", ""),
        "licensee_profession": attendee.get("licensee_profession", ""),
        "first_name": attendee.get("first_name", ""),
        "last_name": attendee.get("last_name", ""),
        "date_completed": attendee.get("date_completed", ""),
        "cd_subject_area": credit.get("cd_subject_area", "") if credit is not None else "",
        "hours": credit.get("hours", "") if credit is not None else "",
    }


def _attributes(row: Row) -> dict[str, str]:
    return {name: str(value) for name, value in row.items()}


def _licence_error(profession: str, state: str, number: str, unlisted: set[str]) -> tuple[str, str] | None:
    if profession not in PROFESSIONS:
        return INVALID_PROFESSION
    if state not in STATES:
        return INVALID_STATE
    if FULL_LICENCE.fullmatch(number) is None or number in unlisted:
        return INVALID_LICENSE
    return None


def _hours_errors(text: str) -> list[str]:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return ["hours: must be a number"]
    if not value.is_finite() or value != value.quantize(Decimal("0.01")) or not Decimal(0) < value <= MAX_HOURS:
        return [f"hours: must be > 0 and <= {MAX_HOURS} with at most 2 decimals"]
    return []
