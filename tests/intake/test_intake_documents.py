"""Documents: size limit, type sniffed from the bytes (mislabelled files refused), storage
outside the web root under generated names, downloads only for those who may see the task."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from provider_app.intake import documents
from provider_app.models import AuditEvent, Document, StaffClient, StaffProfile, Task
from provider_app.vocab import Role
from tests.factories import gen_client, gen_task, gen_user


def _zip(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


SAMPLES = {
    "letter.pdf": b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n",
    "photo.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 32,
    "photo.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 32,
    "anim.gif": b"GIF89a" + b"\x00" * 32,
    "scan.tiff": b"II*\x00" + b"\x00" * 32,
    "sov.xlsx": _zip("[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml"),
    "memo.docx": _zip("[Content_Types].xml", "word/document.xml"),
    "mail.eml": (b"Received: from mx\r\nFrom: broker@example.com\r\nTo: us@example.com\r\n"
                 b"Subject: COI\r\n\twrapped\r\n\r\nPlease issue.\r\n"),
    "drivers.csv": b"name,licence\nAnn,D123\n",
    "notes.txt": "Caf\u00e9 notes\n".encode(),
}
MIME = {"letter.pdf": "application/pdf", "photo.jpg": "image/jpeg", "mail.eml": "message/rfc822",
        "drivers.csv": "text/csv", "sov.xlsx": documents.KINDS["xlsx"].mime}


def prepare(name: str, data: bytes, declared: str | None = None):
    return documents.prepare(io.BytesIO(data), name, declared)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_accepted_kind_is_recognised(app, db, name):
    prepared = prepare(name, SAMPLES[name])
    try:
        assert prepared.kind.extensions & {Path(name).suffix}
        if name in MIME:
            assert prepared.kind.mime == MIME[name]
        assert prepared.sha256 == hashlib.sha256(SAMPLES[name]).hexdigest()
        assert prepared.size == len(SAMPLES[name])
    finally:
        documents.discard(prepared)


@pytest.mark.parametrize(("name", "data", "declared", "fragment"), [
    ("invoice.pdf", SAMPLES["photo.png"], None, "mislabelled"),
    ("invoice.pdf", b"MZ\x90\x00\x03\x00\x00\x00", None, "not a type we accept"),
    ("sheet.xlsx", SAMPLES["memo.docx"], None, "mislabelled"),
    ("memo.docx", _zip("[Content_Types].xml", "other.xml"), None, "mislabelled"),
    ("memo.docx", _zip("word/document.xml"), None, "mislabelled"),
    ("photo.png", b"just text", None, "mislabelled"),
    ("mail.eml", b"hello there\n", None, "mislabelled"),
    ("letter.pdf", SAMPLES["letter.pdf"], "image/png", "sent as image/png"),
    ("tool.exe", b"MZ\x90\x00", None, "not accepted"),
    ("noext", b"%PDF-1.7", None, "not accepted"),
    ("empty.pdf", b"", None, "empty"),
])
def test_mislabelled_and_unknown_files_are_refused(app, db, name, data, declared, fragment):
    with pytest.raises(documents.DocumentRefused, match=fragment):
        prepare(name, data, declared)
    assert list((Path(app.config["UPLOAD_DIR"]) / "tmp").glob("*")) == []


def test_generic_or_csv_declared_types_are_fine(app, db):
    for declared in (None, "", "application/octet-stream", "application/vnd.ms-excel"):
        documents.discard(prepare("drivers.csv", SAMPLES["drivers.csv"], declared))


def test_the_size_limit(app, db, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_DOCUMENT_BYTES", 100)
    documents.discard(prepare("ok.pdf", b"%PDF-" + b"x" * 95))
    with pytest.raises(documents.DocumentRefused, match="larger than"):
        prepare("big.pdf", b"%PDF-" + b"x" * 96)


def test_stored_outside_the_web_root_under_a_generated_name(app, world, db):
    task = gen_task(world.a, world.data)
    document = documents.attach(task, prepare("../../etc/passwd.pdf", SAMPLES["letter.pdf"]),
                                actor=None)
    path = documents.storage_path(document.storage_name)
    assert path.read_bytes() == SAMPLES["letter.pdf"]
    assert Path(app.config["UPLOAD_DIR"]) in path.parents
    assert Path(app.static_folder) not in path.parents
    assert document.filename == "passwd.pdf" and "passwd" not in path.name
    assert len(document.storage_name) == 32
    assert document.sha256 == hashlib.sha256(SAMPLES["letter.pdf"]).hexdigest()


def test_a_rolled_back_upload_leaves_no_file(app, world, db):
    task = gen_task(world.a, world.data)
    db.session.commit()
    document = documents.attach(task, prepare("x.pdf", SAMPLES["letter.pdf"]), actor=None)
    path = documents.storage_path(document.storage_name)
    assert path.exists()
    db.session.rollback()
    assert not path.exists()


@pytest.fixture
def stored(world, db):
    task = gen_task(world.a, world.data, external_ref="DOC-1")
    document = documents.attach(task, prepare("letter.pdf", SAMPLES["letter.pdf"]), actor=None)
    db.session.commit()
    return document


def test_the_client_downloads_its_document_as_an_attachment(client, world, db, stored):
    client.login(world.user_a)
    response = client.get(f"/portal/documents/{stored.public_id}")
    assert response.status_code == 200
    assert response.data == SAMPLES["letter.pdf"]
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert "letter.pdf" in response.headers["Content-Disposition"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "application/pdf"
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "document.download"))


def test_another_client_gets_404(client, world, stored):
    client.login(world.user_b)
    assert client.get(f"/portal/documents/{stored.public_id}").status_code == 404
    api = client.get(f"/api/v1/documents/{stored.public_id}", headers=world.headers(world.token_b))
    assert api.status_code == 404


def test_provider_staff_download_through_their_own_route(client, world, db, stored):
    client.login(gen_user(Role.ADMIN))
    response = client.get(f"/documents/{stored.public_id}")
    assert response.status_code == 200 and response.data == SAMPLES["letter.pdf"]
    assert response.headers["Content-Disposition"].startswith("attachment")


def test_staff_restricted_to_other_clients_get_404(client, world, db, stored):
    lead = gen_user(Role.TEAM_LEAD)
    lead.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
    lead.staff_profile.client_links = [StaffClient(client_id=gen_client().id)]
    db.session.commit()
    client.login(lead)
    assert client.get(f"/documents/{stored.public_id}").status_code == 404


def test_client_users_cannot_use_the_provider_route(client, world, stored):
    client.login(world.user_a)
    assert client.get(f"/documents/{stored.public_id}").status_code == 403


def test_api_upload_and_download(client, world, db):
    task = gen_task(world.a, world.data)
    db.session.commit()
    response = client.post(f"/api/v1/tasks/{task.public_id}/documents", headers=world.headers(),
                           data={"file": [(io.BytesIO(SAMPLES["sov.xlsx"]), "sov.xlsx"),
                                          (io.BytesIO(SAMPLES["mail.eml"]), "mail.eml")]})
    assert response.status_code == 201
    docs = response.json["documents"]
    assert [d["filename"] for d in docs] == ["sov.xlsx", "mail.eml"]
    download = client.get(f"/api/v1/documents/{docs[1]['id']}", headers=world.headers())
    assert download.data == SAMPLES["mail.eml"] and download.mimetype == "message/rfc822"


def test_api_upload_refuses_a_mislabelled_file_and_keeps_none(client, world, db):
    task = gen_task(world.a, world.data)
    db.session.commit()
    response = client.post(f"/api/v1/tasks/{task.public_id}/documents", headers=world.headers(),
                           data={"file": [(io.BytesIO(SAMPLES["letter.pdf"]), "ok.pdf"),
                                          (io.BytesIO(SAMPLES["photo.png"]), "fake.pdf")]})
    assert response.status_code == 422
    assert "fake.pdf is mislabelled" in response.json["errors"]["file"][0]
    assert db.session.scalar(select(func.count()).select_from(Document)) == 0


def test_portal_task_with_attachments(client, world, db):
    client.login(world.user_a)
    response = client.post(f"/portal/tasks/new/{world.data.code}", data={
        "priority": "normal", "description": "see attached",
        "attachments": [(io.BytesIO(SAMPLES["letter.pdf"]), "letter.pdf"),
                        (io.BytesIO(SAMPLES["drivers.csv"]), "drivers.csv")],
    })
    assert response.status_code == 302
    task = db.session.scalar(select(Task).where(Task.client_id == world.a.id))
    assert sorted(d.filename for d in task.documents) == ["drivers.csv", "letter.pdf"]


def test_portal_oversized_or_mislabelled_attachment_creates_nothing(client, world, db, app,
                                                                    monkeypatch):
    monkeypatch.setitem(app.config, "MAX_DOCUMENT_BYTES", 64)
    client.login(world.user_a)
    response = client.post(f"/portal/tasks/new/{world.data.code}", data={
        "priority": "normal", "description": "see attached",
        "attachments": [(io.BytesIO(SAMPLES["photo.png"]), "photo.pdf"),
                        (io.BytesIO(b"%PDF-" + b"x" * 100), "big.pdf")],
    })
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "photo.pdf is mislabelled" in body and "big.pdf is larger than" in body
    assert db.session.scalar(select(func.count()).select_from(Task)) == 0
    stored = Path(app.config["UPLOAD_DIR"]) / "tmp"
    assert list(stored.glob("*")) == []
