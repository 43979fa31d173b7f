"""Disputes: a specialist challenges a finding; a lead upholds or overturns it.

The window is counted in the client's business days (``QA_DISPUTE_WINDOW_BUSINESS_DAYS``,
default 3): a finding can be disputed until the end of the third business day after the
review. Overturning turns the item into a pass and rescores the review; the review is
version-locked, so a decision taken on a stale page is refused rather than merged.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import current_app
from sqlalchemy.orm.attributes import flag_modified

from provider_app.audit import record
from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.models import Client, User
from provider_app.vocab import Role
from sla.clock import calendar_for

from .models import QaDispute, QaItemResult, QaReview
from .reviews import QaError, StaleReviewError, refresh_outcome, rescore

DEFAULT_WINDOW_BUSINESS_DAYS = 3
REASON_MAX = 2000
_MAX_DAYS_SCANNED = 90


def dispute_deadline(review: QaReview) -> datetime:
    """End (local midnight, as UTC) of the Nth business day after the review day."""
    days = current_app.config.get("QA_DISPUTE_WINDOW_BUSINESS_DAYS", DEFAULT_WINDOW_BUSINESS_DAYS)
    client = db.session.get(Client, review.client_id)
    completed = review.completed_at or utcnow()
    calendar = calendar_for(client, completed.date())
    day = completed.astimezone(calendar.tz).date()
    counted = 0
    for _ in range(_MAX_DAYS_SCANNED):
        if counted >= days:
            break
        day += timedelta(days=1)
        if calendar.business_hours_between(_midnight(day, calendar.tz),
                                           _midnight(day + timedelta(days=1), calendar.tz)) > 0:
            counted += 1
    return _midnight(day + timedelta(days=1), calendar.tz)


def _midnight(day: date, tz) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def why_not_disputable(item: QaItemResult, user: User, now: datetime | None = None) -> str | None:
    """None when ``user`` may dispute this finding now, else the reason they cannot."""
    review = item.review
    if review.calibration_id is not None or review.completed_at is None:
        return "Only findings of a completed production review can be disputed."
    if review.maker_id != user.id:
        return "Only the specialist whose work was reviewed can dispute a finding."
    if item.result != "fail":
        return "Only a failed item (a finding) can be disputed."
    if item.disputes:
        return "This finding has already been disputed."
    if (now or utcnow()) > dispute_deadline(review):
        return "The dispute window for this review has closed."
    return None


def raise_dispute(item: QaItemResult, user: User, reason: str) -> QaDispute:
    """The maker challenges one finding, with a reason, inside the window."""
    reason = (reason or "").strip()
    if not reason:
        raise QaError("Give a reason for the dispute.", {"reason": ["Say why the finding is "
                                                                    "wrong."]})
    if len(reason) > REASON_MAX:
        raise QaError("The reason is too long.", {"reason": [f"At most {REASON_MAX} characters."]})
    problem = why_not_disputable(item, user)
    if problem:
        raise QaError(problem)
    dispute = QaDispute(client_id=item.review.client_id, item_result_id=item.id,
                        raised_by_id=user.id, reason=reason)
    item.disputes.append(dispute)
    db.session.add(dispute)
    db.session.flush()
    record("qa.dispute_raised", object_type="task", object_id=item.review.task_id,
           client_id=item.review.client_id, actor=user, reason=reason[:500],
           after={"dispute": dispute.public_id, "item": item.item.text[:200]})
    return dispute


def can_decide(dispute: QaDispute, user: User) -> str | None:
    """None when ``user`` may decide this dispute, else why not."""
    review = dispute.item_result.review
    if not user.has_role(Role.TEAM_LEAD, Role.ADMIN):
        return "Only a lead (or a senior reviewer holding the lead role) decides disputes."
    if user.id in (review.reviewer_id, dispute.raised_by_id):
        return "Someone other than the reviewer and the specialist must decide (four eyes)."
    if dispute.status != "open":
        return "This dispute has already been decided."
    return None


def decide_dispute(
    dispute: QaDispute,
    decider: User,
    outcome: str,
    note: str,
    *,
    expected_version: int | None = None,
) -> QaDispute:
    """Uphold (the finding stands) or overturn (the item passes, the review is rescored)."""
    if outcome not in ("uphold", "overturn"):
        raise QaError("Choose uphold or overturn.", {"outcome": ["Choose uphold or overturn."]})
    note = (note or "").strip()
    if not note:
        raise QaError("Explain the decision.", {"note": ["Explain the decision."]})
    problem = can_decide(dispute, decider)
    if problem:
        raise QaError(problem)
    item = dispute.item_result
    review = item.review
    if expected_version is not None and expected_version != review.version:
        raise StaleReviewError("The review changed since you opened it; reload and decide again.")
    before = {"result": item.result, "error_category": item.error_category,
              "score": review.score, "passed": review.passed}
    if outcome == "overturn":
        item.result = "pass"  # the category stays: metrics count overturned findings by it
        rescore(review)
        refresh_outcome(review.task)
    flag_modified(review, "comments")  # bump the review's version even if the score held
    dispute.status = "upheld" if outcome == "uphold" else "overturned"
    dispute.decided_by_id, dispute.decision_note = decider.id, note
    dispute.decided_at = utcnow()
    db.session.flush()
    record(f"qa.dispute_{dispute.status}", object_type="task", object_id=review.task_id,
           client_id=review.client_id, actor=decider, reason=note[:500], before=before,
           after={"result": item.result, "score": review.score, "passed": review.passed,
                  "dispute": dispute.public_id})
    return dispute
