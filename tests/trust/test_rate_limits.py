"""Rate limits on sign-in, the code step and reset requests (a dedicated app, limiter on)."""

import tempfile

import pytest
from sqlalchemy import select

from provider_app import create_app
from provider_app.extensions import limiter
from provider_app.models import AuditEvent
from provider_app.vocab import Role
from tests.conftest import AppClient
from tests.conftest import test_config as base_test_config
from tests.factories import gen_client, gen_token, gen_user


@pytest.fixture
def limited_app(app, db):
    """A second app with the limiter enabled on in-memory storage.

    The Limiter object is shared by every app, and initialising it for this app
    turns it on for all of them; it is turned off again (and its counters reset)
    afterwards.
    """
    config = base_test_config(app.config["SQLALCHEMY_DATABASE_URI"], tempfile.mkdtemp())
    config.update(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://",
                  LOGIN_RATE_LIMIT="3 per minute", MFA_RATE_LIMIT="2 per minute",
                  PASSWORD_RESET_RATE_LIMIT="2 per minute", TOKEN_RATE_LIMIT="2 per minute")
    limited = create_app(config)
    limited.test_client_class = AppClient
    limiter.reset()
    try:
        yield limited
    finally:
        limiter.reset()
        limiter.enabled = False  # the autouse _limiter_off fixture restores the rest


def test_sign_in_is_rate_limited(limited_app, db, redis_conn):
    client = limited_app.test_client()
    for _ in range(3):
        response = client.post("/login", data={"email": "x@example.test", "password": "nope!"})
        assert response.status_code == 401
    blocked = client.post("/login", data={"email": "x@example.test", "password": "nope!"})
    assert blocked.status_code == 429
    assert client.get("/login").status_code == 200  # only POSTs count
    refused = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "auth.rate_limited"))
    assert refused.reason == "POST /login: over 3 per 1 minute"


def test_code_step_is_rate_limited(limited_app, db, redis_conn, with_mfa):
    user = gen_user(Role.TEAM_LEAD)
    with_mfa(user)
    client = limited_app.test_client()
    client.post("/login", data={"email": user.email, "password": "correct horse battery"})
    statuses = [client.post("/login/verify", data={"code": "000000"}).status_code
                for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_reset_requests_are_rate_limited(limited_app, redis_conn):
    client = limited_app.test_client()
    statuses = [client.post("/password/forgot", data={"email": "a@b.test"}).status_code
                for _ in range(3)]
    assert statuses == [302, 302, 429]


def test_api_token_over_its_limit_is_told_when_to_retry(limited_app, db, redis_conn):
    """429 with Retry-After (seconds, within the minute's window); successful calls carry
    no rate-limit headers (reading the window would cost two Redis round trips each)."""
    token = gen_token(gen_client())
    db.session.commit()
    client = limited_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    first, second, third = (client.get("/api/v1/tasks", headers=headers) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert "X-RateLimit-Remaining" not in first.headers
    assert third.json == {"error": "2 per 1 minute"}
    assert 1 <= int(third.headers["Retry-After"]) <= 60
