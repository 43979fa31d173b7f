"""Test fixtures: real database (SQLite or PostgreSQL), real Redis, rollback per test.

The backend comes from TEST_DATABASE_URL (default: a SQLite file in a temp
dir); ``make test`` runs the suite once per backend. The schema is created once
per session and every test runs inside a transaction that is rolled back.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from redis import Redis
from sqlalchemy import event
from sqlalchemy.orm import scoped_session, sessionmaker

from provider_app import create_app
from provider_app.extensions import db as _db

CSRF_RAW = "test-csrf-token"
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _database_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tempfile.mkdtemp(prefix='throughline-test-')}/test.db"


def test_config(database_url: str, tmp: str) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-which-is-long-enough-0123456789",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": TEST_REDIS_URL,
        "RATELIMIT_ENABLED": False,
        "JOB_TRIGGER_WINDOW_SECONDS": 0,  # inline, so a test sees the job right after its POST
        "RATELIMIT_STORAGE_URI": "memory://",
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_COST": 1024,
        "UPLOAD_DIR": os.path.join(tmp, "uploads"),
        "SERVER_NAME": "localhost",
    }


test_config.__test__ = False  # a helper other test modules import, not a test


class AppClient(FlaskClient):
    """A test client that signs in without a password and adds the CSRF token."""

    def login(self, user) -> AppClient:
        with self.session_transaction() as session:
            session["_user_id"] = str(user.id)
            session["_fresh"] = True
            session["epoch"] = user.session_epoch
            session["login_at"] = session["last_seen"] = time.time()
            session["mfa"] = True  # signed in as if the second factor had been checked
            session["csrf_token"] = CSRF_RAW
            session.permanent = True
        return self

    def csrf_token(self) -> str:
        serializer = URLSafeTimedSerializer(self.application.secret_key, salt="wtf-csrf-token")
        return serializer.dumps(CSRF_RAW)

    def open(self, *args, **kwargs):
        method = (kwargs.get("method") or "GET").upper()
        if method in {"POST", "PUT", "PATCH", "DELETE"} and not kwargs.pop("no_csrf", False):
            with self.session_transaction() as session:
                session.setdefault("csrf_token", CSRF_RAW)
            headers = dict(kwargs.get("headers") or {})
            headers.setdefault("X-CSRFToken", self.csrf_token())
            kwargs["headers"] = headers
            data = kwargs.get("data")
            if isinstance(data, dict):
                data.setdefault("csrf_token", self.csrf_token())
        # A fresh app context per request, as in production: ``g`` (and the
        # signed-in user cached on it) must not leak from one request to the next.
        with self.application.app_context():
            return super().open(*args, **kwargs)


class _TestSession(scoped_session):
    """The test's session survives request teardown (the test owns and ends it)."""

    def remove(self) -> None:
        self.registry().expire_all()


@pytest.fixture(autouse=True)
def _limiter_off():
    """The Limiter object is shared by every app in the process, and any test that builds
    an app with rate limits on turns them on for all of them: tests run with it off unless
    they build their own limited app (tests/trust/test_rate_limits.py)."""
    from provider_app.extensions import limiter

    was_enabled = limiter.enabled
    limiter.enabled = False
    yield
    limiter.enabled = was_enabled


@pytest.fixture(scope="session")
def app() -> Iterator[Flask]:
    tmp = tempfile.mkdtemp(prefix="throughline-files-")
    app = create_app(test_config(_database_url(), tmp))
    app.test_client_class = AppClient
    with app.app_context():
        _db.drop_all()
        _db.create_all(bind_key=None)
    yield app


@pytest.fixture
def db(app: Flask):
    """The database, with everything the test writes rolled back afterwards."""
    with app.app_context():
        connection = _db.engine.connect()
        outer = connection.begin()
        original = _db.session
        _db.session = _TestSession(
            sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
        )
        try:
            yield _db
        finally:
            _db.session.registry().close()
            _db.session = original
            outer.rollback()
            connection.close()


@pytest.fixture
def client(app: Flask, db) -> AppClient:
    return app.test_client()


@pytest.fixture
def redis_conn(app: Flask) -> Iterator[Redis]:
    """A dedicated Redis DB index, flushed before and after the test."""
    conn = Redis.from_url(app.config["REDIS_URL"])
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture
def count_queries(db):
    """Count SQL statements run inside a ``with count_queries() as counter:`` block."""

    class Counter:
        def __init__(self):
            self.count = 0

        def __enter__(self):
            event.listen(_db.engine, "before_cursor_execute", self._hit)
            return self

        def __exit__(self, *exc):
            event.remove(_db.engine, "before_cursor_execute", self._hit)

        def _hit(self, *args, **kwargs):
            self.count += 1

    return Counter


def is_postgres(app: Flask) -> bool:
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
