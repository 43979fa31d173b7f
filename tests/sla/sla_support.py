"""Shared helpers for the SLA tests: a New York client on 09:00-17:00 and timed walks."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from provider_app.extensions import db
from provider_app.lifecycle import transition
from provider_app.models import Task
from provider_app.vocab import Priority, Status
from sla.clock import start_clock

NEW_YORK = ZoneInfo("America/New_York")
S = Status


def ny(*args: int) -> datetime:
    """A New York wall time as aware UTC (January 2026 is EST, UTC-5)."""
    return datetime(*args, tzinfo=NEW_YORK).astimezone(UTC)


def new_task(client, task_type, received_at: datetime, *, priority=Priority.NORMAL,
             **kw) -> Task:
    """A task received at ``received_at`` with its clock started (status received)."""
    task = Task(client_id=client.id, task_type_id=task_type.id, priority=priority,
                fields={"description": "x"}, received_at=received_at,
                sop_id=task_type.current_sop().id, **kw)
    db.session.add(task)
    db.session.flush()
    start_clock(task)
    db.session.flush()
    return task


def walk(task: Task, *steps: tuple[Status, datetime]) -> Task:
    """Transition through ``(status, at)`` pairs, as the lifecycle would at those times."""
    for status, at in steps:
        transition(task, status, at=at)
    return task


def to_in_progress(task: Task, at: datetime) -> Task:
    return walk(task, (S.QUEUED, at), (S.ASSIGNED, at), (S.IN_PROGRESS, at))
