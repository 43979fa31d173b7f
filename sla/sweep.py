"""The periodic SLA sweep: mark tasks at risk and breached, open escalations, raise levels.

Everything is set-based. The clock stores its thresholds as timestamps
(``sla.clock``), so finding due work is an index range scan
(``ix_tasks_sla_breach``, ``ix_tasks_sla_at_risk``) and marking it is one
UPDATE per batch; escalations, audit rows and notifications are written with
INSERT ... SELECT for exactly the rows that UPDATE returned. Only ids of newly
marked rows (and the notices, for the e-mail digest) reach Python, at most
``batch`` at a time, never the open tasks themselves.

On PostgreSQL a batch is **one statement**: the marking UPDATE, the superseding
UPDATE, the escalation INSERT, the audit INSERT and the notification INSERT are
data-modifying CTEs chained by their RETURNING rows; a level check is another.
SQLite (development, tests) cannot put DML in a WITH, so it runs the same
statement builders one after the other, each reading the ids the previous one
returned. Either way a sweep with nothing to do costs four short statements: an index probe
per state (is anything due?), the rules SELECT and the level check.

What each breached or at-risk task gets, per sweep:

* its ``sla_state`` (and ``escalation_level`` lifted to 1);
* an escalation for the reason, unless one is already open (level 1, owned by
  the client's own lead: ``sla.notify.with_first_lead``);
* on breach, its open ``sla_at_risk`` escalation resolved as superseded;
* **one** audit row naming all of that: ``escalation.open`` on the new
  escalation, or ``task.sla_state`` on the task when none was opened, with
  ``after = {"task_id", "sla_state", "escalation_id", "superseded_id"}``;
* a notification for that owner (the other leads see the queue and its count,
  not a notice per escalation), and one e-mail per person per sweep listing
  everything they were told about.

A raised level gets an ``escalation.raise`` audit row and notifications to the
new level's audience and the owner.

Running it twice opens nothing twice: a task leaves the scan once its
``sla_state`` changes, an escalation is inserted only where none is open for
that task and reason (and the partial unique index backs that up), and a level
is raised only from the level the rule names. On PostgreSQL, concurrent sweeps
serialise on the row locks and re-check those guards, so they cannot double up.

A paused task (``pending_client``) is never marked: the status guard excludes
it, and on resume the clock pushes its thresholds out (``sla.clock._resume``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache

from sqlalchemy import (
    FromClause,
    Insert,
    Integer,
    Select,
    String,
    Subquery,
    Update,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)

from provider_app.db_types import UTCDateTime, utcnow
from provider_app.extensions import db
from provider_app.models import AuditEvent, Task
from provider_app.vocab import OPEN_STATUSES, EscalationReason, SlaState, Status

from .models import TOP_LEVEL, Escalation, EscalationRule
from .notify import (
    ESCALATION_COLUMNS,
    OPENED,
    RAISED,
    escalations_by_id,
    notification_insert,
    queue_emails,
    with_first_lead,
)
from .sql import NOW, json_object, random_public_id

BATCH = 5000
# The clock runs in every open status except pending_client.
RUNNING = sorted(s.value for s in OPEN_STATUSES if s != Status.PENDING_CLIENT)
SUPERSEDED = "Superseded: the SLA was breached (see the sla_breached escalation)."
_AUDIT_COLUMNS = ["at", "client_id", "object_type", "object_id", "action", "reason", "after"]


@dataclass
class SweepResult:
    at_risk: int = 0
    breached: int = 0
    opened: int = 0
    superseded: int = 0
    raised: int = 0
    notifications: int = 0


def sweep(now: datetime | None = None, *, batch: int = BATCH) -> SweepResult:
    """One pass at ``now`` (tests pass a frozen instant; the job passes the clock's)."""
    now = now or utcnow()
    result = SweepResult()
    notices: list = []
    params = {"now": now, "wall": utcnow(), "batch": batch}
    one_statement = db.session.get_bind().dialect.name == "postgresql"
    # Breaches first: a task that crossed both thresholds since the last run
    # (a sweeper outage, a long pause) gets one breach escalation, not two.
    for state in (SlaState.BREACHED, SlaState.AT_RISK):
        if not db.session.scalar(_anything_due(state), params):
            continue  # one index probe instead of planning the batch statement for nothing
        while True:
            marked = _mark_batch(state, params, result, notices, one_statement)
            if marked < batch:
                break
    _raise_levels(params, result, notices, one_statement)
    result.notifications = len(notices)
    queue_emails(notices, now)
    _forget_loaded_rows()
    return result


def run_sweep() -> dict:
    """The periodic job (``provider_app.schedule``): sweep now, committed by ``run_job``."""
    return asdict(sweep())


def _forget_loaded_rows() -> None:
    """Expire tasks and escalations the session holds: the sweep changed rows behind it.

    The job's session holds none; a caller that loaded some (a test, the demo
    seeder) reads the swept values on next access.
    """
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Task | Escalation):
            db.session.expire(obj)


# --- one batch of tasks crossing a threshold ----------------------------------------------

# Bound at execution (with ``now``), so the statements are built once per process.
WALL = bindparam("wall", type_=UTCDateTime())  # updated_at: when the sweep ran
LIMIT = bindparam("batch", type_=Integer())


def _mark_batch(
    state: SlaState, params: dict, result: SweepResult, notices: list, one_statement: bool,
) -> int:
    """Mark up to ``batch`` tasks and do what follows for them; returns how many were marked."""
    breach = state == SlaState.BREACHED
    if one_statement:
        rows = db.session.execute(_batch_statement(state), params).all()
        first = rows[0]
        if not first.marked:
            return 0
        count = first.marked
        result.opened += first.opened
        result.superseded += first.superseded
        notices.extend(row for row in rows if row.user_id is not None)
    else:
        task_ids = db.session.scalars(_marking(state), params).all()
        if not task_ids:
            return 0
        marked = select(Task.id, Task.client_id).where(Task.id.in_(task_ids)).subquery("marked")
        superseded = None
        if breach:
            superseded_ids = db.session.scalars(_superseding(task_ids), params).all()
            result.superseded += len(superseded_ids)
            superseded = (select(Escalation.id, Escalation.task_id)
                          .where(Escalation.id.in_(superseded_ids)).subquery("superseded"))
        opened_ids = db.session.scalars(_opening(marked, state), params).all()
        result.opened += len(opened_ids)
        opened = escalations_by_id(opened_ids)
        db.session.execute(_auditing(marked, opened, superseded, state), params)
        notices.extend(db.session.execute(notification_insert(opened, OPENED), params).all())
        count = len(task_ids)
    if breach:
        result.breached += count
    else:
        result.at_risk += count
    return count


@cache
def _batch_statement(state: SlaState) -> Select:
    """PostgreSQL: a whole batch as one statement of data-modifying CTEs.

    Each CTE reads the RETURNING rows of the one before (they all see the
    snapshot the statement started with, so nothing reads a table another CTE
    writes). Returns one row per notice written, each carrying the counts (one
    row of counts and NULLs when there are none).
    """
    marked = _marking(state).cte("marked")
    breach = state == SlaState.BREACHED
    superseded = _superseding(select(marked.c.id)).cte("superseded") if breach else None
    opened = _opening(marked, state).cte("opened")
    noticed = notification_insert(opened, OPENED).cte("noticed")
    counts = select(
        select(func.count()).select_from(marked).scalar_subquery().label("marked"),
        select(func.count()).select_from(opened).scalar_subquery().label("opened"),
        (select(func.count()).select_from(superseded).scalar_subquery()
         if superseded is not None else literal(0)).label("superseded"),
    ).subquery("counts")
    return (
        select(counts, noticed)
        .select_from(counts.outerjoin(noticed, true()))
        .add_cte(_auditing(marked, opened, _open_at_risk() if breach else None, state)
                 .cte("audited"))
    )


def _due(state: SlaState) -> tuple:
    """Running tasks past the state's instant and not in it yet (an index range scan)."""
    if state == SlaState.BREACHED:
        instant, before = Task.breach_at, [SlaState.ON_TRACK, SlaState.AT_RISK]
    else:
        instant, before = Task.at_risk_at, [SlaState.ON_TRACK]
    return (Task.sla_state.in_(before), instant <= NOW, Task.status.in_(RUNNING))


@cache
def _anything_due(state: SlaState) -> Select:
    """Whether any task is due for ``state``: the batch statement is large, and PostgreSQL
    plans it afresh on each run (its plan depends on ``now``), so a sweep with nothing to
    mark asks this first."""
    return select(exists().where(*_due(state)))


def _marking(state: SlaState) -> Update:
    """Set the state on up to ``batch`` due tasks, RETURNING ``id, client_id``."""
    due = _due(state)
    picked = select(Task.id).where(*due).limit(LIMIT).scalar_subquery()
    # The guards are repeated outside the sub-select so that PostgreSQL
    # re-checks them on rows another sweep changed while we waited for them.
    return (
        update(Task)
        .where(Task.id.in_(picked), *due)
        .values(
            sla_state=state,
            escalation_level=case((Task.escalation_level < 1, 1), else_=Task.escalation_level),
            updated_at=WALL,
        )
        .returning(Task.id, Task.client_id)
        .execution_options(synchronize_session=False)  # _forget_loaded_rows expires them
    )


def _superseding(task_ids) -> Update:
    """Resolve the open at-risk escalations of newly breached tasks: the breach replaces them."""
    return (
        update(Escalation)
        .where(
            Escalation.task_id.in_(task_ids),
            Escalation.reason == EscalationReason.SLA_AT_RISK,
            Escalation.resolved_at.is_(None),
        )
        .values(resolved_at=NOW, resolution_note=SUPERSEDED, version=Escalation.version + 1)
        .returning(Escalation.id, Escalation.task_id)
        .execution_options(synchronize_session=False)
    )


def _open_at_risk() -> Subquery:
    """Open at-risk escalations (``id, task_id``): what a breach supersedes."""
    return select(Escalation.id, Escalation.task_id).where(
        Escalation.reason == EscalationReason.SLA_AT_RISK, Escalation.resolved_at.is_(None),
    ).subquery("open_at_risk")


def _reason(state: SlaState) -> EscalationReason:
    return (EscalationReason.SLA_BREACHED if state == SlaState.BREACHED
            else EscalationReason.SLA_AT_RISK)


def _opening(marked: FromClause, state: SlaState) -> Insert:
    """Level-1 escalations for the marked tasks, skipping any already open for the reason.

    Each goes to the client's own lead as its owner (``with_first_lead``): the sweep opens them
    in bulk, so one person is told about each (the other leads see the queue
    count) instead of every lead about every one.
    """
    table = Escalation.__table__
    reason = _reason(state)
    already_open = exists().where(
        table.c.task_id == marked.c.id,
        table.c.reason == reason,
        table.c.resolved_at.is_(None),
    )
    source, owner = with_first_lead(marked, marked.c.client_id)
    rows = select(
        marked.c.client_id, marked.c.id, literal(reason, table.c.reason.type), literal(1),
        literal(""), NOW, NOW, literal(1), random_public_id(), owner,
    ).select_from(source).where(~already_open)
    columns = ["client_id", "task_id", "reason", "level", "detail", "opened_at",
               "level_changed_at", "version", "public_id", "owner_id"]
    return (
        insert(table).from_select(columns, rows)
        .returning(*(table.c[c] for c in ESCALATION_COLUMNS))
    )


def _text(value: str):
    """A string constant PostgreSQL can type inside ``json_build_object`` and CASE."""
    return cast(literal(value), String)


def _auditing(
    marked: FromClause, opened: FromClause, superseded: FromClause | None, state: SlaState,
) -> Insert:
    """One audit row per marked task naming the escalation it opened and the one it superseded.

    ``escalation.open`` on the new escalation (so its page's history and the
    ``escalation.opened`` webhook find it), or ``task.sla_state`` on the task
    when an escalation for the reason was already open. ``superseded`` (``id,
    task_id``) is read from the escalations table: on PostgreSQL the statement's
    snapshot still shows the at-risk escalations open, which is exactly the set
    the superseding UPDATE resolves. Every lookup is by id, never a join of two
    CTEs (PostgreSQL cannot estimate their sizes and would loop over them).
    """

    def superseded_id(task_id):
        if superseded is None:
            return cast(null(), Integer)
        return select(superseded.c.id).where(superseded.c.task_id == task_id).scalar_subquery()

    def after(task_id, escalation_id):
        return json_object(_text("task_id"), task_id, _text("sla_state"), _text(state.value),
                           _text("escalation_id"), escalation_id,
                           _text("superseded_id"), superseded_id(task_id))

    on_escalation = select(
        NOW, opened.c.client_id, _text("escalation"), opened.c.id, _text("escalation.open"),
        _text(f"{_reason(state).value}: SLA sweep"), after(opened.c.task_id, opened.c.id),
    )
    on_task = select(
        NOW, marked.c.client_id, _text("task"), marked.c.id, _text("task.sla_state"),
        _text(f"SLA sweep: {state.value}"), after(marked.c.id, cast(null(), Integer)),
    ).where(marked.c.id.not_in(select(opened.c.task_id)))
    return insert(AuditEvent.__table__).from_select(
        _AUDIT_COLUMNS, union_all(on_escalation, on_task))


# --- levels -----------------------------------------------------------------------------


def _raise_levels(params: dict, result: SweepResult, notices: list, one_statement: bool) -> None:
    """Raise unacknowledged escalations whose client's rule says they waited too long.

    One UPDATE for every rule (their conditions OR-ed, each an index range on
    ``ix_escalations_waiting``); a raised escalation restarts its wait, so it
    climbs one level a run. The tasks' ``escalation_level``, the audit rows and
    the notices follow in the same statement on PostgreSQL.
    """
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for client_id, level, minutes in db.session.execute(
        select(EscalationRule.client_id, EscalationRule.from_level, EscalationRule.ack_minutes)
        .where(EscalationRule.from_level < TOP_LEVEL)
        .order_by(EscalationRule.client_id)
    ):
        groups[(level, minutes)].append(client_id)
    if not groups:
        return
    rules = tuple((level, minutes, tuple(ids)) for (level, minutes), ids in sorted(groups.items()))
    params = params | {f"waited_{n}": params["now"] - timedelta(minutes=minutes)
                       for n, (_, minutes, _) in enumerate(rules)}
    if one_statement:
        rows = db.session.execute(_raise_statement(rules), params).all()
        result.raised += rows[0].raised
        notices.extend(row for row in rows if row.user_id is not None)
        return
    ids = db.session.scalars(_raising(rules), params).all()
    if not ids:
        return
    result.raised += len(ids)
    raised = escalations_by_id(ids)
    db.session.execute(_lifting(raised), params)
    db.session.execute(_raise_audit(raised), params)
    notices.extend(db.session.execute(notification_insert(raised, RAISED), params).all())


@lru_cache(maxsize=8)
def _raise_statement(rules: tuple) -> Select:
    """PostgreSQL: raising, lifting the tasks, auditing and notifying as one statement."""
    raised = _raising(rules).cte("raised")
    noticed = notification_insert(raised, RAISED).cte("noticed")
    counts = select(
        select(func.count()).select_from(raised).scalar_subquery().label("raised")
    ).subquery("counts")
    return (
        select(counts, noticed)
        .select_from(counts.outerjoin(noticed, true()))
        .add_cte(_lifting(raised).cte("lifted"), _raise_audit(raised).cte("audited"))
    )


def _raising(rules: tuple) -> Update:
    """``rules``: ``(from_level, ack_minutes, client_ids)``; parameter ``waited_<n>`` is
    ``now`` minus the n-th rule's minutes."""
    waited_too_long = or_(*(
        and_(Escalation.level == level,
             Escalation.level_changed_at <= bindparam(f"waited_{n}", type_=UTCDateTime()),
             Escalation.client_id.in_(client_ids))
        for n, (level, _, client_ids) in enumerate(rules)
    ))
    table = Escalation.__table__
    return (
        update(Escalation)
        .where(Escalation.resolved_at.is_(None), Escalation.acknowledged_at.is_(None),
               waited_too_long)
        .values(level=Escalation.level + 1, level_changed_at=NOW,
                version=Escalation.version + 1)
        .returning(*(table.c[c] for c in ESCALATION_COLUMNS))
        .execution_options(synchronize_session=False)
    )


def _lifting(raised: FromClause) -> Update:
    """Lift each task's ``escalation_level`` to its highest raised escalation's level.

    Leaves ``Task.version`` alone: an escalation is beside the lifecycle, so it
    must not make a specialist's open form stale.
    """
    top = select(func.max(raised.c.level)).where(raised.c.task_id == Task.id).scalar_subquery()
    return (
        update(Task)
        .where(Task.id.in_(select(raised.c.task_id)), Task.escalation_level < top)
        .values(escalation_level=top, updated_at=WALL)
        .execution_options(synchronize_session=False)
    )


def _raise_audit(raised: FromClause) -> Insert:
    """An ``escalation.raise`` row per raised escalation, naming the rule that raised it."""
    rule = EscalationRule.__table__
    was = raised.c.level - 1
    reason = (literal("not acknowledged within ") + cast(rule.c.ack_minutes, String)
              + " min: level " + cast(was, String) + " -> " + cast(raised.c.level, String))
    rows = select(
        NOW, raised.c.client_id, _text("escalation"), raised.c.id, _text("escalation.raise"),
        reason, json_object(_text("level"), raised.c.level),
    ).join_from(raised, rule, and_(rule.c.client_id == raised.c.client_id,
                                   rule.c.from_level == was))
    return insert(AuditEvent.__table__).from_select(_AUDIT_COLUMNS, rows)
