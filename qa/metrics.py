"""QA figures over a period, aggregated in SQL: accuracy, critical fails, FPY, disputes.

``quality_figures`` is the one entry point; the QA figures page and the SLA reporting use
it. Only production reviews count (calibration reviews never do), dated by when they were
completed. Definitions:

* accuracy = reviews passed / reviews completed (after dispute overturns);
* critical fails = reviews with a failed critical item;
* first-pass yield = files whose *first* review passed / files first reviewed in the period;
* dispute rate = disputed findings / findings (failed items, overturned ones included).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import aliased

from provider_app.extensions import db
from provider_app.models import Client, ScorecardItem, Task, TaskType, User

from .models import QaDispute, QaItemResult, QaReview
from .scorecard import ERROR_CATEGORIES

GROUPS = ("specialist", "team", "client", "task_type", "error_category")


@dataclass(frozen=True)
class QualityRow:
    """One group's figures; review-level fields are None for error-category rows, whose
    ``critical_fails`` counts failed critical items."""

    key: int | str | None
    label: str
    reviewed: int | None
    passed: int | None
    critical_fails: int | None
    first_reviews: int | None
    first_passes: int | None
    findings: int
    disputes: int
    overturned: int

    @property
    def accuracy(self) -> float | None:
        return self.passed / self.reviewed if self.reviewed else None

    @property
    def first_pass_yield(self) -> float | None:
        return self.first_passes / self.first_reviews if self.first_reviews else None

    @property
    def dispute_rate(self) -> float | None:
        return self.disputes / self.findings if self.findings else None


def period_bounds(start: date | datetime, end: date | datetime) -> tuple[datetime, datetime]:
    """Dates are whole UTC days, ``end`` included; datetimes are taken as [start, end)."""
    if not isinstance(start, datetime):
        start = datetime.combine(start, time.min, UTC)
    if not isinstance(end, datetime):
        end = datetime.combine(end + timedelta(days=1), time.min, UTC)
    return start, end


def quality_figures(
    start: date | datetime,
    end: date | datetime,
    *,
    group_by: str = "specialist",
    client_id: int | None = None,
    client_ids: Iterable[int] | None = None,
) -> list[QualityRow]:
    """QA figures per ``group_by`` (one of GROUPS) for reviews completed in the period.

    ``client_id`` narrows to one client; ``client_ids`` is the caller's scope (None: all).
    ``team`` is the whole delivery team as one row.
    """
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    lo, hi = period_bounds(start, end)
    where = [
        QaReview.calibration_id.is_(None),
        QaReview.completed_at.is_not(None),
        QaReview.completed_at >= lo,
        QaReview.completed_at < hi,
    ]
    if client_id is not None:
        where.append(QaReview.client_id == client_id)
    if client_ids is not None:
        where.append(QaReview.client_id.in_(list(client_ids) or [-1]))
    if group_by == "error_category":
        return _by_error_category(where)
    return _by_review_group(where, group_by)


def _finding_counts():
    """Per review: findings (failed or overturned items), disputes, overturned."""
    decided = aliased(QaDispute)
    overturned = exists().where(
        decided.item_result_id == QaItemResult.id, decided.status == "overturned"
    )
    return (
        select(
            QaItemResult.review_id.label("review_id"),
            func.count(QaItemResult.id).label("findings"),
            func.count(QaDispute.id).label("disputes"),
            func.coalesce(func.sum(case((QaDispute.status == "overturned", 1), else_=0)), 0)
            .label("overturned"),
        )
        .outerjoin(QaDispute, QaDispute.item_result_id == QaItemResult.id)
        .where(or_(QaItemResult.result == "fail", overturned))
        .group_by(QaItemResult.review_id)
        .subquery()
    )


def _by_review_group(where: list, group_by: str) -> list[QualityRow]:
    earlier = aliased(QaReview)
    is_first = ~exists().where(
        earlier.task_id == QaReview.task_id,
        earlier.calibration_id.is_(None),
        earlier.completed_at.is_not(None),
        or_(
            earlier.completed_at < QaReview.completed_at,
            and_(earlier.completed_at == QaReview.completed_at, earlier.id < QaReview.id),
        ),
    )
    counts = _finding_counts()
    key, label, joins = _group_columns(group_by)
    stmt = select(
        key.label("key"),
        label.label("label"),
        func.count(QaReview.id),
        func.sum(case((QaReview.passed.is_(True), 1), else_=0)),
        func.sum(case((QaReview.critical_failure.is_(True), 1), else_=0)),
        func.sum(case((is_first, 1), else_=0)),
        func.sum(case((and_(is_first, QaReview.passed.is_(True)), 1), else_=0)),
        func.coalesce(func.sum(counts.c.findings), 0),
        func.coalesce(func.sum(counts.c.disputes), 0),
        func.coalesce(func.sum(counts.c.overturned), 0),
    ).select_from(QaReview).outerjoin(counts, counts.c.review_id == QaReview.id)
    for target, on in joins:
        stmt = stmt.outerjoin(target, on)
    stmt = stmt.where(*where)
    if group_by != "team":
        stmt = stmt.group_by(key, label)
    rows = [
        QualityRow(k, lbl or "—", int(n), int(p or 0), int(c or 0), int(f or 0), int(fp or 0),
                   int(fi), int(d), int(o))
        for k, lbl, n, p, c, f, fp, fi, d, o in db.session.execute(stmt)
        if n
    ]
    return sorted(rows, key=lambda r: (-(r.reviewed or 0), r.label))


def _group_columns(group_by: str):
    if group_by == "specialist":
        return (QaReview.maker_id, func.coalesce(func.nullif(User.name, ""), User.email),
                [(User, User.id == QaReview.maker_id)])
    if group_by == "client":
        return Client.id, Client.code, [(Client, Client.id == QaReview.client_id)]
    if group_by == "task_type":
        return TaskType.id, TaskType.code, [
            (Task, Task.id == QaReview.task_id), (TaskType, TaskType.id == Task.task_type_id)
        ]
    return literal("team"), literal("All specialists"), []


def _by_error_category(where: list) -> list[QualityRow]:
    overturned = func.sum(case((QaDispute.status == "overturned", 1), else_=0))
    stmt = (
        select(
            QaItemResult.error_category,
            func.count(func.distinct(QaItemResult.id)),
            func.sum(case((and_(ScorecardItem.critical.is_(True),
                                QaItemResult.result == "fail"), 1), else_=0)),
            func.count(QaDispute.id),
            func.coalesce(overturned, 0),
        )
        .join(QaReview, QaReview.id == QaItemResult.review_id)
        .join(ScorecardItem, ScorecardItem.id == QaItemResult.item_id)
        .outerjoin(QaDispute, QaDispute.item_result_id == QaItemResult.id)
        .where(*where, QaItemResult.error_category.is_not(None))
        .group_by(QaItemResult.error_category)
    )
    rows = [
        QualityRow(cat, ERROR_CATEGORIES.get(cat, cat), None, None, int(c or 0), None, None,
                   int(n), int(d), int(o))
        for cat, n, c, d, o in db.session.execute(stmt)
    ]
    return sorted(rows, key=lambda r: (-r.findings, r.label))
