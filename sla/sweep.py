"""The periodic SLA sweep: mark tasks at risk and breached, open escalations, raise levels.

Everything is set-based. The clock stores its thresholds as timestamps
(``sla.clock``), so finding due work is an index range scan
(``ix_tasks_sla_breach``, ``ix_tasks_sla_at_risk``) and marking it is one
UPDATE per batch; escalations and audit rows are written with INSERT ... SELECT
for exactly the rows that UPDATE returned. Only ids of newly marked rows reach
Python, at most ``batch`` at a time, never the open tasks themselves.

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

from sqlalchemy import JSON, case, exists, insert, literal, null, select, update

from provider_app.db_types import UTCDateTime, utcnow
from provider_app.extensions import db
from provider_app.models import AuditEvent, Task
from provider_app.vocab import OPEN_STATUSES, EscalationReason, SlaState, Status

from .escalations import raise_task_level
from .models import TOP_LEVEL, Escalation, EscalationRule
from .notify import OPENED, RAISED, notify
from .sql import random_public_id

BATCH = 5000
# The clock runs in every open status except pending_client.
RUNNING = sorted(s.value for s in OPEN_STATUSES if s != Status.PENDING_CLIENT)
SUPERSEDED = "Superseded: the SLA was breached (see the sla_breached escalation)."


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
    # Breaches first: a task that crossed both thresholds since the last run
    # (a sweeper outage, a long pause) gets one breach escalation, not two.
    result.breached = _mark(SlaState.BREACHED, now, batch, result)
    result.at_risk = _mark(SlaState.AT_RISK, now, batch, result)
    _raise_levels(now, result)
    return result


def run_sweep() -> dict:
    """The periodic job (``provider_app.schedule``): sweep now, committed by ``run_job``."""
    return asdict(sweep())


def _mark(state: SlaState, now: datetime, batch: int, result: SweepResult) -> int:
    if state == SlaState.BREACHED:
        instant, before = Task.breach_at, [SlaState.ON_TRACK, SlaState.AT_RISK]
        reason = EscalationReason.SLA_BREACHED
    else:
        instant, before = Task.at_risk_at, [SlaState.ON_TRACK]
        reason = EscalationReason.SLA_AT_RISK
    due = (Task.sla_state.in_(before), instant <= now, Task.status.in_(RUNNING))
    marked = 0
    while True:
        picked = select(Task.id).where(*due).limit(batch).scalar_subquery()
        # The guards are repeated outside the sub-select so that PostgreSQL
        # re-checks them on rows another sweep changed while we waited for them.
        task_ids = db.session.scalars(
            update(Task)
            .where(Task.id.in_(picked), *due)
            .values(
                sla_state=state,
                escalation_level=case(
                    (Task.escalation_level < 1, 1), else_=Task.escalation_level
                ),
            )
            .returning(Task.id)
            .execution_options(synchronize_session="fetch")
        ).all()
        if not task_ids:
            break
        marked += len(task_ids)
        _audit_tasks(task_ids, state, now)
        if state == SlaState.BREACHED:
            result.superseded += _supersede_at_risk(task_ids, now)
        opened = _open_escalations(task_ids, reason, now)
        result.opened += len(opened)
        result.notifications += notify(opened, OPENED, now=now)
        if len(task_ids) < batch:
            break
    return marked


def _audit(
    model_id, client_id, object_type: str, action: str, reason: str, now: datetime,
    where, after: dict | None = None,
) -> None:
    """One audit row per selected row, written by the database (INSERT ... SELECT)."""
    table = AuditEvent.__table__
    columns = ["at", "client_id", "object_type", "object_id", "action", "reason", "after"]
    db.session.execute(insert(table).from_select(columns, select(
        literal(now, UTCDateTime()), client_id, literal(object_type), model_id, literal(action),
        literal(reason), literal(after, JSON()) if after is not None else null(),
    ).where(where)))


def _audit_tasks(task_ids: list[int], state: SlaState, now: datetime) -> None:
    _audit(Task.id, Task.client_id, "task", "task.sla_state", f"SLA sweep: {state.value}",
           now, Task.id.in_(task_ids), after={"sla_state": state.value})


def _supersede_at_risk(task_ids: list[int], now: datetime) -> int:
    """Resolve the at-risk escalations of newly breached tasks: the breach replaces them."""
    ids = db.session.scalars(
        update(Escalation)
        .where(
            Escalation.task_id.in_(task_ids),
            Escalation.reason == EscalationReason.SLA_AT_RISK,
            Escalation.resolved_at.is_(None),
        )
        .values(resolved_at=now, resolution_note=SUPERSEDED, version=Escalation.version + 1)
        .returning(Escalation.id)
        .execution_options(synchronize_session="fetch")
    ).all()
    if ids:
        _audit(Escalation.id, Escalation.client_id, "escalation", "escalation.resolve",
               SUPERSEDED, now, Escalation.id.in_(ids))
    return len(ids)


def _open_escalations(task_ids: list[int], reason: EscalationReason, now: datetime) -> list[int]:
    """Level-1 escalations for these tasks, skipping any already open for the reason."""
    table = Escalation.__table__
    already_open = exists().where(
        Escalation.task_id == Task.id,
        Escalation.reason == reason,
        Escalation.resolved_at.is_(None),
    )
    rows = select(
        Task.client_id, Task.id, literal(reason, table.c.reason.type), literal(1), literal(""),
        literal(now, UTCDateTime()), literal(now, UTCDateTime()), literal(1), random_public_id(),
    ).where(Task.id.in_(task_ids), ~already_open)
    columns = ["client_id", "task_id", "reason", "level", "detail", "opened_at",
               "level_changed_at", "version", "public_id"]
    opened = db.session.scalars(
        insert(table).from_select(columns, rows).returning(table.c.id)
    ).all()
    if opened:
        _audit(Escalation.id, Escalation.client_id, "escalation", "escalation.open",
               f"{reason.value}: SLA sweep", now, Escalation.id.in_(opened))
    return list(opened)


def _raise_levels(now: datetime, result: SweepResult) -> None:
    """Raise unacknowledged escalations whose client's rule says they waited too long.

    One UPDATE per distinct (level, minutes) pair across clients, lowest level
    first; a raised escalation restarts its wait, so it climbs one level a run.
    """
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for client_id, level, minutes in db.session.execute(
        select(EscalationRule.client_id, EscalationRule.from_level, EscalationRule.ack_minutes)
        .where(EscalationRule.from_level < TOP_LEVEL)
    ):
        groups[(level, minutes)].append(client_id)
    for (level, minutes), client_ids in sorted(groups.items()):
        rows = db.session.execute(
            update(Escalation)
            .where(
                Escalation.client_id.in_(client_ids),
                Escalation.level == level,
                Escalation.resolved_at.is_(None),
                Escalation.acknowledged_at.is_(None),
                Escalation.level_changed_at <= now - timedelta(minutes=minutes),
            )
            .values(level=level + 1, level_changed_at=now, version=Escalation.version + 1)
            .returning(Escalation.id, Escalation.task_id)
            .execution_options(synchronize_session="fetch")
        ).all()
        if not rows:
            continue
        ids = [r.id for r in rows]
        result.raised += len(ids)
        raise_task_level([r.task_id for r in rows], level + 1)
        _audit(Escalation.id, Escalation.client_id, "escalation", "escalation.raise",
               f"not acknowledged within {minutes} min: level {level} -> {level + 1}",
               now, Escalation.id.in_(ids), after={"level": level + 1})
        result.notifications += notify(ids, RAISED, now=now)
