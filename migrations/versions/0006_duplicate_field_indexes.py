"""indexes for intake's duplicate check by fields (PostgreSQL)

A client who sends no reference has its new tasks matched on policy number and named insured
(``intake.insert.duplicate_query``). Without an index on those values the check filtered every
task the client received in the last seven days, per new task. Two partial expression indexes,
(client_id, lower(fields ->> name)) where the value is present, make it a probe. PostgreSQL
only, as in the model (SQLite is the single-user run).
Written by hand.

Revision ID: 0006_duplicate_field_indexes
Revises: 0005_external_ref_index_order
Create Date: 2026-11-22 11:10:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0006_duplicate_field_indexes"
down_revision = "0005_external_ref_index_order"
branch_labels = None
depends_on = None

NAMES = ("policy_number", "insured_name")


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in NAMES:
        op.create_index(f"ix_tasks_client_{name}", "tasks",
                        ["client_id", sa.text(f"lower(CAST((fields ->> '{name}') AS VARCHAR))")],
                        unique=False,
                        postgresql_where=sa.text(f"(fields ->> '{name}') IS NOT NULL"))


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in NAMES:
        op.drop_index(f"ix_tasks_client_{name}", table_name="tasks")
