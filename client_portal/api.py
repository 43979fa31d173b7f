"""JSON API under /api/v1 for clients' systems (bearer token) and portal scripts."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from provider_app.access import api_route, get_scoped_or_404, scoped
from provider_app.extensions import csrf, db
from provider_app.models import Task

bp = Blueprint("api", __name__)
csrf.exempt(bp)  # bearer-token API; session callers are same-origin reads


def task_json(task: Task) -> dict:
    return {
        "id": task.public_id,
        "status": task.status.value if hasattr(task.status, "value") else task.status,
        "task_type": task.task_type.code,
        "priority": task.priority.value if hasattr(task.priority, "value") else task.priority,
        "external_ref": task.external_ref,
        "state": task.state,
        "fields": task.fields,
        "received_at": _iso(task.received_at),
        "due_at": _iso(task.due_at),
        "completed_at": _iso(task.completed_at),
    }


def _iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


@bp.route("/tasks", methods=["GET"])
@api_route()
def list_tasks():
    page = max(request.args.get("page", 1, type=int), 1)
    per_page = min(request.args.get("per_page", current_app.config["PAGE_SIZE"], type=int), 200)
    stmt = scoped(select(Task).order_by(Task.received_at.desc(), Task.id.desc()), Task)
    pagination = db.paginate(
        stmt.options(joinedload(Task.task_type)), page=page, per_page=per_page, error_out=False
    )
    return jsonify(
        items=[task_json(t) for t in pagination.items],
        page=page,
        per_page=per_page,
        total=pagination.total,
    )


@bp.route("/tasks/<public_id>", methods=["GET"])
@api_route()
def get_task(public_id: str):
    return jsonify(task_json(get_scoped_or_404(Task, public_id)))
