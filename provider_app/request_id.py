"""A request id for every request, echoed back and carried into the jobs it enqueues.

One id ties together the access log line, the application's log lines and the
log lines of every background job the request caused, across machines: a
support engineer greps one value. The id comes from the ``X-Request-ID`` header
when a load balancer or client sent a sane one, otherwise it is generated.
It lives in a context variable so the log filter can read it from anywhere,
including a worker's job (``bind_job``) where there is no request.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
# Printable token characters only: the value goes into logs and response headers.
_SANE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("job_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_or_generate(value: str | None) -> str:
    """Keep an incoming id if it is a sane token, else make a new one."""
    if value and _SANE.match(value):
        return value
    return new_request_id()


@contextmanager
def bind_job() -> Iterator[None]:
    """Inside an RQ job: log with the enqueuing request's id and the job's own id."""
    from rq import get_current_job

    job = get_current_job()
    request_token = job_token = None
    if job is not None:
        request_token = request_id_var.set((job.meta or {}).get("request_id") or job.id)
        job_token = job_id_var.set(job.id)
    try:
        yield
    finally:
        if job_token is not None:
            job_id_var.reset(job_token)
        if request_token is not None:
            request_id_var.reset(request_token)


def init_app(app: Flask) -> None:
    """Register first in create_app, so the id exists before any other hook logs."""

    @app.before_request
    def _assign_request_id() -> None:
        rid = accept_or_generate(request.headers.get(HEADER))
        g.request_id = rid
        g._request_id_token = request_id_var.set(rid)

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        rid = g.get("request_id")
        if rid:
            response.headers[HEADER] = rid
        return response

    @app.teardown_request
    def _forget_request_id(_exc: BaseException | None) -> None:
        token = g.pop("_request_id_token", None)
        if token is not None:
            try:
                request_id_var.reset(token)
            except ValueError:  # set in another context (test clients reuse threads)
                request_id_var.set(None)
