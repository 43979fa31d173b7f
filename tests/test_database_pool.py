"""PostgreSQL pooled connections: pinged only when they may have died, replaced when dead.

Real backends are terminated (``pg_terminate_backend``) on a pool of the test's own, never
the connection the ``db`` fixture holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import scoped_session, sessionmaker

from provider_app.database import check_pooled_connections, driver_execute
from provider_app.extensions import db as _db
from provider_app.settings import normalise_database_url
from tests.conftest import is_postgres


@pytest.fixture
def pg_url(app) -> str:
    if not is_postgres(app):
        pytest.skip("the pool check is for PostgreSQL connections; SQLite has no server")
    return normalise_database_url(app.config["SQLALCHEMY_DATABASE_URI"])


@pytest.fixture
def pool(pg_url) -> Iterator[tuple[Engine, list]]:
    """An engine with the check, and a list recording every ping it makes."""
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)
    pings: list = []
    real_ping = engine.dialect.do_ping

    def counted_ping(dbapi_connection):
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    engine.dialect.do_ping = counted_ping
    yield engine, pings
    engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT pg_backend_pid()"))


def _terminate(pg_url: str, pid: int) -> None:
    """Kill a backend and wait until it is gone (its FATAL message is then on the socket)."""
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 10
            while conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                              {"pid": pid}) and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        admin.dispose()


def test_a_connection_back_moments_ago_is_reused_without_a_ping(pool):
    engine, pings = pool
    check_pooled_connections(engine, recheck_after=30)
    first = _backend_pid(engine)
    assert _backend_pid(engine) == first  # the same connection, handed out as it was
    assert pings == []


def test_a_connection_the_server_closed_is_replaced_at_checkout(pool, pg_url):
    engine, pings = pool
    check_pooled_connections(engine, recheck_after=30)
    first = _backend_pid(engine)
    _terminate(pg_url, first)
    second = _backend_pid(engine)  # no error: the readable socket led to a ping, and a
    assert second != first         # failed ping to a fresh connection
    assert len(pings) == 1


def test_a_connection_idle_past_the_recheck_is_pinged(pool):
    engine, pings = pool
    check_pooled_connections(engine, recheck_after=0)  # every rest counts as long
    first = _backend_pid(engine)
    assert _backend_pid(engine) == first  # alive: kept after its ping
    assert len(pings) == 2


def test_a_statement_on_a_lost_connection_throws_it_away(app, pool, pg_url):
    """``driver_execute`` (the API's hot statements) fails on a connection lost mid-request
    as SQLAlchemy would, and the pool does not hand that connection out again."""
    engine, _pings = pool
    check_pooled_connections(engine, recheck_after=30)
    original = _db.session
    _db.session = scoped_session(sessionmaker(bind=engine))
    try:
        with app.app_context():
            first = driver_execute("SELECT pg_backend_pid()", {}).fetchone()[0]
            _terminate(pg_url, first)
            with pytest.raises(OperationalError) as raised:
                driver_execute("SELECT pg_backend_pid()", {})
            assert raised.value.connection_invalidated
            _db.session.rollback()
            second = driver_execute("SELECT pg_backend_pid()", {}).fetchone()[0]
            assert second != first
            _db.session.rollback()
    finally:
        _db.session.remove()
        _db.session = original
