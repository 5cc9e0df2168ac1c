"""The CE Broker sandbox refuses what the real system refuses, in its own terms: raw XML over real HTTP."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date

import pytest
import requests

from deploy.sandbox.cebroker import CeBroker

CREDENTIALS = {"id_parent_provider": "50-1001", "upload_key": "cebroker-demo-key"}


@pytest.fixture
def sandbox() -> Iterator[CeBroker]:
    with CeBroker(today=lambda: date(2026, 11, 23), max_message_bytes=4096) as server:
        yield server


def post(sandbox: CeBroker, service: str, root: ET.Element) -> ET.Element:
    response = requests.post(f"{sandbox.url}/ws/{service}", data=ET.tostring(root), timeout=5)
    response.raise_for_status()
    return ET.fromstring(response.content)


def roster(course_id: str, licence: str = "RN4488120") -> ET.Element:
    root = ET.Element("rosters", CREDENTIALS)
    node = ET.SubElement(ET.SubElement(root, "roster", id_provider="50-1001", id_course=course_id), "attendee")
    node.attrib |= {
        "external_ref": "r1:1",
        "license": licence,
        "cebroker_state": "FL",
        "licensee_profession": "RN",
        "first_name": "Test",
        "last_name": "Nurse",
        "date_completed": "11/17/2026",
    }
    ET.SubElement(node, "partial_credit", cd_subject_area="GENERAL", hours="1.50")
    return root


def course(sandbox: CeBroker) -> str:
    root = ET.Element("courses", CREDENTIALS)
    ET.SubElement(root, "course", id_provider="50-1001", cd_course="ACT-001", nm_course="Sepsis")
    [node] = post(sandbox, "courses", root).iter("course")
    return node.get("id_course", "")


def test_given_licences_when_validated_then_valid_or_invalid_with_an_error_code(sandbox: CeBroker) -> None:
    root = ET.Element("licensees", CREDENTIALS)
    for number in ("RN4488120", "4488120"):
        licensee = ET.SubElement(root, "licensee")
        for tag, text in (("licensee_profession", "RN"), ("cebroker_state", "FL"), ("license", number)):
            ET.SubElement(licensee, tag).text = text

    answers = [dict(node.attrib) for node in post(sandbox, "license-validation", root).iter("licensee")]

    assert [(a["licensee_number"], a["valid"], a["ErrorCode"], a["Message"]) for a in answers] == [
        ("RN4488120", "true", "", ""),
        ("4488120", "false", "80", "Invalid license Number"),
    ]


def test_given_a_roster_before_its_course_when_posted_then_its_nodes_say_create_the_course_first(
    sandbox: CeBroker,
) -> None:
    receipt = post(sandbox, "rosters", roster("20-000001"))

    [node] = receipt.iter("attendee")
    assert node.get("Message") == "id_course: no such course; create the course before its roster"
    assert sandbox.rows() == {}


def test_given_an_entry_reported_when_posted_again_then_refused_as_already_reported(sandbox: CeBroker) -> None:
    course_id = course(sandbox)
    assert course_id.startswith("20-") and course(sandbox) == course_id, "a course created twice"
    [first] = post(sandbox, "rosters", roster(course_id)).iter("attendee")

    [again] = post(sandbox, "rosters", roster(course_id)).iter("attendee")

    assert first.get("Message") == "" and first.get("id_attendee")
    assert (again.get("Message") or "").startswith("Already reported") and again.get("id_attendee") is None
    assert (len(sandbox.reported), sandbox.refused_duplicates) == (1, 1)


def test_given_a_message_over_the_limit_when_posted_then_refused_whole(sandbox: CeBroker) -> None:
    root = roster(course(sandbox))
    [node] = root.iter("roster")
    for _ in range(40):
        node.append(next(root.iter("attendee")))

    response = requests.post(f"{sandbox.url}/ws/rosters", data=ET.tostring(root), timeout=5)

    assert response.status_code == 413 and sandbox.rows() == {}
