"""JSON API: task creation with idempotency, 422 field errors, listing, cancel, messages,
and cross-client 404s on every route."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from provider_app.assignment.batch import REQUESTED_KEY
from provider_app.db_types import utcnow
from provider_app.jobs import get_queue
from provider_app.models import AuditEvent, IdempotencyKey, Task
from provider_app.vocab import Status
from tests.factories import gen_task

BODY = {"task_type": None, "priority": "normal", "external_ref": "X-1", "state": "NY",
        "fields": {"description": "Key 40 driver changes"}}


def body(world, **changes):
    return {**BODY, "task_type": world.data.code, **changes}


def post(client, world, payload, key=None, token=None):
    headers = world.headers(token)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/v1/tasks", json=payload, headers=headers)


def count_tasks(db, client_obj) -> int:
    return db.session.scalar(select(func.count()).select_from(Task)
                             .where(Task.client_id == client_obj.id))


def test_post_creates_a_queued_task_with_its_due_time(client, world, db, redis_conn):
    response = post(client, world, body(world))
    assert response.status_code == 201
    task = response.json
    assert set(task) >= {"id", "status", "task_type", "priority", "external_ref", "received_at",
                         "due_at", "state", "fields"}
    assert task["status"] == "queued" and task["task_type"] == world.data.code
    assert task["state"] == "NY" and task["fields"] == {"description": "Key 40 driver changes"}
    assert task["received_at"].endswith("Z") and task["due_at"].endswith("Z")
    assert response.headers["Location"].endswith(f"/api/v1/tasks/{task['id']}")
    row = db.session.scalar(select(Task).where(Task.public_id == task["id"]))
    assert row.sla_target_hours == 8.0 and row.due_at > row.received_at
    assert row.source == "api" and row.sop_id is not None
    actions = db.session.execute(
        select(AuditEvent.action, AuditEvent.from_status, AuditEvent.to_status)
        .where(AuditEvent.object_type == "task", AuditEvent.object_id == row.id)
        .order_by(AuditEvent.id)
    ).all()
    assert actions == [("task.create", None, None), ("task.transition", "received", "queued")]
    # the assignment job waits in Redis for the worker
    assert [j.description for j in get_queue("default").jobs] == [
        "provider_app.assignment.batch.assign_batch_job"]


def test_a_burst_of_tasks_asks_for_one_assignment_run(client, world, redis_conn):
    for n in range(3):
        assert post(client, world, body(world, external_ref=f"B-{n}")).status_code == 201
    queue = get_queue("default")
    assert len(queue.jobs) == 1  # one run waits; it will see all three tasks

    redis_conn.delete(REQUESTED_KEY)  # what the run does first, before reading the queue
    assert post(client, world, body(world, external_ref="B-late")).status_code == 201
    assert len(queue.jobs) == 2  # work committed after that asks again


def test_priority_defaults_to_normal_and_state_is_optional(client, world):
    payload = {"task_type": world.data.code.lower(), "fields": {"description": "x"}}
    task = post(client, world, payload).json
    assert task["priority"] == "normal" and task["state"] is None and task["external_ref"] is None


def test_urgent_priority_gets_the_urgent_target(client, world, db):
    task = post(client, world, body(world, priority="urgent")).json
    row = db.session.scalar(select(Task).where(Task.public_id == task["id"]))
    assert row.sla_target_hours == 2.0


def test_idempotency_triple_201_200_409(client, world, db):
    first = post(client, world, body(world), key="key-123")
    again = post(client, world, body(world), key="key-123")
    other = post(client, world, body(world, external_ref="X-2"), key="key-123")
    assert first.status_code == 201
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    assert other.status_code == 409
    assert "different request body" in other.json["error"]
    assert count_tasks(db, world.a) == 1


def test_the_same_key_is_independent_per_client(client, world, db):
    a = post(client, world, body(world), key="shared")
    b = post(client, world, body(world), key="shared", token=world.token_b)
    assert a.status_code == b.status_code == 201
    assert a.json["id"] != b.json["id"]


def test_key_order_in_the_body_does_not_matter(client, world):
    first = post(client, world, body(world), key="k-order")
    reordered = dict(reversed(list(body(world).items())))
    assert post(client, world, reordered, key="k-order").status_code == 200
    assert first.status_code == 201


def test_without_a_key_every_post_creates(client, world, db):
    assert post(client, world, body(world)).status_code == 201
    assert post(client, world, body(world)).status_code == 201
    assert count_tasks(db, world.a) == 2


def test_an_invalid_request_does_not_burn_the_key(client, world, db):
    bad = post(client, world, body(world, fields={}), key="k-retry")
    good = post(client, world, body(world), key="k-retry")
    assert bad.status_code == 422 and good.status_code == 201
    assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "naïve"])
def test_a_malformed_key_is_422(client, world, key):
    response = post(client, world, body(world), key=key)
    assert response.status_code == 422
    assert "headers.Idempotency-Key" in response.json["errors"]


@pytest.mark.parametrize(("changes", "path", "fragment"), [
    ({"fields": {}}, "fields.description", "required"),
    ({"fields": {"description": "x", "extra": 1}}, "fields.extra", "Unknown field"),
    ({"fields": {"description": 5}}, "fields.description", "string"),
    ({"fields": "nope"}, "fields", "Invalid input type"),
    ({"priority": "asap"}, "priority", "Choose one of"),
    ({"state": "ZZ"}, "state", "state code"),
    ({"external_ref": "x" * 101}, "external_ref", "under 101"),
    ({"task_type": "NOPE"}, "task_type", "Unknown task type"),
    ({"task_type": None}, "task_type", "required"),
])
def test_invalid_input_is_422_with_errors_by_field_path(client, world, db, changes, path,
                                                       fragment):
    response = post(client, world, body(world, **changes))
    assert response.status_code == 422
    assert response.json["error"]
    assert fragment in " ".join(response.json["errors"][path]), response.json
    assert count_tasks(db, world.a) == 0


def test_all_problems_are_reported_at_once(client, world):
    payload = {"task_type": world.coi.code, "priority": "asap",
               "fields": {"lines": ["GL", "BOAT"], "additional_insured": "yes"}}
    errors = post(client, world, payload).json["errors"]
    assert set(errors) == {"priority", "fields.insured_name", "fields.holder_name",
                           "fields.holder_address", "fields.policy_numbers", "fields.lines",
                           "fields.additional_insured"}
    assert errors["fields.lines"] == ["Unknown choice BOAT; choose from: GL, AUTO, WC, PROP, "
                                      "UMB, PROF."]


def test_a_body_that_is_not_json_is_422(client, world):
    response = client.post("/api/v1/tasks", data="task_type=DATA", headers=world.headers(),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 422
    assert response.json["errors"] == {
        "_body": ["Send a JSON object with Content-Type: application/json."]}
    assert post(client, world, ["a list"]).json["errors"] == {"_body": ["Send a JSON object."]}


def test_a_coi_request_with_every_kind_of_field(client, world, db):
    payload = {"task_type": world.coi.code, "external_ref": "COI-9", "fields": {
        "insured_name": "Acme Roofing LLC", "holder_name": "City of Albany",
        "holder_address": "24 Eagle St, Albany NY", "policy_numbers": "GL-1234567, AU-7654321",
        "lines": ["gl", "AUTO", "GL"], "additional_insured": True,
        "description_of_operations": "Roofing at 1 Main St"}}
    task = post(client, world, payload).json
    assert task["fields"]["lines"] == ["GL", "AUTO"]
    assert task["fields"]["additional_insured"] is True
    assert task["fields"]["waiver_of_subrogation"] is False


# --- duplicates ----------------------------------------------------------------------


def test_a_repeat_of_an_open_task_is_flagged_not_dropped(client, world, db):
    first = post(client, world, body(world)).json
    second = post(client, world, body(world)).json
    assert second["duplicate_of"] == first["id"] and first["duplicate_of"] is None
    assert second["status"] == "queued"
    flagged = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "task.duplicate_flagged"))
    assert flagged.after["duplicate_of_id"] == db.session.scalar(
        select(Task.id).where(Task.public_id == first["id"]))


def test_duplicates_match_policy_and_insured_without_a_reference(client, world):
    fields = {"policy_number": "pl-123456", "insured_name": "Acme LLC",
              "effective_date": "2025-01-01", "change_kind": "address",
              "change_detail": "New garaging address"}
    payload = {"task_type": world.endt.code, "fields": fields}
    first = post(client, world, payload).json
    same = post(client, world, {**payload, "fields": {**fields, "insured_name": "ACME LLC"}}).json
    other = post(client, world, {**payload, "fields": {**fields,
                                                        "policy_number": "PL-999999"}}).json
    assert same["duplicate_of"] == first["id"]
    assert other["duplicate_of"] is None


def test_no_duplicate_flag_for_closed_old_or_other_client_tasks(client, world, db):
    old = gen_task(world.a, world.data, external_ref="X-1",
                   received_at=utcnow() - timedelta(days=8))
    closed = gen_task(world.a, world.data, external_ref="X-1", status=Status.CANCELLED)
    gen_task(world.b, world.data, external_ref="X-1")
    db.session.commit()
    task = post(client, world, body(world)).json
    assert task["duplicate_of"] is None
    assert old.public_id != task["id"] and closed.public_id != task["id"]


# --- reading -------------------------------------------------------------------------


def test_get_one_task_and_a_foreign_one_is_404(client, world):
    own = post(client, world, body(world)).json
    theirs = post(client, world, body(world, external_ref="B-SECRET"), token=world.token_b).json
    assert client.get(f"/api/v1/tasks/{own['id']}", headers=world.headers()).json == own
    foreign = client.get(f"/api/v1/tasks/{theirs['id']}", headers=world.headers())
    assert foreign.status_code == 404 and "B-SECRET" not in foreign.get_data(as_text=True)


def test_list_filters_and_pagination(client, world, db):
    for i in range(3):
        post(client, world, body(world, external_ref=f"ALPHA-{i}"))
    post(client, world, body(world, external_ref="BETA-1", priority="urgent"))
    cancelled = post(client, world, body(world, external_ref="GAMMA-1")).json
    client.post(f"/api/v1/tasks/{cancelled['id']}/cancel", headers=world.headers())
    post(client, world, body(world, external_ref="OTHER"), token=world.token_b)

    def refs(query):
        response = client.get(f"/api/v1/tasks?{query}", headers=world.headers())
        assert response.status_code == 200, response.json
        return sorted(t["external_ref"] for t in response.json["items"])

    assert refs("") == ["ALPHA-0", "ALPHA-1", "ALPHA-2", "BETA-1", "GAMMA-1"]
    assert refs("status=cancelled") == ["GAMMA-1"]
    assert refs("status=queued,cancelled&priority=urgent") == ["BETA-1"]
    assert refs("q=alpha") == ["ALPHA-0", "ALPHA-1", "ALPHA-2"]
    assert refs("external_ref=ALPHA-1") == ["ALPHA-1"]
    assert refs(f"task_type={world.coi.code}") == []
    today = utcnow().date()
    assert len(refs(f"received_from={today}&received_to={today}")) == 5
    assert refs(f"received_to={today - timedelta(days=1)}") == []
    page = client.get("/api/v1/tasks?per_page=2&page=2", headers=world.headers()).json
    assert (page["total"], page["pages"], page["page"], len(page["items"])) == (5, 3, 2, 2)


@pytest.mark.parametrize(("query", "field"), [
    ("status=done", "status"), ("priority=asap", "priority"), ("per_page=500", "per_page"),
    ("received_from=yesterday", "received_from"), ("page=0", "page"),
    ("received_from=2025-02-01&received_to=2025-01-01", "received_to"),
])
def test_bad_list_parameters_are_422(client, world, query, field):
    response = client.get(f"/api/v1/tasks?{query}", headers=world.headers())
    assert response.status_code == 422
    assert field in response.json["errors"]


def test_listing_does_not_grow_queries_with_tasks(client, world, count_queries):
    post(client, world, body(world))
    with count_queries() as few:
        client.get("/api/v1/tasks", headers=world.headers())
    for i in range(8):
        post(client, world, body(world, external_ref=f"N-{i}"))
    with count_queries() as many:
        items = client.get("/api/v1/tasks", headers=world.headers()).json["items"]
    assert len(items) == 9
    assert many.count == few.count


def test_task_types_catalogue(client, world):
    items = client.get("/api/v1/task-types", headers=world.headers()).json["items"]
    coi = next(i for i in items if i["code"] == world.coi.code)
    assert coi["fields"]["lines"]["type"] == "array" and coi["fields"]["lines"]["required"]


# --- cancel and messages -------------------------------------------------------------


def test_cancel_an_open_task_then_409(client, world, db):
    task = post(client, world, body(world)).json
    url = f"/api/v1/tasks/{task['id']}/cancel"
    response = client.post(url, json={"reason": "sent by mistake"}, headers=world.headers())
    assert response.status_code == 200 and response.json["status"] == "cancelled"
    assert response.json["completed_at"]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.to_status == "cancelled"))
    assert event.reason == "cancelled by the client: sent by mistake"
    again = client.post(url, headers=world.headers())
    assert again.status_code == 409 and "cannot move to cancelled" in again.json["error"]


def test_a_message_on_a_task(client, world, db):
    task = post(client, world, body(world)).json
    url = f"/api/v1/tasks/{task['id']}/messages"
    response = client.post(url, json={"body": "Please use the new address"},
                           headers=world.headers())
    assert response.status_code == 201
    assert response.json["message"]["kind"] == "message"
    assert response.json["task"]["status"] == "queued"
    empty = client.post(url, json={"body": ""}, headers=world.headers())
    assert empty.status_code == 422 and "body" in empty.json["errors"]


def test_a_message_while_pending_client_answers_and_resumes(client, world, db):
    from provider_app.conversation import request_info

    task = gen_task(world.a, world.data, status=Status.IN_PROGRESS)
    request_info(task, "Which driver?", None)
    db.session.commit()
    response = client.post(f"/api/v1/tasks/{task.public_id}/messages",
                           json={"body": "Driver 2"}, headers=world.headers())
    assert response.status_code == 201
    assert response.json["message"]["kind"] == "info_response"
    assert response.json["task"]["status"] == "in_progress"
    db.session.refresh(task)
    assert task.sla_paused_since is None


# --- authentication and scoping ------------------------------------------------------


def test_a_revoked_token_is_refused(client, world, db):
    from provider_app.accounts import revoke_token
    from provider_app.models import ApiToken

    for token in db.session.scalars(select(ApiToken).where(ApiToken.client_id == world.a.id)):
        revoke_token(token)
    db.session.commit()
    assert post(client, world, body(world)).status_code == 401


def test_a_browser_session_must_send_the_csrf_token(client, world):
    client.login(world.user_a)
    without = client.post("/api/v1/tasks", json=body(world), no_csrf=True)
    assert without.status_code == 400
    with_token = client.post("/api/v1/tasks", json=body(world))
    assert with_token.status_code == 201


def foreign_routes(task_id: str, doc_id: str, job_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/v1/tasks/{task_id}"),
        ("POST", f"/api/v1/tasks/{task_id}/cancel"),
        ("POST", f"/api/v1/tasks/{task_id}/messages"),
        ("POST", f"/api/v1/tasks/{task_id}/documents"),
        ("GET", f"/api/v1/documents/{doc_id}"),
        ("GET", f"/api/v1/jobs/{job_id}"),
        ("GET", f"/api/v1/jobs/{job_id}/errors.csv"),
        ("POST", f"/api/v1/jobs/{job_id}/import-valid"),
    ]


def test_every_api_route_answers_404_for_another_clients_ids(client, world, db, redis_conn):
    """Client B's task, document and job, requested with client A's token."""
    import io

    from tests.intake.intake_support import run_jobs

    task_b = post(client, world, body(world), token=world.token_b).json["id"]
    doc = client.post(f"/api/v1/tasks/{task_b}/documents", headers=world.headers(world.token_b),
                      data={"file": (io.BytesIO(b"%PDF-1.7 x"), "a.pdf")})
    doc_b = doc.json["documents"][0]["id"]
    csv_text = f"task_type,external_ref,description\n{world.data.code},R1,x\nNOPE,R2,y\n"
    job_b = client.post("/api/v1/tasks/bulk", headers=world.headers(world.token_b),
                        data={"file": (io.BytesIO(csv_text.encode()), "b.csv")}).json["job_id"]
    run_jobs()
    routes = foreign_routes(task_b, doc_b, job_b)
    for method, url in routes:
        response = client.open(url, method=method, headers=world.headers(),
                               json={"body": "hello"} if url.endswith("messages") else None)
        assert response.status_code == 404, (method, url, response.status_code)
    task = db.session.scalar(select(Task).where(Task.public_id == task_b))
    assert task.status == Status.QUEUED  # the foreign cancel changed nothing
    for method, url in routes:  # while the owner reaches every one of them
        theirs = client.open(url, method=method, headers=world.headers(world.token_b),
                             json={"body": "hello"} if url.endswith("messages") else None)
        assert theirs.status_code < 400 or theirs.status_code == 422, (method, url)


def test_unknown_ids_are_404(client, world):
    for method, url in foreign_routes("0" * 32, "0" * 32, "0" * 32):
        assert client.open(url, method=method, headers=world.headers()).status_code == 404
