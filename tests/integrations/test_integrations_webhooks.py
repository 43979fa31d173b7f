"""Outbound webhooks against a real HTTP receiver on loopback: signing, retries, the log,
auto-disable, events from the audit trail, and the SSRF guard."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, insert, select, update

from provider_app.conversation import request_info
from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.intake import service
from provider_app.intake.schemas import TaskInput
from provider_app.integrations import delivery as deliveries
from provider_app.integrations import emit, ssrf, webhooks
from provider_app.integrations.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from provider_app.jobs import get_queue
from provider_app.lifecycle import transition
from provider_app.models import AuditEvent
from provider_app.vocab import EscalationReason, Role, Status
from sla.escalations import open_escalation
from sla.models import Notification, OutboxEmail
from sla.sweep import sweep
from tests.factories import gen_task, gen_user
from tests.integrations.integrations_support import run_jobs

COI_VALUES = {"insured_name": "Acme Widgets LLC", "holder_name": "City of Springfield",
              "holder_address": "1 Main St", "policy_numbers": "GL-100200, AU-300400",
              "lines": ["GL"]}


def endpoint_for(world, receiver, events=("task.completed",)) -> tuple[WebhookEndpoint, str]:
    endpoint, secret = webhooks.create_endpoint(world.a, receiver.url, list(events),
                                                actor=world.admin_a)
    db.session.commit()
    return endpoint, secret


def all_deliveries(endpoint) -> list[WebhookDelivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint.id).order_by(WebhookDelivery.id)))


def make_due(delivery: WebhookDelivery) -> None:
    """Time travel: the back-off has passed."""
    db.session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id)
                       .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def completed_coi(world, **kw):
    task = gen_task(world.a, world.coi, status=Status.COMPLETED, fields=dict(COI_VALUES),
                    external_ref=kw.pop("external_ref", "AMS-1"), **kw)
    db.session.commit()
    return task


def test_a_completed_task_is_posted_signed_with_the_clients_identifiers(world, receiver,
                                                                        redis_conn):
    endpoint, secret = endpoint_for(world, receiver)
    task = completed_coi(world, external_ref="AMS-7781")
    [delivery] = all_deliveries(endpoint)
    assert delivery.status == "pending" and delivery.event == "task.completed"
    run_jobs()

    [request] = receiver.requests
    headers = request.headers
    assert headers["X-Throughline-Event"] == "task.completed"
    assert headers["X-Throughline-Delivery"] == delivery.public_id
    assert webhooks.verify(secret, headers["X-Throughline-Timestamp"], request.body,
                           headers["X-Throughline-Signature"], now=time.time())
    assert not webhooks.verify(secret, headers["X-Throughline-Timestamp"], request.body + b" ",
                               headers["X-Throughline-Signature"], now=time.time())
    body = request.json
    assert body["id"] == delivery.public_id and body["client"] == world.a.code
    data = body["data"]["task"]
    assert data["id"] == task.public_id and data["external_ref"] == "AMS-7781"
    assert data["policy_number"] == "GL-100200"
    assert data["policy_numbers"] == ["GL-100200", "AU-300400"]
    assert data["insured_name"] == "Acme Widgets LLC" and data["status"] == "completed"
    [delivery] = all_deliveries(endpoint)
    assert delivery.status == "succeeded" and delivery.attempts == 1
    [attempt] = delivery.attempt_log
    assert attempt.status_code == 200 and attempt.duration_ms > 0 and not attempt.manual


def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(world, receiver,
                                                                      redis_conn):
    receiver.script = [500, 503]
    endpoint, secret = endpoint_for(world, receiver)
    completed_coi(world)
    run_jobs()
    [delivery] = all_deliveries(endpoint)
    assert delivery.status == "retrying" and delivery.attempts == 1
    first_wait = delivery.next_attempt_at - delivery.last_attempt_at
    assert first_wait == timedelta(seconds=30)
    # RQ's scheduler holds the next attempt (``rq worker --with-scheduler`` runs it).
    assert f"webhook-{delivery.public_id}-2" in ScheduledJobRegistry(
        queue=get_queue("default")).get_job_ids()

    make_due(delivery)
    assert deliveries.retry_due() == 1  # the periodic safety net finds it
    db.session.commit()
    run_jobs()
    [delivery] = all_deliveries(endpoint)
    assert delivery.status == "retrying" and delivery.attempts == 2
    assert delivery.next_attempt_at - delivery.last_attempt_at == timedelta(seconds=120)
    assert db.session.get(WebhookEndpoint, endpoint.id).consecutive_failures == 2

    make_due(delivery)
    deliveries.retry_due()
    db.session.commit()
    run_jobs()
    [delivery] = all_deliveries(endpoint)
    assert delivery.status == "succeeded"
    assert [a.status_code for a in delivery.attempt_log] == [500, 503, 200]
    assert [a.error for a in delivery.attempt_log] == ["HTTP 500", "HTTP 503", None]
    assert {r.headers["X-Throughline-Delivery"] for r in receiver.requests} == {
        delivery.public_id}
    for request in receiver.requests:
        assert webhooks.verify(secret, request.headers["X-Throughline-Timestamp"], request.body,
                               request.headers["X-Throughline-Signature"], now=time.time())
    assert db.session.get(WebhookEndpoint, endpoint.id).consecutive_failures == 0


def test_backoff_grows_fourfold(app):
    with app.app_context():
        assert [deliveries.backoff(n).total_seconds() for n in range(1, 6)] == [
            30, 120, 480, 1920, 7680]


def test_a_delivery_gives_up_after_the_last_attempt(world, receiver, settings, redis_conn):
    settings(WEBHOOK_MAX_ATTEMPTS=2)
    receiver.script = [500, 500]
    endpoint, _ = endpoint_for(world, receiver)
    completed_coi(world)
    run_jobs()
    [delivery] = all_deliveries(endpoint)
    make_due(delivery)
    deliveries.retry_due()
    db.session.commit()
    run_jobs()
    [delivery] = all_deliveries(endpoint)
    assert delivery.status == "failed" and delivery.attempts == 2
    assert delivery.next_attempt_at is None


def test_repeated_failures_disable_the_endpoint_and_tell_the_admins(world, receiver, settings,
                                                                    redis_conn):
    settings(WEBHOOK_DISABLE_AFTER=3, WEBHOOK_MAX_ATTEMPTS=2)
    receiver.script = [500] * 10
    endpoint, _ = endpoint_for(world, receiver)
    completed_coi(world, external_ref="ONE")
    completed_coi(world, external_ref="TWO")
    completed_coi(world, external_ref="THREE")
    run_jobs()  # three first attempts fail: three failures in a row
    db.session.expire_all()
    endpoint = db.session.get(WebhookEndpoint, endpoint.id)
    assert not endpoint.enabled and "3 failed attempts" in endpoint.disabled_reason
    assert [d.status for d in all_deliveries(endpoint)] == ["cancelled"] * 3
    assert len(receiver.requests) == 3
    notice = db.session.scalar(select(Notification).where(
        Notification.user_id == world.admin_a.id))
    assert endpoint.url in notice.text and notice.link.endswith(endpoint.public_id)
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail).where(
        OutboxEmail.to_address == world.admin_a.email)) == 1
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "webhook.endpoint_disabled",
        AuditEvent.object_id == endpoint.id)) == 1
    # Nothing more is written for a disabled endpoint, and nothing is sent.
    completed_coi(world, external_ref="FOUR")
    assert len(all_deliveries(endpoint)) == 3
    deliveries.retry_due()
    db.session.commit()
    run_jobs()
    assert len(receiver.requests) == 3


def test_manual_redelivery_after_the_receiver_is_fixed(world, receiver, settings, redis_conn):
    settings(WEBHOOK_MAX_ATTEMPTS=1)
    receiver.script = [500]
    endpoint, _ = endpoint_for(world, receiver)
    completed_coi(world)
    run_jobs()
    [delivery] = all_deliveries(endpoint)
    assert delivery.status == "failed"
    deliveries.redeliver(delivery, actor=world.admin_a)
    db.session.commit()
    run_jobs()
    [delivery] = all_deliveries(endpoint)
    assert delivery.status == "succeeded"
    assert [(a.status_code, a.manual, a.triggered_by_id) for a in delivery.attempt_log] == [
        (500, False, None), (200, True, world.admin_a.id)]


def test_each_event_comes_from_the_audit_trail(world, receiver, redis_conn):
    endpoint, _ = endpoint_for(world, receiver, events=list(webhooks.EVENTS))
    task = service.create_task(world.a, TaskInput(world.coi, "normal", "REF-9", None,
                                                  dict(COI_VALUES)),
                               actor=world.user_a, source="api")
    db.session.commit()
    specialist = gen_user(Role.SPECIALIST)
    task.assignee_id = specialist.id
    for status in (Status.ASSIGNED, Status.IN_PROGRESS):
        transition(task, status)
    request_info(task, "Which holder?", specialist)
    db.session.commit()
    in_qa = gen_task(world.a, world.coi, status=Status.IN_QA, external_ref="QA-1")
    transition(in_qa, Status.REWORK, reason="QA fail: score 40%")
    open_escalation(in_qa, EscalationReason.QA_CRITICAL_FAIL, detail="internal detail")
    db.session.commit()
    found = [(d.event, d.payload.get("task", {}).get("external_ref"))
             for d in all_deliveries(endpoint)]
    assert found == [("task.created", "REF-9"), ("task.info_requested", "REF-9"),
                     ("task.created", "QA-1"), ("task.qa_failed", "QA-1"),
                     ("escalation.opened", "QA-1")]
    by_event = {d.event: d.payload for d in all_deliveries(endpoint)}
    assert by_event["task.info_requested"]["question"] == "Which holder?"
    assert by_event["escalation.opened"]["escalation"]["reason"] == "qa_critical_fail"
    assert "internal detail" not in str(by_event["escalation.opened"])
    run_jobs()
    assert sorted(r.headers["X-Throughline-Event"] for r in receiver.requests) == sorted(
        e for e, _ in found)


def test_events_written_with_set_based_sql_are_caught_up(world, receiver, redis_conn):
    endpoint, _ = endpoint_for(world, receiver, events=["escalation.opened", "task.created"])
    late = gen_task(world.a, world.data, status=Status.ASSIGNED,
                    received_at=utcnow() - timedelta(days=20))
    db.session.execute(insert(AuditEvent), [{
        "at": utcnow(), "client_id": world.a.id, "object_type": "task", "object_id": late.id,
        "action": "task.transition", "from_status": "received", "to_status": "queued"}])
    db.session.commit()
    before = {d.event for d in all_deliveries(endpoint)}
    assert "escalation.opened" not in before
    result = sweep(utcnow())  # INSERT ... SELECT: the commit hook cannot see these rows
    assert result.opened == 1
    db.session.commit()
    assert emit.catch_up() == 2
    db.session.commit()
    events = sorted(d.event for d in all_deliveries(endpoint))
    assert events.count("escalation.opened") == 1
    assert emit.catch_up() == 0  # never twice
    payload = next(d.payload for d in all_deliveries(endpoint) if d.event == "escalation.opened")
    assert payload["escalation"]["reason"] == "sla_breached"
    assert payload["task"]["id"] == late.public_id


def test_events_before_an_endpoint_existed_are_not_sent(world, receiver, redis_conn):
    completed_coi(world)
    endpoint, _ = endpoint_for(world, receiver, events=["task.completed", "task.created"])
    assert emit.catch_up() == 0
    assert all_deliveries(endpoint) == []


def test_other_clients_events_never_reach_an_endpoint(world, receiver, redis_conn):
    endpoint, _ = endpoint_for(world, receiver, events=list(webhooks.EVENTS))
    gen_task(world.b, world.coi, status=Status.COMPLETED, fields=dict(COI_VALUES))
    db.session.commit()
    emit.catch_up()
    assert all_deliveries(endpoint) == []


@pytest.mark.parametrize("url", [
    "ftp://example.com/hook", "http://10.0.0.5/hook", "http://169.254.169.254/latest",
    "http://[::1]:8080/", "http://user:pw@example.com/", "https://192.168.1.20/x",
    "http://100.64.0.1/", "not a url",
])
def test_private_and_odd_targets_are_refused(world, settings, url):
    settings(WEBHOOK_ALLOW_LOOPBACK=False)
    with pytest.raises(webhooks.WebhookError) as refused:
        webhooks.create_endpoint(world.a, url, ["task.completed"], actor=world.admin_a)
    assert "url" in refused.value.errors


def test_loopback_only_with_the_setting(world, receiver, settings):
    settings(WEBHOOK_ALLOW_LOOPBACK=False)
    with pytest.raises(webhooks.WebhookError):
        webhooks.create_endpoint(world.a, receiver.url, ["task.completed"], actor=world.admin_a)
    with pytest.raises(webhooks.WebhookError):
        webhooks.create_endpoint(world.a, "http://localhost:9/x", ["task.completed"],
                                 actor=world.admin_a)
    assert ssrf.address_allowed("::ffff:127.0.0.1", allow_loopback=False) is False
    assert ssrf.address_allowed("8.8.8.8", allow_loopback=False) is True


def test_the_guard_applies_at_send_time_too(world, receiver, settings, redis_conn):
    endpoint, _ = endpoint_for(world, receiver)
    settings(WEBHOOK_ALLOW_LOOPBACK=False)  # e.g. DNS now points somewhere private
    completed_coi(world)
    run_jobs()
    [delivery] = all_deliveries(endpoint)
    assert receiver.requests == []
    [attempt] = db.session.scalars(select(WebhookAttempt).where(
        WebhookAttempt.delivery_id == delivery.id)).all()
    assert attempt.error.startswith("refused:") and attempt.status_code is None


def test_redirects_are_not_followed(world, receiver, redis_conn):
    receiver.script = [302]
    endpoint, _ = endpoint_for(world, receiver)
    completed_coi(world)
    run_jobs()
    [delivery] = all_deliveries(endpoint)
    assert delivery.status == "retrying"
    assert "redirects are not followed" in delivery.attempt_log[0].error


def test_secrets_are_stored_encrypted(world, receiver):
    endpoint, secret = endpoint_for(world, receiver)
    assert secret.startswith("whsec_") and secret not in endpoint.secret_encrypted
    assert webhooks.secret_of(endpoint) == secret
    assert endpoint.secret_prefix == secret[:10]
    rotated = webhooks.rotate_secret(endpoint, actor=world.admin_a)
    assert rotated != secret and webhooks.secret_of(endpoint) == rotated


def test_signature_verification_rejects_old_timestamps():
    body = b'{"a":1}'
    signature = webhooks.sign("whsec_x", 1_700_000_000, body)
    assert webhooks.verify("whsec_x", "1700000000", body, signature, now=1_700_000_100)
    assert not webhooks.verify("whsec_x", "1700000000", body, signature, now=1_700_001_000)
    assert not webhooks.verify("whsec_y", "1700000000", body, signature, now=1_700_000_100)
    assert not webhooks.verify("whsec_x", "nope", body, signature, now=1_700_000_100)
