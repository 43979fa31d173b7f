"""Concurrent edits to QA reviews and escalations on PostgreSQL: a conflict, never a lost update.

The pages carry the version a person saw, and services refuse a stale one
(tests/qa and tests/sla cover that). These tests cover the race those checks
cannot see: two people who both loaded the *same* version and save at the same
moment. One change is held open in a first database session (flushed, row
locked, not committed) while the other person's request runs the real view in
a second session and connection, in another thread, and blocks on the row lock
(seen in ``pg_stat_activity``). When the first commits, the second's versioned
UPDATE matches no row: SQLAlchemy raises ``StaleDataError`` and the person gets
409 with a message, the first change stays whole, and nothing of the second is
written (no audit event either).

The data must be committed for two connections to see it, so the tests use a
scratch database created and dropped around each test (as
tests/assignment/test_claim_concurrency.py does). PostgreSQL only: on SQLite one
writer at a time holds the whole database, which is a different mechanism.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from provider_app import create_app
from provider_app.extensions import db
from provider_app.models import AuditEvent, Escalation, StaffClient, StaffProfile, Task
from provider_app.settings import normalise_database_url
from provider_app.vocab import EscalationReason, Role
from qa.models import QaReview
from qa.reviews import claim, complete_review
from sla.escalations import acknowledge, open_escalation
from tests.conftest import AppClient, is_postgres
from tests.conftest import test_config as base_config
from tests.factories import gen_client, gen_contract, gen_specialist, gen_task_type, gen_user
from tests.qa.conftest import World, entries

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def scratch_app(app) -> Iterator[Flask]:
    """An app on a fresh PostgreSQL database, dropped afterwards."""
    if not is_postgres(app):
        pytest.skip("PostgreSQL only: row locks between two connections")
    base = normalise_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    name = f"tl_edits_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    scratch = create_app(base_config(url, tempfile.mkdtemp(prefix="tl-edits-")))
    scratch.test_client_class = AppClient
    with scratch.app_context():
        db.create_all(bind_key=None)
    try:
        yield scratch
    finally:
        with scratch.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _waiting_on_a_lock(app: Flask) -> bool:
    with app.app_context():
        return bool(db.session.scalar(text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )))


def _race(app: Flask, first: Callable[[], None], second: Callable[[], object]) -> object:
    """Run ``first`` (flushed, locks held) then ``second`` in a thread; commit ``first``
    once ``second`` waits on its row lock; return what ``second`` returned."""
    results: list[object] = []
    with app.app_context():
        first()
        thread = threading.Thread(target=lambda: results.append(second()))
        thread.start()
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(app):
            assert thread.is_alive() and time.monotonic() < deadline, "never blocked"
            time.sleep(0.05)
        db.session.commit()
    thread.join(timeout=30)
    assert results, "the second request did not finish"
    return results[0]


def _review_form(task: Task, version: int, comment: str) -> dict[str, str]:
    data = {"version": str(version), "comments": comment}
    by_id = {i.id: i for i in task.sop.scorecard}
    for entry in entries(task, passed=True):
        position = by_id[entry.item_id].position
        data[f"item-{position}-result"] = entry.result
        data[f"item-{position}-category"] = ""
        data[f"item-{position}-comment"] = ""
    return data


def _world() -> World:
    client = gen_client()
    task_type = gen_task_type()
    gen_contract(client)
    return World(client=client, task_type=task_type, specialist=gen_specialist(),
                 reviewer=gen_user(Role.QA_REVIEWER), lead=gen_user(Role.TEAM_LEAD))


def test_the_same_qa_review_saved_twice_at_once_conflicts(scratch_app):
    with scratch_app.app_context():
        world = _world()
        world.set_policy(rate=1.0)
        task = world.submitted(external_ref="RACE-QA")
        review = claim(task, world.reviewer)
        db.session.commit()
        review_id, reviewer_id = review.id, world.reviewer.id
        url = f"/qa/reviews/{review.public_id}"
        form = _review_form(task, review.version, "second tab")
        reviewer = db.session.get(type(world.reviewer), reviewer_id)
        browser = scratch_app.test_client().login(reviewer)

    def first() -> None:  # the reviewer's other tab, same version, saved a moment earlier
        saved = db.session.get(QaReview, review_id)
        complete_review(saved, saved.reviewer, entries(saved.task, passed=True),
                        comments="first tab", expected_version=saved.version)

    response = _race(scratch_app, first, lambda: browser.post(url, data=form))
    assert response.status_code == 409
    assert "This review changed since you opened it" in response.get_data(as_text=True)
    with scratch_app.app_context():
        stored = db.session.get(QaReview, review_id)
        assert stored.comments == "first tab" and stored.completed_at is not None
        completed = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "qa.review_completed"))
        assert completed == 1


def test_an_escalation_changed_by_two_leads_at_once_conflicts(scratch_app):
    with scratch_app.app_context():
        world = _world()
        task = world.worked(external_ref="RACE-ESC")
        escalation, _ = open_escalation(task, EscalationReason.CLIENT_COMPLAINT,
                                        detail="the client is unhappy")
        other_lead = gen_user(Role.TEAM_LEAD)
        for lead in (world.lead, other_lead):
            lead.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
            lead.staff_profile.client_links = [StaffClient(client_id=world.client.id)]
        db.session.commit()
        escalation_id, first_lead_id = escalation.id, world.lead.id
        url = f"/escalations/{escalation.public_id}/owner"
        form = {"version": str(escalation.version), "owner": other_lead.email}
        browser = scratch_app.test_client().login(other_lead)

    def first() -> None:  # lead one acknowledges (and so owns) it
        acknowledge(db.session.get(Escalation, escalation_id),
                    db.session.get(type(world.lead), first_lead_id),
                    expected_version=db.session.get(Escalation, escalation_id).version)

    response = _race(scratch_app, first, lambda: browser.post(url, data=form))
    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert re.search(r"changed (while you were|this record)", body), body[:500]
    with scratch_app.app_context():
        stored = db.session.get(Escalation, escalation_id)
        assert stored.acknowledged_by_id == first_lead_id
        assert stored.owner_id == first_lead_id  # lead two's change did not overwrite it
        assigned = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "escalation.assign"))
        assert assigned == 0
