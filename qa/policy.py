"""The sampling decision at submit: which rule sends a task to QA, and why.

The decision is split in two so the same rules run in production and in the simulation
(benchmarks/sim_sampling.py):

* :func:`gather_facts` asks the database (a handful of indexed queries) for what the rules
  need to know about one task;
* :func:`decide` is pure: facts + effective policy in, a :class:`Decision` out.

Rules, first match wins (all firing risk rules are named in the reason):

1. ``rework`` - a reworked file always returns to QA.
2. ``lot_stopped`` - lot sampling of the client x task type stratum is discontinued
   (MIL-STD-105E §8.4): every task is reviewed until a lead resumes it.
3. Risk rules, any of which forces review: ``full_review`` (policy rate 1.0 / ``full_review``,
   e.g. KPO task types), ``heightened_client``, ``flagged_specialist``, ``sla_override``,
   ``first_n`` (the specialist's first N tasks of the type), ``probation`` (after a critical
   failure until M consecutive passes).
4. ``lot`` / ``daily_lot`` - the task waits in ``submitted`` for its lot's Z1.4 inspection.
5. ``fixed_rate`` - stratified random sampling, see :func:`stratified_decision`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import and_, case, func, select

from provider_app.extensions import db
from provider_app.models import (
    AuditEvent,
    Client,
    Contract,
    Sop,
    StaffProfile,
    Task,
    TaskType,
)
from provider_app.vocab import Tier

from .models import QaReview, QaSamplingDecision, SamplingStratum
from .sampling import AQL_VALUES, INSPECTION_LEVELS, fixed_rate_decision

# Audit actions on a task that mean its SLA or its assignment rules were relaxed or
# overridden: a lead moved the due time (sla.override), gave it to someone the rules
# refused (assignment.override), or optional skills were dropped after it waited
# (assignment.relaxed). A task carrying one is always reviewed. See docs/QA.md.
SLA_RELAXING_ACTIONS = ("sla.override", "assignment.override", "assignment.relaxed")
# An intake automation rule asked for review (provider_app/integrations, docs/INTEGRATIONS.md).
RULE_REQUIRED_ACTIONS = ("qa.required",)

# Deficit correction of the stratified fixed rate: a stratum is never more than one sample
# behind or ahead of rate x tasks (see stratified_decision).
STRATUM_TOLERANCE = 1.0
_EPSILON = 1e-9
# Reviews read after a critical failure to find the end of the probation (every task is
# reviewed while on probation, so the run of passes ends it long before this).
_PROBATION_SCAN = 1000

# Inspection levels from least to most inspection: a contract may only move up this list.
_LEVEL_ORDER = {level: rank for rank, level in enumerate(INSPECTION_LEVELS)}


class PolicyError(ValueError):
    """A sampling policy that cannot be applied, with per-field messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class LotPolicy:
    """Z1.4 lot sampling settings: AQL (a Table II column), inspection level, daily lots."""

    aql: float = 1.0
    level: str = "II"
    daily: bool = False


@dataclass(frozen=True)
class EffectivePolicy:
    """The SOP's sampling policy after the contract override tightened it."""

    rate: float = 0.0
    first_n: int = 0
    consecutive_passes: int = 0
    full_review: bool = False
    lot: LotPolicy | None = None


@dataclass(frozen=True)
class SamplingFacts:
    """What the rules need to know about one submitted task."""

    task_id: int
    stratum: str
    kpo: bool = False
    rework_count: int = 0
    heightened_client: bool = False
    flagged_specialist: bool = False
    sla_overridden: bool = False
    rule_required: bool = False
    prior_of_type: int = 0
    # None: no probation to serve; else passes in a row since the critical failure.
    passes_since_critical: int | None = None
    in_lot: bool = False
    lot_stopped: bool = False
    stratum_seen: int = 0
    stratum_sampled: int = 0


@dataclass(frozen=True)
class Decision:
    """Where the task goes and why; ``held`` means it waits for its lot's inspection."""

    rule: str
    review: bool
    reason: str
    held: bool = False
    rate: float | None = None
    risk_rules: tuple[str, ...] = field(default=())


# --- policy parsing and tightening ---------------------------------------------------------


def parse_policy(raw: dict[str, Any] | None, prefix: str = "sampling_policy") -> EffectivePolicy:
    """Validate a policy dict (the Sop.sampling_policy shape); raises PolicyError."""
    raw = raw or {}
    errors: dict[str, list[str]] = {}

    def number(key: str, kind: type, low: float, high: float | None, default):
        value = raw.get(key, default)
        try:
            if isinstance(value, bool):
                raise TypeError
            value = kind(value)
        except (TypeError, ValueError):
            errors.setdefault(f"{prefix}.{key}", []).append(f"must be a {kind.__name__}")
            return default
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            errors.setdefault(f"{prefix}.{key}", []).append(f"must be {bound}")
            return default
        return value

    rate = number("rate", float, 0.0, 1.0, 0.0)
    first_n = number("first_n", int, 0, None, 0)
    passes = number("consecutive_passes", int, 0, None, 0)
    lot = None
    if raw.get("lot") is not None:
        lot_raw = raw["lot"]
        if not isinstance(lot_raw, dict):
            errors[f"{prefix}.lot"] = ["must be an object with aql and level"]
        else:
            try:
                aql = float(lot_raw.get("aql", 1.0))
            except (TypeError, ValueError):
                aql = -1.0
            if not any(math.isclose(aql, v) for v in AQL_VALUES):
                errors[f"{prefix}.lot.aql"] = ["must be an AQL of Z1.4 Table II (e.g. 0.65, 1.0)"]
            level = lot_raw.get("level", "II")
            if level not in INSPECTION_LEVELS:
                errors[f"{prefix}.lot.level"] = [f"must be one of {', '.join(INSPECTION_LEVELS)}"]
            if not errors:
                lot = LotPolicy(aql, level, bool(lot_raw.get("daily", False)))
    if errors:
        raise PolicyError(errors)
    return EffectivePolicy(rate, first_n, passes, bool(raw.get("full_review", False)), lot)


def tighten(base: EffectivePolicy, override: EffectivePolicy) -> EffectivePolicy:
    """Apply a contract override that may only make sampling stricter, key by key.

    Higher rate, first_n and consecutive_passes win; full review is sticky; a lot plan may
    get a smaller AQL or a higher inspection level. An override never switches a task type
    between fixed-rate and lot sampling (that is the SOP's call).
    """
    lot = base.lot
    if base.lot is not None and override.lot is not None:
        level = max(base.lot.level, override.lot.level, key=_LEVEL_ORDER.__getitem__)
        lot = replace(base.lot, aql=min(base.lot.aql, override.lot.aql), level=level)
    return EffectivePolicy(
        rate=max(base.rate, override.rate),
        first_n=max(base.first_n, override.first_n),
        consecutive_passes=max(base.consecutive_passes, override.consecutive_passes),
        full_review=base.full_review or override.full_review,
        lot=lot,
    )


def effective_policy(sop: Sop | None, contract: Contract | None) -> EffectivePolicy:
    """The SOP policy tightened by the contract's ``sampling_override``."""
    policy = parse_policy(sop.sampling_policy if sop is not None else {})
    if contract is not None and contract.sampling_override:
        policy = tighten(policy, parse_policy(contract.sampling_override, "sampling_override"))
    return policy


# --- the pure decision ----------------------------------------------------------------------


def stratified_decision(
    task_id: int, rate: float, stratum: str, seen: int, sampled: int, salt: str = ""
) -> tuple[bool, str]:
    """Fixed-rate sampling with a per-stratum deficit correction; returns (sampled, why).

    ``seen``/``sampled`` are the stratum's fixed-rate decisions and samples before this task.
    Alone, a keyed hash (:func:`qa.sampling.fixed_rate_decision`, seeded by task id and
    stratum) gives each stratum its share only on average: a specialist with 8 tasks of a
    type at 10 % has a 43 % chance of never being reviewed. So the hash decides only while
    the stratum is within :data:`STRATUM_TOLERANCE` of its expected count ``rate x tasks``:
    a stratum a whole sample behind is sampled now (``deficit``), one a whole sample ahead
    is skipped (``surplus``). Every stratum then gets its share within one task at any
    size, the long-run rate is exact, and the same (task, stratum, counters) always gives
    the same answer.
    """
    expected = rate * (seen + 1)
    if expected - sampled >= STRATUM_TOLERANCE - _EPSILON:
        return True, "deficit"
    hit = fixed_rate_decision(task_id, rate, stratum, salt)
    if hit and sampled + 1 - expected > STRATUM_TOLERANCE + _EPSILON:
        return False, "surplus"
    return hit, "hash"


_RISK_REASONS = {
    "full_review": "100 % review under the SOP policy",
    "heightened_client": "client on heightened review",
    "flagged_specialist": "specialist flagged for review by a lead",
    "sla_override": "SLA or assignment rules relaxed or overridden on this task",
    "rule_required": "an intake automation rule requires review",
    "first_n": "specialist's first {n} tasks of this type",
    "probation": "after a critical failure, until {m} consecutive passes ({p} so far)",
}


def risk_rules(facts: SamplingFacts, policy: EffectivePolicy) -> list[str]:
    """Names of the risk rules that fire for these facts, in a fixed order."""
    fired = []
    if policy.full_review or policy.rate >= 1.0:
        fired.append("full_review")
    if facts.heightened_client:
        fired.append("heightened_client")
    if facts.flagged_specialist:
        fired.append("flagged_specialist")
    if facts.sla_overridden:
        fired.append("sla_override")
    if facts.rule_required:
        fired.append("rule_required")
    if facts.prior_of_type < policy.first_n:
        fired.append("first_n")
    if (
        facts.passes_since_critical is not None
        and facts.passes_since_critical < policy.consecutive_passes
    ):
        fired.append("probation")
    return fired


def _risk_reason(rule: str, facts: SamplingFacts, policy: EffectivePolicy) -> str:
    if rule == "full_review" and facts.kpo:
        return "100 % review (KPO task type)"
    return _RISK_REASONS[rule].format(
        n=policy.first_n, m=policy.consecutive_passes, p=facts.passes_since_critical
    )


def decide(facts: SamplingFacts, policy: EffectivePolicy) -> Decision:
    """The sampling decision for one submitted task (pure; see the module docstring)."""
    if facts.rework_count > 0:
        return Decision("rework", True, f"reworked file (rework {facts.rework_count}) returns "
                        "to QA")
    lot_mode = policy.lot is not None and (facts.in_lot or policy.lot.daily)
    if lot_mode and facts.lot_stopped:
        return Decision("lot_stopped", True, "lot sampling discontinued for this client and "
                        "task type (Z1.4 §8.4): 100 % review")
    fired = risk_rules(facts, policy)
    if fired:
        reason = "; ".join(_risk_reason(rule, facts, policy) for rule in fired)
        return Decision(fired[0], True, reason[:200], risk_rules=tuple(fired))
    if lot_mode:
        assert policy.lot is not None
        plan = f"Z1.4 AQL {policy.lot.aql:g}, level {policy.lot.level}"
        if facts.in_lot:
            return Decision("lot", False, f"waiting for lot inspection ({plan})", held=True)
        return Decision("daily_lot", False, f"waiting for the day's lot inspection ({plan})",
                        held=True)
    sampled, why = stratified_decision(
        facts.task_id, policy.rate, facts.stratum, facts.stratum_seen, facts.stratum_sampled
    )
    percent = f"{policy.rate * 100:g} %"
    if not sampled:
        note = " (stratum ahead of its share)" if why == "surplus" else ""
        return Decision("fixed_rate", False, f"not sampled at {percent}{note}", rate=policy.rate)
    note = " (stratum behind its share)" if why == "deficit" else ""
    return Decision("fixed_rate", True, f"sampled at {percent}{note}", rate=policy.rate)


# --- facts from the database ----------------------------------------------------------------


def fixed_rate_stratum(client_id: int, task_type_id: int, specialist_id: int | None) -> str:
    """The stratification key: client x task type x specialist."""
    return f"c{client_id}:t{task_type_id}:s{specialist_id or 0}"


def stratum_counters(stratum: str) -> tuple[int, int]:
    """(fixed-rate decisions, of them sampled) so far in ``stratum``."""
    seen, sampled = db.session.execute(
        select(func.count(), func.coalesce(func.sum(case((QaSamplingDecision.review, 1),
                                                         else_=0)), 0))
        .where(QaSamplingDecision.stratum == stratum, QaSamplingDecision.rule == "fixed_rate")
    ).one()
    return int(seen), int(sampled)


def prior_tasks_of_type(specialist_id: int, task_type_id: int, task_id: int) -> int:
    """Tasks of this type the specialist submitted before (the first-N rule)."""
    return db.session.scalar(
        select(func.count()).select_from(Task).where(
            Task.assignee_id == specialist_id,
            Task.task_type_id == task_type_id,
            Task.submitted_at.is_not(None),
            Task.id != task_id,
        )
    ) or 0


def passes_since_critical(specialist_id: int, task_type_id: int, needed: int) -> int | None:
    """Passes in a row since the specialist's last critical failure of this task type, while
    that is still fewer than ``needed``; None when there is no probation to serve.

    Production reviews only (calibration excluded). Once ``needed`` consecutive passes have
    followed the critical failure the probation is over, and a later minor failure does not
    restart it; a minor failure *during* probation restarts the count.
    """
    if needed <= 0:
        return None
    production = and_(
        QaReview.maker_id == specialist_id,
        QaReview.calibration_id.is_(None),
        QaReview.completed_at.is_not(None),
        Task.task_type_id == task_type_id,
    )
    last_critical = db.session.scalar(
        select(func.max(QaReview.completed_at))
        .join(Task, Task.id == QaReview.task_id)
        .where(production, QaReview.critical_failure.is_(True))
    )
    if last_critical is None:
        return None
    verdicts = db.session.scalars(
        select(QaReview.passed)
        .join(Task, Task.id == QaReview.task_id)
        .where(production, QaReview.completed_at > last_critical)
        .order_by(QaReview.completed_at, QaReview.id)
        .limit(_PROBATION_SCAN)
    )
    run = 0
    for passed in verdicts:
        run = run + 1 if passed else 0
        if run >= needed:
            return None
    return run


def _task_has_action(task_id: int, actions: tuple[str, ...]) -> bool:
    return db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(
            AuditEvent.object_type == "task",
            AuditEvent.object_id == task_id,
            AuditEvent.action.in_(actions),
        )
    ) > 0


def sla_overridden(task_id: int) -> bool:
    return _task_has_action(task_id, SLA_RELAXING_ACTIONS)


def lot_stopped(client_id: int, task_type_id: int) -> bool:
    return bool(db.session.scalar(
        select(SamplingStratum.stopped).where(
            SamplingStratum.client_id == client_id,
            SamplingStratum.task_type_id == task_type_id,
        )
    ))


def gather_facts(task: Task, specialist_id: int | None, policy: EffectivePolicy) -> SamplingFacts:
    """Everything :func:`decide` needs about ``task``, read with indexed queries."""
    client = task.client or db.session.get(Client, task.client_id)
    task_type = task.task_type or db.session.get(TaskType, task.task_type_id)
    profile = db.session.get(StaffProfile, specialist_id) if specialist_id else None
    stratum = fixed_rate_stratum(task.client_id, task.task_type_id, specialist_id)
    seen, sampled = stratum_counters(stratum)
    return SamplingFacts(
        task_id=task.id,
        stratum=stratum,
        kpo=task_type.tier == Tier.KPO,
        rework_count=task.rework_count or 0,
        heightened_client=bool(client.heightened_review),
        flagged_specialist=bool(profile is not None and profile.flagged_for_review),
        sla_overridden=sla_overridden(task.id),
        rule_required=_task_has_action(task.id, RULE_REQUIRED_ACTIONS),
        prior_of_type=(
            prior_tasks_of_type(specialist_id, task.task_type_id, task.id) if specialist_id else 0
        ),
        passes_since_critical=(
            passes_since_critical(specialist_id, task.task_type_id, policy.consecutive_passes)
            if specialist_id else None
        ),
        in_lot=task.lot_id is not None,
        lot_stopped=policy.lot is not None and lot_stopped(task.client_id, task.task_type_id),
        stratum_seen=seen,
        stratum_sampled=sampled,
    )
