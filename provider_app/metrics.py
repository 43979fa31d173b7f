"""Prometheus metrics: request latency, queue depths, job durations and failures, open tasks.

Three sources, because each lives in a different place:

* **Request latency** is measured in the web process. Under gunicorn every
  worker is a separate process, so prometheus_client's multiprocess mode
  (``PROMETHEUS_MULTIPROC_DIR``, set by ``gunicorn.conf.py``) shares the
  histogram through files and any worker answers ``/metrics`` for the node.
* **Job durations and failures** are measured in RQ's work-horse processes, a
  fresh fork per job: per-process metric files would pile up by the thousand,
  so ``run_job`` adds each observation to a small Redis hash instead and the
  scrape reads it back. These are cluster-wide (all workers on all machines).
* **Queue depths and open tasks by state** are read at scrape time: a few
  Redis ``LLEN``/``ZCARD`` calls and ONE ``GROUP BY`` query, on the read
  replica when one is configured. Also cluster-wide.

Cluster-wide series carry the same value on every web node; aggregate them
with ``max`` rather than ``sum`` (docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from flask import Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)
JOB_NAMES_KEY = "throughline:metrics:jobs"
JOB_KEY = "throughline:metrics:job:{}"

# Not registered globally: each scrape builds its own registry (see render()).
REQUEST_LATENCY = Histogram(
    "throughline_http_request_duration_seconds",
    "Time from the first app hook to the response, by endpoint, method and status.",
    ["endpoint", "method", "status"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


# --- requests -----------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Register first in create_app: the after hook then runs last and times the commit too."""

    @app.before_request
    def _start_timer() -> None:
        g._metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("_metrics_started", None)
        if started is not None:
            REQUEST_LATENCY.labels(
                request.endpoint or "unmatched", request.method, str(response.status_code)
            ).observe(time.perf_counter() - started)
        return response


# --- jobs -------------------------------------------------------------------------


def _bucket_index(seconds: float) -> int:
    for i, bound in enumerate(JOB_BUCKETS):
        if seconds <= bound:
            return i
    return len(JOB_BUCKETS)  # +Inf


def record_job(redis, func_path: str, seconds: float, failed: bool) -> None:
    """Add one job run to the shared counters; never lets a metrics problem fail the job."""
    key = JOB_KEY.format(func_path)
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.sadd(JOB_NAMES_KEY, func_path)
        pipe.hincrby(key, f"b{_bucket_index(seconds)}", 1)
        pipe.hincrby(key, "count", 1)
        pipe.hincrbyfloat(key, "sum", seconds)
        if failed:
            pipe.hincrby(key, "failed", 1)
        pipe.execute()
    except Exception:  # Redis down: the job's own outcome matters more than its metric
        log.warning("could not record metrics for job %s", func_path, exc_info=True)


@contextmanager
def observe_job(func_path: str) -> Iterator[None]:
    """Time one job run (inside run_job's app context) and record success or failure."""
    from .jobs import redis_connection

    started = time.perf_counter()
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        record_job(redis_connection(), func_path, time.perf_counter() - started, failed)


# --- scrape-time collectors -------------------------------------------------------


class ClusterCollector:
    """Queue depths, job statistics and open tasks, read when Prometheus scrapes."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self) -> Iterator[Metric]:
        yield from self._guarded("queues", self._queues)
        yield from self._guarded("jobs", self._jobs)
        yield from self._guarded("tasks", self._open_tasks)

    def _guarded(self, source: str, collect) -> Iterable[Metric]:
        """One unreachable dependency must not hide the other metrics."""
        up = GaugeMetricFamily(
            f"throughline_metrics_{source}_up", f"1 when the {source} metrics could be read."
        )
        try:
            metrics = list(collect())
        except Exception:
            log.warning("metrics source %s failed", source, exc_info=True)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [*metrics, up]

    def _queues(self) -> Iterator[Metric]:
        from rq import Queue

        from .jobs import QUEUES, redis_connection

        depth = GaugeMetricFamily(
            "throughline_rq_queue_depth", "Jobs waiting in each RQ queue.", labels=["queue"]
        )
        failed = GaugeMetricFamily(
            "throughline_rq_failed_jobs",
            "Jobs in each queue's failed registry (kept for failure_ttl).",
            labels=["queue"],
        )
        started = GaugeMetricFamily(
            "throughline_rq_started_jobs", "Jobs being worked on now.", labels=["queue"]
        )
        conn = redis_connection(self.app)
        for name in QUEUES:
            queue = Queue(name, connection=conn)
            depth.add_metric([name], queue.count)
            failed.add_metric([name], queue.failed_job_registry.count)
            started.add_metric([name], queue.started_job_registry.count)
        yield from (depth, failed, started)

    def _jobs(self) -> Iterator[Metric]:
        from .jobs import redis_connection

        conn = redis_connection(self.app)
        durations = HistogramMetricFamily(
            "throughline_job_duration_seconds",
            "Run time of background jobs (all workers), by job function.",
            labels=["job"],
        )
        failures = CounterMetricFamily(
            "throughline_job_failures",
            "Background job runs that raised (each retry counts), by job function.",
            labels=["job"],
        )
        names = sorted(n.decode() if isinstance(n, bytes) else n
                       for n in conn.smembers(JOB_NAMES_KEY))
        pipe = conn.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(JOB_KEY.format(name))
        for name, raw in zip(names, pipe.execute(), strict=True):
            data = {k.decode(): v.decode() for k, v in raw.items()}
            cumulative, buckets = 0, []
            for i, bound in enumerate([*JOB_BUCKETS, float("inf")]):
                cumulative += int(data.get(f"b{i}", 0))
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            durations.add_metric([name], buckets, float(data.get("sum", 0)))
            failures.add_metric([name], int(data.get("failed", 0)))
        yield from (durations, failures)

    def _open_tasks(self) -> Iterator[Metric]:
        from .models import Task
        from .replica import report_session
        from .vocab import OPEN_STATUSES, Status

        gauge = GaugeMetricFamily(
            "throughline_open_tasks", "Open tasks by lifecycle state (all clients).",
            labels=["status"],
        )
        open_values = sorted(s.value for s in OPEN_STATUSES)
        with self.app.app_context(), report_session() as session:
            rows = session.execute(
                select(Task.status, func.count())
                .where(Task.status.in_(open_values))
                .group_by(Task.status)
            ).all()
        counts = {Status(status).value: n for status, n in rows}
        for status in open_values:
            gauge.add_metric([status], counts.get(status, 0))
        yield gauge


def render(app: Flask) -> bytes:
    """The exposition text for one scrape of this node."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_LATENCY)
    registry.register(ClusterCollector(app))
    return generate_latest(registry)


def scrape_allowed() -> bool:
    """A matching ``METRICS_TOKEN`` bearer, or (without a token configured) loopback only.

    A loopback request that a proxy forwarded (it carries X-Forwarded-For or Forwarded)
    came from somewhere else: a reverse proxy on the same host must not open /metrics.
    """
    token = current_app.config.get("METRICS_TOKEN") or ""
    if token:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)
    proxied = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    return request.remote_addr in {"127.0.0.1", "::1"} and not proxied


def response(app: Flask) -> Response:
    return Response(render(app), content_type=CONTENT_TYPE_LATEST)
