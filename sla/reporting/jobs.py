"""Report generation: the scheduled monthly PDFs and the ones a client admin requests.

``monthly_reports`` runs daily at 06:00 UTC (provider_app/schedule.py). For each active
client whose *local* today is the first business day of its month it stores last month's
report — once: the unique constraint on (client, kind, period) and the existence check make
a re-run, or two schedulers, a no-op.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from provider_app.audit import record
from provider_app.extensions import db
from provider_app.jobs import enqueue_after_commit
from provider_app.models import Client, JobProgress, User
from sla.clock import calendar_for

from .metrics import Report, sla_report
from .models import StoredReport
from .period import Period, local_midnight, month_period

JOB_KIND = "sla_report"
REPORT_JOB = "sla.reporting.jobs.run_report_job"


def first_business_day(client: Client, year: int, month: int) -> date:
    """The first day of the month with business hours on the client's calendar."""
    day = date(year, month, 1)
    calendar = calendar_for(client, day)
    for _ in range(31):
        hours = calendar.business_hours_between(
            local_midnight(day, client.timezone),
            local_midnight(day + timedelta(days=1), client.timezone))
        if hours > 0:
            return day
        day += timedelta(days=1)
    return date(year, month, 1)


def stored_monthly(client: Client, period: Period) -> StoredReport | None:
    return db.session.scalar(select(StoredReport).where(
        StoredReport.client_id == client.id, StoredReport.kind == "monthly",
        StoredReport.period_start == period.start, StoredReport.period_end == period.end))


def generate_report(client: Client, period: Period, kind: str = "monthly",
                    actor: User | None = None) -> StoredReport:
    """Compute, render and store one report (flushes; the caller's boundary commits)."""
    if kind == "monthly" and (existing := stored_monthly(client, period)) is not None:
        return existing
    pdf = render_report_pdf(sla_report(client, period))
    stored = StoredReport(client_id=client.id, kind=kind, period_start=period.start,
                         period_end=period.end, pdf=pdf, size=len(pdf),
                         created_by_id=actor.id if actor else None)
    db.session.add(stored)
    db.session.flush()
    record("report.generated", object_type="sla_report", object_id=stored.id,
           client_id=client.id, actor=actor,
           after={"kind": kind, "from": period.start.isoformat(), "to": period.end.isoformat()})
    return stored


def monthly_reports(now: datetime | None = None) -> int:
    """Store last month's report for every active client on its first business day."""
    now = now or datetime.now(UTC)
    made = 0
    for client in db.session.scalars(select(Client).where(Client.active.is_(True))
                                     .order_by(Client.id)):
        today = now.astimezone(ZoneInfo(client.timezone)).date()
        if today != first_business_day(client, today.year, today.month):
            continue
        last = today.replace(day=1) - timedelta(days=1)
        period = month_period(last.year, last.month, client.timezone)
        if stored_monthly(client, period) is not None:
            continue
        try:
            with db.session.begin_nested():
                generate_report(client, period)
            made += 1
        except IntegrityError:  # another scheduler stored it first
            continue
    return made


def request_report(client: Client, start: date, end: date, actor: User | None) -> JobProgress:
    """Queue an on-demand report for any period; progress lives in a JobProgress row."""
    job = JobProgress(client_id=client.id, kind=JOB_KIND, status="queued", total=2,
                      created_by_id=actor.id if actor else None,
                      result={"from": start.isoformat(), "to": end.isoformat()})
    db.session.add(job)
    db.session.flush()
    record("report.requested", object_type="job", client_id=client.id, actor=actor,
           after={"job_id": job.id, "from": start.isoformat(), "to": end.isoformat()})
    enqueue_after_commit(REPORT_JOB, job.id, queue="low")
    return job


def run_report_job(job_id: str) -> str | None:
    """The on-demand job: compute (step 1), render and store (step 2)."""
    job = db.session.get(JobProgress, job_id)
    if job is None or job.status not in ("queued", "failed"):
        return None
    client = db.session.get(Client, job.client_id)
    actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
    period = Period(date.fromisoformat(job.result["from"]),
                    date.fromisoformat(job.result["to"]), client.timezone)
    job.status, job.done = "running", 1
    db.session.flush()
    try:
        with db.session.begin_nested():
            stored = generate_report(client, period, kind="on_demand", actor=actor)
    except Exception as exc:  # recorded for the person waiting; the job itself ends
        job.status, job.error = "failed", f"The report could not be produced: {exc}"
        return None
    job.status, job.done = "done", 2
    job.result = {**job.result, "report_id": stored.public_id}
    return stored.public_id


def render_report_pdf(report: Report) -> bytes:
    """The PDF of a report. WeasyPrint (~40 MB) is imported on first use, so the web and
    worker processes that never render a PDF do not carry it."""
    from .pdf import render_pdf

    return render_pdf(report)
