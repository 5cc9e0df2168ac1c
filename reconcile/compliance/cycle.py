"""The licence cycle a profile and a licence expiry imply, by calendar arithmetic.

The cycle ends on its deadline: the licence expiry, or 31 December of the expiry year for profiles whose board
counts to the year end (NCCPA). It starts the day after the same date `cycle_months` earlier, so consecutive
cycles never share a day (our choice: boards say "in the 24 months before expiry"). Months are calendar months,
clamped to the month's last day: a 24-month cycle ending 29 February 2028 starts 1 March 2026 (28 February 2026
+ 1 day), one ending 28 February 2027 starts 1 March 2025.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from reconcile.compliance.profiles import CYCLE_ENDS_AT_YEAR_END, Profile


@dataclass(frozen=True)
class Cycle:
    start: date
    end: date  # the deadline: credits completed on this day still count

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end


def add_months(day: date, months: int) -> date:
    """`day` moved by whole calendar months (negative: back), clamped to the last day of the target month."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def cycle_of(profile: Profile, licence_expires: date) -> Cycle:
    end = date(licence_expires.year, 12, 31) if profile.cycle_ends == CYCLE_ENDS_AT_YEAR_END else licence_expires
    return Cycle(add_months(end, -profile.cycle_months) + timedelta(days=1), end)
