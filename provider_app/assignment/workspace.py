"""The specialist's work on a task they hold: start, SOP checklist, exception, submit.

Every action that changes the task takes the ``version`` the form was rendered with and
refuses a stale one (:func:`~.actions.check_version`), so when two people save the same task
the second gets a conflict message and nothing is overwritten. Notes and information
requests go through :mod:`provider_app.conversation`, the single home of those rules.
"""

from __future__ import annotations

from datetime import datetime

from qa.routing import route_submitted
from sla.escalations import open_escalation

from ..audit import record
from ..db_types import utcnow
from ..lifecycle import transition
from ..models import SopStep, Task, User
from ..vocab import EscalationReason, Status
from .actions import AssignmentRefused, check_version
from .eligibility import licence_reason, load_person, load_types


class WorkspaceError(AssignmentRefused):
    """A workspace action that cannot be done now, phrased for the specialist."""


def sop_steps(task: Task) -> list[SopStep]:
    """The checklist: the steps of the SOP version the task is worked under."""
    return list(task.sop.steps) if task.sop is not None else []


def missing_steps(task: Task) -> list[SopStep]:
    """Required steps not ticked yet (submission waits for these)."""
    done = task.checklist or {}
    return [s for s in sop_steps(task) if s.required and str(s.id) not in done]


def start_work(task: Task, actor: User, *, version: int | None) -> None:
    """assigned -> in_progress, or back to work after rework."""
    check_version(task, version)
    if task.status not in (Status.ASSIGNED, Status.REWORK):
        raise WorkspaceError("Only an assigned task or one sent back for rework can be started.")
    transition(task, Status.IN_PROGRESS, actor=actor, reason="work started")


def set_step(task: Task, step_id: int, done: bool, actor: User, *, version: int | None,
             at: datetime | None = None) -> None:
    """Tick or untick one SOP step; each change is kept in ``Task.checklist`` and audited."""
    check_version(task, version)
    if task.status != Status.IN_PROGRESS:
        raise WorkspaceError("Start work on the task before ticking its SOP steps.")
    step = next((s for s in sop_steps(task) if s.id == step_id), None)
    if step is None:
        raise WorkspaceError("That step is not part of this task's SOP.")
    at = at or utcnow()
    checklist = dict(task.checklist or {})  # a new dict, so the JSON column sees the change
    if done:
        checklist[str(step.id)] = {"by": actor.id, "at": at.isoformat()}
    else:
        checklist.pop(str(step.id), None)
    task.checklist = checklist
    record("task.checklist", object_type="task", object_id=task.id, client_id=task.client_id,
           actor=actor, at=at, reason=f"step {step.position} {'done' if done else 'undone'}",
           after={"step_id": step.id, "done": done})


def raise_exception(task: Task, actor: User, detail: str, *, version: int | None) -> None:
    """Send the task to the lead's escalation queue with the specialist's reason."""
    check_version(task, version)
    detail = (detail or "").strip()
    if not detail:
        raise WorkspaceError("Say what the exception is, so the lead can act on it.")
    if len(detail) > 2000:
        raise WorkspaceError("Keep the exception under 2,000 characters.")
    _, created = open_escalation(task, EscalationReason.SPECIALIST_EXCEPTION, actor=actor,
                                 detail=detail)
    if not created:
        raise WorkspaceError("An exception is already open for this task; the lead has it.")


def submit(task: Task, actor: User, *, version: int | None, at: datetime | None = None) -> Status:
    """in_progress -> submitted -> QA routing, once the required steps are ticked.

    The licence is checked again here: one that lapsed since assignment blocks submission.
    """
    check_version(task, version)
    at = at or utcnow()
    if task.status != Status.IN_PROGRESS:
        raise WorkspaceError("Only a task in progress can be submitted.")
    missing = missing_steps(task)
    if missing:
        raise WorkspaceError("Tick the required SOP steps first: "
                             + "; ".join(f"{s.position}. {s.text}" for s in missing))
    from provider_app.integrations.packages import output_missing

    if output_missing(task):
        raise WorkspaceError("Attach the completed document before you submit this task.")
    person = load_person(actor.id)
    task_type = load_types([task.task_type_id])[task.task_type_id]
    problem = licence_reason(task_type, task.state, person, at.date()) if person else None
    if problem is not None:
        raise WorkspaceError("Cannot submit: " + problem.message, [problem])
    transition(task, Status.SUBMITTED, actor=actor, at=at, reason="submitted by specialist")
    return route_submitted(task, actor)
