"""Client portal pages: tasks (list, submit, detail, answer, cancel), documents,
bulk CSV uploads and API tokens. Rules live in the intake services; views only
translate between forms and services, and every lookup is scoped to the caller."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from marshmallow import EXCLUDE, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from wtforms import SelectChoice

from provider_app.access import client_only, get_scoped_or_404, roles_required, scoped
from provider_app.accounts import issue_token, revoke_token
from provider_app.conversation import (
    ConversationError,
    answer_info,
    open_info_request,
    post_message,
)
from provider_app.extensions import db
from provider_app.intake import bulk, documents, service
from provider_app.intake.models import CsvImport
from provider_app.intake.queries import filter_tasks
from provider_app.intake.schemas import IntakeInvalid, TaskFilterSchema, TaskInput, flatten_errors
from provider_app.lifecycle import TransitionError
from provider_app.models import ApiToken, AuditEvent, Client, Document, Message, Task
from provider_app.vocab import CLOSED_STATUSES, Priority, Role, Status

from .forms import (
    AnswerForm,
    BulkUploadForm,
    CancelForm,
    ConfirmForm,
    DocumentsForm,
    MessageForm,
    TokenForm,
    split_cleaned,
    task_form_class,
)

bp = Blueprint("portal", __name__, template_folder="templates")
_FILTERS = TaskFilterSchema(unknown=EXCLUDE)
IMPORT_ACTIVE = ("queued", "validating", "importing")


def _client() -> Client:
    return current_user.client


@bp.route("/")
@client_only
def home():
    counts = dict(
        db.session.execute(
            scoped(select(Task.status, func.count()).group_by(Task.status), Task)
        ).all()
    )
    recent = db.session.scalars(
        scoped(
            select(Task)
            .options(joinedload(Task.task_type))
            .order_by(Task.received_at.desc())
            .limit(10),
            Task,
        )
    ).all()
    return render_template("portal/home.html", counts=counts, recent=recent)


# --- task list -----------------------------------------------------------------------


@bp.route("/tasks")
@client_only
def tasks():
    """The client's tasks with filters kept in the URL; bad filter values are reported."""
    raw = {k: v for k, v in request.args.items() if v.strip() and k != "page"}
    try:
        filters = _FILTERS.load(raw)
        filter_errors: dict[str, list[str]] = {}
    except ValidationError as exc:
        filter_errors = flatten_errors(exc.messages)
        filters = {k: v for k, v in exc.valid_data.items() if k not in filter_errors}
    page = max(request.args.get("page", 1, type=int), 1)
    stmt = filter_tasks(scoped(select(Task), Task), filters, tz=_client().timezone)
    stmt = stmt.order_by(Task.received_at.desc(), Task.id.desc())
    pagination = db.paginate(stmt.options(joinedload(Task.task_type)), page=page,
                             per_page=current_app.config["PAGE_SIZE"], error_out=False)
    return render_template(
        "portal/tasks.html", pagination=pagination, statuses=list(Status),
        priorities=list(Priority), task_types=service.active_task_types(), args=raw,
        filter_errors=filter_errors, filtered=bool(raw),
    )


# --- submitting a task ---------------------------------------------------------------


@bp.route("/tasks/new")
@client_only
def new_task():
    return render_template("portal/new_task_choose.html",
                           task_types=service.active_task_types())


def _prepare_attachments(uploads: list[Any]) -> tuple[list, list[str]]:
    """Check every upload before anything is created; returns (prepared, errors)."""
    prepared, errors = [], []
    for upload in uploads:
        if not upload or not upload.filename:
            continue
        try:
            prepared.append(documents.prepare(upload.stream, upload.filename, upload.mimetype))
        except documents.DocumentRefused as exc:
            errors.append(str(exc))
    if errors:
        for item in prepared:
            documents.discard(item)
        prepared = []
    return prepared, errors


@bp.route("/tasks/new/<code>", methods=["GET", "POST"])
@client_only
def new_task_form(code: str):
    task_type = service.find_task_type(code)
    if task_type is None:
        abort(404)
    form = task_form_class(task_type)()
    if form.validate_on_submit():
        prepared, problems = _prepare_attachments(form.attachments.data or [])
        if not problems:
            envelope, values = split_cleaned(form, task_type)
            data = TaskInput(task_type=task_type, priority=envelope["priority"],
                             external_ref=envelope.get("external_ref"),
                             state=envelope.get("state"), fields=values)
            task = service.create_task(_client(), data, actor=current_user, source="portal",
                                       attachments=prepared)
            flash("Task sent. We will keep you posted here.", "info")
            return redirect(url_for("portal.task_detail", public_id=task.public_id))
        form.attachments.errors = list(problems)
    status = 422 if request.method == "POST" else 200
    return render_template("portal/new_task.html", form=form, task_type=task_type), status


# --- one task ------------------------------------------------------------------------


def _timeline(task: Task) -> list[dict[str, Any]]:
    """Status changes (from the audit trail), messages, info requests and documents."""
    events: list[dict[str, Any]] = []
    for event in db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.object_type == "task", AuditEvent.object_id == task.id,
               AuditEvent.action == "task.transition")
        .order_by(AuditEvent.at, AuditEvent.id)
    ):
        events.append({"at": event.at, "kind": "status", "from": event.from_status,
                       "to": event.to_status, "text": event.reason})
    for message in db.session.scalars(
        select(Message).where(Message.task_id == task.id, Message.internal.is_(False))
        .options(joinedload(Message.author))
    ):
        events.append({"at": message.created_at, "kind": message.kind.value,
                       "text": message.body, "author": message.author,
                       "open": message.kind.value == "info_request"
                       and message.answered_at is None})
    for document in task.documents:
        events.append({"at": document.uploaded_at, "kind": "document", "document": document})
    events.sort(key=lambda e: e["at"])
    return events


def _task_for_client(public_id: str) -> Task:
    return get_scoped_or_404(Task, public_id,
                             options=[joinedload(Task.task_type), joinedload(Task.duplicate_of)])


@bp.route("/tasks/<public_id>")
@client_only
def task_detail(public_id: str):
    task = _task_for_client(public_id)
    return _render_detail(task)


def _render_detail(task: Task, status: int = 200, **forms: Any):
    pending = Status(task.status) == Status.PENDING_CLIENT
    return render_template(
        "portal/task_detail.html",
        task=task,
        task_type=task.task_type,
        timeline=_timeline(task),
        info_request=open_info_request(task) if pending else None,
        answer_form=forms.get("answer_form") or AnswerForm(),
        message_form=forms.get("message_form") or MessageForm(),
        documents_form=forms.get("documents_form") or DocumentsForm(),
        can_cancel=Status(task.status) not in CLOSED_STATUSES,
    ), status


@bp.route("/tasks/<public_id>/answer", methods=["POST"])
@client_only
def answer(public_id: str):
    """The client's answer to an open info request: work and the SLA clock resume."""
    task = _task_for_client(public_id)
    form = AnswerForm()
    if form.validate_on_submit():
        try:
            answer_info(task, form.body.data, current_user)
        except ConversationError as exc:
            form.body.errors = [str(exc)]
        else:
            flash("Thank you; the specialist has your answer and work has resumed.", "info")
            return redirect(url_for("portal.task_detail", public_id=task.public_id))
    return _render_detail(task, 422, answer_form=form)


@bp.route("/tasks/<public_id>/messages", methods=["POST"])
@client_only
def message(public_id: str):
    task = _task_for_client(public_id)
    form = MessageForm()
    if form.validate_on_submit():
        try:
            post_message(task, form.body.data, current_user)
        except ConversationError as exc:
            form.body.errors = [str(exc)]
        else:
            flash("Message sent.", "info")
            return redirect(url_for("portal.task_detail", public_id=task.public_id))
    return _render_detail(task, 422, message_form=form)


@bp.route("/tasks/<public_id>/documents", methods=["POST"])
@client_only
def add_documents(public_id: str):
    task = _task_for_client(public_id)
    form = DocumentsForm()
    if form.validate_on_submit():
        uploads = [f for f in form.files.data or [] if f and f.filename]
        prepared, problems = _prepare_attachments(uploads)
        if not uploads:
            problems = ["Choose at least one file."]
        if not problems:
            for item in prepared:
                documents.attach(task, item, actor=current_user)
            flash(f"{len(prepared)} document(s) added.", "info")
            return redirect(url_for("portal.task_detail", public_id=task.public_id))
        form.files.errors = problems
    return _render_detail(task, 422, documents_form=form)


@bp.route("/tasks/<public_id>/cancel", methods=["GET", "POST"])
@client_only
def cancel(public_id: str):
    """GET asks for confirmation; POST cancels an open task."""
    task = _task_for_client(public_id)
    form = CancelForm()
    if form.validate_on_submit():
        try:
            service.cancel_task(task, actor=current_user, reason=form.reason.data)
        except TransitionError:
            flash("This task is already closed; nothing was changed.", "error")
            return redirect(url_for("portal.task_detail", public_id=task.public_id))
        flash("Task cancelled.", "info")
        return redirect(url_for("portal.task_detail", public_id=task.public_id))
    status = 422 if request.method == "POST" else 200
    return render_template("portal/cancel_confirm.html", task=task, form=form), status


@bp.route("/documents/<public_id>")
@client_only
def download_document(public_id: str):
    return documents.send(get_scoped_or_404(Document, public_id), actor=current_user)


# --- bulk CSV ------------------------------------------------------------------------


def _scoped_import(job_id: str) -> CsvImport:
    imp = db.session.scalar(
        scoped(select(CsvImport).where(CsvImport.job_id == job_id), CsvImport)
        .options(joinedload(CsvImport.job))
    )
    if imp is None:
        abort(404)
    return imp


@bp.route("/imports")
@client_only
def imports():
    page = max(request.args.get("page", 1, type=int), 1)
    stmt = scoped(select(CsvImport), CsvImport).options(joinedload(CsvImport.job))
    pagination = db.paginate(stmt.order_by(CsvImport.created_at.desc(), CsvImport.id.desc()),
                             page=page, per_page=current_app.config["PAGE_SIZE"],
                             error_out=False)
    return render_template("portal/imports.html", pagination=pagination)


@bp.route("/imports/new", methods=["GET", "POST"])
@client_only
def new_import():
    form = BulkUploadForm()
    types = service.active_task_types()
    form.task_type.choices = [SelectChoice("", "— from the file's task_type column —")] + [
        SelectChoice(tt.code, f"{tt.code} · {tt.name}") for tt in types]
    previous = None
    if form.validate_on_submit():
        upload = form.file.data
        try:
            imp = bulk.start_import(_client(), upload.stream, upload.filename,
                                    task_type_code=form.task_type.data, actor=current_user)
        except bulk.DuplicateUpload as exc:
            previous = exc.previous
            form.file.errors = ["This file was uploaded before; it is not imported twice."]
        except IntakeInvalid as exc:
            for name, messages in exc.errors.items():
                getattr(form, name, form.file).errors = list(messages)
        else:
            return redirect(url_for("portal.import_detail", job_id=imp.job_id))
    status = 422 if request.method == "POST" else 200
    return render_template("portal/import_new.html", form=form, task_types=types,
                           previous=previous), status


@bp.route("/imports/<job_id>")
@client_only
def import_detail(job_id: str):
    imp = _scoped_import(job_id)
    view = bulk.job_view(imp.job, imp)
    return render_template("portal/import_detail.html", imp=imp, job=view,
                           active=view["status"] in IMPORT_ACTIVE, form=ConfirmForm())


@bp.route("/imports/<job_id>/import-valid", methods=["POST"])
@client_only
def import_accept(job_id: str):
    imp = _scoped_import(job_id)
    if ConfirmForm().validate_on_submit():
        try:
            bulk.accept_valid_rows(imp, actor=current_user)
            flash("Importing the valid rows now.", "info")
        except bulk.ImportStateError as exc:
            flash(str(exc), "error")
    return redirect(url_for("portal.import_detail", job_id=imp.job_id))


@bp.route("/imports/<job_id>/discard", methods=["POST"])
@client_only
def import_discard(job_id: str):
    imp = _scoped_import(job_id)
    if ConfirmForm().validate_on_submit():
        try:
            bulk.discard_import(imp, actor=current_user)
            flash("Upload discarded; nothing was imported. Fix the file and upload it again.",
                  "info")
        except bulk.ImportStateError as exc:
            flash(str(exc), "error")
    return redirect(url_for("portal.import_detail", job_id=imp.job_id))


@bp.route("/imports/<job_id>/errors.csv")
@client_only
def import_errors(job_id: str):
    return bulk.error_csv_response(_scoped_import(job_id))


# --- API tokens (client admins) ------------------------------------------------------


def _tokens() -> list[ApiToken]:
    return list(db.session.scalars(
        scoped(select(ApiToken), ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id)
    ))


@bp.route("/tokens", methods=["GET", "POST"])
@roles_required(Role.CLIENT_ADMIN)
def tokens():
    """List, create (shown once, never stored in plain) and revoke the client's tokens."""
    form = TokenForm()
    new_token = None
    if form.validate_on_submit():
        new_token, _token = issue_token(_client(), name=form.name.data.strip(),
                                        actor=current_user)
        form = TokenForm(formdata=None)
    status = 422 if request.method == "POST" and form.errors else 200
    response = render_template("portal/tokens.html", tokens=_tokens(), form=form,
                               new_token=new_token, revoke_form=ConfirmForm())
    return response, status, {"Cache-Control": "no-store"}


@bp.route("/tokens/<public_id>/revoke", methods=["POST"])
@roles_required(Role.CLIENT_ADMIN)
def revoke(public_id: str):
    token = get_scoped_or_404(ApiToken, public_id)
    if ConfirmForm().validate_on_submit() and token.revoked_at is None:
        revoke_token(token, actor=current_user)
        flash(f"Token {token.prefix}… revoked; requests using it now get 401.", "info")
    return redirect(url_for("portal.tokens"))
