"""Every role's home page renders, with empty states, in a bounded number of queries."""

import pytest

from provider_app.vocab import Role, Status
from tests.factories import gen_client, gen_task, gen_task_type, gen_user


def test_login_page(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b"Sign in" in response.data


@pytest.mark.parametrize(
    ("role", "path", "empty_text"),
    [
        (Role.ADMIN, "/admin", b"Clients"),
        (Role.TEAM_LEAD, "/board", b"No open work"),
        (Role.SPECIALIST, "/work", b"Nothing assigned to you"),
        (Role.QA_REVIEWER, "/qa/", b"Nothing is waiting for review"),
        (Role.TEAM_LEAD, "/escalations", b"No open escalations"),
        (Role.CLIENT_USER, "/portal/", b"You have not sent any work yet"),
        (Role.CLIENT_USER, "/portal/tasks", b"No tasks match"),
    ],
)
def test_empty_states(client, role, path, empty_text):
    owner = gen_client() if role == Role.CLIENT_USER else None
    client.login(gen_user(role, owner))
    response = client.get(path)
    assert response.status_code == 200
    assert empty_text in response.data


def test_my_work_does_not_grow_queries_with_tasks(client, count_queries):
    specialist = gen_user(Role.SPECIALIST)
    c, tt = gen_client(), gen_task_type()
    client.login(specialist)
    gen_task(c, tt, status=Status.ASSIGNED, assignee=specialist)
    with count_queries() as few:
        client.get("/work")
    for _ in range(10):
        gen_task(c, tt, status=Status.ASSIGNED, assignee=specialist)
    with count_queries() as many:
        body = client.get("/work").data
    assert body.count(b"<tr>") == 12  # header + 11 rows
    assert many.count == few.count


def test_portal_task_list_paginates(client):
    c, tt = gen_client(), gen_task_type()
    user = gen_user(Role.CLIENT_USER, c)
    for i in range(30):
        gen_task(c, tt, external_ref=f"REF-{i:03d}")
    client.login(user)
    first = client.get("/portal/tasks").get_data(as_text=True)
    second = client.get("/portal/tasks?page=2").get_data(as_text=True)
    assert "Page 1 of 2" in first and "Page 2 of 2" in second
    assert "REF-029" in first and "REF-000" in second
