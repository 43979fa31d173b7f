"""The escalation queue for team leads and admins: filter, acknowledge, assign, note, resolve.

Every query goes through ``access.scoped`` so a lead restricted to some clients
never sees, or acts on, another client's escalation (a foreign id is a 404).
The other SLA pages live beside this module; importing them here registers
their routes on the one blueprint ``create_app`` registers.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from wtforms import SelectChoice

from provider_app.access import get_scoped_or_404, roles_required, scoped, visible_client_ids
from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.models import AuditEvent, Client, Message, Task, User
from provider_app.templating import NAV_COUNTS
from provider_app.vocab import MessageKind, Role

from . import calendar_views, commands, complaint_views, notification_views  # noqa: F401
from .blueprint import bp
from .escalations import (
    EscalationConflict,
    EscalationError,
    acknowledge,
    add_note,
    assign_owner,
    eligible_owners,
    resolve,
)
from .forms import AcknowledgeForm, NoteForm, OwnerForm, QueueFilterForm, ResolveForm
from .models import Escalation

__all__ = ["bp"]
LEADS = (Role.TEAM_LEAD, Role.ADMIN)


def open_escalation_count() -> int:
    """The navigation badge: one COUNT on the partial index of open escalations."""
    if not current_user.has_role(*LEADS):
        return 0
    return db.session.scalar(scoped(
        select(func.count()).select_from(Escalation).where(Escalation.resolved_at.is_(None)),
        Escalation,
    ))


@bp.record_once
def _register_nav_count(state) -> None:
    NAV_COUNTS["sla.escalations"] = open_escalation_count


def _visible_clients() -> list[Client]:
    ids = visible_client_ids()
    stmt = select(Client).order_by(Client.code)
    if ids is not None:
        stmt = stmt.where(Client.id.in_(ids))
    return list(db.session.scalars(stmt))


@bp.route("/escalations")
@roles_required(*LEADS)
def escalations():
    clients = _visible_clients()
    form = QueueFilterForm(request.args)
    form.client.choices = [SelectChoice("", "All clients")] + [
        SelectChoice(c.code, c.code) for c in clients]
    if not form.validate():
        return render_template("sla/escalations.html", form=form, pagination=None), 400
    stmt = scoped(select(Escalation), Escalation)
    if form.client.data:
        stmt = stmt.join(Client, Client.id == Escalation.client_id).where(
            Client.code == form.client.data)
    if form.reason.data:
        stmt = stmt.where(Escalation.reason == form.reason.data)
    if form.level.data:
        stmt = stmt.where(Escalation.level == int(form.level.data))
    if form.age.data:
        stmt = stmt.where(Escalation.opened_at <= utcnow() - timedelta(hours=int(form.age.data)))
    state = form.state.data or "open"
    if state in ("open", "unacknowledged"):
        stmt = stmt.where(Escalation.resolved_at.is_(None))
    if state == "unacknowledged":
        stmt = stmt.where(Escalation.acknowledged_at.is_(None))
    if state == "resolved":
        stmt = stmt.where(Escalation.resolved_at.is_not(None)).order_by(
            Escalation.resolved_at.desc())
    stmt = stmt.order_by(Escalation.level.desc(), Escalation.opened_at, Escalation.id).options(
        joinedload(Escalation.task), joinedload(Escalation.client), joinedload(Escalation.owner)
    )
    pagination = db.paginate(stmt, page=max(request.args.get("page", 1, type=int), 1),
                             per_page=current_app.config["PAGE_SIZE"], error_out=False)
    return render_template("sla/escalations.html", form=form, pagination=pagination,
                           ack_form=AcknowledgeForm(formdata=None))


def _load(public_id: str) -> Escalation:
    return get_scoped_or_404(Escalation, public_id, options=[
        joinedload(Escalation.task).joinedload(Task.task_type),
        joinedload(Escalation.client), joinedload(Escalation.owner),
    ])


def _detail(escalation: Escalation, status: int = 200, error: str | None = None, **forms):
    """The escalation page; a failed action re-renders it with its form's errors."""
    timeline = db.session.execute(
        select(AuditEvent, User)
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .where(AuditEvent.object_type == "escalation", AuditEvent.object_id == escalation.id)
        .order_by(AuditEvent.at, AuditEvent.id)
    ).all()
    notes = db.session.scalars(
        select(Message)
        .where(Message.task_id == escalation.task_id, Message.kind == MessageKind.NOTE)
        .options(joinedload(Message.author))
        .order_by(Message.created_at)
    ).all()
    owner_form = forms.get("owner_form") or OwnerForm(
        formdata=None, version=escalation.version,
        owner=escalation.owner.email if escalation.owner else "")
    owner_form.owner.choices = [SelectChoice("", "Choose…")] + [
        SelectChoice(u.email, u.name or u.email) for u in eligible_owners(escalation.client_id)]
    return render_template(
        "sla/escalation.html",
        escalation=escalation,
        task=escalation.task,
        timeline=timeline,
        notes=notes,
        error=error,
        ack_form=forms.get("ack_form") or AcknowledgeForm(formdata=None,
                                                          version=escalation.version),
        owner_form=owner_form,
        note_form=forms.get("note_form") or NoteForm(formdata=None),
        resolve_form=forms.get("resolve_form") or ResolveForm(formdata=None,
                                                              version=escalation.version),
    ), status


def _failed(escalation: Escalation, exc: EscalationError, form, name: str):
    """Field errors onto the form (422); a stale version is a conflict (409).

    Services refuse before changing anything, and the request boundary rolls
    back any response of 400 or more, so the page shows the stored state.
    """
    if isinstance(exc, EscalationConflict):
        return _detail(escalation, 409, error=str(exc))
    for field, messages in exc.errors.items():
        getattr(form, field).errors = [*getattr(form, field).errors, *messages]
    return _detail(escalation, 422, error=None if exc.errors else str(exc), **{name: form})


def _safe_next(target: str | None) -> str | None:
    """Back to the filtered queue the action came from; never an open redirect."""
    if target and target.startswith("/escalations") and not target.startswith("//"):
        return target
    return None


@bp.route("/escalations/<public_id>")
@roles_required(*LEADS)
def escalation(public_id: str):
    return _detail(_load(public_id))


@bp.route("/escalations/<public_id>/acknowledge", methods=["POST"])
@roles_required(*LEADS)
def acknowledge_escalation(public_id: str):
    escalation = _load(public_id)
    form = AcknowledgeForm()
    if not form.validate():
        return _detail(escalation, 422, error="The page was out of date; reload it.")
    try:
        acknowledge(escalation, current_user, expected_version=form.version.data)
    except EscalationError as exc:
        return _failed(escalation, exc, form, "ack_form")
    flash("Acknowledged: the level will not rise any further.", "success")
    return redirect(_safe_next(form.next.data) or url_for(".escalation", public_id=public_id))


@bp.route("/escalations/<public_id>/owner", methods=["POST"])
@roles_required(*LEADS)
def assign_escalation(public_id: str):
    escalation = _load(public_id)
    form = OwnerForm()
    form.owner.choices = [SelectChoice(u.email, u.email)
                          for u in eligible_owners(escalation.client_id)]
    if not form.validate():
        return _detail(escalation, 422, owner_form=form)
    owner = db.session.scalar(select(User).where(User.email == form.owner.data))
    try:
        assign_owner(escalation, owner, current_user, expected_version=form.version.data)
    except EscalationError as exc:
        return _failed(escalation, exc, form, "owner_form")
    flash(f"Now owned by {owner.name or owner.email}.", "success")
    return redirect(url_for(".escalation", public_id=public_id))


@bp.route("/escalations/<public_id>/notes", methods=["POST"])
@roles_required(*LEADS)
def note_escalation(public_id: str):
    escalation = _load(public_id)
    form = NoteForm()
    if not form.validate():
        return _detail(escalation, 422, note_form=form)
    try:
        add_note(escalation, form.body.data, current_user)
    except EscalationError as exc:
        return _failed(escalation, exc, form, "note_form")
    flash("Note added.", "success")
    return redirect(url_for(".escalation", public_id=public_id))


@bp.route("/escalations/<public_id>/resolve", methods=["POST"])
@roles_required(*LEADS)
def resolve_escalation(public_id: str):
    escalation = _load(public_id)
    form = ResolveForm()
    if not form.validate():
        return _detail(escalation, 422, resolve_form=form)
    try:
        resolve(escalation, form.note.data, current_user, expected_version=form.version.data)
    except EscalationError as exc:
        return _failed(escalation, exc, form, "resolve_form")
    flash("Resolved.", "success")
    return redirect(url_for(".escalations"))
