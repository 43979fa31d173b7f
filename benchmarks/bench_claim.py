"""claim_next under 32 concurrent claimers on PostgreSQL, beside a bare SKIP LOCKED loop.

Run from the repository root (PostgreSQL must be running)::

    .venv/bin/python benchmarks/bench_claim.py [--url postgresql://postgres@127.0.0.1:5432/postgres]
                                               [--tasks 10000] [--via-session]

It creates (and afterwards drops) its own database ``throughline_bench_claim`` with
``--tasks`` queued tasks over 8 task types (skills required, two KPO types, one licensed) and
32 specialists who may do all of it. Then, twice over the same queue:

* **claim_next**: 32 processes each call ``provider_app.assignment.claim_next`` for their own
  specialist until it returns None: eligibility from the database, the SKIP LOCKED claim, the
  capacity guard, the audit event, the commit (outside a request, as here, on the claim's own
  pooled psycopg connection without pre-ping; see ``provider_app/assignment/claim.py``);
* **bare loop**: 32 processes each run the minimal claim on a raw psycopg connection until the
  queue is empty: ``SELECT id ... WHERE status = 'queued' ORDER BY priority_order, due_at, id
  LIMIT 1 FOR UPDATE SKIP LOCKED``, ``UPDATE``, ``COMMIT`` (no eligibility, no audit, and
  the table's triggers disabled: the held-weight counter is the app's work, not the floor's).

It prints throughput (claims per second of wall time), median and p99 latency of one call,
the claimers' own CPU per claim (``time.process_time``, client side only), and claim_next's
throughput as a share of the bare loop's (target: at least 50 %).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, delete, insert, text, update
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provider_app import create_app  # noqa: E402
from provider_app.extensions import db  # noqa: E402
from provider_app.models import (  # noqa: E402
    AuditEvent,
    Client,
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

DB_NAME = "throughline_bench_claim"
CLAIMERS = 32
STATES = ["NY", "NJ", "CA"]
BARE_CLAIM = (
    "SELECT id FROM tasks WHERE status = 'queued' ORDER BY priority_order, due_at, id "
    "LIMIT 1 FOR UPDATE SKIP LOCKED"
)


def seed(url: str, n_tasks: int) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    now = datetime.now(UTC)
    with app.app_context():
        db.create_all()
        s = db.session
        s.execute(insert(Client), [{"id": c, "code": f"C{c}", "name": f"C{c}", "kind": "agency"}
                                   for c in (1, 2, 3)])
        s.execute(insert(TaskType), [
            {"id": t, "code": f"T{t}", "name": f"T{t}", "tier": "KPO" if t <= 2 else "BPO",
             "weight": 1, "licence_line": "P&C" if t == 1 else None, "intake_schema": []}
            for t in range(1, 9)])
        s.execute(insert(TaskTypeSkill), [{"task_type_id": t, "skill": f"s{t}", "min_level": 2}
                                          for t in range(1, 9)])
        people = range(1, CLAIMERS + 1)
        s.execute(insert(User), [{"id": u, "email": f"s{u}@bench.test", "password_hash": "x"}
                                 for u in people])
        s.execute(insert(UserRole), [{"user_id": u, "role": "specialist"} for u in people])
        s.execute(insert(StaffProfile), [
            {"user_id": u, "public_id": f"p{u:031d}", "tier": "insurance_trained",
             "capacity": n_tasks, "timezone": "UTC", "shift_days": list(range(7)),
             "availability": "available"} for u in people])
        s.execute(insert(StaffSkill), [{"staff_id": u, "skill": f"s{t}", "level": 3}
                                       for u in people for t in range(1, 9)])
        s.execute(insert(StaffLicence), [{"staff_id": u, "state": st, "line": "P&C",
                                          "expires_on": date.today() + timedelta(days=365)}
                                         for u in people for st in STATES])
        s.execute(insert(Task), [
            {"client_id": 1 + i % 3, "task_type_id": 1 + i % 8, "status": "queued",
             "priority": ["low", "normal", "normal", "high", "urgent"][i % 5],
             "state": STATES[i % 3], "fields": {}, "public_id": f"t{i:031d}",
             "received_at": now - timedelta(minutes=i % 600),
             "due_at": now + timedelta(minutes=(i * 7) % 5000)}
            for i in range(n_tasks)])
        s.commit()
        s.execute(text("ANALYZE"))
        s.commit()
        db.engine.dispose()


def reset(url: str) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        db.session.execute(update(Task).values(status="queued", assignee_id=None))
        db.session.execute(delete(AuditEvent))
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE tasks"))
        db.engine.dispose()


def claim_next_worker(url: str, staff_id: int, barrier, results, via_session: bool) -> None:
    from provider_app.assignment import claim_next

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    latencies = []
    with app.app_context():
        claim_next(-1)  # warm up: connect, compile; claims nothing
        barrier.wait()
        cpu = time.process_time()
        while True:
            started = time.perf_counter()
            if via_session:  # as inside a request: the session's transaction is already open
                db.session.connection()
            task_id = claim_next(staff_id)
            latencies.append(time.perf_counter() - started)
            if task_id is None:
                break
        cpu = time.process_time() - cpu
        db.engine.dispose()
    results.put((latencies, cpu))


def bare_worker(dsn: str, staff_id: int, barrier, results, _via_session: bool) -> None:
    latencies = []
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT 1")
        conn.commit()
        barrier.wait()
        cpu = time.process_time()
        while True:
            started = time.perf_counter()
            row = conn.execute(BARE_CLAIM).fetchone()
            if row is not None:
                conn.execute("UPDATE tasks SET status = 'assigned', assignee_id = %s, "
                             "version = version + 1 WHERE id = %s", (staff_id, row[0]))
            conn.commit()
            latencies.append(time.perf_counter() - started)
            if row is None:
                break
        cpu = time.process_time() - cpu
    results.put((latencies, cpu))


def run(label: str, target, arg: str, expected: int, via_session: bool = False) -> float:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(CLAIMERS + 1), ctx.Queue()
    workers = [ctx.Process(target=target, args=(arg, staff_id, barrier, results, via_session))
               for staff_id in range(1, CLAIMERS + 1)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    reported = [results.get(timeout=1800) for _ in workers]
    wall = time.perf_counter() - started
    latencies = [lat for lat, _ in reported]
    cpu = sum(c for _, c in reported)
    for w in workers:
        w.join()
    claims = sum(len(x) - 1 for x in latencies)  # each worker's last call found nothing
    flat = sorted(t for x in latencies for t in x[:-1])
    assert claims == expected, f"{label}: {claims} claims for {expected} tasks"
    p99 = flat[int(0.99 * (len(flat) - 1))]
    print(f"{label:>10}: {claims / wall:7.0f} claims/s  ({claims} in {wall:.1f} s), "
          f"latency median {statistics.median(flat) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"client CPU {cpu / claims * 1000:.2f} ms/claim")
    return claims / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="any database on the PostgreSQL server (used to create our own)")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--via-session", action="store_true",
                        help="also time claim_next joining an open session transaction, as "
                             "inside a request (pooled connection with pre-ping, ORM session)")
    args = parser.parse_args()
    admin = create_engine(normalise_database_url(args.url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    url = make_url(normalise_database_url(args.url)).set(database=DB_NAME)
    sa_url = url.render_as_string(hide_password=False)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        seed(sa_url, args.tasks)
        print(f"{args.tasks} queued tasks, {CLAIMERS} concurrent claimers")
        if args.via_session:
            in_session = run("in session", claim_next_worker, sa_url, args.tasks, True)
            reset(sa_url)
        ours = run("claim_next", claim_next_worker, sa_url, args.tasks)
        reset(sa_url)
        # The bare loop is the floor: without the app's triggers (the held-weight counter,
        # provider_app/models/held_weight.py), which claim_next's claims do pay for.
        with psycopg.connect(dsn, autocommit=True) as raw:
            raw.execute("ALTER TABLE tasks DISABLE TRIGGER USER")
        bare = run("bare loop", bare_worker, dsn, args.tasks)
        print(f"claim_next throughput = {100 * ours / bare:.0f} % of the bare SKIP LOCKED loop")
        if args.via_session:
            print(f"in a session's transaction = {100 * in_session / bare:.0f} % of it")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
