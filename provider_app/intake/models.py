"""The record of one bulk CSV upload: the stored file, its hash and what became of it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db_types import PublicId, UTCDateTime, new_public_id, utcnow
from ..extensions import db


class CsvImport(db.Model):
    """A client's uploaded CSV file; its progress is the JobProgress row ``job_id``.

    The same file (by SHA-256) may exist once per client while it is live, so an
    upload repeated by mistake, or twice at once, is refused rather than imported
    twice. Discarded and rejected uploads release the hash.
    """

    __tablename__ = "csv_imports"
    __table_args__ = (
        Index(
            "uq_csv_imports_client_hash_live",
            "client_id",
            "file_hash",
            unique=True,
            sqlite_where=text("discarded_at IS NULL"),
            postgresql_where=text("discarded_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(PublicId, unique=True, default=new_public_id)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job_progress.id"), unique=True)
    # Type for every row when the file has no task_type column.
    task_type_id: Mapped[int | None] = mapped_column(ForeignKey("task_types.id"))
    file_name: Mapped[str] = mapped_column(String(255))
    file_hash: Mapped[str] = mapped_column(String(64))
    storage_name: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    # "ask": stop for a decision when rows are invalid; "import_valid": go ahead.
    on_invalid: Mapped[str] = mapped_column(String(16), default="ask")
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    discarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job = relationship("JobProgress")
    lot = relationship("Lot")
    task_type = relationship("TaskType")
