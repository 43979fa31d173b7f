"""Opening escalations: idempotent, audited, one open escalation per task and reason."""

from __future__ import annotations

from sqlalchemy import select

from provider_app.audit import record
from provider_app.extensions import db
from provider_app.models import Task, User
from provider_app.vocab import EscalationReason

from .models import Escalation


def open_escalation(
    task: Task,
    reason: EscalationReason | str,
    *,
    actor: User | None = None,
    detail: str = "",
    level: int = 1,
) -> tuple[Escalation, bool]:
    """Open (or return the already-open) escalation for this task and reason.

    Returns ``(escalation, created)``; running it twice never opens two.
    """
    reason = EscalationReason(reason)
    existing = db.session.scalar(
        select(Escalation).where(
            Escalation.task_id == task.id,
            Escalation.reason == reason,
            Escalation.resolved_at.is_(None),
        )
    )
    if existing is not None:
        return existing, False
    escalation = Escalation(
        client_id=task.client_id, task_id=task.id, reason=reason, level=level,
        opened_by_id=actor.id if actor else None, detail=detail,
    )
    db.session.add(escalation)
    task.escalation_level = max(task.escalation_level or 0, level)
    db.session.flush()
    record("escalation.open", object_type="escalation", object_id=escalation.id,
           client_id=task.client_id, actor=actor, reason=f"{reason.value}: {detail}"[:500],
           after={"task_id": task.id, "level": level})
    return escalation, True
