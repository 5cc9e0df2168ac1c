"""The running total behind the transcript's timeline (`CycleTranscript.running_counted`), as a table: one point
per day a counted credit was completed, caps applied as they fill, ending at what the requirement counts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from reconcile.compliance.evaluate import evaluate
from tests.compliance.builders import credit, profile

BOARD = profile(
    """
    cycle_months = 24

    [[requirements]]
    id = "total"
    name = "CME credits per cycle"
    credit_types = ["AMA_PRA_1", "AMA_PRA_2"]
    minimum = 20
    caps = { AMA_PRA_2 = 1 }
    """
)


def test_given_credits_with_a_cap_and_a_shared_day_when_run_up_then_one_point_per_day_ending_at_counted() -> None:
    credits = [
        credit(date(2026, 6, 9), "4.50"),
        credit(date(2026, 3, 2), "2.00"),
        credit(date(2026, 6, 9), "0.75", "AMA_PRA_2", activity_id="ACT-B"),
        credit(date(2026, 9, 1), "2.00", "AMA_PRA_2"),
    ]
    transcript = evaluate(BOARD, date(2027, 1, 31), credits, date(2026, 11, 23))
    [total] = transcript.requirements

    points = transcript.running_counted(total)

    assert points == [
        (date(2026, 3, 2), Decimal("2.00")),
        (date(2026, 6, 9), Decimal("7.25")),  # 4.50 and 0.75 the same day: one point
        (date(2026, 9, 1), Decimal("7.50")),  # Category 2 capped at 1: only 0.25 more
    ]
    assert points[-1][1] == total.counted


def test_given_no_credit_when_run_up_then_no_point() -> None:
    transcript = evaluate(BOARD, date(2027, 1, 31), [], date(2026, 11, 23))

    assert transcript.running_counted(transcript.requirements[0]) == []
