"""Operations endpoints: liveness with dependencies, readiness, Prometheus metrics.

``/healthz`` answers whether this process can reach what it needs (database
``SELECT 1`` and Redis ``PING``); monitoring alerts on it. ``/readyz`` answers
whether this process should get traffic: the database is up and its schema is
at this code's migration head (Redis is reported, "degraded", but an outage
does not stop traffic: intake works without it), so a node started before
``flask db upgrade`` finished (or running code older than the schema) is kept
out of the load balancer. Both are public (load balancers do not sign in) and
say only ok/fail per check, never connection details. ``/metrics`` is for
Prometheus only (a METRICS_TOKEN bearer, or loopback), see metrics.py.
``/admin/jobs`` shows administrators the job queues: what waits, runs, waits for
a retry, and what failed (a job whose worker was killed included), with a requeue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from redis.exceptions import RedisError
from sqlalchemy import text

from . import jobs, metrics
from .access import public, roles_required
from .extensions import db
from .jobs import redis_connection
from .vocab import Role

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _check(name: str, probe: Callable[[], dict | None]) -> dict:
    started = time.perf_counter()
    try:
        result = {"ok": True, **(probe() or {})}  # a probe may report ok=False itself
    except Exception as exc:
        log.warning("health check %s failed: %s", name, exc)
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database() -> None:
    db.session.execute(text("SELECT 1"))


def _redis() -> None:
    redis_connection().ping()


@cache
def code_heads() -> frozenset[str]:
    """The migration head(s) this code expects (read once per process)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def _migrations() -> dict:
    """ok only when the database is exactly at this code's head (alembic current == head)."""
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)  # per probe noise
    current = frozenset(
        MigrationContext.configure(db.session.connection()).get_current_heads()
    )
    expected = code_heads()
    return {"ok": current == expected, "current": sorted(current), "head": sorted(expected)}


def _answer(checks: dict[str, dict], required: tuple[str, ...] | None = None):
    """200 when every ``required`` check (default: all) is ok; "degraded" when another is not."""
    ok = all(checks[name]["ok"] for name in required or checks)
    status = "fail" if not ok else "ok" if all(c["ok"] for c in checks.values()) else "degraded"
    response = jsonify(status=status, checks=checks)
    response.status_code = 200 if ok else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/healthz")
@public
def healthz():
    return _answer({"database": _check("database", _database), "redis": _check("redis", _redis)})


@bp.route("/readyz")
@public
def readyz():
    checks = {"database": _check("database", _database), "redis": _check("redis", _redis)}
    if checks["database"]["ok"]:
        checks["migrations"] = _check("migrations", _migrations)
    else:
        checks["migrations"] = {"ok": False, "error": "database unreachable"}
    # Redis down does not take a node out of rotation: intake goes on without it and the
    # queued work catches up (docs/SECURITY.md, "Fault tolerance"); /healthz still alerts.
    return _answer(checks, required=("database", "migrations"))


@bp.route("/metrics")
@public  # guarded below: a METRICS_TOKEN bearer or loopback, not a signed-in user
def prometheus_metrics():
    if not metrics.scrape_allowed():
        abort(404)  # do not advertise the endpoint to the internet
    return metrics.response(current_app._get_current_object())


@bp.route("/admin/jobs", methods=["GET"])
@roles_required(Role.ADMIN)
def jobs_page():
    """Queues and failed jobs; abandoned jobs (worker killed) are reaped first."""
    try:
        jobs.reap_abandoned()
        states, failed = jobs.queue_states(), jobs.failed_jobs()
    except RedisError:
        return render_template("ops/jobs.html", states=None, failed=[]), 503
    return render_template("ops/jobs.html", states=states, failed=failed)


@bp.route("/admin/jobs", methods=["POST"])
@roles_required(Role.ADMIN)
def requeue_job():
    """Requeue one failed job (by id, from the form): the admin has fixed the cause."""
    job_id = request.form.get("job_id", "").strip()
    if not job_id or len(job_id) > 64 or not jobs.requeue_failed(job_id, actor=current_user):
        abort(404)
    flash("The job is back on its queue.", "success")
    return redirect(url_for("ops.jobs_page"))
