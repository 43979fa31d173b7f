"""Template helpers: navigation by role, time formatting and SLA badges."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask
from flask_login import current_user

from .vocab import Role

# (endpoint, label, roles allowed to see it)
NAVIGATION: list[tuple[str, str, frozenset[Role]]] = [
    ("provider.admin_home", "Admin", frozenset({Role.ADMIN})),
    ("audit.events", "Audit", frozenset({Role.ADMIN})),
    ("ops.jobs_page", "Jobs", frozenset({Role.ADMIN})),
    ("provider.board", "Board", frozenset({Role.TEAM_LEAD, Role.ADMIN})),
    ("provider.staff", "Staff", frozenset({Role.TEAM_LEAD, Role.ADMIN})),
    ("provider.my_work", "My work", frozenset({Role.SPECIALIST})),
    ("qa.queue", "QA queue", frozenset({Role.QA_REVIEWER, Role.TEAM_LEAD})),
    ("qa.disputes", "Disputes", frozenset({Role.TEAM_LEAD, Role.ADMIN})),
    ("qa.sampling", "Lot sampling", frozenset({Role.TEAM_LEAD, Role.ADMIN})),
    ("qa.calibrations", "Calibration", frozenset({Role.QA_REVIEWER, Role.TEAM_LEAD})),
    ("qa.figures", "QA figures", frozenset({Role.TEAM_LEAD, Role.ADMIN})),
    ("sla.escalations", "Escalations", frozenset({Role.TEAM_LEAD, Role.ADMIN})),
    ("sla.calendars", "Calendars", frozenset({Role.ADMIN})),
    ("reports.operations", "Operations", frozenset({Role.TEAM_LEAD, Role.ADMIN})),
    ("integrations.triage", "Intake triage", frozenset({Role.TEAM_LEAD, Role.ADMIN})),
    ("integrations.clients", "Automation", frozenset({Role.TEAM_LEAD, Role.ADMIN})),
    ("portal.home", "Home", frozenset({Role.CLIENT_ADMIN, Role.CLIENT_USER})),
    ("portal.tasks", "Tasks", frozenset({Role.CLIENT_ADMIN, Role.CLIENT_USER})),
    ("portal.new_task", "Send a task", frozenset({Role.CLIENT_ADMIN, Role.CLIENT_USER})),
    ("portal.imports", "Bulk uploads", frozenset({Role.CLIENT_ADMIN, Role.CLIENT_USER})),
    ("reports.dashboard", "SLA reports", frozenset({Role.CLIENT_ADMIN, Role.CLIENT_USER})),
    ("portal.tokens", "API tokens", frozenset({Role.CLIENT_ADMIN})),
    ("webhooks.endpoints", "Webhooks", frozenset({Role.CLIENT_ADMIN})),
    ("data_export.index", "Data export", frozenset({Role.CLIENT_ADMIN})),
    ("sla.notifications", "Notifications", frozenset(Role)),
    ("auth.security", "Account", frozenset(Role)),
]
# Counts shown beside a navigation label ("Escalations (3)"), registered by the area
# that owns the page; each runs only for people who see that entry.
NAV_COUNTS: dict[str, Callable[[], int]] = {}


def nav_items() -> list[tuple[str, str]]:
    if not current_user.is_authenticated:
        return []
    items = []
    for ep, label, roles in NAVIGATION:
        if current_user.has_role(*roles):
            count = NAV_COUNTS[ep]() if ep in NAV_COUNTS else 0
            items.append((ep, f"{label} ({count})" if count else label))
    return items


def relative_time(value: datetime | None, now: datetime | None = None) -> str:
    """'in 3 h', '2 d ago' — short enough for a table cell."""
    if value is None:
        return "—"
    now = now or datetime.now(UTC)
    seconds = (value - now).total_seconds()
    future = seconds >= 0
    seconds = abs(seconds)
    if seconds < 60:
        text = "now"
        return text
    if seconds < 3600:
        amount = f"{int(seconds // 60)} min"
    elif seconds < 86400:
        amount = f"{seconds / 3600:.0f} h"
    else:
        amount = f"{seconds / 86400:.0f} d"
    return f"in {amount}" if future else f"{amount} ago"


def format_dt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def label(value: object) -> str:
    return str(getattr(value, "value", value) or "").replace("_", " ")


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(nav_items=nav_items, Role=Role)
    app.jinja_env.filters.update(
        relative=relative_time,
        dt=format_dt,
        label=label,
        reject_page=lambda args: {k: v for k, v in args.items() if k != "page"},
    )
