"""Who may hold which task: the assignment rules, in the three shapes their callers need.

A specialist may hold a task only if all of these hold (each failure is a :class:`Reason`):

==============  ====  ===========================================================================
code            hard  rule
==============  ====  ===========================================================================
not_specialist  yes   an active user with the specialist role and a staff profile
tier            yes   KPO task types only to insurance-trained staff (BPO to anyone)
licence         yes   where the type names a licence line: a licence for the task's state and
                      that line, not expired on the day (checked at assignment and submission)
skill           no    every required skill at or above its minimum level; a skill marked
                      optional is dropped once the task has waited ``relax_after_minutes``
client          no    the person's client links are empty (all clients) or include the client
capacity        no    weights of the tasks they hold (``HELD_STATUSES``) + this one <= capacity
availability    no    availability is ``available``
shift           no    now is inside their shift (``shift_start``..``shift_end`` inclusive, in their
                      time zone, on ``shift_days``; an overnight shift belongs to the day it starts;
                      no shift times = no restriction)
==============  ====  ===========================================================================

A lead may override the soft rules with a reason, never the hard ones.

The rules have three shapes, all built from the same rule functions in this module:

* :func:`reasons` — one task and one person, in Python: lead actions, submission, the UI.
* ``person_ctes`` + :func:`task_rules_sql` — one person, in SQL: the person's row and the
  task types they may take are computed once per statement (``ELIGIBLE_TYPES``, the same
  aggregate as the batch's :func:`skill_fit_query`), leaving per queued task only the
  waiting time, client and licence checks; ``claim_next`` walks the queue in index order and
  claims the first match in the same statement.
* :func:`skill_fit_query` + :func:`candidate_pairs` — a whole batch: SQL aggregates skills per
  (task type, person); numpy combines that with tier, client, licence and capacity per distinct
  task signature, then expands to task pairs. Nothing loops over tasks x staff in Python.

``tests/assignment/test_eligibility.py`` proves the three shapes agree on random data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import (
    Date,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    select,
    text,
    true,
    union_all,
)

from ..db_types import UTCDateTime
from ..extensions import db
from ..models import (
    StaffClient,
    StaffLicence,
    StaffProfile,
    StaffSkill,
    Task,
    TaskType,
    TaskTypeSkill,
    User,
    UserRole,
)
from ..vocab import HELD_STATUSES, Availability, Role, StaffTier, Tier

HARD_RULES = frozenset({"not_specialist", "tier", "licence"})
NEVER = 1_000_000_000
"""Relaxation minutes meaning "this skill gap never relaxes" (SQL sentinel)."""

TASKS = Task.__table__


@dataclass(frozen=True)
class Reason:
    """Why one person may not hold one task; ``hard`` reasons cannot be overridden."""

    code: str
    message: str

    @property
    def hard(self) -> bool:
        return self.code in HARD_RULES


@dataclass(frozen=True)
class SkillNeed:
    skill: str
    min_level: int
    optional: bool = False
    relax_after_minutes: int | None = None


@dataclass(frozen=True)
class TypeFacts:
    """What the rules need to know about a task type."""

    id: int
    code: str
    tier: Tier
    weight: int
    licence_line: str | None
    skills: tuple[SkillNeed, ...] = ()


@dataclass(frozen=True)
class PersonFacts:
    """What the rules need to know about a person, loaded in bulk by :func:`load_people`."""

    user_id: int
    name: str
    is_specialist: bool
    tier: StaffTier | None = None
    capacity: int = 0
    load: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)
    licences: tuple[tuple[str, str, date], ...] = ()
    client_ids: frozenset[int] | None = None
    availability: Availability = Availability.OFFLINE
    timezone: str = "UTC"
    shift_start: time | None = None
    shift_end: time | None = None
    shift_days: frozenset[int] = frozenset()
    public_id: str | None = None

    @property
    def free(self) -> int:
        return self.capacity - self.load

    @property
    def trained(self) -> bool:
        return self.tier == StaffTier.INSURANCE_TRAINED


# --- loading facts -------------------------------------------------------------------------


def _execute(stmt):
    """Run a Core statement on the session's connection (same transaction), skipping the
    ORM execution layer: these queries return plain rows and run on hot paths."""
    return db.session.connection().execute(stmt)



def load_types(type_ids: Iterable[int] | None = None) -> dict[int, TypeFacts]:
    """Task types with their skill needs, in one query."""
    tt, tts = TaskType.__table__, TaskTypeSkill.__table__
    stmt = select(
        tt.c.id, tt.c.code, tt.c.tier, tt.c.weight, tt.c.licence_line,
        tts.c.skill, tts.c.min_level, tts.c.optional, tts.c.relax_after_minutes,
    ).select_from(tt.outerjoin(tts, tts.c.task_type_id == tt.c.id))
    if type_ids is not None:
        stmt = stmt.where(tt.c.id.in_(list(type_ids)))
    heads: dict[int, tuple] = {}
    needs: dict[int, list[SkillNeed]] = {}
    for row in _execute(stmt):
        heads[row.id] = (row.code, Tier(row.tier), row.weight, row.licence_line)
        bucket = needs.setdefault(row.id, [])
        if row.skill is not None:
            bucket.append(SkillNeed(row.skill, row.min_level, bool(row.optional),
                                    row.relax_after_minutes))
    return {
        type_id: TypeFacts(type_id, code, tier, weight, line,
                           tuple(sorted(needs[type_id], key=lambda n: n.skill)))
        for type_id, (code, tier, weight, line) in heads.items()
    }


def held_load_query(user_ids: Sequence[int]) -> Select:
    """(user_id, held weight) for the given people: what their capacity is already used by
    (the counter the database keeps, ``models/held_weight.py``)."""
    sp = StaffProfile.__table__
    return select(sp.c.user_id, sp.c.held_weight).where(sp.c.user_id.in_(list(user_ids)))


def _profile_select() -> Select:
    """User, specialist role and staff profile (outer-joined: no profile, no specialist)."""
    users, sp = User.__table__, StaffProfile.__table__
    is_specialist = (
        select(UserRole.user_id)
        .where(UserRole.user_id == users.c.id, UserRole.role == Role.SPECIALIST)
        .exists()
    )
    return select(users.c.id, users.c.name, users.c.email, users.c.active,
                  is_specialist.label("spec"), sp).select_from(
        users.outerjoin(sp, sp.c.user_id == users.c.id))


def _fact_rows(ids: Sequence[int]) -> tuple[dict, dict, dict]:
    """Skills, licences and client links of these people in one UNION ALL query."""
    skills = select(StaffSkill.staff_id, literal("s").label("kind"),
                    StaffSkill.skill.label("a"), literal(None, String).label("b"),
                    StaffSkill.level.label("n"), literal(None, Date).label("d")).where(
        StaffSkill.staff_id.in_(ids))
    licences = select(StaffLicence.staff_id, literal("l"), StaffLicence.state,
                      StaffLicence.line, literal(None, Integer), StaffLicence.expires_on).where(
        StaffLicence.staff_id.in_(ids))
    clients = select(StaffClient.staff_id, literal("c"), literal(None, String),
                     literal(None, String), StaffClient.client_id, literal(None, Date)).where(
        StaffClient.staff_id.in_(ids))
    by_skill: dict[int, dict[str, int]] = {}
    by_licence: dict[int, list] = {}
    by_client: dict[int, set[int]] = {}
    for staff_id, kind, a, b, n, d in _execute(union_all(skills, licences, clients)):
        if kind == "s":
            by_skill.setdefault(staff_id, {})[a] = n
        elif kind == "l":
            by_licence.setdefault(staff_id, []).append((a, b, d))
        else:
            by_client.setdefault(staff_id, set()).add(n)
    return by_skill, by_licence, by_client


def _person(row, facts: tuple[dict, dict, dict]) -> PersonFacts:
    skills, licences, clients = facts
    name = row.name or row.email
    if row.user_id is None:  # no staff profile
        return PersonFacts(row.id, name, is_specialist=False)
    return PersonFacts(
        user_id=row.id,
        name=name,
        is_specialist=bool(row.active and row.spec),
        tier=StaffTier(row.tier),
        capacity=row.capacity,
        load=row.held_weight,
        skills=skills.get(row.id, {}),
        licences=tuple(licences.get(row.id, ())),
        client_ids=frozenset(clients[row.id]) if row.id in clients else None,
        availability=Availability(row.availability),
        timezone=row.timezone or "UTC",
        shift_start=row.shift_start,
        shift_end=row.shift_end,
        shift_days=frozenset(int(d) for d in (row.shift_days or [])),
        public_id=row.public_id,
    )


def load_people(user_ids: Iterable[int]) -> dict[int, PersonFacts]:
    """Facts for these users (unknown ids are left out), in two queries whatever their number."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = _execute(_profile_select().where(User.__table__.c.id.in_(ids))).all()
    facts = _fact_rows(ids)
    return {row.id: _person(row, facts) for row in rows}


def load_person(user_id: int) -> PersonFacts | None:
    """One person's facts in two queries."""
    return load_people([user_id]).get(user_id)


# --- the rules -------------------------------------------------------------------------------


def on_shift(person: PersonFacts, at: datetime) -> bool:
    """Inside the shift window in the person's time zone (end minute inclusive)."""
    start, end = person.shift_start, person.shift_end
    if start is None or end is None:
        return True
    local = at.astimezone(ZoneInfo(person.timezone))
    minute = local.time().replace(second=0, microsecond=0, tzinfo=None)
    day = local.weekday()
    if start <= end:
        return day in person.shift_days and start <= minute <= end
    # Overnight shift: the part after midnight belongs to the previous day's shift.
    return (day in person.shift_days and minute >= start) or (
        (day - 1) % 7 in person.shift_days and minute <= end
    )


def person_reasons(person: PersonFacts, at: datetime) -> list[Reason]:
    """Rules about the person alone: a specialist, available, on shift."""
    if not person.is_specialist:
        return [Reason("not_specialist", f"{person.name} is not an active specialist.")]
    found = []
    if person.availability != Availability.AVAILABLE:
        found.append(Reason("availability", f"{person.name} is marked "
                                            f"{person.availability.value.replace('_', ' ')}."))
    if not on_shift(person, at):
        found.append(Reason("shift", f"{person.name} is outside their shift "
                                     f"({_shift_text(person)})."))
    return found


def _shift_text(person: PersonFacts) -> str:
    days = "".join("MTWTFSS"[d] if d in person.shift_days else "·" for d in range(7))
    return (f"{person.shift_start:%H:%M}–{person.shift_end:%H:%M} {person.timezone}, {days}")


def tier_reason(task_type: TypeFacts, person: PersonFacts) -> Reason | None:
    if task_type.tier == Tier.KPO and not person.trained:
        return Reason("tier", f"{task_type.code} is KPO work: insurance-trained staff only.")
    return None


def _meets(need: SkillNeed, skills: Mapping[str, int]) -> bool:
    return skills.get(need.skill, 0) >= need.min_level


def skill_relax_minutes(needs: Iterable[SkillNeed], skills: Mapping[str, int]) -> int | None:
    """Minutes a task must wait before this person's skills suffice: 0 = now, None = never.

    Unmet required skills never relax; an unmet optional skill relaxes after its
    ``relax_after_minutes`` (never if that is unset).
    """
    wait = 0
    for need in needs:
        if _meets(need, skills):
            continue
        if not need.optional or need.relax_after_minutes is None:
            return None
        wait = max(wait, need.relax_after_minutes)
    return wait


def skill_reason(task_type: TypeFacts, person: PersonFacts, waited_minutes: float) -> Reason | None:
    wait = skill_relax_minutes(task_type.skills, person.skills)
    if wait == 0 or (wait is not None and wait <= waited_minutes):
        return None
    gaps = []
    for need in task_type.skills:
        if _meets(need, person.skills):
            continue
        text = f"{need.skill} ≥ {need.min_level} (has {person.skills.get(need.skill, 0)})"
        if need.optional and need.relax_after_minutes is not None:
            if need.relax_after_minutes <= waited_minutes:
                continue
            text += f", optional after {need.relax_after_minutes} min in queue"
        gaps.append(text)
    return Reason("skill", "Needs " + "; ".join(gaps) + ".")


def capacity_reason(task_type: TypeFacts, person: PersonFacts,
                    already_held: int = 0) -> Reason | None:
    """``already_held``: weight of this very task if the person holds it already (re-checks)."""
    load = person.load - already_held
    if load + task_type.weight <= person.capacity:
        return None
    return Reason("capacity", f"{person.name} holds {load} of {person.capacity} WIP units; "
                              f"{task_type.code} needs {task_type.weight}.")


def licensed_states(person: PersonFacts, line: str, on: date) -> frozenset[str]:
    return frozenset(s for s, ln, expires in person.licences if ln == line and expires >= on)


def licence_reason(task_type: TypeFacts, state: str | None, person: PersonFacts,
                   on: date) -> Reason | None:
    line = task_type.licence_line
    if line is None:
        return None
    if state is None:
        return Reason("licence", f"{task_type.code} needs a {line} licence for the task's state, "
                                 "and the task has no state.")
    if state in licensed_states(person, line, on):
        return None
    expired = [e for s, ln, e in person.licences if s == state and ln == line]
    detail = f" (expired {max(expired).isoformat()})" if expired else ""
    return Reason("licence", f"Needs a valid {line} licence for {state}{detail}.")


def client_reason(client_id: int, person: PersonFacts,
                  client_code: str | None = None) -> Reason | None:
    if person.client_ids is None or client_id in person.client_ids:
        return None
    return Reason("client", f"{person.name} does not work for client {client_code or client_id}.")


def waited_minutes(task, at: datetime) -> float:
    return (at - task.received_at).total_seconds() / 60


def reasons(task, task_type: TypeFacts, person: PersonFacts, at: datetime) -> list[Reason]:
    """Every reason ``person`` may not hold ``task`` at ``at``; empty means eligible.

    ``task`` is anything with ``client_id``, ``state``, ``received_at``, ``assignee_id`` and
    ``status`` (a Task). A task the person already holds does not count against their capacity.
    """
    held = task_type.weight if (
        task.assignee_id == person.user_id and task.status in HELD_STATUSES
    ) else 0
    found = person_reasons(person, at)
    if found and found[0].code == "not_specialist":
        return found
    checks = [
        tier_reason(task_type, person),
        licence_reason(task_type, task.state, person, at.date()),
        skill_reason(task_type, person, waited_minutes(task, at)),
        client_reason(task.client_id, person),
        capacity_reason(task_type, person, held),
    ]
    return [r for r in checks if r is not None] + found


# --- shape 2: one person, in SQL ------------------------------------------------------------
#
# Text, not Core: claim_next runs this on every "Get next", 32 claimers at a time, and with
# SQLAlchemy's per-execution statement building and cache keys the client CPU cost several
# times the database's. A text() statement is compiled once and costs next to nothing to run.
# Parameters: :staff_id, :now, :today (and :soon for the at-risk test).

# Only constants of this module are interpolated into the SQL below (no input ever is), hence
# the S608 exemptions.
# held: the counter the database keeps (models/held_weight.py), read from the locked row.
_HELD = """sp.held_weight AS held,
           EXISTS (SELECT 1 FROM staff_clients sc
                    WHERE sc.staff_id = :staff_id) AS restricted"""

PERSON_ROW = f"""
    SELECT sp.user_id, sp.tier, sp.capacity, {_HELD}
      FROM staff_profiles sp
     WHERE sp.user_id = :staff_id"""  # noqa: S608
"""The person as ``p``: tier, capacity, the weight they hold now (capacity rule) and whether
they are restricted to some clients (client rule)."""

# lt: the person's local wall-clock time, its weekday (Monday = 0, as Python's weekday())
# and its minute; their working days as jsonb.
_LOCAL_TIME = """
      CROSS JOIN LATERAL (
        SELECT CAST(extract(isodow FROM x.at) AS int) - 1 AS day,
               CAST(date_trunc('minute', x.at) AS time) AS minute,
               CAST(sp.shift_days AS jsonb) AS days
          FROM (SELECT :now AT TIME ZONE sp.timezone AS at) x) lt"""
_ON_SHIFT_PG = """
    (sp.shift_start IS NULL OR sp.shift_end IS NULL OR CASE
       WHEN sp.shift_start <= sp.shift_end THEN
            lt.days @> to_jsonb(lt.day) AND lt.minute BETWEEN sp.shift_start AND sp.shift_end
       ELSE (lt.days @> to_jsonb(lt.day) AND lt.minute >= sp.shift_start)
         OR (lt.days @> to_jsonb((lt.day + 6) % 7) AND lt.minute <= sp.shift_end)
     END)"""

PERSON_ROW_CHECKED_PG = f"""
    SELECT sp.user_id, sp.tier, sp.capacity, {_HELD}
      FROM staff_profiles sp
      JOIN users u ON u.id = sp.user_id {_LOCAL_TIME}
     WHERE sp.user_id = :staff_id AND u.active AND sp.availability = 'available'
       AND EXISTS (SELECT 1 FROM user_roles r
                    WHERE r.user_id = sp.user_id AND r.role = 'specialist')
       AND {_ON_SHIFT_PG}"""  # noqa: S608
"""PostgreSQL: :func:`person_reasons` in SQL too (specialist, available, on shift in their own
time zone), so a claim needs no round trip before the claim itself. No row: not eligible."""

_RELAXED_BY = {
    # :now arrives typed timestamptz (psycopg sends the type; claimable_task_ids binds it so).
    "postgresql": ":now - make_interval(mins => ok.relax)",
    # SQLite keeps UTC datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text, so text compares in order.
    "sqlite": "strftime('%Y-%m-%d %H:%M:%f', :now, '-' || ok.relax || ' minutes')",
}

ELIGIBLE_TYPES = f"""
    SELECT * FROM (
      SELECT tt.id, tt.tier, tt.licence_line, MAX(CASE
               WHEN k.skill IS NULL OR COALESCE(s.level, 0) >= k.min_level THEN 0
               WHEN k.optional AND k.relax_after_minutes IS NOT NULL THEN k.relax_after_minutes
               ELSE {NEVER} END) AS relax
        FROM task_types tt CROSS JOIN person p
        LEFT JOIN task_type_skills k ON k.task_type_id = tt.id
        LEFT JOIN staff_skills s ON s.staff_id = p.user_id AND s.skill = k.skill
       WHERE (tt.tier = 'BPO' OR p.tier = 'insurance_trained')
         AND p.held + tt.weight <= p.capacity
       GROUP BY tt.id, tt.tier, tt.licence_line) x
     WHERE relax < {NEVER}"""  # noqa: S608 - module constants only
"""The task types the person (CTE ``person``) may take, evaluated once per statement: tier,
capacity, and skills as :func:`skill_relax_minutes` (``relax``: minutes a task of the type
must have waited, 0 = at once). Per queued task only what depends on the task is left."""


def task_rules_sql(dialect: str) -> str:
    """The task-level rules for task ``t`` joined to ``eligible_types ok`` and person ``p``."""
    return f"""
        (ok.relax = 0 OR t.received_at <= {_RELAXED_BY[dialect]})
    AND (NOT p.restricted OR EXISTS (SELECT 1 FROM staff_clients sc
                                      WHERE sc.staff_id = p.user_id AND sc.client_id = t.client_id))
    AND (ok.licence_line IS NULL OR EXISTS (
         SELECT 1 FROM staff_licences li
          WHERE li.staff_id = p.user_id AND li.state = t.state AND li.line = ok.licence_line
            AND li.expires_on >= :today))"""  # noqa: S608


CANDIDATES_FROM = """FROM tasks t
      JOIN eligible_types ok ON ok.id = t.task_type_id
      CROSS JOIN person p"""
"""The FROM of a per-person task query; needs the CTEs ``person`` and ``eligible_types``."""


def person_ctes(person_row: str) -> str:
    """``WITH person AS (...), eligible_types AS (...)`` for a per-person statement."""
    return f"WITH person AS ({person_row}), eligible_types AS ({ELIGIBLE_TYPES})"


def claimable_task_ids(staff_id: int, at: datetime) -> list[int]:
    """Queued tasks ``staff_id`` may take at ``at`` by the SQL rules, in queue order (tasks
    offered to someone are not in the queue for anyone else).

    On PostgreSQL this includes the person-level rules; on SQLite (no time-zone database in
    SQL) the caller checks :func:`person_reasons` first, as ``claim_next`` does.
    """
    dialect = db.engine.dialect.name
    person = PERSON_ROW_CHECKED_PG if dialect == "postgresql" else PERSON_ROW
    sql = text(f"""
        {person_ctes(person)}
        SELECT t.id {CANDIDATES_FROM}
         WHERE t.status = 'queued' AND t.offered_to_id IS NULL AND {task_rules_sql(dialect)}
         ORDER BY t.priority_order, t.due_at, t.id""").bindparams(  # noqa: S608
        bindparam("now", type_=UTCDateTime), bindparam("today", type_=Date))
    return list(db.session.connection().execute(
        sql, {"staff_id": staff_id, "now": at, "today": at.date()}).scalars())


# --- shape 3: a batch, SQL aggregates + numpy ---------------------------------------------


def skill_fit_query(type_ids: Sequence[int], staff_ids: Sequence[int]) -> Select:
    """(task_type_id, staff_id, relax_minutes) for every pair whose skills can ever suffice.

    ``relax_minutes`` is :func:`skill_relax_minutes` computed set-wise: the largest
    ``relax_after_minutes`` among the unmet optional skills (0 when all are met); pairs with an
    unmet skill that never relaxes are left out by the HAVING clause.
    """
    tt, sp = TaskType.__table__, StaffProfile.__table__
    tts, ss = TaskTypeSkill.__table__, StaffSkill.__table__
    pairs = (  # every (type, person) combination: a deliberate cross join
        select(tt.c.id.label("type_id"), sp.c.user_id.label("staff_id"))
        .select_from(tt.join(sp, true()))
        .where(tt.c.id.in_(list(type_ids)), sp.c.user_id.in_(list(staff_ids)))
        .subquery()
    )
    gap = case(
        (tts.c.skill.is_(None), 0),
        (ss.c.level >= tts.c.min_level, 0),
        (and_(tts.c.optional, tts.c.relax_after_minutes.is_not(None)),
         tts.c.relax_after_minutes),
        else_=NEVER,
    )
    return (
        select(pairs.c.type_id, pairs.c.staff_id, func.max(gap).label("relax"))
        .select_from(
            pairs.outerjoin(tts, tts.c.task_type_id == pairs.c.type_id).outerjoin(
                ss, and_(ss.c.staff_id == pairs.c.staff_id, ss.c.skill == tts.c.skill)
            )
        )
        .group_by(pairs.c.type_id, pairs.c.staff_id)
        .having(func.max(gap) < NEVER)
    )


@dataclass
class Candidates:
    """Eligible (task, staff) pairs of a batch, as positions into the caller's arrays.

    ``stage[i]`` says, for task ``i`` without pairs, the first rule nobody passed (see
    :data:`STAGES`); -1 for tasks with pairs. ``held_back[i]`` counts insurance-trained people
    left out of task ``i``'s pairs by the BPO overflow policy.
    """

    pair_task: np.ndarray
    pair_staff: np.ndarray
    pair_relax: np.ndarray
    stage: np.ndarray
    held_back: np.ndarray


STAGES = ("tier", "skill", "client", "licence", "capacity", "relax", "overflow", "declined")


def candidate_pairs(
    *,
    task_type: np.ndarray,
    task_client: np.ndarray,
    task_state: Sequence[str | None],
    task_waited: np.ndarray,
    task_at_risk: np.ndarray,
    types: Sequence[TypeFacts],
    staff: Sequence[PersonFacts],
    skill_fit: Iterable[tuple[int, int, int]],
    on: date,
    bpo_overflow_when_at_risk: bool = True,
) -> Candidates:
    """Every eligible (task, staff) pair of a batch.

    ``task_type`` holds positions into ``types``; ``staff`` are people who already passed
    :func:`person_reasons`; ``skill_fit`` rows come from :func:`skill_fit_query`. With
    ``bpo_overflow_when_at_risk`` (the batch policy, not a rule) insurance-trained staff are
    offered BPO tasks only when those are at risk of breaching.
    """
    n, m = task_type.size, len(staff)
    empty = np.empty(0, dtype=np.int64)
    if n == 0:
        return Candidates(empty, empty, empty, empty, empty)
    staff_pos = {p.user_id: j for j, p in enumerate(staff)}
    type_pos = {t.id: i for i, t in enumerate(types)}
    relax = np.full((len(types), m), -1, dtype=np.int64)
    for type_id, staff_id, minutes in skill_fit:
        if type_id in type_pos and staff_id in staff_pos:
            relax[type_pos[type_id], staff_pos[staff_id]] = minutes
    trained = np.array([p.trained for p in staff], dtype=bool)
    free = np.array([p.free for p in staff], dtype=np.int64)
    kpo = np.array([t.tier == Tier.KPO for t in types], dtype=bool)
    weight = np.array([t.weight for t in types], dtype=np.int64)
    client_ok = _client_masks(staff)
    licence_ok = _licence_masks(staff, on)

    # Group tasks by (type, client, state if the type is licensed): every task in a group has
    # the same eligible staff up to its own waiting time and at-risk flag.
    states = sorted({s for s in task_state if s})
    state_code = {s: k for k, s in enumerate(states)}
    licensed = np.array([t.licence_line is not None for t in types], dtype=bool)
    code = np.array([state_code.get(s, -1) if s else -1 for s in task_state], dtype=np.int64)
    code = np.where(licensed[task_type], code, -2)
    keys = np.stack([task_type, task_client, code], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    order = np.argsort(inverse.ravel(), kind="stable")
    bounds = np.cumsum(np.bincount(inverse.ravel(), minlength=len(uniq)))[:-1]

    stage = np.full(n, -1, dtype=np.int64)
    held_back = np.zeros(n, dtype=np.int64)
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for (t, client_id, s), tasks in zip(uniq.tolist(), np.split(order, bounds), strict=True):
        line = types[t].licence_line
        if line is None:
            licence_mask = np.ones(m, dtype=bool)
        else:  # s < 0: the task has no state, so no licence can match
            licence_mask = licence_ok.get((states[s], line) if s >= 0 else None, np.zeros(m, bool))
        masks = [trained | ~kpo[t], relax[t] >= 0, client_ok(client_id), licence_mask,
                 free >= weight[t]]
        ok = np.ones(m, dtype=bool)
        for k, mask in enumerate(masks):
            ok &= mask
            if not ok.any():
                stage[tasks] = k
                break
        else:
            people = np.flatnonzero(ok)
            pt, ps = np.repeat(tasks, people.size), np.tile(people, tasks.size)
            keep = relax[t, ps] <= task_waited[pt]
            _no_pairs(stage, tasks, pt[keep], STAGES.index("relax"))
            pt, ps = pt[keep], ps[keep]
            if bpo_overflow_when_at_risk and not kpo[t]:
                keep = ~trained[ps] | task_at_risk[pt]
                held_back += np.bincount(pt[~keep], minlength=n)
                _no_pairs(stage, tasks, pt[keep], STAGES.index("overflow"))
                pt, ps = pt[keep], ps[keep]
            chunks.append((pt, ps, relax[t, ps]))
    return Candidates(
        pair_task=np.concatenate([c[0] for c in chunks]) if chunks else empty,
        pair_staff=np.concatenate([c[1] for c in chunks]) if chunks else empty,
        pair_relax=np.concatenate([c[2] for c in chunks]) if chunks else empty,
        stage=stage,
        held_back=held_back,
    )


def _client_masks(staff: Sequence[PersonFacts]):
    """A function client_id -> staff mask, mirroring :func:`client_reason`."""
    unrestricted = np.array([p.client_ids is None for p in staff], dtype=bool)
    linked: dict[int, list[int]] = {}
    for j, person in enumerate(staff):
        for client_id in person.client_ids or ():
            linked.setdefault(client_id, []).append(j)

    def mask(client_id: int) -> np.ndarray:
        allowed = unrestricted.copy()
        allowed[linked.get(client_id, [])] = True
        return allowed

    return mask


def _licence_masks(staff: Sequence[PersonFacts], on: date) -> dict[tuple[str, str], np.ndarray]:
    """(state, line) -> staff mask of valid licences on ``on``, mirroring :func:`licence_reason`."""
    masks: dict[tuple[str, str], np.ndarray] = {}
    for j, person in enumerate(staff):
        for state, line, expires in person.licences:
            if expires >= on:
                masks.setdefault((state, line), np.zeros(len(staff), dtype=bool))[j] = True
    return masks


def _no_pairs(stage: np.ndarray, tasks: np.ndarray, kept_tasks: np.ndarray, code: int) -> None:
    """Mark tasks of a group that lost all their pairs to the filter ``code``."""
    lost = np.setdiff1d(tasks, kept_tasks)
    lost = lost[stage[lost] < 0]
    stage[lost] = code
