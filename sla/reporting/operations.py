"""The provider operations dashboard: every client side by side, in a handful of queries.

Periods here are whole UTC days (one clock for a provider-wide view); each client's own
report uses its time zone. A team lead sees the clients their profile allows, an admin all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import and_, case, func, or_, select

from provider_app.access import visible_client_ids
from provider_app.models import Client, StaffProfile, Task, TaskType
from provider_app.vocab import OPEN_STATUSES, Availability, SlaState, Status
from qa.metrics import quality_figures

from .metrics import metric_conditions, reporting_session
from .period import Period


@dataclass
class Overview:
    period: Period
    clients: list[dict]
    intake_today: int
    open_tasks: int
    in_hand: int
    capacity: int
    queues_at_risk: list[dict]
    qa_by_specialist: list


def _scope(column):
    ids = visible_client_ids()
    return column.in_(list(ids) or [-1]) if ids is not None else None


def operations_overview(start: date, end: date) -> Overview:
    period = Period(start, end, "UTC")
    cond = metric_conditions(period)

    def n(c):
        return func.sum(case((c, 1), else_=0))

    scope = _scope(Task.client_id)
    touching = and_(Task.received_at < period.hi,
                    or_(Task.completed_at.is_(None), Task.completed_at >= period.lo))
    per_client = (
        select(Client.id, Client.name, n(cond["received"]), n(cond["completed"]),
               n(cond["open_at_end"]), n(cond["met"]), n(cond["breached"]),
               func.avg(case((cond["completed"], Task.sla_elapsed_hours), else_=None)))
        .join(Task, Task.client_id == Client.id)
        .where(touching, *([scope] if scope is not None else []))
        .group_by(Client.id, Client.name).order_by(Client.name)
    )
    today = datetime.combine(datetime.now(UTC).date(), time.min, UTC)
    open_statuses = [s.value for s in OPEN_STATUSES]
    base = [scope] if scope is not None else []
    with reporting_session() as session:
        rows = session.execute(per_client).all()
        intake_today, open_tasks, in_hand = session.execute(
            select(n(Task.received_at >= today),
                   n(Task.status.in_(open_statuses)),
                   n(Task.status.in_([Status.ASSIGNED, Status.IN_PROGRESS, Status.REWORK])))
            .where(or_(Task.received_at >= today, Task.status.in_(open_statuses)), *base)
        ).one()
        capacity = session.scalar(select(func.coalesce(func.sum(StaffProfile.capacity), 0))
                                  .where(StaffProfile.availability == Availability.AVAILABLE))
        queues = session.execute(
            select(Client.name, TaskType.name,
                   n(Task.sla_state == SlaState.AT_RISK), n(Task.sla_state == SlaState.BREACHED),
                   func.count())
            .join(Client, Client.id == Task.client_id)
            .join(TaskType, TaskType.id == Task.task_type_id)
            .where(Task.status.in_(open_statuses),
                   Task.sla_state.in_([SlaState.AT_RISK, SlaState.BREACHED]), *base)
            .group_by(Client.name, TaskType.name)
            .order_by(func.count().desc()).limit(50)
        ).all()
    ids = visible_client_ids()
    qa_clients = {r.key: r for r in quality_figures(start, end, group_by="client",
                                                    client_ids=ids)}
    clients = []
    for cid, name, received, completed, open_end, met, breached, mean in rows:
        decided = (met or 0) + (breached or 0)
        qa = qa_clients.get(cid)
        clients.append({
            "name": name, "received": received or 0, "completed": completed or 0,
            "open_at_end": open_end or 0, "met": met or 0, "breached": breached or 0,
            "attainment": round(100 * met / decided, 2) if decided else None,
            "mean_hours": round(float(mean), 2) if mean is not None else None,
            "qa_accuracy": round(100 * qa.accuracy, 2) if qa and qa.accuracy is not None
            else None,
        })
    return Overview(
        period=period, clients=clients, intake_today=intake_today or 0,
        open_tasks=open_tasks or 0, in_hand=in_hand or 0, capacity=capacity or 0,
        queues_at_risk=[{"client": c, "task_type": t, "at_risk": r or 0, "breached": b or 0}
                        for c, t, r, b, _ in queues],
        qa_by_specialist=quality_figures(start, end, group_by="specialist", client_ids=ids),
    )
