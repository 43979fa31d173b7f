"""Calibration: reviewers score the same completed files blind; agreement is measured.

The lead's own scoring of each file is the benchmark. Inter-rater reliability is
Krippendorff's alpha (the ``krippendorff`` package): nominal over pass/fail item results
(N/A counts as missing), interval over file scores. Calibration reviews carry
``calibration_id`` and never touch the task, its lot or any quality figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import krippendorff
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from provider_app.access import visible_client_ids
from provider_app.audit import record
from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.models import ScorecardItem, Sop, Task, User
from provider_app.vocab import Role, Status

from .models import CalibrationSession, QaReview
from .reviews import QaError, apply_entries, has_worked
from .scorecard import ItemEntry

MAX_TASKS = 20
NOMINAL = {"pass": 1.0, "fail": 0.0}


def create_session(lead: User, title: str, tasks: Sequence[Task],
                   reviewers: Sequence[User]) -> CalibrationSession:
    """A lead picks completed files and at least two reviewers to score them blind."""
    errors: dict[str, list[str]] = {}
    title = (title or "").strip()
    if not title:
        errors["title"] = ["Give the session a title."]
    if not tasks:
        errors["tasks"] = ["Pick at least one completed file."]
    elif len(tasks) > MAX_TASKS:
        errors["tasks"] = [f"Pick at most {MAX_TASKS} files."]
    elif any(Status(t.status) != Status.COMPLETED for t in tasks):
        errors["tasks"] = ["Only completed files can be calibrated on."]
    reviewers = [r for r in reviewers if r.id != lead.id]
    if len(reviewers) < 2:
        errors["reviewers"] = ["Pick at least two reviewers besides yourself."]
    elif any(not r.has_role(Role.QA_REVIEWER, Role.TEAM_LEAD) for r in reviewers):
        errors["reviewers"] = ["Every participant must be a QA reviewer or a lead."]
    blind_spots = sorted({
        f"{person.name or person.email} may not see {task.client.code}"
        for person in reviewers for task in tasks
        if (ids := visible_client_ids(person)) is not None and task.client_id not in ids
    })
    if blind_spots:
        errors.setdefault("reviewers", []).append("; ".join(blind_spots))
    conflicts = sorted({
        f"{person.name or person.email} worked {task.external_ref or task.public_id[:8]}"
        for person in [lead, *reviewers] for task in tasks if has_worked(task, person)
    })
    if conflicts:
        errors.setdefault("tasks", []).append("Four eyes: " + "; ".join(conflicts))
    if errors:
        raise QaError("The calibration session cannot be created.", errors)
    session = CalibrationSession(
        title=title[:200], lead_id=lead.id, task_ids=[t.id for t in tasks],
        reviewer_ids=[r.id for r in reviewers],
    )
    db.session.add(session)
    db.session.flush()
    record("qa.calibration_created", object_type="calibration", object_id=session.id,
           actor=lead, reason=title[:500],
           after={"tasks": session.task_ids, "reviewers": session.reviewer_ids})
    return session


def raters(session: CalibrationSession) -> list[int]:
    """The lead (benchmark) first, then the reviewers."""
    return [session.lead_id, *[r for r in session.reviewer_ids if r != session.lead_id]]


def is_participant(session: CalibrationSession, user: User) -> bool:
    return user.id in raters(session)


def session_tasks(session: CalibrationSession) -> list[Task]:
    tasks = db.session.scalars(
        select(Task).where(Task.id.in_(session.task_ids or [-1]))
        .options(selectinload(Task.client), selectinload(Task.task_type))
    )
    by_id = {t.id: t for t in tasks}
    return [by_id[i] for i in session.task_ids if i in by_id]


def reviews_of(session: CalibrationSession, user_id: int | None = None) -> list[QaReview]:
    stmt = select(QaReview).where(QaReview.calibration_id == session.id).options(
        selectinload(QaReview.items)
    )
    if user_id is not None:
        stmt = stmt.where(QaReview.reviewer_id == user_id)
    return list(db.session.scalars(stmt))


def score_task(session: CalibrationSession, task: Task, user: User,
               entries: list[ItemEntry], comments: str = "") -> QaReview:
    """Record (or replace, until the session closes) one participant's blind scoring."""
    if session.closed_at is not None:
        raise QaError("This calibration session is closed.")
    if not is_participant(session, user) or task.id not in session.task_ids:
        raise QaError("You are not scoring this file in this session.")
    review = db.session.scalar(select(QaReview).where(
        QaReview.calibration_id == session.id, QaReview.task_id == task.id,
        QaReview.reviewer_id == user.id,
    ))
    if review is None:
        review = QaReview(
            client_id=task.client_id, task_id=task.id, reviewer_id=user.id,
            maker_id=task.assignee_id, calibration_id=session.id,
            sop_id=task.sop_id or task.task_type.current_sop().id,
        )
        db.session.add(review)
    apply_entries(review, entries)
    review.comments = comments.strip()
    review.completed_at = utcnow()
    db.session.flush()
    record("qa.calibration_scored", object_type="calibration", object_id=session.id,
           client_id=task.client_id, actor=user, after={"task_id": task.id,
                                                         "score": review.score})
    return review


def close_session(session: CalibrationSession, user: User) -> None:
    if session.lead_id != user.id and not user.has_role(Role.ADMIN):
        raise QaError("Only the lead who opened the session can close it.")
    if session.closed_at is not None:
        raise QaError("This session is already closed.")
    session.closed_at = utcnow()
    record("qa.calibration_closed", object_type="calibration", object_id=session.id, actor=user)
    db.session.flush()


# --- agreement ------------------------------------------------------------------------------


def alpha(matrix: Sequence[Sequence[float | None]], level: str) -> float | None:
    """Krippendorff's alpha of a raters x units matrix (None = missing).

    None when it is undefined: fewer than two pairable values, or no variation at all
    (everyone gave every unit the same value - perfect but uninformative agreement).
    """
    data = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    if data.size == 0 or data.shape[0] < 2:
        return None
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    if not pairable.any() or len(np.unique(data[:, pairable][~np.isnan(data[:, pairable])])) < 2:
        return None
    value = float(krippendorff.alpha(reliability_data=data[:, pairable],
                                     level_of_measurement=level))
    return None if math.isnan(value) else value


@dataclass
class ItemAgreement:
    item: ScorecardItem
    agreement: float | None  # share of rater pairs giving the same pass/fail
    alpha: float | None
    ratings: int


@dataclass
class RaterDeviation:
    user: User
    scored: int
    mean_deviation: float | None  # mean (rater - benchmark) score, percentage points
    mean_abs_deviation: float | None
    item_agreement: float | None  # share of items rated as the lead rated them


@dataclass
class CalibrationResults:
    tasks: list[Task]
    raters: list[User]
    scores: dict[tuple[int, int], float | None]  # (task_id, user_id) -> score
    items: list[ItemAgreement] = field(default_factory=list)
    deviations: list[RaterDeviation] = field(default_factory=list)
    alpha_items: float | None = None
    alpha_scores: float | None = None


def results(session: CalibrationSession) -> CalibrationResults:
    """Per-item agreement, alpha (nominal items, interval scores), deviation from the lead."""
    tasks = session_tasks(session)
    rater_ids = raters(session)
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(rater_ids)))}
    reviews = reviews_of(session)
    scores = {(r.task_id, r.reviewer_id): r.score for r in reviews}
    marks: dict[tuple[int, int, int], float] = {}  # (task, item, rater) -> 1 pass / 0 fail
    for review in reviews:
        for result in review.items:
            if result.result in NOMINAL:
                marks[(review.task_id, result.item_id, review.reviewer_id)] = NOMINAL[
                    result.result]
    sop_ids = {t.sop_id for t in tasks if t.sop_id}
    items = list(db.session.scalars(
        select(ScorecardItem).join(Sop).where(Sop.id.in_(sop_ids or [-1]))
        .order_by(ScorecardItem.sop_id, ScorecardItem.position)
    ))
    units = [(t.id, item.id) for t in tasks for item in items if item.sop_id == t.sop_id]
    out = CalibrationResults(tasks=tasks, raters=[users[i] for i in rater_ids if i in users],
                             scores=scores)
    for item in items:
        item_units = [(t, i) for t, i in units if i == item.id]
        matrix = [[marks.get((t, i, r)) for t, i in item_units] for r in rater_ids]
        out.items.append(ItemAgreement(item, _pair_agreement(matrix), alpha(matrix, "nominal"),
                                       sum(v is not None for row in matrix for v in row)))
    out.alpha_items = alpha([[marks.get((t, i, r)) for t, i in units] for r in rater_ids],
                            "nominal")
    out.alpha_scores = alpha([[scores.get((t.id, r)) for t in tasks] for r in rater_ids],
                             "interval")
    lead_id = session.lead_id
    for rater in rater_ids[1:]:
        diffs = [scores[(t.id, rater)] - scores[(t.id, lead_id)] for t in tasks
                 if scores.get((t.id, rater)) is not None
                 and scores.get((t.id, lead_id)) is not None]
        same = [marks[(t, i, rater)] == marks[(t, i, lead_id)] for t, i in units
                if (t, i, rater) in marks and (t, i, lead_id) in marks]
        out.deviations.append(RaterDeviation(
            user=users[rater],
            scored=sum(1 for t in tasks if (t.id, rater) in scores),
            mean_deviation=100 * sum(diffs) / len(diffs) if diffs else None,
            mean_abs_deviation=100 * sum(abs(d) for d in diffs) / len(diffs) if diffs else None,
            item_agreement=sum(same) / len(same) if same else None,
        ))
    return out


def _pair_agreement(matrix: list[list[float | None]]) -> float | None:
    agree = pairs = 0
    for unit in zip(*matrix, strict=True) if matrix else []:
        values = [v for v in unit if v is not None]
        for a, b in combinations(values, 2):
            pairs += 1
            agree += a == b
    return agree / pairs if pairs else None
