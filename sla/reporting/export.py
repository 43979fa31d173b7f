"""The report as JSON (the API) and CSV (metrics and the task-level rows behind them)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from sqlalchemy import select

from provider_app.models import Task, TaskType

from .metrics import Report, reporting_session
from .period import Period


def report_dict(report: Report) -> dict:
    """The JSON body of ``GET /api/v1/reports/sla``."""
    contract = report.contract
    return {
        "client": {"code": report.client.code, "name": report.client.name},
        "period": {"from": report.period.start.isoformat(), "to": report.period.end.isoformat(),
                   "timezone": report.period.tz},
        "targets": {
            "attainment_pct": contract.attainment_target if contract else None,
            "qa_accuracy_pct": contract.qa_accuracy_target if contract else None,
        },
        "totals": report.total.as_dict(),
        "backlog_aging": {label: count for label, count in report.aging},
        "business_day_hours": report.day_hours,
        "at_risk_now": report.at_risk_now,
        "qa": report.qa,
        "escalations": report.escalations,
        "by_task_type": {k: v.as_dict() for k, v in report.by_task_type.items()},
        "by_priority": {k: v.as_dict() for k, v in report.by_priority.items()},
        "by_week": {k: v.as_dict() for k, v in report.by_week.items()},
        "service_credits": report.credits.as_dict() if report.credits else None,
    }


_METRIC_COLUMNS = ["slice", "key", "received", "completed", "cancelled", "open_at_end", "met",
                   "breached", "attainment_pct", "median_h", "p90_h", "p95_h", "mean_h"]


def metrics_csv(report: Report) -> str:
    """One row per slice (total, task type, priority, week), then QA and credits rows."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_METRIC_COLUMNS)
    slices = [("total", {"all": report.total}), ("task_type", report.by_task_type),
              ("priority", report.by_priority), ("week", report.by_week)]
    for name, figures in slices:
        for key, f in figures.items():
            writer.writerow([name, key, f.received, f.completed, f.cancelled, f.open_at_end,
                             f.met, f.breached, f.attainment, f.median, f.p90, f.p95, f.mean])
    writer.writerow([])
    writer.writerow(["metric", "value"])
    for label, count in report.aging:
        writer.writerow([f"backlog {label}", count])
    for key, value in report.qa.items():
        writer.writerow([f"qa {key}", value])
    writer.writerow(["at_risk_now", report.at_risk_now])
    if report.credits:
        writer.writerow(["service credit total", report.credits.total])
        for line in report.credits.lines:
            writer.writerow([f"credit {line.level}", line.amount, line.calculation])
        if report.credits.earn_back:
            earn_back = report.credits.earn_back
            writer.writerow(["service credit before earn-back", report.credits.before_earn_back])
            writer.writerow(["earned back", report.credits.earned_back, earn_back.status,
                             earn_back.calculation])
        if report.credits.previous:
            previous = report.credits.previous
            writer.writerow(["previous period credit earned back", previous.earned_back,
                             previous.calculation])
    return out.getvalue()


TASK_COLUMNS = ["id", "external_ref", "task_type", "priority", "status", "received_at",
                "completed_at", "target_hours", "turnaround_business_hours", "sla_met"]


def task_rows_csv(client_id: int, period: Period) -> Iterator[str]:
    """The task-level data behind the figures: every task of the client touching the period.

    Streamed in chunks straight from the query (server-side batches), never a list in memory.
    """
    stmt = (
        select(Task.public_id, Task.external_ref, TaskType.code, Task.priority, Task.status,
               Task.received_at, Task.completed_at, Task.sla_target_hours,
               Task.sla_elapsed_hours, Task.sla_met)
        .join(TaskType, TaskType.id == Task.task_type_id)
        .where(Task.client_id == client_id, Task.received_at < period.hi,
               (Task.completed_at.is_(None)) | (Task.completed_at >= period.lo))
        .order_by(Task.received_at, Task.id)
        .execution_options(yield_per=2000)
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(TASK_COLUMNS)
    with reporting_session() as session:
        for n, row in enumerate(session.execute(stmt), 1):
            writer.writerow([_cell(v) for v in row])
            if n % 2000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def _cell(value) -> object:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(getattr(value, "value", value))
    # A cell a spreadsheet would run as a formula is quoted as text (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
