"""Bulk CSV intake: validate every row first, never half-import, import valid rows as one
lot on request, refuse the same file twice, report per-row errors and progress."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from provider_app.intake import bulk
from provider_app.intake.models import CsvImport
from provider_app.models import AuditEvent, JobProgress, Lot, Task
from provider_app.vocab import Status
from tests.intake.intake_support import csv_file, run_jobs

MIXED = """task_type,priority,external_ref,state,description
{data},normal,R-1,NY,Key the first batch
{data},urgent,R-2,nj,Key the second batch
{data},asap,R-3,NY,bad priority
{data},,R-4,ZZ,
NOPE,,R-5,,unknown type
{data},low,R-6,,Key the sixth
"""


def upload(client, world, text, *, name="tasks.csv", token=None, **form):
    stream, _ = csv_file(text, name)
    return client.post("/api/v1/tasks/bulk", headers=world.headers(token),
                       data={"file": (stream, name), **form})


def job(client, world, job_id, token=None):
    response = client.get(f"/api/v1/jobs/{job_id}", headers=world.headers(token))
    assert response.status_code == 200, response.json
    return response.json


def tasks_of(db, world, **where):
    stmt = select(Task).where(Task.client_id == world.a.id)
    for name, value in where.items():
        stmt = stmt.where(getattr(Task, name) == value)
    return db.session.scalars(stmt.order_by(Task.id)).all()


@pytest.fixture
def mixed(world):
    return MIXED.format(data=world.data.code)


def test_mixed_file_stops_for_a_decision_then_imports_valid_rows_as_one_lot(
    client, world, db, redis_conn, mixed
):
    response = upload(client, world, mixed)
    assert response.status_code == 202
    job_id = response.json["job_id"]
    assert response.headers["Location"].endswith(f"/api/v1/jobs/{job_id}")
    assert job(client, world, job_id)["status"] == "queued"
    run_jobs()
    state = job(client, world, job_id)
    assert state["status"] == "needs_decision"
    assert (state["total"], state["done"], state["valid_rows"], state["invalid_rows"]) == (
        6, 6, 3, 3)
    assert {(e["row"], e["field"]) for e in state["errors"]} == {
        (4, "priority"), (5, "state"), (5, "fields.description"), (6, "task_type")}
    assert state["error_count"] == 4 and state["errors_truncated"] is False
    assert tasks_of(db, world) == []  # nothing imported before the decision

    accepted = client.post(f"/api/v1/jobs/{job_id}/import-valid", headers=world.headers())
    assert accepted.status_code == 202
    again = client.post(f"/api/v1/jobs/{job_id}/import-valid", headers=world.headers())
    assert again.status_code == 409
    run_jobs()
    state = job(client, world, job_id)
    assert state["status"] == "completed" and state["imported"] == 3 and state["lot"]
    tasks = tasks_of(db, world)
    assert [t.external_ref for t in tasks] == ["R-1", "R-2", "R-6"]
    assert {t.status for t in tasks} == {Status.QUEUED}
    assert [t.state for t in tasks] == ["NY", "NJ", None]
    assert [t.priority.value for t in tasks] == ["normal", "urgent", "low"]
    assert all(t.due_at and t.sla_target_hours for t in tasks)
    assert tasks[1].sla_target_hours == 2.0  # urgent target from the contract
    lot = db.session.scalar(select(Lot).where(Lot.public_id == state["lot"]))
    assert lot.row_count == 3 and {t.lot_id for t in tasks} == {lot.id}
    assert lot.file_hash and lot.client_id == world.a.id
    # one lifecycle audit event per task, as lifecycle.transition writes it
    events = db.session.execute(
        select(AuditEvent.object_id, AuditEvent.from_status, AuditEvent.to_status)
        .where(AuditEvent.action == "task.transition",
               AuditEvent.object_id.in_([t.id for t in tasks]))
    ).all()
    assert sorted(events) == sorted((t.id, "received", "queued") for t in tasks)


def test_a_clean_file_is_imported_without_asking(client, world, db, redis_conn):
    text = "external_ref,description\nC-1,one\nC-2,two\n\nC-3,three\n"
    job_id = upload(client, world, text, task_type=world.data.code).json["job_id"]
    run_jobs()
    state = job(client, world, job_id)
    assert state["status"] == "completed" and state["imported"] == 3
    assert state["errors_csv"] is None
    assert [t.external_ref for t in tasks_of(db, world)] == ["C-1", "C-2", "C-3"]
    assert {t.source for t in tasks_of(db, world)} == {"csv"}


def test_on_invalid_import_valid_skips_the_question(client, world, db, redis_conn, mixed):
    job_id = upload(client, world, mixed, on_invalid="import_valid").json["job_id"]
    run_jobs()
    state = job(client, world, job_id)
    assert state["status"] == "completed" and state["imported"] == 3
    assert state["invalid_rows"] == 3


def test_the_same_file_twice_is_refused_with_a_link(client, world, db, redis_conn, mixed):
    first = upload(client, world, mixed, on_invalid="import_valid").json["job_id"]
    run_jobs()
    second = upload(client, world, mixed, name="renamed.csv")
    assert second.status_code == 409
    assert second.json["job_id"] == first
    assert second.json["status_url"].endswith(f"/api/v1/jobs/{first}")
    run_jobs()
    assert len(tasks_of(db, world)) == 3
    # another client may send the very same bytes
    assert upload(client, world, mixed, token=world.token_b).status_code == 202


def test_discarding_frees_the_file_for_another_upload(client, world, db, redis_conn, mixed):
    client.login(world.user_a)
    job_id = upload(client, world, mixed).json["job_id"]
    run_jobs()
    response = client.post(f"/portal/imports/{job_id}/discard")
    assert response.status_code == 302
    assert job(client, world, job_id)["status"] == "discarded"
    assert upload(client, world, mixed).status_code == 202
    assert tasks_of(db, world) == []


def test_the_error_csv_holds_the_bad_rows_and_can_be_fixed_and_uploaded(
    client, world, db, redis_conn, mixed
):
    job_id = upload(client, world, mixed).json["job_id"]
    run_jobs()
    response = client.get(f"/api/v1/jobs/{job_id}/errors.csv", headers=world.headers())
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["row"] for r in rows] == ["4", "5", "6"]
    assert rows[1]["errors"] == ("state: Enter a two-letter US state code such as NY.; "
                                 "fields.description: This field is required.")
    client.post(f"/api/v1/jobs/{job_id}/import-valid", headers=world.headers())
    run_jobs()
    # correct the three rows in the error file itself and upload it
    rows[0]["priority"] = "high"
    rows[1].update(state="CT", description="fixed")
    rows[2]["task_type"] = world.data.code
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    fixed = upload(client, world, out.getvalue(), name="fixed.csv").json["job_id"]
    run_jobs()
    assert job(client, world, fixed)["imported"] == 3
    assert len(tasks_of(db, world)) == 6


@pytest.mark.parametrize(("text", "fragment"), [
    ("task_type,description,colour\nX,y,z\n", "Unknown column(s): colour"),
    ("external_ref\nA-1\n", "Missing column(s)"),
    ("task_type,task_type\nA,B\n", "appear twice"),
    ("task_type,description\n", "no rows"),
    ("\n", "first row must name the columns"),
])
def test_a_file_that_cannot_be_read_is_rejected(client, world, db, redis_conn, text, fragment):
    fixed = {"task_type": world.data.code} if "Missing" in fragment else {}
    job_id = upload(client, world, text, **fixed).json["job_id"]
    run_jobs()
    state = job(client, world, job_id)
    assert state["status"] == "rejected"
    assert fragment in state["message"]


def test_no_task_type_column_and_none_chosen_is_rejected(client, world, redis_conn):
    job_id = upload(client, world, "description\nx\n").json["job_id"]
    run_jobs()
    assert "Add a task_type column" in job(client, world, job_id)["message"]


def test_a_file_that_is_not_utf8_is_rejected(client, world, redis_conn):
    stream = io.BytesIO("task_type,description\nDATA,caf\xe9\n".encode("latin-1"))
    job_id = client.post("/api/v1/tasks/bulk", headers=world.headers(),
                         data={"file": (stream, "latin.csv")}).json["job_id"]
    run_jobs()
    assert "UTF-8" in job(client, world, job_id)["message"]


def test_a_rejected_file_can_be_sent_again(client, world, redis_conn):
    text = "description\nx\n"
    upload(client, world, text)
    run_jobs()
    assert upload(client, world, text, task_type=world.data.code).status_code == 202


@pytest.mark.parametrize(("form", "field"), [
    ({"task_type": "NOPE"}, "task_type"), ({"on_invalid": "maybe"}, "on_invalid"),
])
def test_bad_upload_parameters_are_422(client, world, form, field):
    response = upload(client, world, "description\nx\n", **form)
    assert response.status_code == 422 and field in response.json["errors"]


def test_a_missing_or_empty_file_is_422(client, world):
    none = client.post("/api/v1/tasks/bulk", headers=world.headers(), data={})
    empty = upload(client, world, "")
    wrong = upload(client, world, "a,b\n", name="tasks.xlsx")
    assert none.status_code == empty.status_code == wrong.status_code == 422
    assert none.json["errors"]["file"] == ["Choose a CSV file to upload."]
    assert empty.json["errors"]["file"] == ["The file is empty."]


def test_rows_of_several_types_with_lists_and_yes_no_cells(client, world, db, redis_conn):
    coi, data = world.coi.code, world.data.code
    text = (
        "task_type,external_ref,description,insured_name,holder_name,holder_address,"
        "policy_numbers,lines,additional_insured\n"
        f"{data},D-1,enter it,,,,,,\n"
        f"{coi},C-1,,Acme LLC,City,1 Main St,GL-1,gl;auto,yes\n"
        f"{coi},C-2,not a COI field,Acme LLC,City,1 Main St,GL-1,GL;BOAT,maybe\n"
    )
    job_id = upload(client, world, text, on_invalid="import_valid").json["job_id"]
    run_jobs()
    state = job(client, world, job_id)
    assert {(e["row"], e["field"]) for e in state["errors"]} == {
        (4, "fields.lines"), (4, "fields.additional_insured"), (4, "fields.description")}
    coi_task = tasks_of(db, world, external_ref="C-1")[0]
    assert coi_task.fields["lines"] == ["GL", "AUTO"]
    assert coi_task.fields["additional_insured"] is True
    assert coi_task.fields["waiver_of_subrogation"] is False


def test_repeats_inside_the_file_and_of_open_tasks_are_flagged(client, world, db, redis_conn):
    client.post("/api/v1/tasks", json={"task_type": world.data.code, "external_ref": "DUP-1",
                                       "fields": {"description": "x"}}, headers=world.headers())
    text = "external_ref,description\nDUP-1,again\nNEW-1,one\nNEW-1,twice in the file\n"
    job_id = upload(client, world, text, task_type=world.data.code).json["job_id"]
    run_jobs()
    assert job(client, world, job_id)["duplicates_flagged"] == 2
    by_ref = {}
    for task in tasks_of(db, world):
        by_ref.setdefault(task.external_ref, []).append(task)
    assert by_ref["DUP-1"][1].duplicate_of_id == by_ref["DUP-1"][0].id
    assert by_ref["NEW-1"][1].duplicate_of_id == by_ref["NEW-1"][0].id
    assert by_ref["NEW-1"][0].duplicate_of_id is None


def test_progress_is_saved_per_batch_and_a_crashed_import_resumes(
    client, world, db, redis_conn, monkeypatch
):
    monkeypatch.setattr(bulk, "BATCH", 2)
    lines = "\n".join(f"P-{i},row {i}" for i in range(7))
    job_id = upload(client, world, f"external_ref,description\n{lines}\n",
                    task_type=world.data.code).json["job_id"]
    real_audit, calls = bulk._audit, []

    def crash_in_the_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("worker lost")
        return real_audit(*args, **kwargs)

    monkeypatch.setattr(bulk, "_audit", crash_in_the_third_batch)
    imp = db.session.scalar(select(CsvImport).where(CsvImport.job_id == job_id))
    with pytest.raises(RuntimeError):
        bulk.validate_import(imp.id)
    state = job(client, world, job_id)
    assert state["status"] == "failed" and "worker lost" in state["message"]
    assert (state["done"], state["imported"]) == (4, 4)  # two batches committed
    monkeypatch.setattr(bulk, "_audit", real_audit)
    assert bulk.validate_import(imp.id) == "completed"  # what RQ's retry runs
    refs = [t.external_ref for t in tasks_of(db, world)]
    assert refs == [f"P-{i}" for i in range(7)]  # each row exactly once
    assert job(client, world, job_id)["done"] == 7


def test_job_progress_rows_belong_to_the_client(client, world, db, redis_conn, mixed):
    job_id = upload(client, world, mixed).json["job_id"]
    row = db.session.get(JobProgress, job_id)
    assert row.client_id == world.a.id and row.kind == "csv_import"
    assert client.get(f"/api/v1/jobs/{job_id}",
                      headers=world.headers(world.token_b)).status_code == 404


def test_nothing_is_written_for_a_refused_upload(client, world, db, redis_conn, mixed):
    upload(client, world, mixed)
    upload(client, world, mixed)
    assert db.session.scalar(select(func.count()).select_from(CsvImport)
                             .where(CsvImport.client_id == world.a.id)) == 1


def test_bulk_matches_duplicate_fields_as_intake_does():
    """Policy number and insured compare case-insensitively in a CSV lot too (as
    ``insert.duplicate_query`` does for single tasks); a reference compares exactly."""
    from provider_app.intake.bulk import _DuplicateIndex

    key = _DuplicateIndex.key
    assert key(1, None, {"policy_number": "AB-1", "insured_name": "Acme"}) == key(
        1, None, {"policy_number": "ab-1", "insured_name": "ACME"})
    assert key(1, "Ref-1", {}) != key(1, "REF-1", {})
