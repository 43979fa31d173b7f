"""The scheduled monthly reports (first business day, idempotent) and the PDF's fetcher."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from provider_app.models import StoredReport
from provider_app.schedule import PERIODIC
from sla.reporting.jobs import first_business_day, monthly_reports
from sla.reporting.pdf import LocalStaticFetcher, RefusedURL, static_root
from tests.factories import gen_client


def _count(client) -> int:
    return StoredReport.query.session.scalar(
        select(func.count()).select_from(StoredReport).where(StoredReport.client_id == client.id))


def test_first_business_day_skips_weekend_and_holiday(db):
    client = gen_client(tz="UTC")
    # 2025-06-01 is a Sunday; 2026-01-01 a US holiday (Thursday).
    assert first_business_day(client, 2025, 6) == date(2025, 6, 2)
    assert first_business_day(client, 2026, 1) == date(2026, 1, 2)


def test_monthly_reports_on_first_business_day_only_once(db):
    client = gen_client(tz="UTC", name="Monthly Co")
    assert monthly_reports(datetime(2025, 6, 1, 6, tzinfo=UTC)) == 0  # Sunday
    assert _count(client) == 0
    assert monthly_reports(datetime(2025, 6, 2, 6, tzinfo=UTC)) >= 1
    assert _count(client) == 1
    stored = db.session.scalar(select(StoredReport).where(StoredReport.client_id == client.id))
    assert (stored.period_start, stored.period_end) == (date(2025, 5, 1), date(2025, 5, 31))
    assert stored.kind == "monthly" and stored.size > 1000
    monthly_reports(datetime(2025, 6, 2, 7, tzinfo=UTC))  # a second run: no new report
    assert _count(client) == 1


def test_monthly_job_is_scheduled():
    entry = next(p for p in PERIODIC if p.name == "sla-monthly-reports")
    assert entry.func_path == "sla.reporting.jobs.monthly_reports" and entry.cron == "0 6 * * *"


def test_fetcher_serves_only_local_static(app):
    with app.app_context():
        root = static_root()
        fetcher = LocalStaticFetcher(root)
        assert fetcher.fetch((root / "app.css").as_uri())  # a local static file
        assert fetcher.fetch("data:text/plain;base64,aGk=")
        for url in ("http://169.254.169.254/latest/meta-data", "https://example.com/x.png",
                    "file:///etc/passwd", (root / ".." / "__init__.py").resolve().as_uri()):
            with pytest.raises(RefusedURL):
                fetcher.fetch(url)
