"""No hot-path query scans the whole tasks table (PostgreSQL EXPLAIN on a scaled table).

The statements are not copied here: the test signs in as each role, loads the
real pages and API calls, records every SQL statement that touches ``tasks``
and asks PostgreSQL for its plan with the same parameters. A changed view is
therefore checked as it is, and a query that would read every task at a
million rows fails here at 200,000.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, func, select, text

from provider_app.extensions import db as _db
from provider_app.models import Client, Task, User, UserRole
from provider_app.scale_seed import seed_scale
from provider_app.vocab import Role, Status
from tests.conftest import is_postgres
from tests.factories import gen_token

SEEDED = 2_000
COPIES = 99  # 2,000 seeded tasks x (1 + 99) = 200,000 rows, most of them closed history

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def scaled(app, db):
    """200,000 tasks: a seeded year of work, replicated into older closed history."""
    if not is_postgres(app):
        pytest.skip("query plans are checked on PostgreSQL (set TEST_DATABASE_URL)")
    seed_scale(SEEDED, clients=10, staff=60, months=6, seed=3)
    _replicate_history(db)
    for table in ("tasks", "audit_events", "qa_reviews", "escalations", "users", "clients"):
        db.session.execute(text(f"ANALYZE {table}"))
    assert db.session.scalar(select(func.count()).select_from(Task)) >= SEEDED * (1 + COPIES)
    return db


def _replicate_history(db) -> None:
    """Older copies of every task, closed, with fresh public ids (columns found at run time)."""
    table = Task.__table__
    overrides = {
        "public_id": "md5(t.public_id || '-' || g.n)",
        "external_ref": "t.external_ref || '-' || g.n",
        "status": "CASE WHEN t.status IN ('completed', 'cancelled') THEN t.status "
                  "ELSE 'completed' END",
        "received_at": "t.received_at - g.n * interval '2 days'",
        "due_at": "t.due_at - g.n * interval '2 days'",
        "completed_at": "coalesce(t.completed_at, t.received_at) - g.n * interval '2 days' "
                        "+ interval '1 hour'",
        "at_risk_at": "NULL", "breach_at": "NULL", "sla_paused_since": "NULL",
        "updated_at": "t.updated_at - g.n * interval '2 days'",
    }
    columns = [c.name for c in table.columns if c.name != "id"]
    values = [overrides.get(name, f't."{name}"') for name in columns]
    db.session.execute(text(
        f'INSERT INTO tasks ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in columns)}) '
        f'SELECT {", ".join(values)} FROM tasks t CROSS JOIN generate_series(1, :n) AS g(n)'
    ), {"n": COPIES})


class StatementLog:
    """Every statement (and its parameters) that reads or writes the tasks table."""

    def __init__(self, engine):
        self.engine = engine
        self.seen: list[tuple[str, str, object]] = []
        self.label = ""

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        if " tasks" in statement and not statement.lstrip().upper().startswith("EXPLAIN"):
            self.seen.append((self.label, statement, parameters))


def _seq_scans_on_tasks(plan: dict) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") == "tasks":
        found.append(plan.get("Filter", "(no filter)"))
    for child in plan.get("Plans", []):
        found.extend(_seq_scans_on_tasks(child))
    return found


def _user(db, role: Role, **where) -> User:
    stmt = select(User).join(UserRole).where(UserRole.role == role)
    for column, value in where.items():
        stmt = stmt.where(getattr(User, column) == value)
    return db.session.scalars(stmt.order_by(User.id).limit(1)).one()


def test_hot_paths_do_not_scan_the_tasks_table(app, scaled, client, redis_conn):
    db = scaled
    sc = db.session.scalars(select(Client).where(Client.code == "SC001")).one()
    client_user = _user(db, Role.CLIENT_USER, client_id=sc.id)
    token = gen_token(sc)
    busiest = db.session.execute(
        select(Task.assignee_id, func.count()).where(Task.status == Status.IN_PROGRESS)
        .group_by(Task.assignee_id).order_by(func.count().desc()).limit(1)).first()
    specialist = db.session.get(User, busiest[0])
    lead = _user(db, Role.TEAM_LEAD)
    reviewer = _user(db, Role.QA_REVIEWER)
    one_task = db.session.scalar(select(Task.public_id).where(Task.client_id == sc.id).limit(1))
    held = db.session.scalar(select(Task.public_id).where(
        Task.assignee_id == specialist.id, Task.status == Status.IN_PROGRESS).limit(1))

    log = StatementLog(_db.engine)
    with log:
        log.label = "portal"
        client.login(client_user)
        for path in ("/portal/", "/portal/tasks", "/portal/tasks?page=3",
                     "/portal/tasks?status=queued", f"/portal/tasks/{one_task}"):
            assert client.get(path).status_code == 200, path
        log.label = "api"
        bearer = {"Authorization": f"Bearer {token}"}
        for path in ("/api/v1/tasks", "/api/v1/tasks?page=5&per_page=50",
                     f"/api/v1/tasks/{one_task}"):
            assert client.get(path, headers=bearer).status_code == 200, path
        for ref in ("PLAN-NEW-1", None):  # the duplicate check by reference, then by fields
            body = {"task_type": "DATA", "priority": "normal", "state": "NY",
                    "fields": {"description": "query plan check"}}
            if ref:
                body["external_ref"] = ref
            assert client.post("/api/v1/tasks", json=body, headers=bearer).status_code == 201
        log.label = "board"
        client.login(lead)
        for path in ("/board", "/board?status=queued", f"/board/tasks/{one_task}",
                     "/escalations"):
            assert client.get(path).status_code == 200, path
        log.label = "admin"
        client.login(_user(db, Role.ADMIN))
        assert client.get("/admin").status_code == 200
        log.label = "my work"
        client.login(specialist)
        assert client.get("/work").status_code == 200
        assert client.get(f"/work/tasks/{held}").status_code == 200
        log.label = "qa queue"
        client.login(reviewer)
        assert client.get("/qa/").status_code == 200
        log.label = "claim next"
        from provider_app.assignment import claim_next

        claim_next(specialist.id)

    labels = {label for label, _, _ in log.seen}
    assert {"portal", "api", "board", "admin", "my work", "qa queue", "claim next"} <= labels, \
        labels
    problems = []
    connection = db.session.connection()
    for label, statement, parameters in log.seen:
        plan = connection.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
        plan = plan if isinstance(plan, list) else json.loads(plan)
        for where in _seq_scans_on_tasks(plan[0]["Plan"]):
            problem = f"[{label}] Seq Scan on tasks ({where}):\n{statement}"
            problems.append(problem)
    assert not problems, "\n\n".join(problems)
