"""Task list filters shared by the portal's task list and ``GET /api/v1/tasks``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select

from ..models import Task, TaskType


def _start_of(day: date, tz: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(tz))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_tasks(stmt: Select, filters: Mapping[str, Any], *, tz: str) -> Select:
    """Apply loaded TaskFilterSchema values; received dates are whole days in ``tz``."""
    if filters.get("status"):
        stmt = stmt.where(Task.status.in_(filters["status"]))
    if filters.get("priority"):
        stmt = stmt.where(Task.priority.in_(filters["priority"]))
    if filters.get("task_type"):
        code = filters["task_type"].strip().upper()
        stmt = stmt.where(Task.task_type_id.in_(select(TaskType.id).where(TaskType.code == code)))
    if filters.get("received_from"):
        stmt = stmt.where(Task.received_at >= _start_of(filters["received_from"], tz))
    if filters.get("received_to"):
        next_day = filters["received_to"] + timedelta(days=1)
        stmt = stmt.where(Task.received_at < _start_of(next_day, tz))
    if filters.get("q"):
        stmt = stmt.where(Task.external_ref.ilike(f"%{_escape_like(filters['q'])}%", escape="\\"))
    if filters.get("external_ref"):
        stmt = stmt.where(Task.external_ref == filters["external_ref"])
    return stmt
