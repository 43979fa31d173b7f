"""Lot sampling with Z1.4 plans; the switching rules persisted per stratum."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import SimpleWorker
from sqlalchemy import func, select

from provider_app.db_types import utcnow
from provider_app.extensions import db as _db
from provider_app.jobs import get_queue
from provider_app.lifecycle import transition
from provider_app.models import Escalation, Lot, Task
from provider_app.vocab import Status
from qa.lots import (
    close_daily_lots,
    draw_sample,
    evaluate_lot,
    get_stratum,
    inspect_lot,
    resume_stratum,
    state_to_json,
    sweep,
)
from qa.models import LotInspection, QaSamplingDecision
from qa.routing import route_submitted
from qa.sampling import SwitchState, z14_plan

# AQL 6.5, level II, lots of 5 (code letter A): normal n=2 Ac 0 Re 1, tightened n=3,
# reduced n=2.
LOT_POLICY = {"rate": 0.0, "lot": {"aql": 6.5, "level": "II"}}


@pytest.fixture
def lot_world(world):
    world.set_policy(**LOT_POLICY)
    return world


def run_lot(world, results: list[bool], size: int = 5) -> LotInspection:
    """A lot whose sample's reviews come out as ``results`` (in sample order)."""
    lot, tasks = world.lot(size)
    for task in tasks:
        world.submit(task)
    inspection = _db.session.get(LotInspection, inspect_lot(lot.id))
    outcomes = iter(results)
    for task_id in inspection.sample_task_ids:
        if inspection.status != "inspecting":
            break
        task = _db.session.get(Task, task_id)
        if task.status == Status.IN_QA:
            world.review(task, passed=next(outcomes))
            evaluate_lot(inspection.id)
    return inspection


def stratum(world):
    return get_stratum(world.client.id, world.task_type.id)


def test_lot_tasks_wait_until_the_lot_is_complete(lot_world):
    lot, tasks = lot_world.lot(5)
    for task in tasks[:4]:
        assert lot_world.submit(task) == Status.SUBMITTED
        assert "waiting for lot inspection" in task.qa_reason
    assert inspect_lot(lot.id) is None  # one task still being worked
    assert route_submitted(tasks[0]) == Status.SUBMITTED  # a re-run changes nothing
    assert _db.session.scalar(select(func.count()).select_from(QaSamplingDecision).where(
        QaSamplingDecision.task_id == tasks[0].id)) == 1
    lot_world.submit(tasks[4])
    inspection = _db.session.get(LotInspection, inspect_lot(lot.id))
    plan = z14_plan(5, 6.5, "II", "normal")
    assert (inspection.sample_size, inspection.accept, inspection.reject, inspection.code_letter) \
        == (plan.sample_size, plan.accept, plan.reject, plan.code_letter) == (2, 0, 1, "A")
    sample = set(inspection.sample_task_ids)
    assert {t.id for t in tasks if t.status == Status.IN_QA} == sample
    assert all(t.status == Status.SUBMITTED for t in tasks if t.id not in sample)


def test_the_sample_is_reproducible(lot_world):
    lot, tasks = lot_world.lot(8)
    for task in tasks:
        lot_world.submit(task)
    inspection_id = inspect_lot(lot.id)
    inspection = _db.session.get(LotInspection, inspection_id)
    ids = sorted(t.id for t in tasks)
    assert inspection.sample_task_ids == draw_sample(lot.public_id, ids, 2)
    assert draw_sample(lot.public_id, ids, 2) == draw_sample(lot.public_id, list(reversed(ids)), 2)
    assert inspect_lot(lot.id) == inspection_id  # re-running the job draws nothing new


def test_an_accepted_lot_releases_its_waiting_tasks(lot_world):
    inspection = run_lot(lot_world, [True, True])
    assert inspection.status == "accepted" and inspection.lot.qa_accepted is True
    tasks = _db.session.scalars(select(Task).where(Task.lot_id == inspection.lot_id)).all()
    assert all(t.status == Status.COMPLETED for t in tasks)
    released = [t for t in tasks if t.id not in inspection.sample_task_ids]
    assert {t.qa_outcome for t in released} == {"lot_accepted"}
    entry = stratum(lot_world).history[-1]
    assert entry["accepted"] is True and entry["to"] == "normal"


def test_a_rejected_lot_sends_every_task_to_review(lot_world):
    inspection = run_lot(lot_world, [False])
    assert inspection.status == "rejected" and inspection.defects == 1
    tasks = _db.session.scalars(select(Task).where(Task.lot_id == inspection.lot_id)).all()
    statuses = sorted(t.status.value for t in tasks)
    assert statuses.count("rework") == 1 and statuses.count("in_qa") == 4
    assert all("100 % review" in t.qa_reason for t in tasks if t.status == Status.IN_QA
               and t.id not in inspection.sample_task_ids)


def test_risk_reviewed_lot_tasks_count_in_the_sample(lot_world):
    lot_world.set_policy(**LOT_POLICY, first_n=100)
    lot, tasks = lot_world.lot(5)
    for task in tasks:
        lot_world.submit(task)
    assert all(t.status == Status.IN_QA for t in tasks)  # first_n: all reviewed anyway
    assert inspect_lot(lot.id) is None  # nothing waits for this lot


def severities(world, lots: list[list[bool]], size: int = 5) -> list[str]:
    """Run lots in sequence; the stratum's severity after each."""
    out = []
    for results in lots:
        run_lot(world, results, size)
        s = stratum(world)
        out.append("stopped" if s.stopped else s.severity)
    return out


def test_normal_to_tightened_after_two_of_five_not_accepted(lot_world):
    ok, bad = [True, True], [False]
    assert severities(lot_world, [ok, bad, ok, ok, ok, ok, bad, ok, bad]) == [
        "normal", "normal", "normal", "normal", "normal", "normal", "normal", "normal",
        "tightened",
    ]
    s = stratum(lot_world)
    assert "§8.3.1" in s.history[-1]["reason"] and s.history[-1]["from"] == "normal"
    assert s.state["severity"] == "tightened"
    # The next lot is inspected on the tightened plan: n = 3.
    assert run_lot(lot_world, [True, True, True]).sample_size == 3


def test_two_rejections_far_apart_stay_on_normal(lot_world):
    ok, bad = [True, True], [False]
    assert severities(lot_world, [bad, ok, ok, ok, ok, bad])[-1] == "normal"


def test_tightened_back_to_normal_after_five_accepted(lot_world):
    s = stratum(lot_world)
    s.state, s.severity = state_to_json(SwitchState(severity="tightened")), "tightened"
    ok = [True, True, True]
    assert severities(lot_world, [ok] * 5) == ["tightened"] * 4 + ["normal"]
    assert "§8.3.2" in stratum(lot_world).history[-1]["reason"]


def test_five_lots_not_accepted_on_tightened_stop_sampling_and_escalate(lot_world):
    s = stratum(lot_world)
    s.state, s.severity = state_to_json(SwitchState(severity="tightened")), "tightened"
    ok, bad = [True, True, True], [False]
    assert severities(lot_world, [bad, ok, bad, bad, ok, bad, bad]) == [
        "tightened"] * 6 + ["stopped"]
    escalation = _db.session.scalar(select(Escalation).where(
        Escalation.client_id == lot_world.client.id, Escalation.reason == "qa_critical_fail"))
    assert escalation is not None and "lot sampling stopped" in escalation.detail
    # While stopped, lot tasks are reviewed at submit.
    lot, tasks = lot_world.lot(3)
    lot_world.submit(tasks[0])
    assert tasks[0].status == Status.IN_QA
    decision = _db.session.scalar(select(QaSamplingDecision).where(
        QaSamplingDecision.task_id == tasks[0].id))
    assert decision.rule == "lot_stopped"
    with pytest.raises(ValueError, match="corrective action"):
        resume_stratum(stratum(lot_world), lot_world.lead, " ")
    resume_stratum(stratum(lot_world), lot_world.lead, "retrained the team")
    s = stratum(lot_world)
    assert (s.stopped, s.severity) == (False, "tightened")
    assert "retrained" in s.history[-1]["reason"]


def test_normal_to_reduced_after_a_switching_score_of_30(lot_world):
    # Ac 0 plans add 2 per accepted lot: 15 lots. Lots of 2 are inspected whole.
    lot_world.set_policy(rate=0.0, lot={"aql": 6.5, "level": "II"})
    result = severities(lot_world, [[True, True]] * 15, size=2)
    assert result == ["normal"] * 14 + ["reduced"]
    assert "switching score 30" in stratum(lot_world).history[-1]["reason"]


def _on_reduced(world):
    s = stratum(world)
    s.state, s.severity = state_to_json(SwitchState(severity="reduced")), "reduced"


def test_reduced_back_to_normal_on_a_rejection(lot_world):
    _on_reduced(lot_world)
    assert severities(lot_world, [[True, True], [False]]) == ["reduced", "normal"]
    assert "§8.3.4 a" in stratum(lot_world).history[-1]["reason"]


def test_reduced_back_to_normal_on_a_result_between_ac_and_re(lot_world):
    # AQL 10, level S-1, lots of 10: reduced n=2, Ac 0, Re 2 - one defect accepts the lot
    # but reinstates normal inspection.
    lot_world.set_policy(rate=0.0, lot={"aql": 10, "level": "S-1"})
    _on_reduced(lot_world)
    inspection = run_lot(lot_world, [False, True], size=10)
    assert (inspection.status, inspection.defects) == ("accepted", 1)
    assert stratum(lot_world).severity == "normal"
    assert "between Ac and Re" in stratum(lot_world).history[-1]["reason"]


def test_reduced_back_to_normal_when_production_is_irregular(lot_world):
    _on_reduced(lot_world)
    first = run_lot(lot_world, [True, True])
    first.decided_at = utcnow() - timedelta(days=30)
    _db.session.flush()
    severities(lot_world, [[True, True]])
    assert stratum(lot_world).severity == "normal"
    assert "irregular" in stratum(lot_world).history[-1]["reason"]


def test_daily_lots_group_a_days_work_per_client_and_type(lot_world):
    lot_world.set_policy(rate=0.0, lot={"aql": 6.5, "level": "II", "daily": True})
    tasks = [lot_world.submitted() for _ in range(4)]
    assert all(t.status == Status.SUBMITTED and t.lot_id is None for t in tasks)
    assert close_daily_lots() == []  # today is not over yet
    [lot_id] = close_daily_lots(utcnow() + timedelta(days=1))
    lot = _db.session.get(Lot, lot_id)
    assert lot.source == "daily" and lot.row_count == 4
    inspection = _db.session.scalar(select(LotInspection).where(LotInspection.lot_id == lot_id))
    assert inspection.sample_size == 2
    assert sum(t.status == Status.IN_QA for t in tasks) == 2


def test_the_sweep_inspects_a_lot_completed_by_a_cancellation(lot_world):
    lot, tasks = lot_world.lot(3)
    for task in tasks[:2]:
        lot_world.submit(task)
    transition(tasks[2], Status.CANCELLED, reason="client withdrew it")
    assert sweep()["inspected"] == 1
    inspection = _db.session.scalar(select(LotInspection).where(LotInspection.lot_id == lot.id))
    assert inspection.lot_size == 2


def test_lot_completion_queues_the_inspection_job(lot_world, redis_conn):
    lot, tasks = lot_world.lot(3)
    for task in tasks:
        lot_world.submit(task)
    queue = get_queue("default")
    assert queue.count == 0
    _db.session.commit()  # the job is enqueued once the submit commits
    assert queue.count == 1
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert _db.session.scalar(select(LotInspection).where(LotInspection.lot_id == lot.id))
