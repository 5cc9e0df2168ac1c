"""Cycle boundaries from a licence expiry: calendar months, month ends and leap years."""

from __future__ import annotations

from datetime import date

import pytest

from reconcile.compliance.cycle import Cycle, add_months, cycle_of
from tests.compliance.builders import profile

ONE_REQUIREMENT = """
[[requirements]]
id = "total"
name = "Total"
credit_types = ["AMA_PRA_1"]
minimum = 10
"""


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap year: clamped to 29 February
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
        (date(2025, 1, 15), -1, date(2024, 12, 15)),
        (date(2028, 2, 29), -24, date(2026, 2, 28)),
        (date(2028, 2, 29), -48, date(2024, 2, 29)),
    ],
)
def test_given_a_day_when_moved_by_months_then_calendar_months_clamp_to_the_month_end(
    day: date, months: int, expected: date
) -> None:
    assert add_months(day, months) == expected


@pytest.mark.parametrize(
    ("months", "ends", "expires", "start", "end"),
    [
        (24, "expiry", date(2027, 1, 31), date(2025, 2, 1), date(2027, 1, 31)),
        (24, "expiry", date(2028, 2, 29), date(2026, 3, 1), date(2028, 2, 29)),  # leap-day expiry
        (24, "expiry", date(2027, 2, 28), date(2025, 3, 1), date(2027, 2, 28)),
        (12, "expiry", date(2029, 2, 28), date(2028, 2, 29), date(2029, 2, 28)),  # starts on a leap day
        (60, "expiry", date(2029, 3, 31), date(2024, 4, 1), date(2029, 3, 31)),
        (36, "expiry", date(2026, 8, 31), date(2023, 9, 1), date(2026, 8, 31)),
        (24, "year_end", date(2027, 6, 30), date(2026, 1, 1), date(2027, 12, 31)),  # NCCPA: to 31 December
        (24, "year_end", date(2028, 2, 29), date(2027, 1, 1), date(2028, 12, 31)),
    ],
)
def test_given_a_profile_and_an_expiry_when_the_cycle_is_computed_then_it_ends_on_the_deadline_and_starts_after(
    months: int, ends: str, expires: date, start: date, end: date
) -> None:
    board = profile(f'cycle_months = {months}\ncycle_ends = "{ends}"\n' + ONE_REQUIREMENT)

    assert cycle_of(board, expires) == Cycle(start, end)


def test_given_consecutive_cycles_when_computed_then_they_neither_overlap_nor_leave_a_gap() -> None:
    board = profile("cycle_months = 24\n" + ONE_REQUIREMENT)

    first = cycle_of(board, date(2026, 2, 28))
    second = cycle_of(board, date(2028, 2, 29))

    assert (second.start - first.end).days == 1
