"""A database error part-way through a request rolls the whole request back.

The failure is real, not mocked: a trigger (created inside the test's
transaction, so it disappears with it) makes the database refuse the audit
event that task intake writes *after* it has inserted the task. The request
answers 500 in the API's error shape without the database's message, and
nothing it wrote survives: no task, no audit event, no idempotency key, and
no job enqueued (jobs are enqueued only after a commit).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from provider_app.jobs import get_queue
from provider_app.models import AuditEvent, IdempotencyKey, Task
from tests.conftest import AppClient, is_postgres
from tests.intake.intake_support import build_world
from tests.ops.ops_support import make_app

FAILURE = "simulated database failure"


@pytest.fixture
def failing_audit(app, db):
    """Make the database reject audit events about tasks (until the test ends)."""
    if is_postgres(app):
        db.session.execute(text(
            "CREATE FUNCTION tl_test_fail_audit() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{FAILURE}'; END; $$"
        ))
        db.session.execute(text(
            "CREATE TRIGGER tl_test_fail_audit BEFORE INSERT ON audit_events FOR EACH ROW "
            "WHEN (NEW.object_type = 'task') EXECUTE FUNCTION tl_test_fail_audit()"
        ))
    else:
        db.session.execute(text(
            "CREATE TRIGGER tl_test_fail_audit BEFORE INSERT ON audit_events "
            f"WHEN NEW.object_type = 'task' BEGIN SELECT RAISE(ABORT, '{FAILURE}'); END"
        ))
    db.session.commit()  # into the test's outer transaction: the request cannot undo it


@pytest.fixture
def production_like(app):
    """Errors handled as in production (the test app re-raises them instead)."""
    other = make_app(app, TESTING=False, PROPAGATE_EXCEPTIONS=False)
    other.test_client_class = AppClient
    return other


def test_a_database_error_mid_request_leaves_nothing_behind(
    production_like, db, redis_conn, failing_audit
):
    world = build_world()
    db.session.commit()
    tasks_before = db.session.scalar(select(func.count()).select_from(Task))
    events_before = db.session.scalar(select(func.count()).select_from(AuditEvent))

    response = production_like.test_client().post(
        "/api/v1/tasks", headers=world.headers(**{"Idempotency-Key": "rollback-1"}),
        json={"task_type": world.data.code, "external_ref": "ROLLBACK-1",
              "fields": {"description": "never stored"}},
    )
    assert response.status_code == 500
    assert set(response.get_json()) == {"error"}
    assert FAILURE not in response.get_data(as_text=True)

    assert db.session.scalar(select(func.count()).select_from(Task)) == tasks_before
    assert db.session.scalar(select(Task).where(Task.external_ref == "ROLLBACK-1")) is None
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == events_before
    assert db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "rollback-1")) \
        is None
    with production_like.app_context():
        assert get_queue("default").count == 0
