"""Admins add calendar versions (future-dated, validated, audited) and escalation rules."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from provider_app.db_types import utcnow
from provider_app.models import AuditEvent, CalendarVersion
from provider_app.vocab import Role
from sla.calendars import (
    CalendarError,
    CalendarSpec,
    add_version,
    earliest_effective_date,
    parse_closures,
    parse_windows,
)
from sla.models import EscalationRule
from tests.factories import gen_client, gen_user


@pytest.fixture
def world(db):
    world = {"client": gen_client(code="NSTAR"), "admin": gen_user(Role.ADMIN)}
    db.session.commit()
    return world


def tomorrow() -> date:
    return (utcnow() + timedelta(days=2)).date()


def form(**overrides):
    data = {
        "effective_from": tomorrow().isoformat(), "timezone": "America/Chicago",
        "monday": "08:00-12:00, 13:00-17:00", "tuesday": "08:00-17:00",
        "wednesday": "08:00-17:00", "thursday": "08:00-17:00", "friday": "08:00-15:00",
        "saturday": "", "sunday": "", "holiday_country": "us", "holiday_subdiv": "il",
        "closures": "2026-12-24\n2026-12-31",
    }
    data.update(overrides)
    return data


def versions(db, client):
    return db.session.scalars(select(CalendarVersion).where(
        CalendarVersion.client_id == client.id).order_by(CalendarVersion.effective_from)).all()


def test_admin_page_lists_clients(client, world):
    client.login(world["admin"])
    body = client.get("/admin/calendars").get_data(as_text=True)
    assert "NSTAR" in body and "2020-01-01" in body
    page = client.get("/admin/calendars/NSTAR").get_data(as_text=True)
    assert "09:00–17:00" in page and 'value="09:00-17:00"' in page  # prefilled from latest


def test_add_a_version_with_split_shifts_holidays_and_closures(client, world, db):
    client.login(world["admin"])
    response = client.post("/admin/calendars/NSTAR", data=form())
    assert response.status_code == 302, response.get_data(as_text=True)
    new = versions(db, world["client"])[-1]
    assert new.effective_from == tomorrow()
    assert new.timezone == "America/Chicago"
    assert new.hours["0"] == [["08:00", "12:00"], ["13:00", "17:00"]] and "5" not in new.hours
    assert (new.holiday_country, new.holiday_subdiv) == ("US", "IL")
    assert new.closures == ["2026-12-24", "2026-12-31"]
    event = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "calendar.version_add"))
    assert event.actor_id == world["admin"].id and event.after["timezone"] == "America/Chicago"


def test_a_24x7_version(client, world, db):
    client.login(world["admin"])
    response = client.post("/admin/calendars/NSTAR", data=form(
        always_open="y", monday="", tuesday="", wednesday="", thursday="", friday=""))
    assert response.status_code == 302
    assert versions(db, world["client"])[-1].always_open


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"effective_from": "2020-06-01"}, "effective_from", "must start on"),
    ({"effective_from": "soon"}, "effective_from", "Enter a date like"),
    ({"timezone": "Mars/Olympus"}, "timezone", "IANA time zone"),
    ({"monday": "9-5"}, "monday", "is not a window like 09:00-17:00"),
    ({"monday": "25:00-26:00"}, "monday", "does not exist"),
    ({"tuesday": "17:00-09:00"}, "tuesday", "closes at or before it opens"),
    ({"wednesday": "09:00-13:00, 12:00-17:00"}, "wednesday", "overlap"),
    ({"holiday_country": "XX"}, "holiday_country", "not a supported country"),
    ({"holiday_subdiv": "ZZ"}, "holiday_subdiv", "has no subdivision"),
    ({"holiday_country": "", "holiday_subdiv": "NY"}, "holiday_subdiv", "needs a holiday country"),
    ({"closures": "2026-13-01"}, "closures", "is not a date"),
    ({"monday": "", "tuesday": "", "wednesday": "", "thursday": "", "friday": ""}, "monday",
     "at least one window"),
])
def test_bad_input_is_refused_beside_the_field(client, world, db, overrides, field, message):
    client.login(world["admin"])
    response = client.post("/admin/calendars/NSTAR", data=form(**overrides))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert f'id="{field}-error"' in body and message in body
    assert len(versions(db, world["client"])) == 1


def test_one_version_per_day(client, world, db):
    client.login(world["admin"])
    client.post("/admin/calendars/NSTAR", data=form())
    again = client.post("/admin/calendars/NSTAR", data=form())
    assert again.status_code == 422 and "already starts that day" in again.get_data(as_text=True)


def test_withdraw_only_future_versions(client, world, db):
    client.login(world["admin"])
    client.post("/admin/calendars/NSTAR", data=form())
    day = tomorrow().isoformat()
    assert client.post(f"/admin/calendars/NSTAR/versions/{day}/withdraw").status_code == 302
    assert len(versions(db, world["client"])) == 1
    past = client.post("/admin/calendars/NSTAR/versions/2020-01-01/withdraw")
    assert past.status_code == 409 and "already in effect" in past.get_data(as_text=True)
    assert client.post("/admin/calendars/NSTAR/versions/not-a-date/withdraw").status_code == 404
    assert len(versions(db, world["client"])) == 1


def test_effective_dates_respect_both_utc_and_the_clients_day(db):
    kolkata = gen_client(tz="Asia/Kolkata")
    late_evening_utc = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)  # already 2 March in India
    assert earliest_effective_date(kolkata, late_evening_utc) == date(2026, 3, 3)
    chicago = gen_client(tz="America/Chicago")
    assert earliest_effective_date(chicago, late_evening_utc) == date(2026, 3, 2)


def test_service_validates_for_the_cli_too(db, world):
    spec = CalendarSpec(effective_from=date(2020, 1, 2), timezone="UTC",
                        hours={0: [(time(9), time(17))]})
    with pytest.raises(CalendarError) as info:
        add_version(world["client"], spec, None)
    assert list(info.value.errors) == ["effective_from"]


def test_parsers():
    assert parse_windows(" 9:00-12:30 ,13:00–17:00 ") == [(time(9), time(12, 30)),
                                                         (time(13), time(17))]
    assert parse_windows("") == []
    assert parse_closures("2026-12-24, 2026-12-24\n2026-01-02") == [date(2026, 1, 2),
                                                                   date(2026, 12, 24)]


def test_unknown_client_is_404_and_only_admins_get_in(client, world):
    client.login(world["admin"])
    assert client.get("/admin/calendars/NOPE").status_code == 404
    client.login(gen_user(Role.TEAM_LEAD))
    assert client.get("/admin/calendars/NSTAR").status_code == 403
    assert client.post("/admin/calendars/NSTAR", data=form()).status_code == 403


def test_escalation_rules(client, world, db):
    client.login(world["admin"])
    response = client.post("/admin/calendars/NSTAR/rules", data={"level1": "30", "level2": ""})
    assert response.status_code == 302
    rules = db.session.execute(select(EscalationRule.from_level, EscalationRule.ack_minutes)
                               .where(EscalationRule.client_id == world["client"].id)).all()
    assert rules == [(1, 30)]
    bad = client.post("/admin/calendars/NSTAR/rules", data={"level1": "0", "level2": "x"})
    assert bad.status_code == 422
    body = bad.get_data(as_text=True)
    assert 'id="level1-error"' in body and 'id="level2-error"' in body
    client.post("/admin/calendars/NSTAR/rules", data={"level1": "", "level2": "120"})
    rules = db.session.execute(select(EscalationRule.from_level, EscalationRule.ack_minutes)
                               .where(EscalationRule.client_id == world["client"].id)).all()
    assert rules == [(2, 120)]
    assert db.session.scalar(select(AuditEvent.after).where(
        AuditEvent.action == "escalation.rules").order_by(AuditEvent.id.desc()).limit(1)) == {
        "2": 120}
