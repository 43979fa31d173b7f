"""Data retention: purge the payload of closed tasks once the client's retention period ends.

Clients send nonpublic personal information in intake fields, attachments and
messages; the provider keeps it only as long as the contract says
(``Client.retention_days``). A daily job removes, for completed and cancelled
tasks closed longer ago than that: the document files and rows, the intake
fields (``{}``) and the text of messages. What the SLA and QA reports need —
status, times, SLA and QA columns, the audit trail — stays.

The work is set-based and batched: one batch per client per run, each batch
one transaction with one audit event, and the job re-enqueues itself while
batches come back full. Files are unlinked only after the transaction commits,
so a rollback never leaves rows pointing at deleted files.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import delete, event, select, update
from sqlalchemy.orm import Session

from .audit import record
from .db_types import utcnow
from .extensions import db
from .intake.documents import storage_path
from .jobs import enqueue_after_commit
from .models import Client, Document, Message, Task
from .vocab import CLOSED_STATUSES

REDACTED = "[removed under the client's data retention policy]"
_FILES_KEY = "files_to_delete_after_commit"


def delete_after_commit(paths: Iterable[Path]) -> None:
    """Unlink ``paths`` once the current transaction commits (kept if it rolls back)."""
    db.session.info.setdefault(_FILES_KEY, []).extend(paths)


@event.listens_for(Session, "after_commit")
def _unlink_files(session: Session) -> None:
    for path in session.info.pop(_FILES_KEY, []):
        try:
            Path(path).unlink(missing_ok=True)
        except OSError:  # a file that cannot go now is an orphan, not a failed purge
            current_app.logger.warning("could not delete %s after purge", path)


@event.listens_for(Session, "after_soft_rollback")
def _keep_files(session: Session, previous_transaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(_FILES_KEY, None)


def purge_client_batch(client_id: int, retention_days: int, limit: int,
                       now: datetime | None = None) -> int:
    """Purge up to ``limit`` expired closed tasks of one client; returns how many."""
    now = now or utcnow()
    cutoff = now - timedelta(days=retention_days)
    task_ids = db.session.scalars(
        select(Task.id)
        .where(
            Task.client_id == client_id,
            Task.status.in_([s.value for s in CLOSED_STATUSES]),
            Task.completed_at < cutoff,
            Task.purged_at.is_(None),
        )
        .order_by(Task.id)
        .limit(limit)
    ).all()
    if not task_ids:
        return 0
    documents = db.session.execute(
        select(Document.id, Document.storage_name).where(Document.task_id.in_(task_ids))
    ).all()
    db.session.execute(
        delete(Document).where(Document.task_id.in_(task_ids)),
        execution_options={"synchronize_session": False},
    )
    messages = db.session.execute(
        update(Message).where(Message.task_id.in_(task_ids)).values(body=REDACTED),
        execution_options={"synchronize_session": False},
    ).rowcount
    db.session.execute(
        update(Task)
        .where(Task.id.in_(task_ids))
        # A version bump: anyone editing one of these tasks meanwhile gets a conflict.
        .values(fields={}, purged_at=now, version=Task.version + 1),
        execution_options={"synchronize_session": False},
    )
    record(
        "retention.purge", object_type="client", object_id=client_id, client_id=client_id,
        after={"tasks": len(task_ids), "documents": len(documents), "messages": messages,
               "closed_before": cutoff.isoformat(), "task_ids": [task_ids[0], task_ids[-1]]},
    )
    db.session.flush()
    delete_after_commit(storage_path(name) for _, name in documents)
    return len(task_ids)


def purge_expired(batch_size: int | None = None) -> dict[str, int]:
    """Daily job: one batch per client with a retention period; continues while batches are full.

    Safe to run twice or concurrently with itself: a purged task is never selected again.
    """
    limit = batch_size or current_app.config["RETENTION_BATCH_SIZE"]
    clients = db.session.execute(
        select(Client.id, Client.code, Client.retention_days)
        .where(Client.retention_days.is_not(None))
        .order_by(Client.id)
    ).all()
    purged: dict[str, int] = {}
    more = False
    for client_id, code, days in clients:
        count = purge_client_batch(client_id, days, limit)
        if count:
            purged[code] = count
        more = more or count == limit
    if more:
        enqueue_after_commit("provider_app.retention.purge_expired", batch_size, queue="low")
    return purged
