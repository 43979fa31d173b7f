"""QA pages: who may open them, the lot-sampling page, client scoping of every route."""

from __future__ import annotations

import pytest
from flask import render_template_string
from flask_login import login_user

from provider_app.extensions import db as _db
from provider_app.models import StaffClient, StaffProfile
from provider_app.vocab import Role, Status
from qa.lots import evaluate_lot, get_stratum, inspect_lot, state_to_json
from qa.models import LotInspection, SamplingStratum
from qa.sampling import SwitchState
from tests.factories import gen_client, gen_specialist, gen_user

PAGES = {
    "/qa/": {Role.QA_REVIEWER, Role.TEAM_LEAD},
    "/qa/disputes": {Role.TEAM_LEAD, Role.ADMIN},
    "/qa/sampling": {Role.TEAM_LEAD, Role.ADMIN},
    "/qa/figures": {Role.TEAM_LEAD, Role.ADMIN},
    "/qa/calibration": {Role.QA_REVIEWER, Role.TEAM_LEAD, Role.ADMIN},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("path", list(PAGES))
def test_role_guards(client, db, role, path):
    owner = gen_client() if role in (Role.CLIENT_ADMIN, Role.CLIENT_USER) else None
    user = gen_user(role, owner)
    _db.session.commit()  # kept when a request answers 4xx and rolls its own work back
    response = client.login(user).get(path)
    assert response.status_code == (200 if role in PAGES[path] else 403), (role, path)


def restricted_lead(*clients):
    lead = gen_user(Role.TEAM_LEAD)
    lead.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
    lead.staff_profile.client_links = [StaffClient(client_id=c.id) for c in clients]
    _db.session.flush()
    return lead


@pytest.fixture
def decided_lots(world):
    world.set_policy(rate=0.0, lot={"aql": 6.5, "level": "II"})
    for results in ([True, True], [False], [True, True], [False]):
        lot, tasks = world.lot(5)
        for task in tasks:
            world.submit(task)
        inspection_id = inspect_lot(lot.id)
        inspection = _db.session.get(LotInspection, inspection_id)
        outcomes = iter(results)
        for task in tasks:
            if task.id in inspection.sample_task_ids and inspection.status == "inspecting":
                world.review(task, next(outcomes))
                evaluate_lot(inspection_id)
    return get_stratum(world.client.id, world.task_type.id)


def test_sampling_page_shows_severity_lots_and_why(client, world, decided_lots):
    assert decided_lots.severity == "tightened"
    body = client.login(world.lead).get("/qa/sampling").get_data(as_text=True)
    assert f"{world.client.code} × {world.task_type.code}" in body
    assert "tightened" in body and "§8.3.1" in body
    assert "batch-5.csv" in body and "Ac 0 / Re 1" in body


def test_sampling_page_query_count_does_not_grow_with_strata(client, world, decided_lots,
                                                             count_queries):
    client.login(world.lead)
    client.get("/qa/sampling")
    with count_queries() as few:
        client.get("/qa/sampling")
    for _ in range(3):
        s = get_stratum(gen_client().id, world.task_type.id)
        s.history = [{"at": "2024-01-01T00:00:00", "from": "normal", "to": "normal",
                      "reason": "x", "accepted": True}]
    client.get("/qa/sampling")
    with count_queries() as many:
        client.get("/qa/sampling")
    assert many.count == few.count


def test_resume_a_stopped_stratum_from_the_page(client, world):
    stratum = get_stratum(world.client.id, world.task_type.id)
    state = SwitchState(severity="tightened", not_accepted_on_tightened=5, stopped=True,
                        reason="5 lots not accepted")
    stratum.state, stratum.severity, stratum.stopped = state_to_json(state), "tightened", True
    _db.session.commit()
    client.login(world.lead)
    assert "Resume on tightened inspection" in client.get("/qa/sampling").get_data(as_text=True)
    empty = client.post(f"/qa/sampling/{stratum.public_id}/resume", data={"note": ""})
    assert empty.status_code == 400
    assert "Say what corrective action was taken." in empty.get_data(as_text=True)
    done = client.post(f"/qa/sampling/{stratum.public_id}/resume",
                       data={"note": "Coached the team on limits."})
    assert done.status_code == 302
    assert _db.session.get(SamplingStratum, stratum.id).stopped is False


def test_another_clients_stratum_is_invisible_and_404(client, world, decided_lots):
    lead = restricted_lead(gen_client())
    _db.session.commit()
    client.login(lead)
    assert world.client.code not in client.get("/qa/sampling").get_data(as_text=True)
    assert client.post(f"/qa/sampling/{decided_lots.public_id}/resume",
                       data={"note": "x"}).status_code == 404


def test_findings_page_is_for_the_maker_and_qa_staff_only(client, world):
    world.set_policy(rate=1.0)
    task = world.submitted()
    world.review(task, False)
    stranger = gen_specialist()
    _db.session.commit()
    assert client.login(world.specialist).get(f"/qa/tasks/{task.public_id}").status_code == 200
    assert client.login(world.lead).get(f"/qa/tasks/{task.public_id}").status_code == 200
    assert client.login(stranger).get(f"/qa/tasks/{task.public_id}").status_code == 404


def test_figures_of_another_client_are_not_shown(client, world):
    world.set_policy(rate=1.0)
    world.review(world.submitted(), False)
    lead = restricted_lead(gen_client())
    client.login(lead)
    body = client.get("/qa/figures?group_by=client").get_data(as_text=True)
    assert world.client.code not in body and "No reviews completed" in body


def test_the_findings_partial_renders_for_any_task(app, world):
    """Other pages include qa/_findings.html with just ``task`` in the context."""
    world.set_policy(rate=1.0)
    task = world.submitted()
    world.review(task, False)
    with app.test_request_context():
        login_user(world.specialist)
        html = render_template_string('{% include "qa/_findings.html" %}', task=task)
    assert "Keying error" in html and "Dispute this finding" in html
    assert task.status == Status.REWORK
