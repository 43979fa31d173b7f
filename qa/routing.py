"""Where a submitted task goes next: QA review, straight to completed, or wait for its lot.

The workspace's submit action calls ``route_submitted`` right after the submitted
transition; the QA area owns the decision (rules in qa.policy, lots in qa.lots).
"""

from __future__ import annotations

from provider_app.audit import record
from provider_app.extensions import db
from provider_app.lifecycle import transition
from provider_app.models import Task, TaskType, User
from provider_app.vocab import Status
from sla.clock import active_contract

from . import lots
from .models import QaSamplingDecision
from .policy import (
    Decision,
    PolicyError,
    SamplingFacts,
    decide,
    effective_policy,
    fixed_rate_stratum,
    gather_facts,
)


def route_submitted(task: Task, actor: User | None = None) -> Status:
    """Send ``task`` (status submitted) to in_qa or completed, or hold it for its lot.

    Returns the task's status afterwards (``submitted`` while it waits for a lot). Calling
    it again for the same submission changes nothing: the stored decision stands.
    """
    if Status(task.status) != Status.SUBMITTED:
        raise ValueError(f"only a submitted task can be routed; this one is {task.status}")
    if _current_decision(task) is not None:
        return Status(task.status)
    specialist_id = task.assignee_id or (actor.id if actor is not None else None)
    facts, decision = _decide(task, specialist_id)
    _store(task, specialist_id, facts, decision, actor)
    task.qa_reason = decision.reason
    if decision.held:
        lots.after_submit(task)
        return Status.SUBMITTED
    if decision.review:
        transition(task, Status.IN_QA, actor=actor, reason=decision.reason)
    else:
        task.qa_outcome = "not_sampled"
        transition(task, Status.COMPLETED, actor=actor, reason=decision.reason)
    lots.after_submit(task)
    return Status(task.status)


def _decide(task: Task, specialist_id: int | None) -> tuple[SamplingFacts | None, Decision]:
    sop = task.sop or (task.task_type or db.session.get(TaskType, task.task_type_id)).current_sop()
    try:
        on = (task.submitted_at or task.received_at).date()
        policy = effective_policy(sop, active_contract(task.client_id, on))
    except PolicyError as exc:  # a broken policy must not let work through unchecked
        reason = f"sampling policy invalid ({exc}); reviewed"[:200]
        return None, Decision("policy_error", True, reason)
    facts = gather_facts(task, specialist_id, policy)
    return facts, decide(facts, policy)


def _current_decision(task: Task) -> QaSamplingDecision | None:
    """The decision already taken for this submission, if any (a re-run returns it)."""
    if task.submitted_at is None:
        return None
    return db.session.scalar(
        db.select(QaSamplingDecision)
        .where(
            QaSamplingDecision.task_id == task.id,
            QaSamplingDecision.decided_at >= task.submitted_at,
        )
        .order_by(QaSamplingDecision.id.desc())
        .limit(1)
    )


def _store(
    task: Task,
    specialist_id: int | None,
    facts: SamplingFacts | None,
    decision: Decision,
    actor: User | None,
) -> None:
    stratum = fixed_rate_stratum(task.client_id, task.task_type_id, specialist_id)
    counters: tuple[int | None, int | None] = (None, None)
    if decision.rule == "fixed_rate" and facts is not None:
        counters = (facts.stratum_seen, facts.stratum_sampled)
    db.session.add(QaSamplingDecision(
        task_id=task.id, client_id=task.client_id, task_type_id=task.task_type_id,
        specialist_id=specialist_id, stratum=stratum, rule=decision.rule,
        review=decision.review, held=decision.held, reason=decision.reason,
        rate=decision.rate, stratum_seen=counters[0], stratum_sampled=counters[1],
    ))
    record(
        "qa.sampling_decision", object_type="task", object_id=task.id,
        client_id=task.client_id, actor=actor, reason=decision.reason,
        after={"rule": decision.rule, "review": decision.review, "held": decision.held,
               "risk_rules": list(decision.risk_rules), "stratum": stratum},
    )
    db.session.flush()
