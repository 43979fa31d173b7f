"""seed-scale: a consistent large data set, COPY on PostgreSQL, bounded on SQLite."""

import pytest
from sqlalchemy import func, select

from provider_app.models import AuditEvent, Client, Task, User
from provider_app.scale_seed import SQLITE_LIMIT, ScaleSeedError, seed_scale
from provider_app.vocab import CLOSED_STATUSES, Status
from qa.models import QaItemResult, QaReview
from sla.models import Escalation
from tests.conftest import is_postgres


def test_a_small_scale_set_is_consistent(app, db):
    report = seed_scale(1500, clients=3, staff=30, months=2, seed=7)
    assert report.tasks == 1500
    session = db.session
    assert session.scalar(select(func.count()).select_from(Client)
                          .where(Client.code.like("SC%"))) == 3
    assert session.scalar(select(func.count()).select_from(User)
                          .where(User.email.like("scale.%"))) == 30
    tasks = session.scalar(select(func.count()).select_from(Task))
    assert tasks >= 1500

    # Every task's history ends in its current status (the audit trail is the history).
    last_event = (
        select(AuditEvent.object_id, func.max(AuditEvent.id).label("last_id"))
        .where(AuditEvent.action == "task.transition")
        .group_by(AuditEvent.object_id).subquery()
    )
    mismatched = session.scalar(
        select(func.count()).select_from(Task)
        .join(last_event, last_event.c.object_id == Task.id)
        .join(AuditEvent, AuditEvent.id == last_event.c.last_id)
        .where(AuditEvent.to_status != Task.status)
    )
    assert mismatched == 0
    without_history = session.scalar(
        select(func.count()).select_from(Task)
        .where(Task.status != Status.RECEIVED, Task.id.not_in(select(last_event.c.object_id)))
    )
    assert without_history == 0
    assert report.audit_events == session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "task.transition"))

    # A realistic shape: mostly closed, some open, reviews with items, some escalations.
    open_count = session.scalar(select(func.count()).select_from(Task)
                                .where(Task.status.not_in([s.value for s in CLOSED_STATUSES])))
    assert 0 < open_count < tasks * 0.2
    assert report.qa_reviews > 0
    assert session.scalar(select(func.count()).select_from(QaItemResult)) == report.qa_item_results
    assert session.scalar(select(func.count()).select_from(QaReview)) == report.qa_reviews
    assert report.escalations == session.scalar(select(func.count()).select_from(Escalation))
    closed_in_sweep = session.scalar(select(func.count()).select_from(Task).where(
        Task.status.in_([s.value for s in CLOSED_STATUSES]), Task.at_risk_at.is_not(None)))
    assert closed_in_sweep == 0  # as sla.clock settles them; breach_at is kept
    late = session.scalar(select(func.count()).select_from(Task).where(Task.sla_met.is_(False)))
    met = session.scalar(select(func.count()).select_from(Task).where(Task.sla_met.is_(True)))
    assert met > late > 0

    # Running it again adds tasks to the same clients and staff.
    seed_scale(100, clients=3, staff=30, months=2, seed=8)
    assert session.scalar(select(func.count()).select_from(Task)) == tasks + 100
    assert session.scalar(select(func.count()).select_from(User)
                          .where(User.email.like("scale.%"))) == 30


def test_sqlite_refuses_a_large_load(app, db):
    if is_postgres(app):
        pytest.skip("the limit is for SQLite; PostgreSQL takes any size")
    with pytest.raises(ScaleSeedError, match=r"50,000 tasks into SQLite.*PostgreSQL"):
        seed_scale(SQLITE_LIMIT + 1, clients=1, staff=4)


def test_the_command_reports_bad_input_clearly(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed-scale", "--tasks", "-5"])
    assert result.exit_code != 0
    assert "--tasks" in result.output


def test_a_large_load_rebuilds_indexes_and_foreign_keys(app, db, monkeypatch):
    if not is_postgres(app):
        pytest.skip("indexes and foreign keys are deferred on PostgreSQL only")
    from sqlalchemy import text

    from provider_app import scale_seed

    monkeypatch.setattr(scale_seed, "DEFER_CONSTRAINTS_FROM", 100)  # take the big-load path
    report = seed_scale(300, clients=2, staff=12, months=1, seed=5)
    assert report.tasks == 300
    indexes = set(db.session.scalars(text(
        "SELECT indexname FROM pg_indexes WHERE tablename IN ('tasks', 'audit_events')")))
    assert {"ix_tasks_client_status", "ix_tasks_status_due", "ix_audit_object"} <= indexes
    keys = set(db.session.scalars(text(
        "SELECT conname FROM pg_constraint WHERE contype = 'f' "
        "AND conrelid IN ('tasks'::regclass, 'qa_item_results'::regclass)")))
    assert "fk_tasks_client_id_clients" in keys
    assert "fk_qa_item_results_review_id_qa_reviews" in keys
