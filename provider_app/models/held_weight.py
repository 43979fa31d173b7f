"""``staff_profiles.held_weight``: the weight of the tasks a person holds, kept by the database.

Capacity is checked on every claim, assignment and board view. Summing a person's held tasks
each time read every task they hold (on every claim, growing with what the claimer holds,
and 12 ms of each board view for 440 people), so the sum is kept as a counter instead, by
triggers on the tables it depends on. Triggers, not application code: tasks change hands in
the ORM, in set-based UPDATEs (batch assignment, the claim statement, absence), in COPY (CSV
import, the scale seeder) and in tests' raw SQL, and every one of them must move the counter.

* ``tasks`` insert / delete / update of status, assignee or type: add the new row's weight
  to its holder, take the old row's from its holder, whenever the row enters, leaves or
  changes hands within ``HELD_STATUSES``;
* ``staff_profiles`` insert: count what the person already holds;
* ``task_types`` update of ``weight``: move every holder of that type by the difference.

The statement bodies are the same SQL on both databases: SQLite runs them as trigger bodies,
PostgreSQL inside one PL/pgSQL function each. ``recount()`` recomputes every counter from the
tasks (migration backfill, repair) and ``drift()`` lists the people whose counter is wrong,
which the tests assert is nobody after every kind of change.
"""

# Only this module's constants are interpolated into the SQL below, never input.
# ruff: noqa: S608

from __future__ import annotations

from sqlalchemy import Connection, MetaData, event, text

from ..vocab import HELD_STATUSES

HELD_LIST = ", ".join(f"'{s.value}'" for s in HELD_STATUSES)


def _held(row: str) -> str:
    return f"{row}.assignee_id IS NOT NULL AND {row}.status IN ({HELD_LIST})"


_SAME_HOLD = (f"{_held('NEW')} AND {_held('OLD')} AND NEW.assignee_id = OLD.assignee_id "
              "AND NEW.task_type_id = OLD.task_type_id")


def _move(sign: str, row: str) -> str:
    """Move ``row``'s holder's counter by ``row``'s type weight (``sign``: "+" or "-")."""
    return (f"UPDATE staff_profiles SET held_weight = held_weight {sign} "
            f"(SELECT weight FROM task_types WHERE id = {row}.task_type_id) "
            f"WHERE user_id = {row}.assignee_id")


_HOLDS_OF_TYPE = (f"FROM tasks h WHERE h.task_type_id = NEW.id AND h.assignee_id IS NOT NULL "
                  f"AND h.status IN ({HELD_LIST})")
SUM_HELD = (f"SELECT COALESCE(SUM(tt.weight), 0) FROM tasks h JOIN task_types tt "
            f"ON tt.id = h.task_type_id WHERE h.assignee_id = {{user}} "
            f"AND h.status IN ({HELD_LIST})")

_UPDATE_OF = "UPDATE OF status, assignee_id, task_type_id"
# name -> (table, event, WHEN condition or None, body using NEW / OLD)
TRIGGERS: dict[str, tuple[str, str, str | None, str]] = {
    "tl_held_add_on_insert": ("tasks", "INSERT", _held("NEW"), _move("+", "NEW")),
    "tl_held_remove_on_delete": ("tasks", "DELETE", _held("OLD"), _move("-", "OLD")),
    "tl_held_remove_on_update": ("tasks", _UPDATE_OF, f"{_held('OLD')} AND NOT ({_SAME_HOLD})",
                                 _move("-", "OLD")),
    "tl_held_add_on_update": ("tasks", _UPDATE_OF, f"{_held('NEW')} AND NOT ({_SAME_HOLD})",
                              _move("+", "NEW")),
    "tl_held_count_new_profile": (
        "staff_profiles", "INSERT", None,
        f"UPDATE staff_profiles SET held_weight = ({SUM_HELD.format(user='NEW.user_id')}) "
        "WHERE user_id = NEW.user_id"),
    "tl_held_reweigh_type": (
        "task_types", "UPDATE OF weight", "NEW.weight <> OLD.weight",
        "UPDATE staff_profiles SET held_weight = held_weight + (NEW.weight - OLD.weight) * "
        f"(SELECT COUNT(*) {_HOLDS_OF_TYPE} AND h.assignee_id = staff_profiles.user_id) "
        f"WHERE user_id IN (SELECT h.assignee_id {_HOLDS_OF_TYPE})"),
}


def create_statements(dialect: str) -> list[str]:
    """DDL creating every trigger (and, on PostgreSQL, its function) for ``dialect``."""
    statements = []
    for name, (table, on, when, body) in TRIGGERS.items():
        condition = f" WHEN ({when})" if when else ""
        if dialect == "postgresql":
            statements.append(
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN {body}; RETURN NULL; END $$")
            statements.append(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            statements.append(f"CREATE TRIGGER {name} AFTER {on} ON {table} FOR EACH ROW"
                              f"{condition} EXECUTE FUNCTION {name}()")
        else:
            statements.append(f"DROP TRIGGER IF EXISTS {name}")
            statements.append(f"CREATE TRIGGER {name} AFTER {on} ON {table} FOR EACH ROW"
                              f"{condition} BEGIN {body}; END")
    return statements


RECOUNT = f"UPDATE staff_profiles SET held_weight = ({SUM_HELD.format(user='user_id')})"
DRIFT = (f"SELECT user_id, held_weight, ({SUM_HELD.format(user='sp.user_id')}) AS actual "
         "FROM staff_profiles sp")


def recount(connection: Connection) -> None:
    """Recompute every counter from the tasks (backfill after the migration, or repair)."""
    connection.execute(text(RECOUNT))


def drift(connection: Connection) -> list[tuple[int, int, int]]:
    """(user_id, counter, actual) for every person whose counter disagrees with their tasks."""
    rows = connection.execute(text(DRIFT)).all()
    return [(r.user_id, r.held_weight, r.actual) for r in rows if r.held_weight != r.actual]


def install(metadata: MetaData) -> None:
    """Create the triggers whenever ``metadata.create_all`` builds the schema (tests,
    benchmarks); migrations create them in ``0004_staff_held_weight``."""

    @event.listens_for(metadata, "after_create")
    def _create_triggers(target, connection: Connection, **kw) -> None:
        for statement in create_statements(connection.dialect.name):
            connection.exec_driver_sql(statement)
