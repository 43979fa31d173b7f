"""Tests for sla.calendar.BusinessCalendar.

Every expected value below was worked out by hand from the 2026-2028 calendars,
the America/New_York DST dates (2026-03-08 spring forward, 2026-11-01 fall back)
and the holiday lists of the ``holidays`` package (e.g. US 2026: Jan 1, Jan 19,
Feb 16, May 25, Jun 19, Jul 3 observed, Sep 7, Oct 12, Nov 11, Nov 26, Dec 25;
2027-12-31 is the observed New Year's Day of 2028). EST is UTC-5, EDT UTC-4,
IST UTC+5:30.
"""

import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# The package is not installed and there is no conftest, so make the repo root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sla.calendar import BusinessCalendar  # noqa: E402

NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
WEEKDAYS = range(5)

CALENDARS = {
    "ny": BusinessCalendar("America/New_York"),
    "ny-no-holidays": BusinessCalendar("America/New_York", holidays=None),
    "ny-state": BusinessCalendar("America/New_York", subdiv="NY"),
    "ny-closed-jan-13": BusinessCalendar("America/New_York", closures=[date(2026, 1, 13)]),
    "ny-split": BusinessCalendar(
        "America/New_York",
        {day: [(time(8), time(12)), (time(13), time(17))] for day in WEEKDAYS},
        holidays=None,
    ),
    # Sunday 00:00-06:00 local: the window that DST actually changes.
    "ny-sunday-night": BusinessCalendar("America/New_York", {6: (time(0), time(6))}, holidays=None),
    # On 2026-03-08 02:50 falls in the 02:00-03:00 gap and fold=0 reads it as
    # 02:50 EST = 03:50 EDT, past the 03:00 opening of the second window.
    "ny-sunday-gap": BusinessCalendar(
        "America/New_York",
        {6: [(time(1), time(2, 50)), (time(3), time(4))]},
        holidays=None,
    ),
    "kolkata": BusinessCalendar("Asia/Kolkata", holidays="IN"),
    "kolkata-mon-sat": BusinessCalendar(
        "Asia/Kolkata", {day: (time(10), time(19)) for day in range(6)}, holidays="IN"
    ),
    "always-utc": BusinessCalendar.always(),
    "always-ny": BusinessCalendar.always("America/New_York"),
}


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


def ist(*args: int) -> datetime:
    return datetime(*args, tzinfo=KOLKATA)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


ADD_CASES = [
    # calendar, start, hours, expected due time (UTC)
    pytest.param("ny", ny(2026, 1, 9, 18), 4, utc(2026, 1, 12, 18), id="friday-evening"),
    pytest.param("ny", ny(2026, 1, 16, 18), 4, utc(2026, 1, 20, 18), id="friday-before-mlk-day"),
    pytest.param("ny", ny(2026, 1, 10, 12), 2, utc(2026, 1, 12, 16), id="saturday-start"),
    pytest.param("ny", ny(2026, 1, 12, 7, 30), 1, utc(2026, 1, 12, 15), id="before-opening"),
    pytest.param("ny", ny(2026, 1, 12, 17), 1, utc(2026, 1, 13, 15), id="start-at-closing"),
    pytest.param("ny", ny(2026, 1, 12, 9), 8, utc(2026, 1, 12, 22), id="due-at-closing"),
    pytest.param("ny", ny(2026, 1, 12, 10), 0.5, utc(2026, 1, 12, 15, 30), id="half-hour"),
    pytest.param(
        "ny", ny(2026, 1, 12, 16, 45), 0.5, utc(2026, 1, 13, 14, 15), id="half-hour-overnight"
    ),
    pytest.param("ny", ny(2026, 1, 12, 9), 1 / 3, utc(2026, 1, 12, 14, 20), id="third-of-hour"),
    pytest.param(
        "ny",
        ny(2026, 1, 12, 16, 59, 59, 999_999),
        1 / 3_600_000_000,
        utc(2026, 1, 12, 22),
        id="last-microsecond-ends-at-closing",
    ),
    pytest.param(
        "ny",
        ny(2026, 1, 12, 16, 59, 59, 999_999),
        2 / 3_600_000_000,
        utc(2026, 1, 13, 14, 0, 0, 1),
        id="one-microsecond-into-next-day",
    ),
    pytest.param("ny", ny(2026, 1, 12, 9), 40, utc(2026, 1, 16, 22), id="40h-one-week"),
    pytest.param("ny", ny(2026, 1, 20, 9), 40, utc(2026, 1, 26, 22), id="40h-after-mlk-day"),
    pytest.param("ny", ny(2026, 11, 25, 16), 4, utc(2026, 11, 27, 17), id="thanksgiving-eve"),
    pytest.param("ny", ny(2026, 12, 24, 15), 4, utc(2026, 12, 28, 16), id="christmas-eve"),
    pytest.param("ny", ny(2026, 12, 25, 10), 1, utc(2026, 12, 28, 15), id="christmas-day"),
    pytest.param("ny", ny(2026, 12, 31, 16), 4, utc(2027, 1, 4, 17), id="new-years-eve"),
    pytest.param(
        "ny", ny(2027, 12, 30, 16), 4, utc(2028, 1, 3, 17), id="new-year-observed-in-prior-year"
    ),
    pytest.param("ny", ny(2026, 3, 6, 15), 4, utc(2026, 3, 9, 15), id="spring-forward-4h"),
    pytest.param("ny", ny(2026, 3, 6, 15), 16, utc(2026, 3, 10, 19), id="spring-forward-16h"),
    pytest.param("ny", ny(2026, 10, 30, 15), 4, utc(2026, 11, 2, 16), id="fall-back-4h"),
    pytest.param("ny", ny(2026, 10, 30, 15), 16, utc(2026, 11, 3, 20), id="fall-back-16h"),
    pytest.param(
        "ny-sunday-night", ny(2026, 3, 7, 12), 5, utc(2026, 3, 8, 10), id="spring-night-is-5h"
    ),
    pytest.param(
        "ny-sunday-night", ny(2026, 3, 7, 12), 6, utc(2026, 3, 15, 5), id="spring-night-overflows"
    ),
    pytest.param(
        "ny-sunday-night", ny(2026, 10, 31, 12), 7, utc(2026, 11, 1, 11), id="fall-night-is-7h"
    ),
    pytest.param(
        "ny-sunday-night", ny(2026, 10, 31, 12), 6.5, utc(2026, 11, 1, 10, 30), id="fall-night-6.5h"
    ),
    pytest.param(
        "ny-sunday-gap", ny(2026, 3, 7, 12), 2, utc(2026, 3, 8, 8), id="window-boundary-in-gap"
    ),
    pytest.param(
        "ny-no-holidays", ny(2026, 11, 25, 16), 4, utc(2026, 11, 26, 17), id="no-holidays"
    ),
    pytest.param("ny", ny(2026, 11, 2, 16), 2, utc(2026, 11, 3, 15), id="federal-election-day"),
    pytest.param("ny-state", ny(2026, 11, 2, 16), 2, utc(2026, 11, 4, 15), id="ny-election-day"),
    pytest.param("ny", ny(2026, 2, 11, 16), 2, utc(2026, 2, 12, 15), id="federal-feb-12"),
    pytest.param("ny-state", ny(2026, 2, 11, 16), 2, utc(2026, 2, 13, 15), id="ny-lincoln-day"),
    pytest.param(
        "ny-closed-jan-13", ny(2026, 1, 12, 16), 2, utc(2026, 1, 14, 15), id="client-closure"
    ),
    pytest.param("ny-split", ny(2026, 1, 12, 11), 2, utc(2026, 1, 12, 19), id="split-over-lunch"),
    pytest.param(
        "ny-split", ny(2026, 1, 12, 12, 30), 1, utc(2026, 1, 12, 19), id="split-start-at-lunch"
    ),
    pytest.param(
        "ny-split", ny(2026, 1, 12, 8), 4, utc(2026, 1, 12, 17), id="split-due-at-lunch-close"
    ),
    pytest.param("ny-split", ny(2026, 1, 12, 16), 2, utc(2026, 1, 13, 14), id="split-overnight"),
    pytest.param(
        "kolkata", ist(2026, 1, 23, 15), 4, utc(2026, 1, 27, 5, 30), id="kolkata-republic-day"
    ),
    pytest.param(
        "kolkata", ist(2026, 10, 1, 16), 3, utc(2026, 10, 5, 5, 30), id="kolkata-gandhi-jayanti"
    ),
    pytest.param(
        "kolkata-mon-sat",
        ist(2026, 8, 14, 17),
        6,
        utc(2026, 8, 17, 8, 30),
        id="kolkata-saturday-independence-day",
    ),
    pytest.param("always-utc", utc(2026, 1, 10, 12), 0.5, utc(2026, 1, 10, 12, 30), id="always"),
    pytest.param(
        "always-ny", ny(2026, 3, 7, 23), 4, utc(2026, 3, 8, 8), id="always-across-spring-forward"
    ),
]


@pytest.mark.parametrize(("calendar", "start", "hours", "expected"), ADD_CASES)
def test_add_business_hours(calendar: str, start: datetime, hours: float, expected: datetime):
    due = CALENDARS[calendar].add_business_hours(start.astimezone(UTC), hours)
    assert due == expected
    assert due.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("calendar", "start", "hours", "expected"), ADD_CASES)
def test_between_inverts_add(calendar: str, start: datetime, hours: float, expected: datetime):
    cal = CALENDARS[calendar]
    assert cal.business_hours_between(start, expected) == pytest.approx(hours, abs=1e-6)
    assert cal.business_hours_between(expected, start) == pytest.approx(-hours, abs=1e-6)


@pytest.mark.parametrize(("calendar", "start", "hours", "expected"), ADD_CASES)
def test_local_start_gives_same_instant(
    calendar: str, start: datetime, hours: float, expected: datetime
):
    assert CALENDARS[calendar].add_business_hours(start, hours) == expected


@pytest.mark.parametrize(
    ("calendar", "start"),
    [
        pytest.param("ny", utc(2026, 1, 10, 17), id="weekend"),
        pytest.param("ny", utc(2026, 11, 26, 15), id="holiday"),
        pytest.param("ny", utc(2026, 1, 12, 15, 30), id="inside-hours"),
        pytest.param("always-utc", utc(2026, 1, 10, 17), id="always"),
    ],
)
def test_zero_hours_returns_start(calendar: str, start: datetime):
    assert CALENDARS[calendar].add_business_hours(start, 0) == start


BETWEEN_CASES = [
    # calendar, a, b, business hours from a to b
    pytest.param("ny", ny(2026, 1, 12, 10), ny(2026, 1, 12, 10), 0.0, id="same-instant"),
    pytest.param("ny", ny(2026, 1, 10, 1), ny(2026, 1, 11, 23), 0.0, id="within-weekend"),
    pytest.param("ny", ny(2026, 1, 9, 16), ny(2026, 1, 12, 10), 2.0, id="over-weekend"),
    pytest.param("ny", ny(2026, 1, 19), ny(2026, 1, 26), 32.0, id="mlk-week"),
    pytest.param("ny", ny(2026, 11, 25, 16), ny(2026, 11, 27, 12), 4.0, id="thanksgiving"),
    pytest.param("ny", ny(2026, 12, 24, 9), ny(2026, 12, 28, 17), 16.0, id="christmas"),
    pytest.param("ny", ny(2026, 12, 31, 9), ny(2027, 1, 4, 17), 16.0, id="new-year"),
    # 261 weekdays in 2026, 11 of them federal holidays: 250 days of 8 hours.
    pytest.param("ny", ny(2026, 1, 1), ny(2027, 1, 1), 2000.0, id="year-2026"),
    pytest.param("ny", ny(2026, 1, 12, 17), ny(2026, 1, 9, 16), -9.0, id="reversed"),
    pytest.param("ny", ny(2026, 3, 6, 8), ny(2026, 3, 10, 8), 16.0, id="spring-forward-9-to-5"),
    pytest.param("ny", ny(2026, 10, 30, 8), ny(2026, 11, 3, 8), 16.0, id="fall-back-9-to-5"),
    pytest.param("ny-sunday-night", ny(2026, 3, 7), ny(2026, 3, 9), 5.0, id="spring-night"),
    pytest.param("ny-sunday-night", ny(2026, 10, 31), ny(2026, 11, 2), 7.0, id="fall-night"),
    pytest.param("ny-sunday-night", ny(2026, 3, 14), ny(2026, 3, 16), 6.0, id="plain-night"),
    # 01:00 EST (06:00Z) to 04:00 EDT (08:00Z): the overlapping windows must not count twice.
    pytest.param("ny-sunday-gap", ny(2026, 3, 7), ny(2026, 3, 9), 2.0, id="gap-spring"),
    pytest.param("ny-sunday-gap", ny(2026, 3, 14), ny(2026, 3, 16), 2 + 50 / 60, id="gap-plain"),
    pytest.param("ny-split", ny(2026, 1, 12, 11), ny(2026, 1, 12, 14), 2.0, id="split-lunch"),
    pytest.param("ny-state", ny(2026, 11, 2), ny(2026, 11, 5), 16.0, id="ny-election-day"),
    pytest.param("ny-closed-jan-13", ny(2026, 1, 12), ny(2026, 1, 15), 16.0, id="closure"),
    pytest.param("kolkata", ist(2026, 1, 23, 15), ist(2026, 1, 27, 11), 4.0, id="kolkata"),
    pytest.param("always-ny", ny(2026, 3, 8), ny(2026, 3, 9), 23.0, id="always-spring-day"),
    pytest.param("always-ny", ny(2026, 11, 1), ny(2026, 11, 2), 25.0, id="always-fall-day"),
]


@pytest.mark.parametrize(("calendar", "a", "b", "expected"), BETWEEN_CASES)
def test_business_hours_between(calendar: str, a: datetime, b: datetime, expected: float):
    cal = CALENDARS[calendar]
    assert cal.business_hours_between(a, b) == pytest.approx(expected, abs=1e-9)
    assert cal.business_hours_between(b, a) == pytest.approx(-expected, abs=1e-9)


def test_between_inverts_add_over_several_years():
    cal = CALENDARS["ny"]
    start = utc(2026, 2, 3, 19, 17, 23, 456_789)
    due = cal.add_business_hours(start, 5000.25)
    assert due.year == 2028
    assert cal.business_hours_between(start, due) == pytest.approx(5000.25, abs=1e-6)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(
            lambda: CALENDARS["ny"].add_business_hours(datetime(2026, 1, 12, 9), 1),
            ValueError,
            "timezone-aware",
            id="naive-start",
        ),
        pytest.param(
            lambda: CALENDARS["ny"].business_hours_between(utc(2026, 1, 12), datetime(2026, 1, 13)),
            ValueError,
            "timezone-aware",
            id="naive-between",
        ),
        pytest.param(
            lambda: CALENDARS["always-utc"].add_business_hours(datetime(2026, 1, 12), 1),
            ValueError,
            "timezone-aware",
            id="naive-always",
        ),
        pytest.param(
            lambda: CALENDARS["ny"].add_business_hours(date(2026, 1, 12), 1),
            TypeError,
            "must be a datetime",
            id="date-not-datetime",
        ),
        pytest.param(
            lambda: CALENDARS["ny"].add_business_hours(utc(2026, 1, 12), -1),
            ValueError,
            ">= 0",
            id="negative-hours",
        ),
        pytest.param(
            lambda: CALENDARS["always-utc"].add_business_hours(utc(2026, 1, 12), -0.5),
            ValueError,
            ">= 0",
            id="negative-hours-always",
        ),
        pytest.param(
            lambda: CALENDARS["ny"].add_business_hours(utc(2026, 1, 12), float("nan")),
            ValueError,
            "finite",
            id="nan-hours",
        ),
        pytest.param(
            lambda: CALENDARS["ny"].add_business_hours(utc(2026, 1, 12), "4"),
            TypeError,
            "number",
            id="string-hours",
        ),
        pytest.param(
            lambda: CALENDARS["ny"].add_business_hours(utc(9999, 6, 1), 1e6),
            OverflowError,
            "past year 9999",
            id="past-datetime-range",
        ),
        pytest.param(
            lambda: BusinessCalendar("Mars/Olympus_Mons"),
            ValueError,
            "unknown time zone",
            id="unknown-zone",
        ),
        pytest.param(
            lambda: BusinessCalendar("UTC", holidays="XX"),
            ValueError,
            "unknown holiday country",
            id="unknown-country",
        ),
        pytest.param(
            lambda: BusinessCalendar("UTC", subdiv="ZZ"),
            ValueError,
            "unknown holiday country/subdivision",
            id="unknown-subdiv",
        ),
        pytest.param(
            lambda: BusinessCalendar("UTC", holidays=None, subdiv="NY"),
            ValueError,
            "needs a holiday country",
            id="subdiv-without-country",
        ),
        pytest.param(
            lambda: BusinessCalendar("UTC", {0: (time(22), time(6))}),
            ValueError,
            "cannot span midnight",
            id="window-spans-midnight",
        ),
        pytest.param(
            lambda: BusinessCalendar("UTC", {0: (time(9), time(9))}),
            ValueError,
            "closes at or before it opens",
            id="empty-window",
        ),
        pytest.param(
            lambda: BusinessCalendar("UTC", {0: [(time(8), time(12)), (time(11), time(17))]}),
            ValueError,
            "overlap",
            id="overlapping-windows",
        ),
        pytest.param(
            lambda: BusinessCalendar("UTC", {7: (time(9), time(17))}),
            ValueError,
            "weekdays 0",
            id="bad-weekday",
        ),
        pytest.param(
            lambda: BusinessCalendar("UTC", {0: []}),
            ValueError,
            "at least one window",
            id="never-open",
        ),
        pytest.param(
            lambda: BusinessCalendar("UTC", {0: ("09:00", "17:00")}),
            TypeError,
            "time pairs",
            id="string-times",
        ),
        pytest.param(
            lambda: BusinessCalendar("UTC", {0: (time(9, tzinfo=UTC), time(17, tzinfo=UTC))}),
            ValueError,
            "local wall times",
            id="aware-times",
        ),
        pytest.param(
            lambda: BusinessCalendar("UTC", closures=[utc(2026, 1, 13)]),
            TypeError,
            "closures must be dates",
            id="datetime-closure",
        ),
    ],
)
def test_errors(call, error: type[Exception], message: str):
    with pytest.raises(error, match=message):
        call()


def test_adjacent_windows_behave_like_one():
    touching = BusinessCalendar(
        "UTC", {0: [(time(9), time(12)), (time(12), time(17))]}, holidays=None
    )
    assert touching.add_business_hours(utc(2026, 1, 12, 11), 2) == utc(2026, 1, 12, 13)


# --- properties -------------------------------------------------------------

STARTS = st.datetimes(
    min_value=datetime(2025, 1, 1),
    max_value=datetime(2028, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
HOURS = st.floats(min_value=0.01, max_value=200, allow_nan=False)
PROPERTY_CALENDARS = [
    "ny",
    "ny-state",
    "ny-split",
    "ny-sunday-night",
    "ny-sunday-gap",
    "kolkata",
    "always-ny",
]
US_HOLIDAYS = holidays.US(years=range(2025, 2030))


@pytest.mark.parametrize("calendar", PROPERTY_CALENDARS)
@settings(max_examples=150, deadline=None)
@given(start=STARTS, hours=HOURS)
def test_property_between_inverts_add(calendar: str, start: datetime, hours: float):
    cal = CALENDARS[calendar]
    due = cal.add_business_hours(start, hours)
    assert due >= start
    assert cal.business_hours_between(start, due) == pytest.approx(hours, abs=1e-6)


@pytest.mark.parametrize("calendar", PROPERTY_CALENDARS)
@settings(max_examples=150, deadline=None)
@given(a=STARTS, b=STARTS, c=STARTS)
def test_property_between_is_additive(calendar: str, a: datetime, b: datetime, c: datetime):
    between = CALENDARS[calendar].business_hours_between
    assert between(a, b) + between(b, c) == pytest.approx(between(a, c), abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(start=STARTS, hours=HOURS)
def test_property_due_time_is_inside_business_hours(start: datetime, hours: float):
    """An independent oracle: a due time is a weekday, not a holiday, in (09:00, 17:00]."""
    local = CALENDARS["ny"].add_business_hours(start, hours).astimezone(NEW_YORK)
    assert local.weekday() in WEEKDAYS
    assert local.date() not in US_HOLIDAYS
    assert time(9) < local.time() <= time(17)
