"""Deny by default, role guards and cross-client scoping on every route."""

import pytest

from provider_app import create_app
from provider_app.access import rule_for
from provider_app.extensions import db as _db
from provider_app.vocab import Role, Status
from tests.conftest import test_config
from tests.factories import gen_client, gen_task, gen_task_type, gen_token, gen_user


def test_every_endpoint_declares_an_access_rule(app):
    missing = [
        rule.endpoint for rule in app.url_map.iter_rules() if rule_for(rule.endpoint, app) is None
    ]
    assert missing == [], f"endpoints without an access rule: {missing}"


def test_an_endpoint_without_a_rule_is_denied(tmp_path):
    # A fresh app: routes can only be added before an app serves its first request.
    fresh = create_app(test_config(f"sqlite:///{tmp_path / 'deny.db'}", str(tmp_path)))
    fresh.add_url_rule("/__unguarded", "unguarded", lambda: "secret")
    with fresh.app_context():
        _db.create_all(bind_key=None)
    response = fresh.test_client().get("/__unguarded")
    assert response.status_code == 403
    assert b"secret" not in response.data


PAGES = {
    "/admin": {Role.ADMIN},
    "/board": {Role.ADMIN, Role.TEAM_LEAD},
    "/work": {Role.SPECIALIST},
    "/qa/": {Role.QA_REVIEWER, Role.TEAM_LEAD},
    "/escalations": {Role.ADMIN, Role.TEAM_LEAD},
    "/portal/": {Role.CLIENT_ADMIN, Role.CLIENT_USER},
    "/portal/tasks": {Role.CLIENT_ADMIN, Role.CLIENT_USER},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("path", list(PAGES))
def test_role_guards(client, role, path):
    owner = gen_client() if role in (Role.CLIENT_ADMIN, Role.CLIENT_USER) else None
    client.login(gen_user(role, owner))
    response = client.get(path)
    expected = 200 if role in PAGES[path] else 403
    assert response.status_code == expected, (role, path)


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get("/board")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_home_sends_each_role_to_its_page(client):
    for role, target in [
        (Role.ADMIN, "/admin"), (Role.TEAM_LEAD, "/board"), (Role.SPECIALIST, "/work"),
        (Role.QA_REVIEWER, "/qa/"), (Role.CLIENT_USER, "/portal/"),
    ]:
        owner = gen_client() if role == Role.CLIENT_USER else None
        client.login(gen_user(role, owner))
        response = client.get("/")
        assert response.headers["Location"].endswith(target), role


@pytest.fixture
def two_clients(db):
    tt = gen_task_type()
    a, b = gen_client(), gen_client()
    return {
        "a": a, "b": b,
        "task_a": gen_task(a, tt, external_ref="A-REF"),
        "task_b": gen_task(b, tt, external_ref="B-SECRET"),
        "user_a": gen_user(Role.CLIENT_USER, a),
    }


def test_portal_task_of_another_client_is_404(client, two_clients):
    client.login(two_clients["user_a"])
    own = client.get(f"/portal/tasks/{two_clients['task_a'].public_id}")
    foreign = client.get(f"/portal/tasks/{two_clients['task_b'].public_id}")
    assert own.status_code == 200
    assert foreign.status_code == 404
    assert b"B-SECRET" not in foreign.data


def test_portal_lists_only_own_tasks(client, two_clients):
    client.login(two_clients["user_a"])
    body = client.get("/portal/tasks").data
    assert b"A-REF" in body and b"B-SECRET" not in body


def test_api_needs_a_token(client, two_clients):
    response = client.get("/api/v1/tasks")
    assert response.status_code == 401
    assert response.json == {"error": "authentication required"}
    bad = client.get("/api/v1/tasks", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_api_scopes_to_the_token_client(client, two_clients):
    headers = {"Authorization": f"Bearer {gen_token(two_clients['a'])}"}
    listed = client.get("/api/v1/tasks", headers=headers).json
    assert [t["external_ref"] for t in listed["items"]] == ["A-REF"]
    foreign = client.get(f"/api/v1/tasks/{two_clients['task_b'].public_id}", headers=headers)
    assert foreign.status_code == 404
    assert "B-SECRET" not in foreign.get_data(as_text=True)


def test_api_refuses_provider_sessions(client, two_clients):
    client.login(gen_user(Role.ADMIN))
    assert client.get("/api/v1/tasks").status_code == 403


def test_restricted_staff_see_only_their_clients_on_the_board(client, two_clients):
    from provider_app.models import StaffClient, StaffProfile

    lead = gen_user(Role.TEAM_LEAD)
    lead.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
    lead.staff_profile.client_links = [StaffClient(client_id=two_clients["a"].id)]
    client.login(lead)
    body = client.get("/board").get_data(as_text=True)
    assert two_clients["a"].code in body
    assert two_clients["b"].code not in body


def test_qa_queue_hides_the_reviewers_own_work(client, db):
    reviewer = gen_user(Role.QA_REVIEWER, None, Role.SPECIALIST)
    tt = gen_task_type()
    c = gen_client()
    own = gen_task(c, tt, status=Status.IN_QA, assignee=reviewer, external_ref="MINE")
    other = gen_task(c, tt, status=Status.IN_QA, assignee=gen_user(Role.SPECIALIST),
                     external_ref="THEIRS")
    client.login(reviewer)
    body = client.get("/qa/").get_data(as_text=True)
    assert other.external_ref in body and own.external_ref not in body
