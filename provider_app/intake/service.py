"""Creating and cancelling client tasks: the one place the intake rules run.

The portal, the JSON API and e-mail intake all call ``create_task``; bulk CSV
import applies the same steps set-wise (see ``bulk``). A new task gets its SLA
due time from the client's contract, is checked against recent open work for a
possible duplicate (flagged, never dropped), is queued, and the assignment job
is enqueued once the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ScalarSelect, Select, bindparam, func, select
from sqlalchemy.orm import lazyload

from sla.clock import start_clock

from ..assignment.batch import JOB_PATH, request_run
from ..audit import record
from ..db_types import utcnow
from ..extensions import db
from ..lifecycle import admit, transition
from ..models import Client, Sop, Task, TaskType, User
from ..vocab import OPEN_STATUSES, Status
from . import documents
from .schemas import TaskInput

ASSIGN_JOB = JOB_PATH  # the batch assignment every new task asks for (request_run)
DUPLICATE_WINDOW = timedelta(days=7)
# Field values that identify "the same request" when the client gave no reference.
DUPLICATE_FIELDS = ("policy_number", "insured_name")
OPEN_STATUS_VALUES = tuple(s.value for s in OPEN_STATUSES)


@cache
def _task_type_by_code() -> Select:
    # Built once: intake looks a type up on every request (see sla.clock._terms_statement).
    return (
        select(TaskType).where(TaskType.code == bindparam("code"), TaskType.active.is_(True))
        .options(lazyload(TaskType.skills))
    )


def find_task_type(code: str) -> TaskType | None:
    """An active task type by code (codes are upper case); its skills are not needed here."""
    return db.session.scalar(_task_type_by_code(), {"code": code.upper()})


def active_task_types() -> list[TaskType]:
    return list(db.session.scalars(
        select(TaskType).where(TaskType.active.is_(True)).order_by(TaskType.code)
    ))


def current_sop_ids(task_type_ids: Iterable[int]) -> dict[int, int]:
    """The newest published SOP of each task type (the one new work is done under)."""
    ids = list(set(task_type_ids))
    if not ids:
        return {}
    newest: dict[int, int] = {}
    rows = db.session.execute(
        select(Sop.task_type_id, Sop.id)
        .where(Sop.task_type_id.in_(ids), Sop.published_at.is_not(None))
        .order_by(Sop.task_type_id, Sop.version.desc())
    )
    for task_type_id, sop_id in rows:
        newest.setdefault(task_type_id, sop_id)
    return newest


def current_sop_id(task_type_id: int) -> ScalarSelect:
    """``current_sop_ids`` for one type as a sub-query, so the task's INSERT looks it up."""
    return (
        select(Sop.id)
        .where(Sop.task_type_id == task_type_id, Sop.published_at.is_not(None))
        .order_by(Sop.version.desc()).limit(1).scalar_subquery()
    )


def duplicate_key(external_ref: str | None, fields: Mapping[str, Any]) -> dict[str, str] | None:
    """What makes two requests "the same": the client's reference when given, otherwise
    the policy number and named insured present in the fields; None: nothing to match on."""
    if external_ref:
        return {"external_ref": external_ref}
    key = {name: str(fields[name]) for name in DUPLICATE_FIELDS if fields.get(name)}
    return key or None


def _match(stmt: Select, key: Mapping[str, str]) -> Select:
    if "external_ref" in key:
        return stmt.where(Task.external_ref == key["external_ref"])
    for name, value in key.items():
        stmt = stmt.where(func.lower(Task.fields[name].as_string()) == value.lower())
    return stmt


def find_duplicate(
    client_id: int, task_type_id: int, external_ref: str | None, fields: Mapping[str, Any],
    *, now: datetime,
) -> int | None:
    """Id of the earliest open task of the same client and type received within the window
    that carries the same key, or None."""
    key = duplicate_key(external_ref, fields)
    if key is None:
        return None
    stmt = select(Task.id).where(
        Task.client_id == client_id,
        Task.task_type_id == task_type_id,
        Task.status.in_(OPEN_STATUS_VALUES),
        Task.received_at >= now - DUPLICATE_WINDOW,
    )
    return db.session.scalar(_match(stmt, key).order_by(Task.received_at, Task.id).limit(1))


def create_task(
    client: Client,
    data: TaskInput,
    *,
    actor: User | None,
    source: str,
    attachments: Sequence[documents.PreparedDocument] = (),
) -> Task:
    """Create, clock, duplicate-check, queue and audit one task; flushed, not committed."""
    now = utcnow()
    task_type = data.task_type
    task = Task(
        client=client,
        client_id=client.id,
        task_type=task_type,
        task_type_id=task_type.id,
        priority=data.priority,
        external_ref=data.external_ref,
        state=data.state,
        fields=data.fields,
        source=source,
        created_by_id=actor.id if actor is not None else None,
        sop_id=current_sop_id(task_type.id),
        received_at=now,
        status=Status.RECEIVED,
        documents=[],  # known to be empty: no lazy load when the task is shown
    )
    start_clock(task)
    task.duplicate_of_id = find_duplicate(
        client.id, task_type.id, data.external_ref, data.fields, now=now
    )
    admit(task, Status.QUEUED, actor=actor, reason=f"received via {source}", at=now,
          created={"task_type": task_type.code, "source": source,
                   "external_ref": task.external_ref})
    if task.duplicate_of_id is not None:
        record(
            "task.duplicate_flagged", object_type="task", object_id=task.id,
            client_id=client.id, actor=actor, reason="matches an open task received recently",
            after={"duplicate_of_id": task.duplicate_of_id}, at=now,
        )
    for prepared in attachments:
        documents.attach(task, prepared, actor=actor)
    request_run()
    return task


def cancel_task(task: Task, *, actor: User | None, reason: str | None = None) -> Task:
    """The client withdraws an open task (a closed one raises TransitionError: 409)."""
    text = "cancelled by the client" + (f": {reason.strip()}" if reason and reason.strip() else "")
    return transition(task, Status.CANCELLED, actor=actor, reason=text)
