"""JSON logs: the root handler is installed once, gunicorn's access line is structured."""

import io
import json
import logging
from datetime import timedelta
from types import SimpleNamespace

from gunicorn.config import Config

from provider_app.logging_setup import GunicornLogger, configure_logging
from provider_app.settings import wanted_log_format


def test_production_defaults_to_json_and_log_format_wins():
    assert wanted_log_format({"THROUGHLINE_ENV": "production"}) == "json"
    assert wanted_log_format({}) == "text"
    assert wanted_log_format({"THROUGHLINE_ENV": "production", "LOG_FORMAT": "text"}) == "text"
    assert wanted_log_format({"LOG_FORMAT": "JSON"}) == "json"


def test_configure_logging_is_idempotent():
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        configure_logging("json", "INFO", io.StringIO())
        configure_logging("json", "INFO", io.StringIO())
        ours = [h for h in root.handlers if h not in before]
        assert len(ours) == 1
        configure_logging("text")  # leaves logging alone
        assert len([h for h in root.handlers if h not in before]) == 1
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
        root.setLevel(level)


def test_gunicorn_access_lines_are_json_with_the_request_id():
    cfg = Config()
    cfg.set("accesslog", "-")
    logger = GunicornLogger(cfg)
    stream = io.StringIO()
    for handler in logger.access_log.handlers:
        handler.setStream(stream)
    resp = SimpleNamespace(status="201 CREATED", sent=17,
                           headers=[("Content-Type", "application/json"),
                                    ("X-Request-ID", "rid-access")])
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": "/api/v1/tasks?x=1",
               "PATH_INFO": "/api/v1/tasks", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_USER_AGENT": "locust", "SERVER_PROTOCOL": "HTTP/1.1"}
    logger.access(resp, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=12.5))
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["logger"] == "gunicorn.access"
    assert line["status"] == 201 and line["method"] == "POST"
    assert line["path"] == "/api/v1/tasks" and line["duration_ms"] == 12.5
    assert line["request_id"] == "rid-access" and line["bytes"] == 17


def test_slow_statements_are_logged_without_parameters(app, caplog):
    from sqlalchemy import text

    from provider_app.extensions import db as _db
    from tests.ops.ops_support import make_app

    slow = make_app(app, SLOW_QUERY_MS=0.0001)  # every statement counts as slow
    with slow.app_context(), caplog.at_level(logging.WARNING, "throughline.slow_query"):
        _db.session.execute(text("SELECT :secret AS x"), {"secret": "client-data-42"})
        _db.session.rollback()
    selects = [r for r in caplog.records
               if r.name == "throughline.slow_query" and r.statement.startswith("SELECT")]
    assert selects and selects[0].statement.endswith("AS x")
    assert selects[0].duration_ms >= 0
    assert "client-data-42" not in caplog.text


def test_slow_query_log_is_off_by_default(app):
    from provider_app.extensions import db as _db

    with app.app_context():
        assert not getattr(_db.engine, "_throughline_slow_log", False)
