"""Escalations: opening one (idempotent), and what leads do with it.

Every change is audited and flushed in the caller's transaction. Changes made
from a page carry the version the person saw; if the escalation moved on in
the meantime (acknowledged by someone else, raised by the sweep) the change is
refused with ``EscalationConflict`` instead of silently overwriting it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from provider_app.audit import record
from provider_app.conversation import add_note as add_task_note
from provider_app.conversation import post_message
from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.models import Message, Task, User
from provider_app.vocab import EscalationReason

from .models import Escalation
from .notify import ASSIGNED, OPENED, eligible_owner_ids, notify

NOTE_MAX = 2000


class EscalationError(ValueError):
    """A change that cannot be made, with messages keyed by form field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.errors = {field: [message]} if field else {}


class EscalationConflict(EscalationError):
    """The escalation changed since the person loaded it."""


def raise_task_level(task_ids: Iterable[int], level: int) -> None:
    """Lift ``Task.escalation_level`` to ``level`` where it is lower.

    A set-based UPDATE that leaves ``Task.version`` alone: an escalation is
    beside the lifecycle, so it must not make a specialist's open form stale.
    """
    ids = list(task_ids)
    if ids:
        db.session.execute(
            update(Task)
            .where(Task.id.in_(ids), Task.escalation_level < level)
            .values(escalation_level=level)
            .execution_options(synchronize_session="fetch")
        )


def open_escalation(
    task: Task,
    reason: EscalationReason | str,
    *,
    actor: User | None = None,
    detail: str = "",
    level: int = 1,
) -> tuple[Escalation, bool]:
    """Open (or return the already-open) escalation for this task and reason.

    Returns ``(escalation, created)``; running it twice never opens two, even
    concurrently (the partial unique index decides, inside a savepoint).
    """
    reason = EscalationReason(reason)
    existing = _open_for(task, reason)
    if existing is not None:
        return existing, False
    escalation = Escalation(
        client_id=task.client_id, task_id=task.id, reason=reason, level=level,
        opened_by_id=actor.id if actor else None, detail=detail,
    )
    try:
        with db.session.begin_nested():
            db.session.add(escalation)
    except IntegrityError:
        return _open_for(task, reason), False
    raise_task_level([task.id], level)
    record("escalation.open", object_type="escalation", object_id=escalation.id,
           client_id=task.client_id, actor=actor, reason=f"{reason.value}: {detail}"[:500],
           after={"task_id": task.id, "level": level})
    notify([escalation.id], OPENED)
    return escalation, True


def _open_for(task: Task, reason: EscalationReason) -> Escalation | None:
    return db.session.scalar(
        select(Escalation).where(
            Escalation.task_id == task.id,
            Escalation.reason == reason,
            Escalation.resolved_at.is_(None),
        )
    )


def check_version(escalation: Escalation, expected: int | None) -> None:
    """Refuse a change made from a stale page, saying what changed."""
    if expected is not None and expected != escalation.version:
        raise EscalationConflict(
            f"This escalation changed while you were looking at it (it is now "
            f"{escalation.state}, level {escalation.level}); your change was not saved. "
            "Review it and try again."
        )


def _require_open(escalation: Escalation) -> None:
    if escalation.resolved_at is not None:
        raise EscalationError("This escalation is already resolved.")


def acknowledge(
    escalation: Escalation, actor: User, *, expected_version: int | None = None,
    now: datetime | None = None,
) -> None:
    """Someone has it: the level stops rising, and they own it if nobody did."""
    check_version(escalation, expected_version)
    _require_open(escalation)
    if escalation.acknowledged_at is not None:
        raise EscalationError("This escalation is already acknowledged.")
    escalation.acknowledged_at = now or utcnow()
    escalation.acknowledged_by_id = actor.id
    if escalation.owner_id is None:
        escalation.owner_id = actor.id
    db.session.flush()
    record("escalation.acknowledge", object_type="escalation", object_id=escalation.id,
           client_id=escalation.client_id, actor=actor,
           after={"level": escalation.level, "owner_id": escalation.owner_id})


def eligible_owners(client_id: int) -> list[User]:
    """Leads who may see the client, and admins: the people an escalation can go to."""
    return list(db.session.scalars(
        select(User).where(User.id.in_(eligible_owner_ids(client_id)))
        .order_by(User.name, User.email)
    ))


def assign_owner(
    escalation: Escalation, owner: User, actor: User, *, expected_version: int | None = None
) -> None:
    """Hand the escalation to another lead (or an admin), who is notified."""
    check_version(escalation, expected_version)
    _require_open(escalation)
    if owner.id not in {u.id for u in eligible_owners(escalation.client_id)}:
        raise EscalationError(
            "Choose a team lead who works for this client, or an admin.", "owner"
        )
    if owner.id == escalation.owner_id:
        return
    before = escalation.owner_id
    escalation.owner_id = owner.id
    db.session.flush()
    record("escalation.assign", object_type="escalation", object_id=escalation.id,
           client_id=escalation.client_id, actor=actor,
           before={"owner_id": before}, after={"owner_id": owner.id})
    if owner.id != actor.id:
        notify([escalation.id], ASSIGNED)


def add_note(escalation: Escalation, body: str, actor: User) -> Message:
    """An internal note on the escalated task (never shown to the client)."""
    body = (body or "").strip()
    if not body:
        raise EscalationError("Write the note first.", "body")
    if len(body) > NOTE_MAX:
        raise EscalationError(f"Keep notes under {NOTE_MAX:,} characters.", "body")
    reason = EscalationReason(escalation.reason).value.replace("_", " ")
    message = add_task_note(escalation.task, f"[escalation: {reason}] {body}", actor)
    record("escalation.note", object_type="escalation", object_id=escalation.id,
           client_id=escalation.client_id, actor=actor, after={"message_id": message.id})
    return message


def resolve(
    escalation: Escalation, note: str, actor: User, *, expected_version: int | None = None,
    now: datetime | None = None,
) -> None:
    """Close the escalation with a resolution note (shown to the client for complaints)."""
    check_version(escalation, expected_version)
    _require_open(escalation)
    note = (note or "").strip()
    if not note:
        raise EscalationError("Say how it was resolved.", "note")
    if len(note) > NOTE_MAX:
        raise EscalationError(f"Keep the resolution under {NOTE_MAX:,} characters.", "note")
    now = now or utcnow()
    escalation.resolved_at = now
    escalation.resolved_by_id = actor.id
    escalation.resolution_note = note
    if escalation.acknowledged_at is None:
        escalation.acknowledged_at = now
        escalation.acknowledged_by_id = actor.id
    db.session.flush()
    record("escalation.resolve", object_type="escalation", object_id=escalation.id,
           client_id=escalation.client_id, actor=actor, reason=note[:500],
           after={"level": escalation.level})


def raise_complaint(task: Task, detail: str, actor: User) -> tuple[Escalation, bool]:
    """A client's complaint about a task: opens a client_complaint escalation.

    With one already open, the text is added to the task's conversation instead,
    so nothing the client wrote is lost and leads still see a single item.
    """
    detail = (detail or "").strip()
    if not detail:
        raise EscalationError("Tell us what went wrong.", "detail")
    if len(detail) > NOTE_MAX:
        raise EscalationError(f"Keep it under {NOTE_MAX:,} characters.", "detail")
    escalation, created = open_escalation(
        task, EscalationReason.CLIENT_COMPLAINT, actor=actor, detail=detail
    )
    if not created:
        post_message(task, detail, actor)
    return escalation, created
