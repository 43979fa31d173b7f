"""Creating and cancelling client tasks: the one place the intake rules run.

The portal, the JSON API and e-mail intake all create tasks through ``insert.insert_task``
(the API directly, the others through ``create_task``, which hands back the ORM task);
bulk CSV import applies the same steps set-wise (see ``bulk``). A new task gets its SLA
due time from the client's contract, is checked against recent open work for a possible
duplicate (flagged, never dropped), is queued, and the assignment job is enqueued once the
transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import lazyload

from sla.clock import ClockTerms, terms_from_row, type_and_terms_statement

from ..assignment.batch import JOB_PATH, request_run
from ..audit import actor_id_of
from ..database import HotQuery
from ..db_types import utcnow
from ..extensions import db
from ..lifecycle import transition
from ..models import Client, Sop, Task, TaskType, User
from ..vocab import Status
from . import documents
from .insert import NewTask, insert_task
from .schemas import TaskInput, TypeRef

ASSIGN_JOB = JOB_PATH  # the batch assignment every new task asks for (request_run)


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


@cache
def _type_and_terms() -> HotQuery:
    return HotQuery(type_and_terms_statement())


class TypeLookup:
    """``find_task_type`` for one client's new task that also reads the client's clock
    terms for the type in the same query (``sla.clock.type_and_terms_statement``): the API
    takes hundreds of tasks a second, and this saves a round trip on each. It answers a
    ``TypeRef`` (plain columns, no ORM object). Pass it to ``load_task`` as the finder,
    then to ``take_task``."""

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        self.at = utcnow()  # the task's receipt: the terms are the ones in force then
        self._row: Any = None

    def __call__(self, code: str) -> TypeRef | None:
        self._row = _type_and_terms().first({
            "code": code.upper(), "client_id": self.client_id, "on": self.at.date()})
        row = self._row
        return None if row is None else TypeRef(row.id, row.code, row.intake_schema)

    def terms(self, task_type: TaskType | TypeRef, priority: str) -> ClockTerms | None:
        """The terms read for ``task_type`` (None if it was not the type looked up)."""
        if self._row is None or self._row.id != task_type.id:
            return None
        return terms_from_row(self._row, priority)


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


def take_task(
    client_id: int,
    data: TaskInput,
    *,
    actor: User | None,
    source: str,
    idempotency: tuple[str, str] | None = None,
    lookup: TypeLookup | None = None,
) -> NewTask:
    """Create, clock, duplicate-check, queue and audit one task, and ask for an assignment
    run after the commit; written, not committed. Nothing is loaded into the ORM session.
    ``lookup``: the ``TypeLookup`` that found the task type, with the clock terms."""
    at = lookup.at if lookup is not None else utcnow()
    terms = lookup.terms(data.task_type, data.priority) if lookup is not None else None
    new = insert_task(client_id, data, actor_id=actor_id_of(actor), source=source,
                      reason=f"received via {source}", at=at, idempotency=idempotency,
                      terms=terms)
    request_run()
    return new


def create_task(
    client: Client,
    data: TaskInput,
    *,
    actor: User | None,
    source: str,
    attachments: Sequence[documents.PreparedDocument] = (),
) -> Task:
    """``take_task``, then the new task as an ORM object with its attachments (portal and
    e-mail intake show or change it further); written, not committed."""
    new = take_task(client.id, data, actor=actor, source=source)
    task = db.session.get(Task, new.id)
    for prepared in attachments:
        documents.attach(task, prepared, actor=actor)
    return task


def cancel_task(task: Task, *, actor: User | None, reason: str | None = None) -> Task:
    """The client withdraws an open task (a closed one raises TransitionError: 409)."""
    text = "cancelled by the client" + (f": {reason.strip()}" if reason and reason.strip() else "")
    return transition(task, Status.CANCELLED, actor=actor, reason=text)
