"""The SLA area's blueprint: escalation queue, complaints, notifications, calendars."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("sla", __name__, template_folder="templates")
