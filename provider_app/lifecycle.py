"""The task state machine: the only code that changes an existing task's status.

Every transition is checked against the table below, flushed in the caller's
transaction and audited (actor, client, object, from, to, reason, time, IP).
The request or job boundary commits, so a failure leaves nothing half-done.
New tasks are inserted already ``queued`` by intake (``intake.insert``, and set-wise by
``intake.bulk``), which audit the ``received -> queued`` move the same way.
"""

from __future__ import annotations

from datetime import datetime

from .audit import record
from .db_types import utcnow
from .extensions import db
from .models import Task, User
from .vocab import CLOSED_STATUSES, Status

S = Status

TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.RECEIVED: frozenset({S.QUEUED}),
    S.QUEUED: frozenset({S.ASSIGNED}),
    S.ASSIGNED: frozenset({S.IN_PROGRESS, S.QUEUED}),
    S.IN_PROGRESS: frozenset({S.PENDING_CLIENT, S.SUBMITTED, S.QUEUED}),
    S.PENDING_CLIENT: frozenset({S.IN_PROGRESS}),
    S.SUBMITTED: frozenset({S.IN_QA, S.COMPLETED}),
    S.IN_QA: frozenset({S.REWORK, S.COMPLETED}),
    S.REWORK: frozenset({S.IN_PROGRESS}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}
# Cancellation is allowed from every open state.
for _status in Status:
    if _status not in CLOSED_STATUSES:
        TRANSITIONS[_status] = TRANSITIONS[_status] | {S.CANCELLED}


class TransitionError(ValueError):
    """An illegal lifecycle move, with a message a person can act on."""

    def __init__(self, task: Task, to_status: Status, detail: str | None = None):
        allowed = ", ".join(sorted(TRANSITIONS[Status(task.status)])) or "none (closed)"
        message = detail or (
            f"A task that is {Status(task.status).value} cannot move to {to_status.value}; "
            f"allowed next states: {allowed}."
        )
        super().__init__(message)
        self.task = task
        self.to_status = to_status


def can_transition(from_status: Status | str, to_status: Status | str) -> bool:
    return Status(to_status) in TRANSITIONS[Status(from_status)]


def transition(
    task: Task,
    to_status: Status | str,
    *,
    actor: User | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> Task:
    """Move ``task`` to ``to_status`` or raise TransitionError; audited and flushed."""
    # Imported here: the SLA clock module depends on models, not on the lifecycle.
    from sla.clock import on_status_change

    to_status = Status(to_status)
    from_status = Status(task.status)
    if not can_transition(from_status, to_status):
        raise TransitionError(task, to_status)
    at = at or utcnow()
    if task.id is None:
        db.session.flush()  # the audit event needs the task's id
    task.status = to_status
    if to_status == S.QUEUED:
        task.assignee_id = None
    if to_status == S.SUBMITTED:
        task.submitted_at = at
    if to_status in CLOSED_STATUSES:
        task.completed_at = at
    on_status_change(task, from_status, to_status, at)
    record(
        "task.transition",
        object_type="task",
        object_id=task.id,
        client_id=task.client_id,
        actor=actor,
        from_status=from_status.value,
        to_status=to_status.value,
        reason=reason,
        at=at,
    )
    db.session.flush()
    return task
