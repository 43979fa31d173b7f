"""A client's complaint about one of its tasks, and what the client may see of it.

The portal's task page includes ``sla/_task_escalations.html``; its form posts
here. Clients see only their own complaints and only client-facing fields
(when, state, and the resolution note, which the resolve form says is shared).
"""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from provider_app.access import client_only, get_scoped_or_404, scoped
from provider_app.extensions import db
from provider_app.models import Task
from provider_app.vocab import EscalationReason

from .blueprint import bp
from .escalations import EscalationError, raise_complaint
from .forms import ComplaintForm
from .models import Escalation


@bp.app_template_global()
def client_complaints(task: Task) -> list[Escalation]:
    """The caller's complaints on ``task``, newest first (scoped like every client query)."""
    return list(db.session.scalars(scoped(
        select(Escalation)
        .where(Escalation.task_id == task.id,
               Escalation.reason == EscalationReason.CLIENT_COMPLAINT)
        .order_by(Escalation.opened_at.desc(), Escalation.id.desc()),
        Escalation,
    )))


@bp.route("/portal/tasks/<public_id>/complaints", methods=["GET", "POST"])
@client_only
def task_complaints(public_id: str):
    task = get_scoped_or_404(Task, public_id)
    form = ComplaintForm()
    if form.validate_on_submit():
        try:
            _, created = raise_complaint(task, form.detail.data, current_user)
        except EscalationError as exc:
            for field, messages in exc.errors.items():
                getattr(form, field).errors = [*getattr(form, field).errors, *messages]
        else:
            flash("Thank you: a team lead will look at your complaint." if created else
                  "Your complaint is already open; we added this to the task's messages.",
                  "success")
            return redirect(url_for("portal.task_detail", public_id=public_id))
    status = 422 if form.errors else 200
    return render_template("sla/complaint.html", task=task, form=form), status
