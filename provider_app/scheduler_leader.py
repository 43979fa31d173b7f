"""Exactly one periodic-job scheduler, however many are started: a Redis leader lock.

``rq cron`` (rq 3) does not coordinate instances: each one registers under its
own name (host:pid:random) and enqueues every due entry, so two of them run
every periodic job twice. Production therefore starts the scheduler through
this wrapper::

    python -m provider_app.scheduler_leader

It takes a Redis lock before scheduling and keeps renewing it on every
scheduler heartbeat. Any extra instance (a second machine, a restart that
overlaps the old process) waits as a hot standby and takes over within
``LOCK_TTL`` seconds after the leader dies. A leader that loses the lock (Redis
failover, a long pause) stops scheduling at once and goes back to waiting.
The entries themselves come from provider_app/schedule.py, as with ``rq cron``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time

from redis import Redis
from redis.exceptions import LockError
from redis.lock import Lock
from rq.cron import CronScheduler

from .logging_setup import configure_logging
from .redis_connect import connect
from .settings import wanted_log_format

LOCK_NAME = "throughline:scheduler:leader"
# Longer than rq's longest sleep between heartbeats (60 s), so a live leader never lapses.
LOCK_TTL = 90
STANDBY_POLL = 5
SCHEDULE_MODULE = "provider_app.schedule"

log = logging.getLogger("throughline.scheduler")


class LostLeadership(Exception):
    """The lock expired or was taken: stop scheduling before anything runs twice."""


class LeaderCronScheduler(CronScheduler):
    """rq's cron scheduler that renews the leader lock on each heartbeat."""

    def __init__(self, connection: Redis, lock: Lock, **kwargs):
        super().__init__(connection, **kwargs)
        self.lock = lock

    def heartbeat(self) -> None:
        try:
            self.lock.extend(LOCK_TTL, replace_ttl=True)
        except LockError as exc:
            raise LostLeadership(str(exc)) from exc
        super().heartbeat()

    def enqueue_jobs(self):
        if not self.lock.owned():
            raise LostLeadership("leader lock no longer owned")
        return super().enqueue_jobs()


def wait_for_leadership(lock: Lock, stopping: list[bool]) -> bool:
    """Block until this process holds the lock (True) or is asked to stop (False)."""
    announced = False
    while not stopping:
        if lock.acquire(blocking=False):
            return True
        if not announced:
            log.info("another scheduler is the leader; standing by")
            announced = True
        time.sleep(STANDBY_POLL)
    return False


def _stop_on_signals(stopping: list[bool]) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.append(True))


def run(connection: Redis) -> int:
    stopping: list[bool] = []
    _stop_on_signals(stopping)
    while not stopping:
        lock = connection.lock(LOCK_NAME, timeout=LOCK_TTL, thread_local=False)
        if not wait_for_leadership(lock, stopping):
            break
        log.info("this process is the scheduler leader")
        scheduler = LeaderCronScheduler(connection, lock)
        scheduler.load_config_from_file(SCHEDULE_MODULE)
        try:
            scheduler.start()  # returns on SIGINT/SIGTERM (it installs its own handlers)
            stopping.append(True)
        except LostLeadership as exc:
            log.warning("lost scheduler leadership (%s); standing by again", exc)
            _stop_on_signals(stopping)  # start() had installed its own handlers
        finally:
            with contextlib.suppress(LockError):
                lock.release()
    log.info("scheduler stopped")
    return 0


def main() -> int:
    env = os.environ
    configure_logging(wanted_log_format(env), env.get("LOG_LEVEL", "INFO"))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    connection = connect(
        env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        env.get("REDIS_SENTINELS", ""),
        env.get("REDIS_SENTINEL_MASTER", "mymaster"),
    )
    return run(connection)


if __name__ == "__main__":
    sys.exit(main())
