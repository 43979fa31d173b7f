"""Offer with a timeout: for some clients a task is offered to one person before it is theirs.

A client opts in through its contract (``Contract.offer_timeout_minutes``, the active contract
as :func:`sla.clock.active_contract` picks it). For its tasks the batch job (:mod:`.batch`)
*offers* the task to the person the solver chose instead of assigning it. The task stays
``queued`` (the public lifecycle does not change), marked with ``offered_to_id``,
``offered_at`` and ``offer_expires_at``; ``claim_next`` and the batch skip it, and the offer
holds the person's capacity against further offers. Then:

* the person **accepts** (:func:`accept_offer`): eligibility is checked again, as for any
  assignment, and the task moves ``queued -> assigned`` through the lifecycle;
* the person **declines** (:func:`decline_offer`): the task is back in the queue at once;
* nobody answers within the timeout: :func:`expire_offers`, a periodic job, puts it back.

A person who declined or let the offer lapse is not offered the task again in that round,
i.e. until the task has been assigned (``offer_declined_ids``, cleared by every path that
assigns). Each step writes an audit event: ``task.offer_made``, ``task.offer_accepted`` (beside
the lifecycle's transition), ``task.offer_declined``, ``task.offer_expired`` and, when a lead
assigns an offered task, ``task.offer_withdrawn``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import BigInteger, DateTime, func, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import joinedload

from ..audit import record
from ..database import is_sqlite
from ..db_types import utcnow
from ..extensions import db
from ..jobs import enqueue_after_commit
from ..lifecycle import transition
from ..models import Contract, Task, TaskType, User
from ..vocab import Status
from .actions import (
    BATCH_JOB,
    AssignmentRefused,
    audit_choice,
    check_version,
    offer_facts,
    withdraw_offer,
)
from .eligibility import TASKS, load_person, load_types, reasons
from .locking import lock_people

EXPIRY_BATCH = 1_000
"""Lapsed offers returned per job run (the rest on the next run, a minute later)."""


class OfferError(AssignmentRefused):
    """An offer that cannot be answered now, phrased for the specialist."""


# --- which clients, and how much capacity offers hold ----------------------------------------


def offer_timeouts(client_ids: Iterable[int], on: date) -> dict[int, int]:
    """Minutes to answer, per client whose contract in force on ``on`` makes offers."""
    ids = sorted(set(client_ids))
    if not ids:
        return {}
    rows = db.session.execute(
        select(Contract.client_id, Contract.offer_timeout_minutes)
        .where(Contract.client_id.in_(ids), Contract.active.is_(True),
               Contract.starts_on <= on,
               Contract.ends_on.is_(None) | (Contract.ends_on >= on))
        .order_by(Contract.client_id, Contract.starts_on.desc())
    ).all()
    found: dict[int, int | None] = {}
    for client_id, minutes in rows:
        found.setdefault(client_id, minutes)  # the latest contract wins, as active_contract
    return {c: m for c, m in found.items() if m and m > 0}


def offered_load(user_ids: Sequence[int]) -> dict[int, int]:
    """Weight of the tasks offered to these people and not answered yet."""
    if not user_ids:
        return {}
    tt = TaskType.__table__
    return dict(db.session.execute(
        select(TASKS.c.offered_to_id, func.sum(tt.c.weight))
        .join(tt, tt.c.id == TASKS.c.task_type_id)
        .where(TASKS.c.offered_to_id.in_(list(user_ids)),
               TASKS.c.status == Status.QUEUED.value)
        .group_by(TASKS.c.offered_to_id)
    ).all())


# --- making offers (the batch's write-back) --------------------------------------------------


def offer_rows(task_ids: list[int], people: list[int], expires: list[datetime],
               now: datetime) -> set[int]:
    """Offer each task to its person, if still queued and not offered; returns the ids offered.

    Bulk, like the batch's assignment: one ``UPDATE ... FROM unnest(...)`` on PostgreSQL, an
    executemany under the batch's database write lock on SQLite. The caller audits.
    """
    if not task_ids:
        return set()
    guard = (TASKS.c.status == Status.QUEUED.value, TASKS.c.offered_to_id.is_(None))
    values = {"offered_at": now, "version": TASKS.c.version + 1, "waiting_reason": None,
              "updated_at": now}
    if not is_sqlite():
        rows = select(
            func.unnest(literal(task_ids, ARRAY(BigInteger))).label("id"),
            func.unnest(literal(people, ARRAY(BigInteger))).label("person"),
            func.unnest(literal(expires, ARRAY(DateTime(timezone=True)))).label("expires"),
        ).subquery()
        return set(db.session.scalars(
            update(TASKS).where(TASKS.c.id == rows.c.id, *guard)
            .values(offered_to_id=rows.c.person, offer_expires_at=rows.c.expires, **values)
            .returning(TASKS.c.id)
        ))
    offered: set[int] = set()
    for task_id, person, until in zip(task_ids, people, expires, strict=True):
        result = db.session.execute(
            update(TASKS).where(TASKS.c.id == task_id, *guard)
            .values(offered_to_id=person, offer_expires_at=until, **values))
        if result.rowcount:
            offered.add(task_id)
    return offered


def offer_event(task_id: int, client_id: int, person: int, expires: datetime,
                now: datetime) -> dict:
    """The ``task.offer_made`` audit row, as the batch inserts it in bulk."""
    return {"at": now, "object_type": "task", "object_id": task_id, "client_id": client_id,
            "action": "task.offer_made", "from_status": None, "to_status": None,
            "reason": "offered by automatic assignment",
            "after": {"offered_to_id": person, "expires_at": expires.isoformat()}}


# --- answering -------------------------------------------------------------------------------


def offers_for(user_id: int) -> list[Task]:
    """The open offers made to this person, soonest lapsing first (for "My work")."""
    return list(db.session.scalars(
        select(Task)
        .where(Task.offered_to_id == user_id, Task.status == Status.QUEUED)
        .options(joinedload(Task.client), joinedload(Task.task_type))
        .order_by(Task.offer_expires_at, Task.id)
    ))


def _lock_open_offer(task: Task, actor: User, version: int | None) -> None:
    """Lock the person then the task, and check the offer is still theirs to answer."""
    check_version(task, version)
    lock_people([actor.id])
    db.session.refresh(task, with_for_update=not is_sqlite())
    check_version(task, version)
    if task.offered_to_id != actor.id or task.status != Status.QUEUED:
        raise OfferError("This task is no longer offered to you.")


def accept_offer(task: Task, actor: User, *, version: int | None = None,
                 at: datetime | None = None) -> None:
    """The person takes the offered task: ``queued -> assigned``, if still eligible."""
    at = at or utcnow()
    _lock_open_offer(task, actor, version)
    if task.offer_expires_at is not None and task.offer_expires_at <= at:
        raise OfferError("This offer has lapsed; the task is going back to the queue.")
    person = load_person(actor.id)
    task_type = load_types([task.task_type_id])[task.task_type_id]
    found = reasons(task, task_type, person, at) if person else []
    if person is None or found:
        raise OfferError("You cannot take this task now: "
                         + " ".join(r.message for r in found), found)
    offered_at = task.offered_at
    _clear(task)
    task.offer_declined_ids = None  # assigned: the round is over
    task.assignee_id = actor.id
    transition(task, Status.ASSIGNED, actor=actor, at=at, reason="offer accepted")
    record("task.offer_accepted", object_type="task", object_id=task.id,
           client_id=task.client_id, actor=actor, at=at,
           before={"offered_at": offered_at.isoformat() if offered_at else None},
           after={"assignee_id": actor.id})
    audit_choice(task, person, task_type, [], None, actor, at)


def decline_offer(task: Task, actor: User, *, reason: str | None = None,
                  version: int | None = None, at: datetime | None = None) -> None:
    """The person says no: the task is back in the queue, not offered to them this round."""
    _lock_open_offer(task, actor, version)
    _back_to_queue(task, "task.offer_declined", (reason or "").strip() or "declined",
                   actor=actor, at=at or utcnow())
    enqueue_after_commit(BATCH_JOB)


def expire_offers(now: datetime | None = None) -> dict:
    """Periodic job: offers nobody answered in time go back to the queue.

    Idempotent: a lapsed offer is cleared in the same transaction as its audit event, so a
    second run (or two at once: PostgreSQL skips rows another run holds) finds nothing.
    """
    now = now or utcnow()
    stmt = (select(Task).where(Task.offer_expires_at <= now)
            .order_by(Task.offer_expires_at, Task.id).limit(EXPIRY_BATCH)
            .execution_options(populate_existing=True))  # rows as locked, not as cached
    if not is_sqlite():
        stmt = stmt.with_for_update(skip_locked=True)
    lapsed = db.session.scalars(stmt).all()
    for task in lapsed:
        if task.status == Status.QUEUED:
            _back_to_queue(task, "task.offer_expired", "no answer before the offer lapsed",
                           actor=None, at=now)
        else:  # left the queue another way (cancelled): the offer is moot
            withdraw_offer(task, None, now, "the task left the queue")
    db.session.flush()
    if lapsed:
        enqueue_after_commit(BATCH_JOB)
    return {"expired": len(lapsed)}


# --- shared ----------------------------------------------------------------------------------


def _clear(task: Task) -> None:
    task.offered_to_id = task.offered_at = task.offer_expires_at = None
def _back_to_queue(task: Task, action: str, reason: str, *, actor: User | None,
                   at: datetime) -> None:
    person = task.offered_to_id
    before = offer_facts(task)
    task.offer_declined_ids = sorted({*(task.offer_declined_ids or []), person})
    _clear(task)
    record(action, object_type="task", object_id=task.id, client_id=task.client_id,
           actor=actor, at=at, reason=reason, before=before,
           after={"declined_ids": task.offer_declined_ids})
    db.session.flush()
