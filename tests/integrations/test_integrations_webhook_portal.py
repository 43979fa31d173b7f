"""The client admin's webhook pages: register, edit, disable, rotate, test, the delivery log,
redelivery; scoped to the admin's client and closed to everyone else."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from provider_app.extensions import db
from provider_app.integrations import webhooks
from provider_app.integrations.models import WebhookDelivery, WebhookEndpoint
from provider_app.vocab import Role, Status
from tests.factories import gen_task, gen_user
from tests.integrations.integrations_support import run_jobs


def register(client, url, events=("task.completed",)):
    return client.post("/portal/webhooks/", data={"url": url, "description": "AMS",
                                                  "events": list(events)})


def test_an_admin_registers_an_endpoint_and_sees_the_secret_once(world, client, receiver):
    client.login(world.admin_a)
    assert b"No endpoints yet" in client.get("/portal/webhooks/").data
    response = register(client, receiver.url, ["task.completed", "task.created"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    endpoint = db.session.scalar(select(WebhookEndpoint).where(
        WebhookEndpoint.client_id == world.a.id))
    secret = webhooks.secret_of(endpoint)
    assert secret.encode() in response.data
    assert endpoint.events == ["task.created", "task.completed"]
    later = client.get("/portal/webhooks/")
    assert secret.encode() not in later.data and receiver.url.encode() in later.data


def test_bad_input_gets_field_messages(world, client, settings):
    settings(WEBHOOK_ALLOW_LOOPBACK=False)
    client.login(world.admin_a)
    response = register(client, "http://127.0.0.1:8000/hook", events=())
    assert response.status_code == 422
    assert b"private, loopback or reserved" in response.data
    assert b"Choose at least one event" in response.data
    assert db.session.scalar(select(WebhookEndpoint.id)) is None


@pytest.mark.parametrize("role", [Role.CLIENT_USER, Role.TEAM_LEAD, Role.ADMIN, Role.SPECIALIST])
def test_only_client_admins(world, client, role):
    client.login(gen_user(role, world.a if role == Role.CLIENT_USER else None))
    assert client.get("/portal/webhooks/").status_code == 403


def test_another_clients_endpoint_and_deliveries_are_404(world, client, receiver, redis_conn):
    theirs, _ = webhooks.create_endpoint(world.b, receiver.url, ["task.completed"],
                                         actor=world.admin_b)
    db.session.commit()
    gen_task(world.b, world.coi, status=Status.COMPLETED)
    db.session.commit()
    delivery = db.session.scalar(select(WebhookDelivery))
    client.login(world.admin_a)
    assert world.b.code.encode() not in client.get("/portal/webhooks/").data
    for method, path in [("get", f"/portal/webhooks/{theirs.public_id}"),
                         ("post", f"/portal/webhooks/{theirs.public_id}"),
                         ("post", f"/portal/webhooks/{theirs.public_id}/enable"),
                         ("post", f"/portal/webhooks/{theirs.public_id}/rotate"),
                         ("post", f"/portal/webhooks/{theirs.public_id}/test"),
                         ("get", f"/portal/webhooks/deliveries/{delivery.public_id}"),
                         ("post", f"/portal/webhooks/deliveries/{delivery.public_id}/redeliver")]:
        assert getattr(client, method)(path).status_code == 404, path
    db.session.expire_all()
    assert theirs.enabled and delivery.status == "pending"


def test_edit_disable_rotate_and_test_an_endpoint(world, client, receiver, redis_conn):
    endpoint, secret = webhooks.create_endpoint(world.a, receiver.url, ["task.completed"],
                                                actor=world.admin_a)
    db.session.commit()
    client.login(world.admin_a)
    page = f"/portal/webhooks/{endpoint.public_id}"
    assert client.get(page).status_code == 200
    saved = client.post(page, data={"url": receiver.url + "?v=2", "events": ["task.created"]})
    assert saved.status_code == 302
    bad = client.post(page, data={"url": "gopher://x", "events": ["task.created"]})
    assert bad.status_code == 422 and b"Use an http" in bad.data
    rotated = client.post(f"{page}/rotate")
    db.session.expire_all()
    new_secret = webhooks.secret_of(endpoint)
    assert new_secret != secret and new_secret.encode() in rotated.data
    client.post(f"{page}/test")
    run_jobs()
    [request] = receiver.requests
    assert request.headers["X-Throughline-Event"] == "webhook.test"
    assert request.path.endswith("?v=2")
    client.post(f"{page}/enable")  # toggles: now disabled
    db.session.expire_all()
    assert endpoint.enabled is False
    assert b"Enable the endpoint" in client.post(f"{page}/test", follow_redirects=True).data


def test_the_log_shows_attempts_and_redelivers(world, client, receiver, settings, redis_conn):
    settings(WEBHOOK_MAX_ATTEMPTS=1)
    receiver.script = [500]
    endpoint, _ = webhooks.create_endpoint(world.a, receiver.url, ["task.completed"],
                                           actor=world.admin_a)
    db.session.commit()
    gen_task(world.a, world.coi, status=Status.COMPLETED, external_ref="AMS-3")
    db.session.commit()
    run_jobs()
    delivery = db.session.scalar(select(WebhookDelivery))
    client.login(world.admin_a)
    listing = client.get(f"/portal/webhooks/{endpoint.public_id}?status=failed")
    assert delivery.public_id.encode() in listing.data
    assert client.get(f"/portal/webhooks/{endpoint.public_id}?status=nope").status_code == 400
    detail = client.get(f"/portal/webhooks/deliveries/{delivery.public_id}")
    assert b"HTTP 500" in detail.data and b"AMS-3" in detail.data
    assert client.post(f"/portal/webhooks/deliveries/{delivery.public_id}/redeliver"
                       ).status_code == 302
    run_jobs()
    db.session.expire_all()
    assert delivery.status == "succeeded" and len(receiver.requests) == 2
    assert b"manual" in client.get(f"/portal/webhooks/deliveries/{delivery.public_id}").data


def test_the_log_does_not_grow_queries_with_deliveries(world, client, receiver, count_queries):
    endpoint, _ = webhooks.create_endpoint(world.a, receiver.url, ["task.completed"],
                                           actor=world.admin_a)
    db.session.commit()
    client.login(world.admin_a)

    def add(n: int) -> None:
        for i in range(n):
            db.session.add(WebhookDelivery(endpoint_id=endpoint.id, client_id=world.a.id,
                                           event="task.completed", dedupe_key=f"k{n}-{i}",
                                           payload={}, status="succeeded"))
        db.session.commit()

    add(1)
    with count_queries() as few:
        client.get(f"/portal/webhooks/{endpoint.public_id}")
        client.get("/portal/webhooks/")
    add(10)
    with count_queries() as many:
        client.get(f"/portal/webhooks/{endpoint.public_id}")
        client.get("/portal/webhooks/")
    assert many.count == few.count
