"""Credit rules, one table per rule; each row names its source (domain/credit-rules.md) in its id or the test's
docstring. Times are minutes after 09:00 on the test activity's session day (UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from reconcile.catalog import parse_catalog
from reconcile.credit_rules import MISSING_BOARD_IDENTITY, UNKNOWN_PROFESSION, decide_credits
from reconcile.engine import (
    INVALID_CLAIM,
    MISSING_VOID_TARGET,
    NOT_ACCREDITED,
    OUTSIDE_ACTIVITY_WINDOW,
    UNKNOWN_ACTIVITY,
    resolve_events,
)
from reconcile.identity import IdentityIndex
from reconcile.learners import LearnerFacts
from reconcile.participation import union
from reconcile.vocabulary import CONSENT_MISSING, PARTIAL_BOARD_CREDIT, UNKNOWN_BOARD

DAY = datetime(2026, 3, 10, 9, tzinfo=UTC)
CATALOG = parse_catalog(
    {
        "activities": [
            {
                "id": "LIVE",
                "title": "Live workshop, 09:00-12:00 with a 15 minute break, 10 minutes of evaluation",
                "format": "live",
                "accreditors": ["ACCME", "ANCC", "AANP", "AAPA"],
                "designations": {
                    "AMA_PRA_1": "2.75",
                    "ANCC_CH": "3.00",
                    "ANCC_PHARM": "1.00",
                    "AANP_CH": "2.75",
                    "AANP_RX": "1.00",
                    "AAPA_1": "2.75",
                },
                "window": {"start": "2026-03-01", "end": "2026-03-31"},
                "sessions": [{"start": "2026-03-10T09:00:00Z", "end": "2026-03-10T12:00:00Z"}],
                "breaks": [{"start": "2026-03-10T10:25:00Z", "end": "2026-03-10T10:40:00Z"}],
                "evaluation_minutes": 10,
            },
            {
                "id": "ENDURING",
                "title": "Enduring module with MOC in whole points",
                "format": "enduring",
                "accreditors": ["ACCME", "ABIM", "ANCC"],
                "designations": {"AMA_PRA_1": "1.50", "ABIM_MOC": "1.00", "ANCC_CH": "1.50", "ANCC_PHARM": "0.50"},
                "increments": {"ABIM_MOC": "1.00"},
                "window": {"start": "2026-01-01", "end": "2026-12-31"},
            },
            {"id": "NOCERT", "title": "Journal club, not certified", "window": {"end": "2026-12-31"}},
        ]
    }
)
BOARD_CERTIFIED = LearnerFacts("MD", "ABIM-1", "01-02", "ABIM", True)


def at(minutes: float) -> datetime:
    return DAY + timedelta(minutes=minutes)


def live_events(
    ev: Any, segments: list[tuple[float, float]], completed: bool, claims: list[tuple[str, float]]
) -> list[dict[str, Any]]:
    events = [ev(f"a{i}", "ATTENDED", start=at(s), end=at(e), when=at(s)) for i, (s, e) in enumerate(segments)]
    if completed:
        events.append(ev("eval", "COMPLETED", when=at(200)))
    if claims:
        events.append(ev("claim", "CLAIMED", when=at(210), claims=claims))
    return events


def decided(
    activity_id: str, profession: str | None, events: list[dict[str, Any]], facts: LearnerFacts = BOARD_CERTIFIED
) -> dict[str, str]:
    decisions = decide_credits(CATALOG.activities[activity_id], profession, facts, events)
    return {t: str(d.amount) for t, d in decisions.awarded.items()}


FULL = [(0, 180)]
LIVE_TABLE = [
    # (row id with source, profession, segments, completed evaluation, claims, credit type, expected amount)
    ("ama-booklet-full-session-minus-break-capped", "MD", FULL, False, [], "AMA_PRA_1", "2.75"),
    ("ama-booklet-50min-nearest-quarter", "MD", [(0, 50)], False, [], "AMA_PRA_1", "0.75"),
    ("ama-booklet-37.5min-half-up", "MD", [(0, 37.5)], False, [], "AMA_PRA_1", "0.75"),
    ("ama-booklet-14min-below-quarter-none", "MD", [(0, 14)], False, [], "AMA_PRA_1", None),
    ("domain-union-overlaps-and-duplicates-once", "MD", [(0, 60), (30, 90), (0, 60)], False, [], "AMA_PRA_1", "1.50"),
    ("domain-clipped-to-scheduled-session", "MD", [(-60, 30)], False, [], "AMA_PRA_1", "0.50"),
    ("domain-breaks-subtracted", "MD", [(80, 110)], False, [], "AMA_PRA_1", "0.25"),
    ("ama-claim-lowers-rounded-like-the-credit", "MD", FULL, False, [("AMA_PRA_1", 1.1)], "AMA_PRA_1", "1.00"),
    ("design-claim-never-raises-above-participation", "MD", [(0, 50)], False, [("AMA_PRA_1", 2)], "AMA_PRA_1", "0.75"),
    ("domain-eligibility-rn-never-ama", "RN", FULL, True, [], "AMA_PRA_1", None),
    ("ancc-evaluation-added-when-completed-round-down", "RN", FULL, True, [], "ANCC_CH", "2.75"),
    ("ancc-no-evaluation-without-completion", "RN", [(0, 50)], False, [], "ANCC_CH", "0.75"),
    ("ancc-50min-plus-10-evaluation", "RN", [(0, 50)], True, [], "ANCC_CH", "1.00"),
    ("ancc-round-down-not-nearest-55min", "RN", [(0, 55)], False, [], "ANCC_CH", "0.75"),
    ("domain-eligibility-md-never-ancc", "MD", FULL, True, [], "ANCC_CH", None),
    ("aacn-pharm-proportional-1x2.75/3-round-down", "NP", FULL, True, [], "ANCC_PHARM", "0.75"),
    ("aacn-pharm-rn-not-eligible", "RN", FULL, True, [], "ANCC_PHARM", None),
    ("aanp-excludes-evaluation", "NP", [(0, 50)], True, [], "AANP_CH", "0.75"),
    ("aanp-full-capped", "NP", FULL, True, [], "AANP_CH", "2.75"),
    ("aanp-rx-proportional-full", "NP", FULL, False, [], "AANP_RX", "1.00"),
    ("aanp-rx-proportional-1x0.75/2.75-round-down", "NP", [(0, 50)], False, [], "AANP_RX", "0.25"),
    ("aapa-nearest-quarter-half-up-like-ama", "PA", [(0, 37.5)], False, [], "AAPA_1", "0.75"),
    ("aapa-below-quarter-none", "PA", [(0, 14)], False, [], "AAPA_1", None),
    ("aapa-np-not-eligible", "NP", FULL, False, [], "AAPA_1", None),
    ("domain-live-completion-without-time-earns-designation", "MD", [], True, [], "AMA_PRA_1", "2.75"),
    ("domain-attendance-without-time-earns-nothing", "MD", [], False, [], "AMA_PRA_1", None),
]


@pytest.mark.parametrize(
    ("profession", "segments", "completed", "claims", "credit_type", "expected"),
    [row[1:] for row in LIVE_TABLE],
    ids=[row[0] for row in LIVE_TABLE],
)
def test_given_live_participation_when_decided_then_each_credit_types_rule(
    ev: Any,
    profession: str,
    segments: list[tuple[float, float]],
    completed: bool,
    claims: list[tuple[str, float]],
    credit_type: str,
    expected: str | None,
) -> None:
    events = live_events(ev, segments, completed, claims)
    if not segments and not completed:
        events.append(ev("untimed", "ATTENDED", when=at(0)))
    assert decided("LIVE", profession, events).get(credit_type) == expected


def test_given_only_bare_durations_when_decided_then_largest_report_capped_at_the_schedule(ev: Any) -> None:
    """Domain "participation time" + our choice: duration-only reports cannot be placed on the clock, so the
    largest counts (duplicates do not add up), capped at what the schedule offers (165 minutes)."""
    reports = [ev("m1", "ATTENDED", minutes=50, when=at(0)), ev("m2", "ATTENDED", minutes=50, when=at(1))]
    assert decided("LIVE", "MD", reports)["AMA_PRA_1"] == "0.75"
    assert decided("LIVE", "MD", [ev("m3", "ATTENDED", minutes=400, when=at(0))])["AMA_PRA_1"] == "2.75"


def test_given_evaluation_on_a_later_day_when_decided_then_ancc_is_dated_at_the_evaluation(ev: Any) -> None:
    """ANCC manual: evaluation time is part of the contact hours, so the credit is complete with it."""
    events = [ev("a", "ATTENDED", start=at(0), end=at(180), when=at(0)), ev("e", "COMPLETED", when=at(60 * 24 * 2))]
    decisions = decide_credits(CATALOG.activities["LIVE"], "NP", BOARD_CERTIFIED, events).awarded
    assert decisions["ANCC_CH"].completed_on == date(2026, 3, 12)
    assert decisions["AANP_CH"].completed_on == date(2026, 3, 10)
    assert decisions["ANCC_CH"].evidence == ("lms:a", "lms:e")


def local_live(
    activity_id: str, zone: str, day: str, designation: str, breaks: list[tuple[str, str]]
) -> dict[str, Any]:
    """A live activity scheduled 00:00-04:00 local time on `day` (a daylight-saving day in `zone`)."""
    return {
        "id": activity_id,
        "title": f"Overnight live session {day} in {zone}",
        "format": "live",
        "accreditors": ["ACCME", "ANCC"],
        "designations": {"AMA_PRA_1": designation, "ANCC_CH": designation},
        "window": {"start": "2026-01-01", "end": "2026-12-31"},
        "timezone": zone,
        "sessions": [{"start": f"{day}T00:00:00", "end": f"{day}T04:00:00"}],
        "breaks": [{"start": f"{day}T{s}:00", "end": f"{day}T{e}:00"} for s, e in breaks],
        "evaluation_minutes": 10,
    }


# Each session is 4 wall-clock hours; its real length is 3 hours on a spring-forward day and 5 on a fall-back
# day. Designations follow the wall clock on purpose: the participation must cap them, never the reverse.
DST_CATALOG = parse_catalog(
    {
        "activities": [
            local_live("NY-SPRING", "America/New_York", "2026-03-08", "4.00", []),  # 05:00Z-08:00Z
            local_live("NY-FALL", "America/New_York", "2026-11-01", "5.00", []),  # 04:00Z-09:00Z
            # 01:45 is its first occurrence (EDT, 05:45Z), 02:15 is EST (07:15Z): a 90 minute break.
            local_live("NY-FALL-BREAK", "America/New_York", "2026-11-01", "5.00", [("01:45", "02:15")]),
            local_live("BERLIN-SPRING", "Europe/Berlin", "2026-03-29", "4.00", []),  # 28th 23:00Z-02:00Z
            # Session 24th 22:00Z-03:00Z; 02:45 first occurrence (CEST, 00:45Z) to 03:15 CET (02:15Z): 90 minutes.
            local_live("BERLIN-FALL-BREAK", "Europe/Berlin", "2026-10-25", "5.00", [("02:45", "03:15")]),
        ]
    }
)
DST_TABLE = [
    # (row id, activity, profession, segments as UTC instants, completed evaluation, credit type, expected)
    (
        "ny-fall-early-to-late-is-5-real-hours",
        "NY-FALL",
        "MD",
        [("11-01T03:45", "11-01T09:15")],
        False,
        "AMA_PRA_1",
        "5.00",
    ),
    ("ny-fall-exactly-the-session", "NY-FALL", "MD", [("11-01T04:00", "11-01T09:00")], False, "AMA_PRA_1", "5.00"),
    (
        "ny-fall-segment-straddling-the-change",
        "NY-FALL",
        "MD",
        [("11-01T05:30", "11-01T07:00")],
        False,
        "AMA_PRA_1",
        "1.50",
    ),
    ("ny-fall-ancc-with-evaluation-capped", "NY-FALL", "RN", [("11-01T03:45", "11-01T09:15")], True, "ANCC_CH", "5.00"),
    (
        "ny-fall-break-straddling-the-change",
        "NY-FALL-BREAK",
        "MD",
        [("11-01T03:45", "11-01T09:15")],
        False,
        "AMA_PRA_1",
        "3.50",
    ),
    (
        "ny-fall-segment-and-break-straddling",
        "NY-FALL-BREAK",
        "MD",
        [("11-01T05:00", "11-01T08:00")],
        False,
        "AMA_PRA_1",
        "1.50",
    ),
    (
        "ny-spring-early-to-late-is-3-real-hours",
        "NY-SPRING",
        "MD",
        [("03-08T04:45", "03-08T08:15")],
        False,
        "AMA_PRA_1",
        "3.00",
    ),
    (
        "ny-spring-segment-straddling-the-change",
        "NY-SPRING",
        "MD",
        [("03-08T06:30", "03-08T07:30")],
        False,
        "AMA_PRA_1",
        "1.00",
    ),
    (
        "berlin-spring-early-to-late-is-3-real-hours",
        "BERLIN-SPRING",
        "MD",
        [("03-28T22:45", "03-29T02:15")],
        False,
        "AMA_PRA_1",
        "3.00",
    ),
    (
        "berlin-fall-break-straddling-the-change",
        "BERLIN-FALL-BREAK",
        "MD",
        [("10-24T21:45", "10-25T03:15")],
        False,
        "AMA_PRA_1",
        "3.50",
    ),
    (
        "berlin-fall-leaving-during-the-repeated-hour",
        "BERLIN-FALL-BREAK",
        "MD",
        [("10-24T21:45", "10-25T01:30")],
        False,
        "AMA_PRA_1",
        "2.75",
    ),
]


@pytest.mark.parametrize(
    ("activity_id", "profession", "segments", "completed", "credit_type", "expected"),
    [row[1:] for row in DST_TABLE],
    ids=[row[0] for row in DST_TABLE],
)
def test_given_a_local_session_across_a_dst_change_when_decided_then_real_elapsed_minutes_are_credited(
    ev: Any,
    activity_id: str,
    profession: str,
    segments: list[tuple[str, str]],
    completed: bool,
    credit_type: str,
    expected: str,
) -> None:
    """Domain "participation time" is elapsed time: sessions, breaks and segments are compared as instants."""
    spans = [(datetime.fromisoformat(f"2026-{s}Z"), datetime.fromisoformat(f"2026-{e}Z")) for s, e in segments]
    events = [ev(f"a{i}", "ATTENDED", start=s, end=e, when=s) for i, (s, e) in enumerate(spans)]
    if completed:
        events.append(ev("eval", "COMPLETED", when=spans[-1][1]))
    decisions = decide_credits(DST_CATALOG.activities[activity_id], profession, BOARD_CERTIFIED, events)
    assert str(decisions.awarded[credit_type].amount) == expected


@pytest.mark.parametrize(
    ("activity_id", "expected"), [("NY-SPRING", "3.00"), ("NY-FALL", "5.00"), ("BERLIN-FALL-BREAK", "3.50")]
)
def test_given_a_bare_duration_on_a_dst_day_when_decided_then_capped_at_the_real_schedule(
    ev: Any, activity_id: str, expected: str
) -> None:
    """A duration-only report is capped at what the schedule offers in elapsed time, not on the wall clock."""
    report = ev("m", "ATTENDED", minutes=600, when=DST_CATALOG.activities[activity_id].sessions[0].start)
    decisions = decide_credits(DST_CATALOG.activities[activity_id], "MD", BOARD_CERTIFIED, [report])
    assert str(decisions.awarded["AMA_PRA_1"].amount) == expected


ENDURING_TABLE = [
    ("domain-enduring-completion-earns-designation", "MD", [], None, {"AMA_PRA_1": "1.50", "ABIM_MOC": "1.00"}),
    ("domain-enduring-time-reported-is-ignored", "MD", [20], None, {"AMA_PRA_1": "1.50", "ABIM_MOC": "1.00"}),
    ("pars-moc-min-of-designation-and-ama", "MD", [], ("AMA_PRA_1", 0.9), {"AMA_PRA_1": "1.00", "ABIM_MOC": "1.00"}),
    ("pars-moc-whole-points-round-down-to-none", "MD", [], ("AMA_PRA_1", 0.6), {"AMA_PRA_1": "0.50"}),
    ("ancc-enduring-with-pharm-portion", "NP", [], None, {"ANCC_CH": "1.50", "ANCC_PHARM": "0.50"}),
    ("aacn-pharm-follows-claimed-contact-hours", "NP", [], ("ANCC_CH", 0.8), {"ANCC_CH": "0.75", "ANCC_PHARM": "0.25"}),
    ("domain-eligibility-pa-gets-nothing-here", "PA", [], None, {}),
]


@pytest.mark.parametrize(
    ("profession", "minutes", "claim", "expected"),
    [row[1:] for row in ENDURING_TABLE],
    ids=[row[0] for row in ENDURING_TABLE],
)
def test_given_an_enduring_completion_when_decided_then_designation_lowered_only_by_claims(
    ev: Any, profession: str, minutes: list[float], claim: tuple[str, float] | None, expected: dict[str, str]
) -> None:
    events = [ev("c1", "COMPLETED", minutes=m or None, when=at(0)) for m in minutes or [0]]
    if claim:
        events.append(ev("claim", "CLAIMED", when=at(5), claims=[claim]))
    assert decided("ENDURING", profession, events) == expected


def test_given_two_completions_when_decided_then_the_first_dates_the_credit(ev: Any) -> None:
    events = [ev("late", "COMPLETED", when=at(60 * 24 * 30)), ev("early", "COMPLETED", when=at(0))]
    decision = decide_credits(CATALOG.activities["ENDURING"], "MD", BOARD_CERTIFIED, events).awarded["AMA_PRA_1"]
    assert (decision.completed_on, decision.evidence) == (date(2026, 3, 10), ("lms:early", "lms:late"))


def test_given_two_claims_when_decided_then_the_latest_corrects_the_earlier(ev: Any) -> None:
    """Our choice (credit_rules module docstring): a later claim replaces an earlier one."""
    events = [
        ev("c", "COMPLETED", when=at(0)),
        ev("claim-2", "CLAIMED", when=at(20), claims=[("AMA_PRA_1", 1.25)]),
        ev("claim-1", "CLAIMED", when=at(10), claims=[("AMA_PRA_1", 0.5)]),
    ]
    assert decided("ENDURING", "MD", events)["AMA_PRA_1"] == "1.25"


@pytest.mark.parametrize(
    ("facts", "moc"),
    [
        (LearnerFacts("MD", None, "01-02", "ABIM", True), False),
        (LearnerFacts("MD", "ABIM-1", None, "ABIM", True), False),
        (LearnerFacts("MD", "ABIM-1", "01-02", "ABIM", True), True),
    ],
    ids=["no-board-id", "no-dob", "both"],
)
def test_given_moc_when_board_identity_is_incomplete_then_only_moc_is_held(
    ev: Any, facts: LearnerFacts, moc: bool
) -> None:
    """PARS MOC FAQ: MOC needs the diplomate id and dob MM-DD; missing → MISSING_BOARD_IDENTITY for the MOC
    record only; the other credit types still flow."""
    decisions = decide_credits(CATALOG.activities["ENDURING"], "MD", facts, [ev("c", "COMPLETED", when=at(0))])
    assert ("ABIM_MOC" in decisions.awarded) is moc and "AMA_PRA_1" in decisions.awarded
    assert [h.reason_code for h in decisions.held] == ([] if moc else [MISSING_BOARD_IDENTITY])


def test_given_an_unknown_profession_when_decided_then_everything_held_not_dropped(ev: Any) -> None:
    """Our choice (decide_credits): an attendee known only by email is held, and decided when known."""
    decisions = decide_credits(CATALOG.activities["LIVE"], None, LearnerFacts(), [ev("c", "COMPLETED", when=at(0))])
    assert decisions.awarded == {} and [h.reason_code for h in decisions.held] == [UNKNOWN_PROFESSION]


@pytest.mark.parametrize(
    ("activity", "profession", "claim", "expected"),
    [
        ("NOCERT", "MD", 1.1, "1.00"),
        ("NOCERT", "DO", 0.1, None),
        ("NOCERT", "RN", 1.0, None),
        ("ENDURING", "MD", 1.0, None),
    ],
    ids=["ama-cat2-taken-as-claimed-nearest-quarter", "rounds-to-nothing", "rn-not-eligible", "not-for-cat1-activity"],
)
def test_given_a_category_2_claim_when_decided_then_self_claimed_credit(
    ev: Any, activity: str, profession: str, claim: float, expected: str | None
) -> None:
    """ama-assn.org: Category 2 is self-claimed for activities not certified for Category 1."""
    events = [ev("claim", "CLAIMED", activity=activity, when=at(0), claims=[("AMA_PRA_2", claim)])]
    decisions = decide_credits(CATALOG.activities[activity], profession, BOARD_CERTIFIED, events).awarded
    assert (str(decisions["AMA_PRA_2"].amount) if "AMA_PRA_2" in decisions else None) == expected
    if expected:
        assert decisions["AMA_PRA_2"].completed_on == date(2026, 3, 10)


@pytest.mark.parametrize(
    ("overrides", "reason_code"),
    [
        ({"activity": "NOPE"}, UNKNOWN_ACTIVITY),
        ({"when": datetime(2026, 4, 1, 5, tzinfo=UTC)}, OUTSIDE_ACTIVITY_WINDOW),
        ({"activity": "NOCERT"}, NOT_ACCREDITED),
        ({"kind": "CLAIMED", "claims": [("AAPA_1", 1.0)], "activity": "ENDURING"}, NOT_ACCREDITED),
        ({"kind": "CLAIMED", "claims": [("AMA_PRA_2", 1.0)], "activity": "ENDURING"}, NOT_ACCREDITED),
        ({"kind": "CLAIMED", "claims": [("AMA_PRA_2", 24.5)], "activity": "NOCERT"}, INVALID_CLAIM),
        ({"kind": "CLAIMED", "claims": [("AMA_PRA_2", 0)], "activity": "NOCERT"}, INVALID_CLAIM),
        ({"kind": "CLAIMED", "claims": [("AMA_PRA_1", -1)]}, INVALID_CLAIM),
        ({"kind": "VOIDED"}, MISSING_VOID_TARGET),
    ],
    ids=[
        "design-unknown-activity",
        "design-outside-accreditation-window",
        "design-activity-not-designated",
        "design-claim-for-undesignated-type",
        "ama-cat2-not-on-cat1-activity",
        "our-choice-cat2-at-most-24-per-activity-day",
        "our-choice-cat2-above-zero",
        "claims-above-zero",
        "void-names-no-event",
    ],
)
def test_given_an_event_the_catalog_cannot_credit_when_resolved_then_reason_coded_rejection(
    ev: Any, overrides: dict[str, Any], reason_code: str
) -> None:
    event = ev("e1", overrides.pop("kind", "ATTENDED"), **{"activity": "LIVE", "when": at(0), **overrides})
    resolved, rejections = resolve_events([event], CATALOG, IdentityIndex(), {})
    assert (resolved, [r.reason_code for r in rejections]) == ([], [reason_code])


def test_given_a_category_2_claim_on_an_uncertified_activity_when_resolved_then_accepted(ev: Any) -> None:
    event = ev("e1", "CLAIMED", activity="NOCERT", when=at(0), claims=[("AMA_PRA_2", 24)])
    resolved, rejections = resolve_events([event], CATALOG, IdentityIndex(), {})
    assert (len(resolved), rejections) == (1, [])


def test_given_touching_and_empty_spans_when_unioned_then_merged_and_dropped() -> None:
    assert union([(at(0), at(10)), (at(10), at(20)), (at(30), at(30)), (at(40), at(35))]) == [(at(0), at(20))]


MOC_ONLY = parse_catalog(
    {
        "activities": [
            {
                "id": "MOC-Q",
                "title": "Enduring module with MOC in quarter points",
                "format": "enduring",
                "accreditors": ["ACCME"],
                "designations": {"AMA_PRA_1": "2.00", "ABIM_MOC": "2.00"},
                "window": {"start": "2026-01-01", "end": "2026-12-31"},
            }
        ]
    }
).activities["MOC-Q"]


@pytest.mark.parametrize(
    ("facts", "held"),
    [
        (LearnerFacts("MD", "ABIM-1", "01-02", None, True), UNKNOWN_BOARD),
        (LearnerFacts("MD", "ABIM-1", "01-02", "AOBIM", True), UNKNOWN_BOARD),
        (LearnerFacts("MD", "ABIM-1", "01-02", "ABIM", None), CONSENT_MISSING),
        (LearnerFacts("MD", "ABIM-1", "01-02", "ABIM", False), CONSENT_MISSING),
        (LearnerFacts("MD", "ABIM-1", "01-02", "ABIM", True), None),
        (LearnerFacts("MD", "ABIM-1", "01-02", "ABP", True), None),
    ],
    ids=["no-board", "not-a-board", "consent-not-given", "consent-declined", "abim", "abp-full-credit"],
)
def test_given_moc_when_the_board_or_consent_is_missing_then_moc_is_held_and_the_cme_credit_is_not(
    ev: Any, facts: LearnerFacts, held: str | None
) -> None:
    """ACCME FAQ 7921: MOC needs the learner's permission; the board is the source's, never guessed."""
    decisions = decide_credits(MOC_ONLY, "MD", facts, [ev("c", "COMPLETED", when=at(0))])
    assert decisions.awarded["AMA_PRA_1"].amount == 2
    assert [h.reason_code for h in decisions.held] == ([] if held is None else [held])
    assert ("ABIM_MOC" in decisions.awarded) is (held is None)


@pytest.mark.parametrize(("board", "held"), [("ABP", [PARTIAL_BOARD_CREDIT]), ("ABIM", [])])
def test_given_partial_moc_when_the_board_is_abp_then_held_for_full_credit_only(
    ev: Any, board: str, held: list[str]
) -> None:
    """ACCME MOC tips: ABP takes no partial credit; other boards take what was earned."""
    events = [ev("c", "COMPLETED", when=at(0)), ev("claim", "CLAIMED", when=at(10), claims=[("AMA_PRA_1", 1.0)])]
    decisions = decide_credits(MOC_ONLY, "MD", LearnerFacts("MD", "ABP-1", "01-02", board, True), events)
    assert decisions.awarded["AMA_PRA_1"].amount == 1
    assert [h.reason_code for h in decisions.held] == held
    assert ("ABIM_MOC" in decisions.awarded) is (not held)
