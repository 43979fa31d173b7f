"""Pull mode: a specialist's "Get next" atomically claims the best task they may take.

One claim is one unit of work, committed here. The eligibility rules run in SQL
(:func:`~.eligibility.task_rules_sql`), inside the statement that claims, so the queue is
walked in ``ix_tasks_claim_order`` order and the first task the person may take is the one
claimed; no task is ever loaded into Python.

PostgreSQL, one statement: lock the person's profile row (``FOR UPDATE``: two claims by the
same person, say two tabs, cannot both spend their last capacity), check the person-level
rules in SQL, pick ``FOR UPDATE SKIP LOCKED`` (concurrent claimers each lock a different row
and never wait for one another), ``UPDATE ... WHERE status = 'queued'``, and insert the
``queued -> assigned`` audit event exactly as ``lifecycle.transition`` writes it (and the
``assignment.relaxed`` event when the claim needed a relaxed optional skill). Being one
statement, it is atomic on its own: outside a transaction it runs autocommitted.

SQLite: the person-level rules are checked in Python (no time-zone database in SQLite SQL) and
the queue is peeked without a lock; that read transaction is ended, and the claim is one
``UPDATE ... WHERE id = (SELECT ... LIMIT 1) AND status = 'queued' RETURNING`` which, as
the first statement of its transaction, waits for and then holds the database write lock:
pick, status guard and capacity guard are one atomic step. The audit event follows in the
same transaction.

Insurance-trained people are offered KPO work (and BPO work at risk of breaching) before
routine BPO work, so their time goes where only they can help: the first such task among
the next :data:`PREFERENCE_WINDOW` tasks they may take, else simply the next one.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache

import psycopg
from flask import current_app
from sqlalchemy import (
    Date,
    Dialect,
    Engine,
    Row,
    TextClause,
    bindparam,
    create_engine,
    insert,
    text,
)
from sqlalchemy.exc import OperationalError

from ..audit import request_ip
from ..database import compact_sql, is_sqlite
from ..db_types import UTCDateTime, utcnow
from ..extensions import db
from ..lifecycle import can_transition
from ..models import AuditEvent
from ..vocab import Status
from .eligibility import (
    CANDIDATES_FROM,
    PERSON_ROW,
    PERSON_ROW_CHECKED_PG,
    load_person,
    person_ctes,
    person_reasons,
    task_rules_sql,
)
from .locking import RETRY_SQLSTATES, is_retryable
from .urgency import AT_RISK_HORIZON

ATTEMPTS = 5
_ENGINE_KEY = "throughline.claim_engine"
REASON = "claimed with Get next"

# The claim writes the status in one atomic UPDATE; it must remain a legal lifecycle move.
if not can_transition(Status.QUEUED, Status.ASSIGNED):  # pragma: no cover
    raise RuntimeError("the lifecycle no longer allows queued -> assigned")

PREFERENCE_WINDOW = 10
"""An insurance-trained person's preference looks this far ahead in their queue, no further:
it never skips far past more urgent work, and never costs a scan of the whole queue."""

# Same definition as urgency.at_risk_clause: what an insurance-trained person gets first.
_PREFERRED_WORK = """(p.tier <> 'insurance_trained' OR ok.tier = 'KPO'
            OR t.sla_state IN ('at_risk', 'breached') OR t.at_risk_at <= :now
            OR t.due_at <= :soon)"""
_ORDER = "ORDER BY t.priority_order, t.due_at, t.id"
# The first task the person may take, in queue order.
_PICK_ANY = f"""
    SELECT t.id {CANDIDATES_FROM}
     WHERE t.status = 'queued' AND t.offered_to_id IS NULL AND {{rules}}
     {_ORDER} LIMIT {{limit}}"""
# The first preferred task among the next PREFERENCE_WINDOW the person may take. The window
# carries its own preference flag and queue keys, so the outer query only joins the task rows
# it locks (joining the window's ids back to the person and their types multiplied the
# primary-key look-ups by the number of types: 80 instead of 10).
_WINDOW = f"""
    SELECT t.id, t.priority_order AS po, t.due_at AS da, {_PREFERRED_WORK} AS pref
      {CANDIDATES_FROM}
     WHERE t.status = 'queued' AND t.offered_to_id IS NULL AND {{rules}}
     {_ORDER} LIMIT {PREFERENCE_WINDOW}"""  # noqa: S608 - module constants only
_PICK_PREFERRED = f"""
    SELECT t.id FROM tasks t JOIN ({_WINDOW}) w ON w.id = t.id
     WHERE w.pref AND t.status = 'queued'
     ORDER BY w.po, w.da, w.id LIMIT 1"""  # noqa: S608 - module constants only
# A claim needed relaxation iff the person misses a skill of the task type (only optional
# skills past their wait can be missed by a successful claim).
_RELAXED = """EXISTS (SELECT 1 FROM task_type_skills k
                 LEFT JOIN staff_skills s ON s.staff_id = :staff_id AND s.skill = k.skill
                WHERE k.task_type_id = c.task_type_id AND COALESCE(s.level, 0) < k.min_level)"""
_RELAXED_BY_TYPE = f"SELECT {_RELAXED} FROM (SELECT :task_type_id AS task_type_id) c"  # noqa: S608
RELAXED_REASON = "optional skills dropped after waiting in the queue"
# Offered tasks are never picked (see offers.py); a claim ends the task's offer round.
_SET = """status = 'assigned', assignee_id = :staff_id, version = version + 1,
          waiting_reason = NULL, offer_declined_ids = NULL, updated_at = :now"""


def _picks(rules: str, lock: str) -> tuple[str, str]:
    """(preferred, anything) sub-selects, each ending in ``lock``."""
    return (_PICK_PREFERRED.format(rules=rules) + lock,
            _PICK_ANY.format(rules=rules, limit=1) + lock)


@cache
def _statements(dialect: str) -> dict[str, TextClause]:
    """The claim statements of a dialect, built and compiled once per process."""
    rules = task_rules_sql(dialect)
    if dialect == "postgresql":
        preferred, anything = _picks(rules, " FOR UPDATE OF t SKIP LOCKED")
        # The person row (locked) and their task types are computed once: a CTE used several
        # times is materialised. COALESCE evaluates its second sub-select only when the first
        # finds nothing, so the fallback costs no extra round trip.
        claim = f"""
            {person_ctes(PERSON_ROW_CHECKED_PG + " FOR UPDATE OF sp")},
            claimed AS (
                UPDATE tasks SET {_SET}
                 WHERE tasks.id = COALESCE(({preferred}), ({anything}))
                   AND tasks.status = 'queued'
             RETURNING tasks.id, tasks.client_id, tasks.task_type_id),
            logged AS (
                INSERT INTO audit_events (at, actor_id, client_id, object_type, object_id,
                                          action, from_status, to_status, reason, after, ip)
                SELECT :now, :staff_id, c.client_id, 'task', c.id, 'task.transition',
                       'queued', 'assigned', :reason, CAST(:after AS json), :ip
                  FROM claimed c
                 UNION ALL
                SELECT :now, :staff_id, c.client_id, 'task', c.id, 'assignment.relaxed',
                       NULL, NULL, :relaxed_reason, CAST(:relaxed_after AS json), :ip
                  FROM claimed c WHERE {_RELAXED})
            SELECT id FROM claimed"""  # noqa: S608
        # Untyped binds: psycopg adapts datetimes and dates itself, and the casts SQLAlchemy
        # would add to typed ones lengthen the statement past psycopg's cache (see compact_sql).
        return {"claim": text(compact_sql(claim))}
    # SQLite: typed binds, so datetimes become the text format the columns are stored in.
    binds = (bindparam("now", type_=UTCDateTime), bindparam("soon", type_=UTCDateTime),
             bindparam("today", type_=Date))

    def typed(sql: str) -> TextClause:
        return text(sql).bindparams(*(b for b in binds if f":{b.key}" in sql))

    statements: dict[str, TextClause] = {"relaxed": text(_RELAXED_BY_TYPE)}
    ctes = person_ctes(PERSON_ROW)
    for name, pick in zip(("preferred", "anything"), _picks(rules, ""), strict=True):
        claim = f"""
            {ctes}
            UPDATE tasks SET {_SET}
             WHERE id = ({pick}) AND status = 'queued'
         RETURNING id, client_id, task_type_id"""  # noqa: S608 - module constants only
        statements[f"peek_{name}"] = typed(f"{ctes} {pick}")
        statements[f"claim_{name}"] = typed(claim)
    return statements


def claim_next(staff_id: int) -> int | None:
    """Claim the best eligible queued task for ``staff_id`` and return its id, or None.

    None also when the user does not exist or is not an available, on-shift specialist.
    Commits its own claim; call it with no other pending changes in the session.
    """
    if not is_sqlite() and _session_is_idle():
        return _claim_on_own_connection(staff_id)
    for attempt in range(ATTEMPTS):
        try:
            task_id = _claim_sqlite(staff_id) if is_sqlite() else _claim_postgres(staff_id)
            db.session.commit()
            return task_id
        except OperationalError as exc:
            db.session.rollback()
            if attempt == ATTEMPTS - 1 or not is_retryable(exc):
                raise
    return None  # pragma: no cover - the loop always returns or raises


def _params(staff_id: int, now: datetime) -> dict:
    return {"staff_id": staff_id, "now": now, "soon": now + AT_RISK_HORIZON,
            "today": now.date()}


def _claim_params(staff_id: int, now: datetime) -> dict:
    return _params(staff_id, now) | {
        "after": json.dumps({"assignee_id": staff_id}), "ip": request_ip(),
        "relaxed_after": json.dumps({"assignee_id": staff_id, "rule": "optional_skills"}),
        "reason": REASON, "relaxed_reason": RELAXED_REASON}


def _claim_postgres(staff_id: int) -> int | None:
    row = db.session.connection().execute(
        _statements("postgresql")["claim"], _claim_params(staff_id, utcnow())).first()
    return None if row is None else row.id


# --- PostgreSQL outside a transaction: the claim on a connection of its own ----------------


def _session_is_idle() -> bool:
    """The session holds no transaction (so no locks, no snapshot a claim could contradict)
    and is bound to the app's engine, not to a caller's connection (as tests bind it)."""
    session = db.session()
    return not session.in_transaction() and isinstance(session.get_bind(), Engine)


def _claim_engine() -> Engine:
    """A pool of this app's own for claims, without ``pool_pre_ping``.

    The ping is one more round trip per claim, and ``claim_next`` does not need it: its
    claim is the first statement of its transaction, so a connection found dead fails that
    statement, is thrown away and the claim retried on a fresh one.
    """
    app = current_app._get_current_object()
    engine = app.extensions.get(_ENGINE_KEY)
    if engine is None:
        # Autocommit: the claim is one statement (its audit rows are CTEs of it), so it is
        # atomic by itself, and BEGIN and COMMIT would be two more round trips per claim.
        options = app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}) | {
            "pool_pre_ping": False, "isolation_level": "AUTOCOMMIT"}
        engine = app.extensions[_ENGINE_KEY] = create_engine(db.engine.url, **options)
    return engine


@cache
def _driver_sql(dialect: Dialect) -> dict[str, str]:
    """The PostgreSQL statements as psycopg runs them (``%(name)s`` placeholders)."""
    return {name: str(stmt.compile(dialect=dialect))
            for name, stmt in _statements("postgresql").items()}


def _claim_on_own_connection(staff_id: int) -> int | None:
    """The claim and its audit rows as one autocommitted statement on a pooled psycopg
    connection.

    Same statement as the session path, minus the session and the ORM's per-execution
    work (about half the client CPU of a claim) and the BEGIN / COMMIT round trips: a
    transient failure (lost connection, deadlock, serialization) is retried like the
    session path's.
    """
    sql = _driver_sql(db.engine.dialect)
    for attempt in range(ATTEMPTS):
        conn = _claim_engine().raw_connection()
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql["claim"], _claim_params(staff_id, utcnow()))
                row = cursor.fetchone()
            return None if row is None else row[0]
        except psycopg.OperationalError as exc:
            lost = conn.dbapi_connection.closed  # psycopg closes a connection it has lost
            if lost:
                conn.invalidate()
            else:
                conn.rollback()
            if attempt == ATTEMPTS - 1 or not (lost or exc.sqlstate in RETRY_SQLSTATES):
                raise
        finally:
            conn.close()
    return None  # pragma: no cover - the loop always returns or raises


def _claim_sqlite(staff_id: int) -> int | None:
    now = utcnow()
    person = load_person(staff_id)
    if person is None or person_reasons(person, now):
        return None
    statements = _statements("sqlite")
    params = _params(staff_id, now)
    conn = db.session.connection()
    passes = [name for name in ("preferred", "anything")
              if conn.execute(statements[f"peek_{name}"], params).first()]
    if not passes:
        return None
    # End the read transaction: an SQLite write after reads in one transaction fails at once
    # if another writer committed in between; one that starts with the write waits its turn.
    db.session.commit()
    conn = db.session.connection()
    for name in passes:
        row = conn.execute(statements[f"claim_{name}"], params).first()
        if row is not None:
            _audit(row, staff_id, now)
            relaxed = conn.execute(statements["relaxed"], {
                "staff_id": staff_id, "task_type_id": row.task_type_id}).scalar()
            if relaxed:
                _audit_relaxed(row, staff_id, now)
            return row.id
    return None


def _common(row: Row, staff_id: int, now: datetime) -> dict:
    return {"at": now, "actor_id": staff_id, "client_id": row.client_id, "object_type": "task",
            "object_id": row.id, "before": None, "ip": request_ip()}


def _audit(row: Row, staff_id: int, now: datetime) -> None:
    """The lifecycle's transition event, as ``audit.record`` would write it."""
    db.session.connection().execute(insert(AuditEvent.__table__), [_common(row, staff_id, now) | {
        "action": "task.transition", "from_status": Status.QUEUED.value,
        "to_status": Status.ASSIGNED.value, "reason": REASON,
        "after": {"assignee_id": staff_id}}])


def _audit_relaxed(row: Row, staff_id: int, now: datetime) -> None:
    db.session.connection().execute(insert(AuditEvent.__table__), [_common(row, staff_id, now) | {
        "action": "assignment.relaxed", "from_status": None, "to_status": None,
        "reason": RELAXED_REASON,
        "after": {"assignee_id": staff_id, "rule": "optional_skills"}}])
