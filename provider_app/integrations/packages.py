"""Completed-work packages: the documents a task produces, and signed links to them.

Task types in ``OUTPUT_TASK_TYPES`` (COI, ENDT_ADMIN, ENDT_COV, LOSSRUN by default; a setting
rather than a TaskType column because it is a deployment choice) produce a document: the
specialist attaches it on the workspace (``Document.kind = "output"``, through the intake
document checks). The client downloads it from the portal like any document of the task,
and the ``task.completed`` webhook carries a link signed with ``itsdangerous`` that works
without signing in until it expires (``OUTPUT_LINK_DAYS``); every download is audited.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, BinaryIO

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from ..audit import record
from ..db_types import utcnow
from ..extensions import db
from ..intake import documents
from ..intake.schemas import iso
from ..models import Document, Task, TaskType, User
from ..vocab import Role, Status

SALT = "throughline-output-download"
ASSIGNEE_STATUSES = (Status.IN_PROGRESS, Status.REWORK)
LEAD_STATUSES = (Status.IN_PROGRESS, Status.REWORK, Status.SUBMITTED, Status.IN_QA)


class OutputRefused(ValueError):
    """An output upload that cannot be accepted, phrased for the specialist."""


class LinkInvalid(LookupError):
    """A download link that was tampered with or names nothing we have."""


class LinkExpired(LinkInvalid):
    """A genuine link whose time is up."""


def produces_output(task_type: TaskType) -> bool:
    return task_type.code in current_app.config["OUTPUT_TASK_TYPES"]


def outputs(task: Task) -> list[Document]:
    return list(db.session.scalars(
        select(Document).where(Document.task_id == task.id, Document.kind == "output")
        .order_by(Document.uploaded_at, Document.id)))


def output_missing(task: Task) -> bool:
    """True when the task's type produces a document and none is attached yet: the
    workspace's submit should refuse then (see docs/INTEGRATIONS.md)."""
    task_type = task.task_type or db.session.get(TaskType, task.task_type_id)
    return produces_output(task_type) and not outputs(task)


def attach_output(task: Task, stream: BinaryIO | None, filename: str | None,
                  content_type: str | None, *, actor: User) -> Document:
    """Store the specialist's output document on the task (checked like any upload)."""
    task_type = task.task_type or db.session.get(TaskType, task.task_type_id)
    if not produces_output(task_type):
        raise OutputRefused(f"{task_type.code} tasks do not produce a document.")
    status = Status(task.status)
    lead = actor.has_role(Role.TEAM_LEAD, Role.ADMIN)
    allowed = LEAD_STATUSES if lead else ASSIGNEE_STATUSES
    if status not in allowed or (not lead and task.assignee_id != actor.id):
        raise OutputRefused("Only the specialist working the task (or a lead) can attach its "
                            "output, while the task is being worked.")
    if stream is None or not filename:
        raise OutputRefused("Choose the file to attach.")
    try:
        prepared = documents.prepare(stream, filename, content_type)
    except documents.DocumentRefused as exc:
        raise OutputRefused(str(exc)) from None
    document = documents.attach(task, prepared, actor=actor, kind="output")
    record("package.output_added", object_type="task", object_id=task.id,
           client_id=task.client_id, actor=actor,
           after={"document_id": document.id, "filename": document.filename})
    return document


# --- signed links -----------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def max_age() -> timedelta:
    return timedelta(days=current_app.config["OUTPUT_LINK_DAYS"])


def signed_link(document: Document) -> dict[str, Any]:
    """``download_url`` and ``expires_at`` of a fresh link to an output document."""
    token = _serializer().dumps({"d": document.public_id, "c": document.client_id})
    path = current_app.url_map.bind("").build("integrations.signed_download",
                                              {"token": token})
    return {"download_url": current_app.config["PUBLIC_BASE_URL"] + path,
            "expires_at": iso(utcnow() + max_age())}


def document_for(token: str) -> Document:
    """The output document a link names; LinkExpired / LinkInvalid otherwise."""
    try:
        data = _serializer().loads(token, max_age=int(max_age().total_seconds()))
    except SignatureExpired:
        raise LinkExpired("This download link has expired.") from None
    except BadSignature:
        raise LinkInvalid("This download link is not valid.") from None
    document = db.session.scalar(select(Document).where(
        Document.public_id == str(data.get("d")), Document.client_id == data.get("c"),
        Document.kind == "output"))
    if document is None:
        raise LinkInvalid("This document is no longer available.")
    return document
