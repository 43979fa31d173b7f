"""Idempotent task creation for the API: a retried POST never creates a second task.

A client sends ``Idempotency-Key``; the first successful request stores the key
with a hash of its canonical JSON body and the task it created (in the task's own INSERT
statement, see ``insert``). The same key
with the same body replays that task (200); with another body it is refused
(409). Keys are unique per client in the database, so a repeat, or two
concurrent requests with one key, cannot both create: the later insert fails,
its work is rolled back and it replays the stored task. Keys live 48 hours.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..audit import record
from ..db_types import utcnow
from ..extensions import db
from ..models import IdempotencyKey, Task
from .schemas import IntakeInvalid

KEEP_FOR = timedelta(hours=48)
T = TypeVar("T")
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class IdempotencyConflict(Exception):
    """The key was already used with a different request body."""


class BadIdempotencyKey(ValueError):
    """The header value cannot be a key."""


def check_key(raw: str | None) -> str | None:
    """The key from the header (None when absent); printable ASCII, 1-255 characters."""
    if raw is None:
        return None
    key = raw.strip()
    if not _KEY.fullmatch(key):
        raise BadIdempotencyKey(
            "Use 1 to 255 printable ASCII characters without spaces, e.g. a UUID."
        )
    return key


def body_hash(payload: Any) -> str:
    """SHA-256 of the body as canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(client_id: int, key: str, digest: str) -> Task | None:
    row = db.session.execute(
        select(IdempotencyKey.request_hash, IdempotencyKey.task_id).where(
            IdempotencyKey.client_id == client_id, IdempotencyKey.key == key
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != digest:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request body."
        )
    return db.session.get(Task, row.task_id)


def create_once(
    client_id: int, key: str | None, payload: Any,
    create: Callable[[tuple[str, str] | None], T],
) -> tuple[T | Task, bool]:
    """Run ``create`` unless ``key`` was seen: returns (the new or earlier task, created).

    ``create`` gets ``(key, body hash)`` to write with its task (None without a key). The
    first use of a key costs no extra read: the unique constraint catches a repeat, whose
    work is rolled back before the earlier task is replayed (200) or the reuse refused
    (409). A body that fails validation is checked against the key too, so reusing a key
    with a different, invalid body is still a 409.
    """
    if key is None:
        return create(None), True
    digest = body_hash(payload)
    try:
        return create((key, digest)), True
    except IntakeInvalid:
        existing = _replay(client_id, key, digest)
        if existing is not None:
            return existing, False
        raise
    except IntegrityError:
        # The key is known (a retry, or a concurrent request that committed first).
        db.session.rollback()
        existing = _replay(client_id, key, digest)
        if existing is None:
            raise
        return existing, False


def purge_expired_keys() -> int:
    """Periodic job: forget keys older than 48 hours (the promise is at least 24)."""
    cutoff = utcnow() - KEEP_FOR
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    removed = result.rowcount or 0
    if removed:
        record("idempotency.purge", object_type="idempotency_key", reason=f"{removed} removed")
    return removed
