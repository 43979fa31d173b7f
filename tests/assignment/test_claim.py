"""claim_next: the best eligible task, atomically, audited; None when nothing fits."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from provider_app.assignment import claim_next
from provider_app.db_types import utcnow
from provider_app.extensions import db as _db
from provider_app.models import AuditEvent, Task, TaskTypeSkill
from provider_app.vocab import Availability, Role, Status
from tests.factories import gen_client, gen_specialist, gen_task, gen_task_type, gen_user


def _status(task: Task) -> Status:
    _db.session.expire(task)
    return task.status


def test_claims_most_urgent_then_earliest_due(db):
    c = gen_client()
    tt = gen_task_type()
    person = gen_specialist()
    low = gen_task(c, tt, priority="low")
    later = gen_task(c, tt, priority="high")
    sooner = gen_task(c, tt, priority="high")
    later.due_at, sooner.due_at = utcnow() + timedelta(hours=5), utcnow() + timedelta(hours=1)
    urgent = gen_task(c, tt, priority="urgent")
    claimed = [claim_next(person.id) for _ in range(5)]
    assert claimed == [urgent.id, sooner.id, later.id, low.id, None]
    assert _status(urgent) == Status.ASSIGNED and urgent.assignee_id == person.id


def test_claim_is_audited_as_the_lifecycle_transition(db):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist()
    task = gen_task(c, tt)
    version = task.version
    assert claim_next(person.id) == task.id
    event = db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_id == task.id, AuditEvent.action == "task.transition",
        AuditEvent.to_status == "assigned")).one()
    assert (event.from_status, event.actor_id, event.client_id) == ("queued", person.id, c.id)
    assert event.after == {"assignee_id": person.id}
    _db.session.expire(task)
    assert task.version == version + 1  # optimistic locks held by others now fail


def test_kpo_never_goes_to_general_staff(db):
    c = gen_client()
    kpo = gen_task_type(tier="KPO")
    general = gen_specialist("general")
    trained = gen_specialist("insurance_trained")
    task = gen_task(c, kpo, priority="urgent")
    assert claim_next(general.id) is None
    assert claim_next(trained.id) == task.id


def test_insurance_trained_staff_take_kpo_before_routine_bpo(db):
    c = gen_client()
    bpo, kpo = gen_task_type(tier="BPO"), gen_task_type(tier="KPO")
    trained = gen_specialist("insurance_trained")
    routine = gen_task(c, bpo, priority="urgent")
    knowledge = gen_task(c, kpo, priority="low")
    assert claim_next(trained.id) == knowledge.id
    assert claim_next(trained.id) == routine.id  # nothing else left: BPO is fine


def test_preference_looks_no_further_than_the_window(db):
    from provider_app.assignment.claim import PREFERENCE_WINDOW

    c = gen_client()
    bpo, kpo = gen_task_type(tier="BPO"), gen_task_type(tier="KPO")
    trained = gen_specialist("insurance_trained", capacity=50)
    routine = [gen_task(c, bpo, priority="urgent") for _ in range(PREFERENCE_WINDOW)]
    knowledge = gen_task(c, kpo, priority="low")  # eleventh in the queue: out of reach
    assert claim_next(trained.id) == routine[0].id
    assert claim_next(trained.id) == knowledge.id  # now tenth: inside the window


def test_respects_skills_clients_licences_and_capacity(db):
    c1, c2 = gen_client(), gen_client()
    skilled = gen_task_type(skills={"coi": 3})
    licensed = gen_task_type(licence_line="P&C")
    heavy = gen_task_type(weight=3)
    person = gen_specialist(skills={"coi": 2}, capacity=2, clients=[c1],
                            licences=[("NY", "P&C", date.today() - timedelta(days=1))])
    gen_task(c1, skilled, priority="urgent")
    gen_task(c2, gen_task_type(), priority="urgent")
    gen_task(c1, licensed, state="NY", priority="urgent")
    gen_task(c1, heavy, priority="urgent")
    fits = gen_task(c1, gen_task_type(), priority="low")
    assert claim_next(person.id) == fits.id
    assert claim_next(person.id) is None


def test_capacity_counts_work_already_held(db):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist(capacity=2)
    gen_task(c, tt, status=Status.IN_PROGRESS, assignee=person)
    gen_task(c, tt, status=Status.PENDING_CLIENT, assignee=person)
    gen_task(c, tt)
    assert claim_next(person.id) is None


def test_optional_skill_relaxes_after_waiting_and_is_audited(db):
    c = gen_client()
    tt = gen_task_type(skills={"coi": 2})
    tt.skills.append(TaskTypeSkill(skill="coverage", min_level=3, optional=True,
                                   relax_after_minutes=30))
    person = gen_specialist(skills={"coi": 2})
    fresh = gen_task(c, tt, received_at=utcnow() - timedelta(minutes=5))
    waited = gen_task(c, tt, received_at=utcnow() - timedelta(minutes=40))
    assert claim_next(person.id) == waited.id
    assert claim_next(person.id) is None
    assert _status(fresh) == Status.QUEUED
    relaxed = db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_id == waited.id, AuditEvent.action == "assignment.relaxed")).one()
    assert relaxed.actor_id == person.id


def test_none_for_people_who_cannot_claim(db):
    c, tt = gen_client(), gen_task_type()
    gen_task(c, tt)
    away = gen_specialist(availability=Availability.AWAY)
    off_shift = gen_specialist()
    off_shift.staff_profile.shift_days = []
    lead = gen_user(Role.TEAM_LEAD)
    inactive = gen_specialist()
    inactive.active = False
    client_user = gen_user(Role.CLIENT_USER, c)
    db.session.flush()
    for user_id in (away.id, off_shift.id, lead.id, inactive.id, client_user.id, 999_999):
        assert claim_next(user_id) is None


def test_skips_tasks_that_are_not_queued(db):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist()
    gen_task(c, tt, status=Status.RECEIVED)
    gen_task(c, tt, status=Status.ASSIGNED, assignee=gen_specialist())
    gen_task(c, tt, status=Status.CANCELLED)
    assert claim_next(person.id) is None


def test_clears_the_waiting_reason(db):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist()
    task = gen_task(c, tt, waiting_reason="Every eligible specialist is at capacity.")
    claim_next(person.id)
    _db.session.expire(task)
    assert task.waiting_reason is None


def test_claim_query_count_is_constant(db, count_queries):
    c = gen_client()
    types = [gen_task_type(skills={"coi": 1}) for _ in range(5)]
    person = gen_specialist(skills={"coi": 3}, capacity=50)
    for tt in types:
        for _ in range(4):
            gen_task(c, tt)
    with count_queries() as counter:
        assert claim_next(person.id) is not None
    assert counter.count <= 12, counter.count


def test_claim_statement_fits_psycopg_statement_cache():
    """psycopg re-parses statements longer than 4,096 characters on every execution, which
    cost more than the claim itself; keep the claim below that (see database.compact_sql)."""
    from sqlalchemy.dialects import postgresql

    from provider_app.assignment.claim import _statements

    compiled = _statements("postgresql")["claim"].compile(dialect=postgresql.psycopg.dialect())
    assert len(compiled.string) <= 4096
