"""QA demo data: reviews of some files waiting in QA, findings on the rework files, disputes.

Runs through the real services (claim, complete_review, raise_dispute, decide_dispute), so
the demo's audit trail, escalations and figures look exactly like production. Idempotent:
nothing happens once any review exists.
"""

from __future__ import annotations

import random

from sqlalchemy import func, select

from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.models import AuditEvent, Task, User

from .disputes import decide_dispute, raise_dispute
from .models import QaReview
from .reviews import apply_entries, claim, complete_review
from .scorecard import ItemEntry

REVIEWERS = ("qa@throughline.test", "lead.qa@throughline.test")
LEAD = "lead@throughline.test"
FINDINGS = [
    ("named_insured_mismatch", "Named insured on the certificate differs from the policy."),
    ("wrong_limits", "Each-occurrence limit keyed as 100,000 instead of 1,000,000."),
    ("missing_endorsement", "Additional-insured endorsement not attached."),
    ("wrong_effective_date", "Effective date taken from the expired term."),
    ("keying_error", "Policy number transposed (two digits swapped)."),
]


def _entries(task: Task, outcome: str, rng: random.Random) -> list[ItemEntry]:
    """pass, minor (a non-critical item fails) or critical (a critical item fails)."""
    items = task.sop.scorecard
    critical = [i for i in items if i.critical]
    minor = [i for i in items if not i.critical]
    failing = (rng.choice(critical) if outcome == "critical" and critical
               else rng.choice(minor) if outcome == "minor" and minor else None)
    out = []
    for item in items:
        if item is failing:
            category, comment = rng.choice(FINDINGS)
            out.append(ItemEntry(item.id, "fail", category, comment))
        else:
            out.append(ItemEntry(item.id, "pass"))
    return out


def seed_qa() -> str:
    """Review ~60 % of the files in QA, record the failed reviews of the rework files, and
    raise two disputes (one overturned)."""
    if db.session.scalar(select(func.count()).select_from(QaReview)):
        return "QA demo data already present"
    reviewers = list(db.session.scalars(select(User).where(User.email.in_(REVIEWERS))))
    lead = db.session.scalar(select(User).where(User.email == LEAD))
    if not reviewers or lead is None:
        return "QA demo data skipped (demo reviewers missing)"
    rng = random.Random(11)  # noqa: S311 - demo data
    in_qa = list(db.session.scalars(
        select(Task).where(Task.status == "in_qa", Task.assignee_id.is_not(None))
        .order_by(Task.id)
    ))
    reviewed = failed = 0
    for n, task in enumerate(in_qa[: int(len(in_qa) * 0.6)]):
        outcome = "critical" if n == 1 else rng.choices(["pass", "minor"], [7, 3])[0]
        reviewer = reviewers[n % len(reviewers)]
        complete_review(claim(task, reviewer), reviewer, _entries(task, outcome, rng),
                        comments="Demo review.")
        reviewed += 1
        failed += outcome != "pass"
    failed += _rework_findings(reviewers[0], rng)
    disputes = _disputes(lead)
    return f"QA: {reviewed} reviews, {failed} sent to rework, {disputes} disputes"


def _rework_findings(reviewer: User, rng: random.Random) -> int:
    """The demo's rework files reached rework without a review: record the failed one."""
    tasks = list(db.session.scalars(
        select(Task).where(Task.status == "rework", Task.assignee_id.is_not(None))
        .order_by(Task.id)
    ))
    for task in tasks:
        when = db.session.scalar(
            select(AuditEvent.at).where(AuditEvent.object_type == "task",
                                        AuditEvent.object_id == task.id,
                                        AuditEvent.to_status == "rework")
        ) or utcnow()
        review = QaReview(client_id=task.client_id, task_id=task.id, reviewer_id=reviewer.id,
                          maker_id=task.assignee_id, sop_id=task.sop_id,
                          comments="Demo review.", created_at=when, completed_at=when)
        db.session.add(review)
        apply_entries(review, _entries(task, "minor", rng))
        task.rework_count, task.qa_outcome = max(task.rework_count, 1), "fail"
    db.session.flush()
    return len(tasks)


def _disputes(lead: User) -> int:
    """The makers of the two newest findings dispute them; the lead overturns the first."""
    reviews = list(db.session.scalars(
        select(QaReview).where(QaReview.passed.is_(False), QaReview.maker_id.is_not(None))
        .order_by(QaReview.completed_at.desc()).limit(2)
    ))
    for n, review in enumerate(reviews):
        finding = next(r for r in review.items if r.result == "fail")
        maker = db.session.get(User, review.maker_id)
        dispute = raise_dispute(finding, maker, "The source document supports what I keyed; "
                                                "see page 2 of the dec page.")
        if n == 0:
            decide_dispute(dispute, lead, "overturn", "Checked page 2: the specialist is right.")
    return len(reviews)
