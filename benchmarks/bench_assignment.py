"""Batch assignment end to end: 10,000 queued tasks, 1,000 staff (capacity 10, ~50 eligible each).

Run from the repository root (PostgreSQL must be running)::

    .venv/bin/python benchmarks/bench_assignment.py [--url postgresql://postgres@127.0.0.1:5432/postgres]

It creates (and afterwards drops) its own database ``throughline_bench_assign``, loads the data
with bulk inserts (not timed), then times ``run_batch()`` plus its commit: reading the queue and
the staff, building candidates, costs, solving, writing back (10,000 updates and audit events)
and recording waiting reasons. Each run starts from the same queue (reset between runs); the
median of ``--runs`` is printed beside the solver's own time on the same graph, and the solver
is re-checked against scipy's Hungarian method on small instances.

Data: 40 task types (12 KPO, 28 BPO, all weight 1), 10 clients, 1,000 specialists (300
insurance-trained, 700 general) each holding two skills of their tier's types, so each type has
about 50 eligible people; 10 % of the staff are restricted to three clients; KPO types need a
licence which every insurance-trained person holds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, delete, insert, text, update
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_solver import optimality_check  # noqa: E402

from provider_app import create_app  # noqa: E402
from provider_app.assignment.batch import run_batch  # noqa: E402
from provider_app.extensions import db  # noqa: E402
from provider_app.models import (  # noqa: E402
    AuditEvent,
    Client,
    StaffClient,
    StaffLicence,
    StaffProfile,
    StaffSkill,
    Task,
    TaskType,
    TaskTypeSkill,
    User,
    UserRole,
)
from provider_app.settings import normalise_database_url  # noqa: E402

DB_NAME = "throughline_bench_assign"
N_TASKS, N_STAFF, CAPACITY = 10_000, 1_000, 10
N_TYPES, N_KPO, N_CLIENTS, N_TRAINED = 40, 12, 10, 300
STATES = ["NY", "NJ", "IL", "CA", "TX", "FL"]


def make_database(base_url: str) -> tuple[str, object]:
    admin = create_engine(normalise_database_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    url = make_url(normalise_database_url(base_url)).set(database=DB_NAME)
    return url.render_as_string(hide_password=False), admin


def load_data(rng: np.random.Generator) -> None:
    """Bulk-insert the catalogue, the staff and the queue."""
    now = datetime.now(UTC)
    s = db.session
    s.execute(insert(Client), [
        {"id": c + 1, "code": f"C{c}", "name": f"Client {c}", "kind": "agency"}
        for c in range(N_CLIENTS)
    ])
    s.execute(insert(TaskType), [
        {"id": t + 1, "code": f"T{t}", "name": f"Type {t}", "tier": "KPO" if t < N_KPO else "BPO",
         "weight": 1, "licence_line": "P&C" if t < 3 else None, "intake_schema": []}
        for t in range(N_TYPES)
    ])
    s.execute(insert(TaskTypeSkill), [
        {"task_type_id": t + 1, "skill": f"s{t}", "min_level": 2} for t in range(N_TYPES)
    ])
    s.execute(insert(User), [
        {"id": u + 1, "email": f"s{u}@bench.test", "name": f"S{u}", "password_hash": "x"}
        for u in range(N_STAFF)
    ])
    s.execute(insert(UserRole), [{"user_id": u + 1, "role": "specialist"} for u in range(N_STAFF)])
    trained = np.arange(N_STAFF) < N_TRAINED
    s.execute(insert(StaffProfile), [
        {"user_id": u + 1, "public_id": f"p{u:031d}",
         "tier": "insurance_trained" if trained[u] else "general", "capacity": CAPACITY,
         "timezone": "UTC", "shift_start": None, "shift_end": None, "shift_days": list(range(7)),
         "availability": "available"}
        for u in range(N_STAFF)
    ])
    skills, licences = [], []
    for u in range(N_STAFF):
        pool = np.arange(N_KPO) if trained[u] else np.arange(N_KPO, N_TYPES)
        for t in rng.choice(pool, 2, replace=False):
            skills.append({"staff_id": u + 1, "skill": f"s{t}", "level": int(rng.integers(2, 6))})
        if trained[u]:
            licences += [{"staff_id": u + 1, "state": st, "line": "P&C",
                          "expires_on": date.today() + timedelta(days=365)} for st in STATES]
    s.execute(insert(StaffSkill), skills)
    s.execute(insert(StaffLicence), licences)
    restricted = rng.choice(N_STAFF, N_STAFF // 10, replace=False)
    s.execute(insert(StaffClient), [
        {"staff_id": int(u) + 1, "client_id": int(c) + 1}
        for u in restricted for c in rng.choice(N_CLIENTS, 3, replace=False)
    ])
    kpo_share = rng.random(N_TASKS) < 0.3
    types = np.where(kpo_share, rng.integers(0, N_KPO, N_TASKS),
                     rng.integers(N_KPO, N_TYPES, N_TASKS))
    priorities = rng.choice(["low", "normal", "normal", "normal", "high", "urgent"], N_TASKS)
    s.execute(insert(Task), [
        {"client_id": int(rng.integers(1, N_CLIENTS + 1)), "task_type_id": int(types[i]) + 1,
         "priority": str(priorities[i]), "state": STATES[i % len(STATES)], "fields": {},
         "status": "queued", "public_id": f"t{i:031d}",
         "received_at": now - timedelta(minutes=float(rng.uniform(1, 2880))),
         "due_at": now + timedelta(hours=float(rng.uniform(-2, 48)))}
        for i in range(N_TASKS)
    ])
    s.commit()


def reset_queue() -> None:
    db.session.execute(update(Task).values(status="queued", assignee_id=None, waiting_reason=None))
    db.session.execute(delete(AuditEvent))
    db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="any database on the PostgreSQL server (used to create our own)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    url, admin = make_database(args.url)
    try:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
        with app.app_context():
            db.create_all()
            started = time.perf_counter()
            load_data(np.random.default_rng(2024))
            print(f"loaded {N_TASKS} tasks, {N_STAFF} staff "
                  f"in {time.perf_counter() - started:.1f} s")
            db.session.execute(text("ANALYZE"))
            db.session.commit()
            totals, results = [], []
            for _ in range(args.runs):
                reset_queue()
                started = time.perf_counter()
                result = run_batch()
                db.session.commit()
                totals.append(time.perf_counter() - started)
                results.append(result)
            last = results[-1]
            phases = ", ".join(
                f"{name} {statistics.median(r.seconds[name] for r in results):.2f}"
                for name in last.seconds
            )
            print(
                f"batch end to end: {statistics.median(totals):.2f} s median of {args.runs} "
                f"(runs: {', '.join(f'{t:.2f}' for t in totals)}); "
                f"{last.queued} queued, {last.staff} staff, {last.pairs} eligible pairs "
                f"({last.pairs / max(last.queued, 1):.0f} per task), {last.assigned} assigned, "
                f"{last.waiting} waiting"
            )
            print(f"  phases (s): {phases}")
            print(f"  solver on the same graph: "
                  f"{statistics.median(r.solver_seconds for r in results):.2f} s")
            db.session.remove()
            db.engine.dispose()
        optimality_check()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
