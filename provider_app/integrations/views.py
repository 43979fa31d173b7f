"""Provider pages of the integrations area, the output upload and the signed download.

* ``/intake/triage``: inbound e-mail waiting for a lead (create the task, reject, mark as a
  duplicate), scoped to the clients the lead may see;
* ``/integrations/clients/<code>``: a client's intake address, allowed senders, policies on
  file and automation rules (with their hit counts);
* ``POST /integrations/tasks/<id>/output``: the specialist attaches the completed document
  (``_output_upload.html`` is the partial the workspace includes);
* ``/dl/<token>``: a signed, expiring download link from a webhook (public, audited).

Views translate between forms and the services; every lookup is scoped to the caller.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload

from ..access import get_scoped_or_404, public, roles_required, scoped, visible_client_ids
from ..audit import record
from ..extensions import db, limiter
from ..intake import documents, service
from ..intake.fields import ABSENT, specs_from
from ..intake.schemas import TaskInput
from ..models import Client, Task
from ..templating import NAV_COUNTS
from ..vocab import Role
from . import (
    addresses,
    configuration,
    email_intake,
    hooks,  # noqa: F401 - registers the commit hooks (automation, webhooks)
    mail,
    packages,
    policies,
    storage,
)
from .forms import (
    ConfirmForm,
    DuplicateForm,
    MoveForm,
    OutputForm,
    PolicyUploadForm,
    RejectForm,
    RuleForm,
    SenderForm,
    TriageTypeForm,
    choices,
    subject_choices,
    triage_form_class,
)
from .models import AutomationRule, InboundEmail, IntakeSender, PolicyOnFile

bp = Blueprint("integrations", __name__)
LEADS = (Role.TEAM_LEAD, Role.ADMIN)
WORKERS = (Role.SPECIALIST, Role.TEAM_LEAD, Role.ADMIN)
OPEN = email_intake.OPEN_ITEM_STATUSES


def open_triage_count() -> int:
    return db.session.scalar(scoped(
        select(func.count()).select_from(InboundEmail).where(InboundEmail.status.in_(OPEN)),
        InboundEmail))


@bp.record_once
def _register_nav_count(state) -> None:
    NAV_COUNTS["integrations.triage"] = open_triage_count


def _visible_clients() -> list[Client]:
    ids = visible_client_ids()
    stmt = select(Client).order_by(Client.code)
    if ids is not None:
        stmt = stmt.where(Client.id.in_(ids))
    return list(db.session.scalars(stmt))


def _client_or_404(code: str) -> Client:
    client = db.session.scalar(select(Client).where(Client.code == code.upper()))
    ids = visible_client_ids()
    if client is None or (ids is not None and client.id not in ids):
        abort(404)
    return client


# --- triage queue -----------------------------------------------------------------------------


@bp.route("/intake/triage")
@roles_required(*LEADS)
def triage():
    status = request.args.get("status", "open")
    code = request.args.get("client", "")
    stmt = scoped(select(InboundEmail), InboundEmail).where(InboundEmail.kind == "request")
    if status == "open":
        stmt = stmt.where(InboundEmail.status.in_(OPEN))
    elif status in ("created", "rejected", "duplicate"):
        stmt = stmt.where(InboundEmail.status == status)
    elif status != "all":
        abort(400)
    if code:
        stmt = stmt.join(Client, Client.id == InboundEmail.client_id).where(
            Client.code == code.upper())
    pagination = db.paginate(
        stmt.options(joinedload(InboundEmail.client), joinedload(InboundEmail.proposed_task_type))
        .order_by(InboundEmail.received_at.desc(), InboundEmail.id.desc()),
        page=max(request.args.get("page", 1, type=int), 1),
        per_page=current_app.config["PAGE_SIZE"], error_out=False)
    return render_template("integrations/triage.html", pagination=pagination, status=status,
                           client_code=code, clients=_visible_clients())


def _item(public_id: str) -> InboundEmail:
    return get_scoped_or_404(InboundEmail, public_id, options=[
        joinedload(InboundEmail.client), joinedload(InboundEmail.task),
        joinedload(InboundEmail.proposed_task_type)])


def _prefill(item: InboundEmail, form, task_type) -> None:
    """Fill the intake form with what was read from the e-mail (text values)."""
    proposed = item.proposed or {}
    values = {**{k: v for k, v in proposed.items() if k != "fields"},
              **(proposed.get("fields") or {})}
    if item.proposed_task_type_id != task_type.id:
        values.update(mail.fields_for_type(mail.extract_pairs(f"{item.subject}\n{item.body}"),
                                           task_type.intake_schema))
    for name, value in values.items():
        field = getattr(form, name, None)
        if field is not None and not isinstance(value, dict):
            if field.type == "SelectMultipleField":
                value = [v.strip() for v in str(value).split(";") if v.strip()]
            elif field.type == "BooleanField":
                value = str(value).strip().lower() in ("yes", "true", "y", "1", "on")
            field.data = value


@bp.route("/intake/triage/<public_id>", methods=["GET", "POST"])
@roles_required(*LEADS)
def triage_item(public_id: str):
    """Show the e-mail; the lead picks the task type, checks the fields, creates the task."""
    item = _item(public_id)
    types = service.active_task_types()
    chooser = TriageTypeForm(request.args)
    chooser.type.choices = choices([("", "— choose —")] + [(t.code, f"{t.code} · {t.name}")
                                                            for t in types])
    code = request.values.get("type") or (
        item.proposed_task_type.code if item.proposed_task_type else "")
    task_type = service.find_task_type(code) if code else None
    chooser.type.data = task_type.code if task_type else ""
    form = triage_form_class(task_type)() if task_type else None
    status = 200
    if form is not None and request.method == "GET":
        _prefill(item, form, task_type)
    elif form is not None and form.validate_on_submit():
        values = {k: v for k, v in form.cleaned.items() if v is not ABSENT}
        names = {s.name for s in specs_from(task_type.intake_schema)}
        data = TaskInput(task_type=task_type, priority=values.get("priority", "normal"),
                         external_ref=values.get("external_ref"), state=values.get("state"),
                         fields={k: v for k, v in values.items() if k in names})
        try:
            task = email_intake.create_from_item(item, data, actor=current_user)
        except email_intake.TriageError as exc:
            flash(str(exc), "error")
            return redirect(url_for(".triage_item", public_id=item.public_id))
        flash(f"Task {addresses.task_token(task)} created for {item.client.code}.", "info")
        return redirect(url_for(".triage"))
    elif request.method == "POST":
        status = 422
    return render_template(
        "integrations/triage_item.html", item=item, chooser=chooser, form=form,
        task_type=task_type, reject_form=RejectForm(), duplicate_form=DuplicateForm(),
        replies=_replies(item), open=item.status in OPEN), status


def _replies(item: InboundEmail) -> list[InboundEmail]:
    return list(db.session.scalars(select(InboundEmail).where(
        InboundEmail.parent_id == item.id).order_by(InboundEmail.received_at)))


@bp.route("/intake/triage/<public_id>/reject", methods=["POST"])
@roles_required(*LEADS)
def triage_reject(public_id: str):
    item = _item(public_id)
    form = RejectForm()
    if form.validate_on_submit():
        try:
            email_intake.reject(item, form.note.data, current_user)
        except email_intake.TriageError as exc:
            flash(str(exc), "error")
        else:
            flash("E-mail rejected; no task was created.", "info")
            return redirect(url_for(".triage"))
    else:
        flash("Say why the e-mail is rejected.", "error")
    return redirect(url_for(".triage_item", public_id=item.public_id))


@bp.route("/intake/triage/<public_id>/duplicate", methods=["POST"])
@roles_required(*LEADS)
def triage_duplicate(public_id: str):
    item = _item(public_id)
    form = DuplicateForm()
    if form.validate_on_submit():
        wanted = form.task.data.strip()
        target = db.session.scalar(scoped(select(Task), Task).where(
            Task.client_id == item.client_id,
            or_(Task.public_id == wanted.lower(), Task.external_ref == wanted))
            .order_by(Task.received_at.desc()).limit(1))
        if target is None:
            flash(f"No task {wanted} of {item.client.code} was found.", "error")
        else:
            try:
                email_intake.mark_duplicate(item, target, current_user)
            except email_intake.TriageError as exc:
                flash(str(exc), "error")
            else:
                flash("Marked as a duplicate; no task was created.", "info")
                return redirect(url_for(".triage"))
    return redirect(url_for(".triage_item", public_id=item.public_id))


@bp.route("/intake/triage/<public_id>/raw")
@roles_required(*LEADS)
def triage_raw(public_id: str):
    """The message as received, as a download (never rendered)."""
    item = _item(public_id)
    if not item.raw_storage:
        abort(404)
    record("email.raw_download", object_type="inbound_email", object_id=item.id,
           client_id=item.client_id, actor=current_user)
    response = send_file(storage.inbound_path(item.raw_storage), mimetype="message/rfc822",
                         as_attachment=True, download_name=f"{item.public_id}.eml", max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- client settings: senders, policies, rules ----------------------------------------------------


@bp.route("/integrations/clients")
@roles_required(*LEADS)
def clients():
    visible = _visible_clients()
    ids = [c.id for c in visible]

    def counts(model, *where) -> dict[int, int]:
        if not ids:
            return {}
        return dict(db.session.execute(
            select(model.client_id, func.count()).where(model.client_id.in_(ids), *where)
            .group_by(model.client_id)).all())

    return render_template(
        "integrations/clients.html", clients=visible, address=addresses.intake_address,
        rules=counts(AutomationRule), senders=counts(IntakeSender),
        policies=counts(PolicyOnFile),
        triage=counts(InboundEmail, InboundEmail.status.in_(OPEN)))


def _render_client(client: Client, status: int = 200, **forms):
    rules = configuration.client_rules(client.id)
    senders = list(db.session.scalars(select(IntakeSender).where(
        IntakeSender.client_id == client.id).order_by(IntakeSender.pattern)))
    return render_template(
        "integrations/client.html", client=client, address=addresses.intake_address(client),
        rules=rules, senders=senders, policy_count=policies.policy_count(client.id),
        sender_form=forms.get("sender_form") or SenderForm(),
        policy_form=forms.get("policy_form") or PolicyUploadForm(),
        confirm=ConfirmForm(), move=MoveForm()), status


@bp.route("/integrations/clients/<code>")
@roles_required(*LEADS)
def client(code: str):
    return _render_client(_client_or_404(code))


@bp.route("/integrations/clients/<code>/senders", methods=["POST"])
@roles_required(*LEADS)
def add_sender(code: str):
    client = _client_or_404(code)
    form = SenderForm()
    if form.validate_on_submit():
        try:
            sender = configuration.add_sender(client, form.pattern.data, current_user)
        except configuration.ConfigError as exc:
            form.pattern.errors = exc.errors["pattern"]
        else:
            flash(f"{sender.pattern} may now send {client.code}'s work by e-mail.", "info")
            return redirect(url_for(".client", code=client.code))
    return _render_client(client, 422, sender_form=form)


@bp.route("/integrations/senders/<public_id>/delete", methods=["POST"])
@roles_required(*LEADS)
def remove_sender(public_id: str):
    sender = get_scoped_or_404(IntakeSender, public_id)
    client = db.session.get(Client, sender.client_id)
    if ConfirmForm().validate_on_submit():
        configuration.remove_sender(sender, current_user)
        flash("Sender removed.", "info")
    return redirect(url_for(".client", code=client.code))


@bp.route("/integrations/clients/<code>/policies", methods=["POST"])
@roles_required(*LEADS)
def upload_policies(code: str):
    client = _client_or_404(code)
    form = PolicyUploadForm()
    if form.validate_on_submit():
        try:
            text = form.file.data.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            form.file.errors = ["The file is not UTF-8 text; save it as \"CSV UTF-8\"."]
        else:
            result = policies.import_policies(client, text, replace=form.replace.data,
                                              actor=current_user)
            if not result.errors:
                flash(f"Policies on file: {result.added} added, {result.updated} updated, "
                      f"{result.removed} removed.", "info")
                return redirect(url_for(".client", code=client.code))
            form.file.errors = result.errors[:20]
    return _render_client(client, 422, policy_form=form)


def _rule_form(rule: AutomationRule | None) -> RuleForm:
    if request.method == "POST" or rule is None:
        form = RuleForm()
    else:
        form = RuleForm(data={
            "name": rule.name, "match_all": "all" if rule.match_all else "any",
            "enabled": rule.enabled, "stop": rule.stop,
            "conditions": rule.conditions, "actions": rule.actions})
    form.pad()
    form.set_subjects(subject_choices(service.active_task_types()))
    return form


def _edit_rule(client: Client, rule: AutomationRule | None):
    form = _rule_form(rule)
    if form.validate_on_submit():
        conditions, actions = form.definitions()
        try:
            rule = configuration.save_rule(
                client, rule, name=form.name.data, match_all=form.match_all.data == "all",
                stop=form.stop.data, enabled=form.enabled.data, conditions=conditions,
                actions=actions, actor=current_user)
        except configuration.ConfigError as exc:
            _show_errors(form, exc.errors, conditions, actions)
        else:
            flash(f"Rule “{rule.name}” saved.", "info")
            return redirect(url_for(".client", code=client.code))
    status = 422 if request.method == "POST" else 200
    return render_template("integrations/rule_form.html", client=client, rule=rule,
                           form=form, subjects=subject_choices(service.active_task_types())
                           ), status


def _show_errors(form: RuleForm, errors: dict[str, list[str]], conditions: list,
                 actions: list) -> None:
    """Put ``conditions.<i>.<part>`` messages on the row the person filled in as i-th."""
    used = {"conditions": [e for e in form.conditions if not e.form.blank],
            "actions": [e for e in form.actions if not e.form.blank]}
    form.general_errors = []
    for key, messages in errors.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] in used and int(parts[1]) < len(used[parts[0]]):
            field = getattr(used[parts[0]][int(parts[1])].form, parts[2], None)
            if field is not None:
                field.errors = list(field.errors) + messages
                continue
        target = getattr(form, key, None)
        if target is not None and hasattr(target, "errors") and key == "name":
            target.errors = list(target.errors) + messages
        else:
            form.general_errors.extend(messages)


@bp.route("/integrations/clients/<code>/rules/new", methods=["GET", "POST"])
@roles_required(*LEADS)
def new_rule(code: str):
    return _edit_rule(_client_or_404(code), None)


@bp.route("/integrations/rules/<public_id>", methods=["GET", "POST"])
@roles_required(*LEADS)
def edit_rule(public_id: str):
    rule = get_scoped_or_404(AutomationRule, public_id)
    return _edit_rule(db.session.get(Client, rule.client_id), rule)


@bp.route("/integrations/rules/<public_id>/toggle", methods=["POST"])
@roles_required(*LEADS)
def toggle_rule(public_id: str):
    rule = get_scoped_or_404(AutomationRule, public_id)
    if ConfirmForm().validate_on_submit():
        configuration.set_rule_enabled(rule, not rule.enabled, current_user)
    return redirect(url_for(".client", code=db.session.get(Client, rule.client_id).code))


@bp.route("/integrations/rules/<public_id>/move", methods=["POST"])
@roles_required(*LEADS)
def move_rule(public_id: str):
    rule = get_scoped_or_404(AutomationRule, public_id)
    form = MoveForm()
    if form.validate_on_submit():
        configuration.move_rule(rule, form.direction.data, current_user)
    return redirect(url_for(".client", code=db.session.get(Client, rule.client_id).code))


@bp.route("/integrations/rules/<public_id>/delete", methods=["POST"])
@roles_required(*LEADS)
def delete_rule(public_id: str):
    rule = get_scoped_or_404(AutomationRule, public_id)
    code = db.session.get(Client, rule.client_id).code
    if ConfirmForm().validate_on_submit():
        configuration.delete_rule(rule, current_user)
        flash("Rule deleted.", "info")
    return redirect(url_for(".client", code=code))


# --- completed-work packages -------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    """Back to where the form was (a local path only), else the person's home page."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return url_for("provider.home")


@bp.route("/integrations/tasks/<public_id>/output", methods=["POST"])
@roles_required(*WORKERS)
def upload_output(public_id: str):
    task = get_scoped_or_404(Task, public_id, options=[joinedload(Task.task_type)])
    form = OutputForm()
    target = _safe_next(form.next.data)
    if not form.validate_on_submit():
        problem = " ".join(form.file.errors) or "The form expired; go back and try again."
        return render_template("integrations/output_refused.html", task=task, message=problem,
                               back=target), 422
    upload = form.file.data
    try:
        document = packages.attach_output(task, upload.stream, upload.filename,
                                          upload.mimetype, actor=current_user)
    except packages.OutputRefused as exc:
        return render_template("integrations/output_refused.html", task=task,
                               message=str(exc), back=target), 422
    flash(f"{document.filename} attached as the completed document.", "info")
    return redirect(target)


@bp.route("/dl/<token>")
@public
@limiter.limit("60 per minute")
def signed_download(token: str):
    """A webhook's download link: serves the output document while the signature is valid."""
    try:
        document = packages.document_for(token)
    except packages.LinkExpired as exc:
        return render_template("integrations/link_problem.html", message=str(exc)), 410
    except packages.LinkInvalid as exc:
        return render_template("integrations/link_problem.html", message=str(exc)), 404
    record("package.link_download", object_type="task", object_id=document.task_id,
           client_id=document.client_id, after={"document_id": document.id})
    return documents.send(document, actor=None)
