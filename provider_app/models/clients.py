"""Clients (tenants) and their versioned business calendars."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db_types import UTCDateTime, str_enum, utcnow
from ..extensions import db
from ..vocab import ClientKind


class Client(db.Model):
    """A tenant: an agency, carrier, MGA, TPA or broker that sends work."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ClientKind] = mapped_column(str_enum(ClientKind, "client_kind"))
    timezone: Mapped[str] = mapped_column(String(64), default="America/New_York")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    heightened_review: Mapped[bool] = mapped_column(Boolean, default=False)
    retention_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    calendars: Mapped[list[CalendarVersion]] = relationship(
        back_populates="client", order_by="CalendarVersion.effective_from"
    )

    def __repr__(self) -> str:
        return f"<Client {self.code}>"


class CalendarVersion(db.Model):
    """A client's business hours and closures, effective from a date.

    Versions are never edited once effective, so changing hours does not
    rewrite the due times or elapsed business time of past work.
    """

    __tablename__ = "calendar_versions"
    __table_args__ = (UniqueConstraint("client_id", "effective_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    effective_from: Mapped[date] = mapped_column(Date)
    timezone: Mapped[str] = mapped_column(String(64))
    # {"0": [["09:00", "17:00"]], ...}; weekday keys 0=Monday
    hours: Mapped[dict] = mapped_column(JSON)
    holiday_country: Mapped[str | None] = mapped_column(String(8), default="US")
    holiday_subdiv: Mapped[str | None] = mapped_column(String(8))
    closures: Mapped[list] = mapped_column(JSON, default=list)
    always_open: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    client: Mapped[Client] = relationship(back_populates="calendars")
