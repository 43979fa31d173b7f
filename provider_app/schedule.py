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
    Periodic("outbox", "sla.notify.send_outbox", interval=60, queue="low"),
    Periodic("sla-sweep", "sla.sweep.run_sweep", interval=60, queue="high"),
    Periodic("idempotency-purge", "provider_app.intake.idempotency.purge_expired_keys",
             interval=3600, queue="low"),
    Periodic("retention-purge", "provider_app.retention.purge_expired", cron="15 3 * * *",
             queue="low", timeout=1800),
    Periodic("export-expiry", "client_portal.data_export.expire_exports", cron="45 3 * * *",
             queue="low"),
    Periodic("qa-lot-sweep", "qa.lots.sweep", interval=600),
    # Daily; stores last month's SLA report for clients whose first business day it is.
    Periodic("sla-monthly-reports", "sla.reporting.jobs.monthly_reports", cron="0 6 * * *",
             queue="low", timeout=3600),
    Periodic("assignment-batch", "provider_app.assignment.batch.assign_batch_job", interval=60,
             timeout=120),
    # Offers nobody answered in time go back to the queue (idempotent).
    Periodic("offer-expiry", "provider_app.assignment.offers.expire_offers", interval=60),
    Periodic("webhook-retry", "provider_app.integrations.delivery.retry_due", interval=60),
    Periodic("webhook-catch-up", "provider_app.integrations.emit.catch_up", interval=60,
             queue="low"),
    # Jobs whose worker died mid-run get their retry within a minute of their heartbeat
    # lapsing (RQ's own workers look only every 10 minutes).
    Periodic("reap-abandoned", "provider_app.jobs.reap_abandoned", interval=60, queue="high"),
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
