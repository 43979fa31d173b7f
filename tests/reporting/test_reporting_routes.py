"""The API of the public contract, the PDF, CSV, portal pages, and client isolation."""

from __future__ import annotations

import io
from datetime import date

import pytest
from pypdf import PdfReader

from provider_app.extensions import db as _db
from provider_app.models import JobProgress
from provider_app.vocab import Role
from sla.reporting.jobs import generate_report, request_report, run_report_job
from sla.reporting.period import Period
from tests.factories import gen_token, gen_user
from tests.reporting.reporting_support import build

Q = "?from=2025-06-02&to=2025-06-15"


@pytest.fixture
def data(db):
    d = build()
    d.token = gen_token(d.client)
    d.other_token = gen_token(d.other)
    d.admin = gen_user(Role.CLIENT_ADMIN, d.client)
    d.user = gen_user(Role.CLIENT_USER, d.client)
    d.other_admin = gen_user(Role.CLIENT_ADMIN, d.other)
    db.session.commit()  # a 4xx response rolls the request back; keep the data set
    return d


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_api_json(client, data):
    r = client.get("/api/v1/reports/sla" + Q, headers=bearer(data.token))
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["client"]["name"] == "Acme Mutual"
    assert body["period"] == {"from": "2025-06-02", "to": "2025-06-15", "timezone": "UTC"}
    assert body["totals"]["attainment_pct"] == 50.0
    assert body["totals"]["turnaround_hours"]["median"] == 6.0
    assert body["service_credits"]["total"] == "5000.00"
    assert body["backlog_aging"]["0–4 h"] == 2
    # The other client's token sees only its own figures for the same period.
    other = client.get("/api/v1/reports/sla" + Q, headers=bearer(data.other_token)).get_json()
    assert other["client"]["name"] == "Other Carrier" and other["totals"]["received"] == 1


@pytest.mark.parametrize("query, fields", [
    ("", {"from", "to"}),
    ("?from=2025-06-02", {"to"}),
    ("?from=yesterday&to=2025-06-15", {"from"}),
    ("?from=2025-06-15&to=2025-06-02", {"to"}),
    ("?from=2024-01-01&to=2025-06-02", {"to"}),
])
def test_api_bad_periods(client, data, query, fields):
    for path in ("/api/v1/reports/sla", "/api/v1/reports/sla.pdf"):
        r = client.get(path + query, headers=bearer(data.token))
        assert r.status_code == 422
        assert set(r.get_json()["errors"]) == fields


def test_api_needs_a_credential(client, data):
    assert client.get("/api/v1/reports/sla" + Q).status_code == 401


def test_api_pdf_text(client, data):
    r = client.get("/api/v1/reports/sla.pdf" + Q, headers=bearer(data.token))
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(r.data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Acme Mutual" in text
    assert "2025-06-02 to 2025-06-15" in text
    assert "50 %" in text  # attainment
    assert "75 %" in text  # QA accuracy
    assert "5000.00" in text  # credit
    assert "Definitions" in text and "Page 1 of" in text
    assert "Other Carrier" not in text


def test_api_in_openapi(client, data):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "/api/v1/reports/sla" in paths and "/api/v1/reports/sla.pdf" in paths


def test_portal_dashboard_and_exports(client, data):
    client.login(data.user)
    r = client.get("/portal/reports" + Q)
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "50 %" in page and "data:image/svg+xml" in page
    csv_text = client.get("/portal/reports/metrics.csv" + Q).get_data(as_text=True)
    assert "total,all,11,7,1,4,4,4,50.0,6.0,9.8,10.4" in csv_text
    tasks = client.get("/portal/reports/tasks.csv" + Q).get_data(as_text=True).splitlines()
    # Header + tasks 1-12 (11 arrived before but closed inside; 14 arrived after the end).
    assert len(tasks) == 1 + 12
    assert data.tasks[13].public_id not in "\n".join(tasks)


def test_portal_bad_period_is_a_form_error(client, data):
    client.login(data.user)
    r = client.get("/portal/reports?from=2025-06-15&to=2025-06-01")
    assert r.status_code == 400 and "on or after" in r.get_data(as_text=True)


def test_drill_down_lists_only_own_tasks(client, data):
    client.login(data.user)
    r = client.get("/portal/reports/drill" + Q + "&metric=breached")
    page = r.get_data(as_text=True)
    assert r.status_code == 200
    for n in (3, 5, 8, 11):
        assert data.tasks[n].public_id[:8] in page
    assert data.tasks[1].public_id[:8] not in page
    assert client.get("/portal/reports/drill" + Q + "&metric=nope").status_code == 400


def test_stored_reports_are_per_client(client, data):
    mine = generate_report(data.client, data.period)
    theirs = generate_report(data.other, data.period)
    client.login(data.user)
    listing = client.get("/portal/reports/stored").get_data(as_text=True)
    assert mine.public_id in listing and theirs.public_id not in listing
    ok = client.get(f"/portal/reports/stored/{mine.public_id}.pdf")
    assert ok.status_code == 200 and ok.data.startswith(b"%PDF")
    assert client.get(f"/portal/reports/stored/{theirs.public_id}.pdf").status_code == 404


def test_on_demand_report_job(client, data):
    client.login(data.admin)
    r = client.post("/portal/reports/stored", data={"start": "2025-06-02", "end": "2025-06-15"})
    assert r.status_code == 302
    job = _db.session.scalars(_db.select(JobProgress).where(
        JobProgress.client_id == data.client.id)).one()
    report_id = run_report_job(job.id)
    assert job.status == "done" and job.result["report_id"] == report_id
    page = client.get(f"/portal/reports/jobs/{job.id}").get_data(as_text=True)
    assert report_id in page
    # Another client's admin cannot follow the job or fetch the file.
    client.login(data.other_admin)
    assert client.get(f"/portal/reports/jobs/{job.id}").status_code == 404
    assert client.get(f"/portal/reports/stored/{report_id}.pdf").status_code == 404


def test_request_needs_client_admin_and_valid_dates(client, data):
    client.login(data.user)
    assert client.post("/portal/reports/stored",
                       data={"start": "2025-06-02", "end": "2025-06-15"}).status_code == 403
    client.login(data.admin)
    r = client.post("/portal/reports/stored", data={"start": "2025-06-15", "end": "2025-06-01"})
    assert r.status_code == 400 and "on or after" in r.get_data(as_text=True)
    assert request_report  # the service the form calls


def test_provider_staff_cannot_open_client_pages(client, data):
    client.login(gen_user(Role.SPECIALIST))
    assert client.get("/portal/reports" + Q).status_code == 403
    assert client.get("/reports/operations").status_code == 403


def test_operations_dashboard(client, data):
    client.login(gen_user(Role.ADMIN))
    r = client.get("/reports/operations" + Q)
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Acme Mutual" in page and "Other Carrier" in page
    assert client.get("/reports/operations?from=x&to=y").status_code == 400


def test_period_helpers():
    period = Period(date(2025, 6, 2), date(2025, 6, 15), "America/New_York")
    assert period.lo.isoformat() == "2025-06-02T04:00:00+00:00"
    assert len(period.week_starts()) == 2
