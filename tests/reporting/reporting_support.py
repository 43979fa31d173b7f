"""A hand-built data set for the SLA reporting tests; every figure is worked out in the tests.

Client calendar: UTC, Monday-Friday 09:00-17:00, US holidays (none in June 2025 before the
19th). Period 2025-06-02 (Mon) .. 2025-06-15 (Sun): two weeks, ends 2025-06-16 00:00 UTC.
Type A normal: 8 business hours; type B high: 4 business hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from provider_app.extensions import db
from provider_app.lifecycle import transition
from provider_app.models import Escalation, Task
from provider_app.vocab import EscalationReason, Role, SlaState, Status
from qa.models import QaReview
from sla.clock import start_clock
from sla.reporting.period import Period
from tests.factories import gen_client, gen_contract, gen_task_type, gen_user

S = Status
START, END = date(2025, 6, 2), date(2025, 6, 15)


def at(day: int, hour: int, minute: int = 0, month: int = 6) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


@dataclass
class DataSet:
    client: object
    other: object
    type_a: object
    type_b: object
    tasks: dict
    period: Period


def _task(client, tt, priority, received, steps, **kw) -> Task:
    task = Task(client_id=client.id, task_type_id=tt.id, priority=priority,
                fields={"description": "x"}, received_at=received,
                sop_id=tt.current_sop().id, **kw)
    db.session.add(task)
    db.session.flush()
    start_clock(task)
    for status, when in steps:
        transition(task, status, at=when)
    return task


def _done(received, completed):
    """Straight to completed: every step at receipt, completion at ``completed``."""
    return [(S.QUEUED, received), (S.ASSIGNED, received), (S.IN_PROGRESS, received),
            (S.SUBMITTED, completed), (S.COMPLETED, completed)]


def _open(received, upto=S.IN_PROGRESS):
    path = [S.QUEUED, S.ASSIGNED, S.IN_PROGRESS]
    return [(s, received) for s in path[: path.index(upto) + 1]]


def build(scheme: dict | None = None) -> DataSet:
    client = gen_client(tz="UTC", name="Acme Mutual")
    other = gen_client(tz="UTC", name="Other Carrier")
    a, b = gen_task_type(), gen_task_type()
    gen_contract(client, {(a, "normal"): 8, (b, "high"): 4}, attainment_target=95.0,
                 qa_accuracy_target=98.0, monthly_fee=10000,
                 credit_scheme=scheme or {"kind": "per_point", "pct_per_point": 1.0,
                                          "cap_pct": 50.0})
    gen_contract(other, {(a, "normal"): 8})
    t = {}
    t[1] = _task(client, a, "normal", at(2, 9), _done(at(2, 9), at(2, 13)))
    t[2] = _task(client, a, "normal", at(2, 10), [
        (S.QUEUED, at(2, 10)), (S.ASSIGNED, at(2, 10)), (S.IN_PROGRESS, at(2, 10)),
        (S.PENDING_CLIENT, at(2, 11)), (S.IN_PROGRESS, at(3, 10)),
        (S.SUBMITTED, at(3, 15)), (S.COMPLETED, at(3, 15))])
    t[3] = _task(client, a, "normal", at(3, 9), _done(at(3, 9), at(4, 12)))
    t[4] = _task(client, b, "high", at(4, 16), _done(at(4, 16), at(5, 11)))
    t[5] = _task(client, b, "high", at(9, 9), _done(at(9, 9), at(9, 15)))
    t[6] = _task(client, a, "normal", at(10, 9), [
        (S.QUEUED, at(10, 9)), (S.ASSIGNED, at(10, 9)), (S.IN_PROGRESS, at(10, 9)),
        (S.SUBMITTED, at(10, 10)), (S.IN_QA, at(10, 10)), (S.REWORK, at(10, 10, 30)),
        (S.IN_PROGRESS, at(10, 10, 30)), (S.SUBMITTED, at(10, 11)), (S.COMPLETED, at(10, 11))])
    t[6].rework_count = 1  # what the failing QA review (qa.reviews) records with the rework
    t[7] = _task(client, a, "normal", at(13, 9), _open(at(13, 9), S.QUEUED))
    t[8] = _task(client, a, "normal", at(11, 9), _open(at(11, 9)))
    t[9] = _task(client, b, "high", at(13, 15), _open(at(13, 15)))
    t[9].sla_state = SlaState.AT_RISK
    t[10] = _task(client, a, "normal", at(12, 9), [(S.QUEUED, at(12, 9)),
                                                   (S.CANCELLED, at(12, 10))])
    t[11] = _task(client, a, "normal", at(30, 9, month=5), _done(at(30, 9, month=5), at(2, 10)))
    t[12] = _task(client, a, "normal", at(13, 16), _done(at(13, 16), at(16, 10)))
    t[14] = _task(client, a, "normal", at(16, 9), _open(at(16, 9)))
    # Another client's work in the same period: never counted, never visible.
    t[13] = _task(other, a, "normal", at(2, 9), _done(at(2, 9), at(2, 11)))
    reviewer = gen_user(Role.QA_REVIEWER)
    for task, passed, critical in ((t[1], True, False), (t[2], True, False),
                                   (t[4], True, False), (t[3], False, True)):
        db.session.add(QaReview(client_id=client.id, task_id=task.id, reviewer_id=reviewer.id,
                                sop_id=task.sop_id, passed=passed, critical_failure=critical,
                                score=1.0 if passed else 0.5, created_at=task.completed_at,
                                completed_at=task.completed_at))
    for task, reason, opened, ack, res in (
        (t[3], EscalationReason.SLA_BREACHED, at(4, 12), at(4, 13), at(4, 16)),
        (t[5], EscalationReason.SLA_BREACHED, at(9, 15), at(9, 15, 30), at(9, 17)),
        (t[8], EscalationReason.CLIENT_COMPLAINT, at(12, 9), None, None),
    ):
        db.session.add(Escalation(client_id=client.id, task_id=task.id, reason=reason,
                                  opened_at=opened, level_changed_at=opened,
                                  acknowledged_at=ack, resolved_at=res))
    db.session.flush()
    return DataSet(client, other, a, b, t, Period(START, END, "UTC"))
