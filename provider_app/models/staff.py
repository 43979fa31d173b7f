"""Provider staff profiles: tier, skills, licences, capacity, shift, clients."""

from __future__ import annotations

from datetime import date, time

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Time,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db_types import PublicId, new_public_id, str_enum
from ..extensions import db
from ..vocab import Availability, StaffTier


class StaffProfile(db.Model):
    """What assignment needs to know about one provider person."""

    __tablename__ = "staff_profiles"
    __table_args__ = (CheckConstraint("capacity >= 0", name="capacity_non_negative"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    # Opaque id for URLs and forms (staff list, assign forms); never the user's integer id.
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    tier: Mapped[StaffTier] = mapped_column(str_enum(StaffTier, "staff_tier"))
    capacity: Mapped[int] = mapped_column(Integer, default=5)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Kolkata")
    shift_start: Mapped[time | None] = mapped_column(Time)
    shift_end: Mapped[time | None] = mapped_column(Time)
    shift_days: Mapped[list] = mapped_column(JSON, default=lambda: [0, 1, 2, 3, 4])
    availability: Mapped[Availability] = mapped_column(
        str_enum(Availability, "availability"), default=Availability.AVAILABLE
    )
    flagged_for_review: Mapped[bool] = mapped_column(Boolean, default=False)
    # Weight of the tasks this person holds (HELD_STATUSES): kept by database triggers
    # (models/held_weight.py), read by every capacity check; application code never writes it.
    held_weight: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    user = relationship("User", back_populates="staff_profile")
    skills: Mapped[list[StaffSkill]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    licences: Mapped[list[StaffLicence]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    client_links: Mapped[list[StaffClient]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def allowed_client_ids(self) -> frozenset[int] | None:
        """None means every client; otherwise only these (dedicated pods, restrictions)."""
        ids = frozenset(link.client_id for link in self.client_links)
        return ids or None


class StaffSkill(db.Model):
    __tablename__ = "staff_skills"
    __table_args__ = (CheckConstraint("level BETWEEN 1 AND 5", name="level_range"),)

    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_profiles.user_id"), primary_key=True
    )
    skill: Mapped[str] = mapped_column(String(32), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)


class StaffLicence(db.Model):
    """A producer licence: state, line of authority and expiry."""

    __tablename__ = "staff_licences"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_profiles.user_id"), index=True)
    state: Mapped[str] = mapped_column(String(2))
    line: Mapped[str] = mapped_column(String(32))
    number: Mapped[str] = mapped_column(String(32), default="")
    expires_on: Mapped[date] = mapped_column(Date)


class StaffClient(db.Model):
    """Clients a person may work for; a person with no rows may work for all."""

    __tablename__ = "staff_clients"

    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_profiles.user_id"), primary_key=True
    )
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    dedicated: Mapped[bool] = mapped_column(Boolean, default=False)
