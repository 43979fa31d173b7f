"""Idempotency keys: kept at least 24 h, purged after 48 h by a periodic job, and two
concurrent requests with one key create one task (PostgreSQL, real connections)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from provider_app.db_types import utcnow
from provider_app.extensions import db as _db
from provider_app.intake import idempotency
from provider_app.models import IdempotencyKey, Task
from provider_app.schedule import PERIODIC
from tests.conftest import is_postgres
from tests.intake.intake_support import build_world


def _post(client, world, key, description="x"):
    return client.post("/api/v1/tasks", headers=world.headers(**{"Idempotency-Key": key}),
                       json={"task_type": world.data.code, "fields": {"description": description}})


def test_a_key_still_replays_after_a_day_and_is_purged_after_two(client, world, db):
    first = _post(client, world, "day-old")
    row = db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "day-old"))
    row.created_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    assert _post(client, world, "day-old").json["id"] == first.json["id"]
    assert idempotency.purge_expired_keys() == 0
    row.created_at = utcnow() - timedelta(hours=49)
    db.session.flush()
    assert idempotency.purge_expired_keys() == 1
    assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_the_purge_is_a_registered_periodic_job():
    entry = next(p for p in PERIODIC if p.name == "idempotency-purge")
    assert entry.func_path == "provider_app.intake.idempotency.purge_expired_keys"


def test_body_hash_is_canonical():
    assert idempotency.body_hash({"a": 1, "b": [1, 2]}) == idempotency.body_hash(
        {"b": [1, 2], "a": 1})
    assert idempotency.body_hash({"a": 1}) != idempotency.body_hash({"a": 2})


@pytest.mark.postgres_only
def test_two_concurrent_posts_with_one_key_create_one_task(app):
    """A holds the key uncommitted; B's insert waits on it, fails, and replays A's task."""
    if not is_postgres(app):
        pytest.skip("needs PostgreSQL row locks between connections")
    with app.app_context():
        world = build_world()
        _db.session.commit()
        client_id = world.a.id
        payload = {"task_type": world.data.code, "fields": {"description": "race"}}
        results: dict[str, object] = {}
        try:
            from provider_app.intake import service
            from provider_app.intake.schemas import load_task

            def create(keyed):
                data = load_task(payload, service.find_task_type)
                return service.take_task(client_id, data, actor=None, source="api",
                                         idempotency=keyed)

            winner, created = idempotency.create_once(client_id, "race-key", payload, create)
            assert created  # flushed, not committed: the key row is locked by this transaction

            def second_request():
                with app.test_client() as other:
                    response = _post(other, world, "race-key", "race")
                    results["status"] = response.status_code
                    results["id"] = response.json.get("id")

            thread = threading.Thread(target=second_request)
            thread.start()
            time.sleep(1.0)  # B has read "no key" and now waits on A's row lock
            assert thread.is_alive()
            winner_public_id = winner.public_id
            _db.session.commit()
            thread.join(timeout=30)
            assert results == {"status": 200, "id": winner_public_id}
            count = _db.session.scalar(select(func.count()).select_from(Task)
                                       .where(Task.client_id == client_id))
            assert count == 1
        finally:
            _cleanup(world)


def _cleanup(world) -> None:
    """This test committed for real: remove what it wrote, children first."""
    from provider_app.models import (
        ApiToken,
        AuditEvent,
        CalendarVersion,
        Client,
        Contract,
        ScorecardItem,
        SlaTarget,
        Sop,
        SopStep,
        TaskType,
        TaskTypeSkill,
        User,
        UserRole,
    )

    _db.session.rollback()
    clients = [world.a.id, world.b.id]
    types = [world.data.id, world.coi.id, world.endt.id]
    users = list(_db.session.scalars(select(User.id).where(User.client_id.in_(clients))))
    sops = list(_db.session.scalars(select(Sop.id).where(Sop.task_type_id.in_(types))))
    for stmt in (
        delete(IdempotencyKey).where(IdempotencyKey.client_id.in_(clients)),
        delete(AuditEvent).where(AuditEvent.client_id.in_(clients)),
        delete(AuditEvent).where(AuditEvent.actor_id.in_(users)),
        delete(Task).where(Task.client_id.in_(clients)),
        delete(ApiToken).where(ApiToken.client_id.in_(clients)),
        delete(UserRole).where(UserRole.user_id.in_(users)),
        delete(User).where(User.id.in_(users)),
        delete(SlaTarget).where(SlaTarget.task_type_id.in_(types)),
        delete(Contract).where(Contract.client_id.in_(clients)),
        delete(CalendarVersion).where(CalendarVersion.client_id.in_(clients)),
        delete(SopStep).where(SopStep.sop_id.in_(sops)),
        delete(ScorecardItem).where(ScorecardItem.sop_id.in_(sops)),
        delete(Sop).where(Sop.id.in_(sops)),
        delete(TaskTypeSkill).where(TaskTypeSkill.task_type_id.in_(types)),
        delete(TaskType).where(TaskType.id.in_(types)),
        delete(Client).where(Client.id.in_(clients)),
    ):
        _db.session.execute(stmt)
    _db.session.commit()
