"""Engine tuning per backend and the request-boundary commit.

Views and services flush; the request commits when it succeeds and rolls
back when it fails, so a failed request leaves nothing half-written.
"""

from __future__ import annotations

import re
import select
import time
from collections import namedtuple
from typing import Any

from flask import Flask, Response
from sqlalchemy import Select, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InvalidatePoolError

from .extensions import db


def _tune_sqlite(engine: Engine) -> None:
    """Real transactions on SQLite: foreign keys, WAL, and BEGIN we emit ourselves.

    pysqlite's own transaction handling breaks SAVEPOINT and lets writes race;
    taking it over (SQLAlchemy's documented recipe) gives SERIALIZABLE-like
    behaviour and lets tests roll back each test in a savepoint.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN")


def check_pooled_connections(engine: Engine, recheck_after: float) -> None:
    """Ping a pooled PostgreSQL connection at checkout only when it may have died unseen.

    ``pool_pre_ping`` pings on every checkout: one more round trip per request, about
    3 points of the intake benchmark's ratio (docs/PERFORMANCE.md). Like PgBouncer's
    ``server_check_delay`` (30 s by default), a connection back in the pool for less than
    ``recheck_after`` seconds is handed out as it is, unless its socket has something to
    read: an idle PostgreSQL connection is sent nothing unless the server is closing it
    (restart, failover, ``pg_terminate_backend``, idle timeout), so a readable socket is
    the free sign that it is gone. Then, and after a longer rest (a firewall may have
    dropped it silently), the dialect's ping runs; a dead connection raises
    ``InvalidatePoolError``, which makes the pool replace it and every connection older
    than it, as ``pool_pre_ping`` does.
    """

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _mark_known_good(_dbapi_connection, record) -> None:
        if record is not None:
            record.info["known_good_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, _proxy) -> None:
        known_good = record.info.get("known_good_at")
        if (known_good is not None and time.monotonic() - known_good < recheck_after
                and not _sent_something(dbapi_connection)):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, None):
                raise InvalidatePoolError(f"pooled connection lost: {exc}") from exc
            raise


def _sent_something(dbapi_connection: Any) -> bool:
    """True when an idle psycopg connection's socket is readable (or is gone).

    ``poll``, not ``select``: a busy worker's descriptors can pass ``select``'s 1,024."""
    try:
        poller = select.poll()
        poller.register(dbapi_connection.pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # closed by psycopg, or not a psycopg connection: ping to find out
        return True


def compact_sql(sql: str) -> str:
    """One space for each run of whitespace, none around parentheses: psycopg caches the
    parsing of a statement only up to 4 KB (and 50 parameters), and re-parsing a long one
    on every execution costs more than running it."""
    sql = re.sub(r"\s+", " ", sql)
    return re.sub(r"\s*([()])\s*", r"\1", sql).strip()


def postgres_text(stmt: Select) -> str:
    """A Core query as PostgreSQL text for psycopg: its own constants (IN lists, LIMIT)
    written in as literals, its bind parameters as ``%(name)s`` placeholders."""
    compiled = stmt.compile(dialect=postgresql.psycopg.dialect(),
                            compile_kwargs={"render_postcompile": True})
    sql = compiled.string
    for name, value in compiled.params.items():
        if value is not None:
            literal = str(value) if isinstance(value, int) else "'{}'".format(
                str(value).replace("'", "''"))
            sql = re.sub(rf"%\({name}\)s(::\w+)?", literal, sql)
    return sql


def driver_execute(sql: str, params: dict[str, Any]) -> Any:
    """Run PostgreSQL text on the session's own psycopg connection, inside its transaction
    (a psycopg cursor comes back; a driver error is raised as SQLAlchemy's).

    For the few statements every API call runs: SQLAlchemy's per-execution work
    (compiled-cache lookup, result metadata, type processors) costs more client CPU than
    the statement (docs/PERFORMANCE.md, intake). Statements run here bypass SQLAlchemy's
    cursor events, so ``SLOW_QUERY_MS`` does not see them."""
    connection = db.session.connection()
    driver_connection = connection.connection.driver_connection
    try:
        return driver_connection.execute(sql, params)
    except connection.dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy would raise it (IntegrityError, OperationalError...), so callers
        # catch one family of errors whichever way the statement ran; a lost connection
        # is thrown away, not put back in the pool.
        lost = connection.dialect.is_disconnect(exc, driver_connection, None)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(sql, params, exc, connection.dialect.loaded_dbapi.Error,
                                  hide_parameters=True, dialect=connection.dialect,
                                  connection_invalidated=lost) from exc


class HotQuery:
    """A one-row read that every API call runs: on PostgreSQL compiled once and run with
    ``driver_execute``, on SQLite through Core. Either way the row comes back as the same
    named tuple (the statement's column names), with the values the model's types give
    (psycopg loads JSON, timestamptz and floats as SQLAlchemy would)."""

    def __init__(self, stmt: Select) -> None:
        self.stmt = stmt
        self.row = namedtuple("Row", stmt.selected_columns.keys())
        self._sql: str | None = None

    def first(self, params: dict[str, Any]) -> Any:
        if is_sqlite():
            found = db.session.connection().execute(self.stmt, params).first()
        else:
            if self._sql is None:
                self._sql = compact_sql(postgres_text(self.stmt))
            found = driver_execute(self._sql, params).fetchone()
        return None if found is None else self.row._make(found)


def is_sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"


def init_app(app: Flask) -> None:
    with app.app_context():
        for engine in db.engines.values():
            if engine.dialect.name == "sqlite":
                _tune_sqlite(engine)
            else:
                check_pooled_connections(engine, app.config["DATABASE_RECHECK_IDLE_SECONDS"])

    @app.after_request
    def _commit_on_success(response: Response) -> Response:
        if response.status_code < 400:
            db.session.commit()
        else:
            db.session.rollback()
        return response
