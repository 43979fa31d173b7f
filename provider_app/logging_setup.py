"""Structured JSON logs for every process: web workers, gunicorn's access log, RQ, scheduler.

One line of JSON per record, with ``request_id`` and ``job_id`` when known, so a
log shipper (journald, Loki, CloudWatch, ...) can index them without parsing.
python-json-logger plugs into the standard ``logging`` module that Flask,
gunicorn, RQ and SQLAlchemy already use, so nothing else has to change.

``LOG_FORMAT=json`` (the default when ``THROUGHLINE_ENV=production``) installs
it; ``text`` leaves Python's default logging alone for a developer's terminal.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO

from gunicorn.glogging import Logger as GunicornBaseLogger
from pythonjsonlogger.json import JsonFormatter

from .request_id import job_id_var, request_id_var

FIELDS = "{asctime}{levelname}{name}{message}"
RENAMED = {"asctime": "ts", "levelname": "level", "name": "logger"}
_MARK = "_throughline_json"


class ContextFilter(logging.Filter):
    """Adds the current request id and job id (when there is one) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id_var.get()
        if rid and not hasattr(record, "request_id"):
            record.request_id = rid
        jid = job_id_var.get()
        if jid and not hasattr(record, "job_id"):
            record.job_id = jid
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(FIELDS, style="{", rename_fields=RENAMED, datefmt="%Y-%m-%dT%H:%M:%S%z")


def json_handler(stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    setattr(handler, _MARK, True)
    return handler


def configure_logging(fmt: str, level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Install one JSON handler on the root logger (idempotent: apps are built many times)."""
    if fmt != "json":
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
    root.addHandler(json_handler(stream))
    root.setLevel(level.upper())
    # One INFO line per rendering step of every PDF drowns the useful lines.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


def init_app(app) -> None:
    configure_logging(app.config.get("LOG_FORMAT", "text"), app.config.get("LOG_LEVEL", "INFO"))
    if app.config.get("LOG_FORMAT") == "json":
        # Flask's own handler would print every record a second time, as text.
        from flask.logging import default_handler

        app.logger.removeHandler(default_handler)


class GunicornLogger(GunicornBaseLogger):
    """gunicorn's error and access logs as JSON; one access record per request.

    ``gunicorn.conf.py`` names this class. The access record carries the
    request id the app echoed in ``X-Request-ID``, so access lines and app
    lines of one request share it.
    """

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(json_formatter())

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        headers = dict((k.lower(), v) for k, v in (resp.headers or []))
        self.access_log.info(
            "%s %s %s",
            environ.get("REQUEST_METHOD"),
            environ.get("RAW_URI"),
            status,
            extra={
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "status": int(status),
                "duration_ms": round(request_time.total_seconds() * 1000, 2),
                "bytes": getattr(resp, "sent", None),
                "remote": environ.get("REMOTE_ADDR"),
                "user_agent": environ.get("HTTP_USER_AGENT"),
                "request_id": headers.get("x-request-id"),
                "pid": os.getpid(),
            },
        )
