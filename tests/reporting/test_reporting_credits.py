"""Service-credit schemes, every amount worked out by hand."""

from __future__ import annotations

from decimal import Decimal

from sla.reporting.credits import compute_credits

TARGETS = {"attainment": 95.0, "qa_accuracy": 98.0}
POOL = {"kind": "pool", "at_risk_pct": 12, "pool_allocation_pct": 150,
        "levels": {"attainment": 60, "qa_accuracy": 40}, "earn_back": True}


def test_pool_one_level_missed():
    # At risk = 12 % x 20,000 = 2,400; attainment missed: 150 % x 60 % x 2,400 = 2,160.
    result = compute_credits(POOL, Decimal("20000"), TARGETS,
                             {"attainment": 93.0, "qa_accuracy": 99.0})
    assert result.cap == Decimal("2400.00")
    assert [x.amount for x in result.lines] == [Decimal("2160.00"), Decimal("0")]
    assert result.total == Decimal("2160.00") and not result.capped
    assert "150" in result.lines[0].calculation and "2400.00" in result.lines[0].calculation


def test_pool_capped_at_the_at_risk_amount():
    # 2,160 + 150 % x 40 % x 2,400 (= 1,440) = 3,600, capped at 2,400.
    result = compute_credits(POOL, Decimal("20000"), TARGETS,
                             {"attainment": 90.0, "qa_accuracy": 97.0})
    assert [x.amount for x in result.lines] == [Decimal("2160.00"), Decimal("1440.00")]
    assert result.capped and result.total == Decimal("2400.00")


def test_pool_earn_back_when_next_period_beats_target():
    result = compute_credits(POOL, Decimal("20000"), TARGETS,
                             {"attainment": 90.0, "qa_accuracy": 97.0},
                             next_actuals={"attainment": 96.5, "qa_accuracy": 98.0})
    # Attainment earned back (96.5 > 95); QA only equals its target next period: not beaten.
    assert [x.earned_back for x in result.lines] == [True, False]
    assert result.total == Decimal("1440.00")


def test_per_point_uncapped_and_met():
    scheme = {"kind": "per_point", "pct_per_point": 0.5, "cap_pct": 10}
    # Attainment 92.5: 2.5 points x 0.5 % x 8,000 = 100; QA met.
    result = compute_credits(scheme, Decimal("8000"), TARGETS,
                             {"attainment": 92.5, "qa_accuracy": 98.0})
    assert [x.amount for x in result.lines] == [Decimal("100.00"), Decimal("0")]
    assert result.total == Decimal("100.00") and result.cap == Decimal("800.00")


def test_no_figure_no_credit_and_no_scheme():
    scheme = {"kind": "per_point", "pct_per_point": 1, "cap_pct": 10}
    result = compute_credits(scheme, Decimal("1000"), TARGETS,
                             {"attainment": None, "qa_accuracy": None})
    assert result.total == Decimal("0") and not any(x.missed for x in result.lines)
    assert compute_credits({}, Decimal("1000"), TARGETS, {"attainment": 10.0}) is None
