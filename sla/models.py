"""Escalations beside the lifecycle, their rules, notifications and the e-mail outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provider_app.db_types import PublicId, UTCDateTime, new_public_id, str_enum, utcnow
from provider_app.extensions import db
from provider_app.vocab import EscalationReason

# 1 team lead -> 2 operations manager -> 3 client account owner.
TOP_LEVEL = 3


class Escalation(db.Model):
    """A task that needs a lead's attention, and the path to resolving it."""

    __tablename__ = "escalations"
    __table_args__ = (
        Index("ix_escalations_client_open", "client_id", "resolved_at"),
        # At most one open escalation per task and reason: the sweep can run twice safely.
        Index(
            "uq_escalations_open_task_reason",
            "task_id",
            "reason",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        # The sweep's level check: only escalations still waiting for someone.
        Index(
            "ix_escalations_waiting",
            "level",
            "level_changed_at",
            sqlite_where=text("resolved_at IS NULL AND acknowledged_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL AND acknowledged_at IS NULL"),
        ),
        CheckConstraint(f"level BETWEEN 1 AND {TOP_LEVEL}", name="level_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    reason: Mapped[EscalationReason] = mapped_column(
        str_enum(EscalationReason, "escalation_reason")
    )
    level: Mapped[int] = mapped_column(Integer, default=1)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    detail: Mapped[str] = mapped_column(Text, default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    level_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}

    task = relationship("Task")
    client = relationship("Client")
    owner = relationship("User", foreign_keys=[owner_id])
    opened_by = relationship("User", foreign_keys=[opened_by_id])
    acknowledged_by = relationship("User", foreign_keys=[acknowledged_by_id])
    resolved_by = relationship("User", foreign_keys=[resolved_by_id])

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def state(self) -> str:
        """open / acknowledged / resolved, for people (queue badges, the client's view)."""
        if self.resolved_at is not None:
            return "resolved"
        return "acknowledged" if self.acknowledged_at is not None else "open"


class EscalationRule(db.Model):
    """Per client: raise the level when an escalation stays unacknowledged this long."""

    __tablename__ = "escalation_rules"
    __table_args__ = (
        CheckConstraint(f"from_level BETWEEN 1 AND {TOP_LEVEL - 1}", name="from_level_range"),
        CheckConstraint("ack_minutes > 0", name="ack_minutes_positive"),
        UniqueConstraint("client_id", "from_level"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    from_level: Mapped[int] = mapped_column(Integer)
    ack_minutes: Mapped[int] = mapped_column(Integer)


class Notification(db.Model):
    """An in-app notice for one user."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_read", "user_id", "read_at"),
        Index("ix_notifications_user_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"))
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxEmail(db.Model):
    """E-mail written in the same transaction as its cause; a job sends it later."""

    __tablename__ = "outbox_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
