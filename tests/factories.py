"""One-line factories for test data (CTFd style): tests read like stories."""

from __future__ import annotations

import itertools
from datetime import date, time, timedelta

from provider_app.accounts import create_user, issue_token
from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.models import (
    CalendarVersion,
    Client,
    Contract,
    ScorecardItem,
    SlaTarget,
    Sop,
    SopStep,
    StaffClient,
    StaffLicence,
    StaffProfile,
    StaffSkill,
    Task,
    TaskType,
    TaskTypeSkill,
)
from provider_app.vocab import Priority, Role, StaffTier, Status
from sla.clock import start_clock

_seq = itertools.count(1)
PASSWORD = "correct horse battery"  # noqa: S105


def gen_client(code: str | None = None, tz: str = "America/New_York", **kw) -> Client:
    n = next(_seq)
    client = Client(
        code=code or f"C{n}", name=kw.pop("name", f"Client {n}"), kind=kw.pop("kind", "agency"),
        timezone=tz, **kw,
    )
    db.session.add(client)
    db.session.flush()
    db.session.add(CalendarVersion(
        client_id=client.id, effective_from=date(2020, 1, 1), timezone=tz,
        hours={str(d): [["09:00", "17:00"]] for d in range(5)}, holiday_country="US",
        closures=[],
    ))
    db.session.flush()
    return client


def gen_user(role: Role | str = Role.CLIENT_USER, client: Client | None = None, *roles,
             email: str | None = None):
    n = next(_seq)
    return create_user(email or f"user{n}@example.test", [role, *roles], password=PASSWORD,
                       client=client)


def gen_task_type(code: str | None = None, tier: str = "BPO", *, fields: list | None = None,
                  skills: dict | None = None, licence_line: str | None = None, weight: int = 1,
                  steps: list[str] | None = None) -> TaskType:
    n = next(_seq)
    tt = TaskType(
        code=code or f"TT{n}", name=f"Task type {n}", tier=tier, weight=weight,
        licence_line=licence_line,
        intake_schema=fields if fields is not None else [
            {"name": "description", "label": "Description", "type": "textarea",
             "required": True, "max_length": 4000}
        ],
    )
    tt.skills = [TaskTypeSkill(skill=s, min_level=lvl) for s, lvl in (skills or {}).items()]
    db.session.add(tt)
    db.session.flush()
    sop = Sop(task_type_id=tt.id, version=1, pass_threshold=0.9, published_at=utcnow(),
              sampling_policy={"rate": 0.1})
    sop.steps = [SopStep(position=i, text=t) for i, t in enumerate(steps or ["Do it"], 1)]
    sop.scorecard = [
        ScorecardItem(position=1, section="Accuracy", text="Accurate", weight=3, critical=True),
        ScorecardItem(position=2, section="Process", text="Followed SOP", weight=1),
    ]
    db.session.add(sop)
    db.session.flush()
    return tt


def gen_contract(client: Client, targets: dict[tuple[TaskType, str], float] | None = None,
                 **kw) -> Contract:
    contract = Contract(client_id=client.id, name=f"{client.code} MSA",
                        starts_on=kw.pop("starts_on", date(2020, 1, 1)), **kw)
    contract.targets = [SlaTarget(task_type_id=tt.id, priority=p, target_hours=h)
                        for (tt, p), h in (targets or {}).items()]
    db.session.add(contract)
    db.session.flush()
    return contract


def gen_specialist(tier: StaffTier | str = StaffTier.GENERAL, *, skills: dict | None = None,
                   capacity: int = 5, clients: list[Client] | None = None,
                   licences: list[tuple[str, str, date]] | None = None, **kw):
    user = gen_user(Role.SPECIALIST, None, *kw.pop("extra_roles", []))
    profile = StaffProfile(
        tier=tier, capacity=capacity, timezone="UTC", shift_start=time(0, 0),
        shift_end=time(23, 59), shift_days=list(range(7)), **kw,
    )
    profile.skills = [StaffSkill(skill=s, level=lvl) for s, lvl in (skills or {}).items()]
    profile.licences = [StaffLicence(state=s, line=line, expires_on=exp)
                        for s, line, exp in (licences or [])]
    profile.client_links = [StaffClient(client_id=c.id) for c in (clients or [])]
    user.staff_profile = profile
    db.session.flush()
    return user


def gen_task(client: Client, task_type: TaskType, *, status: Status = Status.QUEUED,
             priority: Priority | str = Priority.NORMAL, received_at=None, assignee=None,
             **kw) -> Task:
    """A task walked through the real lifecycle to ``status`` (audited like any other)."""
    from provider_app.demo import PATHS
    from provider_app.lifecycle import transition

    task = Task(
        client_id=client.id, task_type_id=task_type.id, priority=priority,
        fields=kw.pop("fields", {"description": "x"}),
        received_at=received_at or utcnow() - timedelta(minutes=5),
        sop_id=task_type.current_sop().id, **kw,
    )
    db.session.add(task)
    db.session.flush()
    start_clock(task)
    for step in PATHS[Status(status)]:
        if step == Status.ASSIGNED:
            task.assignee_id = assignee.id if assignee is not None else None
        transition(task, step)
    return task


def gen_token(client: Client) -> str:
    plain, _ = issue_token(client)
    return plain
