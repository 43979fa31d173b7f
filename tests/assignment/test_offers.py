"""Offers with a timeout: offered instead of assigned, accepted, declined, lapsed; audited.

Time is frozen by passing it: the batch, the answers and the expiry job all take ``now``/``at``.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from provider_app.assignment import claim_next
from provider_app.assignment.actions import assign, set_availability
from provider_app.assignment.batch import run_batch
from provider_app.assignment.offers import (
    OfferError,
    accept_offer,
    decline_offer,
    expire_offers,
)
from provider_app.db_types import utcnow
from provider_app.extensions import db as _db
from provider_app.jobs import run_job
from provider_app.models import AuditEvent, Task
from provider_app.schedule import PERIODIC
from provider_app.vocab import Availability, Role, Status
from tests.factories import (
    gen_client,
    gen_contract,
    gen_specialist,
    gen_task,
    gen_task_type,
    gen_user,
)


def fresh(task: Task) -> Task:
    _db.session.expire(task)
    return task


def actions_on(task: Task) -> list[str]:
    return list(_db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.object_type == "task",
                                        AuditEvent.object_id == task.id,
                                        AuditEvent.action.like("task.offer%"))
        .order_by(AuditEvent.id)))


@pytest.fixture
def offering(db):
    """A client whose contract makes offers answered within 15 minutes, one queued task."""
    c = gen_client()
    gen_contract(c, offer_timeout_minutes=15)
    task = gen_task(c, gen_task_type())
    return c, task


def test_batch_offers_instead_of_assigning_for_clients_with_offers(offering):
    c, task = offering
    plain_client = gen_client()
    plain = gen_task(plain_client, gen_task_type())
    person = gen_specialist(capacity=5)
    now = utcnow()
    result = run_batch(now)
    assert (result.offered, result.assigned) == (1, 1)
    fresh(task)
    assert task.status == Status.QUEUED and task.assignee_id is None
    assert task.offered_to_id == person.id
    assert task.offer_expires_at == task.offered_at + timedelta(minutes=15)
    assert fresh(plain).status == Status.ASSIGNED
    event = _db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_id == task.id, AuditEvent.action == "task.offer_made")).one()
    assert event.after["offered_to_id"] == person.id and event.client_id == c.id


def test_offered_tasks_are_skipped_by_get_next_and_the_next_batch(offering):
    _, task = offering
    person, other = gen_specialist(capacity=1), gen_specialist()
    run_batch()
    holder = fresh(task).offered_to_id
    assert holder in (person.id, other.id)
    assert claim_next(other.id if holder == person.id else person.id) is None
    assert run_batch().queued == 0  # not in the queue while the offer is open
    assert fresh(task).offered_to_id == holder


def test_an_offer_holds_capacity_against_further_offers(offering):
    c, first = offering
    gen_specialist(capacity=1)
    run_batch()
    second = gen_task(c, first.task_type)
    result = run_batch()
    assert result.offered == 0 and fresh(second).offered_to_id is None
    assert fresh(second).waiting_reason


def test_accept_assigns_through_the_lifecycle_and_is_audited(offering):
    _, task = offering
    person = gen_specialist()
    now = utcnow()
    run_batch(now)
    accept_offer(fresh(task), person, version=task.version, at=now + timedelta(minutes=5))
    fresh(task)
    assert (task.status, task.assignee_id, task.offered_to_id) == (
        Status.ASSIGNED, person.id, None)
    assert actions_on(task) == ["task.offer_made", "task.offer_accepted"]
    transition = _db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_id == task.id, AuditEvent.action == "task.transition",
        AuditEvent.to_status == "assigned")).one()
    assert (transition.actor_id, transition.reason) == (person.id, "offer accepted")


def test_accept_is_refused_after_the_timeout_and_for_someone_else(offering):
    _, task = offering
    person, other = gen_specialist(), gen_user(Role.SPECIALIST)
    now = utcnow()
    run_batch(now)
    holder = _db.session.get(type(person), fresh(task).offered_to_id)
    with pytest.raises(OfferError, match="no longer offered"):
        accept_offer(task, other, at=now)
    with pytest.raises(OfferError, match="lapsed"):
        accept_offer(task, holder, at=now + timedelta(minutes=15))


def test_accept_rechecks_eligibility(offering):
    _, task = offering
    person = gen_specialist(capacity=1)
    run_batch()
    gen_task(task.client, task.task_type, status=Status.ASSIGNED, assignee=person)
    with pytest.raises(OfferError, match="cannot take") as refused:
        accept_offer(fresh(task), person)
    assert [r.code for r in refused.value.reasons] == ["capacity"]
    assert fresh(task).status == Status.QUEUED


def test_decline_returns_to_queue_and_is_not_offered_again_this_round(offering):
    _, task = offering
    first = gen_specialist()
    run_batch()
    decline_offer(fresh(task), first, version=task.version)
    fresh(task)
    assert task.offered_to_id is None and task.offer_declined_ids == [first.id]
    assert actions_on(task) == ["task.offer_made", "task.offer_declined"]
    result = run_batch()  # nobody else: it waits, with the reason
    assert result.offered == 0
    assert "declined" in fresh(task).waiting_reason
    second = gen_specialist()
    run_batch()
    assert fresh(task).offered_to_id == second.id


def test_no_answer_in_time_returns_it_to_the_queue_idempotently(offering):
    _, task = offering
    person = gen_specialist()
    now = utcnow()
    run_batch(now)
    assert expire_offers(now + timedelta(minutes=14)) == {"expired": 0}
    assert fresh(task).offered_to_id == person.id
    assert expire_offers(now + timedelta(minutes=15)) == {"expired": 1}
    assert expire_offers(now + timedelta(minutes=16)) == {"expired": 0}
    fresh(task)
    assert (task.status, task.offered_to_id, task.offer_expires_at) == (
        Status.QUEUED, None, None)
    assert task.offer_declined_ids == [person.id]
    assert actions_on(task) == ["task.offer_made", "task.offer_expired"]
    assert claim_next(gen_specialist().id) == task.id  # back in the queue for Get next
    assert fresh(task).offer_declined_ids is None  # assigned: the round is over


def test_a_lead_assigning_an_offered_task_withdraws_the_offer(offering):
    _, task = offering
    offered, other = gen_specialist(), gen_specialist()
    lead = gen_user(Role.TEAM_LEAD)
    run_batch()
    target = other if fresh(task).offered_to_id == offered.id else offered
    assign(task, target.id, lead)
    fresh(task)
    assert (task.assignee_id, task.offered_to_id) == (target.id, None)
    assert actions_on(task) == ["task.offer_made", "task.offer_withdrawn"]


def test_expiry_is_a_declared_periodic_job(offering):
    _, task = offering
    task.received_at = utcnow() - timedelta(hours=2)
    _db.session.flush()
    gen_specialist()
    run_batch(utcnow() - timedelta(hours=1))
    [entry] = [p for p in PERIODIC if p.name == "offer-expiry"]
    assert entry.interval == 60
    assert run_job(entry.func_path) == {"expired": 1}
    assert fresh(task).offered_to_id is None


# --- through HTTP: the specialist answers on "My work", the lead sees who and when ----------


def test_specialist_sees_accepts_and_declines_offers_on_my_work(client, offering):
    c, task = offering
    person = gen_specialist()
    second = gen_task(c, task.task_type, external_ref="OFFER-2")
    task.external_ref = "OFFER-1"
    run_batch()
    _db.session.commit()
    client.login(person)
    body = client.get("/work").get_data(as_text=True)
    assert "Offered to you (2)" in body and "OFFER-1" in body and "OFFER-2" in body
    response = client.post(f"/work/offers/{task.public_id}/accept",
                           data={"version": fresh(task).version})
    assert response.status_code == 303 and task.public_id in response.location
    assert fresh(task).assignee_id == person.id
    response = client.post(f"/work/offers/{second.public_id}/decline",
                           data={"version": fresh(second).version}, follow_redirects=True)
    assert "Offer declined" in response.get_data(as_text=True)
    assert fresh(second).offer_declined_ids == [person.id]


def test_someone_elses_offer_answers_404(client, offering):
    _, task = offering
    gen_specialist()
    run_batch()
    stranger = gen_specialist()
    _db.session.commit()
    client.login(stranger)
    for answer in ("accept", "decline"):
        response = client.post(f"/work/offers/{task.public_id}/{answer}",
                               data={"version": fresh(task).version})
        assert response.status_code == 404
    assert fresh(task).offered_to_id is not None


def test_lead_board_shows_who_has_the_offer(client, offering):
    _, task = offering
    gen_specialist().name = "Bea Offered"
    run_batch()
    lead = gen_user(Role.TEAM_LEAD)
    _db.session.commit()
    client.login(lead)
    body = client.get("/board").get_data(as_text=True)
    assert "Offered to Bea Offered" in body
    assert re.search(r"answer due <span title=\"[^\"]+\">in 1[45] min</span>", body)
    assert "</span> Offered</a>" in body


def test_going_away_withdraws_open_offers(offering):
    _, task = offering
    person = gen_specialist()
    run_batch()
    result = set_availability(person.id, Availability.AWAY, gen_user(Role.TEAM_LEAD))
    assert task in result.returned
    assert fresh(task).offered_to_id is None and task.status == Status.QUEUED
    assert actions_on(task) == ["task.offer_made", "task.offer_withdrawn"]
