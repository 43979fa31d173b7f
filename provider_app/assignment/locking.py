"""Serialising work on one person's capacity, on PostgreSQL and on SQLite.

Every path that gives someone a task (claim, batch write-back, lead actions) first locks the
people involved, always in user-id order, and only then touches task rows. Capacity checks
made after the lock therefore see every earlier assignment to those people, and the fixed
order (people, then tasks) rules out deadlocks between the paths.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from ..database import is_sqlite
from ..extensions import db
from ..models import StaffProfile

PROFILES = StaffProfile.__table__
RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected


def lock_people(user_ids: Iterable[int]) -> None:
    """Lock these people's staff profiles until the transaction ends.

    PostgreSQL: ``SELECT ... FOR UPDATE`` on their rows. SQLite has no row locks; a no-op
    UPDATE takes the database write lock instead (waiting up to ``busy_timeout``), which
    serialises the rest of the transaction against every other writer.
    """
    ids = sorted(set(user_ids))
    if not ids:
        return
    if is_sqlite():
        db.session.execute(
            update(PROFILES).where(PROFILES.c.user_id.in_(ids))
            .values(user_id=PROFILES.c.user_id)
        )
        return
    db.session.execute(
        select(PROFILES.c.user_id).where(PROFILES.c.user_id.in_(ids))
        .order_by(PROFILES.c.user_id).with_for_update()
    ).all()


def is_retryable(exc: OperationalError) -> bool:
    """A lock conflict worth retrying: SQLite busy/locked, PostgreSQL deadlock/serialization."""
    code = getattr(exc.orig, "sqlstate", None)
    if code in RETRY_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig) or "database is busy" in str(exc.orig)
