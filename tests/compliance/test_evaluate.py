"""Each profile rule as a table: cycle boundaries and the deadline day, the as-of date, topic minimums, caps,
one activity counted once, cross-recognition, one-time requirements, attribute-only requirements, at risk."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from reconcile.compliance.evaluate import AT_RISK, MET, ON_TRACK, OVERDUE, EarnedCredit, evaluate
from reconcile.compliance.profiles import Profile
from tests.compliance.builders import credit, profile

EXPIRES = date(2028, 2, 29)  # a leap-day expiry: the 24-month cycle is 2026-03-01 .. 2028-02-29

PHYSICIAN = profile(
    """
    cycle_months = 24

    [[requirements]]
    id = "total"
    name = "Total CME"
    credit_types = ["AMA_PRA_1", "AMA_PRA_2"]
    minimum = 10
    caps = { AMA_PRA_2 = 2 }

    [[requirements]]
    id = "ethics"
    name = "Ethics"
    credit_types = ["AMA_PRA_1"]
    topics = ["ethics", "professional-responsibility"]
    minimum = 2

    [[requirements]]
    id = "pain"
    name = "Pain management (one-time)"
    credit_types = ["AMA_PRA_1"]
    topics = ["pain-management"]
    minimum = 3
    period = "once"

    [[requirements]]
    id = "dea"
    name = "Controlled substances (DEA registrants)"
    credit_types = ["AMA_PRA_1"]
    topics = ["opioids"]
    minimum = 2
    only_for = ["dea-registrant"]
    """
)

NURSE_PRACTITIONER = profile(
    """
    cycle_months = 60

    [[requirements]]
    id = "total"
    name = "Contact hours"
    credit_types = ["AANP_CH", "ANCC_CH"]
    minimum = 100

    [[requirements]]
    id = "pharmacology"
    name = "Pharmacology"
    credit_types = ["AANP_RX", "ANCC_PHARM"]
    minimum = 25
    """
)

PHYSICIAN_ASSISTANT = profile(
    """
    cycle_months = 24
    cycle_ends = "year_end"
    recognise = { AMA_PRA_1 = "AAPA_1" }

    [[requirements]]
    id = "category-1"
    name = "Category 1"
    credit_types = ["AAPA_1"]
    minimum = 50
    """
)


def counted(
    board: Profile, requirement: str, credits: list[EarnedCredit], as_of: date = EXPIRES, expires: date = EXPIRES
) -> Decimal:
    transcript = evaluate(board, expires, credits, as_of)
    return next(r.counted for r in transcript.requirements if r.requirement.id == requirement)


@pytest.mark.parametrize(
    ("completed_on", "as_of", "expected"),
    [
        (date(2026, 3, 1), EXPIRES, "1.00"),  # first day of the cycle
        (date(2026, 2, 28), EXPIRES, "0.00"),  # the day before: the previous cycle's
        (date(2028, 2, 29), EXPIRES, "1.00"),  # completed on the deadline day itself
        (date(2028, 2, 29), date(2028, 2, 28), "0.00"),  # ... but not yet known the day before
        (date(2028, 3, 1), date(2028, 3, 15), "0.00"),  # after the deadline: the next cycle's
        (date(2027, 6, 2), date(2027, 6, 1), "0.00"),  # after the as-of date
        (date(2027, 6, 1), date(2027, 6, 1), "1.00"),  # on the as-of date
    ],
)
def test_given_a_credit_on_a_boundary_day_when_evaluated_then_only_days_inside_the_cycle_up_to_as_of_count(
    completed_on: date, as_of: date, expected: str
) -> None:
    assert counted(PHYSICIAN, "total", [credit(completed_on)], as_of=as_of) == Decimal(expected)


@pytest.mark.parametrize(
    ("expires", "completed_on", "expected"),
    [
        (date(2029, 2, 28), date(2027, 2, 28), "0.00"),  # 24 months back from 28 Feb 2029: starts 1 Mar 2027
        (date(2029, 2, 28), date(2027, 3, 1), "1.00"),
        (date(2030, 2, 28), date(2028, 2, 29), "1.00"),  # a leap day inside the cycle counts
        (date(2028, 2, 28), date(2028, 2, 29), "0.00"),  # the day after a non-leap-day expiry
        (date(2028, 2, 29), date(2026, 3, 1), "1.00"),
    ],
)
def test_given_leap_years_when_evaluated_then_the_leap_day_belongs_to_the_cycle_by_calendar_arithmetic(
    expires: date, completed_on: date, expected: str
) -> None:
    later = date(2031, 1, 1)
    assert counted(PHYSICIAN, "total", [credit(completed_on)], expires=expires, as_of=later) == Decimal(expected)


@pytest.mark.parametrize(
    ("credits", "expected", "met"),
    [
        ([credit(date(2027, 1, 5), "1.50", tags=("ethics",))], "1.50", False),
        ([credit(date(2027, 1, 5), "2.00", tags=("cardiology", "ethics"))], "2.00", True),
        ([credit(date(2027, 1, 5), "5.00", tags=("cardiology",))], "0.00", False),  # off topic
        ([credit(date(2027, 1, 5), "5.00")], "0.00", False),  # untagged
        (
            [
                credit(date(2027, 1, 5), "1.00", tags=("ethics",)),
                credit(date(2027, 2, 5), "1.00", tags=("professional-responsibility",)),  # any listed topic
            ],
            "2.00",
            True,
        ),
        ([credit(date(2027, 1, 5), "3.00", "AMA_PRA_2", tags=("ethics",))], "0.00", False),  # type not counted
    ],
)
def test_given_topic_credits_when_evaluated_then_the_topic_minimum_counts_tagged_activities_of_its_types(
    credits: list[EarnedCredit], expected: str, met: bool
) -> None:
    transcript = evaluate(PHYSICIAN, EXPIRES, credits, EXPIRES)
    ethics = transcript.requirements[1]

    assert (ethics.counted, ethics.met) == (Decimal(expected), met)
    assert ethics.missing == max(Decimal(0), Decimal(2) - Decimal(expected))


@pytest.mark.parametrize(
    ("credits", "expected", "capped"),
    [
        ([credit(date(2027, 1, 5), "1.50", "AMA_PRA_2")], "1.50", {}),
        (
            [credit(date(2027, 1, 5), "1.50", "AMA_PRA_2"), credit(date(2027, 2, 5), "1.00", "AMA_PRA_2")],
            "2.00",
            {"AMA_PRA_2": Decimal("0.50")},
        ),
        (
            [credit(date(2027, 1, 5), "5.00"), credit(date(2027, 2, 5), "3.00", "AMA_PRA_2")],
            "7.00",
            {"AMA_PRA_2": Decimal("1.00")},
        ),
        ([credit(date(2027, 1, 5), "9.00"), credit(date(2027, 2, 5), "2.00", "AMA_PRA_2")], "11.00", {}),
    ],
)
def test_given_capped_credit_types_when_evaluated_then_at_most_the_cap_counts_and_the_rest_is_shown(
    credits: list[EarnedCredit], expected: str, capped: dict[str, Decimal]
) -> None:
    total = evaluate(PHYSICIAN, EXPIRES, credits, EXPIRES).requirements[0]

    assert total.counted == Decimal(expected)
    assert dict(total.capped) == capped


@pytest.mark.parametrize(
    ("credits", "total", "pharmacology"),
    [
        (  # one activity designated for both nursing accreditors: the same hours, counted once
            [
                credit(date(2027, 1, 5), "4.00", "ANCC_CH", "ACT-4"),
                credit(date(2027, 1, 5), "3.75", "AANP_CH", "ACT-4"),
                credit(date(2027, 1, 5), "1.50", "ANCC_PHARM", "ACT-4"),
                credit(date(2027, 1, 5), "1.50", "AANP_RX", "ACT-4"),
            ],
            "4.00",
            "1.50",
        ),
        (
            [
                credit(date(2027, 1, 5), "4.00", "ANCC_CH", "ACT-4"),
                credit(date(2027, 2, 5), "2.00", "AANP_CH", "ACT-7"),
            ],
            "6.00",
            "0.00",
        ),
    ],
)
def test_given_one_activity_credited_in_several_types_when_evaluated_then_it_counts_once_with_its_largest_credit(
    credits: list[EarnedCredit], total: str, pharmacology: str
) -> None:
    expires = date(2029, 3, 31)
    transcript = evaluate(NURSE_PRACTITIONER, expires, credits, expires)

    assert [r.counted for r in transcript.requirements] == [Decimal(total), Decimal(pharmacology)]


@pytest.mark.parametrize(
    ("credits", "expected"),
    [
        ([credit(date(2027, 1, 5), "3.00", "AMA_PRA_1")], "3.00"),  # NCCPA counts AMA PRA 1 as PA Category 1
        ([credit(date(2027, 1, 5), "2.00", "AAPA_1")], "2.00"),
        (
            [
                credit(date(2027, 1, 5), "2.00", "AAPA_1", "ACT-1"),
                credit(date(2027, 1, 5), "3.00", "AMA_PRA_1", "ACT-1"),
            ],
            "3.00",
        ),
        ([credit(date(2027, 1, 5), "3.00", "AMA_PRA_2")], "0.00"),  # not recognised
        ([credit(date(2027, 12, 31), "1.00", "AAPA_1")], "1.00"),  # logged on 31 December of the expiry year
        ([credit(date(2025, 12, 31), "1.00", "AAPA_1")], "0.00"),
    ],
)
def test_given_cross_recognised_credit_when_evaluated_then_it_counts_as_the_recognised_type(
    credits: list[EarnedCredit], expected: str
) -> None:
    expires = date(2027, 6, 30)  # a year-end cycle: 2026-01-01 .. 2027-12-31
    transcript = evaluate(PHYSICIAN_ASSISTANT, expires, credits, date(2028, 1, 1))

    assert transcript.requirements[0].counted == Decimal(expected)


@pytest.mark.parametrize(
    ("completed_on", "pain", "total"),
    [
        (date(2019, 5, 1), "3.00", "0.00"),  # one-time: years before this cycle still count, not toward the total
        (date(2027, 5, 1), "3.00", "3.00"),
        (date(2028, 3, 1), "0.00", "0.00"),  # after the cycle: the next cycle's concern
    ],
)
def test_given_a_one_time_requirement_when_evaluated_then_credits_of_any_earlier_date_count(
    completed_on: date, pain: str, total: str
) -> None:
    credits = [credit(completed_on, "3.00", tags=("pain-management",))]

    transcript = evaluate(PHYSICIAN, EXPIRES, credits, date(2028, 6, 1))

    assert (transcript.requirements[2].counted, transcript.requirements[0].counted) == (Decimal(pain), Decimal(total))


@pytest.mark.parametrize(
    ("attributes", "applies", "met"),
    [((), False, True), (("dea-registrant",), True, False), (("DEA-Registrant", "other"), True, False)],
)
def test_given_a_requirement_for_some_learners_when_evaluated_then_it_binds_only_learners_with_the_attribute(
    attributes: tuple[str, ...], applies: bool, met: bool
) -> None:
    dea = evaluate(PHYSICIAN, EXPIRES, [], EXPIRES, attributes).requirements[3]

    assert (dea.applies, dea.met, dea.missing) == (applies, met, Decimal(2) if applies else Decimal(0))


def everything_met() -> list[EarnedCredit]:
    return [
        credit(date(2027, 1, 5), "8.00", tags=("ethics",)),
        credit(date(2027, 2, 5), "3.00", tags=("pain-management",)),
    ]


@pytest.mark.parametrize(
    ("credits", "days_before_deadline", "at_risk_days", "status", "at_risk"),
    [
        ([], 90, 90, AT_RISK, True),  # exactly at the threshold
        ([], 91, 90, ON_TRACK, False),
        ([], 0, 90, AT_RISK, True),  # the deadline day
        ([], -1, 90, OVERDUE, True),
        ([], 31, 30, ON_TRACK, False),  # a configured threshold
        ([], 30, 30, AT_RISK, True),
        (everything_met(), 10, 90, MET, False),
        (everything_met(), -10, 90, MET, False),
    ],
)
def test_given_a_deadline_distance_when_evaluated_then_an_unmet_cycle_within_the_threshold_is_at_risk(
    credits: list[EarnedCredit], days_before_deadline: int, at_risk_days: int, status: str, at_risk: bool
) -> None:
    as_of = EXPIRES - timedelta(days=days_before_deadline)

    transcript = evaluate(PHYSICIAN, EXPIRES, credits, as_of, at_risk_days=at_risk_days)

    assert (transcript.status, transcript.at_risk) == (status, at_risk)
    assert transcript.days_to_deadline == days_before_deadline


def test_given_credits_of_several_types_and_topics_when_evaluated_then_totals_are_per_type_and_per_topic() -> None:
    credits = [
        credit(date(2027, 1, 5), "2.00", tags=("ethics", "opioids")),
        credit(date(2027, 2, 5), "1.50", "AMA_PRA_2", tags=("ethics",)),
        credit(date(2025, 2, 5), "9.00", tags=("ethics",)),  # before the cycle
    ]

    transcript = evaluate(PHYSICIAN, EXPIRES, credits, EXPIRES)

    assert transcript.by_credit_type == {"AMA_PRA_1": Decimal("2.00"), "AMA_PRA_2": Decimal("1.50")}
    assert transcript.by_topic == {"ethics": Decimal("3.50"), "opioids": Decimal("2.00")}
    assert [c.completed_on for c in transcript.credits] == [date(2027, 1, 5), date(2027, 2, 5)]
    assert [r.requirement.id for r in transcript.missing] == ["total", "pain"]
