"""Stored SLA reports: the monthly PDFs and the ones a client admin asked for."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from provider_app.db_types import PublicId, UTCDateTime, new_public_id, utcnow
from provider_app.extensions import db


class StoredReport(db.Model):
    """One rendered PDF; ``kind`` is ``monthly`` (scheduled) or ``on_demand``.

    The unique constraint makes the monthly job idempotent: a second run for the same
    client and month finds the row and stops.
    """

    __tablename__ = "sla_reports"
    __table_args__ = (
        UniqueConstraint("client_id", "kind", "period_start", "period_end",
                         name="uq_sla_reports_period"),
        Index("ix_sla_reports_client_created", "client_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    kind: Mapped[str] = mapped_column(String(16), default="monthly")
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    # The PDF itself, loaded only when downloaded (reports are a few hundred kB).
    pdf: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    size: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    client = relationship("Client")

    @property
    def filename(self) -> str:
        return f"sla-report-{self.period_start.isoformat()}-{self.period_end.isoformat()}.pdf"
