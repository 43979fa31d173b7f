"""Completed-work packages: the specialist attaches the output, the client downloads it from
the portal, and the task.completed webhook carries a signed, expiring link."""

from __future__ import annotations

import io
import time
from urllib.parse import urlsplit

from flask import render_template_string
from itsdangerous import TimestampSigner
from sqlalchemy import func, select

from provider_app.extensions import db
from provider_app.integrations import packages, webhooks
from provider_app.lifecycle import transition
from provider_app.models import AuditEvent, Document
from provider_app.vocab import Role, Status
from tests.factories import gen_specialist, gen_task, gen_user
from tests.integrations.integrations_support import PDF, run_jobs

COI_VALUES = {"insured_name": "Acme", "holder_name": "City", "holder_address": "1 Main St",
              "policy_numbers": "GL-100200", "lines": ["GL"]}


def working(world, task_type=None, person=None):
    person = person or gen_specialist(clients=[world.a])
    task = gen_task(world.a, task_type or world.coi, status=Status.IN_PROGRESS, assignee=person,
                    fields=dict(COI_VALUES), external_ref="AMS-1")
    db.session.commit()
    return task, person


def upload(client, task, data=PDF, name="certificate.pdf", next_path="/work"):
    return client.post(f"/integrations/tasks/{task.public_id}/output", data={
        "file": (io.BytesIO(data), name), "next": next_path},
        content_type="multipart/form-data")


def test_the_assignee_attaches_the_output(world, client):
    task, person = working(world)
    client.login(person)
    response = upload(client, task)
    assert response.status_code == 302 and response.headers["Location"].endswith("/work")
    [document] = packages.outputs(task)
    assert document.kind == "output" and document.filename == "certificate.pdf"
    assert not packages.output_missing(task)


def test_only_the_assignee_or_a_lead_while_it_is_worked(world, client):
    task, _person = working(world)
    other = gen_specialist(clients=[world.a])
    db.session.commit()
    client.login(other)
    refused = upload(client, task)
    assert refused.status_code == 422 and b"Only the specialist working the task" in refused.data
    client.login(world.lead)
    assert upload(client, task).status_code == 302
    done = gen_task(world.a, world.coi, status=Status.COMPLETED)
    db.session.commit()
    assert upload(client, done).status_code == 422


def test_types_without_output_and_bad_files_are_refused(world, client):
    task, person = working(world, world.data)
    client.login(person)
    refused = upload(client, task)
    assert refused.status_code == 422 and b"do not produce a document" in refused.data
    coi, person = working(world)
    client.login(person)
    bad = upload(client, coi, data=b"MZ\x90\x00", name="certificate.pdf")
    assert bad.status_code == 422 and b"mislabelled" in bad.data
    assert packages.output_missing(coi)


def test_another_clients_task_is_404_and_clients_cannot_upload(world, client):
    foreign = gen_task(world.b, world.coi, status=Status.IN_PROGRESS)
    person = gen_specialist(clients=[world.a])
    db.session.commit()
    client.login(person)
    assert upload(client, foreign).status_code == 404
    client.login(world.user_a)
    task, _ = working(world)
    assert upload(client, task).status_code == 403


def test_unsafe_next_paths_fall_back_home(world, client):
    task, person = working(world)
    client.login(person)
    response = upload(client, task, next_path="//evil.example/x")
    assert response.headers["Location"] in ("/", "http://localhost/")


def test_the_partial_renders_the_form_for_output_types(world, app):
    task, _ = working(world)
    data_task, _ = working(world, world.data)
    with app.test_request_context("/work/x"):
        html = render_template_string('{% include "integrations/_output_upload.html" %}',
                                      task=task)
        assert f"/integrations/tasks/{task.public_id}/output" in html
        assert 'name="csrf_token"' in html and 'value="/work/x"' in html
        assert render_template_string('{% include "integrations/_output_upload.html" %}',
                                      task=data_task).strip() == ""


def test_the_completed_webhook_carries_a_signed_link_that_downloads(world, client, receiver,
                                                                     redis_conn):
    endpoint, _secret = webhooks.create_endpoint(world.a, receiver.url, ["task.completed"],
                                                 actor=world.admin_a)
    task, person = working(world)
    client.login(person)
    upload(client, task)
    transition(task, Status.SUBMITTED)
    transition(task, Status.COMPLETED)
    db.session.commit()
    run_jobs()
    [request] = receiver.requests
    [document] = request.json["data"]["documents"]
    assert document["filename"] == "certificate.pdf" and document["expires_at"]
    link = urlsplit(document["download_url"])
    anonymous = client.application.test_client()
    response = anonymous.get(link.path)
    assert response.status_code == 200 and response.data == PDF
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "package.link_download", AuditEvent.object_id == task.id)) == 1
    assert anonymous.get(link.path[:-3] + "xyz").status_code == 404
    # The client also gets it from the portal, like any document of the task.
    client.login(world.user_a)
    stored = db.session.scalar(select(Document).where(Document.kind == "output"))
    assert client.get(f"/portal/documents/{stored.public_id}").data == PDF


def test_links_expire(world, client, monkeypatch):
    task, person = working(world)
    client.login(person)
    upload(client, task)
    [document] = packages.outputs(task)
    week_ago = int(time.time()) - 8 * 86400
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: week_ago)
    with client.application.test_request_context():
        url = packages.signed_link(document)["download_url"]
    monkeypatch.undo()
    response = client.application.test_client().get(urlsplit(url).path)
    assert response.status_code == 410 and b"expired" in response.data


def test_a_link_only_opens_output_documents(world, client):
    task, person = working(world)
    intake_doc = Document(client_id=world.a.id, task_id=task.id, kind="intake", filename="x.pdf",
                          content_type="application/pdf", size=1, sha256="0" * 64,
                          storage_name="a" * 32)
    db.session.add(intake_doc)
    db.session.commit()
    with client.application.test_request_context():
        url = packages.signed_link(intake_doc)["download_url"]
    assert client.application.test_client().get(urlsplit(url).path).status_code == 404


def test_client_roles_cannot_reach_the_upload(world, client):
    task, _ = working(world)
    client.login(gen_user(Role.CLIENT_ADMIN, world.a))
    assert upload(client, task).status_code == 403
