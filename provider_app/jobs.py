"""Background jobs on RQ: named queues, one wrapper, enqueue after commit.

Jobs take ids, never ORM objects, and run through ``run_job`` which gives them
an app context and commits (or rolls back) at the job boundary, like a request.
Jobs are enqueued only once the transaction that needs them has committed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, has_app_context
from redis import Redis
from rq import Queue, Retry
from sqlalchemy import event
from sqlalchemy.orm import Session

from .extensions import db
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


def enqueue_after_commit(func_path: str, *args: Any, queue: str = "default", **kwargs: Any) -> None:
    """Enqueue once the current transaction commits; dropped if it rolls back."""
    session = db.session()
    session.connection()  # make sure a transaction exists, so its end is seen
    pending = session.info.setdefault("pending_jobs", [])
    pending.append((func_path, args, queue, kwargs))


@event.listens_for(Session, "after_commit")
def _flush_pending_jobs(session: Session) -> None:
    pending = session.info.pop("pending_jobs", [])
    for func_path, args, queue, kwargs in pending:
        try:
            enqueue_now(func_path, *args, queue=queue, **kwargs)
        except Exception:  # Redis down: the periodic catch-up job re-finds the work
            current_app.logger.warning("could not enqueue %s; catch-up will retry", func_path)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending_jobs(session: Session, previous_transaction) -> None:
    if not previous_transaction.nested:
        session.info.pop("pending_jobs", None)


def ping(value: str) -> str:
    """A trivial job proving the wiring: records an audit event and echoes its input."""
    from .audit import record

    record("job.ping", object_type="job", reason=value)
    return f"pong:{value}"
