"""The SLA sweep on 1,000,000 open tasks (PostgreSQL) beside one bare UPDATE, and due times.

Run from the repository root (PostgreSQL on 127.0.0.1:5432 as ``postgres``):

    .venv/bin/python benchmarks/bench_sweep.py [--tasks 1000000] [--runs 5] [--reload]

It uses its own database (``throughline_bench_sla`` unless ``--database-url`` says
otherwise), creates the schema from the models and loads the tasks with
``INSERT ... SELECT ... generate_series`` copies of one ORM-made task per client.
The data is loaded once and reused (``--reload`` rebuilds it).

The table at ``now`` looks like a provider mid-shift (defaults: one sweep's
worth of a steady state; ``--at-risk-every 1000 --breach-every 2000 --reload``
gives the backlog after a sweeper outage of several minutes):

* 1 task in ``--at-risk-every`` (5,000) has just crossed its at-risk instant and
  1 in ``--breach-every`` (25,000) its breach instant: the work of this sweep;
* 2 % are already at risk with an open escalation (1 in 500 of those escalations
  has waited longer than the client's rule, so the sweep raises it);
* 5 % wait in ``pending_client``, a fifth of those past their at-risk instant
  (paused tasks must be skipped without being fetched);
* everything else is due within the next five days.

The bare statement is ``UPDATE tasks SET sla_state = 'breached' WHERE due_at < :now``:
it touches exactly the overdue rows, with no escalations, audit or
notifications. Each timing runs in a transaction that is rolled back, so every
run sees the same table; the medians are printed. The sweep's target is at most
3x the bare statement.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, event, func, inspect, select, text
from sqlalchemy.engine import make_url

# Allow running as a plain script without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provider_app import create_app  # noqa: E402
from provider_app.extensions import db  # noqa: E402
from provider_app.models import (  # noqa: E402
    CalendarVersion,
    Client,
    Contract,
    SlaTarget,
    StaffClient,
    StaffProfile,
    Task,
)
from provider_app.settings import normalise_database_url  # noqa: E402
from provider_app.vocab import Role, SlaState, Status  # noqa: E402
from sla.calendars import calendar_from_version  # noqa: E402
from sla.clock import start_clock  # noqa: E402
from sla.models import EscalationRule  # noqa: E402
from sla.sweep import BATCH, _marking, sweep  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/throughline_bench_sla"
CLIENTS = 20
DUE_TIMES = 100_000
RUNNING = ["received", "queued", "assigned", "in_progress", "submitted", "in_qa", "rework"]


def ensure_database(url: str) -> None:
    target = make_url(normalise_database_url(url))
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                             {"n": target.database})
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def build_reference_data() -> list[Task]:
    """Clients, calendars, contracts, rules, people, and one template task per client."""
    from provider_app.accounts import create_user
    from provider_app.demo import seed_catalogue

    task_type = seed_catalogue()["DATA"]
    zones = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"]
    templates = []
    for n in range(CLIENTS):
        tz = zones[n % len(zones)]
        client = Client(code=f"B{n:02d}", name=f"Bench client {n}", kind="agency", timezone=tz)
        db.session.add(client)
        db.session.flush()
        db.session.add(CalendarVersion(
            client_id=client.id, effective_from=datetime(2020, 1, 1).date(), timezone=tz,
            hours={str(d): [["09:00", "17:00"]] for d in range(5)}, holiday_country="US"))
        contract = Contract(client_id=client.id, name="MSA", starts_on=datetime(2020, 1, 1).date())
        contract.targets = [SlaTarget(task_type_id=task_type.id, priority="normal",
                                      target_hours=8)]
        db.session.add(contract)
        db.session.add_all([EscalationRule(client_id=client.id, from_level=1, ack_minutes=60),
                            EscalationRule(client_id=client.id, from_level=2, ack_minutes=240)])
        create_user(f"owner@b{n:02d}.test", [Role.CLIENT_ADMIN], password="bench-password-1",
                    client=client)
        task = Task(client_id=client.id, task_type_id=task_type.id, priority="normal",
                    fields={"description": "bench"}, status=Status.IN_PROGRESS,
                    received_at=datetime.now(UTC), sop_id=task_type.current_sop().id)
        db.session.add(task)
        db.session.flush()
        start_clock(task)
        templates.append(task)
    clients = db.session.scalars(select(Client).order_by(Client.id)).all()
    # A lead per client pod, and two senior leads with ten clients each.
    pods = [[c] for c in clients] + [clients[0::2], clients[1::2]]
    for n, pod in enumerate(pods):
        lead = create_user(f"lead{n}@provider.test", [Role.TEAM_LEAD],
                           password="bench-password-1")
        lead.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
        lead.staff_profile.client_links = [StaffClient(client_id=c.id) for c in pod]
    for n in range(2):
        create_user(f"ops{n}@provider.test", [Role.ADMIN], password="bench-password-1")
    db.session.commit()
    return templates


def load_tasks(templates: list[Task], total: int, at_risk_every: int, breach_every: int) -> None:
    """Copy each client's template ``total / CLIENTS`` times, shaped as the docstring says."""
    columns = [c.name for c in Task.__table__.columns if c.name != "id"]
    running = "ARRAY[" + ", ".join(f"'{s}'" for s in RUNNING) + "]"
    risk = f"g % {at_risk_every} = 10" if at_risk_every else "false"
    breach = f"g % {breach_every} = 11"
    already = f"g % 50 = 3 OR g % {2 * breach_every} = 11"  # at risk, escalation open
    # ``g`` numbers one client's copies (the patterns), ``gid`` all of them.
    overrides = {
        "public_id": "replace(gen_random_uuid()::text, '-', '')",
        "external_ref": "'B-' || gid",
        "status": f"CASE WHEN g % 20 = 7 THEN 'pending_client' ELSE ({running})[1 + g % 7] END",
        "sla_paused_since": "CASE WHEN g % 20 = 7 THEN :now - interval '1 hour' END",
        "sla_state": f"CASE WHEN {already} THEN 'at_risk' ELSE 'on_track' END",
        "escalation_level": f"CASE WHEN {already} THEN 1 ELSE 0 END",
        "received_at": ":now - interval '1 day'",
        "at_risk_at": f"CASE WHEN {risk} THEN :now - (g % 60) * interval '1 second' "
                      f"WHEN {breach} OR g % 50 = 3 OR g % 100 = 7 "
                      "THEN :now - interval '2 hours' "
                      "ELSE :now + (1 + g % 7200) * interval '1 minute' END",
        "breach_at": f"CASE WHEN {breach} THEN :now - (g % 60) * interval '1 second' "
                     "ELSE :now + interval '1 day' + (g % 7200) * interval '1 minute' END",
        "due_at": f"CASE WHEN {breach} "
                  "THEN :now - (g % 60) * interval '1 second' - interval '1 microsecond' "
                  "ELSE :now + interval '1 day' + (g % 7200) * interval '1 minute' END",
    }
    exprs = [overrides.get(c, f"t.{c}") for c in columns]
    per_client = total // len(templates)
    now = datetime.now(UTC)
    began = time.perf_counter()
    for index, template in enumerate(templates):
        db.session.execute(text(
            f"INSERT INTO tasks ({', '.join(columns)}) "  # noqa: S608 - our own column names
            f"SELECT {', '.join(exprs)} FROM tasks t, "
            f"LATERAL (SELECT g, g * {len(templates)} + {index} AS gid "
            "FROM generate_series(1, :n) AS g) s WHERE t.id = :id"
        ), {"n": per_client, "id": template.id, "now": now})
        db.session.commit()
    db.session.execute(text("DELETE FROM tasks WHERE external_ref IS NULL"))  # the templates
    db.session.execute(text(
        "INSERT INTO escalations (public_id, client_id, task_id, reason, level, detail, "
        "opened_at, level_changed_at, version) "
        "SELECT replace(gen_random_uuid()::text, '-', ''), client_id, id, 'sla_at_risk', 1, '', "
        ":now - interval '2 hours', "
        "CASE WHEN n % 500 = 0 THEN :now - interval '61 minutes' "  # waited too long
        "ELSE :now - (n % 59) * interval '1 minute' END, 1 "
        "FROM (SELECT client_id, id, row_number() OVER (ORDER BY id) AS n FROM tasks "
        "WHERE sla_state = 'at_risk') AS at_risk"
    ), {"now": now})
    db.session.commit()
    print(f"loaded {total:,} tasks in {time.perf_counter() - began:.0f} s")


def shape_of(now: datetime) -> tuple[int, int, int]:
    """(open tasks, due at-risk marks, due breach marks) of the loaded data set."""
    running = Task.status.in_(RUNNING)
    count = lambda *where: db.session.scalar(  # noqa: E731
        select(func.count()).select_from(Task).where(*where))
    return (count(),
            count(Task.sla_state == "on_track", running, Task.at_risk_at <= now),
            count(Task.sla_state.in_(["on_track", "at_risk"]), running, Task.breach_at <= now))


class StatementCounter:
    """Counts the statements sent to the database inside a ``with``."""

    def __init__(self):
        self.count = 0

    def _count(self, *args):
        self.count += 1

    def __enter__(self):
        self.count = 0
        event.listen(db.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(db.engine, "before_cursor_execute", self._count)


def mark_only(now: datetime) -> int:
    """Just the sweep's own marking UPDATEs (breach, then at risk): its share of the work."""
    params = {"now": now, "wall": now, "batch": BATCH}
    return sum(len(db.session.execute(_marking(state), params).all())
               for state in (SlaState.BREACHED, SlaState.AT_RISK))


def timed(work) -> tuple[float, object]:
    """Run ``work`` in a transaction that is rolled back: every run sees the same table."""
    began = time.perf_counter()
    try:
        result = work()
        db.session.flush()
        return time.perf_counter() - began, result
    finally:
        db.session.rollback()


def bench_due_times(calendar) -> None:
    rng = random.Random(5)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    starts = [start + timedelta(seconds=rng.uniform(0, 365 * 86400)) for _ in range(DUE_TIMES)]
    targets = [rng.choice((0.5, 4, 8, 16, 40)) for _ in range(DUE_TIMES)]
    began = time.perf_counter()
    for when, hours in zip(starts, targets, strict=True):
        calendar.add_business_hours(when, hours)
    elapsed = time.perf_counter() - began
    print(f"due times: {DUE_TIMES:,} add_business_hours in {elapsed:.2f} s "
          f"({DUE_TIMES / elapsed:,.0f}/s)")
    began = time.perf_counter()
    for when, hours in zip(starts, targets, strict=True):  # at-risk, due and breach instants
        due = calendar.add_business_hours(when, hours)
        calendar.add_business_hours(when, hours * 0.75)
        calendar.add_business_hours(due, 1 / 3_600_000_000)
    elapsed = time.perf_counter() - began
    print(f"clock thresholds: {DUE_TIMES:,} tasks x 3 instants in {elapsed:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--at-risk-every", type=int, default=5000, help="0: none this run")
    parser.add_argument("--breach-every", type=int, default=25000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reload", action="store_true", help="rebuild the data set")
    args = parser.parse_args()
    breaches = args.tasks // args.breach_every
    # Past their at-risk instant and still on track: the new ones, and the breaches
    # that were not at risk yet (half of them).
    expected = (args.tasks,
                (args.tasks // args.at_risk_every if args.at_risk_every else 0) + breaches // 2,
                breaches)

    ensure_database(args.database_url)
    app = create_app({"SQLALCHEMY_DATABASE_URI": normalise_database_url(args.database_url),
                      "SMTP_URL": "", "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024})
    with app.app_context():
        shape = None
        if not args.reload and inspect(db.engine).has_table("tasks"):
            if db.session.scalar(select(func.count()).select_from(Task)):
                shape = shape_of(_reference_now())
            db.session.rollback()  # end the transaction: DROP TABLE would wait for it
        if shape != expected:
            db.drop_all()
            db.create_all()
            load_tasks(build_reference_data(), args.tasks, args.at_risk_every, args.breach_every)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        version = db.session.scalar(select(CalendarVersion).limit(1))
        calendar = calendar_from_version(version)

        now = _reference_now()
        bare_sql = text("UPDATE tasks SET sla_state = 'breached' WHERE due_at < :now")
        bare_times, sweep_times, idle_times, marking_times, cpu_times = [], [], [], [], []
        result = None
        statements = StatementCounter()
        for _ in range(args.runs):
            seconds, updated = timed(lambda: db.session.execute(bare_sql, {"now": now}).rowcount)
            bare_times.append(seconds)
            seconds, _marked = timed(lambda: mark_only(now))
            marking_times.append(seconds)

            def both():
                began = time.process_time()
                with statements:
                    first = sweep(now)
                cpu_times.append(time.process_time() - began)
                began = time.perf_counter()
                sweep(now)  # the second run in a row finds nothing: the idle cost
                idle_times.append(time.perf_counter() - began)
                return first

            seconds, result = timed(both)
            sweep_times.append(seconds - idle_times[-1])
        bare, swept, idle, marked, cpu = (statistics.median(t) for t in (
            bare_times, sweep_times, idle_times, marking_times, cpu_times))
        print(f"tasks: {args.tasks:,} open; runs: {args.runs} (medians)")
        print(f"bare UPDATE ... WHERE due_at < now: {bare * 1000:.0f} ms ({updated:,} rows)")
        print(f"sweep: {swept * 1000:.0f} ms = {swept / bare:.2f}x bare "
              f"(at risk {result.at_risk:,}, breached {result.breached:,}, "
              f"escalations opened {result.opened:,}, superseded {result.superseded:,}, "
              f"levels raised {result.raised:,}, notifications {result.notifications:,}; "
              f"{statements.count} statements, {cpu * 1000:.1f} ms CPU in this process)")
        print(f"  its marking UPDATEs alone: {marked * 1000:.0f} ms = {marked / bare:.2f}x bare")
        print(f"idle sweep (nothing new): {idle * 1000:.1f} ms")
        bench_due_times(calendar)


def _reference_now() -> datetime:
    """The instant the data was shaped around (every task was received a day before it).

    Sweeping at that instant, not at the wall clock, keeps a kept data set's
    figures comparable from one run to the next.
    """
    return db.session.scalar(select(func.min(Task.received_at))) + timedelta(days=1)


if __name__ == "__main__":
    main()
