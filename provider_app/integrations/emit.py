"""Webhook events: which audit rows are events, their payloads, and ``emit``.

Events are read from the audit trail, which every area already writes, so no other area has
to call us. The commit hook (``hooks``) hands over the audit rows a transaction added and
the deliveries are written in that same transaction; ``catch_up`` (periodic) finds events
recorded with set-based SQL (the SLA sweep's escalations, bulk CSV tasks), which the hook
cannot see. ``(endpoint, "audit:<id>")`` is unique, so no event is delivered twice.

===========================  ====================================================
audit row                    event
===========================  ====================================================
task.transition received→queued   ``task.created``
task.transition →completed        ``task.completed``
task.transition in_qa→rework      ``task.qa_failed``
message.info_request              ``task.info_requested``
escalation.open                   ``escalation.opened``
report.ready                      ``report.ready`` (for the reporting area to record)
===========================  ====================================================
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from sla.models import Escalation

from ..db_types import utcnow
from ..extensions import db
from ..intake.schemas import iso
from ..jobs import enqueue_after_commit
from ..models import AuditEvent, Client, Document, Message, Task
from .automation import policy_numbers_in
from .models import WebhookDelivery, WebhookEndpoint

DELIVER_JOB = "provider_app.integrations.delivery.deliver"
CATCH_UP_WINDOW = timedelta(hours=2)
CATCH_UP_LIMIT = 2000


# event -> (audit action, from_status, to_status); None matches any status.
SOURCES: dict[str, tuple[str, str | None, str | None]] = {
    "task.created": ("task.transition", "received", "queued"),
    "task.completed": ("task.transition", None, "completed"),
    "task.qa_failed": ("task.transition", "in_qa", "rework"),
    "task.info_requested": ("message.info_request", None, None),
    "escalation.opened": ("escalation.open", None, None),
    "report.ready": ("report.ready", None, None),
}


def event_for(action: str, from_status: str | None, to_status: str | None) -> str | None:
    """The webhook event an audit row stands for, or None."""
    for name, (wanted, source, target) in SOURCES.items():
        if action == wanted and source in (None, from_status) and target in (None, to_status):
            return name
    return None


def event_clause(name: str) -> ColumnElement[bool]:
    """The same test as ``event_for``, as SQL on ``audit_events``."""
    action, source, target = SOURCES[name]
    parts = [AuditEvent.action == action]
    if source is not None:
        parts.append(AuditEvent.from_status == source)
    if target is not None:
        parts.append(AuditEvent.to_status == target)
    return and_(*parts)


# --- emitting ------------------------------------------------------------------------------


def subscribed(client_ids: Iterable[int]) -> dict[int, list[WebhookEndpoint]]:
    """Enabled endpoints by client, in one query."""
    ids = list(set(client_ids))
    found: dict[int, list[WebhookEndpoint]] = defaultdict(list)
    if ids:
        for endpoint in db.session.scalars(select(WebhookEndpoint).where(
                WebhookEndpoint.client_id.in_(ids), WebhookEndpoint.enabled.is_(True))):
            found[endpoint.client_id].append(endpoint)
    return found


def emit(event: str, client_id: int, payload: Mapping[str, Any], *,
         dedupe_key: str | None = None, audit_event_id: int | None = None,
         endpoints: Iterable[WebhookEndpoint] | None = None) -> list[WebhookDelivery]:
    """Write a delivery for every enabled endpoint of the client subscribed to ``event`` (in
    the caller's transaction) and enqueue each delivery job once it commits."""
    if endpoints is None:
        endpoints = subscribed([client_id]).get(client_id, [])
    key = dedupe_key or f"{event}:{uuid.uuid4().hex}"
    created = []
    for endpoint in endpoints:
        if event not in endpoint.events:
            continue
        delivery = WebhookDelivery(endpoint_id=endpoint.id, client_id=client_id, event=event,
                                   dedupe_key=key, audit_event_id=audit_event_id,
                                   payload=dict(payload), status="pending",
                                   next_attempt_at=utcnow())
        try:
            with db.session.begin_nested():
                db.session.add(delivery)
        except IntegrityError:
            continue  # the hook and the catch-up met: it is already there
        enqueue_after_commit(DELIVER_JOB, delivery.id)
        created.append(delivery)
    return created


def emit_for_audit(audit_ids: Iterable[int], *, since: datetime | None = None) -> int:
    """Deliveries for the events among these audit rows; returns how many were written."""
    ids = list(audit_ids)
    if not ids:
        return 0
    rows = db.session.execute(
        select(AuditEvent.id, AuditEvent.action, AuditEvent.from_status, AuditEvent.to_status,
               AuditEvent.client_id, AuditEvent.object_type, AuditEvent.object_id,
               AuditEvent.after, AuditEvent.at)
        .where(AuditEvent.id.in_(ids), AuditEvent.client_id.is_not(None))
    ).all()
    events = [(row, name) for row in rows
              if (name := event_for(row.action, row.from_status, row.to_status))]
    if not events:
        return 0
    endpoints = subscribed(row.client_id for row, _ in events)
    wanted = [(row, name) for row, name in events
              if any(name in e.events and e.created_at <= row.at
                     for e in endpoints.get(row.client_id, []))]
    if not wanted:
        return 0
    payloads = Payloads(wanted)
    written = 0
    for row, name in wanted:
        written += len(emit(name, row.client_id, payloads.for_event(row, name),
                            dedupe_key=f"audit:{row.id}", audit_event_id=row.id,
                            endpoints=[e for e in endpoints[row.client_id]
                                       if e.created_at <= row.at]))
    return written


def catch_up(now: datetime | None = None) -> int:
    """Periodic: events of the last two hours that no delivery was written for yet.

    Only events an enabled endpoint subscribes to, recorded after it was created (a new
    endpoint does not receive history), are looked for, so the scan stays small.
    """
    now = now or utcnow()
    wanted = [
        and_(AuditEvent.client_id == e.client_id, AuditEvent.at >= e.created_at,
             or_(*(event_clause(name) for name in e.events if name in SOURCES)))
        for e in db.session.scalars(select(WebhookEndpoint).where(
            WebhookEndpoint.enabled.is_(True)))
        if any(name in SOURCES for name in e.events)
    ]
    if not wanted:
        return 0
    missing = db.session.scalars(
        select(AuditEvent.id)
        .where(AuditEvent.at >= now - CATCH_UP_WINDOW, or_(*wanted),
               ~exists().where(WebhookDelivery.audit_event_id == AuditEvent.id))
        .order_by(AuditEvent.id).limit(CATCH_UP_LIMIT)
    ).all()
    return emit_for_audit(missing)


# --- payloads -----------------------------------------------------------------------------


def task_view(task: Task, client_code: str) -> dict[str, Any]:
    """A task as the client's systems see it: our id and theirs, policy numbers, times."""
    fields = task.fields or {}
    numbers = policy_numbers_in(fields)
    portal = current_app.url_map.bind("").build("portal.task_detail",
                                                {"public_id": task.public_id})
    return {
        "id": task.public_id,
        "client": client_code,
        "task_type": task.task_type.code,
        "status": getattr(task.status, "value", task.status),
        "priority": getattr(task.priority, "value", task.priority),
        "external_ref": task.external_ref,
        "policy_number": numbers[0] if numbers else None,
        "policy_numbers": numbers,
        "insured_name": fields.get("insured_name"),
        "state": task.state,
        "source": task.source,
        "received_at": iso(task.received_at),
        "due_at": iso(task.due_at),
        "completed_at": iso(task.completed_at),
        "sla_met": task.sla_met,
        "rework_count": task.rework_count,
        "portal_url": current_app.config["PUBLIC_BASE_URL"] + portal,
    }


class Payloads:
    """Loads what a batch of events needs with a few IN queries (no query per event)."""

    def __init__(self, events: list[tuple[Any, str]]):
        task_ids: set[int] = set()
        message_ids: set[int] = set()
        escalation_ids: set[int] = set()
        for row, name in events:
            if row.object_type == "task" and row.object_id:
                task_ids.add(row.object_id)
            if name == "task.info_requested" and (row.after or {}).get("message_id"):
                message_ids.add(row.after["message_id"])
            if name == "escalation.opened" and row.object_id:
                escalation_ids.add(row.object_id)
        self.escalations = {e.id: e for e in db.session.scalars(
            select(Escalation).where(Escalation.id.in_(escalation_ids)))} if escalation_ids \
            else {}
        task_ids |= {e.task_id for e in self.escalations.values()}
        self.tasks = {t.id: t for t in db.session.scalars(
            select(Task).where(Task.id.in_(task_ids)).options(joinedload(Task.task_type)))} \
            if task_ids else {}
        self.codes = dict(db.session.execute(select(Client.id, Client.code).where(
            Client.id.in_({r.client_id for r, _ in events}))).all())
        self.questions = dict(db.session.execute(select(Message.id, Message.body).where(
            Message.id.in_(message_ids))).all()) if message_ids else {}
        completed = [t.id for t in self.tasks.values()] if any(
            n == "task.completed" for _, n in events) else []
        self.outputs: dict[int, list[Document]] = defaultdict(list)
        if completed:
            for document in db.session.scalars(
                select(Document).where(Document.task_id.in_(completed),
                                       Document.kind == "output")
                .order_by(Document.uploaded_at, Document.id)
            ):
                self.outputs[document.task_id].append(document)

    def _task(self, task_id: int | None, client_id: int) -> dict[str, Any] | None:
        task = self.tasks.get(task_id) if task_id else None
        return task_view(task, self.codes[client_id]) if task is not None else None

    def for_event(self, row: Any, name: str) -> dict[str, Any]:
        data: dict[str, Any] = {"occurred_at": iso(row.at)}
        if name == "escalation.opened":
            escalation = self.escalations.get(row.object_id)
            if escalation is not None:
                data["escalation"] = {
                    "id": escalation.public_id,
                    "reason": getattr(escalation.reason, "value", escalation.reason),
                    "level": escalation.level, "opened_at": iso(escalation.opened_at)}
                data["task"] = self._task(escalation.task_id, row.client_id)
            return data
        if name == "report.ready":
            data["report"] = dict(row.after or {})
            return data
        data["task"] = self._task(row.object_id, row.client_id)
        if name == "task.info_requested":
            data["question"] = self.questions.get((row.after or {}).get("message_id"))
        if name == "task.completed":
            data["documents"] = [
                {"id": d.public_id, "filename": d.filename, "content_type": d.content_type,
                 "size": d.size, "sha256": d.sha256}
                for d in self.outputs.get(row.object_id, [])]
        return data
