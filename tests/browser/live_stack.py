"""The app as a person meets it: a fresh demo database, a real web server and a real worker.

The browser tests drive this stack over loopback, so what they see is what
``make run`` serves: gunicorn with several workers, an RQ worker, the demo data
from ``seed-demo``. The stack has its own Redis server on a free port (unless
``BROWSER_REDIS_URL`` names one), so two test runs on one machine never take each
other's jobs. Each process logs to ``test-output/live/`` so a failing journey can
be read alongside its screenshot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue
from rq.job import Job

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
READY_TIMEOUT = 30.0


class StackError(RuntimeError):
    """The live stack could not start; the message carries the process log tail."""


@dataclass
class LiveStack:
    base_url: str
    workdir: Path
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    seed_output: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # seconds per start-up step

    def timed(self, step: str, started: float) -> None:
        self.timings[step] = time.monotonic() - started

    def url(self, path: str) -> str:
        return self.base_url + path

    def flask(self, *args: str) -> str:
        """Run ``flask --app wsgi ARGS`` against the live database; return its output."""
        done = subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "wsgi", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            raise StackError(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def setup(self, name: str, **arguments: object) -> dict:
        """Run ``tests/browser/stack_setup.py``'s ``name`` against the live database."""
        done = subprocess.run(
            [sys.executable, "-m", "tests.browser.stack_setup", name, json.dumps(arguments)],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            raise StackError(f"set-up {name} failed:\n{done.stdout}\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def wait_for_assignment(self, timeout: float = 60.0) -> None:
        """Return once no automatic-assignment run is queued, running or asked for again.

        Intake enqueues a batch run after each commit; a journey that picks queued tasks
        on the board waits for it, or the batch could take a ticked task under its feet.
        """
        from provider_app.assignment.batch import JOB_PATH, LOCK_KEY, RERUN_KEY

        redis = Redis.from_url(self.env["REDIS_URL"])
        queue = Queue("default", connection=redis)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = Job.fetch_many(queue.started_job_registry.get_job_ids(), connection=redis)
            pending = [job for job in [*queue.get_jobs(), *running]
                       if job is not None and job.args[:1] == (JOB_PATH,)]
            if not pending and not redis.exists(LOCK_KEY) and not redis.exists(RERUN_KEY):
                return
            time.sleep(0.2)
        raise StackError(f"automatic assignment still busy after {timeout:.0f} s:\n"
                         f"{_log_tail(self, 'worker')}")

    def stop(self) -> None:
        """Last started, first stopped: SIGTERM lets each finish what it holds; then force."""
        for proc in reversed(self.processes.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_environment(workdir: Path, redis_url: str) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "TEST_"))
    }
    env.update(
        DATABASE_URL=f"sqlite:///{workdir / 'live.db'}",
        REDIS_URL=redis_url,
        RATELIMIT_STORAGE_URI=redis_url,
        RATELIMIT_ENABLED="false",  # dozens of sign-ins from 127.0.0.1 in a minute
        ARGON2_TIME_COST="1",  # cheap demo password hashes: the seed and sign-ins run
        ARGON2_MEMORY_COST="1024",  # on a busy 2-core machine
        SECRET_KEY="browser-tests-secret-key-0123456789abcdef",
        THROUGHLINE_ENV="development",
        UPLOAD_DIR=str(workdir / "uploads"),
        EXPORT_DIR=str(workdir / "exports"),
        PYTHONUNBUFFERED="1",
    )
    return env


SEED = """
import sys

from provider_app import create_app
from provider_app.extensions import db

app = create_app()
with app.app_context():
    db.create_all()
result = app.test_cli_runner().invoke(args=["seed-demo"])
sys.stdout.write(result.output)
if result.exception is not None and not isinstance(result.exception, SystemExit):
    raise result.exception
sys.exit(result.exit_code)
"""


def seed(stack: LiveStack) -> str:
    """Build the tables from the models, then run the ``seed-demo`` command; its output.

    The tables come from ``db.create_all()`` as in the unit tests: ``flask db
    upgrade`` is covered by tests/test_migrations.py, and a migration that lags
    behind a model change should not hide every journey behind one unrelated
    failure. Both steps share one process of their own (the app is slow to import,
    and the test process's extensions must stay untouched).
    """
    done = subprocess.run(
        [sys.executable, "-c", SEED],
        cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=600,
    )
    if done.returncode != 0:
        raise StackError(f"seeding the demo database failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def start(workdir: Path, log_dir: Path) -> LiveStack:
    """Redis, a seeded database, the web server and the worker; wait until all answer.

    gunicorn starts while the database is being seeded (its workers only import
    the app until a request comes); the worker starts after, so its first job
    never waits on the seed's long write transaction.
    """
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    stack = LiveStack(base_url=f"http://127.0.0.1:{port}", workdir=workdir, log_dir=log_dir)
    try:
        started = time.monotonic()
        stack.env = stack_environment(workdir, _redis(stack))
        stack.timed("redis", started)
        _spawn(stack, "web", [
            str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}",
            "--workers", "2", "--threads", "4", "--graceful-timeout", "5",
            "--access-logfile", "-", "wsgi:app",
        ])
        started = time.monotonic()
        stack.seed_output = seed(stack)
        stack.timed("schema+seed-demo", started)
        (log_dir / "seed-demo.log").write_text(stack.seed_output)
        started = time.monotonic()
        _spawn(stack, "worker", [
            str(VENV_BIN / "rq"), "worker", "--url", stack.env["REDIS_URL"],
            "--with-scheduler", "high", "default", "low",
        ])
        _wait_for_web(stack)
        stack.timed("web", started)
        started = time.monotonic()
        _wait_for_worker(stack)
        stack.timed("worker", started)
    except BaseException:
        stack.stop()
        raise
    return stack


def _redis(stack: LiveStack) -> str:
    """A private redis-server (nothing kept on disk), or the one BROWSER_REDIS_URL names."""
    url = os.environ.get("BROWSER_REDIS_URL")
    if url:
        Redis.from_url(url).flushdb()  # that index is given to the browser tests
        return url
    server = shutil.which("redis-server")
    if server is None:
        raise StackError("redis-server is missing (scripts/bootstrap.sh installs it), "
                         "or set BROWSER_REDIS_URL to a Redis database the tests may flush")
    port = free_port()
    _spawn(stack, "redis", [
        server, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
        "--appendonly", "no", "--dir", str(stack.workdir),
    ])
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        _check_alive(stack, "redis")
        try:
            if Redis.from_url(url, socket_connect_timeout=1).ping():
                return url
        except RedisConnectionError:
            time.sleep(0.05)
    raise StackError(f"redis-server not ready:\n{_log_tail(stack, 'redis')}")


def _spawn(stack: LiveStack, name: str, argv: list[str]) -> None:
    log = (stack.log_dir / f"{name}.log").open("w")
    stack.processes[name] = subprocess.Popen(
        argv, cwd=ROOT, env=stack.env or None, stdout=log, stderr=subprocess.STDOUT
    )


def _log_tail(stack: LiveStack, name: str, lines: int = 30) -> str:
    path = stack.log_dir / f"{name}.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _check_alive(stack: LiveStack, name: str) -> None:
    proc = stack.processes[name]
    if proc.poll() is not None:
        raise StackError(
            f"{name} exited with {proc.returncode}; log tail:\n{_log_tail(stack, name)}"
        )


def _wait_for_web(stack: LiveStack) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        _check_alive(stack, "web")
        try:
            with urllib.request.urlopen(stack.url("/login"), timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise StackError(f"web server not ready in {READY_TIMEOUT:.0f} s:\n{_log_tail(stack, 'web')}")


def _wait_for_worker(stack: LiveStack) -> None:
    """Readiness is a job done: the worker ran ``ping`` against the live database."""
    from provider_app.jobs import run_job

    job = Queue("default", connection=Redis.from_url(stack.env["REDIS_URL"])).enqueue(
        run_job, "provider_app.jobs.ping", "browser-harness", result_ttl=60
    )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        _check_alive(stack, "worker")
        status = job.get_status(refresh=True)
        if status == "finished" and job.return_value() == "pong:browser-harness":
            return
        if status == "failed":
            break
        time.sleep(0.2)
    raise StackError(f"worker did not run the ping job:\n{_log_tail(stack, 'worker')}")
