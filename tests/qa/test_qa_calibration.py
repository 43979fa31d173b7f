"""Calibration: blind scoring, Krippendorff's alpha checked by hand, deviation from the lead."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from provider_app.extensions import db as _db
from provider_app.vocab import Role, Status
from qa import calibration as cal
from qa.metrics import quality_figures
from qa.models import CalibrationSession
from qa.reviews import QaError
from tests.factories import gen_specialist, gen_user
from tests.qa.conftest import entries


def test_nominal_alpha_by_hand():
    """Three raters, four pass(1)/fail(0) units.

    Units: (1,1,1) (1,1,0) (0,0,0) (1,0,1). Coincidences (each unit has 3 values, so each
    ordered pair weighs 1/2): o11 = 3+1+0+1 = 5, o00 = 0+0+3+0 = 3, o10 = o01 = 0+1+0+1 = 2;
    n = 12, n1 = 7, n0 = 5. D_o = (o10+o01)/n = 4/12; D_e = 2*n1*n0/(n(n-1)) = 70/132.
    alpha = 1 - (4/12)/(70/132) = 1 - 22/35 = 13/35.
    """
    ratings = [[1, 1, 0, 1], [1, 1, 0, 0], [1, 0, 0, 1]]
    assert cal.alpha(ratings, "nominal") == pytest.approx(13 / 35)


def test_interval_alpha_by_hand():
    """Two raters scoring three files: (1,1) (2,2) (3,4).

    Values 1,1,2,2,3,4 (n = 6). D_o = sum of squared differences within units / n
    = (0+0+2*1)/6 = 1/3. D_e = sum over ordered pairs of all values of (a-b)^2 / (n(n-1))
    = 2*(4*1 + 2*4 + 2*9 + 2*1 + 2*4 + 1*1)/30 = 82/30. alpha = 1 - (1/3)/(82/30) = 36/41.
    """
    assert cal.alpha([[1, 2, 3], [1, 2, 4]], "interval") == pytest.approx(36 / 41)


def test_alpha_is_undefined_without_variation_or_pairs():
    assert cal.alpha([[1, 1], [1, 1]], "nominal") is None
    assert cal.alpha([[1, None], [None, 0]], "nominal") is None
    assert cal.alpha([[1, 0, None], [1, 0, 1]], "nominal") == pytest.approx(1.0)


@pytest.fixture
def session_world(world):
    world.set_policy(rate=1.0)
    files = []
    for _ in range(2):
        task = world.submitted()
        world.review(task, passed=True)
        files.append(task)
    reviewers = [gen_user(Role.QA_REVIEWER), gen_user(Role.QA_REVIEWER)]
    session = cal.create_session(world.lead, "June calibration", files, reviewers)
    return world, session, files, reviewers


def test_creating_a_session_checks_its_input(world):
    world.set_policy(rate=1.0)
    open_task = world.submitted()
    with pytest.raises(QaError) as caught:
        cal.create_session(world.lead, " ", [open_task], [gen_user(Role.QA_REVIEWER)])
    assert set(caught.value.errors) == {"title", "tasks", "reviewers"}
    maker = gen_specialist(extra_roles=[Role.QA_REVIEWER])
    done = world.submitted(maker)
    world.review(done, passed=True)
    with pytest.raises(QaError) as caught:
        cal.create_session(world.lead, "t", [done], [gen_user(Role.QA_REVIEWER), maker])
    assert any("Four eyes" in m for m in caught.value.errors["tasks"])
    with pytest.raises(QaError) as caught:
        cal.create_session(world.lead, "t", [done], [gen_user(Role.QA_REVIEWER),
                                                     gen_specialist()])
    assert any("reviewer or a lead" in m for m in caught.value.errors["reviewers"])


def test_results_agreement_alpha_and_deviation_from_the_lead(session_world):
    world, session, (t1, t2), (ann, bob) = session_world
    # Lead (benchmark): both files pass. Ann fails the minor item on t1 (75 %).
    # Bob agrees with the lead on t1 and fails the critical item on t2 (0 %).
    cal.score_task(session, t1, world.lead, entries(t1, True))
    cal.score_task(session, t2, world.lead, entries(t2, True))
    cal.score_task(session, t1, ann, entries(t1, False))
    cal.score_task(session, t2, ann, entries(t2, True))
    cal.score_task(session, t1, bob, entries(t1, True))
    cal.score_task(session, t2, bob, entries(t2, False, critical=True))
    results = cal.results(session)
    deviation = {d.user.id: d for d in results.deviations}
    assert deviation[ann.id].mean_deviation == pytest.approx(-12.5)
    assert deviation[bob.id].mean_deviation == pytest.approx(-50.0)
    assert deviation[bob.id].mean_abs_deviation == pytest.approx(50.0)
    # Items: 4 units (2 files x 2 items); Ann differs from the lead on one, Bob on one.
    assert deviation[ann.id].item_agreement == pytest.approx(0.75)
    by_item = {a.item.position: a for a in results.items}
    # Critical item: t1 (1,1,1) - 3 of 3 pairs agree; t2 (1,1,0) - 1 of 3.
    assert by_item[1].agreement == pytest.approx(4 / 6)
    # Units ordered file by file, item by item: (t1,i1) (t1,i2) (t2,i1) (t2,i2).
    assert results.alpha_items == pytest.approx(
        cal.alpha([[1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1]], "nominal"))
    assert results.alpha_scores == pytest.approx(
        cal.alpha([[1.0, 1.0], [0.75, 1.0], [1.0, 0.0]], "interval"))


def test_calibration_never_touches_the_task_or_the_figures(session_world):
    world, session, (t1, _), (ann, _) = session_world
    before = quality_figures(date(2000, 1, 1), date(2100, 1, 1), group_by="team")
    cal.score_task(session, t1, ann, entries(t1, False, critical=True))
    assert t1.status == Status.COMPLETED and t1.qa_outcome == "pass_first"
    after = quality_figures(date(2000, 1, 1), date(2100, 1, 1), group_by="team")
    assert after == before


def test_only_participants_score_and_not_after_closing(session_world):
    world, session, (t1, _), (ann, _) = session_world
    with pytest.raises(QaError, match="not scoring"):
        cal.score_task(session, t1, gen_user(Role.QA_REVIEWER), entries(t1))
    with pytest.raises(QaError, match="Only the lead"):
        cal.close_session(session, ann)
    cal.close_session(session, world.lead)
    with pytest.raises(QaError, match="closed"):
        cal.score_task(session, t1, ann, entries(t1))


def test_scoring_is_blind_until_the_session_closes(client, session_world):
    world, session, (t1, t2), (ann, bob) = session_world
    cal.score_task(session, t1, world.lead, entries(t1, False, critical=True))
    client.login(ann)
    page = client.get(f"/qa/calibration/{session.public_id}/tasks/{t1.public_id}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "limits wrong" not in body and "checked" not in body  # nobody else's marks
    overview = client.get(f"/qa/calibration/{session.public_id}").get_data(as_text=True)
    assert "Krippendorff" not in overview and "results appear" in overview
    data = {"item-1-result": "pass", "item-2-result": "pass"}
    response = client.post(f"/qa/calibration/{session.public_id}/tasks/{t1.public_id}",
                           data=data)
    assert response.status_code == 302
    client.login(world.lead)
    lead_view = client.get(f"/qa/calibration/{session.public_id}").get_data(as_text=True)
    assert "Krippendorff" in lead_view
    client.post(f"/qa/calibration/{session.public_id}/close")
    assert _db.session.get(CalibrationSession, session.id).closed_at is not None
    client.login(ann)
    assert "Krippendorff" in client.get(f"/qa/calibration/{session.public_id}").get_data(
        as_text=True)


def test_outsiders_get_404(client, session_world):
    world, session, (t1, _), _ = session_world
    outsider = gen_user(Role.QA_REVIEWER)
    _db.session.commit()  # kept when a request answers 4xx and rolls its own work back
    client.login(outsider)
    assert client.get(f"/qa/calibration/{session.public_id}").status_code == 404
    assert client.get(
        f"/qa/calibration/{session.public_id}/tasks/{t1.public_id}").status_code == 404


def test_create_a_session_through_the_page(client, world):
    world.set_policy(rate=1.0)
    task = world.submitted()
    world.review(task, passed=True)
    ann, bob = gen_user(Role.QA_REVIEWER), gen_user(Role.QA_REVIEWER)
    _db.session.commit()
    client.login(world.lead)
    page = client.get("/qa/calibration").get_data(as_text=True)
    assert task.public_id in page
    bad = client.post("/qa/calibration", data={"title": "", "tasks": [task.public_id],
                                               "reviewers": [str(ann.id)]})
    assert bad.status_code == 400
    assert "Give the session a title." in bad.get_data(as_text=True)
    good = client.post("/qa/calibration", data={"title": "Q3", "tasks": [task.public_id],
                                                "reviewers": [str(ann.id), str(bob.id)]})
    assert good.status_code == 302
    session = _db.session.scalar(select(CalibrationSession).where(CalibrationSession.title == "Q3"))
    assert session.task_ids == [task.id] and set(session.reviewer_ids) == {ann.id, bob.id}
