"""QA figures: SQL aggregation per specialist, team, client, task type and error category."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from provider_app.extensions import db as _db
from provider_app.lifecycle import transition
from provider_app.vocab import Role, Status
from qa.disputes import decide_dispute, raise_dispute
from qa.metrics import quality_figures
from tests.factories import gen_client, gen_specialist, gen_task_type, gen_user

ALL_TIME = (date(2000, 1, 1), date(2100, 1, 1))


@pytest.fixture
def history(world):
    """Ann: t1 pass; t2 fail (keying) -> rework -> pass; t3 critical fail (limits).
    Bob: t4 pass, on another task type. Ann disputes t2's finding and it is overturned."""
    world.set_policy(rate=1.0)
    ann, bob = world.specialist, gen_specialist()
    second = gen_user(Role.QA_REVIEWER)
    t1 = world.submitted()
    world.review(t1, True)
    t2 = world.submitted()
    first_review = world.review(t2, False)
    transition(t2, Status.IN_PROGRESS, actor=ann)
    world.submit(t2)
    world.review(t2, True, reviewer=second)
    t3 = world.submitted()
    world.review(t3, False, critical=True)
    other_type = gen_task_type()
    other_type.current_sop().sampling_policy = {"rate": 1.0}
    t4 = world.__class__(world.client, other_type, bob, world.reviewer, world.lead).submitted()
    world.review(t4, True)
    return {"ann": ann, "bob": bob, "first_review": first_review, "other_type": other_type}


def by_key(rows):
    return {row.key: row for row in rows}


def test_per_specialist(history):
    rows = by_key(quality_figures(*ALL_TIME, group_by="specialist"))
    ann, bob = rows[history["ann"].id], rows[history["bob"].id]
    assert (ann.reviewed, ann.passed, ann.critical_fails) == (4, 2, 1)
    assert ann.accuracy == pytest.approx(0.5)
    assert (ann.first_reviews, ann.first_passes) == (3, 1)
    assert ann.first_pass_yield == pytest.approx(1 / 3)
    assert (ann.findings, ann.disputes, ann.dispute_rate) == (2, 0, 0)
    assert (bob.reviewed, bob.accuracy, bob.first_pass_yield) == (1, 1.0, 1.0)


def test_an_overturned_finding_updates_accuracy_and_counts_as_disputed(world, history):
    finding = next(r for r in history["first_review"].items if r.result == "fail")
    dispute = raise_dispute(finding, history["ann"], "It matches.")
    decide_dispute(dispute, world.lead, "overturn", "Agreed.")
    ann = by_key(quality_figures(*ALL_TIME))[history["ann"].id]
    assert (ann.passed, ann.first_passes) == (3, 2)
    assert (ann.findings, ann.disputes, ann.overturned) == (2, 1, 1)
    assert ann.dispute_rate == pytest.approx(0.5)
    categories = by_key(quality_figures(*ALL_TIME, group_by="error_category"))
    assert (categories["keying_error"].findings, categories["keying_error"].overturned) == (1, 1)
    assert categories["wrong_limits"].critical_fails == 1
    assert categories["wrong_limits"].label == "Wrong limits"


def test_team_client_and_task_type(world, history):
    [team] = quality_figures(*ALL_TIME, group_by="team")
    assert (team.reviewed, team.passed, team.critical_fails, team.first_reviews) == (5, 3, 1, 4)
    [client_row] = quality_figures(*ALL_TIME, group_by="client")
    assert client_row.label == world.client.code and client_row.reviewed == 5
    types = by_key(quality_figures(*ALL_TIME, group_by="task_type"))
    assert types[world.task_type.id].reviewed == 4
    assert types[history["other_type"].id].reviewed == 1


def test_period_and_client_filters(world, history):
    today = date.today()
    assert quality_figures(today - timedelta(days=30), today - timedelta(days=1)) == []
    assert len(quality_figures(today, today, group_by="team")) == 1
    other = gen_client()
    assert quality_figures(*ALL_TIME, client_id=other.id) == []
    assert quality_figures(*ALL_TIME, client_ids=[other.id]) == []
    assert quality_figures(*ALL_TIME, client_ids=[world.client.id], group_by="team")[0].reviewed \
        == 5


def test_unknown_grouping_is_refused():
    with pytest.raises(ValueError, match="group_by"):
        quality_figures(*ALL_TIME, group_by="moon_phase")


def test_figures_page(client, world, history, count_queries):
    client.login(world.lead)
    body = client.get("/qa/figures?group_by=specialist").get_data(as_text=True)
    assert "50.0 %" in body and "33.3 %" in body
    client.get("/qa/figures?group_by=specialist")
    with count_queries() as few:
        client.get("/qa/figures?group_by=specialist")
    for _ in range(3):  # more specialists and reviews: the same number of queries
        world.review(world.submitted(gen_specialist()), False)
    client.get("/qa/figures?group_by=specialist")
    with count_queries() as many:
        response = client.get("/qa/figures?group_by=specialist")
    assert response.status_code == 200 and many.count == few.count
    assert "Keying error" in client.get("/qa/figures?group_by=error_category").get_data(
        as_text=True)


def test_figures_page_rejects_a_backwards_period(client, world):
    _db.session.commit()  # kept when a request answers 4xx and rolls its own work back
    client.login(world.lead)
    response = client.get("/qa/figures?start=2024-05-10&end=2024-05-01")
    assert response.status_code == 400
    assert "The end date is before the start date." in response.get_data(as_text=True)
