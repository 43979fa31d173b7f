"""staff_profiles.held_weight, kept by triggers

The weight of the tasks each person holds, as a counter on their profile, so capacity checks
(every claim, assignment and board view) read one row instead of summing every task the
person holds. Triggers on tasks, staff_profiles and task_types keep it (see
provider_app/models/held_weight.py, whose statements this migration runs as they were on
2026-11-22); the counters are backfilled from the tasks.

Revision ID: 0004_staff_held_weight
Revises: 0003_task_lookup_indexes
Create Date: 2026-11-22 08:50:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0004_staff_held_weight"
down_revision = "0003_task_lookup_indexes"
branch_labels = None
depends_on = None

HELD = "'assigned', 'in_progress', 'pending_client', 'rework'"


def _held(row):
    return f"{row}.assignee_id IS NOT NULL AND {row}.status IN ({HELD})"


SAME_HOLD = (f"{_held('NEW')} AND {_held('OLD')} AND NEW.assignee_id = OLD.assignee_id "
             "AND NEW.task_type_id = OLD.task_type_id")
HOLDS_OF_TYPE = ("FROM tasks h WHERE h.task_type_id = NEW.id AND h.assignee_id IS NOT NULL "
                 f"AND h.status IN ({HELD})")
SUM_HELD = ("SELECT COALESCE(SUM(tt.weight), 0) FROM tasks h JOIN task_types tt "
            "ON tt.id = h.task_type_id WHERE h.assignee_id = {user} "
            f"AND h.status IN ({HELD})")


def _move(sign, row):
    return (f"UPDATE staff_profiles SET held_weight = held_weight {sign} "
            f"(SELECT weight FROM task_types WHERE id = {row}.task_type_id) "
            f"WHERE user_id = {row}.assignee_id")


UPDATE_OF = "UPDATE OF status, assignee_id, task_type_id"
TRIGGERS = {
    "tl_held_add_on_insert": ("tasks", "INSERT", _held("NEW"), _move("+", "NEW")),
    "tl_held_remove_on_delete": ("tasks", "DELETE", _held("OLD"), _move("-", "OLD")),
    "tl_held_remove_on_update": ("tasks", UPDATE_OF, f"{_held('OLD')} AND NOT ({SAME_HOLD})",
                                 _move("-", "OLD")),
    "tl_held_add_on_update": ("tasks", UPDATE_OF, f"{_held('NEW')} AND NOT ({SAME_HOLD})",
                              _move("+", "NEW")),
    "tl_held_count_new_profile": (
        "staff_profiles", "INSERT", None,
        f"UPDATE staff_profiles SET held_weight = ({SUM_HELD.format(user='NEW.user_id')}) "
        "WHERE user_id = NEW.user_id"),
    "tl_held_reweigh_type": (
        "task_types", "UPDATE OF weight", "NEW.weight <> OLD.weight",
        "UPDATE staff_profiles SET held_weight = held_weight + (NEW.weight - OLD.weight) * "
        f"(SELECT COUNT(*) {HOLDS_OF_TYPE} AND h.assignee_id = staff_profiles.user_id) "
        f"WHERE user_id IN (SELECT h.assignee_id {HOLDS_OF_TYPE})"),
}


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column("staff_profiles", sa.Column("held_weight", sa.Integer(),
                                              server_default=sa.text("0"), nullable=False))
    for name, (table, on, when, body) in TRIGGERS.items():
        condition = f" WHEN ({when})" if when else ""
        if postgres:
            op.execute(f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger "
                       f"LANGUAGE plpgsql AS $$ BEGIN {body}; RETURN NULL; END $$")
            op.execute(f"CREATE TRIGGER {name} AFTER {on} ON {table} FOR EACH ROW{condition} "
                       f"EXECUTE FUNCTION {name}()")
        else:
            op.execute(f"CREATE TRIGGER {name} AFTER {on} ON {table} FOR EACH ROW{condition} "
                       f"BEGIN {body}; END")
    op.execute(f"UPDATE staff_profiles SET held_weight = ({SUM_HELD.format(user='user_id')})")


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, (table, *_rest) in TRIGGERS.items():
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("staff_profiles") as batch_op:
        batch_op.drop_column("held_weight")
