"""Background jobs on RQ: named queues, one wrapper, enqueue after commit.

Jobs take ids, never ORM objects, and run through ``run_job`` which gives them
an app context and commits (or rolls back) at the job boundary, like a request.
Jobs are enqueued only once the transaction that needs them has committed.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, current_app, has_app_context, has_request_context
from redis import Redis
from rq import Queue, Retry
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import event
from sqlalchemy.orm import Session

from .extensions import db
from .job_triggers import Trigger, TriggerCoalescer
from .metrics import observe_job
from .redis_connect import connect
from .request_id import bind_job, current_request_id

QUEUES = ("high", "default", "low")
DEFAULT_TIMEOUT = 600
_worker_app: Flask | None = None


def redis_connection(app: Flask | None = None) -> Redis:
    app = app or current_app
    conn = app.extensions.get("throughline_redis")
    if conn is None:
        conn = connect(  # a plain URL, or the Sentinel-elected master (redis_connect.py)
            app.config["REDIS_URL"],
            app.config.get("REDIS_SENTINELS", ""),
            app.config.get("REDIS_SENTINEL_MASTER", "mymaster"),
        )
        app.extensions["throughline_redis"] = conn
    return conn


def get_queue(name: str = "default") -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; queues are {', '.join(QUEUES)}")
    return Queue(name, connection=redis_connection(), is_async=current_app.config["RQ_ASYNC"])


def _app() -> Flask:
    """The app a worker process runs jobs in (created once per process)."""
    global _worker_app
    if _worker_app is None:
        from . import create_app

        _worker_app = create_app()
    return _worker_app


def run_job(func_path: str, *args: Any, **kwargs: Any) -> Any:
    """The shared wrapper every job runs through: app context, commit at the end."""
    module_name, _, func_name = func_path.rpartition(".")
    func: Callable = getattr(importlib.import_module(module_name), func_name)
    if has_app_context():  # inline (tests, SimpleWorker in-process)
        return _run_in_context(func_path, func, args, kwargs)
    with _app().app_context():
        return _run_in_context(func_path, func, args, kwargs)


def _run_in_context(func_path: str, func: Callable, args: tuple, kwargs: dict) -> Any:
    # Logs carry the enqueuing request's id; duration and failure feed /metrics.
    with bind_job(), observe_job(func_path):
        try:
            result = func(*args, **kwargs)
            db.session.commit()
            return result
        except Exception:
            db.session.rollback()
            raise


def enqueue_now(
    func_path: str,
    *args: Any,
    queue: str = "default",
    job_id: str | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    **kwargs: Any,
):
    """Enqueue immediately (the caller has nothing uncommitted the job depends on)."""
    return get_queue(queue).enqueue_call(
        run_job,
        args=(func_path, *args),
        kwargs=kwargs,
        timeout=timeout,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        retry=Retry(max=3, interval=[10, 60, 300]),
        job_id=job_id,
        description=func_path,
        meta={"request_id": current_request_id()} if current_request_id() else None,
    )


def enqueue_after_commit(func_path: str, *args: Any, queue: str = "default",
                         once_key: str | None = None, **kwargs: Any) -> None:
    """Enqueue once the current transaction commits; dropped if it rolls back.

    With ``once_key``, nothing is enqueued while that Redis key exists: the first commit
    sets it (``SET NX``) and enqueues, later ones skip, and the job deletes the key before
    it reads its input, so work committed after that enqueues it again. Intake uses this
    so a burst of new tasks costs one assignment run, not one per task. The key expires
    after ``ONCE_KEY_SECONDS`` in case the job never runs (the periodic run covers that).
    Such a job takes no arguments. In a web request, when ``JOB_TRIGGER_WINDOW_SECONDS``
    is above zero, the ``SET NX`` is not made by the request but by the process's trigger
    thread, once per window for all its commits (:mod:`.job_triggers`, which says why that
    loses nothing). Jobs and commands send inline: an RQ work horse ends with ``os._exit``,
    which a thread of its own would not outlive.
    """
    if once_key and (args or kwargs):
        raise ValueError("a job enqueued with once_key takes no arguments")
    session = db.session()
    session.connection()  # make sure a transaction exists, so its end is seen
    pending = session.info.setdefault("pending_jobs", [])
    pending.append((func_path, args, queue, once_key, kwargs))


ONCE_KEY_SECONDS = 300


@event.listens_for(Session, "after_commit")
def _flush_pending_jobs(session: Session) -> None:
    pending = session.info.pop("pending_jobs", [])
    for func_path, args, queue, once_key, kwargs in pending:
        if (once_key and has_request_context()
                and current_app.config["JOB_TRIGGER_WINDOW_SECONDS"] > 0):
            _trigger_coalescer().add((func_path, once_key, queue))
            continue
        try:
            if once_key:
                enqueue_once((func_path, once_key, queue))
            else:
                enqueue_now(func_path, *args, queue=queue, **kwargs)
        except Exception:  # Redis down: the periodic catch-up job re-finds the work
            current_app.logger.warning("could not enqueue %s; catch-up will retry", func_path)


def enqueue_once(trigger: Trigger) -> None:
    """Enqueue a once-key job unless its key says a run is already waiting."""
    func_path, once_key, queue = trigger
    if redis_connection().set(once_key, 1, nx=True, ex=ONCE_KEY_SECONDS):
        enqueue_now(func_path, queue=queue)


def _trigger_coalescer() -> TriggerCoalescer:
    app = current_app._get_current_object()
    coalescer = app.extensions.get("throughline_job_triggers")
    if coalescer is None:  # setdefault: two threads of one worker may race to make it
        coalescer = app.extensions.setdefault("throughline_job_triggers", TriggerCoalescer(
            app, app.config["JOB_TRIGGER_WINDOW_SECONDS"], enqueue_once))
    return coalescer


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending_jobs(session: Session, previous_transaction) -> None:
    if not previous_transaction.nested:
        session.info.pop("pending_jobs", None)


def ping(value: str) -> str:
    """A trivial job proving the wiring: records an audit event and echoes its input."""
    from .audit import record

    record("job.ping", object_type="job", reason=value)
    return f"pong:{value}"


# --- jobs an administrator must see: abandoned, failed, requeued -------------------------


@dataclass(frozen=True)
class QueueState:
    name: str
    queued: int
    running: int
    scheduled: int  # waiting for a retry (back-off) or a set time
    failed: int


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    job: str  # the job's function path (never its arguments: they may name client data)
    ended_at: datetime | None
    reason: str  # the last line of the error, shortened


def reap_abandoned(at: float | None = None) -> None:
    """Retry, or record as failed, every job whose worker died mid-run (``kill -9``, OOM).

    A running job's entry in RQ's started registry carries the worker's heartbeat
    expiry (the job's timeout, at most 30 s, plus 60 s). Once it has lapsed,
    RQ's own cleanup gives the job its next retry (with the back-off) or moves it to
    the failed registry with ``AbandonedJobError``. Workers run this every 10
    minutes; the ``reap-abandoned`` periodic job every minute (so a crashed worker's job is
    retried about a minute and a half after the crash, not up to ten), and the admin jobs
    page on every view, so what it shows is current.
    ``at`` (a Unix time) lets a test look past the heartbeat without waiting for it.
    """
    for name in QUEUES:
        queue = get_queue(name)
        StartedJobRegistry(queue=queue).cleanup(timestamp=at if at is not None else time.time())


def queue_states() -> list[QueueState]:
    states = []
    for name in QUEUES:
        queue = get_queue(name)
        states.append(QueueState(
            name=name, queued=queue.count,
            running=StartedJobRegistry(queue=queue).get_job_count(cleanup=False),
            scheduled=ScheduledJobRegistry(queue=queue).get_job_count(cleanup=False),
            failed=FailedJobRegistry(queue=queue).get_job_count(cleanup=False),
        ))
    return states


def failed_jobs(limit: int = 100) -> list[FailedJob]:
    """The most recent failed jobs of every queue, newest first."""
    found: list[FailedJob] = []
    for name in QUEUES:
        queue = get_queue(name)
        registry = FailedJobRegistry(queue=queue)
        ids = registry.get_job_ids(start=0, end=limit - 1, desc=True, cleanup=False)
        for job in Job.fetch_many(ids, connection=queue.connection):
            if job is None:  # expired between the two reads
                continue
            result = job.latest_result()
            error = (result.exc_string if result is not None else "") or ""
            last = error.strip().splitlines()[-1] if error.strip() else "(no error recorded)"
            found.append(FailedJob(id=job.id, queue=name, job=job.description or job.func_name,
                                   ended_at=job.ended_at, reason=last[:300]))
    found.sort(key=lambda j: j.ended_at or datetime.min, reverse=True)
    return found[:limit]


def requeue_failed(job_id: str, *, actor) -> bool:
    """Put a failed job back on its queue (audited); False when no such failed job exists."""
    from .audit import record

    for name in QUEUES:
        registry = FailedJobRegistry(queue=get_queue(name))
        try:
            job = registry.requeue(job_id)
        except (InvalidJobOperation, NoSuchJobError):
            continue
        record("job.requeued", object_type="job", actor=actor,
               reason=f"{job.description or job.func_name} ({job_id}) on queue {name}")
        return True
    return False
