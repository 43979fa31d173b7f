"""The batch job: optimal, rule-abiding, audited, explains what waits, safe to run twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from provider_app.assignment import batch
from provider_app.assignment.batch import assign_batch_job, run_batch
from provider_app.db_types import utcnow
from provider_app.extensions import db as _db
from provider_app.jobs import run_job
from provider_app.models import AuditEvent, Task, TaskTypeSkill
from provider_app.schedule import PERIODIC
from provider_app.vocab import Availability, Status
from tests.factories import gen_client, gen_specialist, gen_task, gen_task_type


def _fresh(*tasks: Task) -> list[Task]:
    for task in tasks:
        _db.session.expire(task)
    return list(tasks)


def test_assigns_within_eligibility_and_capacity(db):
    c = gen_client()
    bpo = gen_task_type(skills={"coi": 2})
    kpo = gen_task_type(tier="KPO", skills={"coverage": 3})
    general = gen_specialist("general", skills={"coi": 3}, capacity=2)
    trained = gen_specialist("insurance_trained", skills={"coverage": 4}, capacity=1)
    bpo_tasks = [gen_task(c, bpo) for _ in range(3)]
    kpo_tasks = [gen_task(c, kpo) for _ in range(2)]
    result = run_batch()
    assert (result.queued, result.assigned, result.waiting) == (5, 3, 2)
    _fresh(*bpo_tasks, *kpo_tasks)
    assert sorted(t.assignee_id or 0 for t in bpo_tasks) == [0, general.id, general.id]
    assert sorted(t.assignee_id or 0 for t in kpo_tasks) == [0, trained.id]
    assert all(t.assignee_id != general.id for t in kpo_tasks)


def test_kpo_never_goes_to_general_staff(db):
    c = gen_client()
    kpo = gen_task_type(tier="KPO")
    gen_specialist("general", capacity=10)
    tasks = [gen_task(c, kpo, priority="urgent") for _ in range(3)]
    run_batch()
    for task in _fresh(*tasks):
        assert task.status == Status.QUEUED
        assert task.waiting_reason == (
            "KPO work: no insurance-trained specialist is available and on shift.")


def test_each_assignment_is_audited_as_a_transition(db):
    c, tt = gen_client(), gen_task_type()
    gen_specialist()
    task = gen_task(c, tt)
    version = task.version
    run_batch()
    event = db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_id == task.id, AuditEvent.to_status == "assigned")).one()
    assert (event.action, event.from_status, event.reason) == (
        "task.transition", "queued", "automatic assignment")
    [task] = _fresh(task)
    assert task.version == version + 1 and task.waiting_reason is None


def test_urgent_work_is_placed_first_when_capacity_is_short(db):
    c, tt = gen_client(), gen_task_type()
    gen_specialist(capacity=1)
    routine = gen_task(c, tt, priority="low")
    urgent = gen_task(c, tt, priority="urgent")
    run_batch()
    routine, urgent = _fresh(routine, urgent)
    assert urgent.status == Status.ASSIGNED and routine.status == Status.QUEUED
    assert "capacity went to more urgent work" in routine.waiting_reason


def test_prefers_general_staff_for_bpo_and_overflows_only_at_risk(db):
    c, bpo = gen_client(), gen_task_type()
    trained = gen_specialist("insurance_trained", capacity=5)
    general = gen_specialist("general", capacity=1)
    first, second = gen_task(c, bpo), gen_task(c, bpo)
    run_batch()
    first, second = _fresh(first, second)
    assert {first.assignee_id, second.assignee_id} == {general.id, None}
    waiting = first if first.assignee_id is None else second
    assert "BPO work goes to them only when at risk" in waiting.waiting_reason
    waiting.due_at = utcnow() + timedelta(minutes=20)  # now at risk of breaching
    db.session.flush()
    result = run_batch()
    [waiting] = _fresh(waiting)
    assert waiting.assignee_id == trained.id and result.relaxed == 1
    relaxed = db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_id == waiting.id, AuditEvent.action == "assignment.relaxed")).one()
    assert "BPO overflow" in relaxed.reason


def test_optional_skills_relax_after_waiting_and_are_audited(db):
    c = gen_client()
    tt = gen_task_type(skills={"coi": 1})
    tt.skills.append(TaskTypeSkill(skill="coverage", min_level=3, optional=True,
                                   relax_after_minutes=30))
    gen_specialist(skills={"coi": 1}, capacity=5)
    fresh = gen_task(c, tt, received_at=utcnow() - timedelta(minutes=5))
    waited = gen_task(c, tt, received_at=utcnow() - timedelta(minutes=45))
    run_batch()
    fresh, waited = _fresh(fresh, waited)
    assert waited.status == Status.ASSIGNED and fresh.status == Status.QUEUED
    assert "optional skills" in fresh.waiting_reason
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.object_id == waited.id, AuditEvent.action == "assignment.relaxed")) == 1


@pytest.mark.parametrize(("setup", "expected"), [
    ("nobody", "No specialist is available and on shift."),
    ("skills", "No available specialist has the skills (coi ≥ 4)."),
    ("client", "No available specialist with the skills may work for"),
    ("licence", "No available specialist with the skills holds a valid P&C licence for NY."),
    ("capacity", "Every eligible specialist is at capacity."),
])
def test_records_why_a_task_waits(db, setup, expected):
    c = gen_client()
    tt = gen_task_type(skills={"coi": 4}, licence_line="P&C" if setup == "licence" else None)
    other = gen_client()
    if setup != "nobody":
        gen_specialist(skills={"coi": 5 if setup != "skills" else 3},
                       clients=[other] if setup == "client" else None,
                       capacity=0 if setup == "capacity" else 5)
    gen_specialist(availability=Availability.AWAY, skills={"coi": 5})
    task = gen_task(c, tt, state="NY")
    run_batch()
    [task] = _fresh(task)
    assert task.status == Status.QUEUED
    assert task.waiting_reason.startswith(expected)


def test_balances_load_across_equally_good_people(db):
    c, tt = gen_client(), gen_task_type()
    people = [gen_specialist(capacity=10) for _ in range(3)]
    tasks = [gen_task(c, tt) for _ in range(6)]
    run_batch()
    held = [sum(1 for t in _fresh(*tasks) if t.assignee_id == p.id) for p in people]
    assert held == [2, 2, 2]


def test_second_run_changes_nothing_and_respects_new_claims(db):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist(capacity=2)
    tasks = [gen_task(c, tt) for _ in range(3)]
    first = run_batch()
    second = run_batch()
    assert (first.assigned, second.assigned) == (2, 0)
    assert sum(1 for t in _fresh(*tasks) if t.assignee_id == person.id) == 2
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.to_status == "assigned")) == 2


def test_write_back_rechecks_what_changed_since_the_read(db, monkeypatch):
    """A claim between the batch's read and its write must not be overwritten or overfill."""
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist(capacity=1)
    rival = gen_specialist(capacity=1)
    task = gen_task(c, tt)
    original = batch._write_back

    def claim_in_between(queue, staff, *args, **kwargs):
        _db.session.execute(Task.__table__.update().where(Task.__table__.c.id == task.id)
                            .values(status="assigned", assignee_id=rival.id))
        return original(queue, staff, *args, **kwargs)

    monkeypatch.setattr(batch, "_write_back", claim_in_between)
    result = run_batch()
    [task] = _fresh(task)
    assert result.assigned == 0 and task.assignee_id == rival.id
    assert person.id != task.assignee_id


def test_job_runs_under_a_lock_and_asks_for_a_rerun(db, redis_conn):
    c, tt = gen_client(), gen_task_type()
    gen_specialist()
    task = gen_task(c, tt)
    lock = redis_conn.lock(batch.LOCK_KEY, timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert "skipped" in run_job(batch.JOB_PATH)
        assert redis_conn.get(batch.RERUN_KEY) == b"1"
        [task] = _fresh(task)
        assert task.status == Status.QUEUED
    finally:
        lock.release()
    result = assign_batch_job()
    assert result["assigned"] == 1
    assert redis_conn.get(batch.LOCK_KEY) is None


def test_is_scheduled_every_minute():
    [entry] = [p for p in PERIODIC if p.func_path == batch.JOB_PATH]
    assert entry.interval == 60


def test_empty_queue(db):
    assert run_batch().as_dict()["queued"] == 0
