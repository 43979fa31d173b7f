"""JSON API under /api/v1 for clients' systems (bearer token) and portal scripts.

Views stay thin: they parse the request, call the intake services and answer in
the shapes of ``provider_app.intake.schemas`` (which the OpenAPI document is
generated from). Every route is scoped to the caller's client; a foreign id is 404.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, request, url_for
from flask_login import current_user
from marshmallow import EXCLUDE, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from provider_app.access import api_route, current_client_id, get_scoped_or_404, public, scoped
from provider_app.audit import actor_id_of
from provider_app.conversation import ConversationError, answer_info, post_message
from provider_app.errors import json_error
from provider_app.extensions import csrf, db
from provider_app.intake import bulk, documents, idempotency, service
from provider_app.intake.fields import specs_from
from provider_app.intake.insert import NewTask
from provider_app.intake.models import CsvImport
from provider_app.intake.queries import filter_tasks
from provider_app.intake.schemas import (
    BulkUploadSchema,
    CancelInputSchema,
    IntakeInvalid,
    JobAcceptedSchema,
    JobSchema,
    MessageInputSchema,
    MessageResultSchema,
    TaskListQuerySchema,
    TaskPageSchema,
    TaskSchema,
    flatten_errors,
    load_task,
    task_json,
)
from provider_app.models import Client, Document, JobProgress, Task
from provider_app.vocab import Status

from .openapi import build_spec, operation

bp = Blueprint("api", __name__)
csrf.exempt(bp)  # bearer-token callers; session callers must send X-CSRFToken (api_auth)
# Rate limit: per credential, in api_auth.authenticate_api (every api_route).

_QUERY = TaskListQuerySchema(unknown=EXCLUDE)
_MESSAGE = MessageInputSchema()
_CANCEL = CancelInputSchema()
_JOB = JobSchema()


def _actor():
    """The signed-in client user, or None for a token (audit shows no person)."""
    return None if actor_id_of(None) is None else current_user


def _task_options():
    return [joinedload(Task.task_type), joinedload(Task.lot), joinedload(Task.duplicate_of),
            selectinload(Task.documents)]


def _json_body() -> object:
    payload = request.get_json(silent=True)
    if payload is None:
        raise IntakeInvalid({"_body": ["Send a JSON object with Content-Type: "
                                       "application/json."]}, "The body is not JSON.")
    return payload


@bp.errorhandler(IntakeInvalid)
def _invalid(exc: IntakeInvalid):
    return json_error(422, str(exc), exc.errors)


@bp.errorhandler(idempotency.IdempotencyConflict)
def _conflict(exc: idempotency.IdempotencyConflict):
    return json_error(409, str(exc))


@bp.errorhandler(documents.DocumentRefused)
def _refused(exc: documents.DocumentRefused):
    return json_error(422, "The file was refused.", {"file": [str(exc)]})


@bp.route("/task-types", methods=["GET"])
@api_route()
@operation(summary="The task types you can send, with their intake fields",
           tag="catalogue")
def task_types():
    return jsonify(items=[
        {"code": tt.code, "name": tt.name,
         "fields": {s.name: {**s.json_schema(), "required": s.required}
                    for s in specs_from(tt.intake_schema)}}
        for tt in service.active_task_types()
    ])


@bp.route("/tasks", methods=["POST"])
@api_route()
@operation(summary="Send one task", tag="tasks", body="TaskInput", idempotent=True,
           responses={201: TaskSchema, 200: TaskSchema, 409: None, 422: None})
def create_task():
    try:
        key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    except idempotency.BadIdempotencyKey as exc:
        raise IntakeInvalid({"headers.Idempotency-Key": [str(exc)]}) from None
    payload = _json_body()
    client_id = current_client_id()

    def create(idempotency: tuple[str, str] | None) -> NewTask:
        lookup = service.TypeLookup(client_id)
        data = load_task(payload, lookup)
        return service.take_task(client_id, data, actor=_actor(), source="api",
                                 idempotency=idempotency, lookup=lookup)

    task, created = idempotency.create_once(client_id, key, payload, create)
    response = jsonify(task_json(task))
    response.status_code = 201 if created else 200
    response.headers["Location"] = url_for("api.get_task", public_id=task.public_id)
    return response


@bp.route("/tasks", methods=["GET"])
@api_route()
@operation(summary="Your tasks, newest first, filtered and paginated", tag="tasks",
           query=TaskListQuerySchema, responses={200: TaskPageSchema, 422: None})
def list_tasks():
    try:
        args = _QUERY.load(request.args)
    except ValidationError as exc:
        raise IntakeInvalid(flatten_errors(exc.messages), "Invalid query parameters.") from None
    per_page = args.get("per_page") or current_app.config["PAGE_SIZE"]
    stmt = filter_tasks(scoped(select(Task), Task), args, tz="UTC")
    stmt = stmt.order_by(Task.received_at.desc(), Task.id.desc()).options(*_task_options())
    pagination = db.paginate(stmt, page=args["page"], per_page=per_page, error_out=False)
    return jsonify(items=[task_json(t) for t in pagination.items], page=args["page"],
                   per_page=per_page, total=pagination.total, pages=pagination.pages)


@bp.route("/tasks/<public_id>", methods=["GET"])
@api_route()
@operation(summary="One task", tag="tasks", responses={200: TaskSchema, 404: None})
def get_task(public_id: str):
    return jsonify(task_json(get_scoped_or_404(Task, public_id, options=_task_options())))


@bp.route("/tasks/<public_id>/cancel", methods=["POST"])
@api_route()
@operation(summary="Cancel an open task", tag="tasks", body=CancelInputSchema,
           responses={200: TaskSchema, 404: None, 409: None, 422: None})
def cancel_task(public_id: str):
    task = get_scoped_or_404(Task, public_id, options=_task_options())
    raw = request.get_json(silent=True) or {}
    try:
        args = _CANCEL.load(raw if isinstance(raw, dict) else {})
    except ValidationError as exc:
        raise IntakeInvalid(flatten_errors(exc.messages)) from None
    service.cancel_task(task, actor=_actor(), reason=args.get("reason"))
    return jsonify(task_json(task))


@bp.route("/tasks/<public_id>/messages", methods=["POST"])
@api_route()
@operation(summary="Write to the provider about a task; while the task waits for your "
           "information (pending_client) the message is your answer and work resumes",
           tag="tasks", body=MessageInputSchema,
           responses={201: MessageResultSchema, 404: None, 422: None})
def post_task_message(public_id: str):
    task = get_scoped_or_404(Task, public_id, options=_task_options())
    try:
        args = _MESSAGE.load(_json_body())
    except ValidationError as exc:
        raise IntakeInvalid(flatten_errors(exc.messages)) from None
    try:
        if Status(task.status) == Status.PENDING_CLIENT:
            message = answer_info(task, args["body"], _actor())
        else:
            message = post_message(task, args["body"], _actor())
    except ConversationError as exc:
        raise IntakeInvalid({"body": [str(exc)]}) from None
    body = MessageResultSchema().dump({"message": message, "task": task})
    return jsonify(body), 201


@bp.route("/tasks/<public_id>/documents", methods=["POST"])
@api_route()
@operation(summary="Attach documents (multipart field `file`, repeatable)", tag="documents",
           multipart={"file": "binary"}, responses={201: TaskSchema, 404: None, 422: None})
def upload_documents(public_id: str):
    task = get_scoped_or_404(Task, public_id, options=_task_options())
    files = request.files.getlist("file")
    if not files:
        raise IntakeInvalid({"file": ["Attach at least one file (multipart field 'file')."]})
    prepared = []
    try:
        for upload in files:
            prepared.append(documents.prepare(upload.stream, upload.filename, upload.mimetype))
    except documents.DocumentRefused:
        for item in prepared:
            documents.discard(item)
        raise
    for item in prepared:
        documents.attach(task, item, actor=_actor())
    db.session.refresh(task)
    return jsonify(task_json(task)), 201


@bp.route("/documents/<public_id>", methods=["GET"])
@api_route()
@operation(summary="Download a document (always as an attachment)", tag="documents",
           responses={200: "binary", 404: None})
def download_document(public_id: str):
    return documents.send(get_scoped_or_404(Document, public_id), actor=_actor())


@bp.route("/tasks/bulk", methods=["POST"])
@api_route()
@operation(summary="Upload a CSV of tasks; validated and imported by a background job",
           tag="bulk", multipart=BulkUploadSchema,
           responses={202: JobAcceptedSchema, 409: None, 422: None})
def bulk_upload():
    upload = request.files.get("file")
    client = db.session.get(Client, current_client_id())
    try:
        imp = bulk.start_import(
            client, upload.stream if upload else None, upload.filename if upload else None,
            task_type_code=request.form.get("task_type"),
            on_invalid=request.form.get("on_invalid", "ask"), actor=_actor(),
        )
    except bulk.DuplicateUpload as exc:
        job_id = exc.previous.job_id
        return jsonify(error="This file was already uploaded; see the earlier job.",
                       job_id=job_id, status_url=url_for("api.get_job", job_id=job_id)), 409
    status_url = url_for("api.get_job", job_id=imp.job_id)
    response = jsonify(job_id=imp.job_id, status="queued", status_url=status_url)
    response.status_code = 202
    response.headers["Location"] = status_url
    return response


def _scoped_job(job_id: str) -> tuple[JobProgress, CsvImport | None]:
    job = db.session.scalar(scoped(select(JobProgress).where(JobProgress.id == job_id),
                                   JobProgress))
    if job is None:
        abort(404)
    imp = db.session.scalar(select(CsvImport).where(CsvImport.job_id == job.id))
    return job, imp


def job_json(job: JobProgress, imp: CsvImport | None) -> dict:
    view = bulk.job_view(job, imp)
    view["errors_csv"] = (url_for("api.job_errors_csv", job_id=job.id)
                          if imp is not None and view.get("has_error_file") else None)
    return _JOB.dump(view)


@bp.route("/jobs/<job_id>", methods=["GET"])
@api_route()
@operation(summary="Progress and per-row errors of a bulk import", tag="bulk",
           responses={200: JobSchema, 404: None})
def get_job(job_id: str):
    return jsonify(job_json(*_scoped_job(job_id)))


@bp.route("/jobs/<job_id>/errors.csv", methods=["GET"])
@api_route()
@operation(summary="The rejected rows with their errors, as CSV (fix and upload again)",
           tag="bulk", responses={200: "csv", 404: None})
def job_errors_csv(job_id: str):
    _job, imp = _scoped_job(job_id)
    return bulk.error_csv_response(imp)


@bp.route("/jobs/<job_id>/import-valid", methods=["POST"])
@api_route()
@operation(summary="Import the valid rows of an upload waiting for a decision", tag="bulk",
           responses={202: JobAcceptedSchema, 404: None, 409: None})
def import_valid(job_id: str):
    job, imp = _scoped_job(job_id)
    if imp is None:
        abort(404)
    try:
        bulk.accept_valid_rows(imp, actor=_actor())
    except bulk.ImportStateError as exc:
        return json_error(409, str(exc))
    status_url = url_for("api.get_job", job_id=job.id)
    return jsonify(job_id=job.id, status=job.status, status_url=status_url), 202


@bp.route("/openapi.json", methods=["GET"])
@public
@operation(summary="This document", tag="meta", responses={200: "json"})
def openapi_document():
    return jsonify(build_spec(current_app))
