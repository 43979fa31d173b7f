"""The SLA sweep with frozen time: each threshold found exactly once, pauses respected."""

from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from provider_app.models import AuditEvent, StaffClient, StaffProfile, Task
from provider_app.vocab import EscalationReason, Role, SlaState
from sla.escalations import acknowledge, open_escalation
from sla.models import Escalation, EscalationRule, Notification, OutboxEmail
from sla.sweep import SUPERSEDED, sweep
from tests.factories import gen_client, gen_contract, gen_task_type, gen_user
from tests.sla.sla_support import S, new_task, ny, to_in_progress, walk

R = EscalationReason


@pytest.fixture
def setup(db):
    client, tt = gen_client(), gen_task_type()
    gen_contract(client, {(tt, "normal"): 4, (tt, "high"): 40})
    return client, tt


def escalations(db, task, reason=None):
    stmt = select(Escalation).where(Escalation.task_id == task.id).order_by(Escalation.id)
    if reason:
        stmt = stmt.where(Escalation.reason == reason)
    return db.session.scalars(stmt).all()


def running_task(setup, received=None, priority="normal"):
    received = received or ny(2026, 1, 12, 10)
    return to_in_progress(new_task(*setup, received, priority=priority), received)


def test_nothing_happens_before_the_at_risk_instant(db, setup):
    task = running_task(setup)
    result = sweep(ny(2026, 1, 12, 12, 59))
    assert (result.at_risk, result.breached, result.opened) == (0, 0, 0)
    assert task.sla_state == SlaState.ON_TRACK


def test_at_risk_is_found_exactly_once(db, setup):
    task = running_task(setup)
    first = sweep(ny(2026, 1, 12, 13))
    assert (first.at_risk, first.breached, first.opened) == (1, 0, 1)
    assert task.sla_state == SlaState.AT_RISK and task.escalation_level == 1
    [escalation] = escalations(db, task)
    assert escalation.reason == R.SLA_AT_RISK and escalation.level == 1
    assert escalation.opened_at == ny(2026, 1, 12, 13)
    again = sweep(ny(2026, 1, 12, 13, 30))
    assert (again.at_risk, again.breached, again.opened) == (0, 0, 0)
    assert len(escalations(db, task)) == 1


def test_breach_is_found_exactly_once_and_supersedes_the_at_risk_escalation(db, setup):
    task = running_task(setup)
    sweep(ny(2026, 1, 12, 13))
    result = sweep(ny(2026, 1, 12, 14, 1))
    assert (result.breached, result.at_risk, result.opened, result.superseded) == (1, 0, 1, 1)
    assert task.sla_state == SlaState.BREACHED
    at_risk, breached = escalations(db, task)
    assert at_risk.resolved_at == ny(2026, 1, 12, 14, 1)
    assert at_risk.resolution_note == SUPERSEDED
    assert breached.reason == R.SLA_BREACHED and breached.resolved_at is None
    again = sweep(ny(2026, 1, 13, 14))
    assert (again.breached, again.opened, again.superseded) == (0, 0, 0)


def test_a_task_that_crossed_both_thresholds_gets_only_the_breach(db, setup):
    task = running_task(setup)
    result = sweep(ny(2026, 1, 20, 9))
    assert (result.breached, result.at_risk, result.opened) == (1, 0, 1)
    assert [e.reason for e in escalations(db, task)] == [R.SLA_BREACHED]


def test_due_at_closing_is_not_breached_overnight(db, setup):
    task = running_task(setup, ny(2026, 1, 12, 13))  # due 17:00
    overnight = sweep(ny(2026, 1, 12, 23))
    assert (overnight.at_risk, overnight.breached) == (1, 0)
    morning = sweep(ny(2026, 1, 13, 9, 0, 1))
    assert morning.breached == 1
    assert task.sla_state == SlaState.BREACHED


def test_a_paused_task_does_not_breach(db, setup):
    task = running_task(setup)
    walk(task, (S.PENDING_CLIENT, ny(2026, 1, 12, 11)))
    paused = sweep(ny(2026, 2, 12, 11))  # a month later, still waiting for the client
    assert (paused.at_risk, paused.breached, paused.opened) == (0, 0, 0)
    assert task.sla_state == SlaState.ON_TRACK
    walk(task, (S.IN_PROGRESS, ny(2026, 2, 13, 10)))  # 3 h left from Friday 10:00
    assert sweep(ny(2026, 2, 13, 11, 59)).at_risk == 0
    assert sweep(ny(2026, 2, 13, 12)).at_risk == 1
    assert sweep(ny(2026, 2, 13, 13, 1)).breached == 1


def test_a_task_paused_after_crossing_is_marked_once_it_resumes(db, setup):
    task = running_task(setup)
    walk(task, (S.PENDING_CLIENT, ny(2026, 1, 12, 13, 30)))  # at risk since 13:00, unswept
    assert sweep(ny(2026, 1, 12, 15)).at_risk == 0
    walk(task, (S.IN_PROGRESS, ny(2026, 1, 13, 10)))
    assert sweep(ny(2026, 1, 13, 10, 1)).at_risk == 1


def test_closed_and_received_tasks(db, setup):
    done = running_task(setup)
    walk(done, (S.SUBMITTED, ny(2026, 1, 12, 11)), (S.COMPLETED, ny(2026, 1, 12, 11)))
    received = new_task(*setup, ny(2026, 1, 12, 10))  # not yet queued: the clock still runs
    result = sweep(ny(2026, 1, 20, 9))
    assert result.breached == 1
    assert received.sla_state == SlaState.BREACHED
    assert done.sla_state == SlaState.ON_TRACK and escalations(db, done) == []


def test_an_escalation_already_open_is_not_opened_again(db, setup):
    task = running_task(setup)
    existing, created = open_escalation(task, R.SLA_BREACHED, detail="spotted by a lead")
    assert created
    result = sweep(ny(2026, 1, 20, 9))
    assert (result.breached, result.opened) == (1, 0)
    assert escalations(db, task) == [existing]


def test_batches_cover_every_task(db, setup):
    tasks = [running_task(setup, ny(2026, 1, 12, 10) + timedelta(minutes=i)) for i in range(7)]
    result = sweep(ny(2026, 1, 12, 13, 30), batch=3)
    assert (result.at_risk, result.opened) == (7, 7)
    assert {t.sla_state for t in tasks} == {SlaState.AT_RISK}


def sweep_audit(db):
    return db.session.execute(
        select(AuditEvent.action, AuditEvent.object_type, AuditEvent.object_id,
               AuditEvent.reason, AuditEvent.after)
        .where(AuditEvent.action.in_(
            ["task.sla_state", "escalation.open", "escalation.resolve", "escalation.raise"]))
        .order_by(AuditEvent.id)
    ).all()


def test_one_audit_row_per_task_names_the_escalations_opened_and_superseded(db, setup):
    """The mark, the escalation it opens and the one it supersedes are one audit row."""
    task = running_task(setup)
    sweep(ny(2026, 1, 12, 13))
    sweep(ny(2026, 1, 12, 14, 1))
    at_risk, breached = escalations(db, task)
    assert sweep_audit(db) == [
        ("escalation.open", "escalation", at_risk.id, "sla_at_risk: SLA sweep",
         {"task_id": task.id, "sla_state": "at_risk", "escalation_id": at_risk.id,
          "superseded_id": None}),
        ("escalation.open", "escalation", breached.id, "sla_breached: SLA sweep",
         {"task_id": task.id, "sla_state": "breached", "escalation_id": breached.id,
          "superseded_id": at_risk.id}),
    ]


def test_a_mark_that_opens_nothing_is_audited_on_the_task(db, setup):
    task = running_task(setup)
    open_escalation(task, R.SLA_BREACHED, detail="spotted by a lead")
    opened_by_hand = sweep_audit(db)
    sweep(ny(2026, 1, 20, 9))
    assert sweep_audit(db)[len(opened_by_hand):] == [
        ("task.sla_state", "task", task.id, "SLA sweep: breached",
         {"task_id": task.id, "sla_state": "breached", "escalation_id": None,
          "superseded_id": None}),
    ]


def test_escalation_public_ids_are_unique_and_opaque(db, setup):
    for i in range(3):
        running_task(setup, ny(2026, 1, 12, 10) + timedelta(minutes=i))
    sweep(ny(2026, 1, 12, 14))
    ids = db.session.scalars(select(Escalation.public_id)).all()
    assert len(ids) == 3 == len(set(ids))
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


# --- levels and notifications ----------------------------------------------------------


@pytest.fixture
def people(db, setup):
    client, _ = setup
    other = gen_client()
    lead = gen_user(Role.TEAM_LEAD)
    restricted = gen_user(Role.TEAM_LEAD)
    restricted.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
    restricted.staff_profile.client_links = [StaffClient(client_id=other.id)]
    admin = gen_user(Role.ADMIN)
    account_owner = gen_user(Role.CLIENT_ADMIN, client)
    plain_client_user = gen_user(Role.CLIENT_USER, client)
    db.session.add_all([
        EscalationRule(client_id=client.id, from_level=1, ack_minutes=60),
        EscalationRule(client_id=client.id, from_level=2, ack_minutes=240),
    ])
    db.session.flush()
    return {"lead": lead, "restricted": restricted, "admin": admin,
            "owner": account_owner, "client_user": plain_client_user}


def notified(db, escalation):
    return {n.user_id: n for n in db.session.scalars(
        select(Notification).where(Notification.escalation_id == escalation.id))}


def test_opening_notifies_the_leads_who_see_the_client(db, setup, people):
    task = running_task(setup)
    sweep(ny(2026, 1, 12, 13))
    [escalation] = escalations(db, task)
    notes = notified(db, escalation)
    assert set(notes) == {people["lead"].id}
    assert "sla at risk" in notes[people["lead"].id].text
    assert notes[people["lead"].id].link == f"/escalations/{escalation.public_id}"
    mail = db.session.scalars(select(OutboxEmail)).all()
    assert [m.to_address for m in mail] == [people["lead"].email]
    assert mail[0].sent_at is None


def test_level_rises_without_acknowledgement(db, setup, people):
    task = running_task(setup, priority="high")  # 40 h: at risk Thursday 16:00
    opened = ny(2026, 1, 15, 16)
    sweep(opened)
    [escalation] = escalations(db, task)
    assert sweep(opened + timedelta(minutes=59)).raised == 0
    result = sweep(opened + timedelta(minutes=60))
    assert result.raised == 1
    assert escalation.level == 2 and task.escalation_level == 2
    assert escalation.level_changed_at == opened + timedelta(minutes=60)
    assert people["admin"].id in notified(db, escalation)
    assert sweep(opened + timedelta(minutes=60 + 239)).raised == 0
    assert sweep(opened + timedelta(minutes=60 + 240)).raised == 1
    assert escalation.level == 3 and task.escalation_level == 3
    notes = notified(db, escalation)
    assert people["owner"].id in notes and people["client_user"].id not in notes
    client_note = notes[people["owner"].id]
    assert client_note.link == f"/portal/tasks/{task.public_id}"
    assert "sla" not in client_note.text.lower() and "level" not in client_note.text
    assert sweep(opened + timedelta(days=30)).raised == 0  # 3 is the top
    assert [row for row in sweep_audit(db) if row.action == "escalation.raise"] == [
        ("escalation.raise", "escalation", escalation.id,
         "not acknowledged within 60 min: level 1 -> 2", {"level": 2}),
        ("escalation.raise", "escalation", escalation.id,
         "not acknowledged within 240 min: level 2 -> 3", {"level": 3}),
    ]


def test_level_stays_once_acknowledged(db, setup, people):
    task = running_task(setup)
    sweep(ny(2026, 1, 12, 13))
    [escalation] = escalations(db, task)
    acknowledge(escalation, people["lead"], now=ny(2026, 1, 12, 13, 30))
    assert sweep(ny(2026, 1, 14, 13)).raised == 0
    assert escalation.level == 1


def test_clients_without_rules_never_rise(db):
    client, tt = gen_client(), gen_task_type()
    gen_contract(client, {(tt, "normal"): 4})
    task = to_in_progress(new_task(client, tt, ny(2026, 1, 12, 10)), ny(2026, 1, 12, 10))
    sweep(ny(2026, 1, 12, 13))
    assert sweep(ny(2026, 3, 1)).raised == 0
    assert escalations(db, task)[0].level == 1


def test_one_digest_email_per_person_per_sweep(db, setup, people):
    """Four escalations opened and one raised in a sweep: one e-mail per person."""
    waiting = running_task(setup, ny(2026, 1, 12, 9), priority="high")  # at risk Thu 15:00
    sweep(ny(2026, 1, 15, 15))
    db.session.execute(delete(OutboxEmail))
    late = running_task(setup, ny(2026, 1, 15, 9))  # breaches at 13:00
    for i in range(3):  # at risk from 15:00, due from 16:00
        running_task(setup, ny(2026, 1, 15, 12) + timedelta(minutes=i))
    result = sweep(ny(2026, 1, 15, 16))
    assert (result.breached, result.at_risk, result.opened, result.raised) == (1, 3, 4, 1)
    mail = {m.to_address: m for m in db.session.scalars(select(OutboxEmail))}
    assert set(mail) == {people["lead"].email, people["admin"].email}
    # The lead owns all five (four opened, one raised); the admin hears of the raise.
    assert mail[people["lead"].email].subject == "5 escalations need your attention"
    assert mail[people["lead"].email].body.count("/escalations/") == 5
    assert mail[people["admin"].email].subject.startswith("Escalation raised to level 2")
    assert (late.sla_state, waiting.escalation_level) == (SlaState.BREACHED, 2)
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1 + 4 + 2


def test_the_sweep_hands_each_escalation_to_the_clients_own_lead(db, setup, people):
    """The owner is told; other leads see the queue count, not a notice per escalation."""
    client, _ = setup
    pod_lead = gen_user(Role.TEAM_LEAD)
    pod_lead.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
    pod_lead.staff_profile.client_links = [StaffClient(client_id=client.id)]
    db.session.flush()
    task = running_task(setup)
    sweep(ny(2026, 1, 12, 13))
    [escalation] = escalations(db, task)
    assert escalation.owner_id == pod_lead.id  # named for the client, before "all clients"
    assert set(notified(db, escalation)) == {pod_lead.id}
    assert [m.to_address for m in db.session.scalars(select(OutboxEmail))] == [pod_lead.email]


def test_without_a_lead_for_the_client_the_escalation_has_no_owner(db, setup):
    task = running_task(setup)
    sweep(ny(2026, 1, 12, 13))
    [escalation] = escalations(db, task)
    assert escalation.owner_id is None
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0


def test_sweep_leaves_task_versions_alone(db, setup):
    task = running_task(setup)
    version = task.version
    sweep(ny(2026, 1, 20))
    assert db.session.scalar(select(Task.version).where(Task.id == task.id)) == version
