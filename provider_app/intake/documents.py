"""Attachments: size limit, content sniffed from the bytes, storage outside the web root.

A file is accepted only when its name, its declared type and its actual content
agree (a ``.pdf`` that is really an executable is "mislabelled"). Files are
stored under ``UPLOAD_DIR/documents`` with generated names and served back only
as downloads (``Content-Disposition: attachment``, ``nosniff``), audited.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flask import Response, current_app, send_file
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..audit import record
from ..extensions import db
from ..models import Document, Task, User

CHUNK = 64 * 1024
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_STORAGE_NAME = re.compile(r"[0-9a-f]{32}")
_HEADER_LINE = re.compile(rb"[!-9;-~]+:[ \t]?.*")
_MAIL_HEADERS = frozenset({b"date", b"subject", b"to", b"message-id", b"mime-version",
                           b"received", b"return-path", b"cc", b"reply-to"})


@dataclass(frozen=True)
class DocKind:
    """An accepted kind of file: stored MIME type, file extensions, declared types."""

    name: str
    mime: str
    extensions: frozenset[str]
    declared: frozenset[str]


def _kind(name: str, mime: str, extensions: str, *declared: str) -> DocKind:
    return DocKind(name, mime, frozenset(extensions.split()), frozenset({mime, *declared}))


KINDS: dict[str, DocKind] = {k.name: k for k in (
    _kind("pdf", "application/pdf", ".pdf", "application/x-pdf"),
    _kind("png", "image/png", ".png"),
    _kind("jpeg", "image/jpeg", ".jpg .jpeg", "image/pjpeg"),
    _kind("gif", "image/gif", ".gif"),
    _kind("tiff", "image/tiff", ".tif .tiff"),
    _kind("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx"),
    _kind("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
          ".docx"),
    _kind("eml", "message/rfc822", ".eml"),
    _kind("csv", "text/csv", ".csv", "text/plain", "application/csv", "text/x-csv",
          "application/vnd.ms-excel", "text/comma-separated-values"),
    _kind("text", "text/plain", ".txt"),
)}
BY_EXTENSION = {ext: kind for kind in KINDS.values() for ext in kind.extensions}
ACCEPTED = "PDF, PNG, JPEG, GIF, TIFF, CSV, TXT, XLSX, DOCX or EML"


class DocumentRefused(ValueError):
    """An upload that cannot be stored; the message names the file and the reason."""


@dataclass(frozen=True)
class PreparedDocument:
    """An upload that passed every check, waiting in a temporary file to be attached."""

    filename: str
    kind: DocKind
    size: int
    sha256: str
    temp_path: Path


def upload_root() -> Path:
    return Path(current_app.config["UPLOAD_DIR"])


def display_name(raw: str | None) -> str:
    """The client's file name without any path or control characters (for display only)."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[-255:] or "document"


def sniff(path: Path) -> set[str]:
    """Kinds the bytes of ``path`` can be: by signature, ZIP parts, or as text/e-mail."""
    with path.open("rb") as handle:
        head = handle.read(CHUNK)
    if head.startswith(b"%PDF-"):
        return {"pdf"}
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return {"png"}
    if head.startswith(b"\xff\xd8\xff"):
        return {"jpeg"}
    if head.startswith((b"GIF87a", b"GIF89a")):
        return {"gif"}
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return {"tiff"}
    if head.startswith(b"PK\x03\x04"):
        return _sniff_zip(path)
    if _looks_like_text(path):
        return {"csv", "text", "eml"} if _looks_like_email(head) else {"csv", "text"}
    return set()


def _sniff_zip(path: Path) -> set[str]:
    """DOCX and XLSX are ZIP packages with a content-types part and their main part."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        return set()
    if "[Content_Types].xml" not in names:
        return set()
    if "word/document.xml" in names:
        return {"docx"}
    if "xl/workbook.xml" in names:
        return {"xlsx"}
    return set()


def _looks_like_text(path: Path) -> bool:
    """No NUL or other control bytes (tab, CR, LF, FF allowed) anywhere in the file."""
    allowed = {9, 10, 12, 13}
    bad = bytes(b for b in range(32) if b not in allowed) + b"\x7f"
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            if chunk.translate(None, bad) != chunk:
                return False
    return True


def _looks_like_email(head: bytes) -> bool:
    """RFC 822: a block of ``Name: value`` lines (folded lines allowed) with a From."""
    names: set[bytes] = set()
    for line in head.splitlines()[:200]:
        if not line.strip():
            break
        if line[:1] in (b" ", b"\t") and names:
            continue
        if not _HEADER_LINE.fullmatch(line):
            return False
        names.add(line.split(b":", 1)[0].lower())
    return b"from" in names and bool(names & _MAIL_HEADERS)


def prepare(stream: BinaryIO, filename: str | None, declared_type: str | None) -> PreparedDocument:
    """Copy an upload to a temporary file, checking size, type and name; or refuse it."""
    name = display_name(filename)
    extension = os.path.splitext(name)[1].lower()
    expected = BY_EXTENSION.get(extension)
    if expected is None:
        raise DocumentRefused(f"{name}: files of this type are not accepted; send {ACCEPTED}.")
    limit = current_app.config["MAX_DOCUMENT_BYTES"]
    temp_dir = upload_root() / "tmp"
    temp_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, temp_name = tempfile.mkstemp(dir=temp_dir)
    temp_path = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise DocumentRefused(
                        f"{name} is larger than the {limit / 1024 / 1024:g} MB limit."
                    )
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise DocumentRefused(f"{name} is empty.")
        found = sniff(temp_path)
        if expected.name not in found:
            actual = ", ".join(sorted(KINDS[k].mime for k in found)) or "not a type we accept"
            raise DocumentRefused(
                f"{name} is mislabelled: its name says {expected.mime} but its content is "
                f"{actual}."
            )
        declared = (declared_type or "").split(";")[0].strip().lower()
        if declared not in GENERIC_TYPES and declared not in expected.declared:
            raise DocumentRefused(
                f"{name} is mislabelled: it was sent as {declared} but its content is "
                f"{expected.mime}."
            )
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    return PreparedDocument(name, expected, size, digest.hexdigest(), temp_path)


def discard(prepared: PreparedDocument) -> None:
    prepared.temp_path.unlink(missing_ok=True)


def storage_path(storage_name: str) -> Path:
    if not _STORAGE_NAME.fullmatch(storage_name):
        raise ValueError("bad storage name")
    return upload_root() / "documents" / storage_name[:2] / storage_name


def attach(task: Task, prepared: PreparedDocument, *, actor: User | None,
           kind: str = "intake") -> Document:
    """Move a prepared upload into storage and record it on the task (audited).

    If the transaction later rolls back, the stored file is removed again.
    """
    storage_name = uuid.uuid4().hex
    target = storage_path(storage_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(prepared.temp_path, target)
    db.session.info.setdefault("intake_written_files", []).append(target)
    document = Document(
        task=task, client_id=task.client_id, kind=kind, filename=prepared.filename,
        content_type=prepared.kind.mime, size=prepared.size, sha256=prepared.sha256,
        storage_name=storage_name, uploaded_by_id=actor.id if actor is not None else None,
    )
    db.session.add(document)
    db.session.flush()
    record("document.upload", object_type="task", object_id=task.id, client_id=task.client_id,
           actor=actor, after={"document_id": document.id, "filename": document.filename,
                               "sha256": document.sha256, "size": document.size})
    return document


def send(document: Document, *, actor: User | None) -> Response:
    """The stored file as a download that browsers will not render or sniff (audited)."""
    record("document.download", object_type="task", object_id=document.task_id,
           client_id=document.client_id, actor=actor, after={"document_id": document.id})
    response = send_file(
        storage_path(document.storage_name), mimetype=document.content_type,
        as_attachment=True, download_name=document.filename, max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@event.listens_for(Session, "after_commit")
def _keep_written_files(session: Session) -> None:
    session.info.pop("intake_written_files", None)


@event.listens_for(Session, "after_soft_rollback")
def _remove_written_files(session: Session, previous_transaction) -> None:
    if previous_transaction.nested:
        return
    for path in session.info.pop("intake_written_files", []):
        Path(path).unlink(missing_ok=True)
