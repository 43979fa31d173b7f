"""Lot sampling: Z1.4 inspection of complete lots and the switching rules per stratum.

A task of a lot (CSV intake, or a day's tasks of one type for one client) that no risk rule
sends to review waits in ``submitted``. When the last task of the lot is submitted, the
``inspect_lot`` job draws the Z1.4 sample (plan from the stratum's current severity),
reproducibly, and sends it to QA. Each sample review re-evaluates the lot
(``evaluate_lot``): Re defects reject it at once, a fully reviewed sample with at most Ac
defects accepts it. Accepted: the waiting tasks are completed. Rejected: every waiting task
goes to QA (100 % review). Either way the stratum's switching state moves by
:func:`qa.sampling.next_state` and the move is kept in ``SamplingStratum.history``; five
lots not accepted on tightened inspection stop lot sampling for the stratum and open a
``qa_critical_fail`` escalation until a lead resumes it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError

from provider_app.audit import record
from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.jobs import enqueue_after_commit
from provider_app.lifecycle import transition
from provider_app.models import Client, Lot, Task, TaskType, User
from provider_app.vocab import EscalationReason, Status
from sla.clock import active_contract
from sla.escalations import open_escalation

from .models import LotInspection, QaReview, QaSamplingDecision, SamplingStratum
from .policy import LotPolicy, PolicyError, effective_policy
from .sampling import (
    InspectionDiscontinuedError,
    Plan,
    SwitchState,
    next_state,
    resume_after_corrective_action,
    z14_plan,
)

# Production counts as irregular (Z1.4 §8.3.4 c) when a stratum's lots are further apart.
DEFAULT_STEADY_GAP_DAYS = 14
# Switching history kept per stratum (newest last); older moves stay in the audit trail.
HISTORY_LIMIT = 200


# --- strata and their switching state -------------------------------------------------------


def get_stratum(client_id: int, task_type_id: int) -> SamplingStratum:
    """The client x task type stratum, created on first use (safe against a racing twin)."""
    stmt = select(SamplingStratum).where(
        SamplingStratum.client_id == client_id, SamplingStratum.task_type_id == task_type_id
    )
    stratum = db.session.scalar(stmt)
    if stratum is not None:
        return stratum
    stratum = SamplingStratum(
        client_id=client_id, task_type_id=task_type_id, severity="normal",
        state=state_to_json(SwitchState()), history=[],
    )
    try:
        with db.session.begin_nested():
            db.session.add(stratum)
    except IntegrityError:
        stratum = db.session.scalar(stmt)
    return stratum


def state_to_json(state: SwitchState) -> dict[str, Any]:
    data = asdict(state)
    data["recent_results"] = list(state.recent_results)
    return data


def load_state(stratum: SamplingStratum) -> SwitchState:
    data = dict(stratum.state or {})
    if not data:
        return SwitchState()
    data["recent_results"] = tuple(data.get("recent_results", ()))
    return SwitchState(**data)


def _store_state(stratum: SamplingStratum, state: SwitchState, entry: dict[str, Any]) -> None:
    stratum.state = state_to_json(state)
    stratum.severity = state.severity
    stratum.stopped = state.stopped
    stratum.history = [*(stratum.history or []), entry][-HISTORY_LIMIT:]


def resume_stratum(stratum: SamplingStratum, actor: User, note: str) -> None:
    """A lead restarts a stopped stratum after corrective action (on tightened, §8.4)."""
    if not stratum.stopped:
        raise ValueError("lot sampling of this stratum is not stopped")
    if not note.strip():
        raise ValueError("say what corrective action was taken")
    state = resume_after_corrective_action(load_state(stratum))
    _store_state(stratum, state, {
        "at": utcnow().isoformat(), "lot": None, "from": "stopped", "to": state.severity,
        "accepted": None, "reason": f"{state.reason}: {note.strip()}"[:500],
    })
    record("qa.stratum_resumed", object_type="sampling_stratum", object_id=stratum.id,
           client_id=stratum.client_id, actor=actor, reason=note.strip()[:500],
           after={"severity": state.severity})
    db.session.flush()


# --- lot completion and inspection ----------------------------------------------------------


def _held_tasks_stmt(lot_id: int | None = None):
    """Tasks waiting in ``submitted`` for a lot verdict (a held sampling decision)."""
    held = exists().where(
        QaSamplingDecision.task_id == Task.id,
        QaSamplingDecision.held.is_(True),
        QaSamplingDecision.decided_at >= Task.submitted_at,
    )
    stmt = select(Task).where(Task.status == Status.SUBMITTED, held)
    if lot_id is not None:
        stmt = stmt.where(Task.lot_id == lot_id)
    return stmt


def lot_is_complete(lot_id: int) -> bool:
    """Every task of the lot that is not cancelled has been submitted at least once."""
    total, outstanding = db.session.execute(
        select(func.count(), func.count(Task.submitted_at)).where(
            Task.lot_id == lot_id, Task.status != Status.CANCELLED
        )
    ).one()
    return total > 0 and total == outstanding


def after_submit(task: Task) -> None:
    """Submit hook: when this submission completes a lot, queue its inspection."""
    if task.lot_id is None or not lot_is_complete(task.lot_id):
        return
    inspected = db.session.scalar(
        select(func.count()).select_from(LotInspection).where(LotInspection.lot_id == task.lot_id)
    )
    held = db.session.scalar(select(func.count()).select_from(
        _held_tasks_stmt(task.lot_id).subquery()))
    if not inspected and held:
        enqueue_after_commit("qa.lots.inspect_lot", task.lot_id)


def draw_sample(seed: str, task_ids: list[int], size: int) -> list[int]:
    """A reproducible simple random sample: the ``size`` ids with the smallest keyed hash.

    Ordering by BLAKE2b(seed, id) is a random permutation fixed by the seed (the lot's
    public id), so re-running the job, or an auditor, draws exactly the same sample.
    """
    def key(task_id: int) -> bytes:
        return hashlib.blake2b(f"{seed}:{task_id}".encode(), digest_size=8).digest()

    return sorted(sorted(task_ids, key=key)[:size])


def _lot_policy(task: Task) -> LotPolicy | None:
    """The lot settings the waiting tasks were held under; None if the policy is broken."""
    sop = task.sop or db.session.get(TaskType, task.task_type_id).current_sop()
    try:
        policy = effective_policy(sop, active_contract(task.client_id))
    except PolicyError:
        return None
    return policy.lot or LotPolicy()


def _production_steady(stratum: SamplingStratum, now: datetime) -> bool:
    previous = db.session.scalar(
        select(func.max(LotInspection.decided_at)).where(LotInspection.stratum_id == stratum.id)
    )
    gap = current_app.config.get("QA_LOT_STEADY_GAP_DAYS", DEFAULT_STEADY_GAP_DAYS)
    return previous is None or now - previous <= timedelta(days=gap)


def _to_review(tasks: list[Task], reason: str) -> None:
    for task in tasks:
        task.qa_reason = reason[:200]
        transition(task, Status.IN_QA, reason=reason)


def inspect_lot(lot_id: int) -> int | None:
    """Job: draw the Z1.4 sample of a complete lot and send it to QA.

    Idempotent: a lot already inspected returns its inspection id; a lot that is not
    complete, or has no task waiting for it, returns None.
    """
    existing = db.session.scalar(select(LotInspection.id).where(LotInspection.lot_id == lot_id))
    if existing is not None:
        return existing
    lot = db.session.get(Lot, lot_id)
    if lot is None or not lot_is_complete(lot_id):
        return None
    held = list(db.session.scalars(_held_tasks_stmt(lot_id).order_by(Task.id)))
    if not held:
        return None
    task_type_id = lot.task_type_id or held[0].task_type_id
    stratum = get_stratum(lot.client_id, task_type_id)
    task_ids = list(db.session.scalars(
        select(Task.id).where(Task.lot_id == lot_id, Task.status != Status.CANCELLED)
    ))
    lot_policy = _lot_policy(held[0])
    settings = lot_policy or LotPolicy()
    now = utcnow()
    plan = z14_plan(len(task_ids), settings.aql, settings.level, stratum.severity)
    inspection = LotInspection(
        lot_id=lot.id, client_id=lot.client_id, stratum_id=stratum.id, severity=plan.severity,
        aql=plan.aql, level=plan.level, code_letter=plan.code_letter, lot_size=plan.lot_size,
        sample_size=plan.sample_size, table_sample_size=plan.table_sample_size,
        accept=plan.accept, reject=plan.reject, started_at=now,
        production_steady=_production_steady(stratum, now),
    )
    if stratum.stopped or lot_policy is None:
        why = ("lot sampling discontinued for this stratum" if stratum.stopped
               else "sampling policy invalid")
        inspection.status, inspection.decided_at = "full_review", now
        inspection.reason = f"{why}: every task reviewed"
        db.session.add(inspection)
        _to_review(held, f"lot {_lot_name(lot)}: {why}, 100 % review")
        db.session.flush()
        return inspection.id
    inspection.sample_task_ids = draw_sample(lot.public_id, task_ids, plan.sample_size)
    inspection.reason = f"sample of {plan.sample_size} drawn ({_plan_text(plan)})"
    db.session.add(inspection)
    db.session.flush()
    sample = set(inspection.sample_task_ids)
    _to_review([t for t in held if t.id in sample],
               f"in the Z1.4 sample of lot {_lot_name(lot)} ({_plan_text(plan)})")
    record("qa.lot_inspection_started", object_type="lot", object_id=lot.id,
           client_id=lot.client_id, reason=inspection.reason,
           after={"sample": inspection.sample_task_ids, "severity": plan.severity})
    _evaluate(inspection)
    db.session.flush()
    return inspection.id


def _plan_text(plan: Plan) -> str:
    return (f"{plan.severity}, level {plan.level}, AQL {plan.aql:g}, code {plan.code_letter}: "
            f"n={plan.sample_size}, Ac={plan.accept}, Re={plan.reject}")


def _lot_name(lot: Lot) -> str:
    return lot.file_name or lot.public_id[:8]


# --- lot verdicts and switching -------------------------------------------------------------


def on_review_completed(task: Task) -> None:
    """Review hook: a sampled task's first review may decide its lot."""
    if task.lot_id is None:
        return
    inspection_id = db.session.scalar(
        select(LotInspection.id).where(
            LotInspection.lot_id == task.lot_id, LotInspection.status == "inspecting"
        )
    )
    if inspection_id is not None:
        enqueue_after_commit("qa.lots.evaluate_lot", inspection_id)


def evaluate_lot(inspection_id: int) -> str | None:
    """Job: count the sample's first-review defects and decide the lot when it can be."""
    inspection = db.session.get(LotInspection, inspection_id)
    if inspection is None:
        return None
    if inspection.status == "inspecting":
        _evaluate(inspection)
        db.session.flush()
    return inspection.status


def first_review_results(task_ids: list[int]) -> dict[int, bool]:
    """Each task's first production review verdict (calibration reviews never count)."""
    if not task_ids:
        return {}
    rows = db.session.execute(
        select(QaReview.task_id, QaReview.passed)
        .where(
            QaReview.task_id.in_(task_ids),
            QaReview.calibration_id.is_(None),
            QaReview.completed_at.is_not(None),
        )
        .order_by(QaReview.completed_at, QaReview.id)
    )
    first: dict[int, bool] = {}
    for task_id, passed in rows:
        first.setdefault(task_id, bool(passed))
    return first


def _evaluate(inspection: LotInspection) -> None:
    results = first_review_results(inspection.sample_task_ids)
    inspection.reviewed = len(results)
    inspection.defects = sum(1 for passed in results.values() if not passed)
    if inspection.defects >= inspection.reject:
        _decide(inspection, accepted=False)
    elif inspection.reviewed >= inspection.sample_size:
        _decide(inspection, accepted=True)


def _decide(inspection: LotInspection, *, accepted: bool) -> None:
    stratum, lot, now = inspection.stratum, inspection.lot, utcnow()
    before = load_state(stratum)
    between = accepted and inspection.defects > inspection.accept
    verdict = "accepted" if accepted else "not accepted"
    summary = (f"{inspection.defects} defective in {inspection.reviewed} reviewed "
               f"(Ac {inspection.accept}, Re {inspection.reject}): lot {verdict}")
    try:
        # The switching score needs the Table II-A plan this lot was inspected under.
        on_normal = inspection.severity == before.severity == "normal"
        after = next_state(
            before, accepted, result_between_ac_re=between and before.severity == "reduced",
            production_steady=inspection.production_steady, defects=inspection.defects,
            sample_size=inspection.table_sample_size if on_normal else 0,
            aql=inspection.aql if on_normal else None,
        )
    except InspectionDiscontinuedError:
        after = before
    moved = after.severity != before.severity or after.stopped != before.stopped
    _store_state(stratum, after, {
        "at": now.isoformat(), "lot": lot.public_id, "lot_name": _lot_name(lot),
        "accepted": accepted, "defects": inspection.defects, "sample": inspection.sample_size,
        "from": before.severity, "to": "stopped" if after.stopped else after.severity,
        "reason": after.reason if moved else f"{summary}; stays on {after.severity}",
    })
    inspection.status = "accepted" if accepted else "rejected"
    inspection.decided_at = now
    inspection.reason = summary
    lot.qa_accepted = accepted
    record("qa.lot_decided", object_type="lot", object_id=lot.id, client_id=lot.client_id,
           reason=summary, after={"accepted": accepted, "defects": inspection.defects,
                                  "severity": before.severity})
    if moved:
        record("qa.stratum_switched", object_type="sampling_stratum", object_id=stratum.id,
               client_id=stratum.client_id, reason=after.reason,
               before={"severity": before.severity, "stopped": before.stopped},
               after={"severity": after.severity, "stopped": after.stopped})
    if after.stopped and not before.stopped:
        _escalate_stop(inspection, after.reason)
    held = list(db.session.scalars(_held_tasks_stmt(lot.id).order_by(Task.id)))
    if accepted:
        for task in held:
            task.qa_outcome = "lot_accepted"
            task.qa_reason = f"lot {_lot_name(lot)} accepted"[:200]
            transition(task, Status.COMPLETED, reason=f"lot accepted: {summary}")
    else:
        _to_review(held, f"lot {_lot_name(lot)} rejected: 100 % review")


def _escalate_stop(inspection: LotInspection, why: str) -> None:
    """Lot sampling stopped: a lead must act. Escalated on a defective sample task."""
    failed = [task_id for task_id, passed in first_review_results(
        inspection.sample_task_ids).items() if not passed]
    task = db.session.get(Task, failed[0] if failed else inspection.sample_task_ids[0])
    client_code = db.session.get(Client, inspection.client_id).code
    type_code = db.session.get(TaskType, inspection.stratum.task_type_id).code
    open_escalation(task, EscalationReason.QA_CRITICAL_FAIL,
                    detail=f"lot sampling stopped for {client_code} x {type_code}: {why}")


# --- daily lots and the periodic sweep ------------------------------------------------------


def close_daily_lots(now: datetime | None = None) -> list[int]:
    """Group tasks held for a daily lot into one Lot per client x type x local day.

    Only days that are over in the client's time zone are closed; returns the new lot ids
    (each already inspected).
    """
    now = now or utcnow()
    daily = exists().where(
        QaSamplingDecision.task_id == Task.id, QaSamplingDecision.rule == "daily_lot"
    )
    rows = db.session.execute(
        select(Task, Client.timezone)
        .join(Client, Client.id == Task.client_id)
        .where(Task.id.in_(select(_held_tasks_stmt().subquery().c.id)),
               Task.lot_id.is_(None), daily)
        .order_by(Task.id)
    ).all()
    groups: dict[tuple[int, int, str], list[Task]] = defaultdict(list)
    for task, tz in rows:
        zone = ZoneInfo(tz)
        day = task.submitted_at.astimezone(zone).date()
        if day < now.astimezone(zone).date():
            groups[(task.client_id, task.task_type_id, day.isoformat())].append(task)
    created = []
    for (client_id, task_type_id, day), tasks in groups.items():
        type_code = db.session.get(TaskType, task_type_id).code
        lot = Lot(client_id=client_id, task_type_id=task_type_id, source="daily",
                  file_name=f"{type_code} {day} daily lot", row_count=len(tasks))
        db.session.add(lot)
        db.session.flush()
        for task in tasks:
            task.lot_id = lot.id
        record("qa.daily_lot_closed", object_type="lot", object_id=lot.id,
               client_id=client_id, reason=f"{len(tasks)} tasks of {type_code} on {day}")
        db.session.flush()
        inspect_lot(lot.id)
        created.append(lot.id)
    return created


def sweep() -> dict[str, int]:
    """Periodic job: close daily lots, inspect complete lots and decide pending ones.

    The submit and review hooks queue the same work; this catches anything they missed
    (Redis down, a lot completed by a cancellation).
    """
    daily = close_daily_lots()
    lot_ids = db.session.scalars(
        select(Task.lot_id).where(
            Task.id.in_(select(_held_tasks_stmt().subquery().c.id)),
            Task.lot_id.is_not(None),
            ~exists().where(LotInspection.lot_id == Task.lot_id),
        ).distinct()
    ).all()
    inspected = sum(1 for lot_id in lot_ids if inspect_lot(lot_id) is not None)
    pending = db.session.scalars(
        select(LotInspection.id).where(LotInspection.status == "inspecting")
    ).all()
    for inspection_id in pending:
        evaluate_lot(inspection_id)
    return {"daily_lots": len(daily), "inspected": inspected, "evaluated": len(pending)}
