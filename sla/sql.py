"""SQL helpers the set-based SLA code needs on both PostgreSQL and SQLite."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement


class random_public_id(FunctionElement):  # noqa: N801 - reads like the SQL function it is
    """A fresh opaque id per row of an INSERT ... SELECT.

    A Python column default runs once per statement there, which would give
    every row the same ``public_id``; this runs once per row in the database.
    """

    type = String(32)
    inherit_cache = True
    name = "random_public_id"


@compiles(random_public_id, "postgresql")
def _public_id_postgresql(element, compiler, **kw) -> str:
    return "replace(gen_random_uuid()::text, '-', '')"


@compiles(random_public_id, "sqlite")
def _public_id_sqlite(element, compiler, **kw) -> str:
    return "lower(hex(randomblob(16)))"
