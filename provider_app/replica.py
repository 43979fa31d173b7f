"""Read-only sessions for reports, on the PostgreSQL read replica when one is configured.

Reports (SLA attainment, QA accuracy, the metrics gauges) scan months of
tasks, audit rows and reviews; on a large provider they are the heaviest
queries and they never write. ``DATABASE_REPLICA_URL`` binds them to a
streaming replica (``SQLALCHEMY_BINDS["replica"]``, see settings.py) so they
cannot slow down intake and assignment on the primary. Without a replica they
run on the primary, in a read-only transaction all the same, so a report that
tries to write fails in development exactly as it would against a replica.

Use it for queries that tolerate replication lag (seconds): reports and
dashboards, never a read that decides a write.

    with report_session() as session:
        rows = session.execute(stmt).all()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .extensions import db

REPLICA_BIND = "replica"


def report_engine() -> Engine:
    """The replica's engine when configured, else the primary's (inside an app context)."""
    engines = db.engines
    return engines.get(REPLICA_BIND, db.engine)


def uses_replica() -> bool:
    return REPLICA_BIND in db.engines


@contextmanager
def report_session() -> Iterator[Session]:
    """A short-lived session in a read-only transaction; always rolled back, never commits."""
    engine = report_engine()
    session = Session(bind=engine, autoflush=False, expire_on_commit=False)
    try:
        if engine.dialect.name == "postgresql":
            session.execute(text("SET TRANSACTION READ ONLY"))
        yield session
    finally:
        session.rollback()
        session.close()
