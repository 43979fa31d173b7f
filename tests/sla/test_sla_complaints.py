"""A client raises a complaint on its task and sees only its client-facing status."""

import pytest
from flask import render_template_string
from flask_login import login_user
from sqlalchemy import select

from provider_app.models import Message
from provider_app.vocab import EscalationReason, Role
from sla.escalations import acknowledge, add_note, raise_complaint, resolve
from sla.models import Escalation, Notification
from tests.factories import gen_client, gen_task, gen_task_type, gen_user


@pytest.fixture
def world(db):
    tt = gen_task_type()
    a, b = gen_client(), gen_client()
    world = {"task": gen_task(a, tt, external_ref="MINE"),
             "foreign": gen_task(b, tt, external_ref="THEIRS"),
             "user": gen_user(Role.CLIENT_USER, a), "other": gen_user(Role.CLIENT_USER, b),
             "lead": gen_user(Role.TEAM_LEAD)}
    db.session.commit()
    return world


def complaints(db, task):
    return db.session.scalars(select(Escalation).where(
        Escalation.task_id == task.id,
        Escalation.reason == EscalationReason.CLIENT_COMPLAINT)).all()


def url(task):
    return f"/portal/tasks/{task.public_id}/complaints"


def test_a_complaint_opens_an_escalation_and_tells_the_leads(client, world, db):
    client.login(world["user"])
    response = client.post(url(world["task"]), data={"detail": "Wrong holder address"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/portal/tasks/{world['task'].public_id}")
    [escalation] = complaints(db, world["task"])
    assert escalation.detail == "Wrong holder address"
    assert escalation.opened_by_id == world["user"].id and escalation.level == 1
    assert db.session.scalar(select(Notification.user_id).where(
        Notification.escalation_id == escalation.id)) == world["lead"].id


def test_a_second_complaint_while_one_is_open_joins_the_conversation(client, world, db):
    client.login(world["user"])
    client.post(url(world["task"]), data={"detail": "First"})
    response = client.post(url(world["task"]), data={"detail": "Still wrong"})
    assert response.status_code == 302
    assert len(complaints(db, world["task"])) == 1
    message = db.session.scalar(select(Message).where(Message.task_id == world["task"].id,
                                                      Message.body == "Still wrong"))
    assert message is not None and not message.internal


def test_an_empty_complaint_is_refused_with_a_message(client, world, db):
    client.login(world["user"])
    response = client.post(url(world["task"]), data={"detail": "   "})
    assert response.status_code == 422
    assert "Tell us what went wrong" in response.get_data(as_text=True)
    assert complaints(db, world["task"]) == []


def test_another_clients_task_is_404(client, world, db):
    client.login(world["user"])
    assert client.post(url(world["foreign"]), data={"detail": "x"}).status_code == 404
    assert client.get(url(world["foreign"])).status_code == 404
    assert complaints(db, world["foreign"]) == []


def test_provider_staff_cannot_complain(client, world):
    client.login(world["lead"])
    assert client.post(url(world["task"]), data={"detail": "x"}).status_code == 403


def test_complaints_need_csrf(client, world):
    client.login(world["user"])
    assert client.post(url(world["task"]), data={"detail": "x"}, no_csrf=True).status_code == 400


def test_the_client_sees_status_and_resolution_but_no_internal_notes(client, world, db):
    client.login(world["user"])
    client.post(url(world["task"]), data={"detail": "Wrong"})
    [escalation] = complaints(db, world["task"])
    assert "Received" in client.get(url(world["task"])).get_data(as_text=True)
    acknowledge(escalation, world["lead"])
    add_note(escalation, "INTERNAL: specialist was careless", world["lead"])
    db.session.commit()
    assert "Being handled" in client.get(url(world["task"])).get_data(as_text=True)
    resolve(escalation, "Certificate reissued with the right address", world["lead"])
    db.session.commit()
    body = client.get(url(world["task"])).get_data(as_text=True)
    assert "Resolved" in body and "Certificate reissued" in body
    assert "INTERNAL" not in body and world["lead"].email not in body


def test_partial_for_the_portal_task_page(app, world, db):
    """The include the portal's task page uses: the user's complaints and the form."""
    with app.test_request_context():
        login_user(world["user"])
        raise_complaint(world["task"], "Late again", world["user"])
        html = render_template_string('{% include "sla/_task_escalations.html" %}',
                                      task=world["task"])
    assert "Received" in html and "Raise a complaint" in html
    assert f'action="/portal/tasks/{world["task"].public_id}/complaints"' in html
    assert 'name="csrf_token"' in html


def test_partial_never_lists_another_clients_complaint(app, world, db):
    raise_complaint(world["task"], "Late again", world["user"])
    with app.test_request_context():
        login_user(world["other"])
        html = render_template_string('{% include "sla/_task_escalations.html" %}',
                                      task=world["task"])
    assert "<table>" not in html  # none of theirs; the scoped query hides the rest
