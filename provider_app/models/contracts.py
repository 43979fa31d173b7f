"""Contracts: the service lines a client bought and the SLA promised for each."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db_types import str_enum
from ..extensions import db
from ..vocab import Priority


class Contract(db.Model):
    """A client's agreement: targets, fee, credit scheme and QA overrides."""

    __tablename__ = "contracts"
    __table_args__ = (
        CheckConstraint("at_risk_pct > 0 AND at_risk_pct <= 100", name="at_risk_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    monthly_fee: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    attainment_target: Mapped[float] = mapped_column(Float, default=95.0)
    qa_accuracy_target: Mapped[float] = mapped_column(Float, default=98.0)
    # True: targets run on calendar hours (24x7), not the client's business hours.
    calendar_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    at_risk_pct: Mapped[float] = mapped_column(Float, default=75.0)
    # e.g. {"kind": "per_point", "pct_per_point": 1.0, "cap_pct": 10.0}
    credit_scheme: Mapped[dict] = mapped_column(JSON, default=dict)
    # Tightens the SOP's sampling policy for this client, same shape as Sop.sampling_policy.
    sampling_override: Mapped[dict | None] = mapped_column(JSON)
    offer_timeout_minutes: Mapped[int | None] = mapped_column(Integer)

    client = relationship("Client")
    targets: Mapped[list[SlaTarget]] = relationship(
        back_populates="contract", cascade="all, delete-orphan", lazy="selectin"
    )


class SlaTarget(db.Model):
    """Turnaround promised for one task type and priority."""

    __tablename__ = "sla_targets"
    __table_args__ = (
        UniqueConstraint("contract_id", "task_type_id", "priority"),
        CheckConstraint("target_hours > 0", name="target_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), index=True)
    task_type_id: Mapped[int] = mapped_column(ForeignKey("task_types.id"))
    priority: Mapped[Priority] = mapped_column(str_enum(Priority, "priority"))
    target_hours: Mapped[float] = mapped_column(Float)

    contract: Mapped[Contract] = relationship(back_populates="targets")
    task_type = relationship("TaskType")
