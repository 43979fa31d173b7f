"""Provider UI: a home page per role, the lead board, the specialist's work list."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from .access import login_required, roles_required, scoped
from .extensions import db
from .models import Client, Task, TaskType, User
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


def status_counts() -> dict[str, int]:
    stmt = scoped(select(Task.status, func.count()).group_by(Task.status), Task)
    return {Status(s).value: n for s, n in db.session.execute(stmt)}


@bp.route("/admin")
@roles_required(Role.ADMIN)
def admin_home():
    clients = db.session.scalars(select(Client).order_by(Client.code)).all()
    counts = status_counts()
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
    """Queues by client and task type, with counts and the oldest due time."""
    open_statuses = [s.value for s in OPEN_STATUSES]
    stmt = scoped(
        select(
            Client.code,
            TaskType.code,
            Task.status,
            func.count(),
            func.min(Task.due_at),
        )
        .join(Client, Client.id == Task.client_id)
        .join(TaskType, TaskType.id == Task.task_type_id)
        .where(Task.status.in_(open_statuses))
        .group_by(Client.code, TaskType.code, Task.status)
        .order_by(Client.code, TaskType.code),
        Task,
    )
    rows = db.session.execute(stmt).all()
    return render_template("provider/board.html", rows=rows, counts=status_counts())


@bp.route("/work")
@roles_required(Role.SPECIALIST)
def my_work():
    stmt = scoped(
        select(Task)
        .where(
            Task.assignee_id == current_user.id,
            Task.status.in_([s.value for s in OPEN_STATUSES]),
        )
        .order_by(Task.due_at.asc())
        .options(joinedload(Task.client), joinedload(Task.task_type)),
        Task,
    )
    tasks = db.session.scalars(stmt).all()
    return render_template("provider/my_work.html", tasks=tasks)
