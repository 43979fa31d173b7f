"""The demo data has SLA trouble to show: tasks at risk or breached, open escalations."""

import re

from sqlalchemy import func, select

from provider_app.demo import seed_demo
from provider_app.models import Task
from provider_app.vocab import SlaState
from sla.models import Escalation, Notification


def test_seed_demo_leaves_the_escalation_queue_populated_once(db):
    first = seed_demo()[0]
    assert "SLA sweep:" in first
    count = lambda stmt: db.session.scalar(stmt)  # noqa: E731
    states = dict(db.session.execute(
        select(Task.sla_state, func.count()).where(Task.completed_at.is_(None))
        .group_by(Task.sla_state)).all())
    assert states.get(SlaState.BREACHED, 0) > 0
    opened = count(select(func.count()).select_from(Escalation)
                   .where(Escalation.resolved_at.is_(None)))
    assert opened > 0
    assert count(select(func.count()).select_from(Notification)) > 0
    again = seed_demo()[0]
    # Only a threshold crossed in the seconds between the runs could open another one.
    newly = int(re.search(r"(\d+) escalations opened", again).group(1))
    assert newly <= 2
    assert count(select(func.count()).select_from(Escalation)
                 .where(Escalation.resolved_at.is_(None))) == opened + newly
