"""SQL helpers the set-based SLA code needs on both PostgreSQL and SQLite."""

from __future__ import annotations

from sqlalchemy import JSON, String, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from provider_app.db_types import UTCDateTime

# The instant a set-based statement acts at, bound at execution: statements that
# take it as a parameter can be built once and reused (``sla.sweep``).
NOW = bindparam("now", type_=UTCDateTime())


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


class json_object(FunctionElement):  # noqa: N801 - reads like the SQL function it is
    """A JSON object built by the database from ``key, value, key, value, ...`` arguments.

    The sweep writes one audit row per task whose ``after`` names the escalations
    it opened and superseded; those ids exist only inside the statement, so the
    object has to be made in SQL (``json_build_object`` / SQLite's ``json_object``).
    Keys are our own constants; pass string values as ``cast(literal(v), String)``
    so PostgreSQL knows their type.
    """

    type = JSON()
    inherit_cache = True
    name = "json_object"


@compiles(json_object, "postgresql")
def _json_object_postgresql(element, compiler, **kw) -> str:
    return f"json_build_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object, "sqlite")
def _json_object_sqlite(element, compiler, **kw) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"
