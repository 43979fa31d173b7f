"""The escalation queue, escalation actions and notifications, through the web."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from provider_app.db_types import utcnow
from provider_app.models import AuditEvent, Message, StaffClient, StaffProfile
from provider_app.vocab import EscalationReason, MessageKind, Role
from sla.escalations import open_escalation
from sla.models import Notification
from tests.factories import gen_client, gen_task, gen_task_type, gen_user

R = EscalationReason


def restricted_lead(*clients):
    lead = gen_user(Role.TEAM_LEAD)
    lead.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
    lead.staff_profile.client_links = [StaffClient(client_id=c.id) for c in clients]
    return lead


@pytest.fixture
def world(db):
    tt = gen_task_type()
    a, b = gen_client(code="ACME"), gen_client(code="BETA")
    people = {"lead": gen_user(Role.TEAM_LEAD), "lead_a": restricted_lead(a),
              "admin": gen_user(Role.ADMIN)}
    task_a = gen_task(a, tt, external_ref="A-1")
    task_b = gen_task(b, tt, external_ref="B-SECRET")
    esc_a, _ = open_escalation(task_a, R.SLA_AT_RISK)
    esc_b, _ = open_escalation(task_b, R.SPECIALIST_EXCEPTION, detail="stuck")
    world = {"a": a, "b": b, "tt": tt, "task_a": task_a, "task_b": task_b,
             "esc_a": esc_a, "esc_b": esc_b, **people}
    # Committed (to the test's savepoint) so a 4xx response's rollback keeps the world.
    db.session.commit()
    return world


def page(client, path, status=200):
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


# --- access -----------------------------------------------------------------------------

SLA_PAGES = {
    "/escalations": {Role.ADMIN, Role.TEAM_LEAD},
    "/admin/calendars": {Role.ADMIN},
    "/notifications": set(Role),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("path", list(SLA_PAGES))
def test_role_guards(client, role, path):
    owner = gen_client() if role in (Role.CLIENT_ADMIN, Role.CLIENT_USER) else None
    client.login(gen_user(role, owner))
    assert client.get(path).status_code == (200 if role in SLA_PAGES[path] else 403)


def test_queue_lists_open_escalations_newest_level_first(client, world):
    client.login(world["lead"])
    body = page(client, "/escalations")
    assert "A-1" in body and "B-SECRET" in body
    assert "Escalations (2)" in body  # the navigation count


def test_restricted_lead_sees_only_their_clients(client, world):
    client.login(world["lead_a"])
    body = page(client, "/escalations")
    assert "A-1" in body and "B-SECRET" not in body
    assert "Escalations (1)" in body
    page(client, f"/escalations/{world['esc_b'].public_id}", 404)
    for action in ("acknowledge", "resolve", "notes", "owner"):
        response = client.post(f"/escalations/{world['esc_b'].public_id}/{action}",
                               data={"version": 1, "note": "x", "body": "x", "owner": "x"})
        assert response.status_code == 404, action
    assert world["esc_b"].acknowledged_at is None


def test_client_filter_names_only_visible_clients(client, world):
    client.login(world["lead_a"])
    body = page(client, "/escalations?client=BETA", 400)
    assert "Not a valid choice" in body and "B-SECRET" not in body


@pytest.mark.parametrize(("query", "shown", "hidden"), [
    ("client=ACME", "A-1", "B-SECRET"),
    ("reason=specialist_exception", "B-SECRET", "A-1"),
    ("level=1", "A-1", None),
    ("state=resolved", None, "A-1"),
])
def test_filters_live_in_the_url(client, world, query, shown, hidden):
    client.login(world["lead"])
    body = page(client, f"/escalations?{query}")
    if shown:
        assert shown in body
    if hidden:
        assert hidden not in body


def test_age_filter(client, world, db):
    world["esc_a"].opened_at = utcnow() - timedelta(hours=30)
    db.session.flush()
    client.login(world["lead"])
    body = page(client, "/escalations?age=24")
    assert "A-1" in body and "B-SECRET" not in body


@pytest.mark.parametrize("query", ["level=7", "reason=nope", "age=5", "state=gone"])
def test_bad_filters_are_refused_with_a_message(client, world, query):
    client.login(world["lead"])
    assert "Not a valid choice" in page(client, f"/escalations?{query}", 400)


def test_queue_paginates_and_keeps_filters(client, world, app):
    for i in range(app.config["PAGE_SIZE"] + 2):
        open_escalation(gen_task(world["a"], world["tt"], external_ref=f"P-{i:03d}"),
                        R.CLIENT_COMPLAINT)
    client.login(world["lead"])
    first = page(client, "/escalations?client=ACME")
    assert "Page 1 of 2" in first and "client=ACME" in first
    assert "Page 2 of 2" in page(client, "/escalations?client=ACME&page=2")


def test_queue_queries_do_not_grow_with_rows(client, world, count_queries):
    client.login(world["lead"])
    client.get("/escalations")
    with count_queries() as few:
        client.get("/escalations")
    for i in range(8):
        open_escalation(gen_task(world["a"], world["tt"]), R.CLIENT_COMPLAINT)
    with count_queries() as many:
        body = client.get("/escalations").get_data(as_text=True)
    assert body.count("<tr>") == 11  # header + 10 rows
    assert many.count <= few.count  # "few" also opened the request's savepoint


def test_empty_queue(client, db):
    client.login(gen_user(Role.TEAM_LEAD))
    assert "No open escalations" in page(client, "/escalations")


# --- actions ----------------------------------------------------------------------------


def test_acknowledge_from_the_queue(client, world):
    esc = world["esc_a"]
    client.login(world["lead"])
    response = client.post(f"/escalations/{esc.public_id}/acknowledge",
                           data={"version": esc.version, "next": "/escalations?client=ACME"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/escalations?client=ACME")
    assert esc.acknowledged_at is not None and esc.owner_id == world["lead"].id
    assert esc.acknowledged_by_id == world["lead"].id


def test_acknowledge_never_redirects_off_site(client, world):
    client.login(world["lead"])
    response = client.post(f"/escalations/{world['esc_a'].public_id}/acknowledge",
                           data={"version": world["esc_a"].version, "next": "//evil.test/"})
    assert response.headers["Location"].endswith(f"/escalations/{world['esc_a'].public_id}")


def test_a_stale_page_is_a_clear_conflict(client, world, db):
    esc = world["esc_a"]
    stale = esc.version
    esc.level = 2  # the sweep raised it meanwhile
    db.session.commit()
    client.login(world["lead"])
    response = client.post(f"/escalations/{esc.public_id}/acknowledge", data={"version": stale})
    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert "changed while you were looking at it" in body and "level 2" in body
    assert esc.acknowledged_at is None


def test_resolve_needs_a_note(client, world):
    esc = world["esc_a"]
    client.login(world["lead"])
    response = client.post(f"/escalations/{esc.public_id}/resolve",
                           data={"version": esc.version, "note": "  "})
    assert response.status_code == 422
    assert "Say how it was resolved" in response.get_data(as_text=True)
    ok = client.post(f"/escalations/{esc.public_id}/resolve",
                     data={"version": esc.version, "note": "Chased the carrier"})
    assert ok.status_code == 302, ok.headers
    assert esc.resolved_at is not None and esc.resolution_note == "Chased the carrier"
    assert esc.resolved_by_id == world["lead"].id and esc.acknowledged_at is not None
    again = client.post(f"/escalations/{esc.public_id}/resolve",
                        data={"version": esc.version, "note": "twice"})
    assert again.status_code == 422 and "already resolved" in again.get_data(as_text=True)


def test_assign_to_an_eligible_lead_notifies_them(client, world, db):
    esc, other = world["esc_a"], world["lead_a"]
    client.login(world["lead"])
    body = page(client, f"/escalations/{esc.public_id}")
    assert other.email in body
    response = client.post(f"/escalations/{esc.public_id}/owner",
                           data={"version": esc.version, "owner": other.email})
    assert response.status_code == 302
    assert esc.owner_id == other.id
    assert db.session.scalar(select(Notification).where(
        Notification.user_id == other.id, Notification.text.like("Escalation assigned to you%")))


def test_owner_must_work_for_the_client(client, world):
    esc = world["esc_b"]  # BETA: lead_a works only for ACME
    client.login(world["lead"])
    response = client.post(f"/escalations/{esc.public_id}/owner",
                           data={"version": esc.version, "owner": world["lead_a"].email})
    assert response.status_code == 422
    assert "Not a valid choice" in response.get_data(as_text=True)
    assert esc.owner_id is None


def test_notes_are_internal_task_notes(client, world, db):
    esc = world["esc_a"]
    client.login(world["lead"])
    assert client.post(f"/escalations/{esc.public_id}/notes", data={"body": ""}).status_code == 422
    assert client.post(f"/escalations/{esc.public_id}/notes",
                       data={"body": "Called the client"}).status_code == 302
    note = db.session.scalar(select(Message).where(Message.task_id == world["task_a"].id))
    assert note.kind == MessageKind.NOTE and note.internal and "Called the client" in note.body
    assert "Called the client" in page(client, f"/escalations/{esc.public_id}")


def test_actions_need_csrf(client, world):
    client.login(world["lead"])
    response = client.post(f"/escalations/{world['esc_a'].public_id}/acknowledge",
                           data={"version": 1}, no_csrf=True)
    assert response.status_code == 400


def test_actions_are_audited(client, world, db):
    esc = world["esc_a"]
    client.login(world["lead"])
    client.post(f"/escalations/{esc.public_id}/acknowledge", data={"version": esc.version})
    client.post(f"/escalations/{esc.public_id}/resolve", data={"version": esc.version,
                                                                "note": "done"})
    actions = db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.object_type == "escalation", AuditEvent.object_id == esc.id
    ).order_by(AuditEvent.id)).all()
    assert actions == ["escalation.open", "escalation.acknowledge", "escalation.resolve"]
    assert "acknowledge" in page(client, f"/escalations/{esc.public_id}")


# --- notifications ----------------------------------------------------------------------


def test_notifications_list_and_mark_read(client, world, db):
    lead = world["lead"]
    mine = db.session.scalars(select(Notification).where(Notification.user_id == lead.id)).all()
    assert len(mine) == 2  # one per escalation opened in the fixture
    client.login(lead)
    body = page(client, "/notifications")
    assert "2 unread" in body and "Notifications (2)" in body
    response = client.post(f"/notifications/{mine[0].public_id}/read", data={"open": "1"})
    assert response.headers["Location"] == mine[0].link
    assert mine[0].read_at is not None
    assert "1 unread" in page(client, "/notifications")
    client.post("/notifications/read-all")
    assert "0 unread" in page(client, "/notifications")
    assert "Nothing unread" in page(client, "/notifications?unread=1")


def test_someone_elses_notification_is_404(client, world, db):
    theirs = db.session.scalar(select(Notification).where(
        Notification.user_id == world["lead"].id))
    client.login(world["admin"])
    assert client.post(f"/notifications/{theirs.public_id}/read").status_code == 404
    assert theirs.read_at is None
    assert theirs.text not in page(client, "/notifications")


def test_escalation_count_shows_only_to_leads(client, world):
    client.login(world["lead"])
    body = page(client, "/notifications")
    assert re.search(r"Escalations \(2\)", body)
    specialist = gen_user(Role.SPECIALIST)
    client.login(specialist)
    assert "Escalations" not in page(client, "/notifications")
