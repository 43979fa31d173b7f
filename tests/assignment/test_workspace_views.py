"""The specialist's side: My work, Get next, and the task workspace, through HTTP."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from provider_app.extensions import db as _db
from provider_app.models import AuditEvent, Message, StaffLicence, Task
from provider_app.vocab import Availability, EscalationReason, MessageKind, Role, Status
from sla.models import Escalation
from tests.factories import gen_client, gen_specialist, gen_task, gen_task_type, gen_user


def settle() -> None:
    """Commit the test's data (into the test's outer transaction, still rolled back at the
    end): a refused request rolls back only what came after the last commit."""
    _db.session.commit()


def fresh(task: Task) -> Task:
    _db.session.expire(task)
    return task


@pytest.fixture
def me(client, db):
    person = gen_specialist(skills={"coi": 3})
    client.login(person)
    return person


@pytest.fixture
def my_task(db, me):
    """An assigned task with a two-step SOP (step 2 optional) and a P&C licence need."""
    tt = gen_task_type(steps=["Check the policy", "Add a courtesy note"], licence_line="P&C",
                       fields=[{"name": "policy_number", "label": "Policy number",
                                "type": "text", "required": True}])
    tt.sops[0].steps[1].required = False
    me.staff_profile.licences.append(StaffLicence(state="NY", line="P&C",
                                                  expires_on=date.today() + timedelta(days=30)))
    task = gen_task(gen_client(), tt, status=Status.ASSIGNED, assignee=me, state="NY",
                    fields={"policy_number": "PL-123456"}, external_ref="MY-REF")
    settle()
    return task


def _url(task: Task, action: str = "") -> str:
    return f"/work/tasks/{task.public_id}" + (f"/{action}" if action else "")


def test_my_work_lists_my_tasks_by_due_time(client, me, my_task):
    other = gen_task(my_task.client, my_task.task_type, status=Status.ASSIGNED,
                     assignee=gen_specialist(), external_ref="NOT-MINE")
    assert other.external_ref
    body = client.get("/work").get_data(as_text=True)
    assert "MY-REF" in body and "NOT-MINE" not in body and "Get next" in body


def test_get_next_claims_and_opens_the_task(client, me, db):
    task = gen_task(gen_client(), gen_task_type(skills={"coi": 2}), external_ref="NEXT-1")
    response = client.post("/work/next")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(_url(task))
    assert fresh(task).assignee_id == me.id and task.status == Status.ASSIGNED
    response = client.post("/work/next", follow_redirects=True)
    assert b"Nothing in the queue fits your skills" in response.data


def test_get_next_explains_when_i_cannot_claim(client, me):
    me.staff_profile.availability = Availability.AWAY
    gen_task(gen_client(), gen_task_type())
    response = client.post("/work/next", follow_redirects=True)
    assert b"is marked away" in response.data


def test_workspace_shows_intake_documents_and_checklist(client, me, my_task):
    body = client.get(_url(my_task)).get_data(as_text=True)
    assert "Policy number" in body and "PL-123456" in body
    assert "Check the policy" in body and "Add a courtesy note" in body
    assert "No documents attached." in body and "Start work" in body


def test_only_the_holder_sees_the_workspace(client, my_task):
    client.login(gen_specialist())
    settle()
    for action in ("", "start", "steps", "notes", "request-info", "exception", "submit"):
        method = client.get if not action else client.post
        response = method(_url(my_task, action), **({"data": {"version": 1}} if action else {}))
        assert response.status_code == 404, action
    client.login(gen_user(Role.TEAM_LEAD))
    assert client.get(_url(my_task)).status_code == 403


def test_work_through_the_sop_and_submit(client, me, my_task):
    step1, step2 = my_task.sop.steps
    assert client.post(_url(my_task, "start"), data={"version": my_task.version}).status_code == 303
    assert fresh(my_task).status == Status.IN_PROGRESS
    response = client.post(_url(my_task, "submit"), data={"version": my_task.version})
    assert response.status_code == 422
    assert b"Tick the required SOP steps first: 1. Check the policy" in response.data
    response = client.post(_url(my_task, "steps"), data={
        "step": step1.id, "done": "y", "version": fresh(my_task).version})
    assert response.status_code == 303
    assert str(step1.id) in fresh(my_task).checklist
    ticked = _db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_id == my_task.id, AuditEvent.action == "task.checklist")).one()
    assert ticked.actor_id == me.id and ticked.after == {"step_id": step1.id, "done": True}
    response = client.post(_url(my_task, "submit"), data={"version": fresh(my_task).version})
    assert response.status_code == 303  # the optional step 2 does not block
    assert fresh(my_task).status in (Status.IN_QA, Status.COMPLETED, Status.SUBMITTED)
    assert my_task.submitted_at is not None


def test_submit_rechecks_the_licence(client, me, my_task):
    client.post(_url(my_task, "start"), data={"version": my_task.version})
    client.post(_url(my_task, "steps"), data={"step": my_task.sop.steps[0].id, "done": "y",
                                              "version": fresh(my_task).version})
    me.staff_profile.licences[0].expires_on = date.today() - timedelta(days=1)
    settle()
    response = client.post(_url(my_task, "submit"), data={"version": fresh(my_task).version})
    assert response.status_code == 422
    assert b"Cannot submit: Needs a valid P&amp;C licence for NY" in response.data
    assert fresh(my_task).status == Status.IN_PROGRESS


def test_stale_version_conflicts_and_overwrites_nothing(client, me, my_task):
    client.post(_url(my_task, "start"), data={"version": my_task.version})
    seen = fresh(my_task).version
    step = my_task.sop.steps[0]
    assert client.post(_url(my_task, "steps"), data={
        "step": step.id, "done": "y", "version": seen}).status_code == 303
    response = client.post(_url(my_task, "steps"), data={"step": step.id, "version": seen})
    assert response.status_code == 409
    assert b"Someone else changed this task" in response.data
    assert str(step.id) in fresh(my_task).checklist  # the untick was not applied


def test_notes_and_information_requests(client, me, my_task):
    client.post(_url(my_task, "start"), data={"version": my_task.version})
    assert client.post(_url(my_task, "notes"), data={"body": "checked the dec page"}
                       ).status_code == 303
    note = _db.session.scalars(select(Message).where(Message.task_id == my_task.id)).one()
    assert note.kind == MessageKind.NOTE and note.internal
    response = client.post(_url(my_task, "request-info"), data={
        "body": "Which vehicle?", "version": fresh(my_task).version})
    assert response.status_code == 303
    assert fresh(my_task).status == Status.PENDING_CLIENT
    assert my_task.sla_paused_since is not None  # the clock is paused
    response = client.post(_url(my_task, "notes"), data={"body": ""})
    assert response.status_code == 422 and b"Write the note first." in response.data


def test_raise_an_exception_opens_an_escalation(client, me, my_task):
    response = client.post(_url(my_task, "exception"), data={
        "detail": "Client sent the wrong policy", "version": my_task.version})
    assert response.status_code == 303
    escalation = _db.session.scalars(select(Escalation).where(
        Escalation.task_id == my_task.id)).one()
    assert escalation.reason == EscalationReason.SPECIALIST_EXCEPTION
    assert escalation.detail == "Client sent the wrong policy"
    response = client.post(_url(my_task, "exception"), data={
        "detail": "", "version": fresh(my_task).version})
    assert response.status_code == 422 and b"Say what the exception is." in response.data


def test_ticking_before_starting_is_refused(client, me, my_task):
    response = client.post(_url(my_task, "steps"), data={
        "step": my_task.sop.steps[0].id, "done": "y", "version": my_task.version})
    assert response.status_code == 422
    assert b"Start work on the task before ticking its SOP steps." in response.data


def test_my_availability(client, me, my_task):
    assert client.post("/work/availability", data={"availability": "away"}).status_code == 303
    assert fresh(my_task).status == Status.QUEUED  # not started: back to the queue
    _db.session.expire(me.staff_profile)
    assert me.staff_profile.availability == Availability.AWAY


def test_my_work_query_count_is_flat(client, me, count_queries):
    tt, c = gen_task_type(), gen_client()
    gen_task(c, tt, status=Status.ASSIGNED, assignee=me)
    _db.session.expire_all()
    with count_queries() as few:
        assert client.get("/work").status_code == 200
    for _ in range(10):
        gen_task(gen_client(), gen_task_type(), status=Status.IN_PROGRESS, assignee=me)
    _db.session.expire_all()
    with count_queries() as many:
        assert client.get("/work").status_code == 200
    assert many.count == few.count


def test_document_producing_work_needs_its_output_before_submit(client, me, my_task, app):
    """COI-like task types deliver a document: submit waits for it (docs/INTEGRATIONS.md)."""
    my_task.task_type.code = "COI"
    assert "COI" in app.config["OUTPUT_TASK_TYPES"]
    settle()
    client.post(_url(my_task, "start"), data={"version": my_task.version})
    client.post(_url(my_task, "steps"), data={"step": my_task.sop.steps[0].id, "done": "y",
                                              "version": fresh(my_task).version})
    page = client.get(_url(my_task)).get_data(as_text=True)
    assert "Completed document" in page
    response = client.post(_url(my_task, "submit"), data={"version": fresh(my_task).version})
    assert response.status_code == 422
    assert b"Attach the completed document" in response.data
    assert fresh(my_task).status == Status.IN_PROGRESS
