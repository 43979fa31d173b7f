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
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from ..db_types import PublicId, UTCDateTime, new_public_id, str_enum, utcnow
from ..extensions import db
from ..vocab import OPEN_STATUSES, PRIORITY_RANK, MessageKind, Priority, SlaState, Status

# Partial-index predicate for open work, in a fixed order (migration 0003 spells it out).
_OPEN_LIST = ", ".join(f"'{s.value}'" for s in Status if s in OPEN_STATUSES)


def priority_order(priority: Priority | str | None) -> int:
    """Queue sort key: 0 for urgent ... 3 for low, so one ascending index serves the claim order."""
    return 3 - PRIORITY_RANK[Priority(priority or Priority.NORMAL)]


def _priority_order_default(context) -> int:
    """Column default for inserts that do not go through the validator (Core bulk inserts)."""
    return priority_order(context.get_current_parameters().get("priority"))


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
        # The order claim_next and the lead board hand out queued work in.
        Index("ix_tasks_claim_order", "status", "priority_order", "due_at", "id"),
        Index("ix_tasks_client_received", "client_id", "received_at"),
        # The lead board's open-task list in queue order (assignment/board.py task_query): with
        # status leading the key, ix_tasks_claim_order cannot give that order across the eight
        # open statuses, so every open task was read and sorted (30 ms at 10,000 open tasks).
        Index("ix_tasks_open_queue", "priority_order", "due_at", "id",
              postgresql_where=text(f"status IN ({_OPEN_LIST})"),
              sqlite_where=text(f"status IN ({_OPEN_LIST})")),
        # Intake's duplicate check by the client's own reference (intake/insert.py): the
        # earliest match in the window in one probe (migration 0005 says why the order).
        Index("ix_tasks_client_external_ref", "client_id", "external_ref", "received_at", "id",
              postgresql_where=text("external_ref IS NOT NULL"),
              sqlite_where=text("external_ref IS NOT NULL")),
        # SLA reports: a client's tasks completed in a period (percentiles, rework, drill-down).
        Index("ix_tasks_client_completed", "client_id", "completed_at"),
        # The SLA sweep's two range scans (sla/sweep.py): status in the key, so paused
        # tasks past a threshold are skipped inside the index, not fetched and filtered.
        Index("ix_tasks_sla_at_risk", "sla_state", "status", "at_risk_at"),
        Index("ix_tasks_sla_breach", "sla_state", "status", "breach_at"),
        # Offers (provider_app/assignment/offers.py): partial, so the many tasks never offered
        # cost these indexes nothing, not even on the claim's and batch's status updates.
        Index("ix_tasks_offered_to", "offered_to_id",
              postgresql_where=text("offered_to_id IS NOT NULL"),
              sqlite_where=text("offered_to_id IS NOT NULL")),
        Index("ix_tasks_offer_expires", "offer_expires_at",
              postgresql_where=text("offer_expires_at IS NOT NULL"),
              sqlite_where=text("offer_expires_at IS NOT NULL")),
        CheckConstraint("escalation_level BETWEEN 0 AND 3", name="escalation_level_range"),
        CheckConstraint(
            "priority_order = CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 "
            "WHEN 'normal' THEN 2 ELSE 3 END",
            name="priority_order_matches",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    task_type_id: Mapped[int] = mapped_column(ForeignKey("task_types.id"), index=True)
    priority: Mapped[Priority] = mapped_column(
        str_enum(Priority, "priority"), default=Priority.NORMAL
    )
    # Derived from priority (validator below, insert default, CHECK constraint): an integer
    # sort key lets the claim query walk ix_tasks_claim_order instead of sorting every row.
    priority_order: Mapped[int] = mapped_column(SmallInteger, default=_priority_order_default)
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
    # First instant with MORE business time than the target elapsed (the next opening when
    # due_at is a closing time); at_risk_at/breach_at are cleared when the task closes.
    breach_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Outcome fixed at completion from the audited history (sla.outcome); None while open.
    sla_met: Mapped[bool | None] = mapped_column(Boolean)
    sla_elapsed_hours: Mapped[float | None] = mapped_column(Float)
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
    # Offer with a timeout (clients whose contract sets offer_timeout_minutes): the task stays
    # queued, offered to one person, until they accept, decline or let it lapse.
    offered_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    offer_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # User ids who declined or let an offer lapse in this round (the task's current stay in
    # the queue): it is not offered to them again until it has been assigned.
    offer_declined_ids: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Set when the retention job removed the payload (fields, documents, message text).
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}

    client = relationship("Client")
    task_type = relationship("TaskType")
    assignee = relationship("User", foreign_keys=[assignee_id])
    offered_to = relationship("User", foreign_keys=[offered_to_id])
    sop = relationship("Sop")
    lot = relationship("Lot")
    # The open task intake matched this one against (flagged for the lead, never dropped).
    duplicate_of = relationship("Task", remote_side=[id], foreign_keys=[duplicate_of_id])
    documents: Mapped[list[Document]] = relationship(
        back_populates="task", order_by="Document.uploaded_at"
    )
    messages: Mapped[list[Message]] = relationship(
        back_populates="task", order_by="Message.created_at"
    )

    @property
    def is_open(self) -> bool:
        return self.status not in (Status.COMPLETED, Status.CANCELLED)

    @validates("priority")
    def _sync_priority_order(self, _key: str, value: Priority | str) -> Priority | str:
        if value in PRIORITY_RANK:
            self.priority_order = priority_order(value)
        return value


# Intake's duplicate check by fields, for clients who send no reference (intake/insert.py
# compiles the same expressions): without them it filtered every task the client received
# that week. PostgreSQL only: SQLite is the single-user run, and its JSON path is a bind
# parameter there, which an expression index cannot match.
# The expression is written as PostgreSQL prints it back, so the migration test's schema
# comparison sees no difference; it is what ``func.lower(Task.fields[name].as_string())``
# compiles to there.
for _name in ("policy_number", "insured_name"):
    Index(f"ix_tasks_client_{_name}", Task.client_id,
          text(f"lower(((fields ->> '{_name}'::text)::character varying)::text)"),
          postgresql_where=text(f"(fields ->> '{_name}') IS NOT NULL")).ddl_if(
        dialect="postgresql")


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
