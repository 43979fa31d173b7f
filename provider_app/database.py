"""Engine tuning per backend and the request-boundary commit.

Views and services flush; the request commits when it succeeds and rolls
back when it fails, so a failed request leaves nothing half-written.
"""

from __future__ import annotations

import re

from flask import Flask, Response
from sqlalchemy import event
from sqlalchemy.engine import Engine

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


def compact_sql(sql: str) -> str:
    """One space for each run of whitespace, none around parentheses: psycopg caches the
    parsing of a statement only up to 4 KB (and 50 parameters), and re-parsing a long one
    on every execution costs more than running it."""
    sql = re.sub(r"\s+", " ", sql)
    return re.sub(r"\s*([()])\s*", r"\1", sql).strip()


def is_sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"


def init_app(app: Flask) -> None:
    with app.app_context():
        for engine in db.engines.values():
            if engine.dialect.name == "sqlite":
                _tune_sqlite(engine)

    @app.after_request
    def _commit_on_success(response: Response) -> Response:
        if response.status_code < 400:
            db.session.commit()
        else:
            db.session.rollback()
        return response
