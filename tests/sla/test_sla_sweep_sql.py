"""The sweep as the scheduler runs it, and the SQL it sends (indexed, never a Seq Scan)."""

from datetime import timedelta

import pytest
from rq import SimpleWorker
from sqlalchemy import event, func, select, text

from provider_app.db_types import utcnow
from provider_app.extensions import db as _db
from provider_app.jobs import enqueue_now, get_queue
from provider_app.models import Task
from provider_app.schedule import PERIODIC
from provider_app.vocab import SlaState, Status
from sla.sweep import RUNNING, sweep
from tests.conftest import is_postgres
from tests.factories import gen_client, gen_contract, gen_task, gen_task_type


def test_the_sweep_and_the_outbox_are_declared_once():
    names = [p.name for p in PERIODIC]
    assert len(names) == len(set(names))
    paths = [p.func_path for p in PERIODIC]
    assert paths.count("sla.sweep.run_sweep") == 1
    assert paths.count("sla.notify.send_outbox") == 1
    sweep_entry = next(p for p in PERIODIC if p.func_path == "sla.sweep.run_sweep")
    assert sweep_entry.interval == 60 and sweep_entry.timeout >= 60


def test_the_sweep_job_runs_on_redis(app, db, redis_conn):
    client, tt = gen_client(), gen_task_type()
    gen_contract(client, {(tt, "normal"): 1}, calendar_hours=True)
    task = gen_task(client, tt, status=Status.IN_PROGRESS,
                    received_at=utcnow() - timedelta(hours=3))
    job = enqueue_now("sla.sweep.run_sweep", queue="high")
    queue = get_queue("high")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    assert job.return_value()["breached"] == 1
    assert db.session.scalar(select(Task.sla_state).where(Task.id == task.id)) == (
        SlaState.BREACHED)


def copy_task(template: Task, count: int, overrides: dict[str, str]) -> None:
    """``count`` copies of ``template`` made by PostgreSQL itself (generate_series).

    Columns are copied generically, so columns other areas add keep working;
    ``overrides`` gives SQL expressions (``g`` is the series value).
    """
    columns = [c.name for c in Task.__table__.columns if c.name != "id"]
    exprs = [overrides.get(c, f"t.{c}") for c in columns]
    _db.session.execute(text(
        f"INSERT INTO tasks ({', '.join(columns)}) SELECT {', '.join(exprs)} "  # noqa: S608
        "FROM tasks t, generate_series(1, :count) AS g WHERE t.id = :id"
    ), {"count": count, "id": template.id})


@pytest.fixture
def many_open_tasks(app, db):
    if not is_postgres(app):
        pytest.skip("query plans are checked on PostgreSQL")
    client, tt = gen_client(), gen_task_type()
    gen_contract(client, {(tt, "normal"): 8})
    template = gen_task(client, tt, status=Status.IN_PROGRESS)
    ahead = {
        "public_id": "md5(random()::text || g::text)",
        "external_ref": "NULL",
        "at_risk_at": "now() + g * interval '1 minute'",
        "breach_at": "now() + interval '2 days' + g * interval '1 minute'",
        "due_at": "now() + interval '2 days' + g * interval '1 minute'",
    }
    copy_task(template, 20_000, ahead)
    copy_task(template, 30, {**ahead, "at_risk_at": "now() - g * interval '1 minute'"})
    copy_task(template, 20, {**ahead, "breach_at": "now() - g * interval '1 minute'",
                             "at_risk_at": "now() - interval '1 day'"})
    _db.session.execute(text("ANALYZE tasks"))
    return client


def test_sweep_statements_never_scan_the_whole_task_table(many_open_tasks, db):
    statements: list[tuple[str, dict]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if not executemany and "tasks" in statement:
            statements.append((statement, parameters))

    event.listen(_db.engine, "before_cursor_execute", capture)
    try:
        result = sweep(utcnow())
    finally:
        event.remove(_db.engine, "before_cursor_execute", capture)
    assert (result.breached, result.at_risk) == (20, 30)
    assert statements
    connection = db.session.connection()
    for statement, parameters in statements:
        plan = "\n".join(row[0] for row in connection.exec_driver_sql(
            "EXPLAIN " + statement, parameters))
        assert "Seq Scan on tasks" not in plan, f"{statement}\n{plan}"


def test_the_scans_use_the_sla_indexes(many_open_tasks, db):
    plans = {}
    for name, column in [("ix_tasks_sla_at_risk", Task.at_risk_at),
                         ("ix_tasks_sla_breach", Task.breach_at)]:
        stmt = select(func.count()).select_from(Task).where(
            Task.sla_state == SlaState.ON_TRACK, Task.status.in_(RUNNING), column <= utcnow())
        compiled = stmt.compile(dialect=db.engine.dialect,
                                compile_kwargs={"render_postcompile": True})
        plans[name] = "\n".join(row[0] for row in db.session.connection().exec_driver_sql(
            "EXPLAIN " + str(compiled), compiled.params))
        assert name in plans[name], plans[name]


def test_the_cli_runs_a_sweep_and_the_outbox(app, db):
    client, tt = gen_client(), gen_task_type()
    gen_contract(client, {(tt, "normal"): 1}, calendar_hours=True)
    gen_task(client, tt, status=Status.IN_PROGRESS, received_at=utcnow() - timedelta(hours=3))
    runner = app.test_cli_runner()
    swept = runner.invoke(args=["sla", "sweep"])
    assert swept.exit_code == 0, swept.output
    assert "breached 1" in swept.output and "escalations opened 1" in swept.output
    assert "breached 0" in runner.invoke(args=["sla", "sweep"]).output
    sent = runner.invoke(args=["sla", "send-outbox"])
    assert sent.exit_code == 0 and "0 e-mails sent" in sent.output  # no SMTP_URL in tests
