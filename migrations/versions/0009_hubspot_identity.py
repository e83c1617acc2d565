"""HubSpot identity: a contact's Record ID (the key of contacts without an email), and the
stage entry dates its record carried

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact") as table:
        table.add_column(
            sa.Column("hubspot_record_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        table.create_index(op.f("ix_contact_hubspot_record_id"), ["hubspot_record_id"], unique=True)
    op.create_table(
        "contact_initial_stage_entry",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.PrimaryKeyConstraint("contact_id", "stage"),
    )


def downgrade() -> None:
    op.drop_table("contact_initial_stage_entry")
    with op.batch_alter_table("contact") as table:
        table.drop_index(op.f("ix_contact_hubspot_record_id"))
        table.drop_column("hubspot_record_id")
