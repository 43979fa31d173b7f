"""SLA report for one client with 1,000,000 tasks (PostgreSQL) beside its bare aggregate.

Run from the repository root (PostgreSQL on 127.0.0.1:5432 as ``postgres``):

    .venv/bin/python benchmarks/bench_reports.py [--tasks 1000000] [--runs 5] [--reload]
        [--queries]

Uses its own database (``throughline_bench_reports``), creates the schema from the models
and loads the tasks with one ``INSERT ... SELECT ... generate_series``: a year (2025) of
work for one client, 2 % cancelled, tasks received after 20 December still open, the rest
completed with a stored outcome. The report is November 2025 (~83,000 tasks touch it).
``--runs`` and the database are reused between runs unless ``--reload`` is given.

Printed (medians of ``--runs``):

* bare: the grouped aggregate every count rests on (``metrics.counts_statement``) alone;
* metrics: ``sla_report`` — that aggregate, the percentiles, rework, QA, escalations,
  at-risk and credits (target: <= 2x bare and < 2 s);
* pdf: rendering that report to PDF with WeasyPrint (target: < 5 s), the first render in
  the process apart from the median of ``--runs`` more; with this process's CPU time, which
  other load on the machine does not inflate.

The audit trail, escalations and QA reviews (``HISTORY``) are added on the first run after
the tasks, so the rework, escalation and QA queries read production-like volumes too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provider_app import create_app  # noqa: E402
from provider_app.extensions import db  # noqa: E402
from provider_app.models import Client, Escalation, Task, TaskType  # noqa: E402
from provider_app.settings import normalise_database_url  # noqa: E402
from sla.clock import active_contract  # noqa: E402
from sla.reporting.credits import credits_for  # noqa: E402
from sla.reporting.metrics import (  # noqa: E402
    aging_edges,
    counts_statement,
    instant_with_age,
    report_calendar,
    sla_report,
)
from sla.reporting.pdf import render_pdf  # noqa: E402
from sla.reporting.period import Period  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/throughline_bench_reports"

LOAD = """
INSERT INTO tasks (public_id, client_id, task_type_id, priority, priority_order, fields,
    status, source, received_at, due_at, breach_at, sla_target_hours, sla_state, sla_met,
    sla_elapsed_hours, escalation_level, completed_at, rework_count, checklist, updated_at,
    version)
SELECT replace(gen_random_uuid()::text, '-', ''), :client, :task_type, 'normal', 2, '{}',
    CASE WHEN i % 50 = 0 THEN 'cancelled'
         WHEN r > timestamptz '2025-12-20' THEN 'in_progress' ELSE 'completed' END,
    'api', r, r + interval '8 hours', r + interval '8 hours 1 microsecond', 8.0,
    CASE WHEN i % 50 <> 0 AND r > timestamptz '2025-12-20' AND i % 7 = 0 THEN 'at_risk'
         ELSE 'on_track' END,
    CASE WHEN i % 50 = 0 OR r > timestamptz '2025-12-20' THEN NULL ELSE (i % 97) <= 80 END,
    CASE WHEN i % 50 = 0 OR r > timestamptz '2025-12-20' THEN NULL ELSE (i % 97) / 10.0 END,
    0,
    CASE WHEN i % 50 <> 0 AND r > timestamptz '2025-12-20' THEN NULL
         ELSE r + ((i % 20) || ' hours')::interval END,
    0, '{}', r, 1
FROM (SELECT i, timestamptz '2025-01-01' + (i * (31536000.0 / :n)) * interval '1 second' AS r
      FROM generate_series(1, :n) AS i) AS g
"""

# The history the report's other queries read, in proportions like production's: one audited
# transition to completed per completed task (1 in 25 sent back to rework once), an
# escalation for 1 in 40 completed tasks and a QA review for 1 in 10 (1 in 50 failed).
HISTORY = [
    """INSERT INTO audit_events (at, client_id, object_type, object_id, action, from_status,
           to_status)
       SELECT completed_at, client_id, 'task', id, 'task.transition', 'submitted', 'completed'
       FROM tasks WHERE client_id = :client AND status = 'completed'""",
    """INSERT INTO audit_events (at, client_id, object_type, object_id, action, from_status,
           to_status)
       SELECT completed_at - interval '1 hour', client_id, 'task', id, 'task.transition',
           'in_qa', 'rework'
       FROM tasks WHERE client_id = :client AND status = 'completed' AND id % 25 = 0""",
    """UPDATE tasks SET rework_count = 1
       WHERE client_id = :client AND status = 'completed' AND id % 25 = 0""",
    """INSERT INTO escalations (public_id, client_id, task_id, reason, level, detail,
           opened_at, level_changed_at, acknowledged_at, resolved_at, version)
       SELECT replace(gen_random_uuid()::text, '-', ''), client_id, id, 'sla_breached', 1, '',
           received_at + interval '8 hours', received_at + interval '8 hours',
           received_at + interval '9 hours', received_at + interval '11 hours', 1
       FROM tasks WHERE client_id = :client AND status = 'completed' AND id % 40 = 0""",
    """INSERT INTO qa_reviews (public_id, client_id, task_id, reviewer_id, sop_id, score,
           passed, critical_failure, comments, created_at, completed_at, version)
       SELECT replace(gen_random_uuid()::text, '-', ''), client_id, id, :reviewer, :sop, 1.0,
           id % 50 <> 0, id % 200 = 0, '', completed_at - interval '2 hours', completed_at, 1
       FROM tasks WHERE client_id = :client AND status = 'completed' AND id % 10 = 0""",
]


def ensure_database(url: str) -> None:
    target = make_url(normalise_database_url(url))
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                           {"n": target.database}):
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def load(total: int) -> Client:
    from provider_app.demo import seed_catalogue
    from tests.factories import gen_client, gen_contract

    task_type = seed_catalogue()["DATA"]
    client = gen_client("BENCH", tz="UTC", name="Bench Mutual")
    gen_contract(client, {(task_type, "normal"): 8.0}, monthly_fee=50000,
                 credit_scheme={"kind": "per_point", "pct_per_point": 1, "cap_pct": 10})
    db.session.execute(text(LOAD), {"client": client.id, "task_type": task_type.id, "n": total})
    db.session.commit()
    return client


def load_history(client: Client) -> None:
    """Audit trail, escalations and QA reviews for the loaded tasks (see HISTORY)."""
    from provider_app.vocab import Role
    from tests.factories import gen_user

    task_type = db.session.scalar(select(TaskType).where(TaskType.code == "DATA"))
    params = {"client": client.id, "reviewer": gen_user(Role.QA_REVIEWER).id,
              "sop": task_type.current_sop().id}
    for statement in HISTORY:
        db.session.execute(text(statement), params)
    db.session.commit()


def timed(fn, runs: int) -> tuple[float, float, object]:
    """Median wall time and median CPU time of this process (the load-independent part)."""
    times, cpu, result = [], [], None
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        db.session.rollback()
    return statistics.median(times), statistics.median(cpu), result


def print_statements(fn) -> None:
    """Run ``fn`` once and print every SQL statement it sent, with its wall time."""
    log: list[tuple[float, str]] = []

    def before(conn, cursor, statement, params, context, executemany):
        conn.info["bench_start"] = time.perf_counter()

    def after(conn, cursor, statement, params, context, executemany):
        log.append((time.perf_counter() - conn.info.pop("bench_start"), statement))

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    try:
        fn()
        db.session.rollback()
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)
    for seconds, statement in log:
        print(f"    {seconds * 1000:7.1f} ms  {' '.join(statement.split())[:100]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--queries", action="store_true",
                        help="also print each statement of one more sla_report with its time")
    args = parser.parse_args()
    ensure_database(args.database_url)
    app = create_app({"SQLALCHEMY_DATABASE_URI": normalise_database_url(args.database_url),
                      "SERVER_NAME": "localhost"})
    with app.app_context():
        if args.reload:
            db.drop_all()
        db.create_all()
        client = db.session.scalar(select(Client).where(Client.code == "BENCH"))
        if client is None:
            client = load(args.tasks)
        if not db.session.scalar(select(func.count()).select_from(Escalation)
                                 .where(Escalation.client_id == client.id)):
            load_history(client)
            for table in ("tasks", "audit_events", "escalations", "qa_reviews"):
                db.session.execute(text(f"ANALYZE {table}"))
            db.session.commit()
        count = db.session.scalar(select(func.count()).select_from(Task)
                                  .where(Task.client_id == client.id))
        period = Period(date(2025, 11, 1), date(2025, 11, 30), "UTC")

        def bare_sql_only(stmt):
            return lambda: db.session.execute(stmt).all()

        contract = active_contract(client.id, period.end)
        calendar = report_calendar(client, period, contract)
        labels, _ = aging_edges(calendar, period)
        instants = [instant_with_age(calendar, period.hi, lo) for _, lo in labels[1:]]
        stmt = counts_statement(client.id, period, instants)
        bare_sql_only(stmt)()  # warm the cache
        # Interleaved (bare, report, bare, ...) so that load from elsewhere on the machine
        # falls on both alike; medians of each.
        bare_times, report_times, report_cpu = [], [], []
        for _ in range(args.runs):
            bare_times.append(timed(bare_sql_only(stmt), 1)[0])
            t, cpu, report = timed(lambda: sla_report(client, period), 1)
            report_times.append(t)
            report_cpu.append(cpu)
        t_bare = statistics.median(bare_times)
        t_metrics, cpu_metrics = statistics.median(report_times), statistics.median(report_cpu)
        # The same report under a pool scheme with earn-back: December's figures decide
        # whether November's credit is earned back, October's credit is checked against
        # November's (two more aggregates each).
        pool = SimpleNamespace(**{name: getattr(report.contract, name) for name in (
            "id", "attainment_target", "qa_accuracy_target", "monthly_fee", "currency")},
            credit_scheme={"kind": "pool", "at_risk_pct": 12, "pool_allocation_pct": 150,
                           "levels": {"attainment": 60, "qa_accuracy": 40}, "earn_back": True})
        t_earn, _, credits = timed(lambda: credits_for(replace(report, contract=pool)),
                                   args.runs)
        with app.test_request_context():
            # The first render in a process also compiles the template and warms WeasyPrint's
            # font and style caches; a worker pays that once, so it is shown apart.
            t_cold, cpu_cold, _ = timed(lambda: render_pdf(report), 1)
            t_pdf, cpu_pdf, pdf = timed(lambda: render_pdf(report), args.runs)
        print(f"tasks for the client: {count:,}; touching November 2025: "
              f"{report.total.received + report.total.open_at_end:,} (received "
              f"{report.total.received:,}, completed {report.total.completed:,}); "
              f"QA reviewed {report.qa['reviewed']:,}, escalations "
              f"{sum(e['count'] for e in report.escalations):,}, reworked "
              f"{report.total.reworked:,}")
        print(f"bare aggregate (counts_statement):  {t_bare * 1000:8.1f} ms")
        print(f"sla_report (all metrics + credits): {t_metrics * 1000:8.1f} ms "
              f"= {t_metrics / t_bare:.2f}x bare (target <= 2x, < 2000 ms; "
              f"{cpu_metrics * 1000:.1f} ms CPU in this process)")
        print(f"earn-back (pool scheme; October and December): {t_earn * 1000:8.1f} ms "
              f"({credits.earn_back.status}); sla_report + earn-back = "
              f"{(t_metrics + t_earn) / t_bare:.2f}x bare")
        if args.queries:
            print_statements(lambda: sla_report(client, period))
        print(f"PDF render, first in the process:   {t_cold * 1000:8.1f} ms "
              f"({cpu_cold * 1000:.0f} ms CPU)")
        print(f"PDF render:                         {t_pdf * 1000:8.1f} ms "
              f"({cpu_pdf * 1000:.0f} ms CPU; {len(pdf):,} bytes; target < 5000 ms)")

if __name__ == "__main__":
    main()
