"""Intake's one-statement write (``intake.insert``): what it answers, what it writes, and
what it tells the commit hooks, on both databases."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from sqlalchemy import select, text

from provider_app.database import postgres_text
from provider_app.db_types import utcnow
from provider_app.intake import service
from provider_app.intake.insert import (
    DUPLICATE_FIELDS,
    DUPLICATE_WINDOW,
    _postgres_statement,
    duplicate_query,
    with_defaults,
)
from provider_app.intake.schemas import load_task
from provider_app.integrations import hooks
from provider_app.integrations.models import WebhookEndpoint
from provider_app.models import AuditEvent, Task
from sla.clock import clock_terms
from tests.conftest import is_postgres


def _post(client, world, **body):
    payload = {"task_type": world.data.code, "fields": {"description": "Key it"}, **body}
    return client.post("/api/v1/tasks", json=payload, headers=world.headers())


def test_the_answer_to_a_new_task_is_what_reading_it_back_gives(client, world, db):
    """The 201 body is built from the values written, not read back: it must still be
    exactly what GET answers for the same task."""
    created = _post(client, world, external_ref="R-1", state="NY", priority="high")
    assert created.status_code == 201
    read = client.get(f"/api/v1/tasks/{created.json['id']}", headers=world.headers())
    assert read.json == created.json


def test_each_priority_gets_its_own_contract_target(client, world, db):
    """The type and the clock terms come in one query that carries every priority's
    target; the task still gets its own priority's (2 h urgent, 8 h normal)."""
    urgent = _post(client, world, priority="urgent", external_ref="U-1")
    normal = _post(client, world, priority="normal", external_ref="N-1")
    hours = dict(db.session.execute(select(Task.public_id, Task.sla_target_hours).where(
        Task.public_id.in_([urgent.json["id"], normal.json["id"]]))).all())
    assert hours == {urgent.json["id"]: 2.0, normal.json["id"]: 8.0}
    lookup = service.TypeLookup(world.a.id)
    assert lookup(world.data.code) is not None
    for priority in ("urgent", "normal", "low"):
        assert lookup.terms(world.data, priority) == clock_terms(
            world.a.id, world.data.id, priority, lookup.at.date())
    assert lookup.terms(world.coi, "normal") is None  # not the type it looked up


def test_a_repeat_is_flagged_with_the_earlier_task_named(client, world, db):
    first = _post(client, world, external_ref="DUP-1")
    second = _post(client, world, external_ref="DUP-1")
    assert first.json["duplicate_of"] is None
    assert second.json["duplicate_of"] == first.json["id"]
    first_id = db.session.scalar(select(Task.id).where(Task.public_id == first.json["id"]))
    second_id = db.session.scalar(select(Task.id).where(Task.public_id == second.json["id"]))
    flagged = db.session.execute(
        select(AuditEvent.action, AuditEvent.after, AuditEvent.reason, AuditEvent.ip)
        .where(AuditEvent.object_id == second_id, AuditEvent.object_type == "task")
        .order_by(AuditEvent.id)).all()
    assert [row.action for row in flagged] == [
        "task.create", "task.transition", "task.duplicate_flagged"]
    assert flagged[2].after == {"duplicate_of_id": first_id}
    assert flagged[2].reason == "matches an open task received recently"
    assert {row.ip for row in flagged} == {"127.0.0.1"}


def test_commit_hooks_hear_of_new_tasks_only_from_interested_clients(app, world, db):
    """On PostgreSQL the write reads whether the client has rules or endpoints; a client
    with neither leaves nothing for the commit to look up. On SQLite every row is noted
    and the commit asks (as for rows the ORM flushes)."""
    data = load_task({"task_type": world.data.code, "fields": {"description": "x"}},
                     service.find_task_type)
    with app.test_request_context("/api/v1/tasks", method="POST"):
        service.take_task(world.a.id, data, actor=None, source="api")
        noted = db.session.info.get(hooks.EVENTS_KEY, [])
        assert noted == ([] if is_postgres(app) else [noted[0]]) and len(noted) <= 1
        db.session.add(WebhookEndpoint(client_id=world.a.id, url="https://hooks.example.test/in",
                                       events=["task.created"], secret_encrypted="x",
                                       secret_prefix="x"))
        db.session.flush()
        db.session.info.pop(hooks.EVENTS_KEY, None)
        new = service.take_task(world.a.id, data, actor=None, source="api")
        transition_id = db.session.scalar(select(AuditEvent.id).where(
            AuditEvent.object_id == new.id, AuditEvent.action == "task.transition"))
        assert db.session.info[hooks.EVENTS_KEY] == [(transition_id, world.a.id)]
        db.session.rollback()


@pytest.mark.parametrize("keyed", [False, True])
def test_every_statement_shape_fits_psycopg_statement_cache(keyed):
    """psycopg re-parses a statement on every execution if it is over 4,096 characters or
    50 parameters; intake's write must stay cached for each duplicate key it can match on."""
    columns = tuple(with_defaults(Task.__table__, [{
        "public_id": "", "client_id": 1, "task_type_id": 1, "priority": "normal",
        "priority_order": 2, "external_ref": None, "state": None, "fields": {},
        "status": "queued", "created_by_id": None, "source": "api", "received_at": None,
        "updated_at": None, "sla_target_hours": 1.0, "at_risk_at": None, "due_at": None,
        "breach_at": None, "sla_state": "on_track", "sla_paused_since": None}])[0])
    shapes = [("external_ref",), ()] + [
        tuple(sorted(c)) for n in (1, 2) for c in itertools.combinations(DUPLICATE_FIELDS, n)]
    for key_names in shapes:
        sql = _postgres_statement(columns, key_names, keyed)
        assert len(sql) <= 4096, (key_names, len(sql))
        assert len(set(re.findall(r"%\((\w+)\)s", sql))) <= 50, key_names


@pytest.mark.parametrize("key_names", [("external_ref",), ("policy_number",),
                                       ("insured_name",), ("insured_name", "policy_number")])
def test_the_duplicate_check_is_an_index_probe_on_postgresql(app, world, db, key_names):
    """The check as the write runs it (compiled to PostgreSQL text) reads one of intake's
    indexes, not every task the client received that week (migrations 0005, 0006)."""
    if not is_postgres(app):
        pytest.skip("checks PostgreSQL query plans of PostgreSQL-only indexes (migration 0006); "
                    "the PostgreSQL pass of make test runs it")
    db.session.execute(text("""
        INSERT INTO tasks (public_id, client_id, task_type_id, priority, priority_order,
                           external_ref, fields, status, source, received_at, updated_at,
                           escalation_level, rework_count, checklist, version, sla_state)
        SELECT md5(g::text), :client, :type, 'normal', 2, 'R-' || g,
               json_build_object('policy_number', 'P-' || g, 'insured_name', 'Insured ' || g),
               'queued', 'api', now() - (g % 100) * interval '1 hour', now(), 0, 0, '{}', 1,
               'on_track'
          FROM generate_series(1, 5000) AS g"""), {"client": world.a.id, "type": world.data.id})
    db.session.execute(text("ANALYZE tasks"))
    params = {"client_id": world.a.id, "task_type_id": world.data.id,
              "since": utcnow() - DUPLICATE_WINDOW,
              **{f"key_{name}": "x-17" for name in key_names}}
    sql = postgres_text(duplicate_query(key_names))
    plan = db.session.connection().exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}", params)
    plan = json.dumps(plan.scalar())
    used = set(re.findall(r'"Index Name": "(\w+)"', plan))
    wanted = {"ix_tasks_client_external_ref", "ix_tasks_client_policy_number",
              "ix_tasks_client_insured_name"}
    assert used and used <= wanted, plan
