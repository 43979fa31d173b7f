"""The lead board, the lead's task page, bulk assign and the staff list, through HTTP."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from provider_app.extensions import db as _db
from provider_app.models import AuditEvent, StaffClient, StaffProfile, Task
from provider_app.vocab import Availability, Role, Status
from tests.factories import gen_client, gen_specialist, gen_task, gen_task_type, gen_user

PAGES = ["/board", "/staff"]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("path", PAGES)
def test_role_guards(client, db, role, path):
    owner = gen_client() if role in (Role.CLIENT_ADMIN, Role.CLIENT_USER) else None
    client.login(gen_user(role, owner))
    expected = 200 if role in (Role.TEAM_LEAD, Role.ADMIN) else 403
    assert client.get(path).status_code == expected


@pytest.fixture
def lead(client, db):
    user = gen_user(Role.TEAM_LEAD)
    client.login(user)
    return user


@pytest.fixture
def restricted_lead(client, db):
    """A lead who works for one client only (their staff profile's client links)."""
    def make(own_client):
        user = gen_user(Role.TEAM_LEAD)
        user.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
        user.staff_profile.client_links = [StaffClient(client_id=own_client.id)]
        _db.session.flush()
        client.login(user)
        return user
    return make


def settle() -> None:
    """Commit the test's data (into the test's outer transaction, still rolled back at the
    end): a refused request rolls back only what came after the last commit."""
    _db.session.commit()


def _status(task: Task) -> Status:
    _db.session.expire(task)
    return task.status


def test_board_shows_queues_counts_and_why_tasks_wait(client, lead):
    c = gen_client(code="ACME")
    tt = gen_task_type(code="COI")
    gen_task(c, tt, external_ref="Q-1", waiting_reason="Every eligible specialist is at capacity.")
    gen_task(c, tt, external_ref="Q-2")
    body = client.get("/board").get_data(as_text=True)
    assert "ACME" in body and "COI" in body
    assert "Every eligible specialist is at capacity." in body
    assert "Not yet considered by automatic assignment." in body
    assert re.search(r'name="tasks" value="[0-9a-f]{32}"', body)


def test_board_filters_come_from_the_url(client, lead):
    a, b = gen_client(code="AAA"), gen_client(code="BBB")
    tt = gen_task_type()
    person = gen_specialist()
    gen_task(a, tt, external_ref="A-QUEUED")
    gen_task(b, tt, external_ref="B-QUEUED")
    gen_task(a, tt, external_ref="A-HELD", status=Status.ASSIGNED, assignee=person)
    body = client.get("/board?client=AAA&status=queued").get_data(as_text=True)
    assert "A-QUEUED" in body and "B-QUEUED" not in body and "A-HELD" not in body
    body = client.get(f"/board?assignee={person.staff_profile.public_id}").get_data(as_text=True)
    assert "A-HELD" in body and "A-QUEUED" not in body
    body = client.get("/board?assignee=none").get_data(as_text=True)
    assert "A-HELD" not in body and "B-QUEUED" in body


def test_bad_filters_are_reported(client, lead):
    body = client.get("/board?status=nonsense&due=yesterday").get_data(as_text=True)
    assert "Unknown status &#39;nonsense&#39;" in body
    assert "Unknown due filter" in body


def test_board_queries_do_not_grow_with_rows(client, lead, count_queries):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist()
    for _ in range(3):
        gen_task(c, tt, status=Status.ASSIGNED, assignee=person)
    _db.session.expire_all()  # the test shares the app's session: start each page cold
    with count_queries() as few:
        assert client.get("/board").status_code == 200
    for _ in range(20):
        gen_task(c, tt, status=Status.IN_PROGRESS, assignee=gen_specialist())
    _db.session.expire_all()
    with count_queries() as many:
        assert client.get("/board").status_code == 200
    assert many.count == few.count


def test_restricted_lead_sees_only_their_clients(client, restricted_lead):
    own, other = gen_client(), gen_client()
    tt = gen_task_type()
    mine = gen_task(own, tt, external_ref="MINE")
    theirs = gen_task(other, tt, external_ref="THEIRS-SECRET")
    person = gen_specialist()
    restricted_lead(own)
    settle()
    body = client.get("/board").get_data(as_text=True)
    assert "MINE" in body and "THEIRS-SECRET" not in body
    assert client.get(f"/board/tasks/{mine.public_id}").status_code == 200
    for path in ("", "/assign", "/reassign", "/unassign"):
        method = client.get if not path else client.post
        response = method(f"/board/tasks/{theirs.public_id}{path}",
                          **({} if not path else {"data": {
                              "staff": person.staff_profile.public_id, "reason": "x",
                              "version": theirs.version}}))
        assert response.status_code == 404, path
        assert b"THEIRS-SECRET" not in response.data
    response = client.post("/board/bulk-assign", data={
        "tasks": [theirs.public_id], "staff": person.staff_profile.public_id})
    assert response.status_code == 404
    assert _status(theirs) == Status.QUEUED


def test_task_page_explains_who_could_take_it(client, lead):
    c = gen_client()
    kpo = gen_task_type(tier="KPO", code="POLCHK")
    gen_specialist("general")
    able = gen_specialist("insurance_trained")
    able.name = "Able Person"
    task = gen_task(c, kpo)
    body = client.get(f"/board/tasks/{task.public_id}").get_data(as_text=True)
    assert "POLCHK is KPO work: insurance-trained staff only." in body
    assert "(hard rule)" in body and "Able Person" in body


def test_assign_from_the_task_page(client, lead):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist()
    task = gen_task(c, tt)
    response = client.post(f"/board/tasks/{task.public_id}/assign", data={
        "staff": person.staff_profile.public_id, "version": task.version})
    assert response.status_code == 303
    assert _status(task) == Status.ASSIGNED and task.assignee_id == person.id


def test_refused_assign_shows_reasons_and_changes_nothing(client, lead):
    c, tt = gen_client(), gen_task_type(skills={"coi": 4})
    person = gen_specialist(skills={"coi": 2})
    task = gen_task(c, tt)
    settle()
    data = {"staff": person.staff_profile.public_id, "version": task.version}
    response = client.post(f"/board/tasks/{task.public_id}/assign", data=data)
    assert response.status_code == 422
    assert "coi ≥ 4 (has 2)" in response.get_data(as_text=True)
    response = client.post(f"/board/tasks/{task.public_id}/assign",
                           data=data | {"override": "y"})
    assert response.status_code == 422 and b"An override needs a reason." in response.data
    assert _status(task) == Status.QUEUED
    response = client.post(f"/board/tasks/{task.public_id}/assign",
                           data=data | {"override": "y", "reason": "trained on the job"})
    assert response.status_code == 303
    assert _status(task) == Status.ASSIGNED
    event = _db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_id == task.id, AuditEvent.action == "assignment.override")).one()
    assert event.actor_id == lead.id and event.reason == "trained on the job"


def test_stale_version_is_a_conflict(client, lead):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist()
    task = gen_task(c, tt)
    settle()
    response = client.post(f"/board/tasks/{task.public_id}/assign", data={
        "staff": person.staff_profile.public_id, "version": task.version - 1})
    assert response.status_code == 409
    assert b"Someone else changed this task" in response.data
    assert _status(task) == Status.QUEUED


def test_bad_form_input(client, lead):
    c, tt = gen_client(), gen_task_type()
    task = gen_task(c, tt)
    settle()
    response = client.post(f"/board/tasks/{task.public_id}/assign",
                           data={"staff": "no-such-person", "version": task.version})
    assert response.status_code == 422 and b"Choose a specialist from the list." in response.data
    response = client.post(f"/board/tasks/{task.public_id}/assign", data={"staff": ""})
    assert response.status_code == 422 and b"missing the task version" in response.data
    response = client.post(f"/board/tasks/{task.public_id}/assign", no_csrf=True,
                           data={"staff": "x", "version": task.version})
    assert response.status_code == 400


def test_reassign_needs_a_reason_and_unassign_returns_to_queue(client, lead):
    c, tt = gen_client(), gen_task_type()
    first, second = gen_specialist(), gen_specialist()
    task = gen_task(c, tt, status=Status.ASSIGNED, assignee=first)
    settle()
    data = {"staff": second.staff_profile.public_id, "version": task.version}
    response = client.post(f"/board/tasks/{task.public_id}/reassign", data=data)
    assert response.status_code == 422 and b"Give a reason for the reassignment." in response.data
    response = client.post(f"/board/tasks/{task.public_id}/reassign",
                           data=data | {"reason": "balancing"})
    assert response.status_code == 303
    _db.session.expire(task)
    assert task.assignee_id == second.id
    response = client.post(f"/board/tasks/{task.public_id}/unassign",
                           data={"version": task.version})
    assert response.status_code == 303
    assert _status(task) == Status.QUEUED and task.assignee_id is None


def test_bulk_assign_reports_what_did_not_fit(client, lead):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist(capacity=2)
    tasks = [gen_task(c, tt, external_ref=f"B-{i}") for i in range(3)]
    response = client.post("/board/bulk-assign", data={
        "tasks": [t.public_id for t in tasks], "staff": person.staff_profile.public_id,
        "next": "/board?status=queued"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/board?status=queued")
    assert [_status(t) for t in tasks].count(Status.ASSIGNED) == 2
    body = client.get("/board").get_data(as_text=True)
    assert "Assigned 2 task(s)." in body and "B-2" in body and "WIP units" in body


def test_bulk_assign_needs_a_selection(client, lead):
    person = gen_specialist()
    response = client.post("/board/bulk-assign", data={"staff": person.staff_profile.public_id})
    assert response.status_code == 303
    assert "Tick at least one task." in client.get("/board").get_data(as_text=True)


def test_staff_list_and_availability_toggle(client, lead):
    c, tt = gen_client(), gen_task_type()
    person = gen_specialist(skills={"coi": 3})
    person.name = "Pat Specialist"
    not_started = gen_task(c, tt, status=Status.ASSIGNED, assignee=person)
    started = gen_task(c, tt, status=Status.IN_PROGRESS, assignee=person, external_ref="STARTED")
    settle()
    body = client.get("/staff").get_data(as_text=True)
    assert "Pat Specialist" in body and "coi 3" in body
    url = f"/staff/{person.staff_profile.public_id}/availability"
    assert client.post(url, data={"availability": "on_leave"}).status_code == 303
    assert _status(not_started) == Status.QUEUED and _status(started) == Status.IN_PROGRESS
    body = client.get("/board").get_data(as_text=True)
    assert "Started work held by absent staff" in body and "STARTED" in body
    assert client.post(url, data={"availability": "sleeping"}).status_code == 303
    assert "Choose an availability" in client.get("/staff").get_data(as_text=True)
    assert client.post("/staff/unknown/availability",
                       data={"availability": "away"}).status_code == 404
    _db.session.expire(person.staff_profile)
    assert person.staff_profile.availability == Availability.ON_LEAVE


QUEUE_ROW = re.compile(
    r'<th scope="row"><a href="[^"]*">([A-Z]+)</a></th><td class="num">(\d+)</td>')


def test_queue_summary_has_one_row_per_client_then_per_task_type(client, lead):
    a, b = gen_client(code="AAA"), gen_client(code="BBB")
    coi, data = gen_task_type(code="COIX"), gen_task_type(code="DATAX")
    for _ in range(2):
        gen_task(a, coi)
    gen_task(a, data)
    gen_task(b, data, status=Status.ASSIGNED, assignee=gen_specialist())

    body = client.get("/board").get_data(as_text=True)
    rows = QUEUE_ROW.findall(body)
    assert ("AAA", "3") in rows and ("BBB", "1") in rows
    assert not any(code in ("COIX", "DATAX") for code, _ in rows)  # types only per client
    assert "/board?client=AAA&amp;status=queued" in body  # each count links to its filter

    body = client.get("/board?client=AAA").get_data(as_text=True)
    rows = QUEUE_ROW.findall(body)
    assert sorted(rows) == [("COIX", "2"), ("DATAX", "1")]
