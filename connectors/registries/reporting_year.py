"""Which completion years a registry still takes. ACCME's FAQ: a year stays open for reports until 31 March of
the next year; the unofficial API reference: only the current and the previous year. Configurable, since the
public record gives the rule but not whether boards or state collaborations keep other dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class YearClose:
    month: int = 3
    day: int = 31

    @classmethod
    def parse(cls, month_day: str) -> YearClose:
        """From "MM-DD"; ValueError if that is no day of a year (29 February is refused: not every year has it)."""
        month, _, day = month_day.partition("-")
        close = cls(int(month), int(day))
        date(2001, close.month, close.day)
        return close

    def is_closed(self, year: int, today: date) -> bool:
        """The current year is open; the previous one until its close day in the current year; older ones never."""
        return year < today.year - 1 or (year == today.year - 1 and today > date(today.year, self.month, self.day))

    def reason(self, year: int) -> str:
        return f"reporting year {year} is closed (open until {self.month:02}-{self.day:02} of the next year)"
