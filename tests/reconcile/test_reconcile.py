"""The reconcile core, without Kafka, SQL or Prefect: identity, activity checks, AMA PRA 1, merge."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from reconcile.catalog import parse_catalog
from reconcile.credit_rules import AMA_PRA_1, event_key
from reconcile.engine import (
    IDENTITY_CONFLICT,
    OUTSIDE_ACTIVITY_WINDOW,
    UNKNOWN_ACTIVITY,
    reconcile_pairs,
    resolve_events,
)
from reconcile.identity import identity_keys, resolve_learner
from reconcile.merge import AWARDED, REVOKED, CreditState

CATALOG = parse_catalog(
    {
        "activities": [
            {
                "id": "ENDURING",
                "title": "Enduring",
                "format": "enduring",
                "refs": ["https://x/ENDURING"],
                "accreditors": ["ACCME"],
                "designations": {"AMA_PRA_1": "1.50"},
                "window": {"start": "2026-01-01", "end": "2026-12-31"},
            },
            {
                "id": "LIVE",
                "title": "Live",
                "format": "live",
                "accreditors": ["ACCME"],
                "designations": {"AMA_PRA_1": "2.00"},
            },
        ]
    }
)


def event(
    event_id: str,
    kind: str = "COMPLETED",
    activity: str = "https://x/ENDURING",
    npi: str = "1234567893",
    when: datetime = datetime(2026, 11, 20, 10, tzinfo=UTC),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source": "lms",
        "source_ref": f"statement:{event_id}",
        "kind": kind,
        "occurred_at": when,
        "started_at": None,
        "ended_at": None,
        "minutes": None,
        "activity_ref": activity,
        "learner": {"npi": npi, "email": f"{event_id}@example.org", "profession": "MD"},
        "claimed": None,
        "voids_event_id": None,
        **extra,
    }


def reconcile(events: list[dict[str, Any]], current: dict[str, CreditState] | None = None) -> list[CreditState]:
    resolved, rejections = resolve_events(events, CATALOG, {}, {})
    assert not rejections
    evidence: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in resolved:
        if r.learner_id and r.activity_id:
            evidence.setdefault((r.learner_id, r.activity_id), []).append(dict(r.event))
    voided = {f"lms:{e['voids_event_id']}" for e in events if e["kind"] == "VOIDED"}
    professions = {learner_id: "MD" for learner_id, _ in evidence}
    return reconcile_pairs(evidence, voided, professions, CATALOG, current or {})


def test_given_an_enduring_completion_when_reconciled_then_one_ama_pra_1_at_the_designated_amount() -> None:
    [record] = reconcile([event("s1")])
    assert (record.credit_type, record.amount, record.version, record.status) == (
        AMA_PRA_1,
        Decimal("1.50"),
        1,
        AWARDED,
    )
    assert record.completed_on == date(2026, 11, 20)


def test_given_a_second_completion_when_reconciled_against_the_first_then_no_new_version() -> None:
    [first] = reconcile([event("s1")])
    assert (
        reconcile([event("s1"), event("s2", when=datetime(2026, 11, 21, tzinfo=UTC))], {first.record_id: first}) == []
    )


def test_given_the_only_completion_is_voided_when_reconciled_then_the_record_is_revoked() -> None:
    [first] = reconcile([event("s1")])
    void = event("v1", kind="VOIDED", activity=None, voids_event_id="s1")
    [revoked] = reconcile([event("s1"), void], {first.record_id: first})
    assert (revoked.status, revoked.version) == (REVOKED, 2)


def test_given_a_nurse_when_reconciled_then_no_ama_credit_and_no_error() -> None:
    resolved, _ = resolve_events([event("s1")], CATALOG, {}, {})
    evidence = {(resolved[0].learner_id, "ENDURING"): [event("s1")]}
    assert reconcile_pairs(evidence, set(), {resolved[0].learner_id: "RN"}, CATALOG, {}) == []


@pytest.mark.parametrize(
    ("segments_minutes", "expected"),
    [([50], "0.75"), ([52.5], "1.00"), ([10], None), ([300], "2.00")],
    ids=["rounds-to-nearest-quarter", "rounds-half-up", "below-quarter-none", "capped-at-designation"],
)
def test_given_live_participation_when_reconciled_then_ama_booklet_rounding_and_cap(
    segments_minutes: list[float], expected: str | None
) -> None:
    """AMA PRA booklet: 60 min = 1 credit, nearest 0.25, nothing below 0.25, capped at the designation."""
    events = [event(f"a{i}", kind="ATTENDED", activity="LIVE", minutes=m) for i, m in enumerate(segments_minutes)]
    records = reconcile(events)
    assert [str(r.amount) for r in records] == ([expected] if expected else [])


def test_given_overlapping_segments_when_reconciled_then_overlap_counts_once() -> None:
    t = lambda h, m: datetime(2026, 11, 20, h, m, tzinfo=UTC)  # noqa: E731
    events = [
        event("a1", kind="ATTENDED", activity="LIVE", started_at=t(9, 0), ended_at=t(10, 0)),
        event("a2", kind="ATTENDED", activity="LIVE", started_at=t(9, 30), ended_at=t(10, 30)),
    ]
    [record] = reconcile(events)
    assert record.amount == Decimal("1.50")


def test_given_unknown_activity_or_outside_window_when_resolved_then_reason_coded_rejections() -> None:
    late = datetime(2027, 1, 5, tzinfo=UTC)
    _, rejections = resolve_events([event("s1", activity="NOPE"), event("s2", when=late)], CATALOG, {}, {})
    assert [r.reason_code for r in rejections] == [UNKNOWN_ACTIVITY, OUTSIDE_ACTIVITY_WINDOW]


def test_given_keys_of_two_known_learners_when_resolved_then_identity_conflict_not_merge() -> None:
    known: dict[tuple[str, str], str] = {("npi", "1234567893"): "learner-a", ("email", "b@example.org"): "learner-b"}
    keys = identity_keys({"npi": "1234567893", "email": "B@Example.org "})
    assert resolve_learner(keys, known).conflict
    e = event("s1")
    e["learner"]["email"] = "b@example.org"
    _, rejections = resolve_events([e], CATALOG, known, {})
    assert [r.reason_code for r in rejections] == [IDENTITY_CONFLICT]


def test_given_the_same_events_in_any_order_when_resolved_then_same_learner_ids() -> None:
    events = [event("s1"), event("s2", npi="1245319599")]
    forward, _ = resolve_events(events, CATALOG, {}, {})
    backward, _ = resolve_events(list(reversed(events)), CATALOG, {}, {})
    assert {r.key: r.learner_id for r in forward} == {r.key: r.learner_id for r in backward}
    assert event_key(events[0]) in {r.key for r in forward}
