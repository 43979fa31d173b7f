"""Provider UI: a home page per role, the lead board, staff, and the specialist's workspace.

Handlers are glue: the rules live in ``provider_app.assignment`` (actions, workspace, claim)
and ``provider_app.conversation``; the page queries in ``provider_app.assignment.board``.
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
    url_for,
)
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from . import conversation
from .access import get_scoped_or_404, login_required, roles_required, scoped
from .assignment import actions, claim_next
from .assignment import board as board_queries
from .assignment import offers as offers_service
from .assignment import workspace as workspace_service
from .assignment.eligibility import HELD_STATUSES, load_person, on_shift, person_reasons
from .assignment.forms import (
    AssignForm,
    AvailabilityForm,
    BulkAssignForm,
    ExceptionForm,
    InfoRequestForm,
    NoteForm,
    ReassignForm,
    StepForm,
    UnassignForm,
    VersionForm,
)
from .conversation import ConversationError
from .db_types import utcnow
from .extensions import db
from .lifecycle import TransitionError
from .models import Client, Document, Message, Task, TaskType, User
from .vocab import OPEN_STATUSES, Role, Status

bp = Blueprint("provider", __name__)

HOME_BY_ROLE = [
    (Role.CLIENT_ADMIN, "portal.home"),
    (Role.CLIENT_USER, "portal.home"),
    (Role.ADMIN, "provider.admin_home"),
    (Role.TEAM_LEAD, "provider.board"),
    (Role.SPECIALIST, "provider.my_work"),
    (Role.QA_REVIEWER, "qa.queue"),
]


@bp.route("/")
@login_required
def home():
    """Send each person to the page they start their day on."""
    for role, endpoint in HOME_BY_ROLE:
        if current_user.has_role(role):
            return redirect(url_for(endpoint))
    return render_template("provider/no_role.html")


@bp.route("/admin")
@roles_required(Role.ADMIN)
def admin_home():
    clients = db.session.scalars(select(Client).order_by(Client.code)).all()
    counts = board_queries.open_status_counts()
    staff = db.session.scalar(
        select(func.count()).select_from(User).where(User.client_id.is_(None))
    )
    types = db.session.scalar(select(func.count()).select_from(TaskType))
    return render_template(
        "provider/admin_home.html", clients=clients, counts=counts, staff=staff, types=types
    )


@bp.route("/board")
@roles_required(Role.TEAM_LEAD, Role.ADMIN)
def board():
    """Queues with counts and aging, the filtered task table, bulk assign, absent holders."""
    filters = board_queries.BoardFilters.from_args(request.args)
    people = board_queries.staff_options()
    form = BulkAssignForm(next=request.full_path)
    form.staff.choices = board_queries.staff_choices(people)
    return _render_board(filters, form)


def _render_board(filters, form):
    now = utcnow()
    page = max(request.args.get("page", 1, type=int), 1)
    pagination = db.paginate(board_queries.task_query(filters, now), page=page,
                             per_page=current_app.config["PAGE_SIZE"], error_out=False)
    return render_template(
        "provider/board.html",
        summary=board_queries.queue_summary(filters),
        summary_columns=board_queries.SUMMARY_COLUMNS,
        counts=board_queries.open_status_counts(),
        pagination=pagination,
        filters=filters,
        options=board_queries.filter_options(),
        due_filters=board_queries.DUE_FILTERS,
        statuses=[s for s in Status if s in OPEN_STATUSES],
        absent=board_queries.held_by_absent(),
        form=form,
        now=now,
    )


@bp.route("/board/bulk-assign", methods=["POST"])
@roles_required(Role.TEAM_LEAD, Role.ADMIN)
def bulk_assign():
    """Assign the ticked queued tasks to one specialist, as far as rules and capacity allow."""
    people = board_queries.staff_options()
    form = BulkAssignForm()
    form.staff.choices = board_queries.staff_choices(people)
    back = _safe_next(form.next.data) or url_for("provider.board")
    staff_id = board_queries.person_by_public_id(form.staff.data)
    if not form.validate() or staff_id is None:
        if form.staff.data and staff_id is None:
            form.staff.errors = [*form.staff.errors, "Choose a specialist from the list."]
        flash("Bulk assign: " + "; ".join(e for errs in form.errors.values() for e in errs),
              "error")
        return redirect(back, code=303)
    tasks = db.session.scalars(scoped(
        select(Task).where(Task.public_id.in_(form.tasks.data)), Task)).all()
    if len(tasks) != len(set(form.tasks.data)):
        abort(404)
    result = actions.bulk_assign(tasks, staff_id, current_user, override=form.override.data,
                                 reason=form.reason.data)
    if result.assigned:
        flash(f"Assigned {len(result.assigned)} task(s).")
    for task, refused in result.refused:
        detail = " ".join(r.message for r in refused.reasons)
        flash(f"{task.external_ref or task.public_id[:8]}: {refused} {detail}".strip(), "error")
    return redirect(back, code=303)


def _safe_next(target: str | None) -> str | None:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return None


def _lead_task(public_id: str) -> Task:
    return get_scoped_or_404(Task, public_id, options=[
        joinedload(Task.client), joinedload(Task.task_type), joinedload(Task.assignee)])


@bp.route("/board/tasks/<public_id>")
@roles_required(Role.TEAM_LEAD, Role.ADMIN)
def board_task(public_id: str):
    """One task for a lead: who could take it and why not, assign / reassign / unassign."""
    return _render_board_task(_lead_task(public_id))


def _render_board_task(task: Task, *, status: int = 200, error: str | None = None,
                       refused: list | None = None, forms: dict | None = None):
    people = board_queries.specialists()
    choices = board_queries.staff_choices(people)
    forms = forms or {}
    for name, cls in (("assign", AssignForm), ("reassign", ReassignForm)):
        form = forms.get(name) or cls(formdata=None, version=task.version)
        form.staff.choices = choices
        forms[name] = form
    forms.setdefault("unassign", UnassignForm(formdata=None, version=task.version))
    return render_template(
        "provider/board_task.html",
        task=task,
        candidates=board_queries.candidates_for(task, people, utcnow()),
        forms=forms,
        error=error,
        refused=refused or [],
        can_assign=task.status == Status.QUEUED,
        can_reassign=task.status in HELD_STATUSES,
        can_unassign=task.status in (Status.ASSIGNED, Status.IN_PROGRESS),
    ), status


def _lead_action(public_id: str, name: str, form_class, run):
    """Shared shape of assign / reassign / unassign: validate, run, explain a refusal."""
    task = _lead_task(public_id)
    form = form_class()
    if hasattr(form, "staff"):
        form.staff.choices = board_queries.staff_choices(board_queries.staff_options())
    if not form.validate():
        return _render_board_task(task, status=422, forms={name: form},
                                  error="Check the form: " + "; ".join(
                                      e for errs in form.errors.values() for e in errs))
    staff_id = None
    if hasattr(form, "staff"):
        staff_id = board_queries.person_by_public_id(form.staff.data)
        if staff_id is None:
            form.staff.errors = ["Choose a specialist from the list."]
            return _render_board_task(task, status=422, forms={name: form},
                                      error="Choose a specialist from the list.")
    try:
        message = run(task, form, staff_id)
    except actions.AssignmentRefused as refused:
        db.session.rollback()
        task = _lead_task(public_id)
        form.version.data = task.version  # what the lead sees now is what a retry applies to
        status = 409 if isinstance(refused, actions.VersionConflict) else 422
        return _render_board_task(task, status=status, forms={name: form}, error=str(refused),
                                  refused=refused.reasons)
    flash(message)
    return redirect(url_for("provider.board_task", public_id=task.public_id), code=303)


def _overridden_note(overridden) -> str:
    return f" (overrode: {', '.join(r.code for r in overridden)})" if overridden else ""


@bp.route("/board/tasks/<public_id>/assign", methods=["POST"])
@roles_required(Role.TEAM_LEAD, Role.ADMIN)
def assign_task(public_id: str):
    def run(task, form, staff_id):
        overridden = actions.assign(task, staff_id, current_user, override=form.override.data,
                                    reason=form.reason.data, version=form.version.data)
        return "Assigned" + _overridden_note(overridden) + "."

    return _lead_action(public_id, "assign", AssignForm, run)


@bp.route("/board/tasks/<public_id>/reassign", methods=["POST"])
@roles_required(Role.TEAM_LEAD, Role.ADMIN)
def reassign_task(public_id: str):
    def run(task, form, staff_id):
        overridden = actions.reassign(task, staff_id, current_user, reason=form.reason.data,
                                      override=form.override.data, version=form.version.data)
        return "Reassigned" + _overridden_note(overridden) + "."

    return _lead_action(public_id, "reassign", ReassignForm, run)


@bp.route("/board/tasks/<public_id>/unassign", methods=["POST"])
@roles_required(Role.TEAM_LEAD, Role.ADMIN)
def unassign_task(public_id: str):
    def run(task, form, _staff_id):
        actions.unassign(task, current_user, reason=form.reason.data, version=form.version.data)
        return "Returned to the queue."

    return _lead_action(public_id, "unassign", UnassignForm, run)


@bp.route("/staff")
@roles_required(Role.TEAM_LEAD, Role.ADMIN)
def staff():
    """Specialists with tier, skills, load and shift, and an availability switch each."""
    return render_template("provider/staff.html", people=board_queries.specialists(),
                           form=AvailabilityForm(formdata=None), now=utcnow(),
                           on_shift=on_shift)


@bp.route("/staff/<public_id>/availability", methods=["POST"])
@roles_required(Role.TEAM_LEAD, Role.ADMIN)
def staff_availability(public_id: str):
    staff_id = board_queries.person_by_public_id(public_id)
    if staff_id is None:
        abort(404)
    _change_availability(staff_id, AvailabilityForm())
    return redirect(url_for("provider.staff"), code=303)


def _change_availability(staff_id: int, form: AvailabilityForm) -> None:
    if not form.validate():
        flash("Choose an availability: available, away, on leave or offline.", "error")
        return
    result = actions.set_availability(staff_id, form.availability.data, current_user,
                                      reason=form.reason.data)
    flash(f"Availability set to {form.availability.data.replace('_', ' ')}.")
    if result.returned:
        flash(f"{len(result.returned)} not-started task(s) went back to the queue.")
    if result.flagged:
        flash(f"{len(result.flagged)} started task(s) stay with them and are flagged on the "
              "board for a lead.", "error")


# --- the specialist ----------------------------------------------------------------------------


@bp.route("/work")
@roles_required(Role.SPECIALIST)
def my_work():
    """My open tasks by due time, "Get next", and my availability."""
    stmt = scoped(
        select(Task)
        .where(
            Task.assignee_id == current_user.id,
            Task.status.in_([s.value for s in OPEN_STATUSES]),
        )
        .order_by(Task.due_at.asc().nulls_last(), Task.id)
        .options(joinedload(Task.client), joinedload(Task.task_type)),
        Task,
    )
    tasks = db.session.scalars(stmt).all()
    person = load_person(current_user.id)
    form = AvailabilityForm(formdata=None,
                            availability=person.availability.value if person else None)
    return render_template("provider/my_work.html", tasks=tasks, person=person, form=form,
                           blocked=person_reasons(person, utcnow()) if person else [],
                           offers=offers_service.offers_for(current_user.id),
                           offer_form=VersionForm(formdata=None))


@bp.route("/work/offers/<public_id>/<any(accept, decline):answer>", methods=["POST"])
@roles_required(Role.SPECIALIST)
def answer_offer(public_id: str, answer: str):
    """Accept (-> my task) or decline a task offered to me; anyone else's offer answers 404."""
    task = get_scoped_or_404(Task, public_id)
    if task.offered_to_id != current_user.id:
        abort(404)
    form = VersionForm()
    if not form.validate():
        flash("The form expired; try again.", "error")
        return redirect(url_for("provider.my_work"), code=303)
    try:
        if answer == "accept":
            offers_service.accept_offer(task, current_user, version=form.version.data)
        else:
            offers_service.decline_offer(task, current_user, version=form.version.data)
    except actions.AssignmentRefused as refused:
        db.session.rollback()
        flash(str(refused), "error")
        return redirect(url_for("provider.my_work"), code=303)
    if answer == "decline":
        flash("Offer declined; the task went back to the queue.")
        return redirect(url_for("provider.my_work"), code=303)
    flash("You have a new task.")
    return redirect(url_for("provider.workspace", public_id=task.public_id), code=303)


@bp.route("/work/next", methods=["POST"])
@roles_required(Role.SPECIALIST)
def get_next():
    """Claim the best queued task I may take and open it (CSRFProtect guards every POST)."""
    task_id = claim_next(current_user.id)
    if task_id is None:
        person = load_person(current_user.id)
        blocked = person_reasons(person, utcnow()) if person else []
        if person is None:
            flash("You have no staff profile yet; ask an administrator.", "error")
        elif blocked:
            flash("No task claimed: " + " ".join(r.message for r in blocked), "error")
        else:
            flash("Nothing in the queue fits your skills, clients and free capacity right now.")
        return redirect(url_for("provider.my_work"), code=303)
    task = db.session.get(Task, task_id)
    flash("You have a new task.")
    return redirect(url_for("provider.workspace", public_id=task.public_id), code=303)


@bp.route("/work/availability", methods=["POST"])
@roles_required(Role.SPECIALIST)
def my_availability():
    if load_person(current_user.id) is None:
        abort(404)
    _change_availability(current_user.id, AvailabilityForm())
    return redirect(url_for("provider.my_work"), code=303)


def _my_task(public_id: str) -> Task:
    """A task I hold; anyone else's (or another client's) answers 404."""
    task = get_scoped_or_404(Task, public_id, options=[
        joinedload(Task.client), joinedload(Task.task_type), joinedload(Task.sop)])
    if task.assignee_id != current_user.id:
        abort(404)
    return task


@bp.route("/work/tasks/<public_id>")
@roles_required(Role.SPECIALIST)
def workspace(public_id: str):
    return _render_workspace(_my_task(public_id))


def _render_workspace(task: Task, *, status: int = 200, error: str | None = None,
                      forms: dict | None = None):
    forms = forms or {}
    version = task.version
    forms.setdefault("version", VersionForm(formdata=None, version=version))
    forms.setdefault("note", NoteForm(formdata=None))
    forms.setdefault("info", InfoRequestForm(formdata=None, version=version))
    forms.setdefault("exception", ExceptionForm(formdata=None, version=version))
    messages = db.session.scalars(
        select(Message).where(Message.task_id == task.id)
        .options(joinedload(Message.author)).order_by(Message.created_at)
    ).all()
    return render_template(
        "provider/workspace.html",
        task=task,
        steps=workspace_service.sop_steps(task),
        missing=workspace_service.missing_steps(task),
        messages=messages,
        documents=db.session.scalars(
            select(Document).where(Document.task_id == task.id).order_by(Document.uploaded_at)
        ).all(),
        forms=forms,
        error=error,
        step_form=StepForm(formdata=None),
    ), status


def _work_action(public_id: str, name: str, form_class, run, done: str):
    """Shared shape of the workspace actions: validate, run, explain a refusal or conflict."""
    task = _my_task(public_id)
    form = form_class()
    if not form.validate():
        return _render_workspace(task, status=422, forms={name: form}, error="; ".join(
            e for errs in form.errors.values() for e in errs))
    try:
        run(task, form)
    except (actions.AssignmentRefused, ConversationError, TransitionError) as refused:
        db.session.rollback()
        task = _my_task(public_id)
        status = 409 if isinstance(refused, actions.VersionConflict | TransitionError) else 422
        return _render_workspace(task, status=status, forms={name: form}, error=str(refused))
    flash(done)
    return redirect(url_for("provider.workspace", public_id=task.public_id), code=303)


@bp.route("/work/tasks/<public_id>/start", methods=["POST"])
@roles_required(Role.SPECIALIST)
def start_work(public_id: str):
    return _work_action(public_id, "version", VersionForm, lambda t, f: (
        workspace_service.start_work(t, current_user, version=f.version.data)), "Work started.")


@bp.route("/work/tasks/<public_id>/steps", methods=["POST"])
@roles_required(Role.SPECIALIST)
def tick_step(public_id: str):
    return _work_action(public_id, "step", StepForm, lambda t, f: workspace_service.set_step(
        t, f.step.data, f.done.data, current_user, version=f.version.data), "Checklist saved.")


@bp.route("/work/tasks/<public_id>/notes", methods=["POST"])
@roles_required(Role.SPECIALIST)
def add_note(public_id: str):
    return _work_action(public_id, "note", NoteForm, lambda t, f: conversation.add_note(
        t, f.body.data, current_user), "Note added.")


@bp.route("/work/tasks/<public_id>/request-info", methods=["POST"])
@roles_required(Role.SPECIALIST)
def request_info(public_id: str):
    def run(task, form):
        actions.check_version(task, form.version.data)
        conversation.request_info(task, form.body.data, current_user)

    return _work_action(public_id, "info", InfoRequestForm, run,
                        "Question sent to the client; the SLA clock is paused until they answer.")


@bp.route("/work/tasks/<public_id>/exception", methods=["POST"])
@roles_required(Role.SPECIALIST)
def raise_exception(public_id: str):
    return _work_action(public_id, "exception", ExceptionForm, lambda t, f: (
        workspace_service.raise_exception(t, current_user, f.detail.data,
                                          version=f.version.data)),
        "Exception raised; it is in the lead's escalation queue.")


@bp.route("/work/tasks/<public_id>/submit", methods=["POST"])
@roles_required(Role.SPECIALIST)
def submit_task(public_id: str):
    return _work_action(public_id, "version", VersionForm, lambda t, f: (
        workspace_service.submit(t, current_user, version=f.version.data)), "Submitted.")
