"""The SLA clock of a task: due time from the contract, at-risk and breach instants, pauses.

The lifecycle calls ``on_status_change`` on every transition; intake calls
``start_clock`` when a task is created. Calendars come from the client's
calendar version effective on the day the task was received, so later changes
never rewrite history.

Three instants are stored so the periodic sweep only compares indexed
timestamps and never computes business time in SQL:

* ``at_risk_at``: ``at_risk_pct`` of the target elapsed;
* ``due_at``: the earliest instant the whole target has elapsed (can be a closing time);
* ``breach_at``: the first instant with *more* business time than the target
  elapsed. For a due time at closing that is just after the next opening, so a
  task finished first thing next morning is on time, exactly as ``sla_outcome``
  (business time elapsed against the target) decides at completion.

A pause (``pending_client``) stops the clock; on resume every instant still
ahead of the pause is pushed out by the business time the pause cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy.orm import aliased, lazyload

from provider_app.extensions import db
from provider_app.models import CalendarVersion, Client, Contract, SlaTarget, Task, TaskType
from provider_app.vocab import CLOSED_STATUSES, Priority, SlaState, Status

from .calendar import BusinessCalendar
from .calendars import calendar_from_version, effective_version, version_on

# Used when a contract names no target for a task type and priority.
DEFAULT_TARGET_HOURS = 8.0
DEFAULT_AT_RISK_PCT = 75.0
# The smallest step of business time the calendar resolves (it counts microseconds).
ONE_MICROSECOND = 1 / 3_600_000_000


def calendar_for(
    client: Client, on: date | None = None, *, calendar_hours: bool = False
) -> BusinessCalendar:
    """The client's business calendar effective on ``on`` (today when omitted)."""
    if calendar_hours:
        return BusinessCalendar.always(client.timezone)
    version = version_on(client, on or date.today())
    if version is None:
        return BusinessCalendar(client.timezone)
    return calendar_from_version(version)


def in_force(contract, client_id, on) -> Select:
    """The id of the client's contract in force on ``on`` (the latest started), for
    ``contract`` (the model or an alias); arguments may be values or bind parameters."""
    return (
        select(contract.id)
        .where(contract.client_id == client_id, contract.active.is_(True),
               contract.starts_on <= on, contract.ends_on.is_(None) | (contract.ends_on >= on))
        .order_by(contract.starts_on.desc()).limit(1)
    )


def active_contract(client_id: int, on: date | None = None) -> Contract | None:
    """The client's contract in force on ``on`` (its targets load only if touched)."""
    chosen = in_force(aliased(Contract), client_id, on or date.today()).scalar_subquery()
    return db.session.scalar(
        select(Contract).options(lazyload(Contract.targets)).where(Contract.id == chosen)
    )


def _calendar(task: Task, contract: Contract | None) -> BusinessCalendar:
    client = task.client or db.session.get(Client, task.client_id)
    return calendar_for(
        client, task.received_at.date(), calendar_hours=bool(contract and contract.calendar_hours)
    )


def task_calendar(task: Task) -> BusinessCalendar:
    """The calendar a task's clock runs on: fixed by the day it was received."""
    return _calendar(task, active_contract(task.client_id, task.received_at.date()))


@dataclass(frozen=True)
class ClockTerms:
    """What a new task's clock needs from its client's contract and calendar."""

    target_hours: float
    at_risk_pct: float
    calendar: BusinessCalendar


def _terms_select(task_type_id: Any, *leading: Any) -> Select:
    """The clock terms of client ``:client_id`` on ``:on`` for a task type (a bind
    parameter, or a column of ``leading``): one row, with the target of every priority."""
    client_id, on = bindparam("client_id"), bindparam("on")
    contract_id = in_force(aliased(Contract), client_id, on).scalar_subquery()
    version_id = effective_version(aliased(CalendarVersion), client_id, on).scalar_subquery()
    targets = (
        select(SlaTarget.target_hours)
        .where(SlaTarget.contract_id == Contract.id, SlaTarget.task_type_id == task_type_id,
               SlaTarget.priority == priority.value)
        .scalar_subquery().label(f"target_{priority.value}")
        for priority in Priority
    )
    return (
        select(
            *leading,
            Client.timezone.label("client_timezone"), Contract.id.label("contract_id"),
            Contract.calendar_hours, Contract.at_risk_pct, *targets,
            CalendarVersion.id.label("version_id"), CalendarVersion.timezone,
            CalendarVersion.hours, CalendarVersion.holiday_country,
            CalendarVersion.holiday_subdiv, CalendarVersion.closures,
            CalendarVersion.always_open,
        )
        .select_from(Client)
        .outerjoin(Contract, Contract.id == contract_id)
        .outerjoin(CalendarVersion, CalendarVersion.id == version_id)
        .where(Client.id == client_id)
    )


@cache
def _terms_statement() -> Select:
    """Built once (with bind parameters): constructing a statement costs more CPU than
    running this one."""
    return _terms_select(bindparam("task_type_id"))


@cache
def type_and_terms_statement() -> Select:
    """An active task type by code (``:code``): its ``id``, ``code`` and ``intake_schema``,
    and the clock terms for it (see ``clock_terms``): intake needs both for every task, so
    they come in one query (plain columns: no ORM object is built on the API's path)."""
    return (
        _terms_select(TaskType.id, TaskType.id, TaskType.code, TaskType.intake_schema)
        .join(TaskType, and_(TaskType.code == bindparam("code"), TaskType.active.is_(True)))
    )


def terms_from_row(row: Any, priority: Priority | str) -> ClockTerms:
    """The terms for one priority from a row of ``_terms_select``."""
    if row.calendar_hours:
        calendar = BusinessCalendar.always(row.client_timezone)
    elif row.version_id is None:
        calendar = BusinessCalendar(row.client_timezone)
    else:
        calendar = calendar_from_version(row)  # the row carries the version's columns
    target = getattr(row, f"target_{Priority(priority).value}")
    return ClockTerms(
        target_hours=target if target is not None else DEFAULT_TARGET_HOURS,
        at_risk_pct=row.at_risk_pct if row.contract_id is not None else DEFAULT_AT_RISK_PCT,
        calendar=calendar,
    )


def clock_terms(
    client_id: int, task_type_id: int, priority: Priority | str, on: date
) -> ClockTerms:
    """The contract in force on ``on``, its target for this type and priority, and the
    calendar version effective that day, in one query.

    Same rules as ``active_contract`` and ``calendar_for`` (``in_force``,
    ``effective_version``); a missing target is ``DEFAULT_TARGET_HOURS``.
    """
    row = db.session.connection().execute(_terms_statement(), {  # Core: no ORM layer
        "client_id": client_id, "on": on, "task_type_id": task_type_id}).one()
    return terms_from_row(row, priority)


def clock_columns(
    client_id: int, task_type_id: int, priority: Priority | str, received_at: datetime,
    *, terms: ClockTerms | None = None,
) -> dict[str, Any]:
    """A new task's SLA columns (target, at-risk, due and breach instants, state) from its
    client's contract (``terms`` when the caller already read them for this task):
    intake writes them straight into the task's INSERT."""
    if terms is None:
        terms = clock_terms(client_id, task_type_id, priority, received_at.date())
    calendar, target = terms.calendar, terms.target_hours
    due_at = calendar.add_business_hours(received_at, target)
    return {
        "sla_target_hours": target,
        "at_risk_at": calendar.add_business_hours(received_at, target * terms.at_risk_pct / 100),
        "due_at": due_at,
        "breach_at": calendar.add_business_hours(due_at, ONE_MICROSECOND),
        "sla_state": SlaState.ON_TRACK,
        "sla_paused_since": None,
    }


def start_clock(task: Task) -> None:
    """Set the task's target, at-risk, due and breach instants from its client's contract."""
    for name, value in clock_columns(
        task.client_id, task.task_type_id, task.priority, task.received_at
    ).items():
        setattr(task, name, value)


def on_status_change(task: Task, from_status: Status, to_status: Status, at: datetime) -> None:
    """Keep the clock in step with the lifecycle: pause, resume, and settle at the end.

    The calendar and history queries run without autoflush, so the transition
    is still written as one UPDATE (one version step) by the lifecycle's flush.
    """
    with db.session.no_autoflush:
        if to_status in CLOSED_STATUSES:
            _settle(task, to_status, at)
        elif to_status == Status.PENDING_CLIENT:
            task.sla_paused_since = at
        elif from_status == Status.PENDING_CLIENT and task.sla_paused_since is not None:
            _resume(task, at)


def _resume(task: Task, at: datetime) -> None:
    """Push every instant still ahead of the pause out by the business time it cost.

    Instants already passed when the pause began stay where they are: that
    threshold was crossed before the client was asked, and the sweep marks it
    (if it has not already) on its next run.
    """
    calendar = task_calendar(task)
    paused = task.sla_paused_since

    def shift(instant: datetime | None) -> datetime | None:
        if instant is None or instant <= paused:
            return instant
        return calendar.add_business_hours(at, calendar.business_hours_between(paused, instant))

    task.at_risk_at = shift(task.at_risk_at)
    task.due_at = shift(task.due_at)
    task.breach_at = shift(task.breach_at)
    task.sla_paused_since = None


def _settle(task: Task, to_status: Status, at: datetime) -> None:
    """Fix the outcome from the audited history and take the task out of the sweep.

    The breach instant stays: a report re-run for a period in which the task was still
    open decides "past its target at period end" by it (``sla.reporting.metrics``). The
    sweep only looks at running statuses, so a closed task is out of it either way.
    """
    # Imported here: the outcome reads history through this module's calendars.
    from .outcome import sla_outcome

    if task.sla_target_hours is not None:
        outcome = sla_outcome(task, at)
        task.sla_elapsed_hours = outcome.elapsed_hours
        if to_status == Status.COMPLETED:
            task.sla_met = outcome.met
            if not outcome.met:
                task.sla_state = SlaState.BREACHED
    task.at_risk_at = None
    task.sla_paused_since = None
