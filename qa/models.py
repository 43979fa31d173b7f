"""QA reviews, item results, disputes, lot-sampling strata and calibration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provider_app.db_types import PublicId, UTCDateTime, new_public_id, utcnow
from provider_app.extensions import db


class QaReview(db.Model):
    """One reviewer's scoring of one task against the SOP version it was worked under."""

    __tablename__ = "qa_reviews"
    __table_args__ = (Index("ix_qa_reviews_client_created", "client_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # The specialist whose work was reviewed (the maker), fixed at review time.
    maker_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    sop_id: Mapped[int] = mapped_column(ForeignKey("sops.id"))
    score: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    critical_failure: Mapped[bool] = mapped_column(Boolean, default=False)
    comments: Mapped[str] = mapped_column(Text, default="")
    calibration_id: Mapped[int | None] = mapped_column(ForeignKey("calibration_sessions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}

    items: Mapped[list[QaItemResult]] = relationship(
        back_populates="review", cascade="all, delete-orphan", lazy="selectin"
    )
    task = relationship("Task")


class QaItemResult(db.Model):
    __tablename__ = "qa_item_results"
    __table_args__ = (UniqueConstraint("review_id", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("qa_reviews.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("scorecard_items.id"))
    result: Mapped[str] = mapped_column(String(8))  # pass | fail | na
    error_category: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")

    review: Mapped[QaReview] = relationship(back_populates="items")
    item = relationship("ScorecardItem")


class QaDispute(db.Model):
    """A specialist's challenge to one finding, and the decision on it."""

    __tablename__ = "qa_disputes"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    item_result_id: Mapped[int] = mapped_column(ForeignKey("qa_item_results.id"), index=True)
    raised_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|upheld|overturned
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    item_result = relationship("QaItemResult")


class SamplingStratum(db.Model):
    """Z1.4 switching state for one client x task type stratum of lot sampling."""

    __tablename__ = "sampling_strata"
    __table_args__ = (UniqueConstraint("client_id", "task_type_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    task_type_id: Mapped[int] = mapped_column(ForeignKey("task_types.id"))
    severity: Mapped[str] = mapped_column(String(16), default="normal")
    state: Mapped[dict] = mapped_column(JSON, default=dict)
    history: Mapped[list] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CalibrationSession(db.Model):
    """A blind scoring exercise over completed files by a group of reviewers."""

    __tablename__ = "calibration_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    title: Mapped[str] = mapped_column(String(200))
    lead_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    task_ids: Mapped[list] = mapped_column(JSON, default=list)
    reviewer_ids: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
