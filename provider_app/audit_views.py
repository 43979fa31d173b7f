"""The audit trail for administrators: a filtered, paginated list and a streamed CSV export.

Both use one query builder, so the CSV is exactly what the page shows (all
pages of it). Audit rows are read-only here as everywhere; exporting them is
itself audited, because the trail names people and clients.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from flask import Blueprint, Response, current_app, render_template, request, stream_with_context
from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import aliased
from wtforms import DateField, Form, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional, ValidationError

from .access import roles_required
from .audit import record
from .db_types import utcnow
from .extensions import db
from .models import AuditEvent, Client, Task, User
from .vocab import Role

bp = Blueprint("audit", __name__, url_prefix="/admin")

NO_CLIENT = "-"
CSV_BATCH = 1000
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
HEADER = ["at", "actor", "client", "action", "object_type", "object", "from_status",
          "to_status", "reason", "ip", "before", "after"]


class AuditFilterForm(Form):
    """Filters from the query string (GET, so no CSRF token: it changes nothing)."""

    client = SelectField("Client", default="")
    actor = StringField("Actor e-mail", validators=[Optional(), Length(max=254)])
    object_type = StringField("Object type", validators=[Optional(), Length(max=32)])
    object_id = StringField("Object id", validators=[Optional(), Length(max=64)])
    action = StringField("Action", validators=[Optional(), Length(max=64)])
    date_from = DateField("From (UTC)", validators=[Optional()])
    date_to = DateField("To (UTC)", validators=[Optional()])

    def validate_date_to(self, field) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The end date is before the start date.")

    def validate_object_id(self, field) -> None:
        value = (field.data or "").strip()
        if value and not (value.isdigit() or _is_public_id(value)):
            raise ValidationError("Give a number or a task's 32-character id.")


def _is_public_id(value: str) -> bool:
    return len(value) == 32 and all(ch in "0123456789abcdef" for ch in value.lower())


def _filter_form() -> AuditFilterForm:
    form = AuditFilterForm(request.args)
    clients = db.session.execute(select(Client.code, Client.name).order_by(Client.code)).all()
    form.client.choices = [SelectChoice("", "Any client"),
                           SelectChoice(NO_CLIENT, "No client (provider, sign-in)")] + [
        SelectChoice(code, f"{code} · {name}") for code, name in clients
    ]
    return form


Actor = aliased(User)
EventTask = aliased(Task)


def events_query(form: AuditFilterForm) -> Select:
    """Audit events matching the (validated) filters, newest first.

    Plain columns rather than ORM objects: the CSV streams hundreds of thousands of
    rows, and building an object per row would cost most of the time.
    """
    stmt = (
        select(
            AuditEvent.id, AuditEvent.at, Actor.email.label("actor"),
            Client.code.label("client"), AuditEvent.action, AuditEvent.object_type,
            AuditEvent.object_id, EventTask.public_id.label("task_public_id"),
            AuditEvent.from_status, AuditEvent.to_status, AuditEvent.reason, AuditEvent.ip,
            AuditEvent.before, AuditEvent.after,
        )
        .outerjoin(Actor, Actor.id == AuditEvent.actor_id)
        .outerjoin(Client, Client.id == AuditEvent.client_id)
        # Tasks are shown (and found) by their public id, as in every page address.
        .outerjoin(EventTask, and_(AuditEvent.object_type == "task",
                                   EventTask.id == AuditEvent.object_id))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    )
    if form.client.data == NO_CLIENT:
        stmt = stmt.where(AuditEvent.client_id.is_(None))
    elif form.client.data:
        stmt = stmt.where(Client.code == form.client.data)
    if actor := (form.actor.data or "").strip().lower():
        stmt = stmt.where(Actor.email.contains(actor, autoescape=True))
    if object_type := (form.object_type.data or "").strip():
        stmt = stmt.where(AuditEvent.object_type == object_type)
    if object_id := (form.object_id.data or "").strip():
        if object_id.isdigit():
            stmt = stmt.where(AuditEvent.object_id == int(object_id))
        else:
            stmt = stmt.where(EventTask.public_id == object_id.lower())
    if action := (form.action.data or "").strip():
        # A prefix: "auth." is every sign-in event, "auth.login" also its failures.
        stmt = stmt.where(AuditEvent.action.startswith(action, autoescape=True))
    if form.date_from.data:
        stmt = stmt.where(AuditEvent.at >= datetime.combine(form.date_from.data, time(), UTC))
    if form.date_to.data:
        end = datetime.combine(form.date_to.data, time(), UTC) + timedelta(days=1)
        stmt = stmt.where(AuditEvent.at < end)
    return stmt


@dataclass
class Page:
    """What the shared pager macro needs, for a query of several columns."""

    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


def object_label(row) -> str:
    """A task by its public id (as in page addresses), anything else by its number."""
    if row.task_public_id:
        return row.task_public_id
    return "" if row.object_id is None else f"#{row.object_id}"


@bp.route("/audit")
@roles_required(Role.ADMIN)
def events():
    form = _filter_form()
    if not form.validate():
        return render_template("audit/events.html", form=form, pagination=None), 422
    page = max(request.args.get("page", 1, type=int), 1)
    per_page = current_app.config["PAGE_SIZE"]
    stmt = events_query(form)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = db.session.execute(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    pagination = Page(items=rows, page=page, per_page=per_page, total=total)
    return render_template("audit/events.html", form=form, pagination=pagination,
                           object_label=object_label)


def _cell(value) -> str:
    """Text for a CSV cell; a leading formula character is neutralised for spreadsheets."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, default=str)
    text = str(value)
    return "'" + text if text.startswith(CSV_FORMULA_START) else text


def _csv_lines(stmt: Select) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    rows = db.session.execute(stmt.execution_options(yield_per=CSV_BATCH))
    for n, row in enumerate(rows, 1):
        writer.writerow([_cell(v) for v in (
            row.at.isoformat(), row.actor, row.client, row.action, row.object_type,
            object_label(row), row.from_status, row.to_status, row.reason, row.ip,
            row.before, row.after,
        )])
        if n % CSV_BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@bp.route("/audit.csv")
@roles_required(Role.ADMIN)
def export_csv():
    form = _filter_form()
    if not form.validate():
        return render_template("audit/events.html", form=form, pagination=None), 422
    filters = {name: str(field.data) for name, field in form._fields.items() if field.data}
    record("audit.export", object_type="audit", after={"filters": filters})
    name = f"audit-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(_csv_lines(events_query(form))),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"',
                 "Cache-Control": "no-store"},
    )
