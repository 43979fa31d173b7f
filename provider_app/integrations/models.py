"""Tables of the integrations area: e-mail intake, webhooks, automation rules, tags, policies.

Every row belongs to one client (``client_id``) so the access helpers scope it like any
other client data, and rows that appear in URLs carry an opaque ``public_id``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db_types import PublicId, UTCDateTime, new_public_id, utcnow
from ..extensions import db

INBOUND_STATUSES = ("triage", "awaiting_info", "created", "threaded", "rejected", "duplicate")
DELIVERY_STATUSES = ("pending", "sending", "retrying", "succeeded", "failed", "cancelled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class IntakeSender(db.Model):
    """An address (``ops@agency.com``) or a whole domain (``@agency.com``) allowed to send a
    client's work by e-mail. The client's own active users may always send."""

    __tablename__ = "intake_senders"
    __table_args__ = (UniqueConstraint("client_id", "pattern"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    pattern: Mapped[str] = mapped_column(String(254))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_domain(self) -> bool:
        return self.pattern.startswith("@")


class InboundEmail(db.Model):
    """One message received for one client: a new request, or a reply on a thread.

    ``(client_id, message_id)`` is unique, so a message delivered twice (an MTA retry, a
    second recipient at the same client) is recognised and never makes a second task.
    Requests that cannot become a task at once wait here: ``triage`` for a lead to decide,
    ``awaiting_info`` while the sender is asked for what is missing.
    """

    __tablename__ = "inbound_emails"
    __table_args__ = (
        UniqueConstraint("client_id", "message_id"),
        Index("ix_inbound_emails_client_status", "client_id", "status", "received_at"),
        CheckConstraint(_in("status", INBOUND_STATUSES), name="status_known"),
        CheckConstraint(_in("kind", ("request", "reply")), name="kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    message_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="request")
    status: Mapped[str] = mapped_column(String(16), default="triage")
    sender: Mapped[str] = mapped_column(String(254))
    sender_name: Mapped[str] = mapped_column(String(200), default="")
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    # The raw message under UPLOAD_DIR/inbound; not kept for refused senders.
    raw_storage: Mapped[str | None] = mapped_column(String(64))
    raw_size: Mapped[int] = mapped_column(BigInteger, default=0)
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    # [{"filename", "content_type", "size", "problem"}]: what came attached, and why a part
    # cannot be stored (the intake document checks' own message).
    attachments: Mapped[list] = mapped_column(JSON, default=list)
    problems: Mapped[list] = mapped_column(JSON, default=list)
    proposed_task_type_id: Mapped[int | None] = mapped_column(ForeignKey("task_types.id"))
    # Envelope and field values read from the text, as text (the form pre-fills with them).
    proposed: Mapped[dict] = mapped_column(JSON, default=dict)
    rule_notes: Mapped[list] = mapped_column(JSON, default=list)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), index=True)
    # A reply to a request still awaiting information points at that request.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_emails.id"), index=True)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_delivered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)

    client = relationship("Client")
    task = relationship("Task")
    proposed_task_type = relationship("TaskType")
    decided_by = relationship("User")
    parent = relationship("InboundEmail", remote_side=[id])


class WebhookEndpoint(db.Model):
    """A URL in the client's systems that receives signed event notifications.

    The signing secret must be readable to sign each delivery, so it cannot be hashed
    like an API token; it is stored encrypted (Fernet) and shown to the client once.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[list] = mapped_column(JSON, default=list)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    secret_prefix: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    client = relationship("Client")


class WebhookDelivery(db.Model):
    """One event for one endpoint: the payload as of the event, and its delivery state.

    ``dedupe_key`` (``audit:<audit event id>`` for events read from the audit trail) is unique
    per endpoint, so the commit hook and the catch-up job can never both deliver an event.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "dedupe_key"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(100))
    audit_event_id: Mapped[int | None] = mapped_column(ForeignKey("audit_events.id"), index=True)
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    endpoint: Mapped[WebhookEndpoint] = relationship()
    attempt_log: Mapped[list[WebhookAttempt]] = relationship(
        back_populates="delivery", order_by="WebhookAttempt.number"
    )


class WebhookAttempt(db.Model):
    """One HTTP attempt of a delivery: the delivery log the client reads."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(String(500))
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    triggered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    delivery: Mapped[WebhookDelivery] = relationship(back_populates="attempt_log")

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class AutomationRule(db.Model):
    """A client's intake rule: ordered conditions and actions, evaluated by ``rules``."""

    __tablename__ = "automation_rules"
    __table_args__ = (Index("ix_automation_rules_client_position", "client_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # True: every condition must hold; False: any one is enough.
    match_all: Mapped[bool] = mapped_column(Boolean, default=True)
    # True: later rules are not evaluated once this one matched.
    stop: Mapped[bool] = mapped_column(Boolean, default=False)
    conditions: Mapped[list] = mapped_column(JSON, default=list)
    actions: Mapped[list] = mapped_column(JSON, default=list)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    last_hit_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    client = relationship("Client")


class PolicyOnFile(db.Model):
    """A policy the client has told us about: certificate requests are checked against it."""

    __tablename__ = "policies_on_file"
    __table_args__ = (UniqueConstraint("client_id", "policy_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    policy_number: Mapped[str] = mapped_column(String(30))
    insured_name: Mapped[str] = mapped_column(String(200), default="")
    expires_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TaskTag(db.Model):
    """A label on a task set by automation (or a person): ``info-requested``, ``vip``…"""

    __tablename__ = "task_tags"
    __table_args__ = (Index("ix_task_tags_client_tag", "client_id", "tag"),)

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
