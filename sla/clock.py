"""The SLA clock of a task: due time from the contract, pauses, elapsed business time.

The lifecycle calls ``on_status_change`` on every transition; intake calls
``start_clock`` when a task is created. Calendars come from the client's
calendar version effective on the day, so later changes never rewrite history.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import select

from provider_app.extensions import db
from provider_app.models import CalendarVersion, Client, Contract, SlaTarget, Task
from provider_app.vocab import Priority, Status

from .calendar import BusinessCalendar

# Used when a contract names no target for a task type and priority.
DEFAULT_TARGET_HOURS = 8.0


def _parse_hours(raw: dict) -> dict[int, list[tuple[time, time]]]:
    return {
        int(day): [(time.fromisoformat(a), time.fromisoformat(b)) for a, b in windows]
        for day, windows in raw.items()
    }


def calendar_for(client: Client, on: date | None = None, *, calendar_hours: bool = False):
    """The client's business calendar effective on ``on`` (today when omitted)."""
    if calendar_hours:
        return BusinessCalendar.always(client.timezone)
    on = on or date.today()
    version = db.session.scalar(
        select(CalendarVersion)
        .where(CalendarVersion.client_id == client.id, CalendarVersion.effective_from <= on)
        .order_by(CalendarVersion.effective_from.desc())
        .limit(1)
    )
    if version is None:
        return BusinessCalendar(client.timezone)
    if version.always_open:
        return BusinessCalendar.always(version.timezone)
    return BusinessCalendar(
        version.timezone,
        _parse_hours(version.hours),
        version.holiday_country,
        subdiv=version.holiday_subdiv,
        closures=[date.fromisoformat(d) for d in version.closures or []],
    )


def active_contract(client_id: int, on: date | None = None) -> Contract | None:
    on = on or date.today()
    return db.session.scalar(
        select(Contract)
        .where(
            Contract.client_id == client_id,
            Contract.active.is_(True),
            Contract.starts_on <= on,
            (Contract.ends_on.is_(None)) | (Contract.ends_on >= on),
        )
        .order_by(Contract.starts_on.desc())
        .limit(1)
    )


def target_hours_for(contract: Contract | None, task_type_id: int, priority: Priority) -> float:
    if contract is None:
        return DEFAULT_TARGET_HOURS
    hours = db.session.scalar(
        select(SlaTarget.target_hours).where(
            SlaTarget.contract_id == contract.id,
            SlaTarget.task_type_id == task_type_id,
            SlaTarget.priority == Priority(priority),
        )
    )
    return hours if hours is not None else DEFAULT_TARGET_HOURS


def task_calendar(task: Task):
    """The calendar a task's clock runs on: fixed by the day it was received."""
    contract = active_contract(task.client_id, task.received_at.date())
    client = task.client or db.session.get(Client, task.client_id)
    return calendar_for(
        client, task.received_at.date(), calendar_hours=bool(contract and contract.calendar_hours)
    )


def start_clock(task: Task) -> None:
    """Set the task's SLA target and due time from its client's contract."""
    contract = active_contract(task.client_id, task.received_at.date())
    task.sla_target_hours = target_hours_for(contract, task.task_type_id, task.priority)
    task.due_at = task_calendar(task).add_business_hours(task.received_at, task.sla_target_hours)


def on_status_change(task: Task, from_status: Status, to_status: Status, at: datetime) -> None:
    """Pause the clock in pending_client; on resume push the due time out by the pause."""
    if to_status == Status.PENDING_CLIENT:
        task.sla_paused_since = at
    elif from_status == Status.PENDING_CLIENT and task.sla_paused_since is not None:
        if task.due_at is not None and task.due_at > task.sla_paused_since:
            calendar = task_calendar(task)
            remaining = calendar.business_hours_between(task.sla_paused_since, task.due_at)
            task.due_at = calendar.add_business_hours(at, remaining)
        task.sla_paused_since = None
