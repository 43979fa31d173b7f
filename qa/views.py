"""QA pages for reviewers."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from provider_app.access import roles_required, scoped
from provider_app.extensions import db
from provider_app.models import Task
from provider_app.vocab import Role, Status

bp = Blueprint("qa", __name__, template_folder="templates")


@bp.route("/")
@roles_required(Role.QA_REVIEWER, Role.TEAM_LEAD)
def queue():
    """Tasks waiting for review, by due time; never the reviewer's own work (four eyes)."""
    stmt = scoped(
        select(Task)
        .where(Task.status == Status.IN_QA, Task.assignee_id != current_user.id)
        .options(joinedload(Task.client), joinedload(Task.task_type))
        .order_by(Task.due_at.asc())
        .limit(200),
        Task,
    )
    return render_template("qa/queue.html", tasks=db.session.scalars(stmt).all())
