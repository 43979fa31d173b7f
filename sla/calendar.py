"""Business-hours arithmetic for SLA due times and elapsed business time.

A client's SLA clock runs only during its business windows (local wall time,
minus public holidays and the client's own closure dates), so "4 business
hours" from a Friday-evening submission lands on Monday. This module is pure
Python so that workers, reports and the web app can share one implementation.

Why the design looks like it does:

* Windows are stated in local wall time but measured in real time: each window
  boundary is localized separately (``fold=0``) and converted to UTC, so a
  00:00-06:00 window is 5 real hours on the spring-forward day and 7 on the
  fall-back day, while 09:00-17:00 stays 8.
* Instants are handled as integer microseconds since the Unix epoch, which
  keeps every result exact to the microsecond without float drift.
* Each local calendar year is turned once into a table of per-day windows plus
  a running total of business time before each day. A due time is then one
  binary search, and elapsed time is a difference of two running totals plus
  whole-year totals, instead of walking minutes, hours or even days.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, date, datetime, time, timedelta
from numbers import Real
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_pkg

__all__ = ["BusinessCalendar"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_US_PER_HOUR = 3_600_000_000
# No local year can hold more business time than this; used to refuse targets
# that would run past datetime's range before building thousands of tables.
_MAX_YEAR_US = 366 * 24 * _US_PER_HOUR
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NINE_TO_FIVE = ((time(9), time(17)),)

Window = tuple[time, time]
HoursSpec = Mapping[int, Window | Iterable[Window]]
_Span = tuple[int, int]  # [start, end) in epoch microseconds, UTC


@dataclass(frozen=True, slots=True)
class _YearTable:
    """Business spans of one local calendar year, ready for binary search.

    ``cumulative[i]`` is the business time before day ``i`` (0 = 1 January),
    so ``cumulative[-1]`` is the year's total.
    """

    first_ordinal: int
    spans: tuple[tuple[_Span, ...], ...]
    cumulative: tuple[int, ...]

    @property
    def total(self) -> int:
        return self.cumulative[-1]


class BusinessCalendar:
    """A client's business hours in its own time zone.

    ``hours`` maps weekday (0 = Monday) to one ``(open, close)`` window or a
    list of windows for split shifts; missing weekdays are closed. It defaults
    to Monday-Friday 09:00-17:00. ``holidays`` is a country code understood by
    the ``holidays`` package (``None`` for no public holidays), optionally
    narrowed by ``subdiv``; ``closures`` are the client's own closed dates.
    """

    def __init__(
        self,
        tz: str,
        hours: HoursSpec | None = None,
        holidays: str | None = "US",
        *,
        subdiv: str | None = None,
        closures: Iterable[date] = (),
    ) -> None:
        self.tz = _zone(tz)
        self._hours = _weekly_windows(hours)
        self._holidays = _holiday_lookup(holidays, subdiv)
        self._closures = _closure_dates(closures)
        self._years: dict[int, _YearTable] = {}
        # Year tables are built lazily; the lock keeps concurrent request
        # threads from mutating the shared holidays object at the same time.
        self._lock = threading.Lock()

    @classmethod
    def always(cls, tz: str = "UTC") -> BusinessCalendar:
        """A 24x7 calendar: every instant counts, DST and holidays included.

        Used for contracts whose targets run on calendar hours, so callers can
        treat every SLA through the same interface.
        """
        return _AlwaysOpenCalendar(tz)

    def add_business_hours(self, start: datetime, hours: float) -> datetime:
        """The earliest UTC instant at which ``hours`` business hours have elapsed.

        Because it is the earliest such instant, a due time can fall exactly at
        closing time, and a zero target returns ``start`` even outside hours.
        """
        start_us, day = self._locate(start, "start")
        remaining = _duration_us(hours)
        if remaining == 0:
            return _from_us(start_us)
        year = day.year
        if remaining > (MAXYEAR - year + 1) * _MAX_YEAR_US:
            raise OverflowError(f"{hours} business hours from {start} is past year {MAXYEAR}")
        table = self._year(year)
        needed = self._offset_in_year(table, day, start_us) + remaining
        while needed > table.total:
            needed -= table.total
            year += 1
            table = self._year(year)
        return _from_us(_instant_at(table, needed))

    def business_hours_between(self, a: datetime, b: datetime) -> float:
        """Business hours elapsed from ``a`` to ``b``; negative when ``b`` is earlier."""
        a_us, a_day = self._locate(a, "a")
        b_us, b_day = self._locate(b, "b")
        if b_us < a_us:
            return -self.business_hours_between(b, a)
        elapsed = self._offset_in_year(self._year(b_day.year), b_day, b_us)
        elapsed -= self._offset_in_year(self._year(a_day.year), a_day, a_us)
        elapsed += sum(self._year(year).total for year in range(a_day.year, b_day.year))
        return elapsed / _US_PER_HOUR

    def _locate(self, value: datetime, name: str) -> tuple[int, date]:
        """Epoch microseconds of an aware datetime and its local date."""
        _require_aware(value, name)
        return (value - _EPOCH) // _ONE_US, value.astimezone(self.tz).date()

    @staticmethod
    def _offset_in_year(table: _YearTable, day: date, instant_us: int) -> int:
        """Business time from the start of ``day``'s year up to ``instant_us``."""
        index = day.toordinal() - table.first_ordinal
        spans = table.spans[index]
        today = sum(min(end, instant_us) - begin for begin, end in spans if begin < instant_us)
        return table.cumulative[index] + today

    def _year(self, year: int) -> _YearTable:
        table = self._years.get(year)
        if table is None:
            with self._lock:
                table = self._years.get(year)
                if table is None:
                    table = self._years[year] = self._build_year(year)
        return table

    def _build_year(self, year: int) -> _YearTable:
        first = date(year, 1, 1).toordinal()
        last = date(year, 12, 31).toordinal()
        spans = tuple(self._day_spans(date.fromordinal(o)) for o in range(first, last + 1))
        cumulative = [0]
        for day_spans in spans:
            cumulative.append(cumulative[-1] + sum(end - begin for begin, end in day_spans))
        return _YearTable(first, spans, tuple(cumulative))

    def _day_spans(self, day: date) -> tuple[_Span, ...]:
        """UTC spans of ``day``'s windows, empty on holidays and closures.

        A boundary inside a spring-forward gap is read with the pre-transition
        offset (``fold=0``), so a window closing in the gap can end after the
        next window opens. Clamping each span to start where the previous one
        ended, and dropping spans left empty, keeps spans ordered and stops the
        overlap from being counted twice.
        """
        if day in self._closures or self._holidays(day):
            return ()
        spans: list[_Span] = []
        floor = None
        for opening, closing in self._hours[day.weekday()]:
            begin, end = self._instant_us(day, opening), self._instant_us(day, closing)
            if floor is not None:
                begin = max(begin, floor)
            if end > begin:
                spans.append((begin, end))
                floor = end
        return tuple(spans)

    def _instant_us(self, day: date, wall: time) -> int:
        return (datetime.combine(day, wall, tzinfo=self.tz) - _EPOCH) // _ONE_US


class _AlwaysOpenCalendar(BusinessCalendar):
    """Every instant is business time: plain elapsed-time arithmetic in UTC."""

    def __init__(self, tz: str) -> None:  # no windows, holidays or tables needed
        self.tz = _zone(tz)

    def add_business_hours(self, start: datetime, hours: float) -> datetime:
        _require_aware(start, "start")
        # Convert first: adding to a local aware datetime is wall-clock
        # arithmetic and would be an hour off across a DST change.
        return start.astimezone(UTC) + _duration_us(hours) * _ONE_US

    def business_hours_between(self, a: datetime, b: datetime) -> float:
        _require_aware(a, "a")
        _require_aware(b, "b")
        # Subtracting datetimes that share a tzinfo is wall-clock arithmetic too.
        return ((b.astimezone(UTC) - a.astimezone(UTC)) // _ONE_US) / _US_PER_HOUR


def _instant_at(table: _YearTable, needed: int) -> int:
    """The earliest instant at which ``needed`` (> 0) business time of the year has elapsed.

    ``bisect_left`` finds the first day whose running total reaches the target,
    so a target met exactly at a closing time resolves to that closing time
    rather than to the next opening.
    """
    index = bisect_left(table.cumulative, needed) - 1
    needed -= table.cumulative[index]
    *earlier, (last_begin, _) = table.spans[index]
    for begin, end in earlier:
        if needed <= end - begin:
            return begin + needed
        needed -= end - begin
    return last_begin + needed


def _from_us(instant_us: int) -> datetime:
    return _EPOCH + instant_us * _ONE_US


def _require_aware(value: datetime, name: str) -> None:
    """Naive datetimes are ambiguous about which clock they mean, so refuse them."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value.isoformat()})")


def _duration_us(hours: float) -> int:
    """A non-negative number of hours as whole microseconds (round half to even)."""
    if isinstance(hours, bool) or not isinstance(hours, Real):
        raise TypeError(f"hours must be a number, got {type(hours).__name__}")
    if not math.isfinite(hours) or hours < 0:
        raise ValueError(f"hours must be a finite number >= 0, got {hours}")
    return timedelta(hours=float(hours)) // _ONE_US


def _zone(tz: str) -> ZoneInfo:
    if not isinstance(tz, str):
        raise TypeError(f"tz must be an IANA time zone name, got {type(tz).__name__}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def _holiday_lookup(country: str | None, subdiv: str | None) -> Callable[[date], bool]:
    """A ``date -> bool`` public-holiday test.

    The ``holidays`` object is built once and fills in each year the first
    time a date in it is checked, so no year range has to be guessed up front.
    """
    if country is None:
        if subdiv is not None:
            raise ValueError(f"subdiv={subdiv!r} needs a holiday country")
        return lambda day: False
    try:
        calendar = holidays_pkg.country_holidays(country, subdiv=subdiv)
    except NotImplementedError as exc:
        raise ValueError(f"unknown holiday country/subdivision: {exc}") from exc
    return calendar.__contains__


def _closure_dates(closures: Iterable[date]) -> frozenset[date]:
    dates = frozenset(closures)
    for value in dates:
        # A datetime is a date subclass but would never equal a date key.
        if not isinstance(value, date) or isinstance(value, datetime):
            raise TypeError(f"closures must be dates, got {value!r}")
    return dates


def _weekly_windows(hours: HoursSpec | None) -> tuple[tuple[Window, ...], ...]:
    """Validated, sorted windows for each weekday, Monday first."""
    if hours is None:
        return (_NINE_TO_FIVE,) * 5 + ((), ())
    if not isinstance(hours, Mapping):
        raise TypeError(
            f"hours must be a mapping of weekday to windows, got {type(hours).__name__}"
        )
    for weekday in hours:
        if isinstance(weekday, bool) or weekday not in range(7):
            raise ValueError(f"hours keys must be weekdays 0 (Monday) to 6, got {weekday!r}")
    week = tuple(_day_windows(weekday, hours.get(weekday, ())) for weekday in range(7))
    if not any(week):
        raise ValueError("hours must open at least one window in the week")
    return week


def _day_windows(weekday: int, spec: Window | Iterable[Window]) -> tuple[Window, ...]:
    """One weekday's windows, checked so that none spans midnight or overlaps another."""
    day_name = _DAY_NAMES[weekday]
    raw = [spec] if _is_window(spec) else list(spec)
    windows: list[Window] = []
    for window in raw:
        if not _is_window(window):
            raise TypeError(f"{day_name}: windows must be (open, close) time pairs, got {window!r}")
        opening, closing = window
        if opening.tzinfo is not None or closing.tzinfo is not None:
            raise ValueError(f"{day_name}: window times are local wall times; drop the tzinfo")
        if closing <= opening:
            raise ValueError(
                f"{day_name}: window {opening}-{closing} closes at or before it opens; "
                "windows cannot span midnight, so split it into two days"
            )
        # combine() copies fold from the time; force fold=0 for every boundary.
        windows.append((opening.replace(fold=0), closing.replace(fold=0)))
    windows.sort()
    for (_, closing), (opening, _) in zip(windows, windows[1:], strict=False):
        if opening < closing:
            raise ValueError(f"{day_name}: windows overlap ({opening} opens before {closing})")
    return tuple(windows)


def _is_window(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(part, time) for part in value)
    )
