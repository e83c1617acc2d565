"""run reports: each run's report kept in the state store; the tier use of each day run

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("content", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("day_run") as table:
        table.add_column(sa.Column("marketing_contacts", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("day_run") as table:
        table.drop_column("marketing_contacts")
    op.drop_table("run_report")
