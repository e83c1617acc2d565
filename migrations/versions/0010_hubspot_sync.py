"""HubSpot sync: pull cursors, the values pushed, the audit of each push, the sync runs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 02:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "hubspot_sync",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", TEXT(), nullable=False),
        sa.Column("started_at", TIME(), nullable=False),
        sa.Column("finished_at", TIME(), nullable=True),
        sa.Column("status", TEXT(), nullable=False),
        sa.Column("summary", TEXT(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "hubspot_cursor",
        sa.Column("name", TEXT(), nullable=False),
        sa.Column("value", TEXT(), nullable=False),
        sa.Column("updated_at", TIME(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "hubspot_pushed",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("property", TEXT(), nullable=False),
        sa.Column("value", TEXT(), nullable=False),
        sa.Column("pushed_at", TIME(), nullable=False),
        sa.Column("sync_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.ForeignKeyConstraint(["sync_id"], ["hubspot_sync.id"]),
        sa.PrimaryKeyConstraint("contact_id", "property"),
    )
    op.create_table(
        "hubspot_push_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sync_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("record_id", TEXT(), nullable=False),
        sa.Column("property", TEXT(), nullable=False),
        sa.Column("value", TEXT(), nullable=False),
        sa.Column("outcome", TEXT(), nullable=False),
        sa.Column("detail", TEXT(), nullable=True),
        sa.Column("at", TIME(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.ForeignKeyConstraint(["sync_id"], ["hubspot_sync.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_hubspot_push_record_sync_id"), "hubspot_push_record", ["sync_id"], unique=False
    )
    op.create_index(
        op.f("ix_hubspot_push_record_contact_id"),
        "hubspot_push_record",
        ["contact_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_hubspot_push_record_contact_id"), table_name="hubspot_push_record")
    op.drop_index(op.f("ix_hubspot_push_record_sync_id"), table_name="hubspot_push_record")
    op.drop_table("hubspot_push_record")
    op.drop_table("hubspot_pushed")
    op.drop_table("hubspot_cursor")
    op.drop_table("hubspot_sync")
