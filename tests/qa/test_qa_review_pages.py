"""The QA queue, claiming and the scorecard: four eyes, scoping, outcomes, form errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from provider_app.db_types import utcnow
from provider_app.extensions import db as _db
from provider_app.lifecycle import transition
from provider_app.models import Escalation, StaffClient, StaffProfile
from provider_app.vocab import Role, Status
from qa.models import QaReview
from qa.reviews import QaError, StaleReviewError, claim, complete_review
from tests.factories import gen_client, gen_specialist, gen_task, gen_user
from tests.qa.conftest import entries


def restrict(user, *clients):
    """Give a provider user a staff profile limited to ``clients``."""
    user.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
    user.staff_profile.client_links = [StaffClient(client_id=c.id) for c in clients]
    _db.session.flush()
    return user


@pytest.fixture
def in_qa(world):
    world.set_policy(rate=1.0)
    return world.submitted(external_ref="FILE-1")


def form_for(task, passed=True, critical=False, **extra):
    data = {"version": "1", "comments": "", **extra}
    items = sorted(task.sop.scorecard, key=lambda i: i.position)
    by_id = {i.id: i for i in items}
    for entry in entries(task, passed, critical=critical):
        position = by_id[entry.item_id].position
        data[f"item-{position}-result"] = entry.result
        data[f"item-{position}-category"] = entry.error_category or ""
        data[f"item-{position}-comment"] = entry.comment
    return data


def test_queue_is_ordered_by_due_time(client, world):
    world.set_policy(rate=1.0)
    late = world.submitted(external_ref="LATE")
    soon = world.submitted(external_ref="SOON")
    late.due_at, soon.due_at = utcnow() + timedelta(hours=9), utcnow() + timedelta(hours=1)
    _db.session.flush()
    body = client.login(world.reviewer).get("/qa/").get_data(as_text=True)
    assert body.index("SOON") < body.index("LATE")


def test_four_eyes_hides_anyone_who_worked_the_task(client, world, in_qa):
    # The assignee, and a former holder known from the audit trail (the task was handed
    # over while in progress), never see it.
    former = gen_specialist(extra_roles=[Role.QA_REVIEWER])
    world.set_policy(rate=1.0)
    handed_over = world.worked(former, external_ref="HANDED-OVER")
    handed_over.assignee_id = world.specialist.id
    world.submit(handed_over)
    body = client.login(former).get("/qa/").get_data(as_text=True)
    assert "HANDED-OVER" not in body and "FILE-1" in body
    with pytest.raises(QaError, match="four eyes"):
        claim(handed_over, former)
    response = client.post(f"/qa/tasks/{handed_over.public_id}/claim")
    assert response.status_code == 302
    assert _db.session.scalar(select(QaReview).where(QaReview.task_id == handed_over.id)) is None


def test_the_maker_of_an_earlier_review_is_excluded_too(world):
    # A maker known only from an earlier review (no audit trail of them working it, and
    # the rework went to someone else) still may not review the second attempt.
    maker = gen_specialist(extra_roles=[Role.QA_REVIEWER])
    task = gen_task(world.client, world.task_type, status=Status.IN_QA, assignee=maker)
    world.review(task, passed=False)
    newcomer = gen_specialist()
    task.assignee_id = newcomer.id
    transition(task, Status.IN_PROGRESS, actor=newcomer)
    world.submit(task, newcomer)
    assert task.status == Status.IN_QA
    with pytest.raises(QaError, match="four eyes"):
        claim(task, maker)


def test_a_reviewer_never_sees_or_claims_another_clients_task(client, world, in_qa):
    other_client = gen_client()
    reviewer = restrict(gen_user(Role.QA_REVIEWER), other_client)
    _db.session.commit()  # kept when a request answers 4xx and rolls its own work back
    client.login(reviewer)
    assert "FILE-1" not in client.get("/qa/").get_data(as_text=True)
    assert client.post(f"/qa/tasks/{in_qa.public_id}/claim").status_code == 404
    assert client.get(f"/qa/tasks/{in_qa.public_id}").status_code == 404


def test_claim_then_score_a_pass(client, world, in_qa):
    client.login(world.reviewer)
    response = client.post(f"/qa/tasks/{in_qa.public_id}/claim")
    review = _db.session.scalar(select(QaReview).where(QaReview.task_id == in_qa.id))
    assert response.headers["Location"].endswith(f"/qa/reviews/{review.public_id}")
    page = client.get(f"/qa/reviews/{review.public_id}").get_data(as_text=True)
    assert "Accurate" in page and "critical" in page
    done = client.post(f"/qa/reviews/{review.public_id}", data=form_for(in_qa))
    assert done.status_code == 302
    assert in_qa.status == Status.COMPLETED and in_qa.qa_outcome == "pass_first"
    assert (review.score, review.passed, review.maker_id) == (1.0, True, world.specialist.id)


def test_a_second_reviewer_cannot_take_a_claimed_task(world, in_qa):
    claim(in_qa, world.reviewer)
    with pytest.raises(QaError, match="Already claimed"):
        claim(in_qa, gen_user(Role.QA_REVIEWER))


def test_scorecard_errors_are_shown_per_field(client, world, in_qa):
    review = claim(in_qa, world.reviewer)
    data = form_for(in_qa, passed=False)
    data["item-2-category"], data["item-2-comment"] = "", ""
    data.pop("item-1-result")
    _db.session.commit()  # kept when a request answers 4xx and rolls its own work back
    response = client.login(world.reviewer).post(f"/qa/reviews/{review.public_id}", data=data)
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "Choose pass, fail or N/A." in body
    assert "Choose the error category." in body and "Say what is wrong." in body
    assert in_qa.status == Status.IN_QA and review.completed_at is None


def test_na_only_where_the_item_allows_it(client, world, in_qa):
    review = claim(in_qa, world.reviewer)
    data = form_for(in_qa)
    data["item-1-result"] = "na"
    _db.session.commit()
    response = client.login(world.reviewer).post(f"/qa/reviews/{review.public_id}", data=data)
    assert response.status_code == 400
    assert "N/A is not allowed for this item." in response.get_data(as_text=True)


def test_a_fail_goes_to_rework_with_findings_on_the_task(client, world, in_qa):
    world.review(in_qa, passed=False)
    assert in_qa.status == Status.REWORK and in_qa.rework_count == 1
    assert in_qa.assignee_id == world.specialist.id  # back to the same specialist
    assert in_qa.qa_outcome == "fail"
    review = _db.session.scalar(select(QaReview).where(QaReview.task_id == in_qa.id))
    assert review.score == pytest.approx(0.75) and review.passed is False
    body = client.login(world.specialist).get(f"/qa/tasks/{in_qa.public_id}").get_data(
        as_text=True)
    assert "Keying error" in body and "typo" in body and "Dispute this finding" in body
    # Reworked and resubmitted: back to QA, and a pass then counts as after rework.
    transition(in_qa, Status.IN_PROGRESS, actor=world.specialist)
    world.submit(in_qa)
    assert in_qa.status == Status.IN_QA
    world.review(in_qa, passed=True, reviewer=gen_user(Role.QA_REVIEWER))
    assert (in_qa.status, in_qa.qa_outcome) == (Status.COMPLETED, "pass_reworked")


def test_a_critical_fail_scores_zero_and_escalates(world, in_qa):
    review = world.review(in_qa, passed=False, critical=True)
    assert (review.score, review.passed, review.critical_failure) == (0.0, False, True)
    assert in_qa.status == Status.REWORK
    escalation = _db.session.scalar(select(Escalation).where(Escalation.task_id == in_qa.id))
    assert escalation.reason == "qa_critical_fail"
    assert "Accurate" in escalation.detail


def test_a_lead_may_send_the_rework_to_someone_else(client, world, in_qa):
    lead = gen_user(Role.TEAM_LEAD)
    other = gen_specialist()
    review = claim(in_qa, lead)
    response = client.login(lead).post(
        f"/qa/reviews/{review.public_id}",
        data=form_for(in_qa, passed=False, rework_to=str(other.id)),
    )
    assert response.status_code == 302
    assert in_qa.status == Status.REWORK and in_qa.assignee_id == other.id


def test_a_reviewer_may_not_choose_the_rework_assignee(world, in_qa):
    review = claim(in_qa, world.reviewer)
    with pytest.raises(QaError, match="Only a lead"):
        complete_review(review, world.reviewer, entries(in_qa, False),
                        rework_to=gen_specialist())


def test_a_stale_form_is_refused(client, world, in_qa):
    review = claim(in_qa, world.reviewer)
    with pytest.raises(StaleReviewError):
        complete_review(review, world.reviewer, entries(in_qa), expected_version=99)
    _db.session.commit()
    response = client.login(world.reviewer).post(
        f"/qa/reviews/{review.public_id}", data=form_for(in_qa, version="99"))
    assert response.status_code == 409
    assert in_qa.status == Status.IN_QA


def test_someone_elses_claim_is_not_theirs_to_score(client, world, in_qa):
    review = claim(in_qa, world.reviewer)
    other = gen_user(Role.QA_REVIEWER)
    _db.session.commit()
    assert client.login(other).get(f"/qa/reviews/{review.public_id}").status_code == 403


def test_release_gives_the_task_back(client, world, in_qa):
    review = claim(in_qa, world.reviewer)
    client.login(world.reviewer).post(f"/qa/reviews/{review.public_id}/release")
    assert _db.session.scalar(select(QaReview).where(QaReview.task_id == in_qa.id)) is None
    assert "Claim for review" in client.get("/qa/").get_data(as_text=True)


def test_queue_page_runs_a_fixed_number_of_queries(client, world, count_queries):
    world.set_policy(rate=1.0)
    client.login(world.reviewer)
    for _ in range(3):
        world.submitted()
    client.get("/qa/")
    with count_queries() as few:
        client.get("/qa/")
    for _ in range(6):
        world.submitted()
    client.get("/qa/")
    with count_queries() as many:
        client.get("/qa/")
    assert many.count == few.count
