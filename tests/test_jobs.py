"""Background jobs run for real on Redis through the shared wrapper."""

from rq import SimpleWorker
from sqlalchemy import select

from provider_app.extensions import db as _db
from provider_app.jobs import enqueue_after_commit, enqueue_now, get_queue, run_job
from provider_app.models import AuditEvent


def test_a_job_runs_end_to_end_on_redis(app, db, redis_conn):
    job = enqueue_now("provider_app.jobs.ping", "hello")
    queue = get_queue("default")
    assert queue.count == 1
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    assert job.return_value() == "pong:hello"
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "job.ping"))


def test_jobs_wait_for_the_commit(app, db, redis_conn):
    enqueue_after_commit("provider_app.jobs.ping", "later")
    queue = get_queue("default")
    assert queue.count == 0
    _db.session.commit()
    assert queue.count == 1


def test_rolled_back_work_enqueues_nothing(app, db, redis_conn):
    enqueue_after_commit("provider_app.jobs.ping", "never")
    _db.session.rollback()
    _db.session.commit()
    assert get_queue("default").count == 0


def test_abandoned_jobs_are_reaped_every_minute(app, db, redis_conn):
    from provider_app.schedule import PERIODIC

    [entry] = [p for p in PERIODIC if p.name == "reap-abandoned"]
    assert (entry.func_path, entry.interval, entry.queue) == (
        "provider_app.jobs.reap_abandoned", 60, "high")
    assert run_job(entry.func_path) is None  # nothing abandoned: nothing to do
