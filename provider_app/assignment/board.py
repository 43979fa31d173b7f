"""What the lead board and the staff list show: queue counts, filtered tasks, staff, and why.

Read-only queries, all scoped to the caller's clients; SQL aggregates, Python formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import joinedload
from wtforms import SelectChoice

from ..access import scoped, visible_client_ids
from ..extensions import db
from ..models import Client, StaffProfile, Task, TaskType, User, UserRole
from ..vocab import OPEN_STATUSES, Availability, Role, StaffTier, Status
from .eligibility import (
    PersonFacts,
    Reason,
    load_people,
    load_types,
    reasons,
)
from .urgency import at_risk_clause, queue_order

DUE_FILTERS = {"overdue": "Overdue", "today": "Due within 24 h", "at_risk": "At risk"}
STARTED = (Status.IN_PROGRESS, Status.PENDING_CLIENT, Status.REWORK)


@dataclass
class BoardFilters:
    """Filters from the URL; unknown values are reported, not silently ignored."""

    client: str | None = None
    task_type: str | None = None
    status: str | None = None
    due: str | None = None
    assignee: str | None = None
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> BoardFilters:
        found = cls(
            client=args.get("client") or None,
            task_type=args.get("type") or None,
            status=args.get("status") or None,
            due=args.get("due") or None,
            assignee=args.get("assignee") or None,
        )
        if found.status and found.status not in {s.value for s in OPEN_STATUSES}:
            found.errors.append(f"Unknown status {found.status!r}; showing every open status.")
            found.status = None
        if found.due and found.due not in DUE_FILTERS:
            found.errors.append(f"Unknown due filter {found.due!r}; choose "
                                + ", ".join(DUE_FILTERS) + ".")
            found.due = None
        return found

    def as_args(self) -> dict[str, str]:
        return {k: v for k, v in {"client": self.client, "type": self.task_type,
                                  "status": self.status, "due": self.due,
                                  "assignee": self.assignee}.items() if v}


# Summary columns: the statuses of the tiles above it, each a link to that exact filter
# ("Open" also counts the moments a task is received or submitted).
SUMMARY_COLUMNS: tuple[tuple[str, tuple[Status, ...]], ...] = tuple(
    (s.value, (s,)) for s in (Status.QUEUED, Status.ASSIGNED, Status.IN_PROGRESS,
                              Status.PENDING_CLIENT, Status.IN_QA, Status.REWORK)
)


@dataclass(frozen=True)
class QueueRow:
    """One queue of the summary: a client (or, filtered to a client, one of its task types)."""

    code: str
    counts: dict[str, int]
    total: int
    oldest: datetime | None
    earliest_due: datetime | None


def queue_summary(filters: BoardFilters) -> tuple[str, list[QueueRow]]:
    """Open work per client, or per task type once the board is filtered to one client:
    counts by status, oldest received and earliest due, one SQL aggregate.

    One row per queue keeps the table as long as the list of clients (or types), not
    clients x types x statuses: at scale that was thousands of rows on every board view.
    Returns ("client" | "task_type", rows).
    """
    by = "task_type" if filters.client else "client"
    key = TaskType.code if filters.client else Client.code
    stmt = (
        select(key, func.count(), func.min(Task.received_at), func.min(Task.due_at),
               *(func.sum(case((Task.status.in_([s.value for s in statuses]), 1), else_=0))
                 for _, statuses in SUMMARY_COLUMNS))
        .join(Client, Client.id == Task.client_id)
        .where(Task.status.in_([s.value for s in OPEN_STATUSES]))
        .group_by(key).order_by(key)
    )
    if filters.client:
        stmt = stmt.join(TaskType, TaskType.id == Task.task_type_id).where(
            Client.code == filters.client)
    rows = [
        QueueRow(code=row[0], total=row[1], oldest=row[2], earliest_due=row[3],
                 counts={name: int(n or 0) for (name, _), n in zip(SUMMARY_COLUMNS, row[4:],
                                                                   strict=True)})
        for row in db.session.execute(scoped(stmt, Task))
    ]
    return by, rows


def open_status_counts() -> dict[str, int]:
    """Tiles: open tasks per status (closed history is never counted on the hot path), and
    ``offered``: queued tasks waiting for a person's answer to an offer."""
    stmt = scoped(select(Task.status, func.count())
                  .where(Task.status.in_([s.value for s in OPEN_STATUSES]))
                  .group_by(Task.status), Task)
    counts = {Status(s).value: n for s, n in db.session.execute(stmt)}
    offered = scoped(select(func.count()).select_from(Task).where(
        Task.offered_to_id.is_not(None), Task.status == Status.QUEUED), Task)
    counts["offered"] = db.session.scalar(offered) or 0
    return counts


def task_query(filters: BoardFilters, now: datetime) -> Select:
    """Open tasks matching the filters, in queue order, with what the table shows loaded."""
    stmt = (
        select(Task)
        .where(Task.status.in_([s.value for s in OPEN_STATUSES]))
        .options(joinedload(Task.client), joinedload(Task.task_type),
                 joinedload(Task.assignee), joinedload(Task.offered_to))
        .order_by(*queue_order())
    )
    if filters.client:
        stmt = stmt.join(Client, Client.id == Task.client_id).where(Client.code == filters.client)
    if filters.task_type:
        stmt = stmt.join(TaskType, TaskType.id == Task.task_type_id).where(
            TaskType.code == filters.task_type)
    if filters.status:
        stmt = stmt.where(Task.status == filters.status)
    if filters.due == "overdue":
        stmt = stmt.where(Task.due_at < now)
    elif filters.due == "today":
        stmt = stmt.where(Task.due_at < now + timedelta(hours=24))
    elif filters.due == "at_risk":
        stmt = stmt.where(at_risk_clause(now))
    if filters.assignee == "none":
        stmt = stmt.where(Task.assignee_id.is_(None))
    elif filters.assignee:
        stmt = stmt.join(StaffProfile, StaffProfile.user_id == Task.assignee_id).where(
            StaffProfile.public_id == filters.assignee)
    return scoped(stmt, Task)


def held_by_absent() -> list[Task]:
    """Started work whose holder is away or on leave: the lead decides what happens to it."""
    stmt = scoped(
        select(Task)
        .join(StaffProfile, StaffProfile.user_id == Task.assignee_id)
        .where(Task.status.in_([s.value for s in STARTED]),
               StaffProfile.availability.in_([Availability.AWAY.value,
                                              Availability.ON_LEAVE.value]))
        .options(joinedload(Task.client), joinedload(Task.task_type), joinedload(Task.assignee))
        .order_by(Task.due_at)
        .limit(100),
        Task,
    )
    return list(db.session.scalars(stmt).unique())


def specialists() -> list[PersonFacts]:
    """Every specialist with a staff profile, by name (for the staff list and the forms)."""
    ids = db.session.scalars(
        select(StaffProfile.user_id)
        .join(UserRole, (UserRole.user_id == StaffProfile.user_id)
              & (UserRole.role == Role.SPECIALIST))
    ).all()
    people = load_people(ids)
    return sorted(people.values(), key=lambda p: (p.name.lower(), p.user_id))


@dataclass(frozen=True)
class StaffOption:
    """What a staff select shows about a specialist (the same names as ``PersonFacts``)."""

    public_id: str
    name: str
    tier: StaffTier
    load: int
    capacity: int
    availability: Availability


def staff_options() -> list[StaffOption]:
    """Every specialist for the board's selects, by name, in one query.

    The board needs names, tiers and loads only; ``specialists()`` also loads every
    person's skills, licences and clients (three queries with the ids of all staff),
    which cost the board a third of its time with 500 specialists.
    """
    rows = db.session.execute(
        select(StaffProfile.public_id, func.coalesce(User.name, User.email), StaffProfile.tier,
               StaffProfile.held_weight, StaffProfile.capacity, StaffProfile.availability)
        .join(User, User.id == StaffProfile.user_id)
        .join(UserRole, (UserRole.user_id == User.id) & (UserRole.role == Role.SPECIALIST))
        .where(User.active.is_(True))
    )
    options = [StaffOption(public_id, name, StaffTier(tier), int(n), capacity,
                           Availability(availability))
               for public_id, name, tier, n, capacity, availability in rows]
    return sorted(options, key=lambda o: (o.name.lower(), o.public_id))


def staff_choices(people: list[PersonFacts] | list[StaffOption]) -> list[SelectChoice]:
    """Select options: "Name — tier, load/capacity[, away]"."""
    choices = []
    for p in people:
        text = f"{p.name} — {p.tier.value.replace('_', ' ')}, {p.load}/{p.capacity}"
        if p.availability != Availability.AVAILABLE:
            text += ", " + p.availability.value.replace("_", " ")
        choices.append(SelectChoice(p.public_id, text))
    return choices


def person_by_public_id(public_id: str | None) -> int | None:
    """The user id behind a staff profile's public id, or None."""
    if not public_id:
        return None
    return db.session.scalar(select(StaffProfile.user_id).where(
        StaffProfile.public_id == public_id))


def candidates_for(task: Task, people: list[PersonFacts],
                   now: datetime) -> list[tuple[PersonFacts, list[Reason]]]:
    """Each specialist with the reasons they may not take ``task``; eligible people first."""
    task_type = load_types([task.task_type_id])[task.task_type_id]
    rows = [(p, reasons(task, task_type, p, now)) for p in people]
    return sorted(rows, key=lambda r: (any(x.hard for x in r[1]), len(r[1]), r[0].load,
                                       r[0].name.lower()))


def filter_options() -> dict[str, list[str]]:
    """Client and task-type codes for the filter selects (only the caller's clients)."""
    stmt = select(Client.code).where(Client.active.is_(True)).order_by(Client.code)
    visible = visible_client_ids()
    if visible is not None:
        stmt = stmt.where(Client.id.in_(visible))
    types = db.session.scalars(select(TaskType.code).order_by(TaskType.code)).all()
    return {"clients": list(db.session.scalars(stmt)), "types": list(types)}
