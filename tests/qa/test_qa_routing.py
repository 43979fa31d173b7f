"""route_submitted against the database: every rule, stored decisions, stratification."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from provider_app.audit import record
from provider_app.extensions import db as _db
from provider_app.lifecycle import transition
from provider_app.models import AuditEvent, Contract, StaffProfile
from provider_app.vocab import Status
from qa.models import QaSamplingDecision
from qa.policy import fixed_rate_stratum, stratified_decision
from qa.routing import route_submitted
from tests.factories import gen_specialist, gen_task_type


def decisions(task):
    return _db.session.scalars(
        select(QaSamplingDecision).where(QaSamplingDecision.task_id == task.id)
        .order_by(QaSamplingDecision.id)
    ).all()


def test_not_sampled_goes_straight_to_completed_with_its_reason(world):
    world.set_policy(rate=0.0)
    task = world.submitted()
    assert task.status == Status.COMPLETED
    assert task.qa_outcome == "not_sampled"
    assert task.qa_reason == "not sampled at 0 %"
    [decision] = decisions(task)
    assert (decision.rule, decision.review, decision.stratum_seen) == ("fixed_rate", False, 0)
    event = _db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "qa.sampling_decision", AuditEvent.object_id == task.id))
    assert event.after["rule"] == "fixed_rate" and event.reason == task.qa_reason


def test_only_a_submitted_task_is_routed(world):
    task = world.worked()
    with pytest.raises(ValueError, match="only a submitted task"):
        route_submitted(task)


def test_first_n_tasks_of_a_type_are_reviewed(world):
    world.set_policy(rate=0.0, first_n=2)
    first, second, third = (world.submitted() for _ in range(3))
    assert [first.status, second.status, third.status] == [
        Status.IN_QA, Status.IN_QA, Status.COMPLETED]
    assert decisions(first)[0].rule == "first_n"
    assert "first 2 tasks" in first.qa_reason


def test_after_a_critical_failure_until_m_consecutive_passes(world):
    world.set_policy(rate=1.0)
    failed = world.submitted()
    world.review(failed, passed=False, critical=True)
    world.set_policy(rate=0.0, consecutive_passes=2)
    on_probation = []
    for _ in range(3):
        task = world.submitted()
        on_probation.append(task.status == Status.IN_QA)
        if task.status == Status.IN_QA:
            assert decisions(task)[0].rule == "probation"
            world.review(task, passed=True)
    assert on_probation == [True, True, False]
    # Probation served: a later minor failure does not put the specialist back on it.
    world.set_policy(rate=1.0, consecutive_passes=2)
    world.review(world.submitted(), passed=False)
    world.set_policy(rate=0.0, consecutive_passes=2)
    assert world.submitted().status == Status.COMPLETED


def test_a_minor_fail_during_probation_restarts_the_count(world):
    world.set_policy(rate=1.0)
    world.review(world.submitted(), passed=False, critical=True)
    world.set_policy(rate=0.0, consecutive_passes=2)
    world.review(world.submitted(), passed=True)
    world.review(world.submitted(), passed=False)
    world.review(world.submitted(), passed=True)
    assert world.submitted().status == Status.IN_QA  # only one pass since the last failure


def test_kpo_task_type_at_100_percent(world):
    kpo = gen_task_type(tier="KPO")
    kpo.current_sop().sampling_policy = {"rate": 1.0}
    world.task_type = kpo
    task = world.submitted()
    assert task.status == Status.IN_QA
    assert task.qa_reason == "100 % review (KPO task type)"


def test_client_on_heightened_review(world):
    world.set_policy(rate=0.0)
    world.client.heightened_review = True
    task = world.submitted()
    assert (task.status, decisions(task)[0].rule) == (Status.IN_QA, "heightened_client")


@pytest.mark.parametrize("action", ["sla.override", "assignment.override", "assignment.relaxed"])
def test_task_whose_sla_was_relaxed_or_overridden(world, action):
    world.set_policy(rate=0.0)
    task = world.worked()
    record(action, object_type="task", object_id=task.id, client_id=task.client_id,
           reason="lead pushed the due time")
    world.submit(task)
    assert (task.status, decisions(task)[0].rule) == (Status.IN_QA, "sla_override")


def test_task_an_automation_rule_marked_for_review(world):
    world.set_policy(rate=0.0)
    task = world.worked()
    record("qa.required", object_type="task", object_id=task.id, client_id=task.client_id,
           reason="intake rule")
    world.submit(task)
    assert (task.status, decisions(task)[0].rule) == (Status.IN_QA, "rule_required")


def test_specialist_flagged_by_the_lead(world):
    world.set_policy(rate=0.0)
    _db.session.get(StaffProfile, world.specialist.id).flagged_for_review = True
    task = world.submitted()
    assert (task.status, decisions(task)[0].rule) == (Status.IN_QA, "flagged_specialist")


def test_contract_override_tightens_the_rate(world):
    world.set_policy(rate=0.0)
    contract = _db.session.scalar(select(Contract).where(Contract.client_id == world.client.id))
    contract.sampling_override = {"rate": 1.0}
    task = world.submitted()
    assert task.status == Status.IN_QA and decisions(task)[0].rule == "full_review"


def test_a_broken_policy_sends_work_to_review(world):
    world.set_policy(rate="lots")
    task = world.submitted()
    assert task.status == Status.IN_QA
    assert decisions(task)[0].rule == "policy_error"
    assert "sampling_policy.rate" in task.qa_reason


def test_a_reworked_file_always_returns_to_qa(world):
    world.set_policy(rate=1.0)
    task = world.submitted()
    world.review(task, passed=False)
    assert task.status == Status.REWORK and task.rework_count == 1
    world.set_policy(rate=0.0)
    transition(task, Status.IN_PROGRESS, actor=world.specialist)
    world.submit(task)
    assert task.status == Status.IN_QA
    assert [d.rule for d in decisions(task)] == ["full_review", "rework"]


def test_every_specialist_gets_a_share_of_fixed_rate_sampling(world):
    world.set_policy(rate=0.25)
    specialists = [gen_specialist() for _ in range(3)]
    for specialist in specialists:
        tasks = [world.submitted(specialist) for _ in range(4)]
        assert sum(t.status == Status.IN_QA for t in tasks) >= 1
    strata = dict(_db.session.execute(
        select(QaSamplingDecision.stratum, func.count()).group_by(QaSamplingDecision.stratum)
    ).all())
    assert strata == {
        fixed_rate_stratum(world.client.id, world.task_type.id, p.id): 4 for p in specialists
    }


def test_a_stored_fixed_rate_decision_can_be_recomputed(world):
    """Auditors re-derive each decision from the task id, stratum and stored counters."""
    world.set_policy(rate=0.3)
    for _ in range(12):
        task = world.submitted()
        [decision] = decisions(task)
        again, _ = stratified_decision(task.id, 0.3, decision.stratum, decision.stratum_seen,
                                       decision.stratum_sampled)
        assert again == decision.review == (task.status == Status.IN_QA)
