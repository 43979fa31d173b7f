"""Log every SQL statement slower than ``SLOW_QUERY_MS`` (0, the default, turns it off).

The line is JSON like every other (logging_setup.py) and carries the request id
or job id, so a slow page leads straight to its statement. Parameters are never
logged (they hold client data); the statement text keeps its placeholders, so
lines group by statement shape. pg_stat_statements is the better tool where
the server preloads it; this works on any database and any host.
"""

from __future__ import annotations

import logging
import time

from flask import Flask
from sqlalchemy import event

from .extensions import db

log = logging.getLogger("throughline.slow_query")
MAX_STATEMENT = 2000


def init_app(app: Flask) -> None:
    threshold_ms = float(app.config.get("SLOW_QUERY_MS") or 0)
    if threshold_ms <= 0:
        return
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        if getattr(engine, "_throughline_slow_log", False):
            continue
        engine._throughline_slow_log = True
        event.listen(engine, "before_cursor_execute", _start)
        event.listen(engine, "after_cursor_execute", _make_finish(threshold_ms))


def _start(conn, cursor, statement, parameters, context, executemany) -> None:
    conn.info.setdefault("_query_started", []).append(time.perf_counter())


def _make_finish(threshold_ms: float):
    def _finish(conn, cursor, statement, parameters, context, executemany) -> None:
        started = conn.info.get("_query_started")
        if not started:
            return
        elapsed_ms = (time.perf_counter() - started.pop()) * 1000
        if elapsed_ms >= threshold_ms:
            log.warning(
                "slow query %.1f ms", elapsed_ms,
                extra={"duration_ms": round(elapsed_ms, 2),
                       "statement": " ".join(statement.split())[:MAX_STATEMENT]},
            )

    return _finish
