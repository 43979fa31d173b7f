"""Team-lead board actions: assign, bulk assign, reassign, unassign, and absences.

Every action checks eligibility with :func:`~.eligibility.reasons` and refuses with those
reasons. A lead may override the soft rules (skill, client, capacity, availability, shift)
by ticking "override" and giving a reason; the hard rules (tier, licence, not a specialist)
cannot be overridden by anyone. Overrides and relaxations are audited beside the transition.

Services flush; the request commits. People are locked before task rows
(:mod:`.locking`), and the task's version is checked, so a task claimed or changed since the
lead loaded the page is refused instead of overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import select

from ..audit import record
from ..database import is_sqlite
from ..db_types import utcnow
from ..extensions import db
from ..jobs import enqueue_after_commit
from ..lifecycle import transition
from ..models import StaffProfile, Task, User
from ..vocab import Availability, Status
from .eligibility import (
    HELD_STATUSES,
    PersonFacts,
    Reason,
    TypeFacts,
    load_person,
    load_types,
    reasons,
    skill_relax_minutes,
)
from .locking import lock_people

BATCH_JOB = "provider_app.assignment.batch.assign_batch_job"
ABSENT = (Availability.AWAY, Availability.ON_LEAVE)


class AssignmentRefused(ValueError):
    """An action that cannot be done, with the eligibility reasons that stopped it."""

    def __init__(self, message: str, reasons: list[Reason] | None = None):
        super().__init__(message)
        self.reasons = reasons or []


class VersionConflict(AssignmentRefused):
    """The task changed since the form was loaded: nothing is overwritten."""


def check_version(task: Task, version: int | None) -> None:
    """Refuse a form built on an older version of the task (optimistic locking)."""
    if version is not None and version != task.version:
        raise VersionConflict(
            "Someone else changed this task while you had it open (you saw version "
            f"{version}, it is now {task.version}). Nothing was saved; reload and try again."
        )


def _lock_and_refresh(task: Task, people: list[int]) -> None:
    """Lock the people, then re-read the task row (locked on PostgreSQL) to act on fresh state."""
    lock_people(people)
    db.session.refresh(task, with_for_update=not is_sqlite())


def _facts(task: Task, staff_id: int) -> tuple[PersonFacts, TypeFacts]:
    person = load_person(staff_id)
    if person is None:
        raise AssignmentRefused("No such person.")
    return person, load_types([task.task_type_id])[task.task_type_id]


def _judge(task: Task, person: PersonFacts, task_type: TypeFacts, at: datetime, *,
           override: bool, reason: str | None) -> list[Reason]:
    """The soft reasons being overridden (empty when eligible), or AssignmentRefused."""
    found = reasons(task, task_type, person, at)
    hard = [r for r in found if r.hard]
    if hard:
        raise AssignmentRefused(f"{person.name} cannot take this task; this cannot be overridden.",
                                found)
    if found and not override:
        raise AssignmentRefused(
            f"{person.name} is not eligible. A lead may override these rules with a reason.",
            found,
        )
    if found and not (reason or "").strip():
        raise AssignmentRefused("An override needs a reason.", found)
    return found


def audit_choice(task: Task, person: PersonFacts, task_type: TypeFacts, overridden: list[Reason],
                  reason: str | None, actor: User, at: datetime) -> None:
    if overridden:
        record("assignment.override", object_type="task", object_id=task.id,
               client_id=task.client_id, actor=actor, reason=reason, at=at,
               before={"rules": [r.code for r in overridden]},
               after={"assignee_id": person.user_id,
                      "overridden": [r.message for r in overridden]})
    elif skill_relax_minutes(task_type.skills, person.skills):
        record("assignment.relaxed", object_type="task", object_id=task.id,
               client_id=task.client_id, actor=actor, at=at,
               reason=f"optional skills of {task_type.code} dropped after waiting in the queue",
               after={"assignee_id": person.user_id, "rule": "optional_skills"})


def offer_facts(task: Task) -> dict:
    """An open offer as audit events record it."""
    return {"offered_to_id": task.offered_to_id,
            "offered_at": task.offered_at.isoformat() if task.offered_at else None}


def withdraw_offer(task: Task, actor: User | None, at: datetime, why: str) -> None:
    """End the task's open offer, if any (see :mod:`.offers`): a lead assigned the task, or
    it left the queue another way. Audited as ``task.offer_withdrawn``."""
    if task.offered_to_id is None:
        return
    before = offer_facts(task)
    task.offered_to_id = task.offered_at = task.offer_expires_at = None
    record("task.offer_withdrawn", object_type="task", object_id=task.id,
           client_id=task.client_id, actor=actor, at=at, reason=why, before=before)
    db.session.flush()


def _give(task: Task, staff_id: int, actor: User, at: datetime, reason: str) -> None:
    """queued -> assigned by a lead: ends any offer and the offer round, then the lifecycle."""
    withdraw_offer(task, actor, at, "assigned by a lead")
    task.offer_declined_ids = None
    task.assignee_id = staff_id
    transition(task, Status.ASSIGNED, actor=actor, at=at, reason=reason)


def assign(task: Task, staff_id: int, actor: User, *, override: bool = False,
           reason: str | None = None, version: int | None = None,
           at: datetime | None = None) -> list[Reason]:
    """Give a queued task to ``staff_id``; returns the soft reasons overridden (if any)."""
    at = at or utcnow()
    check_version(task, version)
    _lock_and_refresh(task, [staff_id])
    check_version(task, version)
    if task.status != Status.QUEUED:
        raise AssignmentRefused(
            f"Only queued tasks can be assigned; this one is {task.status.value.replace('_', ' ')}."
        )
    person, task_type = _facts(task, staff_id)
    overridden = _judge(task, person, task_type, at, override=override, reason=reason)
    _give(task, staff_id, actor, at, (reason or "").strip() or "assigned by a lead")
    audit_choice(task, person, task_type, overridden, reason, actor, at)
    return overridden


@dataclass
class BulkResult:
    assigned: list[Task] = field(default_factory=list)
    refused: list[tuple[Task, AssignmentRefused]] = field(default_factory=list)


def bulk_assign(tasks: list[Task], staff_id: int, actor: User, *, override: bool = False,
                reason: str | None = None, at: datetime | None = None) -> BulkResult:
    """Assign several queued tasks to one person, most urgent first, while they fit.

    Each task is judged against the person's load *including* the tasks given before it in
    this call, so capacity holds across the whole selection (unless overridden with a reason).
    """
    at = at or utcnow()
    result = BulkResult()
    lock_people([staff_id])
    person = load_person(staff_id)
    if person is None:
        raise AssignmentRefused("No such person.")
    types = load_types({t.task_type_id for t in tasks})
    ordered = sorted(tasks, key=lambda t: (t.priority_order, t.due_at or at, t.id))
    for task in ordered:
        db.session.refresh(task, with_for_update=not is_sqlite())
        try:
            if task.status != Status.QUEUED:
                raise AssignmentRefused(f"No longer queued ({task.status.value}).")
            task_type = types[task.task_type_id]
            overridden = _judge(task, person, task_type, at, override=override, reason=reason)
        except AssignmentRefused as refused:
            result.refused.append((task, refused))
            continue
        _give(task, staff_id, actor, at, (reason or "").strip() or "bulk-assigned by a lead")
        audit_choice(task, person, task_type, overridden, reason, actor, at)
        person = replace(person, load=person.load + task_type.weight)
        result.assigned.append(task)
    return result


def reassign(task: Task, staff_id: int, actor: User, *, reason: str | None,
             override: bool = False, version: int | None = None,
             at: datetime | None = None) -> list[Reason]:
    """Move a held task to another person, keeping its status; a reason is required."""
    at = at or utcnow()
    if not (reason or "").strip():
        raise AssignmentRefused("Give a reason for the reassignment.")
    check_version(task, version)
    _lock_and_refresh(task, [p for p in (task.assignee_id, staff_id) if p is not None])
    check_version(task, version)
    previous = task.assignee_id
    if task.status not in HELD_STATUSES:
        raise AssignmentRefused("Only assigned or started tasks can be reassigned; "
                                "assign queued tasks instead.")
    if staff_id == task.assignee_id:
        raise AssignmentRefused("That person already holds this task.")
    person, task_type = _facts(task, staff_id)
    overridden = _judge(task, person, task_type, at, override=override, reason=reason)
    task.assignee_id = staff_id
    db.session.flush()
    record("task.reassigned", object_type="task", object_id=task.id, client_id=task.client_id,
           actor=actor, reason=reason.strip(), at=at,
           before={"assignee_id": previous},
           after={"assignee_id": staff_id})
    audit_choice(task, person, task_type, overridden, reason, actor, at)
    return overridden


def unassign(task: Task, actor: User, *, reason: str | None = None,
             version: int | None = None) -> None:
    """Return an assigned or started task to the queue (the lifecycle clears the assignee)."""
    check_version(task, version)
    _lock_and_refresh(task, [task.assignee_id] if task.assignee_id else [])
    check_version(task, version)
    if task.status not in (Status.ASSIGNED, Status.IN_PROGRESS):
        raise AssignmentRefused("Only assigned or in-progress tasks can be unassigned.")
    transition(task, Status.QUEUED, actor=actor,
               reason=(reason or "").strip() or "unassigned by a lead")
    enqueue_after_commit(BATCH_JOB)


@dataclass
class AbsenceResult:
    returned: list[Task] = field(default_factory=list)
    flagged: list[Task] = field(default_factory=list)


def set_availability(staff_id: int, availability: Availability | str, actor: User, *,
                     reason: str | None = None) -> AbsenceResult:
    """Change someone's availability; away / on leave returns their not-started work.

    Assigned (not started) tasks go back to the queue, and so do tasks offered to them (the
    offer is withdrawn); started ones (in progress, pending the client, in rework) stay with
    the person and are flagged to the lead (an audit event here,
    and the board's "held by absent staff" list).
    """
    availability = Availability(availability)
    lock_people([staff_id])
    profile = db.session.get(StaffProfile, staff_id, populate_existing=True)
    if profile is None:
        raise AssignmentRefused("No such person.")
    result = AbsenceResult()
    before = Availability(profile.availability)
    if before == availability:
        return result
    profile.availability = availability
    record("staff.availability", object_type="staff", object_id=staff_id, actor=actor,
           reason=(reason or "").strip() or None,
           before={"availability": before.value}, after={"availability": availability.value})
    if availability in ABSENT:
        stmt = (select(Task)
                .where(Task.assignee_id == staff_id,
                       Task.status.in_([s.value for s in HELD_STATUSES]))
                .order_by(Task.id))
        if not is_sqlite():
            stmt = stmt.with_for_update()
        held = db.session.scalars(stmt).all()
        label = availability.value.replace("_", " ")
        offered = (select(Task).where(Task.offered_to_id == staff_id,
                                      Task.status == Status.QUEUED).order_by(Task.id)
                   .execution_options(populate_existing=True))  # as locked, not as cached
        for task in db.session.scalars(
                offered if is_sqlite() else offered.with_for_update()).all():
            withdraw_offer(task, actor, utcnow(), f"offered person is {label}")
            result.returned.append(task)
        for task in held:
            if task.status == Status.ASSIGNED:
                transition(task, Status.QUEUED, actor=actor, reason=f"assignee is {label}")
                result.returned.append(task)
            else:
                record("task.flagged", object_type="task", object_id=task.id,
                       client_id=task.client_id, actor=actor,
                       reason=f"assignee is {label}; started work needs a lead's decision",
                       after={"assignee_id": staff_id})
                result.flagged.append(task)
    if availability == Availability.AVAILABLE or result.returned:
        enqueue_after_commit(BATCH_JOB)
    db.session.flush()
    return result
