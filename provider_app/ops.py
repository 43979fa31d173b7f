"""Operations endpoints: liveness with dependencies, readiness, Prometheus metrics.

``/healthz`` answers whether this process can reach what it needs (database
``SELECT 1`` and Redis ``PING``); monitoring alerts on it. ``/readyz`` answers
whether this process should get traffic: the dependencies are up and the
database schema is at this code's migration head, so a node started before
``flask db upgrade`` finished (or running code older than the schema) is kept
out of the load balancer. Both are public (load balancers do not sign in) and
say only ok/fail per check, never connection details. ``/metrics`` is for
Prometheus only (a METRICS_TOKEN bearer, or loopback), see metrics.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, abort, current_app, jsonify
from sqlalchemy import text

from . import metrics
from .access import public
from .extensions import db
from .jobs import redis_connection

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


def _answer(checks: dict[str, dict]):
    ok = all(c["ok"] for c in checks.values())
    response = jsonify(status="ok" if ok else "fail", checks=checks)
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
    return _answer(checks)


@bp.route("/metrics")
@public  # guarded below: a METRICS_TOKEN bearer or loopback, not a signed-in user
def prometheus_metrics():
    if not metrics.scrape_allowed():
        abort(404)  # do not advertise the endpoint to the internet
    return metrics.response(current_app._get_current_object())
