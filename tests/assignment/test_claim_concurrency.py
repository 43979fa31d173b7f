"""16 processes x 200 claim_next calls over 1,000 queued tasks: none claimed twice, none lost.

Other processes must see committed data, so this test cannot use the rollback ``db`` fixture:
it builds a scratch database (a temporary SQLite file, or a fresh PostgreSQL database created
and dropped through an AUTOCOMMIT connection) and every worker process builds its own app on
it. It runs on whichever backend the suite runs on: SKIP LOCKED row locks on PostgreSQL, the
database write lock plus the ``status = 'queued'`` guard on SQLite.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, insert, select, text, update
from sqlalchemy.engine import make_url

from provider_app import create_app
from provider_app.assignment import claim_next
from provider_app.extensions import db
from provider_app.models import (
    AuditEvent,
    Client,
    StaffProfile,
    Task,
    TaskType,
    TaskTypeSkill,
    User,
    UserRole,
)
from provider_app.settings import normalise_database_url
from tests.conftest import is_postgres
from tests.conftest import test_config as base_config

PROCESSES, CALLS, TASKS = 16, 200, 1_000


@pytest.fixture
def scratch_url(app, tmp_path):
    base = app.config["SQLALCHEMY_DATABASE_URI"]
    if not base.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'claims.db'}"
        return
    name = f"tl_claim_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_database_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(normalise_database_url(base)).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _app(url: str, tmp: str):
    return create_app(base_config(url, tmp))


def _seed(url: str, tmp: str) -> list[int]:
    """1,000 queued tasks and 16 specialists with room for all of them; returns staff ids."""
    app = _app(url, tmp)
    now = datetime.now(UTC)
    with app.app_context():
        db.create_all(bind_key=None)
        s = db.session
        s.execute(insert(Client), [{"id": 1, "code": "C1", "name": "C1", "kind": "agency"}])
        s.execute(insert(TaskType), [{"id": 1, "code": "DATA", "name": "Data", "tier": "BPO",
                                      "weight": 1, "intake_schema": []}])
        s.execute(insert(User), [{"id": u, "email": f"s{u}@x.test", "password_hash": "x"}
                                 for u in range(1, PROCESSES + 1)])
        s.execute(insert(UserRole), [{"user_id": u, "role": "specialist"}
                                     for u in range(1, PROCESSES + 1)])
        s.execute(insert(StaffProfile), [
            {"user_id": u, "public_id": f"p{u:031d}", "tier": "general", "capacity": TASKS,
             "timezone": "UTC", "shift_days": list(range(7)), "availability": "available"}
            for u in range(1, PROCESSES + 1)])
        s.execute(insert(Task), [
            {"client_id": 1, "task_type_id": 1, "status": "queued", "fields": {},
             "priority": ["low", "normal", "high", "urgent"][i % 4], "public_id": f"t{i:031d}",
             "received_at": now, "due_at": now + timedelta(minutes=i)}
            for i in range(TASKS)])
        s.commit()
        db.engine.dispose()
    return list(range(1, PROCESSES + 1))


def _claimer(url: str, tmp: str, staff_id: int, results) -> None:
    """One worker process: its own app and connections, CALLS claims for one person."""
    app = _app(url, tmp)
    claimed = []
    with app.app_context():
        for _ in range(CALLS):
            task_id = claim_next(staff_id)
            if task_id is not None:
                claimed.append(task_id)
        db.engine.dispose()
    results.put((staff_id, claimed))


def test_no_task_is_claimed_twice_and_none_is_lost(scratch_url, tmp_path):
    staff_ids = _seed(scratch_url, str(tmp_path))
    # fork: the workers start with the modules already imported (spawn re-imports the app,
    # seconds per process); each builds its own app and engine and never touches ours.
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    workers = [ctx.Process(target=_claimer, args=(scratch_url, str(tmp_path), s, results))
               for s in staff_ids]
    for w in workers:
        w.start()
    outcome = dict(results.get(timeout=600) for _ in workers)
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0

    claims = Counter(t for claimed in outcome.values() for t in claimed)
    assert [t for t, n in claims.items() if n > 1] == []  # nobody got a task twice
    assert len(claims) == TASKS  # every task was handed out
    assert sum(len(c) for c in outcome.values()) == TASKS

    app = _app(scratch_url, str(tmp_path))
    with app.app_context():
        holders = dict(db.session.execute(select(Task.id, Task.assignee_id)).all())
        assert all(holders[t] == s for s, claimed in outcome.items() for t in claimed)
        assert db.session.scalar(select(func.count()).select_from(Task)
                                 .where(Task.status != "assigned")) == 0
        transitions = db.session.execute(
            select(AuditEvent.object_id, func.count()).where(
                AuditEvent.action == "task.transition", AuditEvent.to_status == "assigned")
            .group_by(AuditEvent.object_id)).all()
        assert len(transitions) == TASKS and {n for _, n in transitions} == {1}
        db.engine.dispose()


def test_own_connection_path_audits_relaxation_and_survives_a_lost_connection(
        app, scratch_url, tmp_path):
    """Outside a transaction, claim_next on PostgreSQL claims on a pooled connection of its
    own, without pre-ping: it must write the same audit rows as the session path, and a
    connection the server dropped between claims must cost a retry, not an error."""
    if not is_postgres(app):
        pytest.skip("the own-connection path is PostgreSQL only")
    staff_id = _seed(scratch_url, str(tmp_path))[0]
    scratch = _app(scratch_url, str(tmp_path))
    with scratch.app_context():
        db.session.execute(insert(TaskTypeSkill), [{
            "task_type_id": 1, "skill": "coverage", "min_level": 3, "optional": True,
            "relax_after_minutes": 30}])
        db.session.execute(update(Task).values(received_at=datetime.now(UTC) - timedelta(hours=1)))
        db.session.commit()
        first = claim_next(staff_id)
        # Kill every other backend on this database: the claim pool's idle connection dies.
        db.session.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        db.session.commit()
        second = claim_next(staff_id)
        assert None not in (first, second) and first != second
        events = db.session.execute(
            select(AuditEvent.object_id, AuditEvent.action, AuditEvent.actor_id)
            .where(AuditEvent.object_id.in_([first, second])).order_by(AuditEvent.id)).all()
        assert sorted(events) == sorted(
            (t, a, staff_id) for t in (first, second)
            for a in ("task.transition", "assignment.relaxed"))
        db.session.remove()
        db.engine.dispose()
