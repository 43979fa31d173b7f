"""The intake triage queue: a lead turns an e-mail into a task (through the intake service),
rejects it or marks it a duplicate; scoped to the clients the lead may see."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from provider_app.extensions import db
from provider_app.integrations.models import InboundEmail
from provider_app.models import StaffClient, StaffProfile, Task
from provider_app.vocab import Role, Status
from tests.factories import gen_task, gen_user
from tests.integrations.integrations_support import COI_BODY, PDF, email


@pytest.fixture
def waiting(world, smtp, redis_conn):
    """Two e-mails in triage: one for client A (with an attachment), one for client B."""
    from provider_app.integrations import configuration

    configuration.add_sender(world.b, "@agency-a.test", world.lead)
    db.session.commit()
    smtp.send(email(world.address_a, "Please issue a COI", COI_BODY,
                    attachments=[("schedule.pdf", "application/pdf", PDF)]))
    smtp.send(email(f"{world.b.code.lower()}@intake.localhost", "For B", "B's secret text"))
    db.session.expire_all()
    a_item = db.session.scalar(select(InboundEmail).where(InboundEmail.client_id == world.a.id))
    b_item = db.session.scalar(select(InboundEmail).where(InboundEmail.client_id == world.b.id))
    return a_item, b_item


@pytest.fixture
def lead_a(world):
    lead = gen_user(Role.TEAM_LEAD)
    lead.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
    lead.staff_profile.client_links = [StaffClient(client_id=world.a.id)]
    db.session.commit()
    return lead


def test_the_queue_shows_only_the_leads_clients(world, waiting, client, lead_a):
    client.login(lead_a)
    body = client.get("/intake/triage").get_data(as_text=True)
    assert "Please issue a COI" in body and "For B" not in body
    assert "Intake triage (1)" in body  # the navigation count
    a_item, b_item = waiting
    assert client.get(f"/intake/triage/{a_item.public_id}").status_code == 200
    for path in ("", "/raw"):
        assert client.get(f"/intake/triage/{b_item.public_id}{path}").status_code == 404
    for path in ("/reject", "/duplicate", ""):
        response = client.post(f"/intake/triage/{b_item.public_id}{path}", data={"note": "x"})
        assert response.status_code == 404
    assert client.get("/intake/triage?status=bogus").status_code == 400


@pytest.mark.parametrize("role", [Role.SPECIALIST, Role.QA_REVIEWER, Role.CLIENT_USER])
def test_only_leads_and_admins_triage(world, client, role):
    client.login(gen_user(role, world.a if role == Role.CLIENT_USER else None))
    assert client.get("/intake/triage").status_code == 403


def test_the_lead_creates_the_task_with_values_read_from_the_email(world, waiting, client,
                                                                   redis_conn):
    a_item, _ = waiting
    client.login(world.lead)
    page = client.get(f"/intake/triage/{a_item.public_id}?type=COI").get_data(as_text=True)
    assert 'value="Acme Widgets LLC"' in page and "schedule.pdf" in page
    form = {"priority": "high", "external_ref": "AMS-7781", "insured_name": "Acme Widgets LLC",
            "holder_name": "City of Springfield", "holder_address": "1 Main St",
            "policy_numbers": "GL-100200", "lines": ["GL"]}
    missing = client.post(f"/intake/triage/{a_item.public_id}?type=COI",
                          data={**form, "holder_name": ""})
    assert missing.status_code == 422 and b"This field is required." in missing.data
    created = client.post(f"/intake/triage/{a_item.public_id}?type=COI", data=form)
    assert created.status_code == 302
    db.session.expire_all()
    assert a_item.status == "created" and a_item.decided_by_id == world.lead.id
    task = db.session.get(Task, a_item.task_id)
    assert task.source == "email" and task.priority == "high" and task.status == Status.QUEUED
    assert sorted(d.filename for d in task.documents) == ["message.eml", "schedule.pdf"]
    again = client.post(f"/intake/triage/{a_item.public_id}?type=COI", data=form)
    assert again.status_code == 302  # already dealt with: refused, nothing created
    assert db.session.scalar(select(Task.id).where(Task.external_ref == "AMS-7781")) == task.id


def test_reject_and_duplicate_need_a_reason_and_are_final(world, waiting, client):
    a_item, _ = waiting
    client.login(world.lead)
    client.post(f"/intake/triage/{a_item.public_id}/reject", data={"note": ""})
    db.session.expire_all()
    assert a_item.status == "triage"
    client.post(f"/intake/triage/{a_item.public_id}/reject", data={"note": "spam"})
    db.session.expire_all()
    assert a_item.status == "rejected" and a_item.decision_note == "spam"
    gen_task(world.a, world.coi, external_ref="AMS-1")
    db.session.commit()
    after = client.post(f"/intake/triage/{a_item.public_id}/duplicate", data={"task": "AMS-1"},
                        follow_redirects=True)
    assert b"already been dealt with" in after.data
    db.session.expire_all()
    assert a_item.status == "rejected"


def test_mark_as_duplicate_of_an_existing_task(world, waiting, client):
    a_item, _ = waiting
    original = gen_task(world.a, world.coi, external_ref="AMS-1")
    foreign = gen_task(world.b, world.coi, external_ref="AMS-B")
    db.session.commit()
    client.login(world.lead)
    client.post(f"/intake/triage/{a_item.public_id}/duplicate", data={"task": "AMS-B"})
    db.session.expire_all()
    assert a_item.status == "triage"  # another client's task is not found
    client.post(f"/intake/triage/{a_item.public_id}/duplicate", data={"task": "AMS-1"})
    db.session.expire_all()
    assert a_item.status == "duplicate" and a_item.task_id == original.id
    assert foreign.id != original.id


def test_the_raw_message_downloads_as_an_attachment(world, waiting, client):
    a_item, _ = waiting
    client.login(world.lead)
    response = client.get(f"/intake/triage/{a_item.public_id}/raw")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert b"Subject: Please issue a COI" in response.data


def test_the_queue_does_not_grow_queries_with_items(world, client, count_queries):
    def add(n: int) -> None:
        for i in range(n):
            db.session.add(InboundEmail(client_id=world.a.id, message_id=f"m{i}-{n}",
                                        sender="x@agency-a.test", recipient=world.address_a,
                                        subject=f"S{i}", proposed_task_type_id=world.coi.id,
                                        problems=["why"]))
        db.session.commit()

    client.login(world.lead)
    add(1)
    with count_queries() as few:
        client.get("/intake/triage")
    add(10)
    with count_queries() as many:
        body = client.get("/intake/triage").get_data(as_text=True)
    assert body.count("<tr>") == 12 and many.count == few.count
