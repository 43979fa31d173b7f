"""Automatic assignment: an optimal batch of queued tasks to eligible staff, every minute.

``assign_batch_job`` is the RQ entry point (enqueued by intake after each new task and run by
the scheduler every 60 s). One run:

1. reads the queue (up to :data:`MAX_BATCH` tasks in queue order) and the available, on-shift
   specialists;
2. builds the eligible pairs (:func:`~.eligibility.candidate_pairs`: SQL aggregates + numpy,
   never a Python loop over tasks x staff);
3. prices them (:func:`pair_costs`) and solves a min-cost flow (:mod:`.solver`);
4. writes back in bulk under the people's locks, re-checking that each task is still queued
   and each person still has room (a claim may have happened meanwhile), with one audit event
   per assignment and one per relaxation used; for clients whose contract makes offers
   (:mod:`.offers`) the task is offered to the chosen person instead, and tasks already
   offered are neither in the queue nor free capacity;
5. records for every task left in the queue why it is waiting (``Task.waiting_reason``).

Two runs at once are harmless (the write-back re-checks everything under locks), but wasteful,
so a Redis lock lets one run at a time; a trigger that finds it taken asks for one re-run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Text,
    and_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from ..database import is_sqlite
from ..db_types import utcnow
from ..extensions import db
from ..jobs import enqueue_after_commit, enqueue_now, redis_connection
from ..models import AuditEvent, Client, StaffProfile, User, UserRole
from ..vocab import Availability, Role, Status, Tier
from .eligibility import (
    HELD_STATUSES,
    STAGES,
    TASKS,
    Candidates,
    PersonFacts,
    TypeFacts,
    candidate_pairs,
    held_load_query,
    load_people,
    load_types,
    person_reasons,
    skill_fit_query,
)
from .locking import lock_people
from .offers import offer_event, offer_rows, offer_timeouts, offered_load
from .solver import COST_SCALE, solve_assignment
from .urgency import at_risk_clause, queue_order, urgency

JOB_PATH = "provider_app.assignment.batch.assign_batch_job"
LOCK_KEY = "throughline:assignment:batch:lock"
RERUN_KEY = "throughline:assignment:batch:rerun"
# Set while a run asked for by new work is waiting (``request_run``); the run clears it.
REQUESTED_KEY = "throughline:assignment:batch:requested"
LOCK_SECONDS = 300
MAX_BATCH = 20_000
"""Queued tasks considered per run (most urgent first); the rest wait for the next run."""
CHUNK = 5_000
"""Ids per ``IN (...)`` list: below SQLite's variable limit, small for PostgreSQL plans."""
CONTINUITY_DAYS = 14

# Weights of the pair cost (each component in [0, 1]) and of the other terms, on COST_SCALE.
W_OVERQUALIFIED = 0.6
W_CONTINUITY = 0.4
BALANCE_COST = COST_SCALE // 2
URGENCY_SCALE = 20 * COST_SCALE
"""Penalty of leaving the most urgent task queued: 20 full pair costs, so urgency decides
which tasks are placed and pair preferences only decide who takes them."""


@dataclass
class BatchResult:
    queued: int = 0
    staff: int = 0
    pairs: int = 0
    assigned: int = 0
    relaxed: int = 0
    offered: int = 0
    waiting: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    solver_seconds: float = 0.0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def request_run() -> None:
    """Ask for a batch run once the current transaction commits: new work calls this.

    A burst of new tasks (intake takes hundreds a second) costs one enqueued run, not one
    per task: the request is skipped while an earlier one still waits (``REQUESTED_KEY``).
    """
    enqueue_after_commit(JOB_PATH, once_key=REQUESTED_KEY)


def assign_batch_job() -> dict:
    """RQ entry point: one batch run under a Redis lock; commits its own work inside it."""
    redis = redis_connection()
    redis.delete(REQUESTED_KEY)  # before reading the queue: work committed later asks again
    lock = redis.lock(LOCK_KEY, timeout=LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        redis.set(RERUN_KEY, "1", ex=LOCK_SECONDS)
        return {"skipped": "another batch is running; it will run once more"}
    try:
        redis.delete(RERUN_KEY)
        result = run_batch()
        db.session.commit()  # inside the lock, so the next run sees this one's work
    finally:
        lock.release()
    if redis.get(RERUN_KEY):
        enqueue_now(JOB_PATH)
    return result.as_dict()


class _Clock:
    def __init__(self, result: BatchResult):
        self.result, self.last = result, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.result.seconds[name] = round(now - self.last, 4)
        self.last = now


def run_batch(now: datetime | None = None, *, limit: int = MAX_BATCH) -> BatchResult:
    """One batch run inside the caller's transaction (flushes; the caller commits)."""
    now = now or utcnow()
    result = BatchResult()
    clock = _Clock(result)
    queue = _load_queue(now, limit)
    result.queued = len(queue["id"])
    if not result.queued:
        return result
    staff = _available_staff(now)
    result.staff = len(staff)
    types = load_types(set(queue["type_id"].tolist()))
    type_list = list(types.values())
    type_pos = {t.id: i for i, t in enumerate(type_list)}
    task_type = np.array([type_pos[t] for t in queue["type_id"].tolist()], dtype=np.int64)
    clock.lap("load")

    fit = (db.session.execute(skill_fit_query(list(types), [p.user_id for p in staff])).all()
           if staff else [])
    cands = _drop_declined(queue, staff, candidate_pairs(
        task_type=task_type,
        task_client=queue["client_id"],
        task_state=queue["state"],
        task_waited=(now.timestamp() - queue["received_at"]) / 60,
        task_at_risk=queue["at_risk"],
        types=type_list,
        staff=staff,
        skill_fit=fit,
        on=now.date(),
    ))
    result.pairs = int(cands.pair_task.size)
    clock.lap("candidates")

    weights = np.array([t.weight for t in type_list], dtype=np.int64)[task_type]
    task_urgency = urgency(queue["priority_order"], (queue["due_at"] - now.timestamp()) / 3600)
    pair_cost = pair_costs(cands, task_type, queue["client_id"], type_list, staff, now)
    band = np.where(queue["at_risk"] | (queue["priority_order"] == 0), 0, 1)
    # Queue position breaks ties (first in, first placed) below any real urgency difference.
    position = 1 - np.arange(result.queued) / result.queued
    penalty = np.rint(URGENCY_SCALE * task_urgency + COST_SCALE * position).astype(np.int64)
    clock.lap("costs")

    solved = solve_assignment(
        weights,
        np.array([max(p.free, 0) for p in staff], dtype=np.int64),
        cands.pair_task,
        cands.pair_staff,
        pair_cost,
        penalty,
        task_band=band,
        staff_load=np.array([max(p.load, 0) for p in staff], dtype=np.int64),
        balance_cost=BALANCE_COST,
    )
    result.solver_seconds = solved.elapsed_seconds
    clock.lap("solve")

    placed = _write_back(queue, staff, type_list, task_type, cands, solved.staff_for_task,
                         task_urgency, now, result)
    clock.lap("write_back")
    result.waiting = _record_waiting(queue, staff, type_list, task_type, cands, placed)
    clock.lap("waiting_reasons")
    return result


# --- reading ---------------------------------------------------------------------------------


def _load_queue(now: datetime, limit: int) -> dict[str, np.ndarray]:
    """The queue as column arrays (times as epoch seconds, NaN for no due time), urgent first."""
    rows = db.session.execute(
        select(
            TASKS.c.id, TASKS.c.client_id, TASKS.c.task_type_id, TASKS.c.state,
            TASKS.c.priority_order, TASKS.c.due_at, TASKS.c.received_at,
            TASKS.c.offer_declined_ids, at_risk_clause(now).label("at_risk"),
        )
        .where(TASKS.c.status == Status.QUEUED.value, TASKS.c.offered_to_id.is_(None))
        .order_by(*queue_order())
        .limit(limit)
    ).all()
    return {
        "id": np.array([r.id for r in rows], dtype=np.int64),
        "client_id": np.array([r.client_id for r in rows], dtype=np.int64),
        "type_id": np.array([r.task_type_id for r in rows], dtype=np.int64),
        "state": [r.state for r in rows],
        "priority_order": np.array([r.priority_order for r in rows], dtype=np.int64),
        "due_at": np.array([r.due_at.timestamp() if r.due_at else np.nan for r in rows],
                           dtype=float),
        "received_at": np.array([r.received_at.timestamp() for r in rows], dtype=float),
        "at_risk": np.array([bool(r.at_risk) for r in rows], dtype=bool),
        "declined": [r.offer_declined_ids for r in rows],
    }


def _available_staff(now: datetime) -> list[PersonFacts]:
    """Active specialists marked available and on shift (capacity is checked per pair)."""
    ids = db.session.scalars(
        select(StaffProfile.user_id)
        .join(User, User.id == StaffProfile.user_id)
        .join(UserRole, and_(UserRole.user_id == User.id, UserRole.role == Role.SPECIALIST))
        .where(User.active.is_(True), StaffProfile.availability == Availability.AVAILABLE)
    ).all()
    people = load_people(ids)
    offered = offered_load(ids)
    return [replace(p, load=p.load + int(offered.get(p.user_id) or 0))
            for p in people.values() if not person_reasons(p, now)]


def _drop_declined(queue, staff: list[PersonFacts], cands: Candidates) -> Candidates:
    """Leave out the pairs of people who declined the task (or let its offer lapse) in this
    round; a task left without pairs waits for the reason ``declined``."""
    rows = [(i, ids) for i, ids in enumerate(queue["declined"]) if ids]
    if not rows or cands.pair_task.size == 0:
        return cands
    m = len(staff)
    position = {p.user_id: j for j, p in enumerate(staff)}
    declined = [i * m + position[u] for i, ids in rows for u in ids if u in position]
    keep = ~np.isin(cands.pair_task * m + cands.pair_staff, declined)
    kept_tasks = cands.pair_task[keep]
    stage = cands.stage.copy()
    for i, _ in rows:
        if stage[i] < 0 and not (kept_tasks == i).any():
            stage[i] = STAGES.index("declined")
    return replace(cands, pair_task=kept_tasks, pair_staff=cands.pair_staff[keep],
                   pair_relax=cands.pair_relax[keep], stage=stage)


# --- pricing ---------------------------------------------------------------------------------


def pair_costs(cands: Candidates, task_type: np.ndarray, task_client: np.ndarray,
               types: list[TypeFacts], staff: list[PersonFacts], now: datetime) -> np.ndarray:
    """Integer cost per pair on COST_SCALE: over-qualification and lack of continuity.

    Over-qualified: an insurance-trained person on BPO work (0.6) and skill levels above the
    minimum (0.4, mean surplus over the type's skills, 4 levels = 1). Continuity: the person
    holds, or finished in the last CONTINUITY_DAYS days, work of the same client. Load balance
    is priced by the solver's slot arcs; urgency by the queue penalties.
    """
    if cands.pair_task.size == 0:
        return np.empty(0, dtype=np.int64)
    names = sorted({n.skill for t in types for n in t.skills})
    column = {name: k for k, name in enumerate(names)}
    level = np.zeros((len(staff), len(names)))
    for j, person in enumerate(staff):
        for name, value in person.skills.items():
            if name in column:
                level[j, column[name]] = value
    surplus = np.zeros((len(types), len(staff)))
    for i, facts in enumerate(types):
        if facts.skills:
            need = np.array([n.min_level for n in facts.skills], dtype=float)
            have = level[:, [column[n.skill] for n in facts.skills]]
            surplus[i] = np.clip(have - need, 0, 4).mean(axis=1) / 4
    trained = np.array([p.trained for p in staff], dtype=bool)
    bpo = np.array([t.tier == Tier.BPO for t in types], dtype=bool)
    pt, ps = cands.pair_task, cands.pair_staff
    pair_type = task_type[pt]
    over = 0.6 * (bpo[pair_type] & trained[ps]) + 0.4 * surplus[pair_type, ps]
    continuity = _continuity(staff, now)
    pair_key = np.array([p.user_id for p in staff], dtype=np.int64)[ps] * 2**32 + task_client[pt]
    known = np.isin(pair_key, continuity)
    cost = W_OVERQUALIFIED * over + W_CONTINUITY * ~known
    return np.rint(COST_SCALE * cost).astype(np.int64)


def _continuity(staff: list[PersonFacts], now: datetime) -> np.ndarray:
    """Keys ``user_id * 2**32 + client_id`` of people with recent or current work per client."""
    ids = [p.user_id for p in staff]
    keys: list[int] = []
    cutoff = now - timedelta(days=CONTINUITY_DAYS)
    for chunk in _chunks(ids):
        keys.extend(
            a * 2**32 + c
            for a, c in db.session.execute(
                select(TASKS.c.assignee_id, TASKS.c.client_id)
                .where(
                    TASKS.c.assignee_id.in_(chunk),
                    or_(
                        TASKS.c.status.in_([s.value for s in HELD_STATUSES]),
                        and_(TASKS.c.status == Status.COMPLETED.value,
                             TASKS.c.completed_at >= cutoff),
                    ),
                )
                .distinct()
            )
        )
    return np.array(keys, dtype=np.int64)


# --- writing ---------------------------------------------------------------------------------


def _write_back(queue, staff, types, task_type, cands, staff_for_task, task_urgency, now,
                result: BatchResult) -> np.ndarray:
    """Assign (or offer) the solved pairs that are still valid; returns the task positions
    placed either way."""
    chosen = np.flatnonzero(staff_for_task >= 0)
    if chosen.size == 0:
        return chosen
    people = np.array([p.user_id for p in staff], dtype=np.int64)
    weights = np.array([t.weight for t in types], dtype=np.int64)[task_type]
    involved = np.unique(staff_for_task[chosen])
    lock_people(people[involved].tolist())

    # Under the locks, with fresh loads: drop what no longer fits (a claim or a lead may have
    # given these people work since we read), least urgent first.
    fresh_load = dict(db.session.execute(held_load_query(people[involved].tolist())).all())
    offered = offered_load(people[involved].tolist())
    room = {int(people[j]): staff[j].capacity - int(fresh_load.get(int(people[j])) or 0)
            - int(offered.get(int(people[j])) or 0) for j in involved.tolist()}
    keep = []
    for i in chosen[np.argsort(-task_urgency[chosen], kind="stable")].tolist():
        user_id = int(people[staff_for_task[i]])
        if room[user_id] >= weights[i]:
            room[user_id] -= int(weights[i])
            keep.append(i)
    kept = np.array(sorted(keep), dtype=np.int64)
    timeouts = offer_timeouts(queue["client_id"][kept].tolist(), now.date())
    minutes = np.array([timeouts.get(c, 0) for c in queue["client_id"][kept].tolist()],
                       dtype=np.int64)
    offered_pos = _offer(queue, people[staff_for_task[kept[minutes > 0]]], kept[minutes > 0],
                         minutes[minutes > 0], now)
    result.offered = int(offered_pos.size)
    kept = kept[minutes == 0]
    done = _assign_rows(queue["id"][kept].tolist(), people[staff_for_task[kept]].tolist(), now)
    kept = kept[np.isin(queue["id"][kept], np.fromiter(done, dtype=np.int64, count=len(done)))]
    if kept.size == 0:
        return offered_pos

    task_ids = queue["id"][kept].tolist()
    assignees = people[staff_for_task[kept]].tolist()
    relax = _pair_lookup(cands, kept, staff_for_task[kept]).tolist()
    trained = np.array([p.trained for p in staff], dtype=bool)[staff_for_task[kept]].tolist()
    bpo = np.array([t.tier == Tier.BPO for t in types], dtype=bool)[task_type[kept]].tolist()
    events = []
    for k, client_id in enumerate(queue["client_id"][kept].tolist()):
        common = {"at": now, "object_type": "task", "object_id": task_ids[k],
                  "client_id": client_id, "after": {"assignee_id": assignees[k]},
                  "from_status": None, "to_status": None}
        events.append({**common, "action": "task.transition", "from_status": "queued",
                       "to_status": "assigned", "reason": "automatic assignment"})
        if relax[k] > 0:
            events.append({**common, "action": "assignment.relaxed",
                           "reason": f"optional skills dropped after {relax[k]} min in queue"})
        if trained[k] and bpo[k]:
            events.append({**common, "action": "assignment.relaxed",
                           "reason": "BPO overflow to insurance-trained staff: at risk of breach"})
    _insert_audit(events)
    result.assigned = int(kept.size)
    result.relaxed = sum(1 for e in events if e["action"] == "assignment.relaxed")
    return np.union1d(kept, offered_pos)


def _offer(queue, assignees: np.ndarray, positions: np.ndarray, minutes: np.ndarray,
           now: datetime) -> np.ndarray:
    """Offer these tasks to their chosen people (clients with offers); audited; returns the
    positions actually offered (a claim may have taken some meanwhile)."""
    if positions.size == 0:
        return positions
    task_ids = queue["id"][positions].tolist()
    expires = [now + timedelta(minutes=int(m)) for m in minutes.tolist()]
    done = offer_rows(task_ids, assignees.tolist(), expires, now)
    events = [offer_event(t, c, p, e, now) for t, c, p, e in zip(
        task_ids, queue["client_id"][positions].tolist(), assignees.tolist(), expires,
        strict=True) if t in done]
    if events:
        _insert_audit(events)
    return positions[np.isin(queue["id"][positions], list(done))]


def _insert_audit(events: list[dict]) -> None:
    """Append audit rows in bulk: executemany on SQLite, one INSERT ... SELECT unnest on PG.

    (psycopg's pipelined executemany and multi-row VALUES both cost seconds for 10,000 rows;
    column arrays are one round trip and one short statement.)
    """
    table = AuditEvent.__table__
    if is_sqlite():
        db.session.execute(insert(table), events)
        return
    columns = {
        "at": DateTime(timezone=True), "object_type": Text(), "object_id": BigInteger(),
        "client_id": BigInteger(), "action": Text(), "from_status": Text(),
        "to_status": Text(), "reason": Text(), "after": Text(),
    }
    data = {name: [e[name] for e in events] for name in columns}
    data["after"] = [json.dumps(a) for a in data["after"]]
    source = select(*(
        func.unnest(literal(data[name], ARRAY(kind))) if name != "after"
        else cast(func.unnest(literal(data[name], ARRAY(kind))), JSON)
        for name, kind in columns.items()
    ))
    db.session.execute(insert(table).from_select(list(columns), source))


def _assign_rows(task_ids: list[int], assignees: list[int], now: datetime) -> set[int]:
    """queued -> assigned for each (task, person) still queued; returns the ids updated.

    PostgreSQL: one ``UPDATE ... FROM unnest(ids, people) ... WHERE status = 'queued'
    RETURNING id``; rows a claimer holds are waited for and then skipped by the guard.
    SQLite: the caller's lock holds the database write lock, so the rows still queued cannot
    change between reading them and the executemany UPDATE.
    """
    if not task_ids:
        return set()
    values = {"status": Status.ASSIGNED.value, "version": TASKS.c.version + 1,
              "waiting_reason": None, "offer_declined_ids": None, "updated_at": now}
    if not is_sqlite():
        pairs = select(
            func.unnest(literal(task_ids, ARRAY(BigInteger))).label("id"),
            func.unnest(literal(assignees, ARRAY(BigInteger))).label("assignee"),
        ).subquery()
        return set(db.session.scalars(
            update(TASKS)
            .where(TASKS.c.id == pairs.c.id, TASKS.c.status == Status.QUEUED.value)
            .values(assignee_id=pairs.c.assignee, **values)
            .returning(TASKS.c.id)
        ))
    queued: set[int] = set()
    for chunk in _chunks(task_ids):
        queued.update(db.session.scalars(
            select(TASKS.c.id).where(TASKS.c.id.in_(chunk), TASKS.c.status == Status.QUEUED.value)
        ))
    rows = [{"task_id": t, "assignee": a} for t, a in zip(task_ids, assignees, strict=True)
            if t in queued]
    if rows:
        db.session.execute(
            update(TASKS)
            .where(TASKS.c.id == bindparam("task_id"), TASKS.c.status == Status.QUEUED.value)
            .values(assignee_id=bindparam("assignee"), **values),
            rows,
        )
    return queued


def _pair_lookup(cands: Candidates, tasks: np.ndarray, staff: np.ndarray) -> np.ndarray:
    """The ``pair_relax`` value of each (task, staff) pair given."""
    order = np.lexsort((cands.pair_staff, cands.pair_task))
    keys = cands.pair_task[order] * (2**31) + cands.pair_staff[order]
    where = np.searchsorted(keys, tasks * (2**31) + staff)
    return cands.pair_relax[order][where]


def _record_waiting(queue, staff, types, task_type, cands: Candidates,
                    placed: np.ndarray) -> int:
    """Set ``waiting_reason`` on every task this run left queued; returns how many."""
    waiting = np.setdiff1d(np.arange(len(queue["id"])), placed)
    if waiting.size == 0:
        return 0
    clients = dict(db.session.execute(
        select(Client.id, Client.code).where(Client.id.in_(set(queue["client_id"].tolist())))
    ).all())
    pairs_per_task = np.bincount(cands.pair_task, minlength=len(queue["id"]))
    by_text: dict[str, list[int]] = {}
    for i in waiting.tolist():
        text = _waiting_text(
            types[task_type[i]], cands.stage[i], int(pairs_per_task[i]), len(staff),
            clients.get(int(queue["client_id"][i]), "?"), queue["state"][i],
            int(cands.held_back[i]),
        )
        by_text.setdefault(text[:300], []).append(int(queue["id"][i]))
    for text, ids in by_text.items():
        for chunk in _chunks(ids):
            db.session.execute(
                update(TASKS)
                .where(TASKS.c.id.in_(chunk), TASKS.c.status == Status.QUEUED.value,
                       or_(TASKS.c.waiting_reason.is_(None), TASKS.c.waiting_reason != text))
                .values(waiting_reason=text)
            )
    return int(waiting.size)


def _waiting_text(task_type: TypeFacts, stage: int, pairs: int, n_staff: int, client: str,
                  state: str | None, held_back: int = 0) -> str:
    if n_staff == 0:
        return "No specialist is available and on shift."
    if stage < 0:
        text = (f"{pairs} eligible specialist{'s' if pairs != 1 else ''}, but their free "
                "capacity went to more urgent work.")
        if held_back:
            text += (f" {held_back} insurance-trained specialist(s) could help: BPO work goes "
                     "to them only when at risk of breaching.")
        return text
    code = STAGES[stage]
    skills = ", ".join(f"{n.skill} ≥ {n.min_level}" for n in task_type.skills if not n.optional)
    return {
        "tier": "KPO work: no insurance-trained specialist is available and on shift.",
        "skill": f"No available specialist has the skills ({skills or 'as listed'}).",
        "client": f"No available specialist with the skills may work for {client}.",
        "licence": (f"No available specialist with the skills holds a valid "
                    f"{task_type.licence_line} licence for {state}." if state else
                    f"The task has no state, and {task_type.code} needs a "
                    f"{task_type.licence_line} licence for the task's state."),
        "capacity": "Every eligible specialist is at capacity.",
        "relax": ("Eligible specialists lack optional skills; those are dropped after the task "
                  "has waited long enough."),
        "overflow": ("Only insurance-trained specialists are free; BPO work goes to them only "
                     "when at risk of breaching."),
        "declined": ("Every eligible specialist has declined this task or let its offer lapse; "
                     "a lead can assign it."),
    }[code]


def _chunks(ids: list[int]):
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]
