"""A client's calendar versions: turning one into a BusinessCalendar, and adding new ones.

Versions are append-only and take effect from a future date only. A task's clock
uses the version effective on the day it was received (``sla.clock.task_calendar``),
so a new version changes the due times of work received from then on and never
rewrites a past task's due time or elapsed business time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_pkg
from sqlalchemy import Select, select
from sqlalchemy.orm import aliased

from provider_app.audit import record
from provider_app.extensions import db
from provider_app.models import CalendarVersion, Client, User

from .calendar import BusinessCalendar

DAY_FIELDS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WINDOW = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})\s*$")
_SUBDIV_MAX = 8  # CalendarVersion.holiday_subdiv is String(8)

Windows = list[tuple[time, time]]


class CalendarError(ValueError):
    """A calendar version that cannot be saved; ``errors`` is keyed by form field."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class CalendarSpec:
    """What an admin states for a new version (plain values; forms and CLI build it)."""

    effective_from: date
    timezone: str
    hours: dict[int, Windows] = field(default_factory=dict)
    holiday_country: str | None = "US"
    holiday_subdiv: str | None = None
    closures: list[date] = field(default_factory=list)
    always_open: bool = False


# --- building calendars ---------------------------------------------------------------


def calendar_from_version(version: CalendarVersion) -> BusinessCalendar:
    """The BusinessCalendar a stored version describes (cached: year tables are reused)."""
    if version.always_open:
        return BusinessCalendar.always(version.timezone)
    hours = tuple(
        (int(day), tuple((a, b) for a, b in windows))
        for day, windows in sorted((version.hours or {}).items())
    )
    return _cached_calendar(
        version.timezone,
        hours,
        version.holiday_country,
        version.holiday_subdiv,
        tuple(sorted(version.closures or [])),
    )


@lru_cache(maxsize=256)
def _cached_calendar(
    tz: str,
    hours: tuple[tuple[int, tuple[tuple[str, str], ...]], ...],
    country: str | None,
    subdiv: str | None,
    closures: tuple[str, ...],
) -> BusinessCalendar:
    """Keyed on the version's content, so an identical calendar is never built twice."""
    return BusinessCalendar(
        tz,
        {day: [(time.fromisoformat(a), time.fromisoformat(b)) for a, b in windows]
         for day, windows in hours},
        country,
        subdiv=subdiv,
        closures=[date.fromisoformat(d) for d in closures],
    )


def effective_version(version, client_id, on) -> Select:
    """The id of the client's version effective on ``on`` (the newest one starting on or
    before it), for ``version`` (the model or an alias); values or bind parameters."""
    return (
        select(version.id)
        .where(version.client_id == client_id, version.effective_from <= on)
        .order_by(version.effective_from.desc()).limit(1)
    )


def version_on(client: Client, on: date) -> CalendarVersion | None:
    """The client's version effective on ``on``."""
    chosen = effective_version(aliased(CalendarVersion), client.id, on).scalar_subquery()
    return db.session.scalar(select(CalendarVersion).where(CalendarVersion.id == chosen))


# --- reading what admins type ---------------------------------------------------------


def parse_windows(text: str) -> Windows:
    """``"09:00-12:00, 13:00-17:00"`` -> windows; blank means closed all day."""
    windows: Windows = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        match = _WINDOW.match(part)
        if match is None:
            raise ValueError(f"“{part}” is not a window like 09:00-17:00.")
        try:
            opening, closing = (time.fromisoformat(v.zfill(5)) for v in match.groups())
        except ValueError:
            raise ValueError(f"“{part}” has a time that does not exist.") from None
        windows.append((opening, closing))
    return windows


def format_windows(windows: list) -> str:
    return ", ".join(f"{a}-{b}" for a, b in windows)


def parse_closures(text: str) -> list[date]:
    """One ISO date per line (or comma separated); duplicates are dropped."""
    dates: set[date] = set()
    for part in filter(None, (p.strip() for p in re.split(r"[\n,]", text or ""))):
        try:
            dates.add(date.fromisoformat(part))
        except ValueError:
            raise ValueError(f"“{part}” is not a date like 2026-12-24.") from None
    return sorted(dates)


def earliest_effective_date(client: Client, now: datetime | None = None) -> date:
    """Tomorrow, in both UTC and the client's zone, whichever is later.

    Clocks pick a version by the UTC date a task was received, so a version
    effective today (or "today" somewhere) could change a task already running.
    """
    now = now or datetime.now(UTC)
    local = now.astimezone(ZoneInfo(client.timezone)).date()
    return max(now.date(), local) + timedelta(days=1)


def validate(client: Client, spec: CalendarSpec, now: datetime | None = None) -> CalendarSpec:
    """Check every field and return a normalised spec, or raise CalendarError."""
    errors: dict[str, list[str]] = {}
    earliest = earliest_effective_date(client, now)
    if spec.effective_from < earliest:
        errors["effective_from"] = [
            f"A new version must start on {earliest.isoformat()} or later, so it never "
            "changes work already received."
        ]
    elif db.session.scalar(select(CalendarVersion.id).where(
        CalendarVersion.client_id == client.id,
        CalendarVersion.effective_from == spec.effective_from,
    )):
        errors["effective_from"] = ["A version already starts that day; withdraw it first."]
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = ["Use an IANA time zone such as America/New_York."]
    country, subdiv = _check_holidays(spec.holiday_country, spec.holiday_subdiv, errors)
    if not spec.always_open:
        for day, windows in spec.hours.items():
            if not windows:
                continue
            try:
                BusinessCalendar("UTC", {day: windows}, holidays=None)
            except (TypeError, ValueError) as exc:
                errors[DAY_FIELDS[day]] = [str(exc)]
        if not any(spec.hours.values()) and not any(k in errors for k in DAY_FIELDS):
            errors["monday"] = ["Open at least one window in the week (or choose 24x7)."]
    if errors:
        raise CalendarError(errors)
    return CalendarSpec(
        effective_from=spec.effective_from,
        timezone=spec.timezone,
        hours={} if spec.always_open else {d: w for d, w in spec.hours.items() if w},
        holiday_country=country,
        holiday_subdiv=subdiv,
        closures=sorted(set(spec.closures)),
        always_open=spec.always_open,
    )


def _check_holidays(
    country: str | None, subdiv: str | None, errors: dict[str, list[str]]
) -> tuple[str | None, str | None]:
    country = (country or "").strip().upper() or None
    subdiv = (subdiv or "").strip() or None
    if country is None:
        if subdiv:
            errors["holiday_subdiv"] = ["A subdivision needs a holiday country."]
        return None, None
    supported = holidays_pkg.list_supported_countries()
    if country not in supported:
        errors["holiday_country"] = [
            f"“{country}” is not a supported country code (e.g. US, IN, GB)."
        ]
        return country, subdiv
    if subdiv is not None:
        canonical = {s.upper(): s for s in supported[country]}.get(subdiv.upper())
        if canonical is None:
            errors["holiday_subdiv"] = [
                f"{country} has no subdivision “{subdiv}”; e.g. "
                f"{', '.join(supported[country][:5]) or 'none exist'}."
            ]
        elif len(canonical) > _SUBDIV_MAX:
            errors["holiday_subdiv"] = [f"Subdivision codes longer than {_SUBDIV_MAX} "
                                        "characters are not supported."]
        subdiv = canonical or subdiv
    return country, subdiv


# --- changing versions ----------------------------------------------------------------


def add_version(
    client: Client, spec: CalendarSpec, actor: User | None, now: datetime | None = None
) -> CalendarVersion:
    """Validate and add a version effective from a future date (audited)."""
    spec = validate(client, spec, now)
    version = CalendarVersion(
        client_id=client.id,
        effective_from=spec.effective_from,
        timezone=spec.timezone,
        hours={str(d): [[a.strftime("%H:%M"), b.strftime("%H:%M")] for a, b in windows]
               for d, windows in sorted(spec.hours.items())},
        holiday_country=spec.holiday_country,
        holiday_subdiv=spec.holiday_subdiv,
        closures=[d.isoformat() for d in spec.closures],
        always_open=spec.always_open,
    )
    db.session.add(version)
    db.session.flush()
    record("calendar.version_add", object_type="calendar_version", object_id=version.id,
           client_id=client.id, actor=actor, after=_describe(version))
    return version


def withdraw_version(
    client: Client, effective_from: date, actor: User | None, now: datetime | None = None
) -> None:
    """Remove a version that has not taken effect yet; effective versions are history."""
    version = db.session.scalar(select(CalendarVersion).where(
        CalendarVersion.client_id == client.id, CalendarVersion.effective_from == effective_from
    ))
    if version is None:
        raise CalendarError({"effective_from": ["No version starts that day."]})
    if effective_from < earliest_effective_date(client, now):
        raise CalendarError({"effective_from": [
            "This version is already in effect (or starts today) and is part of the history "
            "of past work; add a newer version instead."
        ]})
    record("calendar.version_withdraw", object_type="calendar_version", object_id=version.id,
           client_id=client.id, actor=actor, before=_describe(version))
    db.session.delete(version)
    db.session.flush()


def _describe(version: CalendarVersion) -> dict:
    return {
        "effective_from": version.effective_from.isoformat(),
        "timezone": version.timezone,
        "hours": version.hours,
        "holiday_country": version.holiday_country,
        "holiday_subdiv": version.holiday_subdiv,
        "closures": version.closures,
        "always_open": version.always_open,
    }
