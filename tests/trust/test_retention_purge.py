"""The retention job purges payloads of long-closed tasks and keeps the metrics."""

from datetime import timedelta

from rq import SimpleWorker
from sqlalchemy import func, select

from provider_app.db_types import utcnow
from provider_app.intake.documents import storage_path
from provider_app.jobs import get_queue
from provider_app.models import AuditEvent, Document, Message, Task
from provider_app.retention import REDACTED, purge_expired
from provider_app.schedule import PERIODIC
from provider_app.vocab import MessageKind, Status
from tests.factories import gen_client, gen_task, gen_task_type


def _closed(client, tt, status, days_ago, **kw):
    task = gen_task(client, tt, status=status, fields={"insured": "Jane Roe, SSN 000-00-0000"},
                    **kw)
    task.completed_at = utcnow() - timedelta(days=days_ago)
    return task


def _world(db, add_document):
    tt = gen_task_type()
    keep30 = gen_client(retention_days=30)
    forever = gen_client()
    old = _closed(keep30, tt, Status.COMPLETED, 40)
    old_cancelled = _closed(keep30, tt, Status.CANCELLED, 31)
    recent = _closed(keep30, tt, Status.COMPLETED, 10)
    still_open = gen_task(keep30, tt, status=Status.IN_PROGRESS,
                          received_at=utcnow() - timedelta(days=90))
    no_policy = _closed(forever, tt, Status.COMPLETED, 4000)
    docs = {t.id: add_document(t, b"%PDF-1.4 secret " + t.public_id.encode())
            for t in (old, recent, still_open, no_policy)}
    for t in (old, recent):
        db.session.add(Message(client_id=t.client_id, task_id=t.id, kind=MessageKind.MESSAGE,
                               body="Driver DOB 1980-01-01"))
    db.session.flush()
    return {"client": keep30, "old": old, "old_cancelled": old_cancelled, "recent": recent,
            "open": still_open, "no_policy": no_policy, "docs": docs}


def test_purge_removes_payloads_and_keeps_metrics(app, db, add_document):
    w = _world(db, add_document)
    old = w["old"]
    before = (old.status, old.received_at, old.due_at, old.completed_at, old.sla_state,
              old.sla_target_hours, old.qa_outcome, old.task_type_id, old.priority)
    old_file = storage_path(w["docs"][old.id].storage_name)

    assert purge_expired() == {w["client"].code: 2}
    assert old_file.exists()  # files go only once the purge commits
    db.session.commit()
    assert not old_file.exists()

    db.session.expire_all()
    old = db.session.get(Task, w["old"].id)
    assert old.fields == {} and old.purged_at is not None
    assert (old.status, old.received_at, old.due_at, old.completed_at, old.sla_state,
            old.sla_target_hours, old.qa_outcome, old.task_type_id, old.priority) == before
    assert db.session.get(Task, w["old_cancelled"].id).fields == {}
    assert db.session.scalar(select(func.count()).select_from(Document).where(
        Document.task_id == old.id)) == 0
    assert db.session.scalar(select(Message.body).where(Message.task_id == old.id)) == REDACTED

    for key in ("recent", "open", "no_policy"):  # untouched
        task = db.session.get(Task, w[key].id)
        assert task.fields and task.purged_at is None, key
        assert storage_path(w["docs"][task.id].storage_name).exists()
    assert db.session.scalar(select(Message.body).where(
        Message.task_id == w["recent"].id)) == "Driver DOB 1980-01-01"

    [event] = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "retention.purge")).all()
    assert event.client_id == w["client"].id
    assert event.after["tasks"] == 2 and event.after["documents"] == 1
    assert "Jane Roe" not in str(event.after)


def test_purge_twice_changes_nothing_more(db, add_document):
    _world(db, add_document)
    purge_expired()
    assert purge_expired() == {}
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "retention.purge")) == 1


def test_purge_works_in_batches_and_continues_itself(app, db, redis_conn, add_document):
    w = _world(db, add_document)
    assert purge_expired(batch_size=1) == {w["client"].code: 1}
    queue = get_queue("low")
    assert queue.count == 0  # the continuation waits for the commit
    db.session.commit()
    assert queue.count == 1
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Task).where(
        Task.client_id == w["client"].id, Task.purged_at.is_not(None))) == 2
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "retention.purge")) == 2


def test_purge_is_scheduled_daily():
    [entry] = [p for p in PERIODIC if p.func_path == "provider_app.retention.purge_expired"]
    assert entry.cron == "15 3 * * *"
