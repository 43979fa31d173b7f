"""task offers

Offer with a timeout (provider_app/assignment/offers.py): who a queued task is offered to,
since when and until when, and who declined it in this round. Both indexes are partial, so
tasks never offered cost them nothing.

Written by hand. On SQLite the foreign key goes inline with ADD COLUMN (SQLite cannot add a
constraint to an existing table); on PostgreSQL it is a named constraint.

Revision ID: 0002_task_offers
Revises: 0001_initial
Create Date: 2026-11-22 06:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0002_task_offers"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

FK_NAME = "fk_tasks_offered_to_id_users"
INDEXES = {
    "ix_tasks_offered_to": "offered_to_id",
    "ix_tasks_offer_expires": "offer_expires_at",
}


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE tasks ADD COLUMN offered_to_id INTEGER "
                   f"CONSTRAINT {FK_NAME} REFERENCES users (id)")
    else:
        op.add_column("tasks", sa.Column("offered_to_id", sa.Integer(), nullable=True))
        op.create_foreign_key(FK_NAME, "tasks", "users", ["offered_to_id"], ["id"])
    op.add_column("tasks", sa.Column("offered_at", sa.DateTime(timezone=True),
                                     nullable=True))
    op.add_column("tasks", sa.Column("offer_expires_at", sa.DateTime(timezone=True),
                                     nullable=True))
    op.add_column("tasks", sa.Column("offer_declined_ids", sa.JSON(), nullable=True))
    for name, column in INDEXES.items():
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "tasks", [column], unique=False,
                        postgresql_where=where, sqlite_where=where)


def downgrade():
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in INDEXES:
        op.drop_index(name, table_name="tasks")
    if not sqlite:
        op.drop_constraint(FK_NAME, "tasks", type_="foreignkey")
    with op.batch_alter_table("tasks") as batch_op:
        for column in ("offer_declined_ids", "offer_expires_at", "offered_at", "offered_to_id"):
            batch_op.drop_column(column)
