"""Periodic jobs, declared once: ``rq cron provider_app.schedule`` runs exactly one scheduler.

Each entry has a stable name; the scheduler builds its list from this module
at start-up, so a restart never duplicates an entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from rq import cron

from .jobs import run_job


@dataclass(frozen=True)
class Periodic:
    name: str
    func_path: str
    interval: int | None = None  # seconds
    cron: str | None = None  # crontab expression (UTC)
    queue: str = "default"
    timeout: int = 300


PERIODIC: list[Periodic] = [
    Periodic("outbox", "provider_app.jobs.ping", interval=3600, queue="low"),
]


def register_all() -> None:
    for job in PERIODIC:
        cron.register(
            run_job,
            job.queue,
            args=(job.func_path,),
            interval=job.interval,
            cron=job.cron,
            job_timeout=job.timeout,
            name=job.name,
        )


register_all()
