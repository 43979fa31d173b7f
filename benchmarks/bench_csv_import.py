"""Rows per second and peak memory of a 100,000-row bulk CSV import on PostgreSQL.

Run from the repository root (PostgreSQL and Redis on loopback)::

    .venv/bin/python benchmarks/bench_csv_import.py [--rows 100000]

It creates its own database (``throughline_bench_csv``; dropped at the end), seeds the
catalogue and the demo clients, writes a CSV of ``--rows`` valid rows across four task
types (with a task_type column, lists, dates, money-free), stores it through
``bulk.start_import`` as an upload would, then runs the queued job in a separate RQ
worker process (``SimpleWorker``, the job code exactly as in production) and reports:
upload time, job wall time (validation + import), rows per second, and the worker's
peak RSS (``ru_maxrss``, which includes the interpreter and the imported app).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
DB_NAME = "throughline_bench_csv"
UPLOADS = "/tmp/throughline-bench-csv-uploads"


def recreate_database(drop_only: bool = False) -> str:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    return f"{PG}/{DB_NAME}"


def write_csv(path: Path, rows: int) -> None:
    """Valid rows of DATA, FNOL, ENDT_ADMIN and LOSSRUN, every external_ref unique."""
    header = ["task_type", "priority", "external_ref", "state", "description", "policy_number",
              "insured_name", "loss_date", "loss_description", "reporter_email",
              "effective_date", "change_kind", "change_detail", "carrier", "policy_numbers",
              "years"]
    priorities = ["normal"] * 6 + ["high", "urgent", "low"]
    states = ["NY", "NJ", "IL", "CA", "TX", "FL"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for n in range(rows):
            kind = n % 4
            common = [priorities[n % 9], f"BULK-{n:07d}", states[n % 6]]
            if kind == 0:
                row = ["DATA", *common, f"Key schedule {n}", "", "", "", "", "", "", "", "",
                       "", "", ""]
            elif kind == 1:
                row = ["FNOL", *common, "", f"PL-{100000 + n}", f"Insured {n}", "2025-03-01",
                       "Hail damage to roof", f"r{n}@example.com", "", "", "", "", "", ""]
            elif kind == 2:
                row = ["ENDT_ADMIN", *common, "", f"PL-{200000 + n}", f"Insured {n}", "", "",
                       "", "2025-04-01", "address", "New mailing address", "", "", ""]
            else:
                row = ["LOSSRUN", *common, "", "", f"Insured {n}", "", "", "", "", "", "",
                       "Acme Mutual", f"GL-{n};AU-{n}", str(1 + n % 5)]
            writer.writerow(row)


def app_config(database_url: str) -> dict:
    return {"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": REDIS,
            "UPLOAD_DIR": UPLOADS}


def upload(database_url: str, path: Path) -> tuple[str, float]:
    """Seed, then store the file and queue its job the way the portal and API do."""
    from provider_app import create_app
    from provider_app.demo import seed_catalogue, seed_clients
    from provider_app.extensions import db
    from provider_app.intake import bulk

    app = create_app(app_config(database_url))
    with app.app_context():
        db.create_all()
        client = seed_clients(seed_catalogue())[0]
        db.session.commit()
        started = time.perf_counter()
        with path.open("rb") as stream:
            imp = bulk.start_import(client, stream, path.name, task_type_code=None, actor=None)
        db.session.commit()  # enqueues the job
        return imp.job_id, time.perf_counter() - started


def run_worker() -> None:
    """Child process: work the queue once, then report wall time and peak RSS as JSON."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    from provider_app import jobs

    jobs._app()  # built at worker start, as provider_app.worker.Worker does in production
    started = time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    connection = Redis.from_url(REDIS)
    SimpleWorker([Queue("low", connection=connection)], connection=connection).work(burst=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime - cpu_before.ru_utime) + (usage.ru_stime - cpu_before.ru_stime)
    print(json.dumps({"seconds": time.perf_counter() - started, "cpu_seconds": cpu,
                      "max_rss_mb": usage.ru_maxrss / 1024}))


def check(database_url: str, job_id: str) -> dict:
    from sqlalchemy import func, select

    from provider_app import create_app
    from provider_app.extensions import db
    from provider_app.models import AuditEvent, JobProgress, Task

    app = create_app(app_config(database_url))
    with app.app_context():
        job = db.session.get(JobProgress, job_id)
        tasks = db.session.scalar(select(func.count()).select_from(Task))
        events = db.session.scalar(select(func.count()).select_from(AuditEvent)
                                   .where(AuditEvent.action == "task.transition"))
        return {"status": job.status, "imported": job.result.get("imported"), "tasks": tasks,
                "events": events, "error": job.error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker()
        return
    from redis import Redis

    Redis.from_url(REDIS).flushdb()
    database_url = recreate_database()
    path = Path("/tmp/throughline-bench.csv")
    try:
        write_csv(path, args.rows)
        job_id, upload_seconds = upload(database_url, path)
        child = subprocess.run(
            [sys.executable, __file__, "--worker"], cwd=ROOT, capture_output=True, text=True,
            env={**os.environ, "DATABASE_URL": database_url, "REDIS_URL": REDIS,
                 "UPLOAD_DIR": UPLOADS, "LOG_LEVEL": "WARNING"}, check=True,
        )
        worker = json.loads(child.stdout.strip().splitlines()[-1])
        outcome = check(database_url, job_id)
    finally:
        recreate_database(drop_only=True)
        Redis.from_url(REDIS).flushdb()
    size_mb = path.stat().st_size / 1024 / 1024
    print(f"{args.rows} rows ({size_mb:.1f} MB CSV), PostgreSQL + Redis on loopback, "
          f"{os.cpu_count()} CPUs shared with other work")
    print(f"upload (hash + store): {upload_seconds:.2f} s")
    print(f"job (validate + import): {worker['seconds']:.1f} s = "
          f"{args.rows / worker['seconds']:.0f} rows/s (target >= 5,000)")
    print(f"worker CPU time: {worker['cpu_seconds']:.1f} s "
          f"({args.rows / worker['cpu_seconds']:.0f} rows per worker CPU-second; PostgreSQL's "
          "own CPU not included)")
    print(f"worker peak RSS: {worker['max_rss_mb']:.0f} MB (target < 300 MB)")
    print(f"job {outcome['status']}: {outcome['imported']} imported, {outcome['tasks']} tasks, "
          f"{outcome['events']} transition audit events"
          + (f", error {outcome['error']}" if outcome["error"] else ""))


if __name__ == "__main__":
    main()
