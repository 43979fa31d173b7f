"""A realistic large data set for capacity work: ``flask --app wsgi seed-scale --tasks N``.

Fifty clients, five hundred staff and up to millions of tasks with a year of
history: every task's status history as ``task.transition`` audit rows, QA
reviews with their item results for sampled work, and escalations for late
or failed work. The reference data (clients, contracts, staff) goes through
the ORM like any other code; the high-volume tables are streamed with
PostgreSQL ``COPY`` (psycopg 3 ``cursor.copy()``) in chunks, so a million
tasks load in minutes and memory stays flat. SQLite gets plain batched
INSERTs and is refused above ``SQLITE_LIMIT`` tasks: it is not where scale is
measured.

The shape follows a provider at steady state: work arrives evenly over the
window, almost everything older than two days is closed (about 93 % on time),
recent work is spread over the open states, KPO work is always reviewed and
BPO work one time in ten. Due times come from each client's business calendar
and contract targets, exactly as ``sla.clock.start_clock`` sets them. Running
it again adds another N tasks to the same clients and staff.
"""

from __future__ import annotations

import functools
import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time

import click
from flask.cli import with_appcontext
from sqlalchemy import Table, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint

from qa.models import QaItemResult, QaReview
from sla.calendar import BusinessCalendar
from sla.models import Escalation, EscalationRule

from .demo import DEMO_PASSWORD, PATHS, seed_catalogue
from .demo_catalogue import PRIORITY_FACTOR, TASK_TYPES
from .extensions import db
from .models import (
    AuditEvent,
    CalendarVersion,
    Client,
    Contract,
    ScorecardItem,
    SlaTarget,
    StaffClient,
    StaffLicence,
    StaffProfile,
    StaffSkill,
    Task,
    TaskType,
    User,
    UserRole,
)
from .models.tasks import priority_order
from .passwords import hash_password
from .vocab import Role, StaffTier, Status

SQLITE_LIMIT = 50_000
# From this many tasks on (PostgreSQL), indexes and foreign keys are rebuilt after the load.
DEFER_CONSTRAINTS_FROM = 100_000
CHUNK = 20_000
CODE_PREFIX = "SC"
CATALOGUE_HOURS = {spec["code"]: spec["hours"] for spec in TASK_TYPES}
TIMEZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"]
KINDS = ["agency", "carrier", "mga", "tpa", "broker"]
STATES = ["NY", "NJ", "IL", "CA", "TX", "FL", "PA", "OH", "GA", "WA"]
PRIORITIES = ["normal"] * 14 + ["high"] * 3 + ["urgent", "low", "low"]
SOURCES = ["api"] * 6 + ["portal"] * 3 + ["csv"]
BPO_SKILLS = ["coi", "endorsement", "loss_run", "claims", "indexing", "data_entry"]
KPO_SKILLS = BPO_SKILLS + ["coverage", "policy_check", "renewal", "underwriting", "bordereaux"]
RECENT = timedelta(hours=48)
# What the last two days look like: where recent work sits in the lifecycle.
RECENT_MIX = (
    [Status.RECEIVED] * 1 + [Status.QUEUED] * 22 + [Status.ASSIGNED] * 10
    + [Status.IN_PROGRESS] * 18 + [Status.PENDING_CLIENT] * 6 + [Status.SUBMITTED] * 1
    + [Status.IN_QA] * 8 + [Status.REWORK] * 2 + [Status.COMPLETED] * 30 + [Status.CANCELLED] * 2
)
ON_TIME = 0.93
BPO_REVIEW_RATE = 0.10
REWORK_RATE = 0.08  # of reviews
CRITICAL_RATE = 0.25  # of failed reviews


class ScaleSeedError(ValueError):
    """The request cannot be honoured (e.g. too many tasks for SQLite)."""


@dataclass
class ScaleReport:
    tasks: int = 0
    audit_events: int = 0
    qa_reviews: int = 0
    qa_item_results: int = 0
    escalations: int = 0
    clients: int = 0
    staff: int = 0
    seconds: float = 0.0
    logins: list[str] = field(default_factory=list)


# --- bulk loading ----------------------------------------------------------------


class BulkLoader:
    """Streams rows into one table: COPY on PostgreSQL, batched INSERTs elsewhere.

    Rows are tuples in ``columns`` order. Columns a newer model added that the
    seeder does not fill get their nullable NULL or their constant default;
    anything else is reported, so the seeder is updated rather than guessing.
    """

    def __init__(self, session: Session):
        self.connection = session.connection()
        self.postgres = self.connection.dialect.name == "postgresql"

    def json(self, value):
        """A JSON column's value as this backend's loader wants it (text for COPY)."""
        return json.dumps(value) if self.postgres else value

    def reserve_ids(self, table: Table, count: int) -> list[int]:
        """Primary keys for rows whose children are loaded in the same chunk."""
        if self.postgres:
            return list(self.connection.execute(
                text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) "
                     "FROM generate_series(1, :n)"), {"t": table.name, "n": count}).scalars())
        start = (self.connection.execute(select(func.max(table.c.id))).scalar() or 0) + 1
        return list(range(start, start + count))

    def load(self, table: Table, columns: Sequence[str], rows: Iterable[tuple]) -> int:
        extra_columns, extra_values = _defaults_for(table, columns)
        names = [*columns, *extra_columns]
        if any(callable(v) for v in extra_values):
            rows = (row + tuple(v() if callable(v) else v for v in extra_values) for row in rows)
        else:
            rows = (row + extra_values for row in rows)
        count = 0
        if self.postgres:
            raw = self.connection.connection.driver_connection
            column_list = ", ".join(f'"{name}"' for name in names)
            with raw.cursor() as cursor, cursor.copy(
                f'COPY "{table.name}" ({column_list}) FROM STDIN'
            ) as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
            return count
        batch: list[dict] = []
        for row in rows:
            batch.append(dict(zip(names, row, strict=True)))
            if len(batch) >= 2000:
                self.connection.execute(table.insert(), batch)
                count += len(batch)
                batch = []
        if batch:
            self.connection.execute(table.insert(), batch)
            count += len(batch)
        return count


def _defaults_for(table: Table, columns: Sequence[str]) -> tuple[list[str], tuple]:
    """Values for required columns the seeder does not name: constants, or per-row callables."""
    names: list[str] = []
    values: list = []
    for column in table.columns:
        if column.name in columns or column.nullable or column.server_default is not None:
            continue
        if column.primary_key and column.autoincrement:
            continue
        default = column.default
        if default is not None and default.is_scalar:
            names.append(column.name)
            values.append(default.arg)
            continue
        if default is not None and default.is_callable and _context_free(default.arg):
            names.append(column.name)  # new ids, timestamps: called once per row
            values.append(functools.partial(default.arg, None))
            continue
        raise ScaleSeedError(
            f"seed-scale does not fill {table.name}.{column.name}; "
            "add it to provider_app/scale_seed.py"
        )
    return names, tuple(values)


def _context_free(wrapped: Callable) -> bool:
    """True for a column default that does not read the row being inserted."""
    try:
        wrapped(None)
    except (AttributeError, TypeError):
        return False
    return True


# --- reference data (ORM) --------------------------------------------------------


@dataclass
class ClientPlan:
    id: int
    code: str
    calendar: BusinessCalendar
    targets: dict[tuple[int, str], float]
    at_risk_pct: float
    users: list[int]


@dataclass
class TypePlan:
    id: int
    code: str
    kpo: bool
    sop_id: int
    fields: object  # JSON value, ready for the loader
    items: list[tuple[int, bool]]  # scorecard item id, critical


def seed_clients(count: int, types: dict[str, TaskType], password_hash: str) -> list[Client]:
    """``SC001`` ... clients with calendars, contracts, escalation rules and two users each."""
    clients = []
    for n in range(1, count + 1):
        code = f"{CODE_PREFIX}{n:03d}"
        client = db.session.scalar(select(Client).where(Client.code == code))
        if client is None:
            tz = TIMEZONES[n % len(TIMEZONES)]
            client = Client(code=code, name=f"Scale client {n:03d}", kind=KINDS[n % len(KINDS)],
                            timezone=tz, retention_days=None)
            db.session.add(client)
            db.session.flush()
            db.session.add(CalendarVersion(
                client_id=client.id, effective_from=date(2020, 1, 1), timezone=tz,
                hours={str(d): [["09:00", "17:00"]] for d in range(5)}, holiday_country="US",
                closures=[],
            ))
            contract = Contract(
                client_id=client.id, name=f"{code} master services agreement",
                starts_on=date(2020, 1, 1), monthly_fee=20000, attainment_target=95.0,
                qa_accuracy_target=98.0,
                credit_scheme={"kind": "per_point", "pct_per_point": 1.0, "cap_pct": 10.0},
            )
            contract.targets = [
                SlaTarget(task_type_id=tt.id, priority=p,
                          target_hours=max(0.5, CATALOGUE_HOURS[code_] * factor))
                for code_, tt in types.items() for p, factor in PRIORITY_FACTOR.items()
            ]
            db.session.add(contract)
            db.session.add_all([
                EscalationRule(client_id=client.id, from_level=1, ack_minutes=60),
                EscalationRule(client_id=client.id, from_level=2, ack_minutes=240),
            ])
            slug = code.lower()
            for role in (Role.CLIENT_ADMIN, Role.CLIENT_USER):
                user = User(email=f"{role.value.split('_')[1]}@{slug}.test",
                            name=f"{code} {role.value}", password_hash=password_hash,
                            client_id=client.id)
                user.role_rows = [UserRole(role=role)]
                db.session.add(user)
        clients.append(client)
    db.session.flush()
    return clients


# Staff mix of a provider this size: mostly specialists, a QA team, leads and admins.
def staff_roles(count: int) -> list[list[Role]]:
    qa = max(1, count * 6 // 100)
    leads = max(1, count * 5 // 100)
    admins = max(1, count // 100)
    specialists = max(1, count - qa - leads - admins)
    return ([[Role.SPECIALIST]] * specialists + [[Role.QA_REVIEWER]] * qa
            + [[Role.TEAM_LEAD, Role.QA_REVIEWER]] * leads + [[Role.ADMIN]] * admins)


def seed_staff(count: int, clients: list[Client], password_hash: str,
               rng: random.Random) -> dict[str, list[int]]:
    """Provider staff ``scale.<role>NNN@throughline.test``; existing ones are reused."""
    by_role: dict[str, list[int]] = {"specialist": [], "trained": [], "qa": [], "lead": []}
    existing = {u.email: u for u in db.session.scalars(
        select(User).where(User.email.like("scale.%@throughline.test")))}
    for n, roles in enumerate(staff_roles(count), 1):
        email = f"scale.{roles[0].value.replace('_', '')}{n:03d}@throughline.test"
        user = existing.get(email)
        trained = n % 3 == 0
        if user is None:
            user = User(email=email, name=f"Scale staff {n:03d}", password_hash=password_hash)
            user.role_rows = [UserRole(role=r) for r in roles]
            db.session.add(user)
            if roles == [Role.SPECIALIST]:
                user.staff_profile = _profile(trained, clients, rng)
        if Role.SPECIALIST in roles:
            by_role["specialist"].append(user)
            if trained:
                by_role["trained"].append(user)
        elif Role.TEAM_LEAD in roles:
            by_role["lead"].append(user)
            by_role["qa"].append(user)
        elif Role.QA_REVIEWER in roles:
            by_role["qa"].append(user)
    db.session.flush()
    return {key: [u.id for u in users] for key, users in by_role.items()}


def _profile(trained: bool, clients: list[Client], rng: random.Random) -> StaffProfile:
    profile = StaffProfile(
        tier=StaffTier.INSURANCE_TRAINED if trained else StaffTier.GENERAL,
        capacity=8 if trained else 10, timezone="Asia/Kolkata",
        shift_start=clock_time(0, 0), shift_end=clock_time(23, 59), shift_days=list(range(7)),
    )
    skills = KPO_SKILLS if trained else BPO_SKILLS
    profile.skills = [StaffSkill(skill=s, level=rng.randint(3, 5) if trained else rng.randint(1, 4))
                      for s in skills]
    if trained:
        expiry = date.today() + timedelta(days=365)
        profile.licences = [StaffLicence(state=s, line="P&C", expires_on=expiry) for s in STATES]
    if rng.random() < 0.15:  # a dedicated pod for one client
        profile.client_links = [StaffClient(client_id=rng.choice(clients).id, dedicated=True)]
    return profile


def _client_plans(clients: list[Client]) -> list[ClientPlan]:
    plans = []
    for client in clients:
        contract = db.session.scalar(select(Contract).where(Contract.client_id == client.id))
        targets = {(t.task_type_id, str(getattr(t.priority, "value", t.priority))): t.target_hours
                   for t in contract.targets}
        users = list(db.session.scalars(select(User.id).where(User.client_id == client.id)))
        plans.append(ClientPlan(client.id, client.code, BusinessCalendar(client.timezone),
                                targets, contract.at_risk_pct or 75.0, users))
    return plans


def _type_plans(types: dict[str, TaskType], loader: BulkLoader, rng) -> list[TypePlan]:
    from .demo import _fields_for

    plans = []
    for code, tt in types.items():
        sop = tt.current_sop()
        items = db.session.execute(
            select(ScorecardItem.id, ScorecardItem.critical)
            .where(ScorecardItem.sop_id == sop.id).order_by(ScorecardItem.position)
        ).all()
        plans.append(TypePlan(tt.id, code, tt.tier == "KPO", sop.id,
                              loader.json(_fields_for(tt, rng, 1)),
                              [(i, bool(c)) for i, c in items]))
    return plans


# --- the high-volume tables --------------------------------------------------------

TASK_COLUMNS = (
    "id", "public_id", "client_id", "task_type_id", "priority", "priority_order",
    "external_ref", "state", "fields", "status", "assignee_id", "sop_id", "created_by_id",
    "source", "received_at", "due_at", "sla_target_hours", "sla_paused_since", "sla_state",
    "at_risk_at", "breach_at", "sla_met", "sla_elapsed_hours", "escalation_level",
    "submitted_at", "completed_at", "qa_outcome", "qa_reason", "rework_count", "checklist",
    "updated_at", "version",
)
AUDIT_COLUMNS = ("at", "actor_id", "client_id", "object_type", "object_id", "action",
                 "from_status", "to_status", "reason")
REVIEW_COLUMNS = ("id", "public_id", "client_id", "task_id", "reviewer_id", "maker_id", "sop_id",
                  "score", "passed", "critical_failure", "comments", "created_at",
                  "completed_at", "version")
ITEM_COLUMNS = ("review_id", "item_id", "result", "comment")
ESCALATION_COLUMNS = ("public_id", "client_id", "task_id", "reason", "level", "owner_id",
                      "detail", "opened_at", "level_changed_at", "acknowledged_at",
                      "resolved_at", "resolution_note", "version")


@dataclass
class Chunk:
    tasks: list[tuple] = field(default_factory=list)
    audit: list[tuple] = field(default_factory=list)
    reviews: list[tuple] = field(default_factory=list)
    items: list[tuple] = field(default_factory=list)
    escalations: list[tuple] = field(default_factory=list)


class TaskFactory:
    """Builds one task with its history, reviews and escalations as plain row tuples."""

    def __init__(self, clients, types, staff, loader: BulkLoader, rng: random.Random,
                 now: datetime, window: timedelta):
        self.clients, self.types, self.staff = clients, types, staff
        self.rng, self.now, self.window = rng, now, window
        self.empty = loader.json({})
        self.leads = staff["lead"] or staff["qa"]

    def add(self, chunk: Chunk, task_id: int, review_ids: Callable[[], int], serial: int) -> None:
        rng, now = self.rng, self.now
        client = self.clients[serial % len(self.clients)]
        tt = rng.choice(self.types)
        priority = rng.choice(PRIORITIES)
        target = client.targets.get((tt.id, priority), 8.0)
        received = now - self.window * rng.random()
        received = received.replace(microsecond=0)
        cal = client.calendar
        due = cal.add_business_hours(received, target)
        age = now - received

        if age < RECENT:
            status = rng.choice(RECENT_MIX)
        else:
            roll = rng.random()
            status = (Status.PENDING_CLIENT if roll < 0.004 else Status.CANCELLED
                      if roll < 0.04 else Status.COMPLETED)
        reviewed = tt.kpo or rng.random() < BPO_REVIEW_RATE
        reworked = reviewed and rng.random() < REWORK_RATE
        fraction = rng.uniform(0.15, 0.97) if rng.random() < ON_TIME else rng.uniform(1.05, 2.5)
        completed_at = None
        if status == Status.COMPLETED:
            completed_at = cal.add_business_hours(received, target * fraction)
            if completed_at >= now:  # would finish in the future: still being worked on
                status, completed_at = Status.IN_PROGRESS, None
        path = self._path(status, reviewed, reworked)
        end = completed_at or (now if status != Status.CANCELLED
                               else received + min(age, timedelta(hours=6)))
        stamps = sorted(received + (end - received) * rng.random() for _ in path)
        if completed_at is not None and stamps:
            stamps[-1] = completed_at

        pool = self.staff["specialist"]
        if tt.kpo and self.staff["trained"]:
            pool = self.staff["trained"]
        assignee = rng.choice(pool) if Status.ASSIGNED in path else None
        current_assignee = None if status in (Status.RECEIVED, Status.QUEUED) else assignee
        submitted_at = None
        review_count = 0
        previous, last_at = Status.RECEIVED, received
        for step, at in zip(path, stamps, strict=True):
            actor = assignee if step in (Status.IN_PROGRESS, Status.SUBMITTED) else None
            chunk.audit.append((at, actor, client.id, "task", task_id, "task.transition",
                                previous.value, step.value, None))
            if step == Status.SUBMITTED:
                submitted_at = at
            if previous == Status.IN_QA:  # a review finished with this step
                review_count += 1
                self._review(chunk, review_ids(), client.id, task_id, tt, assignee,
                             opened=last_at, closed=at, passed=step == Status.COMPLETED)
            previous, last_at = step, at

        closed = status in (Status.COMPLETED, Status.CANCELLED)
        met = None if status != Status.COMPLETED else fraction <= 1.0
        overdue = not closed and now > due
        at_risk_at = None if closed else cal.add_business_hours(
            received, target * client.at_risk_pct / 100)
        breach_at = cal.add_business_hours(due, 1 / 3_600_000_000)  # kept when closed
        sla_state = ("breached" if (met is False or overdue)
                     else "at_risk" if (not closed and now >= at_risk_at) else "on_track")
        level = self._escalations(chunk, client, task_id, received, due, completed_at,
                                  status, sla_state, fraction)
        chunk.tasks.append((
            task_id, uuid.uuid4().hex, client.id, tt.id, priority, priority_order(priority),
            f"{client.code}-{serial}", rng.choice(STATES), tt.fields, status.value,
            current_assignee, tt.sop_id, rng.choice(client.users) if client.users else None,
            rng.choice(SOURCES), received, due, target,
            stamps[-1] if status == Status.PENDING_CLIENT else None, sla_state,
            at_risk_at, breach_at, met,
            round(target * fraction, 3) if status == Status.COMPLETED else None, level,
            submitted_at, completed_at if status == Status.COMPLETED else (
                stamps[-1] if status == Status.CANCELLED else None),
            ("passed" if not reworked else "failed") if review_count else None,
            ("100 % review" if tt.kpo else "sampled") if reviewed and review_count else None,
            1 if reworked and review_count else 0, self.empty,
            stamps[-1] if stamps else received, 1 + len(path),
        ))

    @staticmethod
    def _path(status: Status, reviewed: bool, reworked: bool) -> list[Status]:
        if status != Status.COMPLETED:
            return list(PATHS[status])
        work = [Status.QUEUED, Status.ASSIGNED, Status.IN_PROGRESS, Status.SUBMITTED]
        if not reviewed:
            return [*work, Status.COMPLETED]
        if reworked:
            return [*work, Status.IN_QA, Status.REWORK, Status.IN_PROGRESS, Status.SUBMITTED,
                    Status.COMPLETED]
        return [*work, Status.IN_QA, Status.COMPLETED]

    def _review(self, chunk: Chunk, review_id: int, client_id: int, task_id: int,
                tt: TypePlan, maker: int | None, *, opened: datetime, closed: datetime,
                passed: bool) -> None:
        rng = self.rng
        critical = not passed and rng.random() < CRITICAL_RATE
        score = round(rng.uniform(0.9, 1.0) if passed else rng.uniform(0.55, 0.89), 3)
        chunk.reviews.append((
            review_id, uuid.uuid4().hex, client_id, task_id, rng.choice(self.staff["qa"]),
            maker, tt.sop_id, score, passed, critical, "", opened, closed, 1,
        ))
        failing = -1 if passed else rng.randrange(len(tt.items)) if tt.items else -1
        for index, (item_id, is_critical) in enumerate(tt.items):
            fails = index == failing or (critical and is_critical and index == 0)
            chunk.items.append((review_id, item_id, "fail" if fails else "pass", ""))
        if critical:
            chunk.escalations.append(self._escalation(
                client_id, task_id, "qa_critical_fail", 1, closed, closed + timedelta(hours=4)))

    def _escalations(self, chunk: Chunk, client: ClientPlan, task_id: int, received: datetime,
                     due: datetime, completed_at: datetime | None, status: Status,
                     sla_state: str, fraction: float) -> int:
        if status == Status.COMPLETED and fraction > 1.0:
            level = 2 if fraction > 1.8 else 1
            chunk.escalations.append(self._escalation(
                client.id, task_id, "sla_breached", level, due, completed_at))
            return level
        if status in (Status.COMPLETED, Status.CANCELLED) or sla_state == "on_track":
            return 0
        reason = "sla_breached" if sla_state == "breached" else "sla_at_risk"
        chunk.escalations.append(self._escalation(
            client.id, task_id, reason, 1, min(due, self.now), None))
        return 1

    def _escalation(self, client_id, task_id, reason, level, opened, resolved) -> tuple:
        acknowledged = opened + timedelta(minutes=self.rng.uniform(5, 90))
        if resolved is not None and acknowledged > resolved:
            acknowledged = resolved
        return (uuid.uuid4().hex, client_id, task_id, reason, level, self.rng.choice(self.leads),
                "", opened, opened, acknowledged if acknowledged < self.now else None,
                resolved, "work completed" if resolved else None, 1)


# --- entry point -------------------------------------------------------------------------


def seed_scale(tasks: int, clients: int = 50, staff: int = 500, months: int = 12,
               seed: int = 1, progress: Callable[[str], None] | None = None) -> ScaleReport:
    """Load the data set into the current transaction (the caller commits)."""
    say = progress or (lambda _msg: None)
    if tasks < 0 or clients < 1 or staff < 4 or months < 1:
        raise ScaleSeedError("use --tasks >= 0, --clients >= 1, --staff >= 4, --months >= 1")
    loader = BulkLoader(db.session)
    if not loader.postgres and tasks > SQLITE_LIMIT:
        raise ScaleSeedError(
            f"seed-scale loads at most {SQLITE_LIMIT:,} tasks into SQLite; for {tasks:,} set "
            "DATABASE_URL to a PostgreSQL database (postgresql://user@host:5432/db)."
        )
    started = time.perf_counter()
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    report = ScaleReport()
    password_hash = hash_password(DEMO_PASSWORD)
    types = seed_catalogue()
    client_rows = seed_clients(clients, types, password_hash)
    people = seed_staff(staff, client_rows, password_hash, rng)
    if not people["qa"] or not people["specialist"]:
        raise ScaleSeedError("--staff is too small to have specialists and QA reviewers")
    report.clients, report.staff = len(client_rows), staff
    report.logins = [
        f"specialists: scale.specialist001@throughline.test ... ({len(people['specialist'])})",
        f"team leads:  {_first_email(people['lead'])}",
        f"QA:          {_first_email(people['qa'])}",
        f"clients:     admin@{client_rows[0].code.lower()}.test, "
        f"user@{client_rows[0].code.lower()}.test (and so on for each client)",
    ]
    say(f"reference data ready: {len(client_rows)} clients, {staff} staff")

    factory = TaskFactory(_client_plans(client_rows), _type_plans(types, loader, rng), people,
                          loader, rng, datetime.now(UTC), timedelta(days=30.4 * months))
    bulk_tables = [Task.__table__, AuditEvent.__table__, QaReview.__table__,
                   QaItemResult.__table__, Escalation.__table__]
    rebuilt = []
    if loader.postgres:
        db.session.execute(text("SET LOCAL synchronous_commit = off"))
        db.session.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        if tasks >= DEFER_CONSTRAINTS_FROM:
            rebuilt = _drop_secondary_indexes_and_foreign_keys(bulk_tables, loader)
            say(f"dropped {len(rebuilt)} secondary indexes and foreign keys; "
                "they are rebuilt (and checked) after the load")
    serial_base = db.session.scalar(select(func.count()).select_from(Task)) or 0
    done = 0
    while done < tasks:
        size = min(CHUNK, tasks - done)
        chunk = Chunk()
        task_ids = loader.reserve_ids(Task.__table__, size)
        next_review_id = iter(loader.reserve_ids(QaReview.__table__, size * 3)).__next__
        for offset, task_id in enumerate(task_ids):
            factory.add(chunk, task_id, next_review_id, serial_base + done + offset)
        report.tasks += loader.load(Task.__table__, TASK_COLUMNS, chunk.tasks)
        report.audit_events += loader.load(AuditEvent.__table__, AUDIT_COLUMNS, chunk.audit)
        report.qa_reviews += loader.load(QaReview.__table__, REVIEW_COLUMNS, chunk.reviews)
        report.qa_item_results += loader.load(QaItemResult.__table__, ITEM_COLUMNS, chunk.items)
        report.escalations += loader.load(Escalation.__table__, ESCALATION_COLUMNS,
                                          chunk.escalations)
        done += size
        say(f"{done:,} / {tasks:,} tasks ({time.perf_counter() - started:.0f} s)")
    for ddl in rebuilt:
        loader.connection.execute(ddl)
    if rebuilt:
        say(f"rebuilt {len(rebuilt)} indexes and foreign keys "
            f"({time.perf_counter() - started:.0f} s)")
    report.seconds = time.perf_counter() - started
    return report


def _drop_secondary_indexes_and_foreign_keys(tables: list[Table], loader: BulkLoader) -> list:
    """What pg_restore does: load the rows first, then build indexes and check keys once.

    Maintaining non-unique indexes and firing a foreign-key check per row costs
    far more than one index build and one validating join per key at the end.
    Unique indexes stay, so duplicates still fail during the load. Returns the
    DDL that puts everything back (indexes first, then the foreign keys).
    """
    indexes, keys = [], []
    for table in tables:
        for fk in sorted(table.foreign_key_constraints, key=lambda c: c.name):
            loader.connection.execute(DropConstraint(fk))
            keys.append(AddConstraint(fk))
        for index in sorted(table.indexes, key=lambda i: i.name):
            if not index.unique:
                index.drop(bind=loader.connection)
                indexes.append(CreateIndex(index))
    return indexes + keys


def _first_email(ids: list[int]) -> str:
    if not ids:
        return "-"
    return db.session.get(User, ids[0]).email


def analyze(session: Session) -> None:
    """Refresh planner statistics after a bulk load (PostgreSQL; SQLite's ANALYZE too)."""
    for table in ("tasks", "audit_events", "qa_reviews", "qa_item_results", "escalations"):
        session.execute(text(f"ANALYZE {table}"))



@click.command("seed-scale")
@click.option("--tasks", type=click.IntRange(min=0), default=1_000_000, show_default=True,
              help="Tasks to add (each with its status history, reviews, escalations).")
@click.option("--clients", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--staff", type=click.IntRange(min=4), default=500, show_default=True)
@click.option("--months", type=click.IntRange(min=1), default=12, show_default=True,
              help="How far back the received times reach.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@with_appcontext
def seed_scale_command(tasks: int, clients: int, staff: int, months: int, seed: int) -> None:
    """Load a large realistic data set (COPY on PostgreSQL) for capacity tests."""
    try:
        report = seed_scale(tasks, clients, staff, months, seed, progress=click.echo)
    except ScaleSeedError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("committing ...")
    db.session.commit()
    analyze(db.session)
    db.session.commit()
    click.echo(
        f"loaded {report.tasks:,} tasks, {report.audit_events:,} status-history rows, "
        f"{report.qa_reviews:,} QA reviews ({report.qa_item_results:,} item results), "
        f"{report.escalations:,} escalations for {report.clients} clients and "
        f"{report.staff} staff in {report.seconds:.1f} s (+ commit and ANALYZE)"
    )
    click.echo(f"Logins (password for all: {DEMO_PASSWORD}):")
    for line in report.logins:
        click.echo(f"  {line}")
