"""How urgent queued work is: the queue order, "at risk", and the batch's urgency score.

One definition each, shared by ``claim_next``, the batch job and the lead board, so the order
a specialist pulls work in is the order the board shows and the batch prefers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import ColumnElement, and_, or_

from ..models import Task
from ..vocab import SlaState

TASKS = Task.__table__

AT_RISK_HORIZON = timedelta(hours=1)
"""A task due within this long counts as at risk even before the SLA sweep flags it."""

DUE_HORIZON_HOURS = 72.0
"""Due times further out than this add nothing to urgency."""


def queue_order() -> list:
    """Most urgent priority first, then earliest due, then first in: ix_tasks_claim_order."""
    return [TASKS.c.priority_order, TASKS.c.due_at.asc().nulls_last(), TASKS.c.id]


def at_risk_clause(now: datetime) -> ColumnElement[bool]:
    """SQL: the SLA sweep flagged the task, its at-risk time has passed, or it is due soon."""
    return or_(
        TASKS.c.sla_state.in_([SlaState.AT_RISK.value, SlaState.BREACHED.value]),
        and_(TASKS.c.at_risk_at.is_not(None), TASKS.c.at_risk_at <= now),
        and_(TASKS.c.due_at.is_not(None), TASKS.c.due_at <= now + AT_RISK_HORIZON),
    )


def urgency(priority_order: np.ndarray, hours_to_due: np.ndarray) -> np.ndarray:
    """Urgency in [0, 1]: half priority (urgent 1 ... low 0), half closeness of the due time.

    ``hours_to_due`` may be negative (overdue: fully urgent) or NaN (no due time: not urgent).
    """
    priority = (3 - priority_order) / 3
    due = np.clip(1 - np.nan_to_num(hours_to_due, nan=DUE_HORIZON_HOURS) / DUE_HORIZON_HOURS,
                  0, 1)
    return 0.5 * priority + 0.5 * due
