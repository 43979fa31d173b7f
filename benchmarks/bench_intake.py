"""Requests per second of ``POST /api/v1/tasks`` under gunicorn on PostgreSQL, beside the floor.

Run from the repository root (PostgreSQL and Redis on loopback, as ``make test`` starts them)::

    .venv/bin/python benchmarks/bench_intake.py [--seconds 20] [--clients 8] [--workers 2]

It creates its own database (``throughline_bench``; dropped again at the end), builds the
schema, seeds the catalogue, a client with a contract and an API token, then serves

* the real app (``wsgi:app``: token auth, rate limit, validation, idempotency key, SLA
  clock, duplicate check, audit, queued transition, enqueue of the assignment job), and
* the floor (``benchmarks/bare_insert_app.py``: one INSERT into the same ``tasks`` table),

side by side with the same gunicorn settings (sync workers), and drives each in turn with
the same closed-loop load: ``--clients`` threads, each sending one request at a time on
its own loopback connection, for ``--seconds`` in all, split into ``--rounds`` alternating
rounds (a shared machine's speed drifts over a minute; alternating puts the drift on both
sides of the ratio). Every intake request
carries a fresh ``Idempotency-Key`` and reference, as a real integration would.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
DB_NAME = "throughline_bench"
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")


def recreate_database() -> str:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    return f"{PG}/{DB_NAME}"


def drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def seed(database_url: str) -> dict:
    """Schema, catalogue, the demo clients with contracts, and one API token."""
    from provider_app import create_app
    from provider_app.accounts import issue_token
    from provider_app.demo import seed_catalogue, seed_clients
    from provider_app.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": REDIS})
    with app.app_context():
        db.create_all()
        types = seed_catalogue()
        client = seed_clients(types)[0]
        token, _ = issue_token(client, name="bench")
        db.session.commit()
        return {"token": token, "client_id": client.id, "task_type_id": types["DATA"].id}


def start(target: str, port: int, env: dict, workers: int) -> subprocess.Popen:
    log = open(f"/tmp/bench_intake_{port}.log", "w")  # noqa: SIM115 - lives with the server
    proc = subprocess.Popen(
        [GUNICORN, "-w", str(workers), "-k", "sync", "--threads", "1", "-b", f"127.0.0.1:{port}",
         "--backlog", "256", "--max-requests", "0", target],
        cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ready" if "bare" in target else "/healthz")
            if conn.getresponse().status < 500:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"{target} did not start; see /tmp/bench_intake_{port}.log")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the server (gunicorn), PostgreSQL, Redis and this process.

    Read from /proc, so the figures say where each request's CPU goes on the shared cores.
    """
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[tuple[str, str], float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = ("gunicorn" if "gunicorn" in cmd else "postgres" if cmd.startswith("postgres")
                else "redis" if "redis-server" in cmd else None)
        if name:
            used[name, entry] = (int(fields[11]) + int(fields[12])) / tick
    own = os.times()
    used["load generator", "self"] = own.user + own.system
    return used


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per kind between two ``cpu_seconds`` readings (a process started in
    between counts whole; one that ended in between is lost, so workers are not recycled)."""
    totals = {"gunicorn": 0.0, "postgres": 0.0, "redis": 0.0, "load generator": 0.0}
    for key, seconds in after.items():
        totals[key[0]] += seconds - before.get(key, 0.0)
    return totals


def load(port: int, path: str, headers: dict, make_body, seconds: float, clients: int,
         warmup: float) -> dict:
    """Closed loop: each thread sends a request, waits for the answer, sends the next."""
    stop_at = time.perf_counter() + warmup + seconds
    measure_from = time.perf_counter() + warmup
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def worker(i: int) -> None:
        n = 0
        while (now := time.perf_counter()) < stop_at:
            n += 1
            body, extra = make_body(i, n)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("POST", path, body=json.dumps(body),
                             headers={"Content-Type": "application/json", **headers, **extra})
                response = conn.getresponse()
                response.read()
                ok = response.status == 201  # a 200 would be a replayed key: not new work
            except OSError:
                ok = False
            finally:
                conn.close()
            if now >= measure_from:
                if ok:
                    latencies[i].append(time.perf_counter() - now)
                else:
                    errors[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, measure_from - time.perf_counter()))
    cpu_before = cpu_seconds()
    for thread in threads:
        thread.join()
    cpu_after = cpu_seconds()
    return {"latencies": [x for per in latencies for x in per], "errors": sum(errors),
            "seconds": seconds, "cpu": cpu_used(cpu_before, cpu_after)}


def summary(rounds: list[dict]) -> dict:
    """One target's rounds together: throughput, latency percentiles, CPU per request."""
    done = sorted(x for r in rounds for x in r["latencies"])
    seconds = sum(r["seconds"] for r in rounds)
    cpu = {name: sum(r["cpu"][name] for r in rounds) for name in rounds[0]["cpu"]}
    return {
        "rps": len(done) / seconds,
        "ok": len(done),
        "errors": sum(r["errors"] for r in rounds),
        "p50_ms": 1000 * statistics.median(done) if done else float("nan"),
        "p95_ms": 1000 * done[int(0.95 * (len(done) - 1))] if done else float("nan"),
        "cpu_ms": {name: 1000 * used / max(len(done), 1) for name, used in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternating rounds per target (--seconds is split among them)")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    database_url = recreate_database()
    seeded = seed(database_url)
    env = {"DATABASE_URL": database_url, "REDIS_URL": REDIS,
           "RATELIMIT_STORAGE_URI": REDIS, "TOKEN_RATE_LIMIT": "10000000 per minute",
           "LOG_LEVEL": "WARNING", "BENCH_CLIENT_ID": str(seeded["client_id"]),
           "BENCH_TASK_TYPE_ID": str(seeded["task_type_id"])}
    run = uuid.uuid4().hex[:6]

    sent = itertools.count()  # one sequence over every round: no key or reference repeats

    def intake_body(i: int, n: int):
        ref = f"B{run}-{i}-{next(sent)}"
        body = {"task_type": "DATA", "priority": "normal", "external_ref": ref, "state": "NY",
                "fields": {"description": f"Key batch {ref}"}}
        return body, {"Idempotency-Key": ref}

    def bare_body(i: int, n: int):
        ref = f"F{run}-{i}-{next(sent)}"
        return {"external_ref": ref, "fields": {"description": f"Key batch {ref}"}}, {}

    targets = (
        ("bare insert (floor)", "benchmarks.bare_insert_app:app", 8791, "/bare", {}, bare_body),
        ("POST /api/v1/tasks", "wsgi:app", 8792, "/api/v1/tasks",
         {"Authorization": f"Bearer {seeded['token']}"}, intake_body),
    )
    rounds: dict[str, list[dict]] = {name: [] for name, *_ in targets}
    servers = []
    try:
        for _name, target, port, *_rest in targets:
            servers.append(start(target, port, env, args.workers))
        # Alternate short rounds: a shared machine's speed drifts over a minute, and the
        # ratio must compare the two under the same conditions.
        for index in range(args.rounds):
            for name, _target, port, path, headers, body in targets:
                rounds[name].append(load(port, path, headers, body, args.seconds / args.rounds,
                                         args.clients, args.warmup if index == 0 else 0.5))
        # No RQ worker runs here: the assignment run the tasks asked for waits in Redis,
        # one for all of them (the once key; the trigger window of job_triggers.py).
        from redis import Redis
        from rq import Queue

        waiting_runs = Queue("default", connection=Redis.from_url(REDIS)).count
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=30)
        if not args.keep_db:
            drop_database()
        from redis import Redis

        Redis.from_url(REDIS).flushdb()
    results = {name: summary(r) for name, r in rounds.items()}

    print(f"gunicorn {args.workers} sync workers, {args.clients} client threads, "
          f"{args.seconds:g} s each in {args.rounds} alternating rounds after {args.warmup:g} s "
          "warm-up, PostgreSQL + Redis on loopback, "
          f"{os.cpu_count()} CPUs shared by server, database and load generator")
    for name, r in results.items():
        print(f"{name:22} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.1f} ms  "
              f"p95 {r['p95_ms']:6.1f} ms  ok {r['ok']}  errors {r['errors']}")
        print(" " * 22 + "  CPU per request: " + ", ".join(
            f"{name} {ms:.2f} ms" for name, ms in r["cpu_ms"].items()))
    floor = results["bare insert (floor)"]["rps"]
    intake = results["POST /api/v1/tasks"]["rps"]
    print(f"assignment runs waiting for a worker: {waiting_runs} "
          f"(asked for by {results['POST /api/v1/tasks']['ok']} new tasks)")
    print(f"ratio intake / floor: {100 * intake / floor:.0f} % (target >= 50 %)")


if __name__ == "__main__":
    main()
