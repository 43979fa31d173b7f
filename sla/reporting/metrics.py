"""SLA metrics for one client and period, aggregated in SQL.

One grouped scan of the client's tasks that touch the period gives every count (by task
type x priority x week, summed up in Python over at most a few hundred aggregated rows);
turnaround percentiles (whole period and per task type) come from one more scan of the
tasks completed in the period, with ``percentile_cont`` on PostgreSQL and ``row_number``
windows on SQLite, so no query ever returns one row per task.

Definitions (also printed on the PDF's definitions page, see DEFINITIONS):

* received / completed / cancelled: received_at / completed_at inside the period;
* open at period end: received before the end and not closed before it;
* met / breached: decided when the task completes, by business time elapsed against the
  target with pauses (``pending_client``) excluded (``Task.sla_met``, sla.outcome); a task
  still open at period end whose breach instant (``breach_at``, pushed out by pauses) had
  passed counts as breached too;
* attainment % = met / (met + breached);
* turnaround = business hours received -> completed, pauses excluded
  (``Task.sla_elapsed_hours``), for tasks completed in the period;
* backlog age = business time from receipt to period end on the client's calendar
  (pauses included: it is the age of the item); 1 business day = the calendar's mean
  open hours per open day over the 7 days before period end (8 h for 09:00-17:00).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Integer, and_, case, cast, func, literal, or_, select, text
from sqlalchemy.orm import Session

from provider_app.extensions import db
from provider_app.models import Client, Contract, Escalation, Task, TaskType
from provider_app.replica import report_session, uses_replica
from provider_app.vocab import OPEN_STATUSES, SlaState, Status
from qa.metrics import quality_figures
from sla.calendar import BusinessCalendar
from sla.clock import active_contract, calendar_for

from .period import Period, local_midnight

PERCENTILES = (0.5, 0.9, 0.95)
_COUNTS = ("received", "completed", "cancelled", "open_at_end", "met", "breached",
           "breached_open", "tat_n", "tat_sum")
AGE_BUCKETS = 5


@contextmanager
def reporting_session() -> Iterator[Session]:
    """The replica's read-only session when one is configured, else the request's session.

    On PostgreSQL, JIT compilation is switched off for the rest of the transaction: the
    report's queries are index range scans of tens of thousands of rows, where compiling
    (50 ms and more) costs more than it saves once the planner's estimate crosses
    ``jit_above_cost``.
    """
    if uses_replica():
        with report_session() as session:
            _no_jit(session)
            yield session
    else:
        _no_jit(db.session)
        yield db.session


def _no_jit(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


@dataclass
class Figures:
    """Counts for one slice (the whole period, a task type, a priority or a week)."""

    received: int = 0
    completed: int = 0
    cancelled: int = 0
    open_at_end: int = 0
    met: int = 0
    breached: int = 0
    breached_open: int = 0
    reworked: int = 0  # set for the whole period only (Task.rework_count > 0)
    tat_n: int = 0
    tat_sum: float = 0.0
    median: float | None = None
    p90: float | None = None
    p95: float | None = None

    def add(self, row) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + (getattr(row, name) or 0))

    @property
    def attainment(self) -> float | None:
        """met / (met + breached), in percent; None when nothing was decided."""
        decided = self.met + self.breached
        return round(100 * self.met / decided, 2) if decided else None

    @property
    def mean(self) -> float | None:
        return round(self.tat_sum / self.tat_n, 4) if self.tat_n else None

    @property
    def rework_rate(self) -> float | None:
        return round(100 * self.reworked / self.completed, 2) if self.completed else None

    def as_dict(self) -> dict:
        return {
            "received": self.received, "completed": self.completed,
            "cancelled": self.cancelled, "open_at_end": self.open_at_end,
            "met": self.met, "breached": self.breached, "breached_open": self.breached_open,
            "attainment_pct": self.attainment,
            "turnaround_hours": {"median": self.median, "p90": self.p90, "p95": self.p95,
                                 "mean": self.mean, "count": self.tat_n},
        }


@dataclass
class Report:
    """Everything the dashboard, API, CSV and PDF show for one client and period."""

    client: Client
    period: Period
    contract: Contract | None
    total: Figures
    by_task_type: dict[str, Figures]
    by_priority: dict[str, Figures]
    by_week: dict[str, Figures]
    aging: list[tuple[str, int]]
    day_hours: float
    at_risk_now: int
    qa: dict
    escalations: list[dict]
    credits: object = None
    generated_at: datetime | None = None
    extra: dict = field(default_factory=dict)


def _hours_between(a, b):
    """SQL: hours from ``a`` to ``b`` on the current dialect (wall-clock, for escalations)."""
    if db.engine.dialect.name == "postgresql":
        return func.extract("epoch", b - a) / 3600.0
    return (func.julianday(b) - func.julianday(a)) * 24.0


def _bucket(column, edges: list[datetime]):
    """SQL: 0-based index of the week ``column`` falls in (edges end weeks 1..n-1)."""
    if not edges:
        return literal(0)
    return case(*[(column < edge, i) for i, edge in enumerate(edges)], else_=len(edges))


def business_day_hours(calendar: BusinessCalendar, period: Period) -> float:
    """Mean open hours per open day over the 7 local days before period end (8 by default)."""
    total, open_days = 0.0, 0
    for k in range(7, 0, -1):
        day = period.end - timedelta(days=k - 1)
        hours = calendar.business_hours_between(
            local_midnight(day, period.tz), local_midnight(day + timedelta(days=1), period.tz)
        )
        if hours > 0:
            total, open_days = total + hours, open_days + 1
    return round(total / open_days, 6) if open_days else 8.0


def instant_with_age(calendar: BusinessCalendar, end: datetime, hours: float) -> datetime:
    """The latest instant ``t`` with at least ``hours`` business hours from ``t`` to ``end``."""
    lo = end - timedelta(days=max(30, int(hours) + 30))
    while calendar.business_hours_between(lo, end) < hours:
        lo -= (end - lo)
    hi = end
    step = timedelta(microseconds=1)
    while hi - lo > step:
        mid = lo + (hi - lo) / 2
        if calendar.business_hours_between(mid, end) >= hours:
            lo = mid
        else:
            hi = mid
    return lo


def aging_edges(calendar: BusinessCalendar, period: Period) -> tuple[list, float]:
    """Bucket labels with their lower bound in hours, and the business-day length used."""
    day = business_day_hours(calendar, period)
    labels = [
        ("0–4 h", 0.0), (f"4–{day:g} h", 4.0), ("1–2 d", day), ("2–5 d", 2 * day),
        ("> 5 d", 5 * day),
    ]
    return labels, day


def _touching(client_id: int, period: Period):
    """WHERE clause: the client's tasks received before the end, not closed before the start."""
    return and_(
        Task.client_id == client_id,
        Task.received_at < period.hi,
        or_(Task.completed_at.is_(None), Task.completed_at >= period.lo),
    )


def metric_conditions(period: Period) -> dict:
    """SQL condition per metric, for tasks already narrowed by ``_touching``.

    The counts and the drill-down lists share these, so a number and the tasks behind it
    can never disagree.
    """
    hi = period.hi
    closed = and_(Task.completed_at.is_not(None), Task.completed_at < hi)
    completed = and_(Task.status == Status.COMPLETED, closed)
    open_at_end = or_(Task.completed_at.is_(None), Task.completed_at >= hi)
    breach = func.coalesce(Task.breach_at, Task.due_at)
    breached_open = and_(
        open_at_end, breach <= hi,
        or_(Task.sla_paused_since.is_(None), Task.sla_paused_since > breach),
    )
    return {
        "received": Task.received_at >= period.lo,
        "closed": closed,
        "completed": completed,
        "cancelled": and_(Task.status == Status.CANCELLED, closed),
        "open_at_end": open_at_end,
        "met": and_(completed, Task.sla_met.is_(True)),
        "breached": or_(and_(completed, Task.sla_met.is_(False)), breached_open),
        "breached_open": breached_open,
    }


DRILLABLE = ("received", "completed", "cancelled", "open_at_end", "met", "breached")


def drill_statement(client_id: int, period: Period, metric: str, task_type_id: int | None = None):
    """SELECT of the client's tasks behind one number (``metric`` in DRILLABLE)."""
    stmt = select(Task).where(_touching(client_id, period), metric_conditions(period)[metric])
    if task_type_id is not None:
        stmt = stmt.where(Task.task_type_id == task_type_id)
    return stmt.order_by(Task.received_at, Task.id)


def counts_statement(client_id: int, period: Period, age_instants: list[datetime]):
    """The grouped aggregate every count rests on (the benchmark times it bare, too)."""
    edges = period.week_edges()
    cond = metric_conditions(period)
    received, closed_in, completed = cond["received"], cond["closed"], cond["completed"]
    open_at_end, breached_open = cond["open_at_end"], cond["breached_open"]

    def n(cond):
        return func.sum(case((cond, 1), else_=0))

    rweek = case((received, _bucket(Task.received_at, edges)), else_=-1).label("rweek")
    cweek = case((closed_in, _bucket(Task.completed_at, edges)), else_=-1).label("cweek")
    ages = []
    # age_instants[k]: latest receipt time with age >= bucket k's lower bound (k >= 1).
    bounds = [None, *age_instants, None]
    for k in range(AGE_BUCKETS):
        upper, lower = bounds[k], bounds[k + 1]  # received in (lower, upper]
        parts = [open_at_end]
        if upper is not None:
            parts.append(Task.received_at <= upper)
        if lower is not None:
            parts.append(Task.received_at > lower)
        ages.append(n(and_(*parts)).label(f"age{k}"))
    return (
        select(
            Task.task_type_id, Task.priority, rweek, cweek,
            n(received).label("received"),
            n(completed).label("completed"),
            n(cond["cancelled"]).label("cancelled"),
            n(open_at_end).label("open_at_end"),
            n(cond["met"]).label("met"),
            n(cond["breached"]).label("breached"),
            n(breached_open).label("breached_open"),
            n(and_(completed, Task.sla_elapsed_hours.is_not(None))).label("tat_n"),
            func.sum(case((completed, Task.sla_elapsed_hours), else_=None)).label("tat_sum"),
            *ages,
        )
        .where(_touching(client_id, period))
        .group_by(Task.task_type_id, Task.priority, rweek, cweek)
    )


TOTAL = "total"  # the key of the whole period's percentiles (task types are keyed by id)


def completed_figures(session: Session, client_id: int, period: Period,
                      by_type: bool = True) -> tuple[dict, int]:
    """Turnaround percentiles and the reworked count, for tasks completed in the period.

    Returns ``({key: (median, p90, p95)}, reworked)``; ``key`` is TOTAL for the whole
    period or a task type id (only with ``by_type``: when one task type has all the
    completed work, its percentiles are the total's and the caller copies them). On
    PostgreSQL one scan of the ``ix_tasks_client_completed`` range gives everything:
    ``percentile_cont`` (which skips tasks without a turnaround), per type through
    ``ROLLUP(task_type_id)``, and the reworked count beside it. SQLite ranks with
    ``row_number`` windows (overall and per type) and interpolates between closest ranks
    exactly like ``percentile_cont``, then counts the reworked tasks apart.

    Reworked = ``Task.rework_count > 0``: the count of QA sends-back kept on the task by
    the review that fails it (qa.reviews), so no audit-trail join is needed.
    """
    completed = and_(
        Task.client_id == client_id, Task.status == Status.COMPLETED,
        Task.completed_at >= period.lo, Task.completed_at < period.hi,
    )
    value = Task.sla_elapsed_hours
    reworked = func.count().filter(Task.rework_count > 0)
    if session.get_bind().dialect.name == "postgresql":
        cols = [func.percentile_cont(p).within_group(value.asc()) for p in PERCENTILES]
        if by_type:
            stmt = (select(Task.task_type_id, func.grouping(Task.task_type_id), reworked, *cols)
                    .where(completed).group_by(func.rollup(Task.task_type_id)))
        else:
            stmt = select(literal(None), literal(1), reworked, *cols).where(completed)
        out, total_reworked = {}, 0
        for type_id, whole, n_reworked, *values in session.execute(stmt):
            if whole:
                total_reworked = n_reworked
            if values[0] is not None:
                out[TOTAL if whole else type_id] = tuple(round(float(v), 4) for v in values)
        return out, total_reworked
    return (_ranked_percentiles(session, and_(completed, value.is_not(None))),
            session.scalar(select(reworked).where(completed)) or 0)


def _ranked_percentiles(session: Session, where) -> dict:
    """SQLite: percentile_cont's interpolation from two row_number windows, one query."""
    value = Task.sla_elapsed_hours
    ranked = select(
        Task.task_type_id.label("k"), value.label("v"),
        func.row_number().over(order_by=value).label("rn_all"),
        func.count().over().label("n_all"),
        func.row_number().over(partition_by=Task.task_type_id, order_by=value).label("rn"),
        func.count().over(partition_by=Task.task_type_id).label("n"),
    ).where(where).subquery()
    wanted = []
    for rank, size in ((ranked.c.rn_all, ranked.c.n_all), (ranked.c.rn, ranked.c.n)):
        for p in PERCENTILES:
            base = cast((size - 1) * p, Integer) + 1
            wanted += [rank == base, rank == base + 1]
    by_key: dict = defaultdict(dict)
    sizes: dict = {}
    for k, v, rn_all, n_all, rn, n in session.execute(select(ranked).where(or_(*wanted))):
        by_key[TOTAL][rn_all], sizes[TOTAL] = v, n_all
        by_key[k][rn], sizes[k] = v, n
    out = {}
    for k, values in by_key.items():
        result = []
        for p in PERCENTILES:
            pos = (sizes[k] - 1) * p
            floor = int(pos)
            a = values[floor + 1]
            b = values.get(floor + 2, a)
            result.append(round(a + (pos - floor) * (b - a), 4))
        out[k] = tuple(result)
    return out


def _escalations(session: Session, client_id: int, period: Period) -> list[dict]:
    """Escalations opened in the period, by reason.

    One opened in the period is open or was resolved after the period began, which is the
    range ``ix_escalations_client_open`` (client_id, resolved_at) serves, so the query never
    reads a client's whole escalation history.
    """
    stmt = (
        select(
            Escalation.reason,
            func.count(),
            func.avg(_hours_between(Escalation.opened_at, Escalation.acknowledged_at)),
            func.avg(_hours_between(Escalation.opened_at, Escalation.resolved_at)),
        )
        .where(Escalation.client_id == client_id, Escalation.opened_at >= period.lo,
               Escalation.opened_at < period.hi,
               or_(Escalation.resolved_at.is_(None), Escalation.resolved_at >= period.lo))
        .group_by(Escalation.reason)
        .order_by(Escalation.reason)
    )
    return [
        {"reason": str(getattr(reason, "value", reason)), "count": count,
         "mean_hours_to_acknowledge": None if ack is None else round(float(ack), 2),
         "mean_hours_to_resolve": None if res is None else round(float(res), 2)}
        for reason, count, ack, res in session.execute(stmt)
    ]


def _qa(client_id: int, period: Period, total: Figures) -> dict:
    rows = quality_figures(period.lo, period.hi, group_by="client", client_id=client_id)
    row = rows[0] if rows else None
    reviewed = row.reviewed if row else 0
    return {
        "reviewed": reviewed or 0,
        "passed": (row.passed if row else 0) or 0,
        "accuracy_pct": round(100 * row.accuracy, 2) if row and row.accuracy is not None
        else None,
        "critical_fails": (row.critical_fails if row else 0) or 0,
        "first_pass_yield_pct": round(100 * row.first_pass_yield, 2)
        if row and row.first_pass_yield is not None else None,
        "rework_rate_pct": total.rework_rate,
    }


def at_risk_now(session: Session, client_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(Task).where(
            Task.client_id == client_id, Task.status.in_(list(OPEN_STATUSES)),
            Task.sla_state == SlaState.AT_RISK,
        )
    ) or 0


def level_actuals(client_id: int, period: Period) -> dict:
    """Attainment % and QA accuracy % alone (what earn-back compares with the targets).

    One aggregate over the tasks touching the period (the same conditions as the report's
    met and breached) and the QA figures; rounded exactly as the report rounds them.
    """
    cond = metric_conditions(period)
    with reporting_session() as session:
        met, breached = session.execute(
            select(func.count().filter(cond["met"]), func.count().filter(cond["breached"]))
            .where(_touching(client_id, period))
        ).one()
    figures = Figures(met=met or 0, breached=breached or 0)
    qa = quality_figures(period.lo, period.hi, group_by="client", client_id=client_id)
    accuracy = qa[0].accuracy if qa else None
    return {"attainment": figures.attainment,
            "qa_accuracy": None if accuracy is None else round(100 * accuracy, 2)}


def report_calendar(client: Client, period: Period, contract: Contract | None):
    return calendar_for(client, period.end,
                        calendar_hours=bool(contract and contract.calendar_hours))


def sla_report(client: Client, period: Period, *, with_credits: bool = True) -> Report:
    """All the figures for ``client`` over ``period`` (see the module docstring)."""
    from .credits import credits_for

    contract = active_contract(client.id, period.end)
    calendar = report_calendar(client, period, contract)
    labels, day = aging_edges(calendar, period)
    age_instants = [instant_with_age(calendar, period.hi, lower) for _, lower in labels[1:]]
    weeks = [f"Week {i + 1} ({d.isoformat()})" for i, d in enumerate(period.week_starts())]
    with reporting_session() as session:
        type_names = dict(session.execute(select(TaskType.id, TaskType.name)).all())
        total = Figures()
        by_type: dict[str, Figures] = defaultdict(Figures)
        by_priority: dict[str, Figures] = defaultdict(Figures)
        by_week: dict[str, Figures] = {w: Figures() for w in weeks}
        aging = [0] * AGE_BUCKETS
        for row in session.execute(counts_statement(client.id, period, age_instants)):
            total.add(row)
            by_type[type_names.get(row.task_type_id, "?")].add(row)
            by_priority[str(getattr(row.priority, "value", row.priority))].add(row)
            for k in range(AGE_BUCKETS):
                aging[k] += getattr(row, f"age{k}") or 0
            # A week's received count by the week of receipt, the rest by week of closing.
            if row.rweek >= 0:
                by_week[weeks[row.rweek]].received += row.received or 0
            if row.cweek >= 0:
                week = by_week[weeks[row.cweek]]
                for name in ("completed", "cancelled", "met", "tat_n", "tat_sum"):
                    setattr(week, name, getattr(week, name) + (getattr(row, name) or 0))
                week.breached += (row.breached or 0) - (row.breached_open or 0)
        timed_types = [fig for fig in by_type.values() if fig.tat_n]
        pcts, total.reworked = completed_figures(session, client.id, period,
                                                 by_type=len(timed_types) > 1)
        for key, (med, p90, p95) in pcts.items():
            fig = total if key == TOTAL else by_type[type_names.get(key, "?")]
            fig.median, fig.p90, fig.p95 = med, p90, p95
        if len(timed_types) == 1:
            fig = timed_types[0]
            fig.median, fig.p90, fig.p95 = total.median, total.p90, total.p95
        escalations = _escalations(session, client.id, period)
        risk = at_risk_now(session, client.id)
    report = Report(
        client=client, period=period, contract=contract, total=total,
        by_task_type=dict(sorted(by_type.items())), by_priority=dict(sorted(by_priority.items())),
        by_week=by_week, aging=[(label, aging[k]) for k, (label, _) in enumerate(labels)],
        day_hours=day, at_risk_now=risk, qa=_qa(client.id, period, total),
        escalations=escalations,
    )
    if with_credits:
        report.credits = credits_for(report)
    return report


DEFINITIONS: list[tuple[str, str]] = [
    ("Period", "From 00:00 on the first day to 00:00 after the last day, in the client's "
     "time zone."),
    ("Received / completed / cancelled", "Tasks received, completed or cancelled inside the "
     "period."),
    ("Open at period end", "Received before the period ended and not completed or cancelled "
     "before it ended."),
    ("Met / breached", "Decided by business time elapsed against the task's target, with time "
     "waiting on the client (pending client) excluded — not by comparing timestamps. A task "
     "still open at period end whose target had already been used up counts as breached."),
    ("SLA attainment %", "Met ÷ (met + breached), for tasks completed in the period plus tasks "
     "open and already breached at period end."),
    ("Turnaround", "Business hours from receipt to completion, pauses excluded, for tasks "
     "completed in the period: median, 90th and 95th percentile (linear interpolation between "
     "closest ranks) and mean."),
    ("Backlog aging", "Business time from receipt to period end on the client's calendar for "
     "tasks open at period end. One business day is the calendar's mean open hours per open "
     "day over the last 7 days of the period (8 h for 09:00–17:00)."),
    ("At risk now", "Open tasks whose SLA clock has passed the contract's at-risk threshold, "
     "at the time the report was produced."),
    ("QA accuracy %", "Production QA reviews passed ÷ reviews completed in the period "
     "(calibration reviews excluded)."),
    ("Critical fails", "Reviews in the period with a failed critical scorecard item."),
    ("First-pass yield", "Files whose first review passed ÷ files first reviewed in the "
     "period."),
    ("Rework rate", "Tasks completed in the period that QA sent back to rework at least "
     "once ÷ tasks completed."),
    ("Escalations", "Escalations opened in the period by reason, with the mean wall-clock "
     "hours to acknowledge and to resolve."),
    ("Weekly figures", "Week 1 starts on the period's first day. Received counts by week of "
     "receipt; completed, met and breached by week of completion (open breaches count in the "
     "period total only)."),
    ("Service credits", "For each contract target missed, the credit the contract's scheme "
     "gives, with the calculation shown (pool: pool % × level allocation % × at-risk amount, "
     "capped at the at-risk amount; per point: % of the monthly fee per point below target, "
     "capped). With earn-back, a missed level's credit is earned back when the next period "
     "(the next month for a month) beats that level's target; until that period has ended "
     "the credit stands."),
]


def tile_colour(actual: float | None, target: float | None, *, amber_margin: float = 2.0) -> str:
    """green at or above target, amber within ``amber_margin`` points below, red beyond."""
    if actual is None or target is None:
        return "grey"
    if actual >= target:
        return "green"
    return "amber" if actual >= target - amber_margin else "red"
