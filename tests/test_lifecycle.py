"""The task state machine: every allowed move works and is audited; others refuse."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from provider_app.lifecycle import TRANSITIONS, TransitionError, can_transition, transition
from provider_app.models import AuditEvent
from provider_app.vocab import CLOSED_STATUSES, Role, Status
from tests.factories import gen_client, gen_task, gen_task_type, gen_user

ALLOWED = [(a, b) for a, targets in TRANSITIONS.items() for b in targets]
REFUSED = [(a, b) for a in Status for b in Status if b not in TRANSITIONS[a]]


def test_product_lifecycle_is_exactly_the_table():
    S = Status
    expected = {
        (S.RECEIVED, S.QUEUED), (S.QUEUED, S.ASSIGNED), (S.ASSIGNED, S.IN_PROGRESS),
        (S.ASSIGNED, S.QUEUED), (S.IN_PROGRESS, S.PENDING_CLIENT),
        (S.PENDING_CLIENT, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.SUBMITTED), (S.IN_PROGRESS, S.QUEUED), (S.SUBMITTED, S.IN_QA),
        (S.SUBMITTED, S.COMPLETED), (S.IN_QA, S.REWORK), (S.IN_QA, S.COMPLETED),
        (S.REWORK, S.IN_PROGRESS),
    } | {(s, S.CANCELLED) for s in S if s not in CLOSED_STATUSES}
    assert set(ALLOWED) == expected


@pytest.mark.parametrize(("from_status", "to_status"), ALLOWED)
def test_allowed_transition_is_applied_and_audited(db, from_status, to_status):
    client = gen_client()
    actor = gen_user(Role.TEAM_LEAD)
    task = gen_task(client, gen_task_type(), status=from_status)
    transition(task, to_status, actor=actor, reason="because")
    assert task.status == to_status
    event = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.object_type == "task", AuditEvent.object_id == task.id)
        .order_by(AuditEvent.id.desc())
    ).first()
    assert (event.from_status, event.to_status) == (from_status.value, to_status.value)
    assert event.actor_id == actor.id
    assert event.client_id == client.id
    assert event.reason == "because"


@pytest.mark.parametrize(("from_status", "to_status"), REFUSED[:40] + REFUSED[-20:])
def test_illegal_transition_raises_a_clear_error(db, from_status, to_status):
    task = gen_task(gen_client(), gen_task_type(), status=from_status)
    with pytest.raises(TransitionError, match=f"cannot move to {to_status.value}"):
        transition(task, to_status)
    assert task.status == from_status


def test_cancel_from_every_open_state_but_not_closed():
    for status in Status:
        assert can_transition(status, Status.CANCELLED) == (status not in CLOSED_STATUSES)


def test_unassign_clears_the_assignee(db):
    specialist = gen_user(Role.SPECIALIST)
    task = gen_task(gen_client(), gen_task_type(), status=Status.ASSIGNED, assignee=specialist)
    assert task.assignee_id == specialist.id
    transition(task, Status.QUEUED, reason="unassigned")
    assert task.assignee_id is None


def test_pending_client_pauses_the_clock_and_pushes_due_out(db):
    task = gen_task(gen_client(), gen_task_type(), status=Status.IN_PROGRESS)
    due = task.due_at
    paused = task.received_at + timedelta(minutes=10)
    transition(task, Status.PENDING_CLIENT, at=paused)
    assert task.sla_paused_since == paused
    transition(task, Status.IN_PROGRESS, at=paused + timedelta(days=7))
    assert task.sla_paused_since is None
    assert task.due_at > due


def test_version_increases_on_every_change(db):
    task = gen_task(gen_client(), gen_task_type(), status=Status.QUEUED)
    before = task.version
    transition(task, Status.CANCELLED)
    assert task.version == before + 1
