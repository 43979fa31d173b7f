"""Elapsed business time from a task's audited status history, and met/breached.

The stored instants (``due_at`` and friends) are a cache for the sweep; the
audit trail is the record. ``elapsed_business_hours`` replays the task's
``task.transition`` events, so the figure can be re-derived at any time and
checked against the stored clock. Met or breached is then business time
against the target, never a comparison of timestamps: a task due at 17:00
and finished at 09:00 next morning used exactly its target.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from provider_app.extensions import db
from provider_app.models import AuditEvent, Task
from provider_app.vocab import CLOSED_STATUSES, Status

from .calendar import BusinessCalendar
from .clock import DEFAULT_TARGET_HOURS, task_calendar

_US_PER_HOUR = 3_600_000_000


@dataclass(frozen=True)
class SlaOutcome:
    """Business time used against the target, at one instant."""

    target_hours: float
    elapsed_hours: float

    @property
    def met(self) -> bool:
        # Compared in whole microseconds, the calendar's resolution, so float
        # noise never turns an exactly-used target into a breach.
        return round(self.elapsed_hours * _US_PER_HOUR) <= round(self.target_hours * _US_PER_HOUR)

    @property
    def remaining_hours(self) -> float:
        return self.target_hours - self.elapsed_hours


def status_history(task: Task) -> list[tuple[datetime, Status, Status]]:
    """``(at, from, to)`` of every audited transition of the task, oldest first."""
    rows = db.session.execute(
        select(AuditEvent.at, AuditEvent.from_status, AuditEvent.to_status)
        .where(
            AuditEvent.object_type == "task",
            AuditEvent.object_id == task.id,
            AuditEvent.action == "task.transition",
        )
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    return [(at, Status(from_), Status(to)) for at, from_, to in rows]


def running_intervals(
    received_at: datetime, history: Iterable[tuple[datetime, Status, Status]], until: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The spans, up to ``until``, during which the clock ran.

    It runs from receipt, stops in ``pending_client`` and for good once the
    task is completed or cancelled.
    """
    started: datetime | None = received_at
    for at, from_status, to_status in history:
        if at >= until:
            break
        if to_status in CLOSED_STATUSES or to_status == Status.PENDING_CLIENT:
            if started is not None and at > started:
                yield started, at
            started = None
            if to_status in CLOSED_STATUSES:
                return
        elif from_status == Status.PENDING_CLIENT and started is None:
            started = at
    if started is not None and until > started:
        yield started, until


def elapsed_business_hours(
    task: Task, until: datetime | None = None, *, calendar: BusinessCalendar | None = None
) -> float:
    """Business hours the task's clock ran from receipt to ``until`` (default: now)."""
    until = until or datetime.now(UTC)
    calendar = calendar or task_calendar(task)
    return sum(
        calendar.business_hours_between(a, b)
        for a, b in running_intervals(task.received_at, status_history(task), until)
    )


def sla_outcome(task: Task, at: datetime | None = None) -> SlaOutcome:
    """Business time used against the target at ``at``.

    ``at`` defaults to the completion time of a closed task and to now for an
    open one. The lifecycle calls this when a task closes (before the closing
    event is written, which is why ``at`` is passed) and stores the result.
    """
    at = at or task.completed_at or datetime.now(UTC)
    target = task.sla_target_hours if task.sla_target_hours is not None else DEFAULT_TARGET_HOURS
    return SlaOutcome(target_hours=target, elapsed_hours=elapsed_business_hours(task, at))
