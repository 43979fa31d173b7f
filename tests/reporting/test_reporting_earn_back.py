"""Earn-back of a pool credit from the following period, every figure worked out by hand.

The hand-built data set (reporting_support) under a pool scheme with earn-back: June 2-15
misses both levels (attainment 50 % < 95 %, QA 75 % < 98 %). At risk = 12 % x 10,000 =
1,200; attainment 150 % x 60 % x 1,200 = 1,080; QA 150 % x 40 % x 1,200 = 720; 1,800 is
capped at 1,200. The following period is June 16-29 (same length: not a month).
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pypdf import PdfReader

from provider_app.extensions import db as _db
from provider_app.lifecycle import transition
from provider_app.vocab import Role, Status
from sla.reporting.credits import credits_for
from sla.reporting.metrics import level_actuals, sla_report
from sla.reporting.period import Period, month_period
from tests.factories import gen_token, gen_user
from tests.reporting.reporting_support import at, build

POOL = {"kind": "pool", "at_risk_pct": 12, "pool_allocation_pct": 150,
        "levels": {"attainment": 60, "qa_accuracy": 40}, "earn_back": True}
Q = "?from=2025-06-02&to=2025-06-15"


@pytest.fixture
def data(db):
    return build(POOL)


def _clear_next_period(data) -> None:
    """Leave June 16-29 with no breach: 7 (8 h used, breach just after Mon 09:00) waits on
    the client from Mon 09:00, before its breach instant; 8, 9 and 14 are cancelled at 12:00.
    """
    seven = data.tasks[7]
    for status in (Status.ASSIGNED, Status.IN_PROGRESS, Status.PENDING_CLIENT):
        transition(seven, status, at=at(16, 9))
    for n in (8, 9, 14):
        transition(data.tasks[n], Status.CANCELLED, at=at(16, 12))
    _db.session.flush()


def test_following_period():
    assert Period(date(2025, 6, 2), date(2025, 6, 15), "UTC").following() == Period(
        date(2025, 6, 16), date(2025, 6, 29), "UTC")
    assert month_period(2025, 1, "UTC").following() == month_period(2025, 2, "UTC")
    assert month_period(2025, 12, "UTC").following() == month_period(2026, 1, "UTC")


def test_not_earned_back_when_the_next_period_misses(data):
    # June 16-29: 12 met (Fri 16-17 + Mon 9-10 = 2 h of 8); 7, 8, 9 and 14 open and past
    # target at June 30 00:00: 1 / (1 + 4) = 20 %. No QA review: no figure.
    assert level_actuals(data.client.id, data.period.following()) == {
        "attainment": 20.0, "qa_accuracy": None}
    credits = sla_report(data.client, data.period).credits
    assert [x.amount for x in credits.lines] == [Decimal("1080.00"), Decimal("720.00")]
    assert not any(x.earned_back for x in credits.lines)
    assert credits.capped and credits.total == Decimal("1200.00")
    assert credits.earned_back == Decimal("0") and credits.before_earn_back == credits.total
    assert credits.earn_back.status == "not_earned_back"
    assert "attainment 20.0%" in credits.earn_back.calculation


def test_earned_back_when_the_next_period_beats_the_target(data):
    _clear_next_period(data)
    # June 16-29: only 12 decided, met: 100 % > 95 % (7 paused before its breach). All of
    # this happens after June 15, so the June figures themselves do not change.
    assert level_actuals(data.client.id, data.period.following())["attainment"] == 100.0
    report = sla_report(data.client, data.period)
    assert report.total.attainment == 50.0
    credits = report.credits
    attainment, qa = credits.lines
    assert attainment.earned_back and attainment.amount == Decimal("0")
    assert attainment.earned_back_amount == Decimal("1080.00")
    assert "earned back (next period 100.0% > 95.0%)" in attainment.calculation
    assert not qa.earned_back and qa.amount == Decimal("720.00")  # no QA figure next period
    # Before earn-back 1,800 capped at 1,200; after it 720 (under the cap): 480 won back.
    assert credits.before_earn_back == Decimal("1200.00")
    assert credits.total == Decimal("720.00") and not credits.capped
    assert credits.earned_back == Decimal("480.00")
    assert credits.earn_back.status == "earned_back"
    assert credits.earn_back.calculation.endswith("credit 1200.00 − 480.00 = 720.00")


def test_the_next_period_report_shows_what_it_earns_back(data):
    _clear_next_period(data)
    following = sla_report(data.client, data.period.following())
    credits = following.credits
    # June 16-29 itself: attainment 100 % (no credit), no QA figure (no credit).
    assert credits.total == Decimal("0") and credits.earn_back is None
    # June 2-15's credit was 1,200 (see the module docstring); 100 % beats the attainment
    # target, so its 1,080 leaves the capped sum: 1,200 - 720 = 480 earned back.
    previous = credits.previous
    assert (previous.start, previous.end) == (date(2025, 6, 2), date(2025, 6, 15))
    assert previous.actuals == {"attainment": 50.0, "qa_accuracy": 75.0}
    assert previous.credit == Decimal("1200.00") and previous.earned_back == Decimal("480.00")
    assert previous.calculation.endswith("Earned back: attainment = 480.00")


def test_pending_until_the_next_period_has_ended(data):
    _clear_next_period(data)
    report = sla_report(data.client, data.period, with_credits=False)
    credits = credits_for(report, now=datetime(2025, 6, 20, tzinfo=UTC))
    assert credits.earn_back.status == "pending"
    assert credits.total == Decimal("1200.00") and credits.earned_back == Decimal("0")


def test_earn_back_in_the_api_page_csv_and_pdf(client, data):
    _clear_next_period(data)
    token = gen_token(data.client)
    user = gen_user(Role.CLIENT_USER, data.client)
    _db.session.commit()
    body = client.get("/api/v1/reports/sla" + Q,
                      headers={"Authorization": f"Bearer {token}"}).get_json()
    credits = body["service_credits"]
    assert credits["total"] == "720.00" and credits["total_before_earn_back"] == "1200.00"
    assert credits["earned_back"] == "480.00"
    assert [x["earned_back_amount"] for x in credits["lines"]] == ["1080.00", "0"]
    assert credits["earn_back"]["status"] == "earned_back"
    assert credits["earn_back"]["next_period"] == {"from": "2025-06-16", "to": "2025-06-29"}
    assert credits["earn_back"]["next_period_actuals"] == {"attainment": 100.0,
                                                           "qa_accuracy": None}
    client.login(user)
    page = client.get("/portal/reports" + Q).get_data(as_text=True)
    assert "Earn-back from the next period" in page and "480.00" in page
    csv_text = client.get("/portal/reports/metrics.csv" + Q).get_data(as_text=True)
    assert "earned back,480.00,earned_back," in csv_text
    pdf = client.get("/api/v1/reports/sla.pdf" + Q, headers={"Authorization": f"Bearer {token}"})
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "Earn-back from the next period" in text
    assert "480.00" in text and "720.00" in text
