"""Where a submitted task goes next: QA review or straight to completed.

The workspace's submit action calls ``route_submitted`` right after the
submitted transition; the QA area owns the decision.
"""

from __future__ import annotations

from provider_app.lifecycle import transition
from provider_app.models import Task, User
from provider_app.vocab import Status


def route_submitted(task: Task, actor: User | None = None) -> Status:
    """Send ``task`` (status submitted) to in_qa or completed; returns the new status."""
    policy = task.sop.sampling_policy if task.sop is not None else {}
    needs_review = float(policy.get("rate", 0)) >= 1.0
    target = Status.IN_QA if needs_review else Status.COMPLETED
    task.qa_reason = "100 % review" if needs_review else "not sampled"
    transition(task, target, actor=actor, reason=task.qa_reason)
    return target
