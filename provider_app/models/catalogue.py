"""Task types (service lines) and their versioned SOPs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db_types import UTCDateTime, str_enum, utcnow
from ..extensions import db
from ..vocab import Tier


class TaskType(db.Model):
    """A service line: tier, required skills, licence line, intake schema."""

    __tablename__ = "task_types"
    __table_args__ = (CheckConstraint("weight >= 1", name="weight_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[Tier] = mapped_column(str_enum(Tier, "tier"))
    weight: Mapped[int] = mapped_column(Integer, default=1)
    # Line of authority a licence must cover (state comes from the task); None: no licence.
    licence_line: Mapped[str | None] = mapped_column(String(32))
    # Field definitions driving the portal form, the API schema and CSV validation.
    intake_schema: Mapped[list] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    skills: Mapped[list[TaskTypeSkill]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    sops: Mapped[list[Sop]] = relationship(back_populates="task_type", order_by="Sop.version")

    def current_sop(self) -> Sop | None:
        """The newest published SOP version: the one new work is done under."""
        return db.session.scalar(
            select(Sop)
            .where(Sop.task_type_id == self.id, Sop.published_at.is_not(None))
            .order_by(Sop.version.desc())
            .limit(1)
        )


class TaskTypeSkill(db.Model):
    __tablename__ = "task_type_skills"
    __table_args__ = (CheckConstraint("min_level BETWEEN 1 AND 5", name="min_level_range"),)

    task_type_id: Mapped[int] = mapped_column(ForeignKey("task_types.id"), primary_key=True)
    skill: Mapped[str] = mapped_column(String(32), primary_key=True)
    min_level: Mapped[int] = mapped_column(Integer)
    # Optional skills are dropped after relax_after_minutes in the queue.
    optional: Mapped[bool] = mapped_column(Boolean, default=False)
    relax_after_minutes: Mapped[int | None] = mapped_column(Integer)


class Sop(db.Model):
    """A standard operating procedure version; immutable once published."""

    __tablename__ = "sops"
    __table_args__ = (UniqueConstraint("task_type_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_type_id: Mapped[int] = mapped_column(ForeignKey("task_types.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200), default="")
    pass_threshold: Mapped[float] = mapped_column(Float, default=0.9)
    # e.g. {"rate": 0.1, "first_n": 20, "consecutive_passes": 10, "full_review": false,
    #       "lot": {"aql": 1.0, "level": "II"}}
    sampling_policy: Mapped[dict] = mapped_column(JSON, default=dict)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    task_type: Mapped[TaskType] = relationship(back_populates="sops")
    steps: Mapped[list[SopStep]] = relationship(
        cascade="all, delete-orphan", order_by="SopStep.position", lazy="selectin"
    )
    scorecard: Mapped[list[ScorecardItem]] = relationship(
        cascade="all, delete-orphan", order_by="ScorecardItem.position", lazy="selectin"
    )

    @property
    def is_published(self) -> bool:
        return self.published_at is not None


class SopStep(db.Model):
    __tablename__ = "sop_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_id: Mapped[int] = mapped_column(ForeignKey("sops.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    required: Mapped[bool] = mapped_column(Boolean, default=True)


class ScorecardItem(db.Model):
    """One QA check: weight, section, and whether failing it fails the file."""

    __tablename__ = "scorecard_items"
    __table_args__ = (CheckConstraint("weight >= 0", name="weight_non_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_id: Mapped[int] = mapped_column(ForeignKey("sops.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    section: Mapped[str] = mapped_column(String(100), default="General")
    text: Mapped[str] = mapped_column(Text)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_na: Mapped[bool] = mapped_column(Boolean, default=False)
