"""Idempotent demo data: catalogue, clients, contracts, staff, and tasks in every state."""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import UTC, date, time, timedelta

from sqlalchemy import func, select

from qa.demo_data import seed_qa
from sla.clock import start_clock
from sla.models import EscalationRule
from sla.sweep import sweep

from . import mfa
from .accounts import create_user
from .db_types import utcnow
from .demo_catalogue import PRIORITY_FACTOR, SCORECARD, TASK_TYPES
from .extensions import db
from .lifecycle import transition
from .models import (
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
    User,
)
from .vocab import Priority, Role, StaffTier, Status

DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - printed demo credential, never production
CLIENTS = [
    ("NORTHSTAR", "Northstar Insurance Agency", "agency", "America/New_York", "NY"),
    ("SUMMIT", "Summit Mutual Carrier", "carrier", "America/Chicago", "IL"),
    ("HARBOR", "Harbor Specialty MGA", "mga", "America/Los_Angeles", "CA"),
    ("PINECREST", "Pinecrest Claims TPA", "tpa", "America/Denver", None),
]
WEEKDAY_HOURS = {str(d): [["09:00", "17:00"]] for d in range(5)}
STATES = ["NY", "NJ", "IL", "CA", "TX", "FL"]

# Paths through the lifecycle to reach each demo status.
PATHS: dict[Status, list[Status]] = {
    Status.RECEIVED: [],
    Status.QUEUED: [Status.QUEUED],
    Status.ASSIGNED: [Status.QUEUED, Status.ASSIGNED],
    Status.IN_PROGRESS: [Status.QUEUED, Status.ASSIGNED, Status.IN_PROGRESS],
    Status.PENDING_CLIENT: [Status.QUEUED, Status.ASSIGNED, Status.IN_PROGRESS,
                            Status.PENDING_CLIENT],
    Status.SUBMITTED: [Status.QUEUED, Status.ASSIGNED, Status.IN_PROGRESS, Status.SUBMITTED],
    Status.IN_QA: [Status.QUEUED, Status.ASSIGNED, Status.IN_PROGRESS, Status.SUBMITTED,
                   Status.IN_QA],
    Status.REWORK: [Status.QUEUED, Status.ASSIGNED, Status.IN_PROGRESS, Status.SUBMITTED,
                    Status.IN_QA, Status.REWORK],
    Status.COMPLETED: [Status.QUEUED, Status.ASSIGNED, Status.IN_PROGRESS, Status.SUBMITTED,
                       Status.COMPLETED],
    Status.CANCELLED: [Status.QUEUED, Status.CANCELLED],
}
STATUS_MIX = (
    [Status.QUEUED] * 50 + [Status.ASSIGNED] * 25 + [Status.IN_PROGRESS] * 35
    + [Status.PENDING_CLIENT] * 15 + [Status.SUBMITTED] * 5 + [Status.IN_QA] * 20
    + [Status.REWORK] * 8 + [Status.COMPLETED] * 120 + [Status.CANCELLED] * 12
    + [Status.RECEIVED] * 10
)


def _get_or_create_user(email: str, roles: list[Role], client: Client | None = None,
                        name: str = "") -> tuple[User, bool]:
    user = db.session.scalar(select(User).where(User.email == email))
    if user is not None:
        return user, False
    return create_user(email, roles, password=DEMO_PASSWORD, client=client, name=name), True


def seed_catalogue() -> dict[str, TaskType]:
    types: dict[str, TaskType] = {}
    for spec in TASK_TYPES:
        tt = db.session.scalar(select(TaskType).where(TaskType.code == spec["code"]))
        if tt is None:
            tt = TaskType(
                code=spec["code"], name=spec["name"], tier=spec["tier"], weight=spec["weight"],
                licence_line=spec["licence_line"], intake_schema=spec["fields"],
            )
            tt.skills = [TaskTypeSkill(skill=s, min_level=lvl) for s, lvl in spec["skills"].items()]
            db.session.add(tt)
            db.session.flush()
            sop = Sop(
                task_type_id=tt.id, version=1, title=f"{spec['name']} SOP v1",
                pass_threshold=0.9,
                sampling_policy={"rate": 1.0 if spec["tier"] == "KPO" else 0.1,
                                 "first_n": 20, "consecutive_passes": 10,
                                 "lot": {"aql": 1.0, "level": "II"}},
                published_at=utcnow(),
            )
            sop.steps = [SopStep(position=i, text=t, required=True)
                         for i, t in enumerate(spec["steps"], 1)]
            sop.scorecard = [ScorecardItem(position=i, **item)
                             for i, item in enumerate(SCORECARD, 1)]
            db.session.add(sop)
        types[spec["code"]] = tt
    db.session.flush()
    return types


def seed_clients(types: dict[str, TaskType]) -> list[Client]:
    clients = []
    for code, name, kind, tz, subdiv in CLIENTS:
        client = db.session.scalar(select(Client).where(Client.code == code))
        if client is None:
            client = Client(code=code, name=name, kind=kind, timezone=tz, retention_days=365)
            db.session.add(client)
            db.session.flush()
            db.session.add(CalendarVersion(
                client_id=client.id, effective_from=date(2020, 1, 1), timezone=tz,
                hours=WEEKDAY_HOURS, holiday_country="US", holiday_subdiv=subdiv, closures=[],
            ))
            contract = Contract(
                client_id=client.id, name=f"{name} master services agreement",
                starts_on=date(2025, 1, 1), monthly_fee=25000 if kind != "tpa" else 12000,
                attainment_target=95.0, qa_accuracy_target=98.0,
                credit_scheme={"kind": "per_point", "pct_per_point": 1.0, "cap_pct": 10.0},
            )
            contract.targets = [
                SlaTarget(task_type_id=tt.id, priority=p,
                          target_hours=max(0.5, spec["hours"] * PRIORITY_FACTOR[p]))
                for spec in TASK_TYPES for p in PRIORITY_FACTOR
                if (tt := types[spec["code"]])
            ]
            db.session.add(contract)
            db.session.add_all([
                EscalationRule(client_id=client.id, from_level=1, ack_minutes=60),
                EscalationRule(client_id=client.id, from_level=2, ack_minutes=240),
            ])
        clients.append(client)
    db.session.flush()
    return clients


def demo_totp_secret(email: str) -> str:
    """A fixed TOTP key per demo login, so the printed keys stay valid across re-seeding."""
    digest = hashlib.sha256(f"throughline-demo-totp:{email}".encode()).digest()
    return base64.b32encode(digest[:20]).decode()


def _enrol_demo_mfa(user: User) -> str:
    """Provider staff must use MFA: enrol demo staff with their fixed key (once)."""
    secret = demo_totp_secret(user.email)
    if not mfa.is_enabled(user):
        user.mfa_secret = mfa.encrypt_secret(secret)
        user.mfa_enabled_at = utcnow()
    elif mfa.decrypt_secret(user.mfa_secret or "") != secret:
        return "(set up by the user)"
    return secret


def seed_people(clients: list[Client]) -> tuple[list[User], list[str]]:
    logins: list[str] = []

    def add(email, roles, client=None, name=""):
        user, _ = _get_or_create_user(email, roles, client, name)
        totp = f"  TOTP key {_enrol_demo_mfa(user)}" if client is None else ""
        logins.append(f"{email:38} {'/'.join(r.value for r in roles):24} "
                      f"{client.code if client else 'provider'}{totp}")
        return user

    add("admin@throughline.test", [Role.ADMIN], name="Avery Admin")
    add("lead@throughline.test", [Role.TEAM_LEAD], name="Lee Lead")
    add("lead.qa@throughline.test", [Role.TEAM_LEAD, Role.QA_REVIEWER], name="Quinn Lead")
    add("qa@throughline.test", [Role.QA_REVIEWER], name="Rae Reviewer")
    rng = random.Random(7)  # noqa: S311 - demo data, not security
    specialists = []
    bpo_skills = ["coi", "endorsement", "loss_run", "claims", "indexing", "data_entry"]
    all_skills = bpo_skills + ["coverage", "policy_check", "renewal", "underwriting",
                               "bordereaux"]
    for i in range(1, 19):
        trained = i % 3 == 0 or i > 14
        email = f"specialist{i:02d}@throughline.test"
        user = add(email, [Role.SPECIALIST], name=f"Specialist {i:02d}")
        specialists.append(user)
        if user.staff_profile is None:
            profile = StaffProfile(
                tier=StaffTier.INSURANCE_TRAINED if trained else StaffTier.GENERAL,
                capacity=8 if trained else 10, timezone="Asia/Kolkata",
                shift_start=time(0, 0), shift_end=time(23, 59),
                shift_days=[0, 1, 2, 3, 4, 5, 6],
            )
            skills = all_skills if trained else bpo_skills
            profile.skills = [StaffSkill(skill=s, level=rng.randint(3, 5) if trained
                                         else rng.randint(1, 4)) for s in skills]
            if trained:
                expiry = date.today() + timedelta(days=365 if i != 18 else -30)
                profile.licences = [StaffLicence(state=s, line="P&C", expires_on=expiry)
                                    for s in STATES]
            if i in (4, 5):  # a dedicated pod for NORTHSTAR
                profile.client_links = [StaffClient(client_id=clients[0].id, dedicated=True)]
            user.staff_profile = profile
    for client in clients:
        slug = client.code.lower()
        add(f"admin@{slug}.test", [Role.CLIENT_ADMIN], client, name=f"{client.name} admin")
        add(f"user@{slug}.test", [Role.CLIENT_USER], client, name=f"{client.name} user")
    logins.append("Provider staff also enter a 6-digit code: add their TOTP key to an "
                  "authenticator app, or print the current code with "
                  "`flask --app wsgi totp-code --email EMAIL`.")
    db.session.flush()
    return specialists, logins


def _fields_for(task_type: TaskType, rng: random.Random, n: int) -> dict:
    values = {}
    for field in task_type.intake_schema:
        kind = field["type"]
        if kind in {"text", "textarea", "policy_number"}:
            values[field["name"]] = f"{field['label']} {n}" if kind != "policy_number" \
                else f"PL-{rng.randint(100000, 999999)}"
        elif kind == "date":
            offset = timedelta(days=rng.randint(-30, 30))
            values[field["name"]] = (date.today() + offset).isoformat()
        elif kind == "enum":
            values[field["name"]] = rng.choice(field["choices"])
        elif kind == "multi":
            values[field["name"]] = [rng.choice(field["choices"])]
        elif kind == "int":
            values[field["name"]] = rng.randint(field.get("min", 1), field.get("max", 10))
        elif kind == "bool":
            values[field["name"]] = rng.random() < 0.3
        elif kind == "money":
            values[field["name"]] = f"{rng.randint(1, 50) * 100000}.00"
        elif kind == "email":
            values[field["name"]] = f"reporter{n}@example.com"
    return values


def seed_tasks(clients: list[Client], types: dict[str, TaskType], specialists: list[User],
               target: int = 300) -> int:
    existing = db.session.scalar(select(func.count()).select_from(Task))
    if existing >= target:
        return 0
    rng = random.Random(42)  # noqa: S311 - demo data
    type_list = list(types.values())
    trained = [u for u in specialists if u.staff_profile.tier == StaffTier.INSURANCE_TRAINED]
    now = utcnow()
    created = 0
    for n in range(existing, target):
        client = clients[n % len(clients)]
        task_type = rng.choice(type_list)
        goal = rng.choice(STATUS_MIX)
        received = now - timedelta(hours=rng.uniform(1, 24 * 12))
        received = received.replace(microsecond=0).astimezone(UTC)
        task = Task(
            client_id=client.id, task_type_id=task_type.id,
            priority=rng.choice([Priority.NORMAL] * 6 + [Priority.HIGH, Priority.URGENT,
                                                         Priority.LOW]),
            external_ref=f"{client.code[:3]}-{10000 + n}",
            state=rng.choice(STATES), fields=_fields_for(task_type, rng, n),
            received_at=received, source=rng.choice(["portal", "api", "csv"]),
            sop_id=task_type.current_sop().id,
        )
        db.session.add(task)
        db.session.flush()
        start_clock(task)
        pool = trained if task_type.tier == "KPO" else specialists
        at = received
        for step in PATHS[goal]:
            at = min(at + timedelta(minutes=rng.uniform(5, 180)), now)
            if step == Status.ASSIGNED:
                task.assignee_id = rng.choice(pool).id
            transition(task, step, reason="demo data", at=at)
        created += 1
    db.session.flush()
    return created


def seed_demo() -> list[str]:
    """Create everything the demo needs; running it again changes nothing."""
    types = seed_catalogue()
    clients = seed_clients(types)
    specialists, logins = seed_people(clients)
    created = seed_tasks(clients, types, specialists)
    qa_summary = seed_qa()
    return [f"{created} demo tasks created; {seed_escalations()}; {qa_summary}", *logins]


def seed_escalations() -> str:
    """Run the SLA sweep, so the demo has tasks at risk or breached and open escalations.

    The sweep is idempotent: on a second run it finds nothing new to open.
    """
    result = sweep()
    return (f"SLA sweep: {result.at_risk} at risk, {result.breached} breached, "
            f"{result.opened} escalations opened")
