"""The signed-in person's notifications: list, unread count, mark read."""

from __future__ import annotations

from flask import abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from provider_app.access import login_required
from provider_app.extensions import db
from provider_app.templating import NAV_COUNTS

from .blueprint import bp
from .models import Notification
from .notify import mark_all_read, mark_read, unread_count


@bp.record_once
def _register_nav_count(state) -> None:
    NAV_COUNTS["sla.notifications"] = lambda: unread_count(current_user)


def _own(public_id: str) -> Notification:
    """Only the owner's notice: anyone else's id is a 404, like a foreign client's."""
    notification = db.session.scalar(select(Notification).where(
        Notification.public_id == public_id, Notification.user_id == current_user.id))
    if notification is None:
        abort(404)
    return notification


@bp.route("/notifications")
@login_required
def notifications():
    unread_only = request.args.get("unread") == "1"
    stmt = select(Notification).where(Notification.user_id == current_user.id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    pagination = db.paginate(
        stmt.order_by(Notification.created_at.desc(), Notification.id.desc()),
        page=max(request.args.get("page", 1, type=int), 1),
        per_page=current_app.config["PAGE_SIZE"], error_out=False,
    )
    return render_template("sla/notifications.html", pagination=pagination,
                           unread=unread_count(current_user), unread_only=unread_only)


@bp.route("/notifications/<public_id>/read", methods=["POST"])
@login_required
def read_notification(public_id: str):
    """Mark one read; ``open`` follows its link (a site path, never an open redirect)."""
    notification = _own(public_id)
    mark_read(notification)
    link = notification.link or ""
    if request.form.get("open") and link.startswith("/") and not link.startswith("//"):
        return redirect(link)
    return redirect(url_for(".notifications"))


@bp.route("/notifications/read-all", methods=["POST"])
@login_required
def read_all_notifications():
    mark_all_read(current_user)
    return redirect(url_for(".notifications"))
