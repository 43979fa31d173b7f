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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provider_app.db_types import PublicId, UTCDateTime, new_public_id, utcnow
from provider_app.extensions import db


class QaReview(db.Model):
    """One reviewer's scoring of one task against the SOP version it was worked under."""

    __tablename__ = "qa_reviews"
    __table_args__ = (
        Index("ix_qa_reviews_client_created", "client_id", "created_at"),
        Index("ix_qa_reviews_maker_completed", "maker_id", "completed_at"),
        # One open (claimed, not yet scored) production review per task: two reviewers
        # claiming the same file at once cannot both win.
        Index(
            "uq_qa_reviews_open_claim",
            "task_id",
            unique=True,
            sqlite_where=text("completed_at IS NULL AND calibration_id IS NULL"),
            postgresql_where=text("completed_at IS NULL AND calibration_id IS NULL"),
        ),
    )

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
    reviewer = relationship("User", foreign_keys=[reviewer_id])
    maker = relationship("User", foreign_keys=[maker_id])
    sop = relationship("Sop")


class QaItemResult(db.Model):
    """One scorecard item's result in a review; a failed one is a finding."""

    __tablename__ = "qa_item_results"
    __table_args__ = (UniqueConstraint("review_id", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    review_id: Mapped[int] = mapped_column(ForeignKey("qa_reviews.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("scorecard_items.id"))
    result: Mapped[str] = mapped_column(String(8))  # pass | fail | na
    error_category: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")

    review: Mapped[QaReview] = relationship(back_populates="items")
    item = relationship("ScorecardItem")
    disputes: Mapped[list[QaDispute]] = relationship(
        back_populates="item_result", order_by="QaDispute.created_at", lazy="selectin"
    )


class QaDispute(db.Model):
    """A specialist's challenge to one finding, and the decision on it."""

    __tablename__ = "qa_disputes"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    item_result_id: Mapped[int] = mapped_column(ForeignKey("qa_item_results.id"), index=True)
    raised_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|upheld|overturned
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    item_result: Mapped[QaItemResult] = relationship(back_populates="disputes")
    raised_by = relationship("User", foreign_keys=[raised_by_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])


class SamplingStratum(db.Model):
    """Z1.4 switching state for one client x task type stratum of lot sampling."""

    __tablename__ = "sampling_strata"
    __table_args__ = (UniqueConstraint("client_id", "task_type_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    task_type_id: Mapped[int] = mapped_column(ForeignKey("task_types.id"))
    severity: Mapped[str] = mapped_column(String(16), default="normal")
    state: Mapped[dict] = mapped_column(JSON, default=dict)
    history: Mapped[list] = mapped_column(JSON, default=list)
    # Acceptance inspection discontinued (MIL-STD-105E §8.4): every task gets full review.
    stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}

    client = relationship("Client")
    task_type = relationship("TaskType")


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

    lead = relationship("User")


class LotInspection(db.Model):
    """The Z1.4 inspection of one complete lot: its plan, its sample and the verdict.

    Created when the last task of a lot is submitted; the plan (severity, AQL, level,
    n, Ac, Re) is frozen here so a later switch of the stratum never rewrites a past lot.
    """

    __tablename__ = "lot_inspections"
    __table_args__ = (Index("ix_lot_inspections_stratum_started", "stratum_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    stratum_id: Mapped[int] = mapped_column(ForeignKey("sampling_strata.id"))
    # inspecting | accepted | rejected | full_review (stratum stopped: no sampling)
    status: Mapped[str] = mapped_column(String(16), default="inspecting")
    severity: Mapped[str] = mapped_column(String(16))
    aql: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(String(8))
    code_letter: Mapped[str] = mapped_column(String(1))
    lot_size: Mapped[int] = mapped_column(Integer)
    sample_size: Mapped[int] = mapped_column(Integer)
    table_sample_size: Mapped[int] = mapped_column(Integer)
    accept: Mapped[int] = mapped_column(Integer)
    reject: Mapped[int] = mapped_column(Integer)
    sample_task_ids: Mapped[list] = mapped_column(JSON, default=list)
    defects: Mapped[int] = mapped_column(Integer, default=0)
    reviewed: Mapped[int] = mapped_column(Integer, default=0)
    production_steady: Mapped[bool] = mapped_column(Boolean, default=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}

    lot = relationship("Lot")
    stratum: Mapped[SamplingStratum] = relationship()


class QaSamplingDecision(db.Model):
    """Why a submitted task went to QA, straight to completed, or waits for its lot.

    One row per submission (a reworked file adds one). The fixed-rate rows are also the
    per-stratum counters of the deficit correction (see qa.policy), so they are indexed
    by stratum and rule.
    """

    __tablename__ = "qa_sampling_decisions"
    __table_args__ = (Index("ix_qa_sampling_stratum_rule", "stratum", "rule"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    task_type_id: Mapped[int] = mapped_column(ForeignKey("task_types.id"))
    specialist_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    stratum: Mapped[str] = mapped_column(String(64))
    # rework | lot_stopped | first_n | probation | full_review | heightened_client |
    # sla_override | flagged_specialist | lot | daily_lot | fixed_rate
    rule: Mapped[str] = mapped_column(String(32))
    review: Mapped[bool] = mapped_column(Boolean)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(200))
    rate: Mapped[float | None] = mapped_column(Float)
    # Fixed-rate only: the stratum's decisions and samples before this one.
    stratum_seen: Mapped[int | None] = mapped_column(Integer)
    stratum_sampled: Mapped[int | None] = mapped_column(Integer)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
