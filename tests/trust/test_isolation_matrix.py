"""Cross-client isolation matrix: every route × every role restricted to client A, aimed
at client B's objects.

The objects are found generically: every model with ``public_id`` and ``client_id``
contributes client B's public ids, so a new client-owned model is covered without editing
this file. Every route with path arguments is tried with each of B's ids (GET, and its
other methods with an empty form): nothing may succeed, nothing of B's may appear in a
body, and none of B's rows may change. A path argument this file does not know fails the
test, so a new kind of route cannot slip past it.
"""

from __future__ import annotations

import re
import uuid
from datetime import date

import pytest
from sqlalchemy import select

from provider_app.accounts import issue_token
from provider_app.extensions import db as _db
from provider_app.models import Document, JobProgress, StaffClient, StaffProfile, Task
from provider_app.vocab import EscalationReason, Role, Status
from sla.escalations import open_escalation
from sla.reporting.models import StoredReport
from tests.factories import gen_client, gen_task, gen_task_type, gen_user

SECRET = "BRAVO-SECRET"
KNOWN_ARGUMENTS = {"public_id", "job_id", "code", "task_id", "effective_from", "token",
                   "filename", "answer"}
ALLOWED = {400, 401, 403, 404, 405, 409, 410, 422}
ROLES = [Role.CLIENT_USER, Role.CLIENT_ADMIN, Role.TEAM_LEAD, Role.SPECIALIST,
         Role.QA_REVIEWER]


def client_owned_models():
    for mapper in _db.Model.registry.mappers:
        columns = mapper.columns
        if "public_id" in columns and "client_id" in columns:
            yield mapper.class_


@pytest.fixture
def world(db):
    tt = gen_task_type(code="DATA")
    a = gen_client("ALPHA", name="Alpha Agency")
    b = gen_client("BRAVO", name=f"{SECRET} Carrier")
    gen_task(a, tt, external_ref="ALPHA-REF")
    task_b = gen_task(b, tt, external_ref=f"{SECRET}-REF",
                      fields={"description": f"{SECRET} payload"})
    specialist_b = gen_user(Role.SPECIALIST)
    done_b = gen_task(b, tt, status=Status.IN_PROGRESS, assignee=specialist_b,
                      external_ref=f"{SECRET}-WORK")
    _db.session.add(Document(client_id=b.id, task_id=task_b.id, filename=f"{SECRET}.pdf",
                             content_type="application/pdf", size=10, sha256="0" * 64,
                             storage_name=uuid.uuid4().hex))
    open_escalation(done_b, EscalationReason.SPECIALIST_EXCEPTION, detail=SECRET)
    issue_token(b, name=f"{SECRET} token")
    _db.session.add(JobProgress(client_id=b.id, kind="csv_import", result={"x": SECRET}))
    _db.session.add(StoredReport(client_id=b.id, period_start=date(2026, 1, 1),
                                 period_end=date(2026, 1, 31)))
    _db.session.flush()
    ids = []
    for model in client_owned_models():
        ids += _db.session.scalars(select(model.public_id).where(model.client_id == b.id)).all()
    job_ids = _db.session.scalars(select(JobProgress.id).where(JobProgress.client_id == b.id))
    return {"a": a, "b": b, "ids": ids, "job_ids": list(job_ids)}


def person(role: Role, world):
    if role in (Role.CLIENT_USER, Role.CLIENT_ADMIN):
        return gen_user(role, world["a"])
    user = gen_user(role)
    user.staff_profile = StaffProfile(tier="insurance_trained", capacity=5)
    user.staff_profile.client_links = [StaffClient(client_id=world["a"].id)]
    _db.session.flush()
    return user


def fill(rule, world) -> list[str]:
    """Every URL for ``rule`` aimed at client B (one per candidate id)."""
    unknown = set(rule.arguments) - KNOWN_ARGUMENTS
    assert not unknown, f"{rule.rule}: add {unknown} to the isolation matrix"
    if not rule.arguments:
        return []
    candidates = {
        "public_id": world["ids"], "job_id": world["job_ids"] + world["ids"],
        "task_id": world["ids"], "code": [world["b"].code], "effective_from": ["2020-01-01"],
        "token": [uuid.uuid4().hex], "filename": [], "answer": ["accept", "decline"],
    }
    main = next(a for a in ("public_id", "job_id", "code", "token", "filename")
                if a in rule.arguments)
    urls = []
    for value in candidates[main]:
        values = {arg: candidates[arg][0] if candidates[arg] else "x" for arg in rule.arguments}
        values[main] = value
        path = rule.rule
        for arg, val in values.items():
            path = re.sub(rf"<(?:[^<>:]+:)?{arg}>", str(val), path)  # any converter
        urls.append(path)
    return urls


def b_state(world):
    """Versions and statuses of B's rows, to prove no attempt changed any."""
    state = []
    for model in client_owned_models():
        columns = [c for c in ("status", "version", "resolved_at", "revoked_at",
                               "acknowledged_at", "enabled") if hasattr(model, c)]
        rows = _db.session.execute(
            select(model.public_id, *[getattr(model, c) for c in columns])
            .where(model.client_id == world["b"].id).order_by(model.public_id)
        ).all()
        state.append((model.__name__, [tuple(r) for r in rows]))
    return state


@pytest.mark.parametrize("role", ROLES)
def test_nothing_of_another_client_is_reachable(app, client, world, role):
    user = person(role, world)
    _db.session.commit()
    client.login(user)
    before = b_state(world)
    tried = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or "filename" in rule.arguments:
            continue
        for url in fill(rule, world):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                response = client.open(url, method=method, data={})
                tried += 1
                body = response.get_data(as_text=True)
                assert SECRET not in body, f"{role} {method} {url} leaked client B's data"
                if response.status_code in (301, 302, 303):
                    location = response.headers.get("Location", "")
                    assert "/login" in location or "/mfa" in location or method != "GET", (
                        f"{role} {method} {url} redirected to {location}")
                else:
                    assert response.status_code in ALLOWED, (
                        f"{role} {method} {url} answered {response.status_code}")
                _db.session.rollback()
    assert b_state(world) == before, f"{role} changed client B's data"
    print(f"isolation matrix: {role.value}: {tried} requests")
    assert tried > 100


def test_lists_never_contain_foreign_rows(client, world):
    client.login(person(Role.CLIENT_USER, world))
    for path in ("/portal/tasks", "/api/v1/tasks", "/portal/", "/portal/reports"):
        body = client.get(path).get_data(as_text=True)
        assert SECRET not in body, path


def test_the_markers_are_visible_to_their_own_client(client, world):
    """The matrix is only as good as its markers: B's own user does see them."""
    task = _db.session.scalar(select(Task).where(Task.client_id == world["b"].id))
    client.login(gen_user(Role.CLIENT_USER, world["b"]))
    assert SECRET in client.get(f"/portal/tasks/{task.public_id}").get_data(as_text=True)
