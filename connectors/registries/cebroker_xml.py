"""CE Broker's XML messages, built and read with ElementTree (never by string templating), and the split of a
batch into messages that each stay under the size limit (16 MB at CE Broker).

Every message carries the parent provider id (`50-…`) and its upload key as attributes of its root. Element
and attribute names follow domain/registries.md §2 where it knows them (License Validation, `id_provider`,
`id_course`, `Message`); the roster's `attendee` and `partial_credit` nodes are our choice (README).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

Item = TypeVar("Item")

LICENCE_FIELDS = ("licensee_profession", "cebroker_state", "license")
KEY_FIELDS = ("id_course", "license", "cebroker_state", "licensee_profession", "cd_subject_area")


@dataclass(frozen=True)
class Envelope:
    """Who sends: the parent provider, the provider under it that offers the courses, and the upload key."""

    parent_provider: str
    provider: str
    upload_key: str

    def root(self, tag: str, **attributes: str) -> ET.Element:
        return ET.Element(tag, id_parent_provider=self.parent_provider, upload_key=self.upload_key, **attributes)


@dataclass(frozen=True)
class Attendee:
    """One roster entry: a licensee's completion of a course, as partial credit (subject-area code + hours)."""

    external_ref: str
    id_course: str
    license: str
    cebroker_state: str
    licensee_profession: str
    first_name: str
    last_name: str
    date_completed: str
    cd_subject_area: str
    hours: str

    def key(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in KEY_FIELDS}


@dataclass(frozen=True)
class NodeResult:
    """One node of a return receipt: `message` empty when the record was accepted, its error otherwise."""

    message: str
    id_attendee: str = ""

    @property
    def accepted(self) -> bool:
        return not self.message


def serialise(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def licensees(envelope: Envelope, licences: Iterable[tuple[str, str, str]]) -> bytes:
    """A License Validation request for (profession, state, full licence number) triples."""
    root = envelope.root("licensees")
    for licence in licences:
        node = ET.SubElement(root, "licensee")
        for name, value in zip(LICENCE_FIELDS, licence, strict=True):
            ET.SubElement(node, name).text = value
    return serialise(root)


def licence_answers(body: bytes) -> dict[tuple[str, str, str], tuple[bool, str, str]]:
    """(profession, state, number) → (valid, ErrorCode, Message) from a License Validation answer."""
    answers = {}
    for node in _parse(body).iter("licensee"):
        licence = (node.get("licensee_profession", ""), node.get("State", ""), node.get("licensee_number", ""))
        answers[licence] = (node.get("valid") == "true", node.get("ErrorCode", ""), node.get("Message", ""))
    return answers


def courses(envelope: Envelope, titles: Mapping[str, str]) -> bytes:
    """Create (or find again) the courses, by our activity id (`cd_course`) and title."""
    root = envelope.root("courses")
    for own_id, title in titles.items():
        ET.SubElement(root, "course", id_provider=envelope.provider, cd_course=own_id, nm_course=title)
    return serialise(root)


def course_receipt(body: bytes) -> dict[str, tuple[str, str]]:
    """Our activity id → (CE Broker course number `20-…` or "", Message)."""
    return {
        node.get("cd_course", ""): (node.get("id_course", ""), node.get("Message", ""))
        for node in _parse(body).iter("course")
    }


def rosters(envelope: Envelope, attendees: Sequence[Attendee]) -> bytes:
    """Rosters for `attendees`, one `roster` node per course."""
    root = envelope.root("rosters")
    by_course: dict[str, ET.Element] = {}
    for attendee in attendees:
        roster = by_course.get(attendee.id_course)
        if roster is None:
            roster = ET.SubElement(root, "roster", id_provider=envelope.provider, id_course=attendee.id_course)
            by_course[attendee.id_course] = roster
        node = ET.SubElement(
            roster,
            "attendee",
            external_ref=attendee.external_ref,
            license=attendee.license,
            cebroker_state=attendee.cebroker_state,
            licensee_profession=attendee.licensee_profession,
            first_name=attendee.first_name,
            last_name=attendee.last_name,
            date_completed=attendee.date_completed,
        )
        ET.SubElement(node, "partial_credit", cd_subject_area=attendee.cd_subject_area, hours=attendee.hours)
    return serialise(root)


def keyed(envelope: Envelope, tag: str, keys: Iterable[Mapping[str, str]]) -> bytes:
    """A message naming roster entries by key (and the reference a receipt echoes, if any): a deletion or a
    lookup."""
    root = envelope.root(tag)
    for key in keys:
        node = ET.SubElement(root, "attendee", {name: str(key.get(name) or "") for name in KEY_FIELDS})
        if key.get("external_ref"):
            node.set("external_ref", str(key["external_ref"]))
    return serialise(root)


def receipt(body: bytes) -> dict[str, NodeResult]:
    """A roster or deletion receipt by `external_ref`: each attendee node's Message (empty = accepted)."""
    return {
        node.get("external_ref", ""): NodeResult(node.get("Message", ""), node.get("id_attendee", ""))
        for node in _parse(body).iter("attendee")
    }


def entries(body: bytes) -> tuple[list[dict[str, str]], str]:
    """The roster entries of a lookup or listing answer, and the next page's cursor ("" on the last page)."""
    root = _parse(body)
    return [dict(node.attrib) for node in root.iter("attendee")], root.get("next_cursor", "")


def query(envelope: Envelope, limit: int, changed_since: str, cursor: str) -> bytes:
    return serialise(envelope.root("roster_query", limit=str(limit), changed_since=changed_since, cursor=cursor))


def split(
    items: Sequence[Item], build: Callable[[Sequence[Item]], bytes], max_bytes: int
) -> tuple[list[tuple[list[Item], bytes]], list[Item]]:
    """`items` as messages of at most `max_bytes` each, and the items too large to go in any message alone.

    Halves a message until it fits: exact whatever the serialisation adds, in O(n log n) bytes built."""
    if not items:
        return [], []
    message = build(items)
    if len(message) <= max_bytes:
        return [(list(items), message)], []
    if len(items) == 1:
        return [], list(items)
    middle = len(items) // 2
    head, head_too_large = split(items[:middle], build, max_bytes)
    tail, tail_too_large = split(items[middle:], build, max_bytes)
    return head + tail, head_too_large + tail_too_large


class MalformedReceipt(ValueError):
    """The registry answered something that is not the XML it should have."""


def _parse(body: bytes) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise MalformedReceipt("CE Broker answered a receipt that is not well-formed XML") from None
