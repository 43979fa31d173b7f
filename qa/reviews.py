"""Production QA reviews: the queue, claiming, scoring and the outcome on the task.

Four eyes: a reviewer never gets a task they worked - its current assignee, the maker of
any earlier review of it, or anyone whose audit trail shows them working it (moving it to
in_progress, pending_client or submitted). The rule is one SQL expression
(:func:`worked_by`) used by the queue, the claim and the scoring.
"""

from __future__ import annotations

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from provider_app.access import scoped
from provider_app.audit import record
from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.lifecycle import transition
from provider_app.models import AuditEvent, Sop, StaffProfile, Task, TaskType, User, UserRole
from provider_app.vocab import EscalationReason, Role, Status
from sla.escalations import open_escalation

from . import lots
from .models import QaItemResult, QaReview
from .scorecard import ItemEntry, compute_score

# Moving a task into these states is working it.
WORK_STATUSES = (Status.IN_PROGRESS.value, Status.PENDING_CLIENT.value, Status.SUBMITTED.value)


class QaError(ValueError):
    """A QA action that cannot be done, with a message for the person and field errors."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.errors = errors or {}


class StaleReviewError(QaError):
    """The review changed since the form was loaded (optimistic locking)."""


def worked_by(user_id: int):
    """SQL: the task (``Task``) was worked by ``user_id``."""
    return or_(
        Task.assignee_id == user_id,
        exists().where(QaReview.task_id == Task.id, QaReview.maker_id == user_id),
        exists().where(
            AuditEvent.object_type == "task",
            AuditEvent.object_id == Task.id,
            AuditEvent.actor_id == user_id,
            AuditEvent.action == "task.transition",
            AuditEvent.to_status.in_(WORK_STATUSES),
        ),
    )


def has_worked(task: Task, user: User) -> bool:
    return bool(db.session.scalar(
        select(exists().where(Task.id == task.id, worked_by(user.id)))
    ))


def queue_stmt(user: User) -> Select:
    """Tasks waiting for review that ``user`` may review, earliest due first."""
    return scoped(
        select(Task)
        .where(Task.status == Status.IN_QA, ~worked_by(user.id))
        .options(joinedload(Task.client), joinedload(Task.task_type))
        .order_by(Task.due_at.is_(None), Task.due_at, Task.id),
        Task,
        user,
    )


def open_claims(task_ids: list[int]) -> dict[int, QaReview]:
    """The open (claimed, unscored) production review of each task, if any."""
    if not task_ids:
        return {}
    reviews = db.session.scalars(
        select(QaReview)
        .where(
            QaReview.task_id.in_(task_ids),
            QaReview.completed_at.is_(None),
            QaReview.calibration_id.is_(None),
        )
        .options(joinedload(QaReview.reviewer))
    )
    return {review.task_id: review for review in reviews}


def claim(task: Task, reviewer: User) -> QaReview:
    """Claim ``task`` for review; returns the open review (the caller's own if it exists)."""
    if Status(task.status) != Status.IN_QA:
        raise QaError("This task is not waiting for review.")
    if has_worked(task, reviewer):
        raise QaError("You worked this task, so someone else must review it (four eyes).")
    current = open_claims([task.id]).get(task.id)
    if current is not None:
        if current.reviewer_id == reviewer.id:
            return current
        raise QaError(f"Already claimed by {current.reviewer.name or current.reviewer.email}.")
    review = QaReview(
        client_id=task.client_id, task_id=task.id, reviewer_id=reviewer.id,
        maker_id=task.assignee_id, sop_id=_sop_id(task),
    )
    try:
        with db.session.begin_nested():
            db.session.add(review)
    except IntegrityError:
        raise QaError("Someone else claimed this task a moment ago.") from None
    record("qa.claimed", object_type="task", object_id=task.id, client_id=task.client_id,
           actor=reviewer, after={"review": review.public_id})
    return review


def release(review: QaReview, actor: User) -> None:
    """Give an unscored claim back to the queue (its reviewer or a lead)."""
    if review.completed_at is not None:
        raise QaError("This review is already scored.")
    if review.reviewer_id != actor.id and not actor.has_role(Role.TEAM_LEAD, Role.ADMIN):
        raise QaError("Only the reviewer or a lead can release this claim.")
    record("qa.claim_released", object_type="task", object_id=review.task_id,
           client_id=review.client_id, actor=actor, before={"reviewer_id": review.reviewer_id})
    db.session.delete(review)
    db.session.flush()


def _sop_id(task: Task) -> int:
    """The SOP version the task was worked under (its type's current one if unset)."""
    if task.sop_id is not None:
        return task.sop_id
    return db.session.get(TaskType, task.task_type_id).current_sop().id


def rework_candidates(task: Task) -> list[User]:
    """Specialists a lead may send the rework to: allowed for the client, not the reviewer."""
    users = db.session.scalars(
        select(User)
        .join(UserRole, UserRole.user_id == User.id)
        .join(StaffProfile, StaffProfile.user_id == User.id)
        .where(UserRole.role == Role.SPECIALIST, User.active.is_(True))
        .options(selectinload(User.staff_profile))
        .order_by(User.name, User.email)
    )
    return [
        u for u in users
        if u.staff_profile.allowed_client_ids is None
        or task.client_id in u.staff_profile.allowed_client_ids
    ]


def apply_entries(review: QaReview, entries: list[ItemEntry]) -> None:
    """Store the item results and score them against the review's SOP version."""
    existing = {result.item_id: result for result in review.items}
    for entry in entries:
        result = existing.get(entry.item_id)
        if result is None:
            result = QaItemResult(item_id=entry.item_id)
            review.items.append(result)
        result.result, result.error_category = entry.result, entry.error_category
        result.comment = entry.comment
    rescore(review)


def rescore(review: QaReview) -> None:
    """Recompute score, pass and critical failure from the stored item results."""
    sop = db.session.get(Sop, review.sop_id)
    scored = compute_score(sop.scorecard, {r.item_id: r.result for r in review.items},
                           sop.pass_threshold)
    review.score, review.passed = scored.score, scored.passed
    review.critical_failure = scored.critical_failure


def complete_review(
    review: QaReview,
    reviewer: User,
    entries: list[ItemEntry],
    *,
    comments: str = "",
    expected_version: int | None = None,
    rework_to: User | None = None,
) -> QaReview:
    """Score a claimed review and apply the outcome to the task.

    Pass: the task is completed (qa_outcome pass_first or pass_reworked). Fail: it
    goes to rework - to its assignee, or to ``rework_to`` when a lead chooses - with
    rework_count + 1; a failed critical item also opens a qa_critical_fail escalation.
    """
    task = review.task
    if review.completed_at is not None:
        raise QaError("This review is already scored.")
    if review.reviewer_id != reviewer.id:
        raise QaError("Only the reviewer who claimed this task can score it.")
    if expected_version is not None and expected_version != review.version:
        raise StaleReviewError("This review changed since you opened it; reload and retry.")
    if Status(task.status) != Status.IN_QA:
        raise QaError("This task is no longer waiting for review.")
    if has_worked(task, reviewer):
        raise QaError("You worked this task, so someone else must review it (four eyes).")
    if rework_to is not None and rework_to.id != task.assignee_id:
        if not reviewer.has_role(Role.TEAM_LEAD, Role.ADMIN):
            raise QaError("Only a lead can send the rework to someone else.",
                          {"rework_to": ["Only a lead can choose who does the rework."]})
        if rework_to.id == reviewer.id or rework_to.id not in {
            u.id for u in rework_candidates(task)
        }:
            raise QaError("That person cannot take this client's work.",
                          {"rework_to": ["Choose a specialist allowed for this client."]})
    apply_entries(review, entries)
    review.comments = comments.strip()
    review.maker_id = task.assignee_id
    review.completed_at = utcnow()
    _apply_outcome(review, reviewer, rework_to)
    record("qa.review_completed", object_type="task", object_id=task.id,
           client_id=task.client_id, actor=reviewer,
           reason=f"score {review.score:.0%}, {'pass' if review.passed else 'fail'}",
           after={"review": review.public_id, "score": review.score, "passed": review.passed,
                  "critical_failure": review.critical_failure})
    lots.on_review_completed(task)
    db.session.flush()
    return review


def _apply_outcome(review: QaReview, reviewer: User, rework_to: User | None) -> None:
    task = review.task
    if review.passed:
        transition(task, Status.COMPLETED, actor=reviewer,
                   reason=f"QA pass ({review.score:.0%})")
        refresh_outcome(task)
        return
    task.rework_count = (task.rework_count or 0) + 1
    task.qa_outcome = "fail"
    if rework_to is not None and rework_to.id != task.assignee_id:
        record("qa.rework_reassigned", object_type="task", object_id=task.id,
               client_id=task.client_id, actor=reviewer,
               before={"assignee_id": task.assignee_id}, after={"assignee_id": rework_to.id})
        task.assignee_id = rework_to.id
    why = "critical item failed" if review.critical_failure else f"score {review.score:.0%}"
    transition(task, Status.REWORK, actor=reviewer, reason=f"QA fail: {why}")
    if review.critical_failure:
        failed = [r.item.text for r in review.items if r.result == "fail" and r.item.critical]
        open_escalation(task, EscalationReason.QA_CRITICAL_FAIL, actor=reviewer,
                        detail=f"critical QA failure: {'; '.join(failed)}"[:500])


def findings_for(task: Task) -> list[QaReview]:
    """The task's completed production reviews, newest first, with items and disputes."""
    return list(db.session.scalars(
        select(QaReview)
        .where(
            QaReview.task_id == task.id,
            QaReview.calibration_id.is_(None),
            QaReview.completed_at.is_not(None),
        )
        .options(
            joinedload(QaReview.reviewer),
            selectinload(QaReview.items).joinedload(QaItemResult.item),
            selectinload(QaReview.items).selectinload(QaItemResult.disputes),
        )
        .order_by(QaReview.completed_at.desc())
    ))


def refresh_outcome(task: Task) -> None:
    """Set a completed task's qa_outcome from its first production review.

    ``pass_first`` if that review passed (also once its finding was overturned), else
    ``pass_reworked``. The other values are ``fail`` (in rework), ``not_sampled`` and
    ``lot_accepted`` (completed without a review of its own).
    """
    if Status(task.status) != Status.COMPLETED:
        return
    first = db.session.scalar(
        select(QaReview.passed)
        .where(QaReview.task_id == task.id, QaReview.calibration_id.is_(None),
               QaReview.completed_at.is_not(None))
        .order_by(QaReview.completed_at, QaReview.id)
        .limit(1)
    )
    if first is not None:
        task.qa_outcome = "pass_first" if first else "pass_reworked"
