"""A reporting period in the client's own time zone, and the instants derived from it.

A period is ``[from 00:00, to + 1 day 00:00)`` in the client's zone, so "March" means the
client's March even when the provider sits elsewhere. Weeks within the period are counted
from its first day (week 1 = days 1-7), which keeps them hand-checkable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_DAYS = 366
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)


def local_midnight(day: date, tz: str) -> datetime:
    """The UTC instant of 00:00 on ``day`` in ``tz``."""
    return datetime.combine(day, time.min, ZoneInfo(tz)).astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """Inclusive dates ``start``..``end`` in zone ``tz``."""

    start: date
    end: date
    tz: str

    @property
    def lo(self) -> datetime:
        return local_midnight(self.start, self.tz)

    @property
    def hi(self) -> datetime:
        return local_midnight(self.end + timedelta(days=1), self.tz)

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"

    def week_starts(self) -> list[date]:
        """First day of each week of the period (week 1 starts on ``start``)."""
        days = (self.end - self.start).days + 1
        return [self.start + timedelta(days=7 * k) for k in range((days + 6) // 7)]

    def week_edges(self) -> list[datetime]:
        """UTC instants that end weeks 1..n-1 (the period's ``hi`` ends the last one)."""
        return [local_midnight(d, self.tz) for d in self.week_starts()[1:]]

    @property
    def is_month(self) -> bool:
        return self.start.day == 1 and (self.end + timedelta(days=1)).day == 1 and (
            self.start.year, self.start.month) == (self.end.year, self.end.month)

    def following(self) -> Period:
        """The next period of the same kind: the next calendar month for a month, else the
        same number of days right after (the period a credit can be earned back in)."""
        if self.is_month:
            nxt = self.end + timedelta(days=1)
            return month_period(nxt.year, nxt.month, self.tz)
        days = (self.end - self.start).days + 1
        return Period(self.end + timedelta(days=1), self.end + timedelta(days=days), self.tz)

    def preceding(self) -> Period:
        """The previous period of the same kind (the one whose credit this one can win back)."""
        if self.is_month:
            last = self.start - timedelta(days=1)
            return month_period(last.year, last.month, self.tz)
        days = (self.end - self.start).days + 1
        return Period(self.start - timedelta(days=days), self.start - timedelta(days=1), self.tz)


def month_period(year: int, month: int, tz: str) -> Period:
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return Period(first, nxt - timedelta(days=1), tz)


def parse_range(raw_from: str | None, raw_to: str | None) -> tuple[date, date, dict]:
    """Parse ``from``/``to`` query values; the dict holds field errors (empty when valid)."""
    errors: dict[str, list[str]] = {}
    values: dict[str, date | None] = {}
    for name, raw in (("from", raw_from), ("to", raw_to)):
        values[name] = None
        if not raw:
            errors[name] = ["Required: a date as YYYY-MM-DD."]
            continue
        try:
            values[name] = date.fromisoformat(raw.strip())
        except ValueError:
            errors[name] = [f"Not a date: {raw!r}; use YYYY-MM-DD."]
            continue
        if not EARLIEST <= values[name] <= LATEST:  # far dates overflow the calendar maths
            errors[name] = [f"Use a date from {EARLIEST} to {LATEST}."]
            values[name] = None
    start, end = values["from"], values["to"]
    if start and end:
        if start > end:
            errors["to"] = ["Must be on or after `from`."]
        elif (end - start).days + 1 > MAX_DAYS:
            errors["to"] = [f"The period may span at most {MAX_DAYS} days."]
    return start, end, errors  # type: ignore[return-value]
