"""The escalation queue for team leads."""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from provider_app.access import roles_required, scoped
from provider_app.extensions import db
from provider_app.vocab import Role

from .models import Escalation

bp = Blueprint("sla", __name__, template_folder="templates")


@bp.route("/escalations")
@roles_required(Role.TEAM_LEAD, Role.ADMIN)
def escalations():
    stmt = scoped(
        select(Escalation)
        .where(Escalation.resolved_at.is_(None))
        .options(joinedload(Escalation.task))
        .order_by(Escalation.level.desc(), Escalation.opened_at),
        Escalation,
    )
    return render_template("sla/escalations.html", escalations=db.session.scalars(stmt).all())
