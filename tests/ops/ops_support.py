"""Helpers for the operations tests: a job that reports what it sees, a second app."""

from __future__ import annotations

import logging
import tempfile

from provider_app import create_app
from provider_app.request_id import current_request_id, job_id_var
from tests.conftest import test_config

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1
UNREACHABLE_DATABASE = "postgresql://nobody@127.0.0.1:1/none"


def echo_context() -> dict:
    """A job: log one line and return the request id and job id it runs under."""
    logging.getLogger("throughline.test.job").info("inside the job")
    return {"request_id": current_request_id(), "job_id": job_id_var.get()}


def fail_always() -> None:
    raise RuntimeError("this job always fails")


def make_app(base_app, **overrides):
    """Another app on the same test database, with some settings changed."""
    config = test_config(base_app.config["SQLALCHEMY_DATABASE_URI"], tempfile.mkdtemp())
    config.update(overrides)
    return create_app(config)
