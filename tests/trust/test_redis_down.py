"""Redis down: intake goes on, limits and sessions degrade as documented, work catches up.

A private redis-server is stopped and restarted for real (never the shared one).
While it is down the API and the portal store tasks (``queued``, the assignment
enqueue after commit fails and is logged), nothing answers 5xx, the rate limit
counts in the process's memory, /healthz says Redis is down. When Redis is back
the periodic assignment batch (the catch-up path: it takes every queued task,
however it was missed) assigns what arrived during the outage.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import suppress

import pytest
from redis.exceptions import RedisError
from rq import SimpleWorker
from sqlalchemy import select

from provider_app.extensions import limiter
from provider_app.intake.service import ASSIGN_JOB
from provider_app.jobs import enqueue_now, get_queue
from provider_app.models import Task
from provider_app.schedule import PERIODIC
from provider_app.sessions import FALLBACK_PREFIX
from provider_app.vocab import Status
from tests.conftest import CSRF_RAW, AppClient
from tests.factories import gen_specialist
from tests.intake.intake_support import build_world
from tests.ops.ops_support import make_app
from tests.trust.live_server import PrivateRedis, private_redis


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
def outage_app(app, db, redis_server):
    """An app on the private Redis with rate limits on (Redis storage, memory fallback)."""
    other = make_app(app, REDIS_URL=redis_server.url, RATELIMIT_STORAGE_URI=redis_server.url,
                     RATELIMIT_ENABLED=True, TOKEN_RATE_LIMIT="4 per minute")
    other.test_client_class = AppClient
    limiter.reset()
    try:
        yield other
    finally:
        with suppress(RedisError):  # the test may end with its Redis stopped
            limiter.reset()
        limiter.enabled = False  # the autouse _limiter_off fixture restores the rest


@pytest.fixture
def world(db):
    w = build_world()
    gen_specialist(clients=[w.a])
    db.session.commit()  # to the test's savepoint: a refused request keeps the world
    return w


def _post_task(client, world, ref: str):
    return client.post("/api/v1/tasks", headers=world.headers(),
                       json={"task_type": world.data.code, "external_ref": ref,
                             "fields": {"description": f"sent while Redis is down ({ref})"}})


def test_api_intake_survives_a_redis_outage_and_catches_up(
    outage_app, world, db, redis_server, caplog
):
    client = outage_app.test_client()
    assert _post_task(client, world, "before-outage").status_code == 201
    redis_server.stop()

    with caplog.at_level(logging.WARNING):
        created = _post_task(client, world, "during-outage")
    assert created.status_code == 201, created.get_data(as_text=True)
    assert "could not enqueue provider_app.assignment.batch.assign_batch_job" in caplog.text
    task = db.session.scalar(select(Task).where(Task.external_ref == "during-outage"))
    assert task.status == Status.QUEUED  # stored and waiting for assignment

    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["checks"]["redis"]["ok"] is False
    assert client.get("/api/v1/tasks", headers=world.headers()).status_code == 200

    # The token limit (4 per minute) still holds, counted in this process's memory.
    statuses = [_post_task(client, world, f"burst-{n}").status_code for n in range(4)]
    assert 429 in statuses and all(s in (201, 429) for s in statuses)

    redis_server.start()
    assert ASSIGN_JOB in {p.func_path for p in PERIODIC}  # the scheduler runs it every minute
    with outage_app.app_context():
        enqueue_now(ASSIGN_JOB)  # what the scheduler's next tick does
        queue = get_queue("default")
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    db.session.refresh(task)
    assert task.status == Status.ASSIGNED


def test_portal_sign_in_and_intake_work_during_an_outage_then_move_into_redis(
    outage_app, world, db, redis_server
):
    client = outage_app.test_client()
    redis_server.stop()

    signed_in = client.post("/login", data={"email": world.user_a.email,
                                            "password": "correct horse battery"})
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)
    cookie = client.get_cookie("tl_session")
    assert cookie is not None and cookie.value.startswith(FALLBACK_PREFIX)
    assert world.user_a.email not in cookie.value  # encrypted, not just signed

    form = client.get(f"/portal/tasks/new/{world.data.code}")
    assert form.status_code == 200
    with client.session_transaction() as session:  # the token the test client signs POSTs with
        session["csrf_token"] = CSRF_RAW
    sent = client.post(f"/portal/tasks/new/{world.data.code}",
                       data={"priority": "normal", "external_ref": "PORTAL-DOWN",
                             "description": "sent from the portal while Redis is down"})
    assert sent.status_code == 302, sent.get_data(as_text=True)
    task = db.session.scalar(select(Task).where(Task.external_ref == "PORTAL-DOWN"))
    assert task.status == Status.QUEUED and task.source == "portal"

    redis_server.start()
    assert client.get("/portal/tasks").status_code == 200  # still signed in...
    moved = client.get_cookie("tl_session").value
    assert not moved.startswith(FALLBACK_PREFIX)  # ...now under a Redis session id
    assert redis_server.client().exists(f"tl:session:{moved}")

    client.post("/logout")
    assert not redis_server.client().exists(f"tl:session:{moved}")


def test_a_tampered_or_stale_fallback_cookie_is_no_session(outage_app, world, redis_server):
    client = outage_app.test_client()
    redis_server.stop()
    client.set_cookie("tl_session", FALLBACK_PREFIX + "not-a-real-token")
    response = client.get("/portal/tasks")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
