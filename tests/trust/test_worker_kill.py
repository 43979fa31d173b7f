"""A worker killed with ``kill -9`` mid-job: the job is retried or failed, never lost.

A real ``rq worker`` (the production worker class) runs against a private
redis-server; the test kills its whole process group (worker and work horse)
while the job sleeps. The job is then still "started" and nobody knows it died.
Once the heartbeat in RQ's started registry lapses (at most 90 s with our job
timeouts), the registry cleanup that every worker runs, and the admin jobs page
runs on each view, gives the job its next retry, or when it has none left
records it as failed with ``AbandonedJobError``: the admin page lists it and an
admin can requeue it. The tests look past the heartbeat (``at=now + 120``)
instead of waiting for it. They run in the SQLite pass only: Redis and RQ are
under test here, not the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rq import SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from provider_app import jobs
from provider_app.models import AuditEvent
from provider_app.vocab import Role
from tests.conftest import AppClient
from tests.factories import gen_user
from tests.ops.ops_support import make_app
from tests.trust.live_server import PrivateRedis, private_redis

ROOT = Path(__file__).resolve().parents[2]
SLOW_JOB = "tests.trust.fault_jobs.slow_step"
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")),
    reason="runs once, in the SQLite pass (RQ and Redis under test, not the database)",
)


def _wait(condition: Callable[[], bool], what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
def job_app(app, redis_server):
    other = make_app(app, REDIS_URL=redis_server.url)
    other.test_client_class = AppClient
    return other


@pytest.fixture
def start_worker(redis_server):
    """Start ``rq worker`` (own process group, so kill -9 takes its work horse too)."""
    started: list[subprocess.Popen] = []
    workdir = Path(tempfile.mkdtemp(prefix="tl-worker-"))

    def _start() -> subprocess.Popen:
        env = {**os.environ, "REDIS_URL": redis_server.url, "PYTHONPATH": str(ROOT),
               "DATABASE_URL": f"sqlite:///{workdir / 'worker.db'}",
               "SECRET_KEY": "worker-kill-test-secret-0123456789abcdef"}
        env.pop("TEST_DATABASE_URL", None)
        log = (workdir / f"worker{len(started)}.log").open("w")
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "rq"), "worker", "--with-scheduler",
             "-w", "provider_app.worker.Worker", "--url", redis_server.url,
             "high", "default", "low"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        started.append(proc)
        return proc

    yield _start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def _kill_mid_job(start_worker, marker: Path) -> None:
    worker = start_worker()
    _wait(marker.exists, "the job has started")
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work horse, no clean-up
    worker.wait(timeout=10)


def test_a_killed_job_is_retried(job_app, start_worker, redis_server, tmp_path):
    marker = tmp_path / "started"
    with job_app.app_context():
        job = jobs.enqueue_now(SLOW_JOB, str(marker))
    _kill_mid_job(start_worker, marker)

    job.refresh()
    assert job.get_status() == "started"  # nobody knows yet: the heartbeat has not lapsed
    with job_app.app_context():
        jobs.reap_abandoned(at=time.time() + 120)
    job.refresh()
    assert job.get_status() == "scheduled" and job.retries_left == 2  # back-off, then again

    with job_app.app_context():
        queue = jobs.get_queue("default")
        # What a worker's scheduler does once the 10 s back-off is over (the killed worker
        # still holds the scheduler lock for a minute; another worker takes it over).
        ScheduledJobRegistry(queue=queue).requeue(job.id)
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    assert job.get_status() == "finished" and job.return_value() == "finished on a later run"


def test_a_killed_job_without_retries_is_failed_shown_to_an_admin_and_requeued(
    job_app, db, start_worker, redis_server, tmp_path, monkeypatch
):
    marker = tmp_path / "started"
    with job_app.app_context():
        job = jobs.get_queue("default").enqueue_call(  # a job that opted out of retries
            jobs.run_job, args=(SLOW_JOB, str(marker)), timeout=600, description=SLOW_JOB,
        )
    _kill_mid_job(start_worker, marker)

    admin = gen_user(Role.ADMIN)
    client = job_app.test_client().login(admin)
    now = time.time()
    monkeypatch.setattr(jobs.time, "time", lambda: now + 120)  # past the heartbeat
    page = client.get("/admin/jobs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert job.id in html and SLOW_JOB in html and "AbandonedJobError" in html
    assert Job.fetch(job.id, connection=redis_server.client()).get_status() == "failed"

    assert client.post("/admin/jobs", data={"job_id": job.id}).status_code == 302
    assert client.post("/admin/jobs", data={"job_id": "no-such-job"}).status_code == 404
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "job.requeued"))
    assert event.actor_id == admin.id and job.id in event.reason
    with job_app.app_context():
        queue = jobs.get_queue("default")
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    assert job.get_status() == "finished" and job.return_value() == "finished on a later run"


def test_only_admins_see_the_jobs_page(job_app, db, redis_server):
    lead = gen_user(Role.TEAM_LEAD)
    assert job_app.test_client().login(lead).get("/admin/jobs").status_code == 403
