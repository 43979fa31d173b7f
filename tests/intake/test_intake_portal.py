"""Client portal: submit a task, list with filters, detail timeline, answer an info request,
cancel, bulk uploads and API tokens; every page is scoped (a foreign id is 404)."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from provider_app.conversation import request_info
from provider_app.models import ApiToken, AuditEvent, Task
from provider_app.vocab import Role, Status
from tests.factories import gen_task, gen_user
from tests.intake.intake_support import run_jobs


def text(response) -> str:
    return response.get_data(as_text=True)


def test_choose_a_task_type_then_its_form(client, world):
    client.login(world.user_a)
    choose = text(client.get("/portal/tasks/new"))
    assert f"/portal/tasks/new/{world.coi.code}" in choose
    form = text(client.get(f"/portal/tasks/new/{world.coi.code}"))
    for name in ("insured_name", "holder_address", "lines", "additional_insured", "priority",
                 "external_ref", "state", "attachments"):
        assert f'name="{name}"' in form, name
    assert 'type="checkbox"' in form and 'aria-required="true"' in form
    assert client.get("/portal/tasks/new/NOPE").status_code == 404


def test_submit_a_task_from_the_form(client, world, db):
    client.login(world.user_a)
    response = client.post(f"/portal/tasks/new/{world.coi.code}", data={
        "priority": "high", "external_ref": "P-1", "state": "ny",
        "insured_name": "Acme LLC", "holder_name": "City", "holder_address": "1 Main St",
        "policy_numbers": "GL-1", "lines": ["GL", "WC"], "additional_insured": "y",
    })
    assert response.status_code == 302
    task = db.session.scalar(select(Task).where(Task.external_ref == "P-1"))
    assert response.headers["Location"].endswith(f"/portal/tasks/{task.public_id}")
    assert task.status == Status.QUEUED and task.source == "portal"
    assert task.created_by_id == world.user_a.id and task.state == "NY"
    assert task.fields == {"insured_name": "Acme LLC", "holder_name": "City",
                           "holder_address": "1 Main St", "policy_numbers": "GL-1",
                           "lines": ["GL", "WC"], "additional_insured": True,
                           "waiver_of_subrogation": False}
    assert task.due_at is not None


def test_form_errors_are_shown_next_to_the_fields(client, world, db):
    client.login(world.user_a)
    response = client.post(f"/portal/tasks/new/{world.coi.code}", data={
        "priority": "normal", "state": "ZZ", "lines": ["BOAT"]})
    assert response.status_code == 422
    body = text(response)
    assert "This field is required." in body
    assert "Enter a two-letter US state code such as NY." in body
    assert "Unknown choice BOAT" in body and 'aria-invalid="true"' in body
    assert db.session.scalar(select(Task).where(Task.client_id == world.a.id)) is None


def test_the_task_list_filters_and_keeps_them_in_the_url(client, world, db):
    for i in range(30):
        gen_task(world.a, world.data, external_ref=f"ALPHA-{i:02d}")
    gen_task(world.a, world.coi, external_ref="BETA-1", priority="urgent",
             fields={"insured_name": "x"})
    gen_task(world.a, world.data, external_ref="GAMMA-1", status=Status.CANCELLED)
    gen_task(world.b, world.data, external_ref="ALPHA-FOREIGN")
    db.session.commit()
    client.login(world.user_a)
    first = text(client.get("/portal/tasks?q=alpha"))
    assert "Page 1 of 2" in first and "ALPHA-FOREIGN" not in first and "BETA-1" not in first
    assert "q=alpha" in re.search(r'href="([^"]*page=2[^"]*)"', first).group(1)
    assert 'value="alpha"' in first
    assert "BETA-1" in text(client.get(f"/portal/tasks?task_type={world.coi.code}"))
    assert "BETA-1" in text(client.get("/portal/tasks?priority=urgent"))
    cancelled = text(client.get("/portal/tasks?status=cancelled"))
    assert "GAMMA-1" in cancelled and "ALPHA-01" not in cancelled
    assert "No tasks match these filters." in text(client.get("/portal/tasks?q=zzz"))
    bad = client.get("/portal/tasks?status=bogus&received_from=nope")
    assert bad.status_code == 200 and "(ignored)" in text(bad)


def test_list_queries_do_not_grow_with_rows(client, world, db, count_queries):
    gen_task(world.a, world.data)
    client.login(world.user_a)
    db.session.commit()  # both measured requests start from a freshly committed session
    with count_queries() as few:
        client.get("/portal/tasks")
    for _ in range(10):
        gen_task(world.a, world.data)
    db.session.commit()
    with count_queries() as many:
        client.get("/portal/tasks")
    assert many.count == few.count


def test_detail_timeline_and_answering_an_info_request(client, world, db):
    task = gen_task(world.a, world.data, status=Status.IN_PROGRESS, external_ref="T-1")
    specialist = gen_user(Role.SPECIALIST)
    request_info(task, "Which vehicle is it?", specialist)
    db.session.commit()
    client.login(world.user_a)
    page = text(client.get(f"/portal/tasks/{task.public_id}"))
    assert "We need information from you" in page and "Which vehicle is it?" in page
    assert "queued" in page and "pending client" in page  # status changes from the audit
    response = client.post(f"/portal/tasks/{task.public_id}/answer", data={"body": "The van"})
    assert response.status_code == 302
    db.session.refresh(task)
    assert task.status == Status.IN_PROGRESS and task.sla_paused_since is None
    page = text(client.get(f"/portal/tasks/{task.public_id}"))
    assert "We need information from you" not in page and "The van" in page


def test_an_empty_answer_is_refused(client, world, db):
    task = gen_task(world.a, world.data, status=Status.IN_PROGRESS)
    request_info(task, "Which?", gen_user(Role.SPECIALIST))
    db.session.commit()
    client.login(world.user_a)
    response = client.post(f"/portal/tasks/{task.public_id}/answer", data={"body": ""})
    assert response.status_code == 422
    db.session.refresh(task)
    assert task.status == Status.PENDING_CLIENT


def test_a_message_from_the_portal(client, world, db):
    task = gen_task(world.a, world.data)
    db.session.commit()
    client.login(world.user_a)
    response = client.post(f"/portal/tasks/{task.public_id}/messages", data={"body": "Hello"})
    assert response.status_code == 302
    assert "Hello" in text(client.get(f"/portal/tasks/{task.public_id}"))


def test_cancel_with_confirmation(client, world, db):
    task = gen_task(world.a, world.data, external_ref="C-1")
    db.session.commit()
    client.login(world.user_a)
    confirm = client.get(f"/portal/tasks/{task.public_id}/cancel")
    assert confirm.status_code == 200 and "Yes, cancel the task" in text(confirm)
    response = client.post(f"/portal/tasks/{task.public_id}/cancel", data={"reason": "dup"})
    assert response.status_code == 302
    db.session.refresh(task)
    assert task.status == Status.CANCELLED
    closed = text(client.get(f"/portal/tasks/{task.public_id}/cancel"))
    assert "nothing to cancel" in closed
    again = client.post(f"/portal/tasks/{task.public_id}/cancel", data={})
    assert again.status_code == 302  # explained with a message, nothing changes


def test_bulk_upload_pages(client, world, db, redis_conn):
    client.login(world.user_a)
    assert "No bulk uploads yet." in text(client.get("/portal/imports"))
    form = text(client.get("/portal/imports/new"))
    assert world.coi.code in form and "holder_address" in form
    csv_text = f"task_type,external_ref,description\n{world.data.code},B-1,x\nNOPE,B-2,y\n"
    response = client.post("/portal/imports/new", data={
        "file": (io.BytesIO(csv_text.encode()), "mine.csv"), "task_type": ""})
    assert response.status_code == 302
    detail_url = response.headers["Location"]
    job_id = detail_url.rsplit("/", 1)[1]
    live = text(client.get(detail_url))
    assert 'id="import-progress"' in live and "import_progress.js" in live
    assert f"/api/v1/jobs/{job_id}" in live
    assert client.get(f"/api/v1/jobs/{job_id}").json["status"] == "queued"  # what the JS polls
    run_jobs()
    page = text(client.get(detail_url))
    assert "1 of 2 rows have errors" in page and "Import the 1 valid rows" in page
    assert "Unknown task type" in page
    errors = client.get(f"/portal/imports/{job_id}/errors.csv")
    assert errors.status_code == 200 and "B-2" in text(errors)
    again = client.post("/portal/imports/new", data={
        "file": (io.BytesIO(csv_text.encode()), "again.csv"), "task_type": ""})
    assert again.status_code == 422
    assert "uploaded before" in text(again) and f"/portal/imports/{job_id}" in text(again)
    assert client.post(f"/portal/imports/{job_id}/import-valid").status_code == 302
    run_jobs()
    assert "1 tasks imported as one lot" in text(client.get(detail_url))
    assert "mine.csv" in text(client.get("/portal/imports"))


def test_bulk_upload_form_errors(client, world):
    client.login(world.user_a)
    missing = client.post("/portal/imports/new", data={"task_type": ""})
    assert missing.status_code == 422 and "Choose a CSV file" in text(missing)
    wrong = client.post("/portal/imports/new", data={
        "file": (io.BytesIO(b"x"), "a.csv"), "task_type": "NOPE"})
    assert wrong.status_code == 422 and "Unknown task type" in text(wrong)


# --- tokens --------------------------------------------------------------------------


def test_client_admin_creates_sees_once_and_revokes_a_token(client, world, db):
    client.login(world.admin_a)
    created = client.post("/portal/tokens", data={"name": "AMS connector"})
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    plain = re.search(r'<code class="secret">(tl_[^<]+)</code>', text(created)).group(1)
    listing = text(client.get("/portal/tokens"))
    assert plain not in listing and plain[:10] in listing and "AMS connector" in listing
    headers = {"Authorization": f"Bearer {plain}"}
    assert client.get("/api/v1/tasks", headers=headers).status_code == 200
    token = db.session.scalar(select(ApiToken).where(ApiToken.name == "AMS connector"))
    assert token.last_used_at is not None and token.token_hash != plain
    client.login(world.admin_a)
    assert client.post(f"/portal/tokens/{token.public_id}/revoke").status_code == 302
    assert client.get("/api/v1/tasks", headers=headers).status_code == 401
    assert "revoked" in text(client.get("/portal/tokens"))
    actions = set(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.object_type == "api_token", AuditEvent.object_id == token.id)))
    assert actions == {"token.create", "token.revoke"}


def test_token_form_needs_a_name_and_users_cannot_manage_tokens(client, world):
    client.login(world.admin_a)
    assert client.post("/portal/tokens", data={"name": ""}).status_code == 422
    client.login(world.user_a)
    assert client.get("/portal/tokens").status_code == 403


# --- scoping -------------------------------------------------------------------------


def test_every_portal_route_answers_404_for_another_clients_ids(client, world, db, redis_conn):
    from provider_app.intake import documents

    task = gen_task(world.b, world.data, external_ref="B-SECRET")
    prepared = documents.prepare(io.BytesIO(b"%PDF-1.7"), "b.pdf", None)
    document = documents.attach(task, prepared, actor=None)
    token = db.session.scalar(select(ApiToken).where(ApiToken.client_id == world.b.id))
    db.session.commit()
    client.post("/api/v1/tasks/bulk", headers=world.headers(world.token_b), data={
        "file": (io.BytesIO(b"description,external_ref\nx,1\n,2\n"), "b.csv"),
        "task_type": world.data.code, "on_invalid": "ask"})
    job_id = _job_of(db, world.b)
    run_jobs()
    admin_b = gen_user(Role.CLIENT_ADMIN, world.b)
    db.session.commit()
    routes = [
        ("GET", f"/portal/tasks/{task.public_id}"),
        ("POST", f"/portal/tasks/{task.public_id}/answer"),
        ("POST", f"/portal/tasks/{task.public_id}/messages"),
        ("POST", f"/portal/tasks/{task.public_id}/documents"),
        ("GET", f"/portal/tasks/{task.public_id}/cancel"),
        ("POST", f"/portal/tasks/{task.public_id}/cancel"),
        ("GET", f"/portal/documents/{document.public_id}"),
        ("GET", f"/portal/imports/{job_id}"),
        ("POST", f"/portal/imports/{job_id}/import-valid"),
        ("POST", f"/portal/imports/{job_id}/discard"),
        ("GET", f"/portal/imports/{job_id}/errors.csv"),
        ("POST", f"/portal/tokens/{token.public_id}/revoke"),
    ]
    client.login(world.admin_a)
    for method, url in routes:
        response = client.open(url, method=method, data={"body": "x"})
        assert response.status_code == 404, (method, url, response.status_code)
        assert "B-SECRET" not in text(response)
    db.session.refresh(task)
    db.session.refresh(token)
    assert task.status == Status.QUEUED and token.revoked_at is None
    client.login(admin_b)  # the owner reaches them (the import page at least)
    assert client.get(f"/portal/imports/{job_id}").status_code == 200
    assert client.get(f"/portal/tasks/{task.public_id}").status_code == 200


def _job_of(db, client_obj) -> str:
    from provider_app.intake.models import CsvImport

    return db.session.scalar(select(CsvImport.job_id).where(CsvImport.client_id == client_obj.id))


@pytest.mark.parametrize("path", ["/portal/tasks/new", "/portal/imports", "/portal/imports/new"])
def test_provider_staff_cannot_use_portal_pages(client, path):
    client.login(gen_user(Role.TEAM_LEAD))
    assert client.get(path).status_code == 403
