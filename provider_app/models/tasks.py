"""Tasks, the lots they arrive in, their documents and messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db_types import PublicId, UTCDateTime, new_public_id, str_enum, utcnow
from ..extensions import db
from ..vocab import MessageKind, Priority, SlaState, Status


class Lot(db.Model):
    """A batch of tasks from one bulk intake: the unit of lot sampling."""

    __tablename__ = "lots"
    __table_args__ = (Index("ix_lots_client_hash", "client_id", "file_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    task_type_id: Mapped[int | None] = mapped_column(ForeignKey("task_types.id"))
    source: Mapped[str] = mapped_column(String(16), default="csv")
    file_name: Mapped[str] = mapped_column(String(255), default="")
    file_hash: Mapped[str | None] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # QA lot-sampling outcome: None until inspected, then True/False.
    qa_accepted: Mapped[bool | None] = mapped_column(Boolean)


class Task(db.Model):
    """One unit of outsourced work moving through the lifecycle."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_client_status", "client_id", "status"),
        Index("ix_tasks_assignee_status", "assignee_id", "status"),
        Index("ix_tasks_status_due", "status", "due_at"),
        Index("ix_tasks_client_received", "client_id", "received_at"),
        CheckConstraint("escalation_level BETWEEN 0 AND 3", name="escalation_level_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    task_type_id: Mapped[int] = mapped_column(ForeignKey("task_types.id"), index=True)
    priority: Mapped[Priority] = mapped_column(
        str_enum(Priority, "priority"), default=Priority.NORMAL
    )
    external_ref: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(2))
    fields: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[Status] = mapped_column(str_enum(Status, "status"), default=Status.RECEIVED)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"), index=True)
    sop_id: Mapped[int | None] = mapped_column(ForeignKey("sops.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(String(16), default="portal")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # SLA clock: target in hours, paused seconds so far, and when the current pause began.
    sla_target_hours: Mapped[float | None] = mapped_column(Float)
    sla_paused_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_state: Mapped[SlaState] = mapped_column(
        str_enum(SlaState, "sla_state"), default=SlaState.ON_TRACK
    )
    at_risk_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    qa_outcome: Mapped[str | None] = mapped_column(String(16))
    qa_reason: Mapped[str | None] = mapped_column(String(200))
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    # Why automatic assignment left it queued (shown to leads).
    waiting_reason: Mapped[str | None] = mapped_column(String(300))
    checklist: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}

    client = relationship("Client")
    task_type = relationship("TaskType")
    assignee = relationship("User", foreign_keys=[assignee_id])
    sop = relationship("Sop")
    lot = relationship("Lot")
    documents: Mapped[list[Document]] = relationship(
        back_populates="task", order_by="Document.uploaded_at"
    )
    messages: Mapped[list[Message]] = relationship(
        back_populates="task", order_by="Message.created_at"
    )

    @property
    def is_open(self) -> bool:
        return self.status not in (Status.COMPLETED, Status.CANCELLED)


class Document(db.Model):
    """A file attached to a task, stored outside the web root under a generated name."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="intake")
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_name: Mapped[str] = mapped_column(String(64), unique=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    task: Mapped[Task] = relationship(back_populates="documents")


class Message(db.Model):
    """Conversation on a task: messages, info requests and their answers, notes."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[MessageKind] = mapped_column(str_enum(MessageKind, "message_kind"))
    body: Mapped[str] = mapped_column(Text)
    # Internal notes are never shown to the client.
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    task: Mapped[Task] = relationship(back_populates="messages")
    author = relationship("User")


class IdempotencyKey(db.Model):
    """An API intake key, kept per client so a retried POST never duplicates a task."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("client_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class JobProgress(db.Model):
    """User-visible progress of a background job, kept after Redis forgets the job."""

    __tablename__ = "job_progress"

    id: Mapped[str] = mapped_column(PublicId, primary_key=True, default=new_public_id)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
