"""Writing audit events: the one way any state change is recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g, has_request_context, request
from flask_login import current_user
from sqlalchemy import event
from sqlalchemy.orm import Session

from .db_types import utcnow
from .extensions import db
from .models import AuditEvent, User


class AuditImmutableError(RuntimeError):
    """Raised when code tries to change or delete an audit event."""


def request_ip() -> str | None:
    """The caller's address for audit rows (None outside a request)."""
    if not has_request_context():
        return None
    return request.remote_addr


def actor_id_of(actor: User | None) -> int | None:
    """The audited actor: ``actor`` when given, else the signed-in user (None for API
    tokens and jobs)."""
    if actor is not None:
        return actor.id
    if not has_request_context() or g.get("api_token_id") is not None:
        return None  # a token acts for its client, not a person (and has no session)
    user = current_user
    return user.id if getattr(user, "is_authenticated", False) else None


def record(
    action: str,
    *,
    object_type: str,
    object_id: int | None = None,
    client_id: int | None = None,
    actor: User | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Add an audit event to the current transaction (it commits with the change)."""
    event_row = AuditEvent(
        action=action,
        object_type=object_type,
        object_id=object_id,
        client_id=client_id,
        actor_id=actor_id_of(actor),
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        before=before,
        after=after,
        ip=request_ip(),
        at=at or utcnow(),
    )
    db.session.add(event_row)
    return event_row


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, flush_context, instances) -> None:
    """Audit events are append-only for application code."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AuditImmutableError("audit events cannot be changed or deleted")
