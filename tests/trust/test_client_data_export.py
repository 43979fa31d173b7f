"""A client admin's data export: built by a job, zip contents, and only for that client."""

import io
import json
import zipfile
from datetime import timedelta

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from client_portal.data_export import build_export, expire_exports, export_path
from provider_app.jobs import get_queue
from provider_app.models import AuditEvent, JobProgress, Message
from provider_app.vocab import MessageKind, Role, Status
from tests.factories import gen_client, gen_task, gen_task_type, gen_user


@pytest.fixture
def world(app, db, add_document, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "EXPORT_DIR", str(tmp_path / "exports"))
    tt = gen_task_type()
    a, b = gen_client(), gen_client()
    task = gen_task(a, tt, status=Status.IN_PROGRESS, external_ref="A-1",
                    fields={"description": "renew Jane's policy"})
    gen_task(a, tt, external_ref="A-2")
    foreign = gen_task(b, tt, external_ref="B-SECRET", fields={"description": "B only"})
    doc = add_document(task, b"%PDF-1.7 the client's file", filename="../../etc/Policy scan.pdf")
    add_document(foreign, b"%PDF foreign")
    db.session.add_all([
        Message(client_id=a.id, task_id=task.id, kind=MessageKind.MESSAGE, body="Hello from A"),
        Message(client_id=a.id, task_id=task.id, kind=MessageKind.NOTE, body="internal only",
                internal=True),
    ])
    admin_a = gen_user(Role.CLIENT_ADMIN, a)
    admin_b = gen_user(Role.CLIENT_ADMIN, b)
    db.session.commit()
    return {"a": a, "b": b, "task": task, "doc": doc, "admin_a": admin_a, "admin_b": admin_b}


def _request_and_build(client, db) -> JobProgress:
    response = client.post("/portal/export/")
    assert response.status_code == 303
    queue = get_queue("low")
    assert queue.count == 1
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    db.session.expire_all()
    return db.session.scalars(select(JobProgress).order_by(JobProgress.created_at.desc())).first()


def test_export_zip_holds_the_clients_data_and_only_it(client, db, redis_conn, world):
    client.login(world["admin_a"])
    assert b"No exports yet" in client.get("/portal/export/").data
    progress = _request_and_build(client, db)
    assert progress.status == "done" and progress.client_id == world["a"].id
    assert (progress.done, progress.total) == (2, 2)

    page = client.get("/portal/export/").get_data(as_text=True)
    assert "Download zip" in page
    response = client.get(f"/portal/export/{progress.id}/download")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    names = archive.namelist()
    assert "manifest.json" in names and "tasks.json" in names
    tasks = json.loads(archive.read("tasks.json"))
    assert sorted(t["external_ref"] for t in tasks) == ["A-1", "A-2"]
    [with_doc] = [t for t in tasks if t["external_ref"] == "A-1"]
    assert with_doc["fields"] == {"description": "renew Jane's policy"}
    assert [m["body"] for m in with_doc["messages"]] == ["Hello from A"]  # no internal notes
    [doc] = with_doc["documents"]
    assert doc["id"] == world["doc"].public_id and doc["filename"] == "../../etc/Policy scan.pdf"
    assert doc["file"].startswith(f"documents/{world['task'].public_id}/")
    assert ".." not in doc["file"]
    assert archive.read(doc["file"]) == b"%PDF-1.7 the client's file"
    body = b"".join(archive.read(n) for n in names)
    assert b"B-SECRET" not in body and b"PDF foreign" not in body and b"internal only" not in body
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["counts"]["tasks"] == 2 and manifest["counts"]["documents"] == 1

    actions = db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.client_id == world["a"].id, AuditEvent.action.like("export.%"))).all()
    assert sorted(actions) == ["export.download", "export.ready", "export.request"]


def test_other_people_cannot_download_it(app, client, db, redis_conn, world):
    client.login(world["admin_a"])
    progress = _request_and_build(client, db)
    url = f"/portal/export/{progress.id}/download"

    other_admin = app.test_client().login(world["admin_b"])
    response = other_admin.get(url)
    assert response.status_code == 404 and b"PK" not in response.data[:2]
    assert "Download zip" not in other_admin.get("/portal/export/").get_data(as_text=True)
    for role, owner in [(Role.CLIENT_USER, world["a"]), (Role.ADMIN, None)]:
        someone = app.test_client().login(gen_user(role, owner))
        assert someone.get(url).status_code == 403
        assert someone.get("/portal/export/").status_code == 403
    assert client.get("/portal/export/not-a-real-id/download").status_code == 404


def test_one_export_at_a_time(client, db, redis_conn, world):
    client.login(world["admin_a"])
    assert client.post("/portal/export/").status_code == 303
    busy = client.get("/portal/export/")
    assert busy.headers["Refresh"] == "5"
    again = client.post("/portal/export/")
    assert again.status_code == 409 and b"already being prepared" in again.data


def test_the_job_can_run_twice(client, db, redis_conn, world):
    client.login(world["admin_a"])
    progress = _request_and_build(client, db)
    first = export_path(progress).read_bytes()
    assert build_export(progress.id) == progress.result
    assert export_path(progress).read_bytes() == first
    assert not list(export_path(progress).parent.glob("*.part"))


def test_old_exports_are_deleted(client, db, redis_conn, world):
    client.login(world["admin_a"])
    progress = _request_and_build(client, db)
    path = export_path(progress)
    progress.created_at = progress.created_at - timedelta(days=8)
    db.session.commit()
    assert expire_exports() == 1
    db.session.commit()
    assert not path.exists()
    assert client.get(f"/portal/export/{progress.id}/download").status_code == 404
