"""Disputes: raised by the maker inside the window, decided by a lead, score updated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from provider_app.db_types import utcnow
from provider_app.extensions import db as _db
from provider_app.models import AuditEvent, StaffClient, StaffProfile, UserRole
from provider_app.vocab import Role, Status
from qa.disputes import decide_dispute, dispute_deadline, raise_dispute
from qa.models import QaDispute
from qa.reviews import QaError, StaleReviewError
from tests.factories import gen_client, gen_specialist, gen_user


@pytest.fixture
def failed(world):
    """A review with one minor finding (score 75 %, fail)."""
    world.set_policy(rate=1.0)
    task = world.submitted()
    review = world.review(task, passed=False)
    finding = next(r for r in review.items if r.result == "fail")
    return review, finding


def test_the_maker_disputes_a_finding(world, failed):
    review, finding = failed
    dispute = raise_dispute(finding, world.specialist, "The policy number matches page 2.")
    assert dispute.status == "open" and finding.disputes == [dispute]
    event = _db.session.scalar(select(AuditEvent).where(AuditEvent.action == "qa.dispute_raised"))
    assert event.object_id == review.task_id and "page 2" in event.reason
    with pytest.raises(QaError, match="already been disputed"):
        raise_dispute(finding, world.specialist, "again")


def test_only_the_maker_only_findings_only_with_a_reason(world, failed):
    review, finding = failed
    with pytest.raises(QaError, match="Only the specialist"):
        raise_dispute(finding, gen_specialist(), "not mine")
    passed_item = next(r for r in review.items if r.result == "pass")
    with pytest.raises(QaError, match="Only a failed item"):
        raise_dispute(passed_item, world.specialist, "nothing to dispute")
    with pytest.raises(QaError) as caught:
        raise_dispute(finding, world.specialist, "  ")
    assert caught.value.errors == {"reason": ["Say why the finding is wrong."]}


def test_the_window_is_three_business_days_on_the_clients_calendar(world, failed, app):
    review, _ = failed
    # Friday 28 June 2024, 15:00 in New York: Mon 1, Tue 2, Wed 3 July -> until Thursday 00:00.
    review.completed_at = datetime(2024, 6, 28, 19, 0, tzinfo=UTC)
    assert dispute_deadline(review) == datetime(2024, 7, 4, 4, 0, tzinfo=UTC)
    # Wednesday 3 July: the 4th is Independence Day -> Fri 5, Mon 8, Tue 9.
    review.completed_at = datetime(2024, 7, 3, 19, 0, tzinfo=UTC)
    assert dispute_deadline(review) == datetime(2024, 7, 10, 4, 0, tzinfo=UTC)
    app.config["QA_DISPUTE_WINDOW_BUSINESS_DAYS"] = 1
    try:
        assert dispute_deadline(review) == datetime(2024, 7, 6, 4, 0, tzinfo=UTC)
    finally:
        del app.config["QA_DISPUTE_WINDOW_BUSINESS_DAYS"]


def test_no_dispute_after_the_window(world, failed):
    review, finding = failed
    review.completed_at = utcnow() - timedelta(days=10)
    with pytest.raises(QaError, match="window"):
        raise_dispute(finding, world.specialist, "too late")


def test_overturn_rescores_the_review(world, failed):
    review, finding = failed
    dispute = raise_dispute(finding, world.specialist, "The SOP allows this.")
    version = review.version
    decide_dispute(dispute, world.lead, "overturn", "Agreed, SOP 4.2 allows it.",
                   expected_version=version)
    assert (finding.result, finding.error_category) == ("pass", "keying_error")
    assert (review.score, review.passed) == (1.0, True)
    assert dispute.status == "overturned" and dispute.decided_by_id == world.lead.id
    assert review.version == version + 1
    event = _db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "qa.dispute_overturned"))
    assert event.before["passed"] is False and event.after["passed"] is True


def test_uphold_keeps_the_finding_but_still_bumps_the_version(world, failed):
    review, finding = failed
    dispute = raise_dispute(finding, world.specialist, "I disagree.")
    version = review.version
    decide_dispute(dispute, world.lead, "uphold", "The limit is wrong on the form.")
    assert (finding.result, review.passed, dispute.status) == ("fail", False, "upheld")
    assert review.version == version + 1


def test_who_may_decide(world, failed):
    review, finding = failed
    dispute = raise_dispute(finding, world.specialist, "Wrong.")
    with pytest.raises(QaError, match="Only a lead"):
        decide_dispute(dispute, gen_user(Role.QA_REVIEWER), "overturn", "I say so")
    # A lead who also did the review cannot judge their own finding.
    reviewer_lead = review.reviewer
    reviewer_lead.role_rows.append(UserRole(role=Role.TEAM_LEAD))
    _db.session.flush()
    with pytest.raises(QaError, match="four eyes"):
        decide_dispute(dispute, reviewer_lead, "uphold", "mine")
    with pytest.raises(QaError) as caught:
        decide_dispute(dispute, world.lead, "maybe", "hm")
    assert "outcome" in caught.value.errors


def test_a_stale_decision_is_refused(world, failed):
    review, finding = failed
    dispute = raise_dispute(finding, world.specialist, "Wrong.")
    with pytest.raises(StaleReviewError):
        decide_dispute(dispute, world.lead, "overturn", "ok", expected_version=review.version - 1)
    assert dispute.status == "open"


def test_overturning_a_critical_failure_ends_the_probation(world):
    world.set_policy(rate=1.0)
    task = world.submitted()
    review = world.review(task, passed=False, critical=True)
    finding = next(r for r in review.items if r.result == "fail")
    world.set_policy(rate=0.0, consecutive_passes=3)
    dispute = raise_dispute(finding, world.specialist, "Limits match the binder.")
    decide_dispute(dispute, world.lead, "overturn", "Binder confirms.")
    assert review.critical_failure is False and review.passed is True
    assert world.submitted().status == Status.COMPLETED  # no longer on probation


# --- pages ----------------------------------------------------------------------------------


def test_dispute_and_decide_through_the_pages(client, world, failed):
    review, finding = failed
    client.login(world.specialist)
    response = client.post(f"/qa/findings/{finding.public_id}/dispute",
                           data={"reason": "Matches the dec page."})
    assert response.status_code == 302
    dispute = _db.session.scalar(select(QaDispute))
    client.login(world.lead)
    assert "Matches the dec page." in client.get("/qa/disputes").get_data(as_text=True)
    response = client.post(f"/qa/disputes/{dispute.public_id}/decide", data={
        "outcome": "overturn", "note": "Confirmed.", "version": str(review.version)})
    assert response.status_code == 302
    assert dispute.status == "overturned" and review.passed is True


def test_dispute_form_errors(client, world, failed):
    _, finding = failed
    _db.session.commit()  # kept when a request answers 4xx and rolls its own work back
    client.login(world.specialist)
    empty = client.post(f"/qa/findings/{finding.public_id}/dispute", data={"reason": ""})
    assert empty.status_code == 400
    assert "Say why the finding is wrong." in empty.get_data(as_text=True)
    client.login(gen_specialist())
    _db.session.commit()
    other = client.post(f"/qa/findings/{finding.public_id}/dispute", data={"reason": "x"})
    assert other.status_code == 400
    assert "Only the specialist" in other.get_data(as_text=True)


def test_decide_form_errors_and_stale_page(client, world, failed):
    review, finding = failed
    dispute = raise_dispute(finding, world.specialist, "Wrong.")
    _db.session.commit()
    client.login(world.lead)
    missing = client.post(f"/qa/disputes/{dispute.public_id}/decide",
                          data={"note": "", "version": str(review.version)})
    assert missing.status_code == 400
    body = missing.get_data(as_text=True)
    assert "Choose uphold or overturn." in body and "Explain the decision." in body
    stale = client.post(f"/qa/disputes/{dispute.public_id}/decide", data={
        "outcome": "uphold", "note": "ok", "version": str(review.version + 5)})
    assert stale.status_code == 409
    assert _db.session.get(QaDispute, dispute.id).status == "open"


def test_another_clients_finding_and_dispute_are_404(client, world, failed):
    _, finding = failed
    dispute = raise_dispute(finding, world.specialist, "Wrong.")
    elsewhere = gen_client()
    outsider = gen_specialist()
    _db.session.get(StaffProfile, outsider.id).client_links = [
        StaffClient(client_id=elsewhere.id)]
    lead = gen_user(Role.TEAM_LEAD)
    lead.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
    lead.staff_profile.client_links = [StaffClient(client_id=elsewhere.id)]
    _db.session.commit()
    client.login(outsider)
    assert client.post(f"/qa/findings/{finding.public_id}/dispute",
                       data={"reason": "x"}).status_code == 404
    client.login(lead)
    assert client.post(f"/qa/disputes/{dispute.public_id}/decide", data={
        "outcome": "uphold", "note": "x", "version": "1"}).status_code == 404
    assert "Wrong." not in client.get("/qa/disputes").get_data(as_text=True)
