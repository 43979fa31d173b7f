"""gunicorn settings for the production run: ``gunicorn -c gunicorn.conf.py wsgi:app``.

gunicorn also reads this file by itself when started from the repository root (as
``make run`` does); command-line options such as ``--bind`` and ``--workers`` win.
Everything can be tuned from the environment (docs/DEPLOYMENT.md):

* ``WEB_CONCURRENCY``: worker processes (default 2 x cores + 1, at most 12);
* ``GUNICORN_THREADS``: threads per worker (default 2; requests waiting on the
  database do not hold a whole process);
* ``PORT`` / ``GUNICORN_BIND``: where to listen (default 127.0.0.1:8000: put a
  load balancer or reverse proxy in front);
* ``GUNICORN_TIMEOUT``: seconds before a stuck worker is killed and replaced.

The app is not preloaded in the master: each worker builds its own app, so a
worker recycled by ``max_requests`` starts clean and no database connection or
Redis socket is ever shared across a fork. Logs are JSON on stdout/stderr
(provider_app/logging_setup.py); request latency is shared between workers
through prometheus_client's multiprocess directory, one per instance.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
from pathlib import Path

from provider_app.settings import wanted_log_format

MAX_WORKERS = 12

port = os.environ.get("PORT", "8000")
bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{port}")
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * multiprocessing.cpu_count() + 1,
                                                       MAX_WORKERS))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
preload_app = False
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then (memory creep in any library), staggered so they never
# all restart at once.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10
# Heartbeat files in memory, not on a disk that might stall (gunicorn creates them with
# mkstemp, so the shared directory is safe).
SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = SHM if os.path.isdir(SHM) else None
# Behind a proxy on the same host or network: trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
if wanted_log_format(os.environ) == "json":  # production; a developer's `make run` stays text
    logger_class = "provider_app.logging_setup.GunicornLogger"
proc_name = f"throughline-web-{port}"
# gunicorn's control socket, one per instance (the default path is shared by every instance).
control_socket = str(Path(__file__).resolve().parent / "instance" / f"gunicorn-{port}.ctl")

# One metrics directory per instance (two instances on one host must not mix files);
# set before any worker imports prometheus_client.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    str(Path(__file__).resolve().parent / "instance" / "prometheus" / f"web-{port}"),
)


def on_starting(server) -> None:
    """Start every run with an empty metrics directory (stale files would be summed in)."""
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def post_worker_init(worker) -> None:
    """Freeze what the app built at start-up out of the garbage collector (``gc.freeze``).

    The app, SQLAlchemy's mappers and every imported module are tens of thousands of
    long-lived objects; every full collection walked them all, which put a 60 ms stall into
    one request in three on the lead board. Frozen, collections only see request garbage.
    """
    gc.freeze()


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges; its counters and histograms stay summed in."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
