"""Column helpers shared by the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import DateTime, Enum, String, TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_public_id() -> str:
    """Opaque, unguessable identifier used in URLs and the API."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend.

    SQLite stores naive values; this type always hands back aware UTC so
    comparisons and ISO output never depend on the database in use.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def str_enum(enum: type[StrEnum], name: str) -> Enum:
    """A VARCHAR column with a CHECK constraint listing the enum's values."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


PublicId = String(32)
