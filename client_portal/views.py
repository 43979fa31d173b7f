"""Client portal pages: home, the client's own task list and task detail."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from provider_app.access import client_only, get_scoped_or_404, scoped
from provider_app.extensions import db
from provider_app.models import AuditEvent, Message, Task, TaskType
from provider_app.vocab import Status

bp = Blueprint("portal", __name__, template_folder="templates")


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


@bp.route("/tasks")
@client_only
def tasks():
    page = max(request.args.get("page", 1, type=int), 1)
    per_page = current_app.config["PAGE_SIZE"]
    stmt = scoped(select(Task), Task)
    status = request.args.get("status")
    if status in {s.value for s in Status}:
        stmt = stmt.where(Task.status == status)
    stmt = stmt.order_by(Task.received_at.desc(), Task.id.desc())
    pagination = db.paginate(
        stmt.options(joinedload(Task.task_type)), page=page, per_page=per_page, error_out=False
    )
    return render_template(
        "portal/tasks.html", pagination=pagination, statuses=list(Status), status=status
    )


@bp.route("/tasks/<public_id>")
@client_only
def task_detail(public_id: str):
    task = get_scoped_or_404(Task, public_id, options=[joinedload(Task.task_type)])
    timeline = db.session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.object_type == "task",
            AuditEvent.object_id == task.id,
            AuditEvent.action == "task.transition",
        )
        .order_by(AuditEvent.at)
    ).all()
    messages = db.session.scalars(
        select(Message)
        .where(Message.task_id == task.id, Message.internal.is_(False))
        .order_by(Message.created_at)
    ).all()
    task_type = db.session.get(TaskType, task.task_type_id)
    return render_template(
        "portal/task_detail.html",
        task=task,
        task_type=task_type,
        timeline=timeline,
        messages=messages,
    )
