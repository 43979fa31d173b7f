"""Admin pages for each client's business-calendar versions and escalation rules."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from provider_app.access import roles_required
from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.models import CalendarVersion, Client
from provider_app.vocab import Role

from .blueprint import bp
from .calendars import (
    DAY_FIELDS,
    CalendarError,
    CalendarSpec,
    add_version,
    earliest_effective_date,
    format_windows,
    parse_closures,
    parse_windows,
    version_on,
    withdraw_version,
)
from .forms import CalendarVersionForm, RulesForm
from .rules import RuleError, rules_for, set_rules


def _client(code: str) -> Client:
    client = db.session.scalar(select(Client).where(Client.code == code))
    if client is None:
        abort(404)
    return client


@bp.route("/admin/calendars")
@roles_required(Role.ADMIN)
def calendars():
    clients = db.session.scalars(select(Client).order_by(Client.code)).all()
    versions: dict[int, list[CalendarVersion]] = defaultdict(list)
    for version in db.session.scalars(
        select(CalendarVersion).order_by(CalendarVersion.effective_from)
    ):
        versions[version.client_id].append(version)
    today = utcnow().date()
    rows = []
    for client in clients:
        history = versions[client.id]
        current = next((v for v in reversed(history) if v.effective_from <= today), None)
        scheduled = [v for v in history if v.effective_from > today]
        rows.append((client, current, scheduled))
    return render_template("sla/calendars.html", rows=rows)


def _prefill(client: Client) -> CalendarVersionForm:
    """A new version starts as a copy of the latest one: admins change what differs."""
    latest = db.session.scalar(
        select(CalendarVersion).where(CalendarVersion.client_id == client.id)
        .order_by(CalendarVersion.effective_from.desc()).limit(1)
    )
    data: dict = {"effective_from": earliest_effective_date(client), "timezone": client.timezone,
                  "holiday_country": "US"}
    if latest is not None:
        data.update(
            timezone=latest.timezone, always_open=latest.always_open,
            holiday_country=latest.holiday_country or "", holiday_subdiv=latest.holiday_subdiv,
            closures="\n".join(latest.closures or []),
            **{day: format_windows((latest.hours or {}).get(str(i), []))
               for i, day in enumerate(DAY_FIELDS)},
        )
    return CalendarVersionForm(formdata=None, data=data)


def _page(client: Client, form: CalendarVersionForm | None = None,
          rules_form: RulesForm | None = None, status: int = 200):
    versions = db.session.scalars(
        select(CalendarVersion).where(CalendarVersion.client_id == client.id)
        .order_by(CalendarVersion.effective_from.desc())
    ).all()
    rules = rules_for(client)
    return render_template(
        "sla/calendar_client.html",
        client=client,
        versions=versions,
        current=version_on(client, utcnow().date()),
        earliest=earliest_effective_date(client),
        form=form or _prefill(client),
        rules_form=rules_form or RulesForm(formdata=None, level1=rules.get(1),
                                           level2=rules.get(2)),
        day_fields=DAY_FIELDS,
    ), status


@bp.route("/admin/calendars/<code>", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def client_calendar(code: str):
    client = _client(code)
    form = CalendarVersionForm()
    if not form.is_submitted():
        return _page(client)
    if form.validate():
        spec, errors = _spec(form)
        try:
            if errors:
                raise CalendarError(errors)
            add_version(client, spec, current_user)
        except CalendarError as exc:
            for name, messages in exc.errors.items():
                getattr(form, name).errors = [*getattr(form, name).errors, *messages]
        else:
            flash(f"Calendar version from {spec.effective_from.isoformat()} added.", "success")
            return redirect(url_for(".client_calendar", code=code))
    return _page(client, form=form, status=422)


def _spec(form: CalendarVersionForm) -> tuple[CalendarSpec, dict[str, list[str]]]:
    """Read the free-text fields; parse errors are reported beside the field they came from."""
    errors: dict[str, list[str]] = {}
    hours = {}
    for index, day in enumerate(DAY_FIELDS):
        try:
            hours[index] = parse_windows(getattr(form, day).data or "")
        except ValueError as exc:
            errors[day] = [str(exc)]
    try:
        closures = parse_closures(form.closures.data or "")
    except ValueError as exc:
        errors["closures"] = [str(exc)]
        closures = []
    spec = CalendarSpec(
        effective_from=form.effective_from.data,
        timezone=form.timezone.data.strip(),
        hours=hours,
        holiday_country=form.holiday_country.data,
        holiday_subdiv=form.holiday_subdiv.data,
        closures=closures,
        always_open=form.always_open.data,
    )
    return spec, errors


@bp.route("/admin/calendars/<code>/versions/<effective_from>/withdraw", methods=["POST"])
@roles_required(Role.ADMIN)
def withdraw_calendar_version(code: str, effective_from: str):
    client = _client(code)
    try:
        day = date.fromisoformat(effective_from)
    except ValueError:
        abort(404)
    try:
        withdraw_version(client, day, current_user)
    except CalendarError as exc:
        flash(" ".join(m for ms in exc.errors.values() for m in ms), "error")
        return _page(client, status=409)
    flash(f"The version from {day.isoformat()} was withdrawn.", "success")
    return redirect(url_for(".client_calendar", code=code))


@bp.route("/admin/calendars/<code>/rules", methods=["POST"])
@roles_required(Role.ADMIN)
def escalation_rules(code: str):
    client = _client(code)
    form = RulesForm()
    if form.validate():
        try:
            set_rules(client, {1: form.level1.data, 2: form.level2.data}, current_user)
        except RuleError as exc:
            for name, messages in exc.errors.items():
                getattr(form, name).errors = [*getattr(form, name).errors, *messages]
        else:
            flash("Escalation rules saved.", "success")
            return redirect(url_for(".client_calendar", code=code))
    return _page(client, rules_form=form, status=422)
