"""The RQ worker class production runs: ``rq worker -w provider_app.worker.Worker``.

RQ forks a fresh work-horse process for every job. Without this class the
app (and everything it imports) would be built again inside every horse;
here the worker builds it once, before forking, and each horse inherits it
copy-on-write. Connection pools are not shared across the fork: the child
drops the parent's pooled connections (SQLAlchemy's documented recipe) and
opens its own. The objects built at start-up are then frozen out of the garbage
collector (``gc.freeze``): full collections stop walking them, and a horse does not
touch (and so copy) their pages when it collects.
"""

from __future__ import annotations

import gc
import os

from rq import Worker as RqWorker

from . import jobs
from .extensions import db


def _fresh_pools_in_child() -> None:
    app = jobs._worker_app
    if app is None:
        return
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)


class Worker(RqWorker):
    """An rq Worker with the Flask app built once per worker process."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        jobs._app()
        gc.freeze()


os.register_at_fork(after_in_child=_fresh_pools_in_child)
