"""Delivering webhooks: one signed POST per attempt, back-off, the log, auto-disable.

``deliver`` is the RQ job (one per delivery, enqueued after the emitting transaction
commits). Like the outbox sender it commits step by step, because a POST cannot be rolled
back: the delivery is first claimed (``sending``, one conditional UPDATE, so two workers
never send it twice), then the attempt is made and logged. A failure schedules the next
attempt after ``WEBHOOK_BACKOFF_SECONDS × 4^(n-1)`` (30 s, 2 min, 8 min, 32 min, ~2 h by
default) with RQ's scheduler; ``retry_due`` (periodic) re-enqueues anything due that
Redis lost, and releases deliveries stuck in ``sending`` by a crashed worker. After
``WEBHOOK_MAX_ATTEMPTS`` the delivery has failed; after ``WEBHOOK_DISABLE_AFTER`` failed
attempts in a row the endpoint is disabled and the client's admins are told.

Each request carries::

    X-Throughline-Event: task.completed
    X-Throughline-Delivery: <delivery id, the same on every retry: use it to de-duplicate>
    X-Throughline-Timestamp: <unix seconds>
    X-Throughline-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, update

from ..audit import record
from ..db_types import utcnow
from ..extensions import db
from ..intake.schemas import iso
from ..jobs import enqueue_after_commit, get_queue, run_job
from ..models import Client, Document, User
from . import packages, ssrf, webhooks
from .emit import DELIVER_JOB
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

MAX_EXCERPT = 500
RETRY_LIMIT = 500
OPEN = ("pending", "retrying")


def backoff(attempt: int) -> timedelta:
    """Wait before the attempt after ``attempt`` (1-based): base × 4^(attempt-1)."""
    base = current_app.config["WEBHOOK_BACKOFF_SECONDS"]
    return timedelta(seconds=base * 4 ** max(attempt - 1, 0))


def body_for(delivery: WebhookDelivery) -> bytes:
    """The JSON body: the stored payload plus fresh signed links for output documents."""
    data = dict(delivery.payload)
    if delivery.event == "task.completed" and data.get("documents"):
        documents = {d.public_id: d for d in db.session.scalars(select(Document).where(
            Document.public_id.in_([d["id"] for d in data["documents"]])))}
        data["documents"] = [
            {**d, **packages.signed_link(documents[d["id"]])}
            for d in data["documents"] if d["id"] in documents
        ]
    client_code = db.session.scalar(select(Client.code).where(Client.id == delivery.client_id))
    envelope = {"id": delivery.public_id, "event": delivery.event,
                "created_at": iso(delivery.created_at), "client": client_code, "data": data}
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def _claim(delivery_id: int, now: datetime, manual: bool) -> bool:
    due = WebhookDelivery.status == "pending" if manual else (
        WebhookDelivery.status.in_(OPEN)
        & or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now))
    claimed = db.session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, due)
        .values(status="sending", attempts=WebhookDelivery.attempts + 1, last_attempt_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def deliver(delivery_id: int, manual_by: int | None = None) -> str:
    """Job: make one attempt of a delivery; returns its status afterwards."""
    now = utcnow()
    if not _claim(delivery_id, now, manual_by is not None):
        return "skipped"
    delivery = db.session.get(WebhookDelivery, delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        delivery.status, delivery.completed_at = "cancelled", now
        db.session.commit()
        return delivery.status
    status_code, excerpt, error, elapsed = _post(endpoint, delivery)
    attempt = WebhookAttempt(delivery_id=delivery.id, client_id=delivery.client_id,
                             number=delivery.attempts, started_at=now,
                             duration_ms=round(elapsed * 1000, 1), status_code=status_code,
                             error=error, response_excerpt=excerpt,
                             manual=manual_by is not None, triggered_by_id=manual_by)
    db.session.add(attempt)
    delivery.last_status_code = status_code
    if attempt.succeeded:
        delivery.status, delivery.completed_at, delivery.next_attempt_at = "succeeded", now, None
        db.session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id)
                           .values(consecutive_failures=0, last_success_at=now)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        return delivery.status
    failures = db.session.scalar(
        update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id)
        .values(consecutive_failures=WebhookEndpoint.consecutive_failures + 1,
                last_failure_at=now)
        .returning(WebhookEndpoint.consecutive_failures)
        .execution_options(synchronize_session=False))
    retry_in = None
    if manual_by is not None or delivery.attempts >= current_app.config["WEBHOOK_MAX_ATTEMPTS"]:
        delivery.status, delivery.completed_at, delivery.next_attempt_at = "failed", now, None
    else:
        retry_in = backoff(delivery.attempts)
        delivery.status, delivery.next_attempt_at = "retrying", now + retry_in
    if failures >= current_app.config["WEBHOOK_DISABLE_AFTER"]:
        db.session.refresh(endpoint)
        if endpoint.enabled:
            webhooks.auto_disable(endpoint, failures)
        if delivery.status == "retrying":  # like the endpoint's other waiting deliveries
            delivery.status, delivery.completed_at, delivery.next_attempt_at = (
                "cancelled", now, None)
        retry_in = None
    db.session.commit()
    if retry_in is not None:
        _schedule(delivery, retry_in)
    return delivery.status


def _post(endpoint: WebhookEndpoint, delivery: WebhookDelivery
          ) -> tuple[int | None, str | None, str | None, float]:
    """(status code, response excerpt, error, seconds); never raises for network trouble."""
    started = time.perf_counter()
    try:
        body = body_for(delivery)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Throughline-Webhooks/1",
            "X-Throughline-Event": delivery.event,
            "X-Throughline-Delivery": delivery.public_id,
            "X-Throughline-Timestamp": str(timestamp),
            "X-Throughline-Signature": webhooks.sign(webhooks.secret_of(endpoint), timestamp,
                                                     body),
        }
        target = ssrf.parse_target(endpoint.url)
        address = ssrf.resolve(target,
                               allow_loopback=current_app.config["WEBHOOK_ALLOW_LOOPBACK"])[0]
        conn = ssrf.pinned_connection(target, address,
                                      current_app.config["WEBHOOK_TIMEOUT_SECONDS"])
        try:
            conn.request("POST", target.path, body=body, headers=headers)
            response = conn.getresponse()
            excerpt = response.read(MAX_EXCERPT).decode("utf-8", "replace")
            status = response.status
        finally:
            conn.close()
    except ssrf.UnsafeTarget as exc:
        return None, None, f"refused: {exc}", time.perf_counter() - started
    except (OSError, ValueError) as exc:  # refused, reset, timeout, TLS, bad response
        return None, None, f"{type(exc).__name__}: {exc}"[:2000], time.perf_counter() - started
    error = None
    if 300 <= status < 400:
        error = "redirects are not followed; register the final URL"
    elif status >= 400:
        error = f"HTTP {status}"
    return status, excerpt, error, time.perf_counter() - started


def _schedule(delivery: WebhookDelivery, delay: timedelta) -> None:
    """The next attempt, through RQ's scheduler (``rq worker --with-scheduler``)."""
    try:
        get_queue("default").enqueue_in(
            delay, run_job, DELIVER_JOB, delivery.id,
            job_id=f"webhook-{delivery.public_id}-{delivery.attempts + 1}",
            job_timeout=60, result_ttl=3600, failure_ttl=7 * 24 * 3600,
            description=DELIVER_JOB)
    except Exception:  # Redis down: retry_due finds it when it is due
        current_app.logger.warning("could not schedule webhook retry; retry_due will")


def retry_due(now: datetime | None = None, limit: int = RETRY_LIMIT) -> int:
    """Periodic: enqueue deliveries whose next attempt is due; free stuck ``sending`` ones."""
    now = now or utcnow()
    stale = now - timedelta(seconds=current_app.config["WEBHOOK_TIMEOUT_SECONDS"] + 120)
    db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.status == "sending", WebhookDelivery.last_attempt_at < stale)
        .values(status="retrying", next_attempt_at=now)
        .execution_options(synchronize_session=False))
    ids = db.session.scalars(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status.in_(OPEN), WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at).limit(limit)
    ).all()
    for delivery_id in ids:
        enqueue_after_commit(DELIVER_JOB, delivery_id)
    return len(ids)


def redeliver(delivery: WebhookDelivery, *, actor: User) -> None:
    """Manual redelivery from the log: one more attempt now, logged as manual."""
    if delivery.status == "sending":
        raise webhooks.WebhookError({"_": ["This delivery is being sent right now."]})
    if not delivery.endpoint.enabled:
        raise webhooks.WebhookError({"_": ["Enable the endpoint before redelivering."]})
    delivery.status, delivery.next_attempt_at, delivery.completed_at = "pending", utcnow(), None
    db.session.flush()
    record("webhook.redeliver", object_type="webhook_delivery", object_id=delivery.id,
           client_id=delivery.client_id, actor=actor, after={"event": delivery.event})
    enqueue_after_commit(DELIVER_JOB, delivery.id, manual_by=actor.id)


def send_test(endpoint: WebhookEndpoint, *, actor: User) -> WebhookDelivery:
    """A ``webhook.test`` delivery to this endpoint only (whatever events it chose)."""
    if not endpoint.enabled:
        raise webhooks.WebhookError({"_": ["Enable the endpoint before testing it."]})
    delivery = WebhookDelivery(endpoint_id=endpoint.id, client_id=endpoint.client_id,
                               event=webhooks.TEST_EVENT,
                               dedupe_key=f"test:{utcnow().timestamp()}:{actor.id}",
                               payload={"message": "Test delivery from Throughline.",
                                        "occurred_at": iso(utcnow())},
                               status="pending", next_attempt_at=utcnow())
    db.session.add(delivery)
    db.session.flush()
    record("webhook.test", object_type="webhook_endpoint", object_id=endpoint.id,
           client_id=endpoint.client_id, actor=actor)
    enqueue_after_commit(DELIVER_JOB, delivery.id)
    return delivery


def cancel_pending(endpoint: WebhookEndpoint) -> int:
    """Deliveries still waiting when an endpoint is disabled; redeliver them once fixed."""
    return db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status.in_(OPEN))
        .values(status="cancelled", completed_at=utcnow(), next_attempt_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount


def stats(endpoint_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Deliveries by status per endpoint (one GROUP BY), for the list page."""
    found: dict[int, dict[str, Any]] = {}
    if endpoint_ids:
        for endpoint_id, status, count in db.session.execute(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.status, func.count())
            .where(WebhookDelivery.endpoint_id.in_(endpoint_ids))
            .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.status)
        ):
            found.setdefault(endpoint_id, {})[status] = count
    return found
