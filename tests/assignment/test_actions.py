"""Lead actions and absences: eligibility checked, soft rules overridable with a reason only."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from provider_app.assignment import actions
from provider_app.assignment.actions import AssignmentRefused, VersionConflict
from provider_app.extensions import db as _db
from provider_app.models import AuditEvent, Task
from provider_app.vocab import Availability, Role, Status
from tests.factories import gen_client, gen_specialist, gen_task, gen_task_type, gen_user


@pytest.fixture
def lead(db):
    return gen_user(Role.TEAM_LEAD)


def _events(task: Task, action: str) -> list[AuditEvent]:
    return _db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_id == task.id, AuditEvent.action == action)).all()


def test_assign_an_eligible_person(db, lead):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist()
    task = gen_task(c, tt)
    assert actions.assign(task, person.id, lead, version=task.version) == []
    assert (task.status, task.assignee_id) == (Status.ASSIGNED, person.id)
    [event] = [e for e in _events(task, "task.transition") if e.to_status == "assigned"]
    assert event.actor_id == lead.id


def test_refusal_lists_the_reasons(db, lead):
    c, tt = gen_client(), gen_task_type(skills={"coi": 3})
    person = gen_specialist(skills={"coi": 1}, availability=Availability.AWAY)
    task = gen_task(c, tt)
    with pytest.raises(AssignmentRefused) as refused:
        actions.assign(task, person.id, lead)
    assert {r.code for r in refused.value.reasons} == {"skill", "availability"}
    assert task.status == Status.QUEUED


def test_override_needs_a_reason_and_is_audited(db, lead):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist(capacity=1)
    gen_task(c, tt, status=Status.IN_PROGRESS, assignee=person)
    task = gen_task(c, tt)
    with pytest.raises(AssignmentRefused, match="override"):
        actions.assign(task, person.id, lead)
    with pytest.raises(AssignmentRefused, match="needs a reason"):
        actions.assign(task, person.id, lead, override=True, reason="  ")
    overridden = actions.assign(task, person.id, lead, override=True,
                                reason="client asked for them by name")
    assert [r.code for r in overridden] == ["capacity"]
    [event] = _events(task, "assignment.override")
    assert (event.actor_id, event.reason) == (lead.id, "client asked for them by name")
    assert event.before == {"rules": ["capacity"]}


@pytest.mark.parametrize("rule", ["tier", "licence"])
def test_hard_rules_cannot_be_overridden(db, lead, rule):
    c = gen_client()
    tt = (gen_task_type(tier="KPO") if rule == "tier"
          else gen_task_type(licence_line="P&C"))
    person = gen_specialist(
        "general" if rule == "tier" else "insurance_trained",
        licences=[("NY", "P&C", date.today() - timedelta(days=1))])
    task = gen_task(c, tt, state="NY")
    with pytest.raises(AssignmentRefused, match="cannot be overridden") as refused:
        actions.assign(task, person.id, lead, override=True, reason="please")
    assert rule in {r.code for r in refused.value.reasons}
    assert task.status == Status.QUEUED and _events(task, "assignment.override") == []


def test_expired_licence_refused_at_assignment(db, lead):
    c, tt = gen_client(), gen_task_type(licence_line="P&C")
    expired = gen_specialist(licences=[("NY", "P&C", date.today() - timedelta(days=1))])
    valid = gen_specialist(licences=[("NY", "P&C", date.today())])
    task = gen_task(c, tt, state="NY")
    with pytest.raises(AssignmentRefused) as refused:
        actions.assign(task, expired.id, lead)
    assert [r.code for r in refused.value.reasons] == ["licence"]
    actions.assign(task, valid.id, lead)
    assert task.assignee_id == valid.id


def test_stale_version_is_a_conflict(db, lead):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist()
    task = gen_task(c, tt)
    with pytest.raises(VersionConflict, match="Someone else changed this task"):
        actions.assign(task, person.id, lead, version=task.version - 1)
    assert task.status == Status.QUEUED


def test_bulk_assign_respects_capacity(db, lead):
    c = gen_client()
    light, heavy = gen_task_type(), gen_task_type(weight=2)
    person = gen_specialist(capacity=4)
    gen_task(c, light, status=Status.IN_PROGRESS, assignee=person)
    tasks = [gen_task(c, heavy, priority="urgent"), gen_task(c, light), gen_task(c, light),
             gen_task(c, heavy)]
    result = actions.bulk_assign(tasks, person.id, lead)
    assert [t.id for t in result.assigned] == [tasks[0].id, tasks[1].id]
    assert {t.id for t, _ in result.refused} == {tasks[2].id, tasks[3].id}
    assert all(r.reasons[0].code == "capacity" for _, r in result.refused)
    held = _db.session.scalars(select(Task).where(Task.assignee_id == person.id)).all()
    assert sum(t.task_type.weight for t in held) == 4


def test_bulk_assign_never_gives_kpo_to_general_staff(db, lead):
    c = gen_client()
    tasks = [gen_task(c, gen_task_type(tier="KPO")), gen_task(c, gen_task_type())]
    person = gen_specialist("general", capacity=10)
    result = actions.bulk_assign(tasks, person.id, lead, override=True, reason="rush")
    assert [t.id for t in result.assigned] == [tasks[1].id]
    [(task, refused)] = result.refused
    assert task.id == tasks[0].id and refused.reasons[0].code == "tier"


def test_bulk_assign_skips_tasks_no_longer_queued(db, lead):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist()
    taken = gen_task(c, tt, status=Status.ASSIGNED, assignee=gen_specialist())
    result = actions.bulk_assign([taken], person.id, lead)
    assert result.assigned == [] and "No longer queued" in str(result.refused[0][1])


def test_reassign_needs_a_reason_keeps_status_and_is_audited(db, lead):
    c, tt = gen_client(), gen_task_type()
    first, second = gen_specialist(), gen_specialist()
    task = gen_task(c, tt, status=Status.IN_PROGRESS, assignee=first)
    with pytest.raises(AssignmentRefused, match="reason"):
        actions.reassign(task, second.id, lead, reason="")
    actions.reassign(task, second.id, lead, reason="first is overloaded")
    assert (task.status, task.assignee_id) == (Status.IN_PROGRESS, second.id)
    [event] = _events(task, "task.reassigned")
    assert event.before == {"assignee_id": first.id} and event.after == {"assignee_id": second.id}
    with pytest.raises(AssignmentRefused, match="already holds"):
        actions.reassign(task, second.id, lead, reason="again")


def test_reassign_checks_the_new_person(db, lead):
    c, kpo = gen_client(), gen_task_type(tier="KPO")
    task = gen_task(c, kpo, status=Status.ASSIGNED,
                    assignee=gen_specialist("insurance_trained"))
    with pytest.raises(AssignmentRefused) as refused:
        actions.reassign(task, gen_specialist("general").id, lead, reason="x", override=True)
    assert refused.value.reasons[0].code == "tier"


def test_unassign_returns_to_the_queue(db, lead):
    c, tt = gen_client(), gen_task_type()
    task = gen_task(c, tt, status=Status.IN_PROGRESS, assignee=gen_specialist())
    actions.unassign(task, lead, reason="wrong pod")
    assert (task.status, task.assignee_id) == (Status.QUEUED, None)
    waiting = gen_task(c, tt, status=Status.PENDING_CLIENT, assignee=gen_specialist())
    with pytest.raises(AssignmentRefused):
        actions.unassign(waiting, lead)


def test_absence_returns_unstarted_work_and_flags_started_work(db, lead):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist()
    not_started = gen_task(c, tt, status=Status.ASSIGNED, assignee=person)
    started = gen_task(c, tt, status=Status.IN_PROGRESS, assignee=person)
    waiting = gen_task(c, tt, status=Status.PENDING_CLIENT, assignee=person)
    result = actions.set_availability(person.id, Availability.ON_LEAVE, lead, reason="sick")
    assert [t.id for t in result.returned] == [not_started.id]
    assert {t.id for t in result.flagged} == {started.id, waiting.id}
    assert (not_started.status, not_started.assignee_id) == (Status.QUEUED, None)
    assert started.assignee_id == person.id and started.status == Status.IN_PROGRESS
    assert [e.reason for e in _events(not_started, "task.transition")][-1] == (
        "assignee is on leave")
    assert len(_events(started, "task.flagged")) == 1
    change = _db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "staff.availability", AuditEvent.object_id == person.id)).one()
    assert change.after == {"availability": "on_leave"} and change.reason == "sick"


def test_coming_back_changes_no_tasks(db, lead):
    person = gen_specialist(availability=Availability.AWAY)
    result = actions.set_availability(person.id, Availability.AVAILABLE, lead)
    assert result.returned == [] and result.flagged == []
    assert person.staff_profile.availability == Availability.AVAILABLE
