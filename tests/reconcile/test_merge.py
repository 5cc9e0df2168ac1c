"""Merge and versioning (DESIGN §4.4): one record per (learner, activity, credit type); a version only when
what a registry sees changes; VOIDED evidence that leaves nothing revokes; replays change nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from reconcile.catalog import parse_catalog
from reconcile.credit_rules import CreditDecision
from reconcile.merge import AWARDED, REVOKED, CreditState, merge, record_id_for

CATALOG = parse_catalog(
    {
        "activities": [
            {
                "id": "ACT",
                "title": "Enduring",
                "accreditors": ["ACCME"],
                "designations": {"AMA_PRA_1": "1.50"},
                "window": {"start": "2026-01-01", "end": "2026-12-31"},
            }
        ]
    }
)
DAY = date(2026, 3, 10)
RID = record_id_for("L", "ACT", "AMA_PRA_1")


def state(version: int, status: str = AWARDED, amount: str = "1.50", day: date = DAY) -> CreditState:
    return CreditState(RID, version, status, "L", "ACT", "AMA_PRA_1", Decimal(amount), day, ("lms:a",))


def decision(amount: str = "1.50", day: date = DAY, evidence: tuple[str, ...] = ("lms:a",)) -> CreditDecision:
    return CreditDecision("AMA_PRA_1", Decimal(amount), day, evidence)


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (None, None, None),
        (None, decision(), (1, AWARDED, "1.50", DAY)),
        (state(1), decision(), None),
        (state(1), decision(evidence=("lms:a", "lms:b")), None),
        (state(1), decision("1.00"), (2, AWARDED, "1.00", DAY)),
        (state(1), decision(day=DAY + timedelta(days=1)), (2, AWARDED, "1.50", DAY + timedelta(days=1))),
        (state(1), None, (2, REVOKED, "1.50", DAY)),
        (state(2, REVOKED), None, None),
        (state(2, REVOKED), decision(), (3, AWARDED, "1.50", DAY)),
    ],
    ids=[
        "nothing-stays-nothing",
        "first-evidence-version-1",
        "same-outcome-no-version",
        "more-evidence-same-outcome-no-version",
        "amount-changed-version+1",
        "date-changed-version+1",
        "nothing-left-revoked-version+1",
        "revoked-stays-revoked",
        "evidence-again-after-revocation-awarded",
    ],
)
def test_given_current_and_decision_when_merged_then_design_4_4_versioning(
    current: CreditState | None, new: CreditDecision | None, expected: tuple[Any, ...] | None
) -> None:
    merged = merge(current, new, "L", "ACT", "AMA_PRA_1")
    assert (None if merged is None else (merged.version, merged.status, str(merged.amount), merged.completed_on)) == (
        expected
    )
    if merged is not None:
        assert merged.record_id == RID


def when(days: int) -> datetime:
    return datetime(2026, 3, 10, 9, tzinfo=UTC) + timedelta(days=days)


def test_given_a_completion_then_its_void_in_a_later_batch_when_run_then_awarded_then_revoked(
    ev: Any, memory_run: Any
) -> None:
    run = memory_run(CATALOG)
    run.batch([ev("c1", when=when(0))])
    run.batch([ev("v1", "VOIDED", voids="c1", when=when(1))])
    [learner_id] = {s.learner_id for versions in run.records.values() for s in versions}
    assert [(s.version, s.status) for s in run.record(learner_id, "ACT", "AMA_PRA_1")] == [(1, AWARDED), (2, REVOKED)]


def test_given_a_void_before_the_event_it_voids_when_run_then_never_awarded(ev: Any, memory_run: Any) -> None:
    """A void can arrive first (a fresh full pull sees the voiding statement only); it waits for its target."""
    run = memory_run(CATALOG)
    run.batch([ev("v1", "VOIDED", voids="c1", when=when(1))])
    run.batch([ev("c1", when=when(0))])
    assert run.records == {}


def test_given_a_voided_first_completion_when_a_second_remains_then_a_new_version_dated_by_it(
    ev: Any, memory_run: Any
) -> None:
    run = memory_run(CATALOG)
    run.batch([ev("c1", when=when(0)), ev("c2", when=when(3))])
    run.batch([ev("v1", "VOIDED", voids="c1", when=when(4))])
    [versions] = run.records.values()
    assert [(s.version, s.status, s.completed_on) for s in versions] == [
        (1, AWARDED, date(2026, 3, 10)),
        (2, AWARDED, date(2026, 3, 13)),
    ]
    assert versions[-1].evidence == ("lms:c2",)


def test_given_the_same_evidence_again_when_run_then_no_new_version(ev: Any, memory_run: Any) -> None:
    run = memory_run(CATALOG)
    events = [ev("c1", when=when(0)), ev("v9", "VOIDED", voids="nothing", when=when(1))]
    assert len(run.batch(events)) == 1
    assert run.batch(events) == run.batch(list(reversed(events))) == []
