"""Writing one new task: its row, its audit events and its idempotency key, together.

Intake takes hundreds of tasks a second through the API. Built as an ORM object and
flushed, a task cost three flushes and about 8 ms of CPU per request; here its row is
assembled as plain values and written with its audit events (``task.create``, then
``task.transition`` received -> queued, and ``task.duplicate_flagged`` when the duplicate
check matched) and, for the API, its idempotency key:

* on PostgreSQL as one statement: the duplicate check and the current SOP are sub-queries
  of the INSERT, the audit rows and the key are data-modifying CTEs;
* on SQLite (no data-modifying CTEs) as the same steps, one statement each.

The duplicate check and the SOP lookup are Core queries (``duplicate_query``,
``current_sop_id``) that SQLite runs as they are and PostgreSQL's statement embeds compiled
once, so each rule has one home. The commit hooks (intake automation,
webhooks) are told about the audit rows (``hooks.note_written``), so nothing downstream
can tell a task written here from one flushed by the ORM; on PostgreSQL the statement also
reads whether the client has rules or endpoints at all (``hooks.interest_query``), so for
most clients the commit asks nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    BindParameter,
    ScalarSelect,
    Select,
    Table,
    bindparam,
    false,
    func,
    insert,
    select,
)

from sla.clock import ClockTerms, clock_columns

from ..audit import request_ip
from ..database import compact_sql, driver_execute, is_sqlite, postgres_text
from ..db_types import new_public_id
from ..extensions import db
from ..integrations.hooks import interest_query, note_written
from ..lifecycle import can_transition
from ..models import AuditEvent, IdempotencyKey, Sop, Task, TaskType
from ..models.tasks import priority_order
from ..vocab import OPEN_STATUSES, Priority, SlaState, Status
from .schemas import TaskInput, TypeRef

TASKS = Task.__table__
AUDIT = AuditEvent.__table__
KEYS = IdempotencyKey.__table__
JSON_COLUMNS = frozenset(c.key for c in TASKS.columns if isinstance(c.type, JSON))
DUPLICATE_WINDOW = timedelta(days=7)
# Field values that identify "the same request" when the client gave no reference.
DUPLICATE_FIELDS = ("policy_number", "insured_name")
DUPLICATE_REASON = "matches an open task received recently"
assert can_transition(Status.RECEIVED, Status.QUEUED)  # noqa: S101 - what the audit records
OPEN_STATUS_VALUES = tuple(s.value for s in OPEN_STATUSES)


def duplicate_key(external_ref: str | None, fields: Mapping[str, Any]) -> dict[str, str] | None:
    """What makes two requests "the same": the client's reference when given, otherwise
    the policy number and named insured present in the fields; None: nothing to match on."""
    if external_ref:
        return {"external_ref": external_ref}
    key = {name: str(fields[name]) for name in DUPLICATE_FIELDS if fields.get(name)}
    return key or None


@cache
def duplicate_query(key_names: tuple[str, ...]) -> Select:
    """Id and public id of the earliest open task of the client and type received since
    ``:since`` that carries the same key (bind parameters ``client_id``, ``task_type_id``,
    ``since`` and ``key_<name>`` for each of ``key_names``); never matches on no key."""
    stmt = select(Task.id, Task.public_id).where(
        Task.client_id == _bind("client_id"),
        Task.task_type_id == _bind("task_type_id"),
        Task.status.in_(OPEN_STATUS_VALUES),
        Task.received_at >= _bind("since"),
    )
    if not key_names:
        stmt = stmt.where(false())
    for name in key_names:
        value = _bind(f"key_{name}")
        if name == "external_ref":
            stmt = stmt.where(Task.external_ref == value)
        else:
            stmt = stmt.where(func.lower(Task.fields[name].as_string()) == func.lower(value))
    return stmt.order_by(Task.received_at, Task.id).limit(1)


def _bind(name: str) -> BindParameter:
    # Not "required": the query is also compiled to PostgreSQL text before any value is known.
    return bindparam(name, None)


def current_sop_id(task_type_id: Any) -> ScalarSelect:
    """The newest published SOP of a task type (the one new work is done under), as a
    sub-query of the task's INSERT; ``task_type_id`` may be a value or a bind parameter."""
    return (
        select(Sop.id)
        .where(Sop.task_type_id == task_type_id, Sop.published_at.is_not(None))
        .order_by(Sop.version.desc()).limit(1).scalar_subquery()
    )


@dataclass(frozen=True)
class PublicRef:
    public_id: str


@dataclass(frozen=True)
class NewTask:
    """A task just written, with what the API answers about it: ``TaskSchema`` reads these
    attributes as it reads a ``Task`` (a new task has no documents, lot or completion)."""

    id: int
    public_id: str
    task_type: TaskType | TypeRef
    priority: str
    external_ref: str | None
    state: str | None
    fields: dict[str, Any]
    source: str
    received_at: datetime
    due_at: datetime | None
    duplicate_of_id: int | None
    duplicate_of: PublicRef | None
    status: str = Status.QUEUED.value
    sla_state: str = SlaState.ON_TRACK.value
    completed_at: None = None
    lot_id: None = None
    lot: None = None
    documents: tuple = field(default=())


@cache
def _python_defaults(table: Table) -> tuple[tuple[str, Any], ...]:
    return tuple((c.key, c.default) for c in table.columns
                 if c.default is not None and not c.primary_key)


def with_defaults(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill the model's Python-side column defaults the rows leave out (COPY and
    hand-written INSERTs see no Python defaults, and every row must carry the same columns)."""
    missing: dict[str, Any] = {}
    for key, default in _python_defaults(table):
        if key in rows[0]:
            continue
        value = default.arg if default.is_scalar else default.arg(None)
        missing[key] = getattr(value, "value", value)  # enum members as plain text
    return [{**missing, **row} for row in rows] if missing else rows


def insert_task(
    client_id: int,
    data: TaskInput,
    *,
    actor_id: int | None,
    source: str,
    reason: str,
    at: datetime,
    idempotency: tuple[str, str] | None = None,
    terms: ClockTerms | None = None,
) -> NewTask:
    """Write a new queued task with its SLA clock, duplicate flag, audit events and (when
    given as ``(key, request hash)``) idempotency key; in the session's transaction.

    A reused idempotency key raises ``IntegrityError`` and nothing is written.
    """
    task_type = data.task_type
    priority = Priority(data.priority).value
    row = _task_row(client_id, task_type.id, priority, data, actor_id, source, at, terms)
    key = duplicate_key(data.external_ref, data.fields) or {}
    common = {"client_id": client_id, "task_type_id": task_type.id,
              "since": at - DUPLICATE_WINDOW, **{f"key_{k}": v for k, v in key.items()}}
    audit = {"at": at, "actor_id": actor_id, "client_id": client_id, "ip": request_ip(),
             "reason": reason,
             "created": {"task_type": task_type.code, "source": source,
                         "external_ref": data.external_ref}}
    write = _write_sqlite if is_sqlite() else _write_postgres
    task_id, duplicate_of_id, duplicate_public_id, audit_rows, interest = write(
        row, common, tuple(sorted(key)), audit, idempotency)
    note_written(((audit_id, action, task_id, client_id, from_status, to_status)
                  for audit_id, action, from_status, to_status in audit_rows),
                 interest=interest)
    return NewTask(
        id=task_id, public_id=row["public_id"], task_type=task_type, priority=priority,
        external_ref=data.external_ref, state=data.state, fields=data.fields, source=source,
        received_at=at, due_at=row["due_at"], duplicate_of_id=duplicate_of_id,
        duplicate_of=PublicRef(duplicate_public_id) if duplicate_public_id else None,
    )


def _task_row(client_id: int, task_type_id: int, priority: str, data: TaskInput,
              actor_id: int | None, source: str, at: datetime,
              terms: ClockTerms | None) -> dict[str, Any]:
    clock = clock_columns(client_id, task_type_id, priority, at, terms=terms)
    clock["sla_state"] = SlaState(clock["sla_state"]).value
    return with_defaults(TASKS, [{
        "public_id": new_public_id(), "client_id": client_id, "task_type_id": task_type_id,
        "priority": priority, "priority_order": priority_order(priority),
        "external_ref": data.external_ref, "state": data.state, "fields": data.fields,
        "status": Status.QUEUED.value, "created_by_id": actor_id, "source": source,
        "received_at": at, "updated_at": at, **clock,
    }])[0]


def _audit_rows(task_id: int, duplicate_of_id: int | None, audit: Mapping[str, Any]
                ) -> list[dict[str, Any]]:
    """A new task's audit trail: created, ``received -> queued`` (checked against
    ``lifecycle.TRANSITIONS`` at import), and the duplicate flag."""
    base = {"at": audit["at"], "actor_id": audit["actor_id"], "client_id": audit["client_id"],
            "object_type": "task", "object_id": task_id, "ip": audit["ip"], "before": None,
            "from_status": None, "to_status": None, "reason": None, "after": None}
    rows = [
        base | {"action": "task.create", "after": audit["created"]},
        base | {"action": "task.transition", "from_status": Status.RECEIVED.value,
                "to_status": Status.QUEUED.value, "reason": audit["reason"]},
    ]
    if duplicate_of_id is not None:
        rows.append(base | {"action": "task.duplicate_flagged", "reason": DUPLICATE_REASON,
                            "after": {"duplicate_of_id": duplicate_of_id}})
    return rows


# --- SQLite: one statement per step --------------------------------------------------------


def _write_sqlite(row, common, key_names, audit, idempotency):
    session = db.session
    duplicate = session.execute(duplicate_query(key_names), common).first()
    duplicate_of_id, duplicate_public_id = duplicate if duplicate else (None, None)
    task_id = session.execute(
        insert(TASKS).values(**row, sop_id=current_sop_id(row["task_type_id"]),
                             duplicate_of_id=duplicate_of_id).returning(TASKS.c.id)
    ).scalar_one()
    rows = _audit_rows(task_id, duplicate_of_id, audit)
    audit_ids = session.execute(
        insert(AUDIT).returning(AUDIT.c.id, sort_by_parameter_order=True), rows).scalars()
    if idempotency is not None:
        key, digest = idempotency
        session.execute(insert(KEYS).values(client_id=row["client_id"], key=key,
                                            request_hash=digest, task_id=task_id,
                                            created_at=audit["at"]))
    written = [(audit_id, r["action"], r["from_status"], r["to_status"])
               for audit_id, r in zip(audit_ids, rows, strict=True)]
    return task_id, duplicate_of_id, duplicate_public_id, written, None  # hooks ask at commit


# --- PostgreSQL: one statement ------------------------------------------------------------


@cache
def _postgres_statement(columns: tuple[str, ...], key_names: tuple[str, ...],
                        keyed: bool) -> str:
    """The statement for one shape of row, duplicate key and idempotency, compacted so
    psycopg caches its parsing (test_intake_insert checks the size stays under the limit).
    """
    duplicate_sql = postgres_text(duplicate_query(key_names))
    interest_sql = postgres_text(interest_query())
    sop_sql = postgres_text(current_sop_id(_bind("task_type_id")).element)
    values = ", ".join(f"%({c})s::json" if c in JSON_COLUMNS else f"%({c})s" for c in columns)
    key_cte = """,
        keyed AS (
            INSERT INTO idempotency_keys (client_id, key, request_hash, task_id, created_at)
            SELECT %(client_id)s::integer, %(idempotency_key)s, %(request_hash)s, new.id,
                   %(at)s::timestamptz
              FROM new)""" if keyed else ""
    audit_select = f"""
            SELECT %(at)s::timestamptz, %(actor_id)s::integer, %(client_id)s::integer, 'task',
                   new.id, a.action, a.from_status, a.to_status, a.reason, a.after,
                   %(ip)s::varchar
              FROM new CROSS JOIN (VALUES
                   ('task.create', NULL::varchar, NULL::varchar, NULL::text,
                    %(created)s::json),
                   ('task.transition', '{Status.RECEIVED.value}', '{Status.QUEUED.value}',
                    %(reason)s::text, NULL)
                   ) AS a (action, from_status, to_status, reason, after)
             UNION ALL
            SELECT %(at)s, %(actor_id)s, %(client_id)s, 'task', new.id,
                   'task.duplicate_flagged', NULL, NULL, '{DUPLICATE_REASON}',
                   json_build_object('duplicate_of_id', new.duplicate_of_id), %(ip)s
              FROM new WHERE new.duplicate_of_id IS NOT NULL"""  # noqa: S608 - constants
    sql = f"""
        WITH duplicate AS ({duplicate_sql}),
        interest AS ({interest_sql}),
        new AS (
            INSERT INTO tasks ({", ".join(columns)}, sop_id, duplicate_of_id)
            VALUES ({values}, ({sop_sql}), (SELECT id FROM duplicate))
            RETURNING id, duplicate_of_id),
        logged AS (
            INSERT INTO audit_events (at, actor_id, client_id, object_type, object_id, action,
                                      from_status, to_status, reason, after, ip)
            {audit_select}
            RETURNING id, action, from_status, to_status){key_cte}
        SELECT new.id, new.duplicate_of_id,
               (SELECT public_id FROM duplicate) AS duplicate_public_id,
               (SELECT json_agg(json_build_array(id, action, from_status, to_status) ORDER BY id)
                  FROM logged) AS audit,
               interest.with_rules, interest.with_endpoints
          FROM new, interest"""  # noqa: S608 - model column names and module constants only
    return compact_sql(sql)


def _write_postgres(row, common, key_names, audit, idempotency):
    columns = tuple(row)
    sql = _postgres_statement(columns, key_names, idempotency is not None)
    params = {**common, **{c: json.dumps(v) if c in JSON_COLUMNS else v
                                    for c, v in row.items()},
              "at": audit["at"], "actor_id": audit["actor_id"], "ip": audit["ip"],
              "reason": audit["reason"], "created": json.dumps(audit["created"])}
    if idempotency is not None:
        params["idempotency_key"], params["request_hash"] = idempotency
    task_id, duplicate_of_id, duplicate_public_id, audit_rows, with_rules, with_endpoints = (
        driver_execute(sql, params).fetchone())
    return (task_id, duplicate_of_id, duplicate_public_id, [tuple(r) for r in audit_rows],
            (with_rules, with_endpoints))
