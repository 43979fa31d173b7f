"""A client admin's export of all the client's data: JSON and document files, zipped by a job.

Clients own their data and may take it with them (or check what we hold). The
zip is built by an RQ job from ids, with progress in ``JobProgress`` so the page
shows it even after Redis forgets the job; it is written under a temporary name
and renamed, so a retried or killed job never leaves a half file behind. Only
the requesting client's admins can see or download it (anyone else: 404), and
each download is audited. Finished exports are deleted after EXPORT_KEEP_DAYS.
"""

from __future__ import annotations

import json
import os
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    send_file,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from werkzeug.utils import secure_filename

from provider_app.access import current_client_id, roles_required, scoped
from provider_app.audit import record
from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.intake.documents import storage_path
from provider_app.jobs import enqueue_after_commit
from provider_app.models import Client, Document, JobProgress, Message, Task
from provider_app.retention import delete_after_commit
from provider_app.vocab import Role

bp = Blueprint("data_export", __name__, url_prefix="/portal/export",
               template_folder="templates")

KIND = "client_export"
BUSY = ("queued", "running")
BATCH = 200
FORMAT_VERSION = 1


class ExportError(ValueError):
    """An export that cannot be started now, phrased for the client admin."""


class RequestExportForm(FlaskForm):
    """No fields: the form exists for its CSRF token."""


# --- services ---------------------------------------------------------------


def export_path(progress: JobProgress) -> Path:
    return Path(current_app.config["EXPORT_DIR"]) / f"{progress.id}.zip"


def request_export(client_id: int, actor) -> JobProgress:
    """Queue an export of everything the client has sent us (one at a time per client)."""
    busy = db.session.scalar(
        select(func.count()).select_from(JobProgress).where(
            JobProgress.client_id == client_id, JobProgress.kind == KIND,
            JobProgress.status.in_(BUSY),
        )
    )
    if busy:
        raise ExportError("An export is already being prepared; it appears below when ready.")
    progress = JobProgress(client_id=client_id, kind=KIND, status="queued",
                           created_by_id=actor.id if actor is not None else None)
    db.session.add(progress)
    db.session.flush()
    record("export.request", object_type="client", object_id=client_id, client_id=client_id,
           actor=actor, after={"job": progress.id})
    enqueue_after_commit("client_portal.data_export.build_export", progress.id, queue="low",
                         job_id=f"export-{progress.id}", timeout=3600)
    return progress


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _task_json(task: Task, messages: list[Message], documents: list[dict]) -> dict[str, Any]:
    return {
        "id": task.public_id,
        "task_type": task.task_type.code,
        "priority": str(task.priority),
        "status": str(task.status),
        "external_ref": task.external_ref,
        "state": task.state,
        "fields": task.fields,
        "source": task.source,
        "received_at": _iso(task.received_at),
        "due_at": _iso(task.due_at),
        "submitted_at": _iso(task.submitted_at),
        "completed_at": _iso(task.completed_at),
        "sla_state": str(task.sla_state),
        "qa_outcome": task.qa_outcome,
        "escalation_level": task.escalation_level,
        "purged_at": _iso(task.purged_at),
        # Internal notes are the provider's own and are never shown to the client.
        "messages": [
            {"kind": str(m.kind), "body": m.body, "created_at": _iso(m.created_at),
             "answered_at": _iso(m.answered_at)}
            for m in messages
        ],
        "documents": documents,
    }


def _checkpoint(progress: JobProgress, **values: Any) -> None:
    """Commit progress now so the page shows it while the job runs.

    The export only reads client data, so committing part-way cannot leave
    anything half-changed.
    """
    for name, value in values.items():
        setattr(progress, name, value)
    db.session.commit()


def _write_zip(progress: JobProgress, target: Path) -> dict[str, int]:
    """Documents go straight into the zip; tasks.json is spooled to a side file first
    (a zip takes one open member at a time) and added at the end."""
    client = db.session.get(Client, progress.client_id)
    counts = {"tasks": 0, "messages": 0, "documents": 0, "missing_files": 0}
    spool = target.with_suffix(".tasks.json")
    try:
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            with spool.open("w", encoding="utf-8") as out:
                out.write("[\n")
                for tasks, messages, documents in _batches(client.id, zf, counts):
                    for task in tasks:
                        if counts["tasks"]:
                            out.write(",\n")
                        task_messages = messages.get(task.id, [])
                        json.dump(_task_json(task, task_messages, documents.get(task.id, [])),
                                  out)
                        counts["tasks"] += 1
                        counts["messages"] += len(task_messages)
                    _checkpoint(progress, done=counts["tasks"])
                out.write("\n]\n")
            zf.write(spool, "tasks.json")
            zf.writestr("manifest.json", json.dumps({
                "format_version": FORMAT_VERSION,
                "client": {"code": client.code, "name": client.name},
                "generated_at": utcnow().isoformat(),
                "counts": counts,
                "files": {"tasks.json": "every task with its fields, messages and documents",
                          "documents/": "the document files, by task id"},
            }, indent=2))
    finally:
        spool.unlink(missing_ok=True)
    return counts


def _batches(client_id: int, zf: zipfile.ZipFile, counts: dict[str, int]):
    """The client's tasks in id order, BATCH at a time, with their messages and documents
    (three queries per batch, whatever its size); document files are added to ``zf``."""
    last_id = 0
    while True:
        tasks = db.session.scalars(
            select(Task).options(joinedload(Task.task_type))
            .where(Task.client_id == client_id, Task.id > last_id)
            .order_by(Task.id).limit(BATCH)
        ).all()
        if not tasks:
            return
        ids = [t.id for t in tasks]
        messages: dict[int, list[Message]] = {}
        for m in db.session.scalars(
            select(Message).where(Message.task_id.in_(ids), Message.internal.is_(False))
            .order_by(Message.created_at, Message.id)
        ):
            messages.setdefault(m.task_id, []).append(m)
        public_ids = {t.id: t.public_id for t in tasks}
        documents: dict[int, list[dict]] = {}
        for d in db.session.scalars(
            select(Document).where(Document.task_id.in_(ids))
            .order_by(Document.uploaded_at, Document.id)
        ):
            documents.setdefault(d.task_id, []).append(
                _add_document(zf, d, public_ids[d.task_id], counts)
            )
        yield tasks, messages, documents
        last_id = ids[-1]


def _add_document(zf: zipfile.ZipFile, document: Document, task_public_id: str,
                  counts: dict[str, int]) -> dict:
    name = secure_filename(document.filename) or "document"
    arcname = f"documents/{task_public_id}/{document.public_id}-{name}"
    path = storage_path(document.storage_name)
    present = path.is_file()
    if present:
        zf.write(path, arcname)
        counts["documents"] += 1
    else:
        counts["missing_files"] += 1
    return {"id": document.public_id, "filename": document.filename,
            "content_type": document.content_type, "size": document.size,
            "sha256": document.sha256, "uploaded_at": _iso(document.uploaded_at),
            "file": arcname if present else None}


def build_export(progress_id: str) -> dict | None:
    """The job: build the zip for ``progress_id``. Running it twice is harmless."""
    progress = db.session.get(JobProgress, progress_id)
    if progress is None or progress.kind != KIND or progress.status == "expired":
        return None
    target = export_path(progress)
    if progress.status == "done" and target.is_file():
        return progress.result
    total = db.session.scalar(
        select(func.count()).select_from(Task).where(Task.client_id == progress.client_id)
    )
    _checkpoint(progress, status="running", total=total, done=0, error=None)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.part")
    try:
        counts = _write_zip(progress, partial)
        os.replace(partial, target)
    except Exception:
        db.session.rollback()
        partial.unlink(missing_ok=True)
        _checkpoint(progress, status="failed",
                    error="The export could not be built; it is retried automatically.")
        raise
    result = {**counts, "bytes": target.stat().st_size}
    progress.status = "done"
    progress.result = result
    record("export.ready", object_type="client", object_id=progress.client_id,
           client_id=progress.client_id, after={"job": progress.id, **counts})
    return result


def expire_exports() -> int:
    """Daily job: delete finished exports older than EXPORT_KEEP_DAYS (they hold client data)."""
    cutoff = utcnow() - timedelta(days=current_app.config["EXPORT_KEEP_DAYS"])
    old = db.session.scalars(
        select(JobProgress).where(JobProgress.kind == KIND, JobProgress.status == "done",
                                  JobProgress.created_at < cutoff)
    ).all()
    for progress in old:
        progress.status = "expired"
        record("export.expired", object_type="client", object_id=progress.client_id,
               client_id=progress.client_id, after={"job": progress.id})
    delete_after_commit(export_path(p) for p in old)
    return len(old)


# --- pages ------------------------------------------------------------------


def _exports() -> list[JobProgress]:
    return db.session.scalars(
        scoped(select(JobProgress).where(JobProgress.kind == KIND), JobProgress)
        .order_by(JobProgress.created_at.desc()).limit(20)
    ).all()


def _render_index(form: RequestExportForm, status: int = 200):
    exports = _exports()
    response = current_app.make_response(
        (render_template("export/index.html", exports=exports, form=form), status)
    )
    if any(e.status in BUSY for e in exports):
        response.headers["Refresh"] = "5"  # progress without any script
    return response


@bp.route("/")
@roles_required(Role.CLIENT_ADMIN)
def index():
    return _render_index(RequestExportForm())


@bp.route("/", methods=["POST"])
@roles_required(Role.CLIENT_ADMIN)
def create():
    form = RequestExportForm()
    if not form.validate_on_submit():
        return _render_index(form, 400)
    try:
        request_export(current_client_id(), current_user)
    except ExportError as exc:
        flash(str(exc), "error")
        return _render_index(form, 409)
    flash("Your export is being prepared; this page updates until it is ready.", "info")
    return redirect(url_for("data_export.index"), 303)


@bp.route("/<job_id>/download")
@roles_required(Role.CLIENT_ADMIN)
def download(job_id: str):
    progress = db.session.scalar(
        scoped(select(JobProgress).where(JobProgress.id == job_id, JobProgress.kind == KIND),
               JobProgress)
    )
    if progress is None or progress.status != "done":
        abort(404)
    path = export_path(progress)
    if not path.is_file():
        abort(404)
    record("export.download", object_type="client", object_id=progress.client_id,
           client_id=progress.client_id, after={"job": progress.id})
    client = db.session.get(Client, progress.client_id)
    return send_file(
        path, mimetype="application/zip", as_attachment=True, max_age=0,
        download_name=f"{client.code.lower()}-data-{progress.created_at:%Y%m%d}.zip",
    )
