"""Identity resolution (DESIGN §4.1; NPI check digit: domain/credit-rules.md, CMS NPI check-digit rule)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from reconcile.catalog import parse_catalog
from reconcile.engine import IDENTITY_CONFLICT, INVALID_NPI, MISSING_IDENTITY, resolve_events
from reconcile.identity import LEARNER_NAMESPACE, IdentityIndex, identity_keys, npi_is_valid

CATALOG = parse_catalog(
    {"activities": [{"id": "ACT", "title": "A", "accreditors": ["ACCME"], "designations": {"AMA_PRA_1": "1.00"}}]}
)


@pytest.mark.parametrize(
    ("npi", "valid"),
    [
        ("1234567893", True),  # the CMS worked example
        ("1493027167", True),
        ("1234567890", False),  # check digit off by three
        ("1234567839", False),  # two digits swapped
        ("123456789", False),  # nine digits
        ("12345678931", False),
        ("12345678a3", False),
        ("\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff13", False),  # full-width digits
    ],
)
def test_given_an_npi_when_checked_then_the_cms_luhn_rule_over_80840_decides(npi: str, valid: bool) -> None:
    """CMS NPI check-digit rule: Luhn over the prefix 80840 + the first nine digits."""
    assert npi_is_valid(npi) is valid


def test_given_every_identifier_when_keyed_then_design_order_and_normalised_values() -> None:
    """DESIGN §4.1 order: NPI, licence, board id, email, (family name, given initial, dob MM-DD)."""
    learner = {
        "npi": " 1234567893 ",
        "licence": {"number": " rn 123 ", "state": "ca", "profession": "rn"},
        "board_id": " abim-77 ",
        "email": " Ann.Lee@Example.ORG ",
        "given_name": "Ann",
        "family_name": "O'Neil-Díaz",
        "dob_month_day": "02-29",
    }
    assert identity_keys(learner) == [
        ("npi", "1234567893"),
        ("licence", "RN123|CA|RN"),
        ("board_id", "ABIM-77"),
        ("email", "ann.lee@example.org"),
        ("name_dob", "oneildiaz|a|02-29"),
    ]


@pytest.mark.parametrize(
    "learner",
    [
        {"npi": "1234567890"},
        {"given_name": "Ann", "family_name": "Lee", "dob_month_day": "02-30"},
        {"given_name": "Ann", "family_name": "Lee", "dob_month_day": "2-3"},
        {"given_name": "", "family_name": "Lee", "dob_month_day": "02-03"},
        {"licence": {"number": "RN1", "state": "", "profession": "RN"}},
    ],
    ids=["bad-npi", "impossible-dob", "malformed-dob", "no-given-name", "licence-without-state"],
)
def test_given_an_unusable_identifier_when_keyed_then_it_is_not_a_key(learner: dict[str, Any]) -> None:
    assert identity_keys(learner) == []


def test_given_a_new_learner_when_resolved_then_id_is_uuid5_of_the_strongest_key() -> None:
    index = IdentityIndex()
    resolution = index.resolve(identity_keys({"email": "a@x.org", "npi": "1234567893"}))
    assert resolution.learner_id == str(uuid.uuid5(LEARNER_NAMESPACE, "npi:1234567893"))
    assert set(index.added) == {("npi", "1234567893"), ("email", "a@x.org")}


def test_given_a_learner_known_by_email_when_an_event_adds_an_npi_then_same_learner_gains_it() -> None:
    index = IdentityIndex({("email", "a@x.org"): "learner-a"})
    resolution = index.resolve(identity_keys({"email": "A@x.org", "npi": "1234567893"}))
    assert (resolution.learner_id, resolution.new_keys) == ("learner-a", (("npi", "1234567893"),))


@pytest.mark.parametrize(
    ("known", "learner"),
    [
        (
            {("npi", "1234567893"): "a", ("email", "b@x.org"): "b"},
            {"npi": "1234567893", "email": "b@x.org"},
        ),
        (
            {("npi", "1234567893"): "a", ("email", "shared@x.org"): "a"},
            {"npi": "1493027167", "email": "shared@x.org"},
        ),
        (
            {("licence", "RN1|CA|RN"): "a", ("email", "a@x.org"): "a"},
            {"licence": {"number": "RN2", "state": "CA", "profession": "RN"}, "email": "a@x.org"},
        ),
        (
            {("board_id", "ABIM-1"): "a", ("npi", "1234567893"): "a"},
            {"board_id": "ABIM-2", "npi": "1234567893"},
        ),
    ],
    ids=["keys-of-two-learners", "email-of-a-learner-with-another-npi", "other-licence-same-state", "other-board-id"],
)
def test_given_an_event_linking_different_people_when_resolved_then_conflict_and_nothing_recorded(
    known: dict[tuple[str, str], str], learner: dict[str, Any]
) -> None:
    """DESIGN §4.1: an event that links two learners with different strong ids is never a silent merge."""
    index = IdentityIndex(known)
    resolution = index.resolve(identity_keys(learner))
    assert resolution.conflict and resolution.learner_id is None
    assert index.added == {}


def test_given_a_nurse_with_a_licence_in_another_state_when_resolved_then_same_learner() -> None:
    """One licence per state and profession: a second state's licence is the same person, not a conflict."""
    index = IdentityIndex({("licence", "RN1|CA|RN"): "a", ("email", "a@x.org"): "a"})
    licence = {"number": "RN9", "state": "NV", "profession": "RN"}
    assert index.resolve(identity_keys({"licence": licence, "email": "a@x.org"})).learner_id == "a"


def test_given_events_with_bad_or_no_identifiers_when_resolved_then_reason_coded_rejections(ev: Any) -> None:
    """Our choice (engine.resolve_events): an NPI failing its check digit is a dead letter, not ignored."""
    index = IdentityIndex({("npi", "1493027167"): "a", ("email", "b@x.org"): "b"})
    events = [
        ev("bad-npi", npi="1234567890", email="c@x.org"),
        ev("nobody", npi=None),
        ev("conflict", npi="1493027167", email="b@x.org"),
    ]
    resolved, rejections = resolve_events(events, CATALOG, index, {})
    assert resolved == []
    assert [(r.event["event_id"], r.reason_code) for r in rejections] == [
        ("bad-npi", INVALID_NPI),
        ("nobody", MISSING_IDENTITY),
        ("conflict", IDENTITY_CONFLICT),
    ]
    assert index.added == {}
    assert all("1493027167" not in r.reason and "@" not in r.reason for r in rejections)


def test_given_the_same_events_in_any_order_when_resolved_then_same_learner_ids(ev: Any) -> None:
    """Ids come from the strongest key, so order does not matter while every event carries it. (A person
    first seen by email alone keeps the email-derived id once the NPI arrives: ids never change.)"""
    events = [ev("s1", email="a@x.org"), ev("s2", npi="1493027167"), ev("s3", email="A@x.org")]
    forward, _ = resolve_events(events, CATALOG, IdentityIndex(), {})
    backward, _ = resolve_events(list(reversed(events)), CATALOG, IdentityIndex(), {})
    assert {r.key: r.learner_id for r in forward} == {r.key: r.learner_id for r in backward}
    assert forward[0].learner_id == forward[2].learner_id != forward[1].learner_id
