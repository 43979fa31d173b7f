"""Commit hooks: intake automation and webhook emission without touching other areas' code.

Every area records what it does as audit rows (``audit.record``). After each flush we note
the new rows that matter; just before the transaction commits we

1. run the client's intake rules on tasks created through ``intake.service.create_task``
   (audit ``task.create``) that nobody has run them on yet (e-mail intake runs them itself,
   with the message's text), then
2. write webhook deliveries for the events among the new rows (``emit``),

so both happen in the same transaction as their cause, or not at all. A failure in either
is logged and contained in a savepoint: it never makes the cause itself fail (the periodic
catch-up emits missed events later). Audit rows inserted with set-based SQL are invisible
here unless their writer reports them (``note_written``, as intake does for every new task);
``emit.catch_up`` covers the rest.

Most clients have neither rules nor endpoints, and this runs on every intake request: one
query first asks which of the clients involved have any (``_interested``), and nothing else
is loaded for the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from flask import current_app, has_app_context
from sqlalchemy import Select, bindparam, event, exists, literal, select, union_all
from sqlalchemy.orm import Session

from ..audit import record
from ..extensions import db
from ..models import AuditEvent, Task
from . import automation, emit
from .models import AutomationRule, WebhookEndpoint

EVENTS_KEY = "integrations_event_rows"
TASKS_KEY = "integrations_new_tasks"
MAX_ROUNDS = 3


@event.listens_for(Session, "after_flush")
def _collect(session: Session, flush_context) -> None:
    for obj in session.new:
        if isinstance(obj, AuditEvent):
            _note(session, obj.id, obj.action, obj.object_id, obj.client_id, obj.from_status,
                  obj.to_status)


def note_written(rows: Iterable[tuple[int, str, int | None, int | None, str | None,
                                      str | None]],
                 *, interest: tuple[bool, bool] | None = None) -> None:
    """Audit rows a service wrote with SQL instead of the ORM (id, action, object id,
    client id, from, to), for the commit hooks to treat as if the ORM had flushed them.

    ``interest``: the client's (has rules, has endpoints) when the writer already read
    them (``interest_query``); rows nobody is interested in are then not noted at all, so
    the commit asks nothing.
    """
    session = db.session()
    with_rules, with_endpoints = interest if interest is not None else (True, True)
    for audit_id, action, object_id, client_id, from_status, to_status in rows:
        _note(session, audit_id, action, object_id, client_id, from_status, to_status,
              tasks=with_rules, events=with_endpoints)


@cache
def interest_query() -> Select:
    """Whether the client ``:client_id`` has an enabled rule, and an enabled endpoint."""
    client_id = bindparam("client_id", None)  # not required: intake compiles it to text
    return select(
        exists().where(AutomationRule.client_id == client_id,
                       AutomationRule.enabled.is_(True)).label("with_rules"),
        exists().where(WebhookEndpoint.client_id == client_id,
                       WebhookEndpoint.enabled.is_(True)).label("with_endpoints"),
    )


def _note(session: Session, audit_id: int, action: str, object_id: int | None,
          client_id: int | None, from_status: str | None, to_status: str | None,
          *, tasks: bool = True, events: bool = True) -> None:
    if client_id is None:
        return
    if tasks and action == "task.create" and object_id is not None:
        session.info.setdefault(TASKS_KEY, []).append((object_id, client_id))
    if events and emit.event_for(action, from_status, to_status):
        session.info.setdefault(EVENTS_KEY, []).append((audit_id, client_id))


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if not (session.info.get(TASKS_KEY) or session.info.get(EVENTS_KEY)):
        return
    if not has_app_context() or session is not db.session():
        return
    for _ in range(MAX_ROUNDS):
        tasks = session.info.pop(TASKS_KEY, [])
        rows = session.info.pop(EVENTS_KEY, [])
        with_rules, with_endpoints = _interested(
            {client_id for _, client_id in tasks}, {client_id for _, client_id in rows})
        for task_id, client_id in tasks:
            if client_id in with_rules:
                _automate(task_id)
        rows = [row for row in rows if row[1] in with_endpoints]
        if rows:
            _emit(rows)
        if not (session.info.get(TASKS_KEY) or session.info.get(EVENTS_KEY)):
            break


@event.listens_for(Session, "after_commit")
def _done(session: Session) -> None:
    session.info.pop(automation.DONE_KEY, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction) -> None:
    if not previous_transaction.nested:
        for key in (TASKS_KEY, EVENTS_KEY, automation.DONE_KEY):
            session.info.pop(key, None)


def _interested(rule_clients: set[int], event_clients: set[int]) -> tuple[set[int], set[int]]:
    """Which of these clients have an enabled rule, and which an enabled endpoint: one query."""
    parts = []
    if rule_clients:
        parts.append(select(literal("r"), AutomationRule.client_id).where(
            AutomationRule.client_id.in_(rule_clients), AutomationRule.enabled.is_(True)))
    if event_clients:
        parts.append(select(literal("w"), WebhookEndpoint.client_id).where(
            WebhookEndpoint.client_id.in_(event_clients), WebhookEndpoint.enabled.is_(True)))
    if not parts:
        return set(), set()
    found: dict[str, set[int]] = {"r": set(), "w": set()}
    for kind, client_id in db.session.execute(union_all(*parts) if len(parts) > 1 else parts[0]):
        found[kind].add(client_id)
    return found["r"], found["w"]


def _automate(task_id: int) -> None:
    task = db.session.get(Task, task_id)
    if task is None or automation.already_applied(task):
        return
    try:
        with db.session.begin_nested():
            automation.apply_intake_rules(task, task.source)
    except Exception as exc:
        current_app.logger.exception("intake automation failed for task %s", task_id)
        record("automation.failed", object_type="task", object_id=task_id,
               client_id=task.client_id, reason=f"{type(exc).__name__}: {exc}"[:500])


def _emit(rows: list[tuple[int, int]]) -> None:
    endpoints = emit.subscribed(client_id for _, client_id in rows)
    ids = [audit_id for audit_id, client_id in rows if endpoints.get(client_id)]
    if not ids:
        return
    try:
        with db.session.begin_nested():
            emit.emit_for_audit(ids)
    except Exception:
        current_app.logger.exception("webhook emission failed; the catch-up job retries")
