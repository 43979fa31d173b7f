"""A real HTTP server on loopback for the trust tests: its own app, database and Redis.

The unit tests' app runs every test inside a rolled-back transaction, which a
server thread cannot see. The fault and contract tests need committed data and
real sockets instead, so each gets a second app on its own SQLite file (or the
PostgreSQL test database), served by werkzeug's threaded server, and, where a
test stops Redis, a private ``redis-server`` on a free port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.serving import make_server

from provider_app import create_app
from tests.conftest import test_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_live_app(database_url: str, redis_url: str, **overrides) -> Flask:
    """An app as production builds it (async jobs, no SERVER_NAME) on the given stores."""
    config = test_config(database_url, tempfile.mkdtemp(prefix="throughline-live-"))
    config.update(REDIS_URL=redis_url, RATELIMIT_STORAGE_URI=redis_url, SERVER_NAME=None,
                  **overrides)
    return create_app(config)


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields the base URL."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@dataclass
class PrivateRedis:
    """A redis-server of the test's own (nothing on disk) that the test may stop and restart."""

    port: int
    workdir: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        return Redis.from_url(self.url)

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is missing (scripts/bootstrap.sh installs it)")
        self.process = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return
            except RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"private redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis(port=free_port(), workdir=Path(tempfile.mkdtemp(prefix="tl-redis-")))
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()
