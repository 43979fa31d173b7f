"""Every figure of the hand-built data set (reporting_support), worked out by hand here."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from sla.reporting.metrics import sla_report
from sla.reporting.period import Period
from tests.reporting.reporting_support import build


@pytest.fixture
def data(db):
    return build()


@pytest.fixture
def report(data):
    return sla_report(data.client, data.period)


def test_stored_outcomes_exclude_pauses(data):
    # Task 2: Mon 10-11 (1 h) + Tue 10-15 (5 h); the pause Mon 11:00 -> Tue 10:00 is excluded.
    assert data.tasks[2].sla_elapsed_hours == pytest.approx(6.0)
    assert data.tasks[2].sla_met is True
    # Without the pause exclusion it would be Mon 10-17 (7) + Tue 9-15 (6) = 13 h: a breach.


def test_volumes(report):
    total = report.total
    # Received in the period: 1-10 and 12 (11 arrived before, 14 after, 13 is another client).
    assert total.received == 11
    assert total.completed == 7  # 1, 2, 3, 4, 5, 6, 11
    assert total.cancelled == 1  # 10
    assert total.open_at_end == 4  # 7, 8, 9, 12 (12 completed only after the period)


def test_attainment_counts_open_breaches(report):
    total = report.total
    # Met: 1 (4 h), 2 (6 h of 8), 4 (3 h of 4), 6 (2 h). Breached on completion: 3 (11 h),
    # 5 (6 h of 4), 11 (Fri 8 h + Mon 1 h = 9 h). Open and past target at the end: 8
    # (received Wed 09:00, 8 h used by Wed 17:00). 7 used exactly 8 h by period end: not
    # breached; 9 and 12 are well inside.
    assert (total.met, total.breached, total.breached_open) == (4, 4, 1)
    assert total.attainment == 50.0  # 4 / (4 + 4)


def test_turnaround_percentiles(report):
    # Completed in period, business hours: 2, 3, 4, 6, 6, 9, 11 (n = 7).
    total = report.total
    assert total.median == pytest.approx(6.0)  # rank 1 + 6 * 0.5 = 4th value
    assert total.p90 == pytest.approx(9.8)  # 1 + 6 * 0.9 = 6.4 -> 9 + 0.4 * (11 - 9)
    assert total.p95 == pytest.approx(10.4)  # 6.7 -> 9 + 0.7 * 2
    assert total.mean == pytest.approx(41 / 7, abs=1e-4)


def test_breakdowns(report, data):
    a = report.by_task_type[data.type_a.name]
    b = report.by_task_type[data.type_b.name]
    assert (a.received, a.completed, a.met, a.breached) == (8, 5, 3, 3)
    assert a.attainment == 50.0
    # Type A turnaround 2, 4, 6, 9, 11: median 6, p90 at rank 4.6 -> 9 + 0.6 * 2.
    assert (a.median, a.p90, a.p95) == (pytest.approx(6), pytest.approx(10.2),
                                         pytest.approx(10.6))
    assert (b.received, b.completed, b.met, b.breached) == (3, 2, 1, 1)
    assert b.median == pytest.approx(4.5)  # 3 and 6
    assert report.by_priority["high"].received == 3
    assert report.by_priority["normal"].received == 8
    week1, week2 = report.by_week.values()
    assert (week1.received, week1.completed, week1.met, week1.breached) == (4, 5, 3, 2)
    assert week1.attainment == 60.0
    assert (week2.received, week2.completed, week2.cancelled, week2.met, week2.breached) == (
        7, 2, 1, 1, 1)


def test_backlog_aging(report):
    # At Mon 06-16 00:00: 9 has 2 h (Fri 15-17), 12 has 1 h, 7 has 8 h (one business day),
    # 8 has Wed + Thu + Fri = 24 h (3 days).
    assert report.day_hours == 8.0
    assert report.aging == [("0–4 h", 2), ("4–8 h", 0), ("1–2 d", 1), ("2–5 d", 1),
                            ("> 5 d", 0)]


def test_qa_rework_escalations_risk(report):
    assert report.qa["reviewed"] == 4
    assert report.qa["accuracy_pct"] == 75.0  # 3 passed of 4
    assert report.qa["critical_fails"] == 1
    assert report.qa["first_pass_yield_pct"] == 75.0  # every file reviewed once
    assert report.qa["rework_rate_pct"] == pytest.approx(14.29)  # 1 (task 6) of 7
    assert report.escalations == [
        {"reason": "client_complaint", "count": 1, "mean_hours_to_acknowledge": None,
         "mean_hours_to_resolve": None},
        {"reason": "sla_breached", "count": 2, "mean_hours_to_acknowledge": 0.75,
         "mean_hours_to_resolve": 3.0},  # (1 + 0.5) / 2 and (4 + 2) / 2
    ]
    assert report.at_risk_now == 1


def test_credits_per_point(report):
    credits = report.credits
    # Attainment 50 vs 95: 45 points x 1 % x 10,000 = 4,500; QA 75 vs 98: 23 x 1 % = 2,300.
    assert [line.amount for line in credits.lines] == [Decimal("4500.00"), Decimal("2300.00")]
    # 6,800 is capped at 50 % of the fee.
    assert credits.capped and credits.total == Decimal("5000.00")


def test_other_client_sees_only_its_own(data):
    other = sla_report(data.other, data.period)
    assert (other.total.received, other.total.completed, other.total.met) == (1, 1, 1)
    assert other.qa["reviewed"] == 0 and other.escalations == []
    # One task type with completed work (13: Mon 09-11): its percentiles are the total's.
    assert other.total.median == other.by_task_type[data.type_a.name].median == 2.0
    assert other.by_task_type[data.type_a.name].p95 == 2.0


def test_empty_period(data):
    empty = sla_report(data.client, Period(date(2024, 1, 1), date(2024, 1, 31), "UTC"))
    assert empty.total.received == 0 and empty.total.attainment is None
    assert empty.total.median is None and empty.credits.total == Decimal("0")
